#!/bin/bash
# seedvae-exec on the H200: the CUDA device against the reference device and the fixture goldens.
# Carry .dev/run = {exec (cargo build --release -p seedvae-benches --bin exec), fixtures/
# (../shared/fixtures/vae_tiny)}; re-runnable; logs under $OUT.
set -u
. benches/scripts/h200_exec_env.sh
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee $OUT/gpu.txt
ls $SITE/nvidia | tee $OUT/nvidia.txt
timeout 240 .dev/run/exec check .dev/run/fixtures 2>&1 | tee $OUT/check.txt
echo "check exit ${PIPESTATUS[0]}" | tee -a $OUT/check.txt
