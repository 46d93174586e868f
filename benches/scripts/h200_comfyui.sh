#!/bin/bash
# The node pack in ComfyUI on the H200, against ComfyUI's own SeedVR2 VAE in the same ComfyUI,
# over the HTTP API (benches/scripts/h200_comfyui.py): 1248x720, 81 frames, seedvae on `cuda`.
# Prepare here: scripts/wheel.sh, then benches/scripts/h200_comfyui_pack.sh (.dev/cw1..N: ComfyUI's
# requirements as cp312 wheels; .dev/run: the seedvae wheel, the ComfyUI snapshot). On the H200,
# back to back while it stays warm: `PIECE=k bash benches/scripts/h200_comfyui.sh` with
# carry [".dev/cwk"] for each piece, then this script with carry [".dev/run"] (the pieces wait
# in /tmp there). FRAMES=n: a clip of n frames (81). Re-runnable; logs and results under $OUT.
# LOCAL=1: here, on the CPU, small (ComfyUI's test venv .venv/comfyui, SEEDVAE_BIN=target/debug/seedvae,
# COMFY_TAR=../shared/thirdparty/ComfyUI-seedvr2-270e72f.tar.xz; 5 frames of 160x128).
set -eu
cache=/tmp/seedvae-comfyui
mkdir -p $cache/wheels
if [ -n "${PIECE:-}" ]; then
  cp .dev/cw$PIECE/*.whl $cache/wheels/ && ls $cache/wheels | wc -l
  exit 0
fi
OUT=${OUT:-$cache/out}
mkdir -p $OUT
if [ -n "${LOCAL:-}" ]; then
  py=.venv/comfyui/bin/python
  size=(--width 160 --height 128 --frames 5 --backend cpu --cpu)
else
  for d in .dev/cw*; do [ -d "$d" ] && cp $d/*.whl $cache/wheels/; done
  missing=$(cd $cache/wheels && while read -r f; do [ -f "$f" ] || echo "$f"; done < $OLDPWD/.dev/run/comfyui-wheels.txt)
  [ -z "$missing" ] || { echo "missing (carry each .dev/cwK with PIECE=K first):" $missing; exit 1; }
  # PyTorch, numpy and safetensors from the machine's Python (itself a venv: a venv made from
  # it would not see them); the rest from the carried wheels, in a folder on PYTHONPATH.
  if [ ! -d $cache/site ]; then
    python3 -m pip install -q --no-index --no-deps --target $cache/site $cache/wheels/*.whl .dev/run/seedvae-*.whl 2>&1 | tail -3
  fi
  export PYTHONPATH=$cache/site
  py=python3
  size=(--backend cuda --frames ${FRAMES:-81})
  # With ComfyUI's dynamic VRAM (its default on a GPU) its own SeedVR2 encode of 33 frames had
  # not finished after 6 minutes on the H200 (likely on the CPU: its wrapper sends the input to
  # where its first parameter lies, which dynamic loading may leave in host memory): off here
  # unless COMFY_DYNAMIC=1.
  [ -n "${COMFY_DYNAMIC:-}" ] || size+=(--comfy-arg=--disable-dynamic-vram)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $OUT/gpu.txt
fi
comfy=$cache/ComfyUI-seedvr2
if [ ! -d $comfy ]; then
  tar xJf ${COMFY_TAR:-.dev/run/ComfyUI-seedvr2-270e72f.tar.xz} -C $cache
fi
rm -rf $comfy/custom_nodes/seedvae $comfy/custom_nodes/seedvae_bench
cp -r integrations/comfyui $comfy/custom_nodes/seedvae
cp -r benches/comfyui_bench $comfy/custom_nodes/seedvae_bench
ckpt=seedvr2_synth_fp16.safetensors
if [ ! -f $comfy/models/vae/$ckpt ]; then
  # Full-size random weights with the metadata ComfyUI's loader reads (keep the key names).
  ${SEEDVAE_BIN:-.dev/run/seedvae} -q synth --force -o $cache/raw.safetensors
  $py - $cache/raw.safetensors $comfy/models/vae/$ckpt <<'PY'
import sys
from safetensors import safe_open
from safetensors.numpy import save_file
with safe_open(sys.argv[1], "np") as f:
    t = {k: f.get_tensor(k) for k in f.keys()}
    meta = dict(f.metadata() or {})
meta["keep_diffusers_format"] = "true"
save_file(t, sys.argv[2], metadata=meta)
PY
  rm -f $cache/raw.safetensors
fi
$py benches/scripts/h200_comfyui.py --comfy $comfy --checkpoint $ckpt --out $OUT "${size[@]}" 2>&1 | tee $OUT/results.txt
