#!/bin/bash
# seedvae-exec on the H200: every CUDA device function against the reference device, for f16 and
# f32 storage (`exec ops`). Carry .dev/run = {exec}; re-runnable; logs under $OUT.
set -u
. benches/scripts/h200_exec_env.sh
timeout 200 .dev/run/exec ops 2>&1 | tee $OUT/ops.txt
