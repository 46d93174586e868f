#!/usr/bin/env bash
# seedvae's CUDA backend on an NVIDIA GPU machine with PyTorch (CUDA 13 wheels: cuBLAS, cuDNN
# under site-packages/nvidia) but no seedvae build: selftest against the tiny fixture's goldens,
# then the full-size decoder (random weights) timed against eager PyTorch fp16
# (../shared/oracle/torch_decoder.py) on the same GPU and latents, with peak device memory from
# the driver (nvidia-smi, sampled every 50 ms) and peak host memory (/usr/bin/time). Used for
# benches/README.md.
#
# Expects, relative to the repository root: .dev/run/{seedvae (a release build), fixtures/
# (../shared/fixtures/vae_tiny), torch_decoder.py}, and the onnxruntime-gpu 1.31.1 wheel split
# into /tmp/w/part.00..04 (`split -b 52M -d WHEEL part.`): the device tool carries at most
# 64 MiB a call, so the pieces travel one call each into /tmp/w (which lasts while the machine
# stays warm), and the last call runs this. Everything it prints is also in $OUT/log.txt.
set -uo pipefail
exec > >(tee -a "$OUT/log.txt") 2>&1
R=$PWD/.dev/run
B=$R/seedvae; F=$R/fixtures
. "$(dirname "${BASH_SOURCE[0]}")/h200_env.sh"
cd /tmp/w
echo "== seedvae loads the CUDA libraries itself (no LD_LIBRARY_PATH)"
[ -n "${SKIP_PRELOAD:-}" ] || SEEDVAE_ORT_LIB=/tmp/w/ortgpu/onnxruntime/capi/libonnxruntime.so.1.31.1 timeout 120 $B decode -m $F/weights.safetensors $F/latent_t1_8x8.safetensors -o /tmp/preload.safetensors --backend ort-cuda --cache /tmp/c0 --force -v 2>&1 | grep -i "preloaded\|error\|backend" | head -12
NV=$(python3 -c "import nvidia,os;print(':'.join(os.path.join(p,d,'lib') for p in nvidia.__path__ for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p,d,'lib'))))")
export LD_LIBRARY_PATH=$NV:${LD_LIBRARY_PATH:-}
export SEEDVAE_ORT_LIB=/tmp/w/ortgpu/onnxruntime/capi/libonnxruntime.so.1.31.1
export SEEDVAE_CACHE=/tmp/c
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
quiet() { grep -v "cudnn_fe_call\|^\s*$" || true; }

# Run a command with its stdout in /tmp/out_TAG.txt; print its wall time, peak device memory
# (nvidia-smi every 50 ms, above the idle level before it) and peak host memory.
peak() {
  local tag=$1; shift
  local base; base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /tmp/mem_$tag.txt &
  local pid=$!
  local t0; t0=$(date +%s%N)
  /usr/bin/time -f "%M" -o /tmp/host_$tag.txt "$@" > /tmp/out_$tag.txt 2> >(quiet >&2)
  local rc=$?
  local t1; t1=$(date +%s%N)
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
  local top; top=$(sort -n /tmp/mem_$tag.txt | tail -1)
  echo "$tag: rc=$rc wall=$(( (t1 - t0) / 1000000 )) ms, device peak $top MiB (idle $base MiB: +$((top - base)) MiB), host peak $(( $(tail -1 /tmp/host_$tag.txt 2>/dev/null || echo 0) / 1000 )) MB"
}

if [ -z "${ONLY_CLIP:-}" ]; then
echo "== selftest (tiny fixture, goldens)"
timeout 300 $B selftest --fixtures $F --json 2>&1 >$OUT/selftest.json | quiet

