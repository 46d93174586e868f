#!/usr/bin/env bash
# The README's main command: setup (idempotent), then `seedvae demo` on its built-in default.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo run --release --locked -q -p seedvae-cli -- demo "$@"
