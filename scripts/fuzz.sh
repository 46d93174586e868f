#!/usr/bin/env bash
# Fuzz both weight parsers (not part of CI): scripts/fuzz.sh [SECONDS per target, default 60]
# Seeds the corpora with the shared fixtures and small synthesized files. Installs cargo-fuzz
# if absent. cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain
# provide them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
shared="${SEEDVAE_SHARED:-$root/../shared}"
mkdir -p fuzz/corpus/safetensors fuzz/corpus/gguf
cp "$shared"/fixtures/vae_tiny/latent_*.safetensors fuzz/corpus/safetensors/ 2>/dev/null || true
cp "$shared"/fixtures/vae_tiny_gguf/*.gguf fuzz/corpus/gguf/ 2>/dev/null || true
export RUSTC_BOOTSTRAP=1
for t in safetensors gguf; do
    echo "== fuzzing $t for ${secs}s"
    cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -max_len=1048576
done
echo "fuzzing clean: no crash in ${secs}s per target"