echo "== PyTorch on the same tiny fixture (torch_decoder.py), vs the same goldens: what fp16 arithmetic gives"
for c in t1_8x8 t2_6x10 t2_8x8 t3_8x8; do
  for dt in fp16 fp32; do
    (cd $R && python3 torch_decoder.py $F/weights.safetensors --latent $F/latent_$c.safetensors --dtype $dt --no-tf32 --out /tmp/tt_${dt}_$c.safetensors > /dev/null 2>&1)
  done
done
python3 - "$F" <<'PY2'
import sys
from safetensors.numpy import load_file
import numpy as np
F = sys.argv[1]
for c in ["t1_8x8", "t2_6x10", "t2_8x8", "t3_8x8"]:
    g = load_file(f"{F}/decoded_{c}.safetensors"); g = g.get("decoded_f64", g["decoded"]).astype(np.float64)
    r = []
    for dt in ["fp16", "fp32"]:
        try:
            v = load_file(f"/tmp/tt_{dt}_{c}.safetensors")["video"].astype(np.float64)
            r.append(f"{dt} {np.linalg.norm(v-g)/np.linalg.norm(g):.3e}")
        except Exception as e: r.append(f"{dt} ERROR {e}")
    print(f"  torch {c} vs golden: " + ", ".join(r))
PY2

