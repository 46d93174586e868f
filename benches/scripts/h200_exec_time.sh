#!/bin/bash
# seedvae-exec (CUDA device) against PyTorch on the same GPU: 1248x720, 3 latent frames (9 output
# frames), random full-size weights. Carry .dev/run = {exec, torch_decoder.py (../shared/oracle)}.
set -u
SITE=$(python3 -c 'import site; print(site.getsitepackages()[0])')
export SEEDVAE_SITE_PACKAGES=$SITE SEEDVAE_KERNELS=/tmp/seedvae-kernels
W=/tmp/full.safetensors
for g in 1 0; do
  if [ $g = 0 ]; then G=""; else G=$g; fi
  timeout 200 .dev/run/exec time $W 720 1248 3 $G 2>&1 | tail -2 | tee -a $OUT/time.txt
done
nvidia-smi --query-gpu=memory.used --format=csv | tee -a $OUT/time.txt
cd .dev/run
timeout 150 python3 torch_decoder.py $W --shape 3,90,156 --dtype fp16 --bench 3 2>&1 | tail -1 | tee -a $OUT/time.txt
timeout 150 python3 torch_decoder.py $W --shape 3,90,156 --dtype fp32 --no-tf32 --bench 1 2>&1 | tail -1 | tee -a $OUT/time.txt
