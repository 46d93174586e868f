#!/usr/bin/env bash
# The README's test command: setup (idempotent), then every test of the workspace.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo test --workspace --locked "$@"
