#!/bin/bash
# seedvae-exec on the H200: the fp16 decode time at 1248x720 (9 frames) and where it goes (a device
# that synchronizes around every call). Carry .dev/run = {exec}; re-runnable; logs under $OUT.
set -u
SITE=$(python3 -c 'import site; print(site.getsitepackages()[0])')
export SEEDVAE_SITE_PACKAGES=$SITE SEEDVAE_KERNELS=/tmp/seedvae-kernels
W=/tmp/full.safetensors
timeout 250 .dev/run/exec time $W 720 1248 3 2>&1 | tail -1 | tee $OUT/time.txt
timeout 250 .dev/run/exec profile $W 720 1248 3 2>&1 | tail -16 | tee $OUT/profile.txt
