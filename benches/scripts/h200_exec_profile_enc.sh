#!/bin/bash
# seedvae-exec's encoder on the H200: 1248x720, 9 frames, where the time goes (a device that
# synchronizes around every call), and the time with calls of 1, 2 and 4 latent frames.
# Carry .dev/run = {exec}; re-runnable; logs under $OUT.
set -u
. benches/scripts/h200_exec_env.sh
exec_weights
timeout 150 .dev/run/exec profile-enc $W 720 1248 9 2>&1 | grep -v INFO | tail -18 | tee $OUT/profile_enc.txt
for c in 1 2 4; do
  SEEDVAE_EXEC_CHUNK=$c timeout 150 .dev/run/exec time-enc $W 720 1248 33 2>&1 | grep -v INFO | tee -a $OUT/profile_enc.txt
done
