#!/bin/bash
# 3840x2160 through seedvae's CUDA executor on the H200 (issue 20's 4K case): 3 latent frames
# (9 output frames) decoded through the CLI without a budget (the H200's memory: bands, since a
# whole 4K layer passes 2^31 values) and within `--vram-budget 16` (bands, states parked in host
# memory); the two against each other (a budget must not change the result beyond rounding), and
# the first frame of each against PyTorch fp32 (TF32 off) on the first latent frame (the VAE is
# causal: that frame is the clip's first; three frames in fp32 would not fit the GPU).
# Carry .dev/run = {seedvae, torch_decoder.py}; re-runnable from scratch; logs under $OUT.
set -u
. benches/scripts/h200_exec_env.sh
exec_weights
python3 - <<'PY'
import numpy as np
from safetensors.numpy import save_file
z = np.random.default_rng(9).standard_normal((1, 16, 3, 270, 480)).astype(np.float32)
save_file({"latent": z}, "/tmp/l4k.safetensors")
save_file({"latent": np.ascontiguousarray(z[:, :, :1])}, "/tmp/l4k1.safetensors")
PY
for b in whole 16; do
  o="--no-tiling"; [ $b = whole ] || o="--vram-budget $b"
  /usr/bin/time -v timeout 280 $B decode -m $W /tmp/l4k.safetensors -o /tmp/k_$b.safetensors --backend cuda --force --json $o > $OUT/k_$b.json 2> $OUT/k_$b.err
  echo "decode 4K $o exit $?: $(grep -h '"seconds"\|device_p\|peak_host' $OUT/k_$b.json | tr -d ' \n'); max RSS $(grep 'Maximum resident' $OUT/k_$b.err | awk '{print $NF}') kB" | tee -a $OUT/4k.txt
  grep -h "within the memory budget\|bands" $OUT/k_$b.err | grep -v DEBUG | tail -1 | tee -a $OUT/4k.txt
done
[ -f /tmp/t4k1.safetensors ] || (cd .dev/run && timeout 250 python3 torch_decoder.py $W --latent /tmp/l4k1.safetensors --dtype fp32 --no-tf32 --out /tmp/t4k1.safetensors > $OUT/torch4k.txt 2>&1)
python3 - <<'PY' | tee -a $OUT/4k.txt
import numpy as np
from safetensors.numpy import load_file
one = lambda f: next(iter(load_file(f).values())).astype(np.float64)
rel = lambda a, b: (np.linalg.norm(a - b) / np.linalg.norm(b), np.abs(a - b).max())
a, b = one("/tmp/k_whole.safetensors"), one("/tmp/k_16.safetensors")
print("4K within 16 GB vs unbudgeted %s: rel L2 %.3e, max abs %.3e" % ((a.shape,) + rel(b, a)))
try:
    t = one("/tmp/t4k1.safetensors").reshape(a.shape[:2] + (1,) + a.shape[3:])
    print("first frame vs PyTorch fp32 (TF32 off): unbudgeted %.3e, within 16 GB %.3e" % (rel(a[:, :, :1], t)[0], rel(b[:, :, :1], t)[0]))
except Exception as e:
    print("PyTorch fp32 on the first frame: %s" % e)
PY
