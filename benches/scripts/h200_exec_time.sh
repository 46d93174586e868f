#!/bin/bash
# seedvae-exec (CUDA device, fp16) against PyTorch fp16 on the same GPU in the same run, random
# full-size weights: 1248x720 (3 and 21 latent frames, full-resolution frame groups of 1 and 4),
# 1920x1080 (3 latent frames); the device pool's peak beside each. Carry .dev/run = {exec,
# torch_decoder.py (../shared/oracle)}; re-runnable from scratch; logs under $OUT.
set -u
. benches/scripts/h200_exec_env.sh
exec_weights
run() { timeout 200 .dev/run/exec "$@" 2>&1 | grep -v INFO | tee -a $OUT/time.txt; }
run time $W 720 1248 3
run time $W 720 1248 21
for g in 1 4; do run time $W 720 1248 5 $g; done
run time $W 1080 1920 3 1
run time32 $W 720 1248 3
cd .dev/run
timeout 150 python3 torch_decoder.py $W --shape 3,90,156 --dtype fp16 --bench 3 2>&1 | tail -1 | tee -a $OUT/time.txt
timeout 150 python3 torch_decoder.py $W --shape 3,135,240 --dtype fp16 --bench 2 2>&1 | tail -1 | tee -a $OUT/time.txt
