#!/usr/bin/env bash
# Fuzz the weight parsers and the latent/video readers (not part of CI):
#   scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]  (safetensors gguf media)
# Seeds the corpora with the shared fixtures and small synthesized files. Installs cargo-fuzz
# if absent. cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain
# provide them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${1:-60}"
targets=("${@:2}")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors gguf media)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
shared="${SEEDVAE_SHARED:-$root/../shared}"
mkdir -p fuzz/corpus/safetensors fuzz/corpus/gguf fuzz/corpus/media
cp "$shared"/fixtures/vae_tiny/latent_*.safetensors fuzz/corpus/safetensors/ 2>/dev/null || true
cp "$shared"/fixtures/vae_tiny_gguf/*.gguf fuzz/corpus/gguf/ 2>/dev/null || true
# media seeds: the selector byte, then a small file of each kind.
seed() { { printf "\\x$1"; cat "$2"; } > "fuzz/corpus/media/$(basename "$2").$1"; }
seed 01 "$shared/fixtures/vae_tiny/latent_t1_8x8.safetensors"
.venv/bin/python - <<'PY' 2>/dev/null || true
import numpy as np, io, struct, zlib
buf = io.BytesIO(); np.save(buf, np.zeros((1, 16, 1, 2, 2), np.float32))
open("fuzz/corpus/media/latent.npy", "wb").write(b"\x00" + buf.getvalue())
y4m = b"YUV4MPEG2 W8 H8 F24:1 C444 XCOLORRANGE=FULL\n" + (b"FRAME\n" + bytes(192)) * 2
open("fuzz/corpus/media/clip.y4m", "wb").write(b"\x02" + y4m)
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(bytes(8 * 25))) + chunk(b"IEND", b"")
open("fuzz/corpus/media/frame.png", "wb").write(b"\x03" + png)
PY
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -max_len=1048576
done
echo "fuzzing clean: no crash in ${secs}s per target"
