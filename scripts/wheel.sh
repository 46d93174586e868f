#!/usr/bin/env bash
# The Linux wheel a user installs, built and proven here: `seedvae` as one abi3 wheel for
# CPython >= 3.10, linked through zig against glibc 2.28 (manylinux_2_28: Debian 10+, Ubuntu
# 18.10+, RHEL 8+), as .github/workflows/release.yml builds it on GitHub. Then:
#   - `auditwheel show` must call it manylinux_2_28-compatible and abi3 (nothing newer pulled in);
#   - it is installed into a clean venv with only what a user would add (numpy comes with it;
#     onnxruntime for the CPU path, pytest), and the package tests run there, against the wheel.
# Usage: scripts/wheel.sh [OUT_DIR]  (default target/wheels/release). Needs scripts/setup.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-target/wheels/release}"
bin="$root/.venv/bin"
say() { echo "[wheel] $*" >&2; }

say "building the manylinux_2_28 abi3 wheel (release, linked by zig)"
rm -rf "$out" && mkdir -p "$out"
libclang="$("$bin/python" -c 'import clang, os; print(os.path.join(os.path.dirname(clang.__file__), "native"))')"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
scratch="$(mktemp -d)"
# From a folder outside the tree: zig prints its C++ include folders relative to its working
# folder when they lie under it (.venv's), and the bindings generator, working elsewhere, then
# finds no <cstddef>.
(cd "$scratch" && PATH="$bin:$PATH" LIBCLANG_PATH="$libclang" CARGO_TARGET_DIR="$root/target/manylinux" \
    "$bin/maturin" build --quiet --release --locked --zig --compatibility manylinux_2_28 \
    -m "$root/crates/seedvae-py/Cargo.toml" -i "$bin/python" -o "$out" >&2)
rmdir "$scratch"
wheel="$(ls "$out"/seedvae-*.whl)"
case "$(basename "$wheel")" in
    *-cp310-abi3-manylinux_2_28_x86_64*.whl) ;;
    *) say "unexpected wheel tag: $(basename "$wheel")"; exit 1 ;;
esac
show="$("$bin/auditwheel" show "$wheel")"
echo "$show" >&2
tr -s ' \n' '  ' <<<"$show" | grep -q 'consistent with the following platform tag: "manylinux_2_28_x86_64"' || {
    say "auditwheel does not place the wheel at manylinux_2_28"; exit 1; }

say "installing it into a clean venv and running the package tests there"
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
"$bin/python" -m venv "$venv"
# As a user installs it: the wheel with its `cpu` and `tensorrt` extras (the package tests build
# a TensorRT-RTX engine for sm_120, which needs no GPU), and the tests' own needs.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel[cpu,tensorrt]" \
    "pytest==$(sed -n 's/^pytest==//p' scripts/requirements.txt)" \
    "safetensors==$(sed -n 's/^safetensors==//p' scripts/requirements.txt)"
# From outside the source tree, so that `import seedvae` can only be the installed wheel.
cd "$(dirname "$venv")"
"$venv/bin/python" -c 'import seedvae, sys; assert "site-packages" in seedvae.__file__, seedvae.__file__; print("[wheel] seedvae", seedvae.__version__, "from", seedvae.__file__, file=sys.stderr)'
SEEDVAE_BIN="${SEEDVAE_BIN:-$root/target/debug/seedvae}" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/crates/seedvae-py/tests"
say "ok: $wheel"
