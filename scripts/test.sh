#!/usr/bin/env bash
# The README's test command: setup (idempotent), then every test of the workspace in tiers,
# printing each tier's time and the total. Extra arguments go to every `cargo test`.
#   unit   unit tests of every crate (beside the code)
#   cross  cross-crate tests against the PyTorch goldens and Python oracles (tests/)
#   cli    the `seedvae` command driven as a user would (crates/seedvae-cli/tests/cli)
#   doc    documentation examples (the library's full decode)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
start=$(date +%s)
cargo test --workspace --locked --no-run "$@" 2>&1 | grep -v '^  Executable' || true
report=()
tier() {
    local name=$1; shift
    local t0; t0=$(date +%s)
    cargo test --locked "$@"
    report+=("$(printf '%-6s %4d s' "$name" $(( $(date +%s) - t0 )))")
}
tier unit --workspace --lib --bins "$@"
tier cross -p seedvae-tests --tests "$@"
tier cli -p seedvae-cli --test cli "$@"
tier doc --workspace --doc "$@"
echo "test tiers (this machine: $(nproc) cores):"
printf '  %s\n' "${report[@]}"
printf '  %-6s %4d s (build included)\n' total $(( $(date +%s) - start ))
