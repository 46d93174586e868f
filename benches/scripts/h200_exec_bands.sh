#!/bin/bash
# seedvae's CUDA executor in bands on the H200: a 1248x720 decode and encode through the CLI
# (`--backend cuda --tile-size N`, N the band height) against the same run without tiling
# (bands must not change the result beyond rounding: the GroupNorm statistics are the whole
# frame's), `exec time` in bands with the memory plan beside the pool's peak, and 9 frames
# decoded whole and in bands each held to PyTorch fp32 (TF32 off) on the same latent.
# Carry .dev/run = {seedvae, exec, torch_decoder.py}; re-runnable from scratch; logs under $OUT.
# ONLY_ACCURACY=1 runs the last part alone.
set -u
. benches/scripts/h200_exec_env.sh
exec_weights
python3 - <<'PY'
import numpy as np
from safetensors.numpy import save_file
r = np.random.default_rng(5)
save_file({"latent": r.standard_normal((1, 16, 2, 90, 156)).astype(np.float32)}, "/tmp/lb.safetensors")
save_file({"video": np.clip(0.5 * r.standard_normal((1, 3, 5, 720, 1248)), -1, 1).astype(np.float32)}, "/tmp/vb.safetensors")
PY
dec() { timeout 200 $B decode -m $W /tmp/lb.safetensors -o /tmp/$1.safetensors --backend cuda --force --json "${@:2}" > $OUT/$1.json 2> $OUT/$1.err; echo "$1 exit $?" | tee -a $OUT/bands.txt; }
enc() { timeout 200 $B encode -m $W /tmp/vb.safetensors -o /tmp/$1.safetensors --backend cuda --force --json "${@:2}" > $OUT/$1.json 2> $OUT/$1.err; echo "$1 exit $?" | tee -a $OUT/bands.txt; }
if [ -z "${ONLY_ACCURACY:-}" ]; then
dec d_whole --no-tiling
dec d_b256 --tile-size 256
dec d_b64 --tile-size 64
enc e_whole --no-tiling
enc e_b200 --tile-size 200
python3 - <<'PY' | tee -a $OUT/bands.txt
import numpy as np
from safetensors.numpy import load_file
def get(n):
    return next(iter(load_file("/tmp/%s.safetensors" % n).values())).astype(np.float64)
for whole, bands in [("d_whole", "d_b256"), ("d_whole", "d_b64"), ("e_whole", "e_b200")]:
    try:
        a, b = get(whole), get(bands)
        print("%s vs %s %s: rel L2 %.3e, max abs %.3e" % (bands, whole, a.shape,
              np.linalg.norm(a - b) / np.linalg.norm(a), np.abs(a - b).max()))
    except Exception as e:
        print("%s vs %s: %s" % (bands, whole, e))
PY
run() { timeout 200 .dev/run/exec "$@" 2>&1 | grep -v INFO | tee -a $OUT/bands.txt; }
run time $W 720 1248 3 1 180
run time $W 1080 1920 3 1 270
fi
python3 - <<'PY'
import numpy as np
from safetensors.numpy import save_file
save_file({"latent": np.random.default_rng(6).standard_normal((1, 16, 3, 90, 156)).astype(np.float32)}, "/tmp/l3b.safetensors")
PY
for b in whole 64; do
  t=--no-tiling; [ $b = whole ] || t="--tile-size $b"
  timeout 200 $B decode -m $W /tmp/l3b.safetensors -o /tmp/a_$b.safetensors --backend cuda --force --json $t > $OUT/a_$b.json 2> $OUT/a_$b.err
done
(cd .dev/run && timeout 200 python3 torch_decoder.py $W --latent /tmp/l3b.safetensors --dtype fp32 --no-tf32 --out /tmp/ref3b.safetensors > $OUT/torch_ref.txt 2>&1)
python3 - <<'PY' | tee -a $OUT/bands.txt
import numpy as np
from safetensors.numpy import load_file
def get(n):
    return next(iter(load_file("/tmp/%s.safetensors" % n).values())).astype(np.float64)
ref = get("ref3b")
for n in ["a_whole", "a_64"]:
    a = get(n)
    print("%s (fp16) vs PyTorch fp32 (TF32 off) %s: rel L2 %.3e, max abs %.3e"
          % (n, a.shape, np.linalg.norm(a - ref) / np.linalg.norm(ref), np.abs(a - ref).max()))
a, b = get("a_whole"), get("a_64")
print("a_64 vs a_whole: rel L2 %.3e, max abs %.3e" % (np.linalg.norm(a - b) / np.linalg.norm(a), np.abs(a - b).max()))
PY
