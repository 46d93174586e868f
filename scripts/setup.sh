#!/usr/bin/env bash
# Idempotent project-local setup. Installs what seedvae's builds and tests need and nothing
# outside the repository except Debian packages:
#   - libclang (Debian) so the `trtx` crate can generate its TensorRT-RTX bindings;
#   - .venv/ (git-ignored) with the pinned Python packages of scripts/requirements.txt:
#     onnxruntime (libonnxruntime for the CPU backend), tensorrt-rtx-cu13 (TensorRT-RTX libraries),
#     and the test oracles (onnx, gguf, numpy, safetensors).
# seedvae finds the libraries in .venv by itself; .venv/seedvae-env.sh exports their paths for
# other tools. Re-running is fast: each step checks before it acts.
#
# `scripts/setup.sh --python` also builds the `seedvae` Python package (crates/seedvae-py, with
# maturin, the dev profile that the tests share) and installs it into .venv;
# `scripts/setup.sh --comfyui` (implies --python) makes the test venv .venv/comfyui: the shipped
# ComfyUI's requirements (scripts/requirements-comfyui.txt, torch included: ~6.6 GB, minutes the
# first time) plus the package, for the Python, ComfyUI and colour-oracle tests.
#
# `scripts/setup.sh --gpu` also installs, opt-in, ONNX Runtime's CUDA provider and the CUDA 13 /
# cuDNN 9 libraries it loads (scripts/requirements-gpu.txt, ~2 GB) into .venv/gpu, for
# `--backend cuda` on any NVIDIA GPU with an r580+ driver. seedvae then prefers that ONNX Runtime
# (it runs the CPU backend too) and loads the CUDA libraries from it.
set -euo pipefail
gpu=0 python=0 comfyui=0
for arg in "$@"; do
    case "$arg" in
        --gpu) gpu=1 ;;
        --python) python=1 ;;
        --comfyui) python=1 comfyui=1 ;;
        *) echo "usage: scripts/setup.sh [--gpu] [--python] [--comfyui]" >&2; exit 2 ;;
    esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[setup] %s\n' "$*" >&2; }

# 1. Debian packages
need=()
for p in libclang1-14 libclang-common-14-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
    if ! command -v apt-get >/dev/null; then
        say "missing ${need[*]} and no apt-get: install libclang (14) by hand"; exit 1
    fi
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    say "installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. Python venv with pinned packages (re-installed only when requirements.txt changes)
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$py" -m venv .venv
fi
# Is DIR's stamp that of requirements file REQ? Else say why, and after the install `stamp`.
fresh() { [ "$(cat "$1/.seedvae-requirements" 2>/dev/null || true)" = "$(sha256sum "$2" | cut -d' ' -f1)" ]; }
stamp() { sha256sum "$2" | cut -d' ' -f1 > "$1/.seedvae-requirements"; }
pipq() { "$1" -m pip install -q --disable-pip-version-check "${@:2}"; }
if ! fresh .venv scripts/requirements.txt; then
    say "installing Python packages (scripts/requirements.txt)"
    pipq .venv/bin/python -r scripts/requirements.txt
    stamp .venv scripts/requirements.txt
fi

# 2b. Opt-in: the CUDA provider, apart from the CPU package (same module name)
if ((gpu)) && ! fresh .venv/gpu scripts/requirements-gpu.txt; then
    say "installing ONNX Runtime's CUDA provider and CUDA libraries into .venv/gpu (scripts/requirements-gpu.txt)"
    rm -rf .venv/gpu
    pipq .venv/bin/python --no-deps --target .venv/gpu -r scripts/requirements-gpu.txt
    stamp .venv/gpu scripts/requirements-gpu.txt
fi

# 3. Library paths, for tools other than seedvae (which searches .venv itself)
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ort="$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)"
if [ -d .venv/gpu ]; then
    ort="$(ls "$root"/.venv/gpu/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)"
fi
trt="$site/tensorrt_rtx_libs"
[ -f "$ort" ] || { say "libonnxruntime not found under $site/onnxruntime/capi"; exit 1; }
[ -f "$trt/libtensorrt_rtx.so.1" ] || { say "libtensorrt_rtx.so.1 not found under $trt"; exit 1; }
cat > .venv/seedvae-env.sh <<ENV
export ORT_DYLIB_PATH="$ort"
export SEEDVAE_ORT_LIB="$ort"
export SEEDVAE_TENSORRT_DIR="$trt"
ENV

# 4. Opt-in: the test venv with ComfyUI's requirements (re-installed only when they change)
if ((comfyui)) && ! fresh .venv/comfyui scripts/requirements-comfyui.txt; then
    say "installing the test venv .venv/comfyui (scripts/requirements-comfyui.txt: ComfyUI's requirements, torch included; minutes)"
    rm -rf .venv/comfyui
    "$py" -m venv .venv/comfyui
    pipq .venv/comfyui/bin/python -r scripts/requirements-comfyui.txt
    stamp .venv/comfyui scripts/requirements-comfyui.txt
fi

# 5. Opt-in: the Python package, built from this checkout and installed into the venvs
if ((python)); then
    say "building the seedvae Python package (maturin)"
    rm -rf target/wheels/seedvae-*.whl
    .venv/bin/maturin build --quiet --profile dev -m crates/seedvae-py/Cargo.toml \
        -i .venv/bin/python -o target/wheels >&2
    wheel="$(ls target/wheels/seedvae-*.whl)"
    for v in .venv .venv/comfyui; do
        [ -x "$v/bin/python" ] || continue
        pipq "$v/bin/python" --force-reinstall --no-deps "$wheel"
    done
    say "seedvae Python package installed: $wheel"
fi
say "ready (ORT: $ort; TensorRT-RTX: $trt)"