fi
echo "== full size: random weights"
$B synth -o /tmp/full.safetensors --quiet --force
python3 - <<'PY'
import torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
save_file({'latent': torch.randn(1, 16, 3, 90, 160, generator=g)}, '/tmp/l720.safetensors')
clip = torch.randn(1, 16, 21, 90, 156, generator=torch.Generator().manual_seed(1))
save_file({'latent': clip}, '/tmp/clip.safetensors')
save_file({'latent': clip[:, :, :, 21:69, 54:102].contiguous()}, '/tmp/crop.safetensors')
PY
DEC="$B decode -m /tmp/full.safetensors --backend ort-cuda --quiet --force --json"
summary() { cp /tmp/out_$1.txt $OUT/$1.json; python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('  seedvae:', j['backend'], j['frames'], 'frames', round(j['seconds'],3), 's', round(1000*j['seconds']/j['frames'],2), 'ms/frame; tiles', j['tiles'], 'tile_px', j['tile_px'], 'calls', j['calls'], 'state', round(j['state_bytes']/1e9,2), 'GB; accumulator', round(j.get('accumulator_bytes',0)/1e9,2), 'GB')" /tmp/out_$1.txt; }

T=0
if [ -z "${ONLY_CLIP:-}" ]; then
echo "== 720p x 9 frames (latent 1x16x3x90x160), streaming, untiled: twice (the first converts the graph)"
for i in 1 2; do
  peak a$i timeout 240 $DEC /tmp/l720.safetensors -o /tmp/s720.safetensors --no-tiling
  summary a$i
done
T=$(python3 -c "import json; print(json.load(open('/tmp/out_a2.txt'))['seconds'])" 2>/dev/null || echo 999)
cd $R && python3 torch_decoder.py /tmp/full.safetensors --latent /tmp/l720.safetensors --dtype fp16 --bench 3 --out /tmp/t720.safetensors 2>&1 | tail -1
python3 - <<'PY'
from safetensors.numpy import load_file
import numpy as np
a = load_file('/tmp/s720.safetensors')['video'].astype(np.float64); b = load_file('/tmp/t720.safetensors')['video'].astype(np.float64)
print('  720p: seedvae cuda fp16 vs torch fp16: rel L2 %.3e' % (np.linalg.norm(a-b)/np.linalg.norm(b)))
PY

echo "== the same with NHWC convolutions (SEEDVAE_CUDA_NHWC=1)"
peak nhwc env SEEDVAE_CUDA_NHWC=1 timeout 200 $DEC /tmp/l720.safetensors -o /tmp/s720n.safetensors --no-tiling
summary nhwc

echo "== ONNX Runtime's profile of one 720p x 5-frame decode (2 calls): where the time goes"
python3 -c "import torch; from safetensors.torch import load_file, save_file; save_file({'latent': load_file('/tmp/l720.safetensors')['latent'][:, :, :2].contiguous()}, '/tmp/l720_2.safetensors')"
SEEDVAE_ORT_PROFILE=/tmp/prof timeout 200 $B decode -m /tmp/full.safetensors /tmp/l720_2.safetensors -o /tmp/p.safetensors --backend ort-cuda --no-tiling --quiet --force 2>&1 | quiet
python3 - <<'PY'
import json, glob, collections
f = sorted(glob.glob('/tmp/prof*.json'))
if not f: print('  no profile written'); raise SystemExit
ev = json.load(open(f[-1]))
by_op, by_node, runs = collections.Counter(), collections.Counter(), []
for e in ev:
    if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
        by_op[e['args'].get('op_name', '?') + ' @' + e['args'].get('provider', '?')] += e['dur']
        by_node[e['name'][:-12]] += e['dur']
    if e.get('cat') == 'Session' and e['name'] == 'model_run':
        runs.append(e['dur'])
print('  model_run (ms):', [round(r / 1000, 1) for r in runs])
print('  kernel time by op (ms):', [(k, round(v / 1000, 1)) for k, v in by_op.most_common(12)])
print('  top nodes (ms):', [(k, round(v / 1000, 1)) for k, v in by_node.most_common(10)])
PY

fi
echo "== the 1248x720 clip, 21 latent frames (81 frames), streaming"
if python3 -c "import sys; sys.exit(0 if $T < 30 else 1)"; then
  peak budget16 env RUST_LOG=info ${CLIP_ENV:-} timeout 300 $DEC /tmp/clip.safetensors -o /tmp/sclip.safetensors --vram-budget 16 --dtype f16
  summary budget16
  [ -n "${ONLY_CLIP:-}" ] || peak untiled timeout 240 $DEC /tmp/clip.safetensors -o /tmp/sclip_whole.safetensors --no-tiling --dtype f16
  [ -n "${ONLY_CLIP:-}" ] || summary untiled
  cd $R && peak torch16 python3 torch_decoder.py /tmp/full.safetensors --latent /tmp/clip.safetensors --dtype fp16 --bench 2 --out /tmp/tclip.safetensors
  cat /tmp/out_torch16.txt
  python3 - <<'PY'
from safetensors.numpy import load_file
import numpy as np
t = load_file('/tmp/tclip.safetensors')['video'].astype(np.float64)
import os
for name in ['sclip_whole', 'sclip']:
    if not os.path.exists(f'/tmp/{name}.safetensors'): continue
    a = load_file(f'/tmp/{name}.safetensors')['video'].astype(np.float64)
    print(f'  {name} vs torch fp16 (whole frame, untiled): rel L2 %.3e' % (np.linalg.norm(a-t)/np.linalg.norm(t)))
PY
  echo "== a 384x384 crop of the clip (latent 21x48x48, untiled within the budget), all 81 frames: seedvae cuda fp16 vs torch fp32"
  peak crop timeout 200 $DEC /tmp/crop.safetensors -o /tmp/scrop.safetensors --vram-budget 16
  summary crop
  cd $R && python3 torch_decoder.py /tmp/full.safetensors --latent /tmp/crop.safetensors --dtype fp32 --no-tf32 --out /tmp/tcrop.safetensors 2>&1 | tail -1
  python3 - <<'PY'
from safetensors.numpy import load_file
import numpy as np
a = load_file('/tmp/scrop.safetensors')['video'].astype(np.float64); b = load_file('/tmp/tcrop.safetensors')['video'].astype(np.float64)
print('  crop: seedvae cuda fp16 vs torch fp32: rel L2 %.3e, shapes %s %s' % (np.linalg.norm(a-b)/np.linalg.norm(b), a.shape, b.shape))
PY
else
  echo "  skipped: 9 frames took $T s; the clip would not finish within the call"
fi
echo "== done"
