#!/usr/bin/env bash
# Pack / verify / install of a full-size engine, against reading and copying the same bytes.
# Usage: benches/scripts/pack.sh WEIGHTS [PRECISION]   (e.g. /tmp/full.safetensors fp16)
set -euo pipefail
weights=$1; precision=${2:-fp16}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exe="$root/target/release/seedvae"
(cd "$root" && cargo build --release --locked -q -p seedvae-cli)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
key=$("$exe" build "$weights" --precision "$precision" --cache "$work/a" --json -q | sed -n 's/^  "key": "\(.*\)",$/\1/p')
t() { local s=$(date +%s%N); "$@" >/dev/null; echo $(( $(date +%s%N) - s )); }
sync
pack=$(t "$exe" pack "$key" -o "$work/e.seedvae" --cache "$work/a")
cat_=$(t cat "$work/e.seedvae")
sha=$(t sha256sum "$work/e.seedvae")
verify=$(t "$exe" verify "$work/e.seedvae")
cp_=$(t cp "$work/e.seedvae" "$work/copy")
install=$(t "$exe" install "$work/e.seedvae" --cache "$work/b")
size=$(stat -c %s "$work/e.seedvae")
awk -v size="$size" -v p="$pack" -v v="$verify" -v c="$cat_" -v s="$sha" -v i="$install" -v k="$cp_" 'BEGIN {
  printf "pack %d bytes\npack    %.2f s\nverify  %.2f s  (cat %.2f s: %.2fx; sha256sum %.2f s: %.2fx)\ninstall %.2f s  (cp %.2f s: %.2fx)\n",
    size, p/1e9, v/1e9, c/1e9, v/c, s/1e9, v/s, i/1e9, k/1e9, i/k }'
