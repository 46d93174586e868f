#!/bin/bash
# Here (network to PyPI): ComfyUI's Python requirements as cp312 wheels for the H200 (which has
# PyTorch 2.11, numpy and safetensors but no package index), in pieces under 60 MB each:
# .dev/cw1 … .dev/cwN, each carried in its own call (`PIECE=k bash
# benches/scripts/h200_comfyui.sh`), then `bash benches/scripts/h200_comfyui.sh` with .dev/run. Also puts into .dev/run: the seedvae wheel (scripts/wheel.sh builds it) and
# the ComfyUI snapshot. Versions: scripts/requirements-comfyui.txt's, torchvision the one of
# PyTorch 2.11; comfy-kitchen (optional to ComfyUI, 66 MB) left out. Re-runnable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
py=.venv/bin/python
[ -x $py ] || { echo "run scripts/setup.sh first (it makes .venv)"; exit 1; }
keep=(aiohappyeyeballs aiohttp aiosignal alembic annotated-types attrs av blake3 certifi
  charset-normalizer comfy-aimdo comfyui-embedded-docs comfyui_frontend_package einops frozenlist
  idna kornia kornia_rs Mako multidict pillow propcache psutil pydantic pydantic-settings
  pydantic_core python-dotenv PyYAML regex requests scipy sentencepiece simpleeval spandrel
  SQLAlchemy tokenizers torchsde trampoline tqdm transformers huggingface_hub typing-inspection
  urllib3 yarl
  # huggingface_hub's own requirements (transformers imports it when ComfyUI starts)
  annotated-doc anyio click h11 hf-xet httpcore2 httpx2 markdown-it-py mdurl Pygments rich
  shellingham typer truststore packaging)
list=$(mktemp)
for p in "${keep[@]}"; do
  grep -i "^$p==" scripts/requirements-comfyui.txt >> "$list" || { echo "$p: not pinned in scripts/requirements-comfyui.txt"; exit 1; }
done
printf 'torchvision==0.26.0\ngreenlet==3.5.6\n' >> "$list"
w=.dev/comfyui-wheels
rm -rf $w .dev/cw[0-9]* && mkdir -p $w
$py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d $w -r "$list"
rm "$list"
# Pieces of whole wheels under 60 MB each, filled largest first into the first with room.
python3 - $w <<'PY'
import os, shutil, sys
w = sys.argv[1]
pieces = []
for f in sorted(os.listdir(w), key=lambda f: -os.path.getsize(os.path.join(w, f))):
    s = os.path.getsize(os.path.join(w, f))
    p = next((p for p in pieces if p[0] + s <= 60 << 20), None)
    if p is None:
        p = [0, []]
        pieces.append(p)
    p[0] += s
    p[1].append(f)
for k, (_, files) in enumerate(sorted(pieces, key=lambda p: -p[0]), 1):
    os.makedirs(f".dev/cw{k}")
    for f in files:
        shutil.copy(os.path.join(w, f), f".dev/cw{k}/")
print("pieces:", len(pieces))
PY
mkdir -p .dev/run
ls $w > .dev/run/comfyui-wheels.txt
cp ../shared/thirdparty/ComfyUI-seedvr2-270e72f.tar.xz .dev/run/
whl=$(ls -t target/wheels/release/seedvae-*manylinux_2_28*.whl 2>/dev/null | head -1 || true)
[ -n "$whl" ] || { echo "no manylinux_2_28 seedvae wheel in target/wheels/release: run scripts/wheel.sh"; exit 1; }
rm -f .dev/run/seedvae-*.whl && cp "$whl" .dev/run/
du -sh .dev/cw* .dev/run
