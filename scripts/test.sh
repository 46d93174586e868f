#!/usr/bin/env bash
# The README's test command: setup (idempotent), then every test of the workspace in tiers,
# printing each tier's time, each test binary's time, and the total. Extra arguments go to
# every `cargo test`. Every tier selects with --workspace so that features resolve the same way
# and nothing is compiled twice.
#   build        compiling every test target
#   unit         unit tests of every crate (beside the code)
#   integration  tests/ (cross-crate, against the PyTorch goldens and Python oracles) and
#                crates/seedvae-cli/tests/cli (the `seedvae` command driven as a user would)
#   doc          documentation examples (the library's full decode of the tiny fixture)
#   python       the Python package (crates/seedvae-py/tests) and the ComfyUI node pack inside
#                the shipped ComfyUI, headless (tests/comfyui), with pytest in the
#                test venv .venv/comfyui
# Before the tiers, the numz node's own colour functions (torch, in the test venv) write the
# references that the colour unit test compares with (SEEDVAE_COLOR_REF), and the venv's NVRTC
# (torch's NVIDIA wheels) compiles the CUDA kernels (SEEDVAE_TEST_NVRTC).
#
# `scripts/test.sh --quick` (a developer's inner loop; CI runs everything): the Rust tiers only,
# without the test venv — no colour references, no Python/ComfyUI tier, and the tests that need
# torch say that they did not run (SEEDVAE_NO_TORCH=1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=0
if [ "${1:-}" = "--quick" ]; then
    quick=1
    shift
fi
start=$(date +%s)
log="$(mktemp)"
ref="$(mktemp -d)"
trap 'rm -rf "$log" "$ref"' EXIT
if ((quick)); then
    scripts/setup.sh
    export SEEDVAE_NO_TORCH=1
else
    scripts/setup.sh --comfyui
    .venv/comfyui/bin/python tests/oracle/numz_color_reference.py "$ref" >/dev/null
    export SEEDVAE_COLOR_REF="$ref"
    # NVRTC from the test venv's torch wheels: the CUDA kernels compile for sm_90 and sm_120.
    site=$(.venv/comfyui/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    if [ -d "$site/nvidia" ]; then export SEEDVAE_TEST_NVRTC="$site"; fi
fi
report=("$(printf '%-12s %4d s' setup $(( $(date +%s) - start )))")
tier() {
    local name=$1; shift
    local t0; t0=$(date +%s)
    cargo test --workspace --locked "$@" 2>&1 | tee -a "$log"
    report+=("$(printf '%-12s %4d s' "$name" $(( $(date +%s) - t0 )))")
}
tier build --no-run "$@"
tier unit --lib --bins "$@"
tier integration --test '*' "$@"
tier doc --doc "$@"
if ((!quick)); then
    t0=$(date +%s)
    SEEDVAE_BIN="$root/target/debug/seedvae" .venv/comfyui/bin/python -m pytest -q -p no:cacheprovider \
        crates/seedvae-py/tests tests/comfyui 2>&1 | tee -a "$log"
    report+=("$(printf '%-12s %4d s' python $(( $(date +%s) - t0 )))")
fi
echo "test tiers (this machine: $(nproc) cores):"
printf '  %s\n' "${report[@]}"
printf '  %-12s %4d s\n' total $(( $(date +%s) - start ))
echo "integration test binaries:"
awk '/Running tests\//{name=$2; sub(/^tests\//,"",name)} /^test result:/{if(name!=""){sub(/s$/,"",$NF); printf "  %-24s %6.1f s\n", name, $NF; name=""}}' "$log"
