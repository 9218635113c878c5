#!/usr/bin/env bash
# run.sh: experiment 003, "the compression step is a denoising step" (README.md).
# usage: experiments/003-compression-is-denoising/run.sh [PATH/TO/crate]
#   (default: $CRATE, else build/tools/crate of this checkout)
# Writes runs/ (git-ignored) and copies the plots shown in README.md here.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
CRATE=${1:-${CRATE:-$root/build/tools/crate}}
if [ ! -x "$CRATE" ]; then
  echo "run.sh: no crate binary at '$CRATE'; build it first (meson setup build && ninja -C build)" >&2
  exit 1
fi
. "$here/config.sh"
out="$here/runs"
mkdir -p "$out"
"$CRATE" version | tee "$out/version.txt"

echo "== all parts at the defaults: (a) denoising, (b) invertibility, (c) D8, (d) D7"
"$CRATE" gmm crate-layers "${MAIN[@]}" -o "$out/layers" | tee "$out/layers.txt"
"$CRATE" gmm crate-layers "${MAIN[@]}" -q --json -o "$out/layers" >"$out/layers.json"

echo "== (a) variants: one summary line each"
i=0
for v in "${VARIANTS[@]}"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  "$CRATE" gmm crate-layers $v -q -o "$out/variant$i" >"$out/variant$i.txt"
  echo "-- crate gmm crate-layers $v"
  grep -E "descent constant|D4 descent|P6 MSSA|Denoising|last layer|SNR \(exact" "$out/variant$i.txt"
done | tee "$out/variants.txt"

echo "== (b) long round-trip sweep"
"$CRATE" gmm crate-layers "${LONG_ROUNDTRIP[@]}" -q -o "$out/long" | tee "$out/long.txt"

echo "== (d) eight AoT layers"
"$CRATE" gmm crate-layers "${AOT_LONG[@]}" -q -o "$out/aot8" | tee "$out/aot8.txt"

for f in rc snr mse decoder roundtrip cosine aot; do
  cp "$out/layers_$f.png" "$here/$f.png"
done
echo "wrote $out/ and $here/{rc,snr,mse,decoder,roundtrip,cosine,aot}.png"
