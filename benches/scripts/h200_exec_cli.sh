#!/bin/bash
# seedvae's CUDA executor as `--backend cuda` through the CLI on the H200: `seedvae backends`,
# `seedvae selftest` on the fixture (the CUDA kernels against the original module's goldens), a
# 1248x720 decode of 3 latent frames held to PyTorch fp32 (TF32 off) on the same latent, and 81
# frames twice (the second with the convolution plans timed by the first, from the cache).
# Carry .dev/run = {seedvae (cargo build --release -p seedvae-cli), fixtures/
# (../shared/fixtures/vae_tiny), torch_decoder.py}; re-runnable from scratch; logs under $OUT.
set -u
SITE=$(python3 -c 'import site; print(site.getsitepackages()[0])')
# The nvidia-* wheels (cuDNN, cuBLAS, NVRTC) of this machine's PyTorch; the Python package sets
# this itself.
export SEEDVAE_SITE_PACKAGES=$SITE SEEDVAE_CACHE=/tmp/svc
B=.dev/run/seedvae
W=/tmp/full.safetensors
[ -f $W ] || $B synth -o $W > /dev/null
$B backends 2>&1 | tee $OUT/backends.txt
timeout 200 $B selftest --fixtures .dev/run/fixtures --json > $OUT/selftest.json 2> $OUT/selftest.err
echo "selftest exit $?" | tee -a $OUT/selftest.err
python3 - <<'PY'
import numpy as np
from safetensors.numpy import save_file
r = np.random.default_rng(5)
save_file({"latent": r.standard_normal((1, 16, 3, 90, 156)).astype(np.float32)}, "/tmp/l3.safetensors")
save_file({"latent": r.standard_normal((1, 16, 21, 90, 156)).astype(np.float32)}, "/tmp/l21.safetensors")
PY
timeout 200 $B decode -m $W /tmp/l3.safetensors -o /tmp/o3.safetensors --backend cuda --force --json > $OUT/dec3.json 2> $OUT/dec3.err
for i in 1 2; do
  /usr/bin/time -v timeout 200 $B decode -m $W /tmp/l21.safetensors -o /tmp/o21.safetensors --dtype f16 --backend cuda --force --json > $OUT/dec21_$i.json 2> $OUT/dec21_$i.err
done
grep -h seconds $OUT/dec*.json
cd .dev/run
timeout 200 python3 torch_decoder.py $W --latent /tmp/l3.safetensors --dtype fp32 --no-tf32 --out /tmp/ref3.safetensors > $OUT/torch.txt 2>&1
timeout 100 python3 torch_decoder.py $W --latent /tmp/l3.safetensors --dtype fp16 --bench 3 >> $OUT/torch.txt 2>&1
tail -1 $OUT/torch.txt
python3 - <<'PY' | tee $OUT/accuracy.txt
import numpy as np
from safetensors.numpy import load_file
a = next(iter(load_file("/tmp/o3.safetensors").values())).astype(np.float64)
b = next(iter(load_file("/tmp/ref3.safetensors").values())).astype(np.float64)
print("seedvae cuda fp16 vs PyTorch fp32 (TF32 off), %s: rel L2 %.3e, max abs %.3e"
      % (a.shape, np.linalg.norm(a - b) / np.linalg.norm(b), np.abs(a - b).max()))
PY
