#!/usr/bin/env bash
# seedvae's CUDA backend on an NVIDIA GPU machine with PyTorch (CUDA 13 wheels: cuBLAS, cuDNN,
# cuFFT under site-packages/nvidia) but no seedvae build: the tiny goldens on cuda and cpu,
# auto's choice, and a full-size 720p decode timed against eager PyTorch fp16
# (../shared/oracle/torch_decoder.py) on the same GPU and latent. Used for benches/README.md.
#
# Expects, relative to the repository root: .dev/run/{seedvae (a release build), fixtures/
# (../shared/fixtures/vae_tiny), torch_decoder.py, this script as gpu.sh}, and the
# onnxruntime-gpu 1.31.1 wheel split into /tmp/w/part.00..04 (`split -b 52M -d WHEEL part.`):
# the device tool carries at most 64 MiB a call, so the pieces travel one call each into /tmp/w
# (which lasts while the machine stays warm), and the last call runs this. $OUT collects outputs.
set -uo pipefail
R=$PWD/.dev/run
B=$R/seedvae; F=$R/fixtures
mkdir -p /tmp/w && cd /tmp/w
cat part.0* > ort.whl && python3 -m zipfile -e ort.whl ortgpu >/dev/null && rm ort.whl part.0*
NV=$(python3 -c "import nvidia,os;print(':'.join(os.path.join(p,d,'lib') for p in nvidia.__path__ for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p,d,'lib'))))")
export LD_LIBRARY_PATH=$NV:${LD_LIBRARY_PATH:-}
export SEEDVAE_ORT_LIB=/tmp/w/ortgpu/onnxruntime/capi/libonnxruntime.so.1.31.1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
echo "== tiny goldens: cuda (fp16 graph) and cpu (fp32 graph) through the same onnxruntime-gpu library"
for c in t1_8x8 t2_6x10 t2_8x8 t3_8x8; do
  for be in cuda cpu; do
    $B decode -m $F/weights.safetensors $F/latent_$c.safetensors -o $OUT/${be}_$c.safetensors --backend $be --cache /tmp/c --quiet --json > $OUT/${be}_$c.json || echo "FAILED $be $c"
  done
done
$B encode -m $F/weights.safetensors $F/video_t9_32x48.safetensors -o $OUT/cuda_enc.safetensors --backend cuda --cache /tmp/c --quiet || echo "FAILED encode cuda"
$B decode -m $F/weights.safetensors $F/latent_t2_8x8.safetensors -o $OUT/auto_t2.safetensors --cache /tmp/c --json > $OUT/auto.json 2> $OUT/auto.err; cat $OUT/auto.err
python3 - "$F" "$OUT" <<'PY'
import sys, json
from safetensors.numpy import load_file
import numpy as np
F, O = sys.argv[1], sys.argv[2]
def rel(a, b): return float(np.linalg.norm((a - b).astype(np.float64)) / np.linalg.norm(b.astype(np.float64)))
for c in ["t1_8x8", "t2_6x10", "t2_8x8", "t3_8x8"]:
    g = load_file(f"{F}/decoded_{c}.safetensors"); g = g.get("decoded_f64", g.get("decoded"))
    for be in ["cuda", "cpu"]:
        try:
            v = load_file(f"{O}/{be}_{c}.safetensors")["video"]
            j = json.load(open(f"{O}/{be}_{c}.json"))
            print(f"{c} {be:4} backend={j['backend']} rel_l2_vs_golden={rel(v, g):.3e} max_abs={float(np.abs(v-g).max()):.3e}")
        except Exception as e: print(c, be, "ERROR", e)
try:
    g = load_file(f"{F}/encoded_t9_32x48.safetensors"); k = [k for k in g if "mean" in k or "latent" in k or "encoded" in k]
    v = load_file(f"{O}/cuda_enc.safetensors")["latent"]
    for key in g: print("encode cuda vs golden", key, f"rel_l2={rel(v, g[key]):.3e}" if g[key].shape == v.shape else f"shape {g[key].shape} vs {v.shape}")
except Exception as e: print("encode ERROR", e)
print("auto:", json.load(open(f"{O}/auto.json"))["backend"])
PY
echo "== full size: random weights, 720p x 9 frames (latent 1x16x3x90x160), streaming, untiled"
$B synth -o /tmp/full.safetensors --quiet --force
python3 -c "import torch; from safetensors.torch import save_file; torch.manual_seed(0); save_file({'latent': torch.randn(1,16,3,90,160)}, '/tmp/l720.safetensors')"
for i in 1 2 3; do
  /usr/bin/time -f "seedvae cuda run $i: %e s wall, %M KB peak host" $B decode -m /tmp/full.safetensors /tmp/l720.safetensors -o /tmp/s720.safetensors --backend cuda --no-tiling --cache /tmp/c --quiet --force --json > $OUT/full_$i.json
  python3 -c "import json; j=json.load(open('$OUT/full_$i.json')); print('decode', j['seconds'], 's', j['frames'], 'frames', 'ms/frame', 1000*j['seconds']/j['frames'], j['backend'])"
done
cd $R && python3 torch_decoder.py /tmp/full.safetensors --latent /tmp/l720.safetensors --dtype fp16 --device cuda --bench 3 --out /tmp/t720.safetensors 2>&1 | tail -5
python3 - <<'PY'
from safetensors.numpy import load_file
import numpy as np
a = load_file('/tmp/s720.safetensors')['video'].astype(np.float64); b = load_file('/tmp/t720.safetensors')['video'].astype(np.float64)
print('full 720p: seedvae cuda fp16 vs torch fp16: rel_l2', np.linalg.norm(a-b)/np.linalg.norm(b), 'shapes', a.shape, b.shape)
PY
