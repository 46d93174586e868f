#!/bin/bash
# seedvae-exec's encoder (CUDA device, fp16) against PyTorch fp16 at its best on the same GPU in
# the same run (tests/oracle/torch_encoder.py: one 9-frame call, ms per input frame × the frame
# count), random full-size weights: 1248x720, 9 and 81 frames (calls of 5 then 4 frames), the
# memory plan beside the pool's peak; then the plan within 16 GB. Carry .dev/run = {exec,
# torch_encoder.py (tests/oracle), torch_decoder.py (../shared/oracle: its building blocks)};
# re-runnable from scratch; logs under $OUT.
set -u
. benches/scripts/h200_exec_env.sh
exec_weights
run() { timeout 250 .dev/run/exec "$@" 2>&1 | grep -v INFO | tee -a $OUT/encode.txt; }
run time-enc $W 720 1248 9
run time-enc $W 720 1248 81
run plan-enc $W 720 1248 16
cd .dev/run
timeout 200 python3 torch_encoder.py $W --shape 9,720,1248 --dtype fp16 --bench 3 2>&1 | tail -1 | tee -a $OUT/encode.txt
timeout 250 python3 torch_encoder.py $W --shape 81,720,1248 --dtype fp16 --bench 1 2>&1 | tail -1 | tee -a $OUT/encode.txt
