#!/bin/bash
# seedvae-exec on the H200: the fp16 decode time at 1248x720 (9 frames) and where it goes (a device
# that synchronizes around every call). Carry .dev/run = {exec}; re-runnable; logs under $OUT.
set -u
. benches/scripts/h200_exec_env.sh
timeout 250 .dev/run/exec time $W 720 1248 3 2>&1 | tail -1 | tee $OUT/time.txt
timeout 250 .dev/run/exec profile $W 720 1248 3 2>&1 | tail -16 | tee $OUT/profile.txt
