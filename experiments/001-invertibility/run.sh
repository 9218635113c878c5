#!/usr/bin/env bash
# run.sh: experiment 001, invertibility of the probability-flow ODE (README.md).
# usage: experiments/001-invertibility/run.sh [PATH/TO/crate]
#   (default: $CRATE, else build/tools/crate of this checkout)
# Writes runs/ (git-ignored) and copies the plot shown in README.md here.
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

echo "== C4 sweep: round-trip error vs steps, same and exponential decode grid"
"$CRATE" gmm roundtrip "${SWEEP[@]}" -o "$out/roundtrip" | tee "$out/roundtrip.txt"
"$CRATE" gmm roundtrip "${SWEEP[@]}" -q --json -o "$out/roundtrip" >"$out/roundtrip.json"

echo "== C4 absolute gate: Heun, 80 steps, same grid"
"$CRATE" gmm roundtrip "${GATE[@]}" -q --json -o "$out/heun80" | tee "$out/heun80.json"

echo "== C5: implicit midpoint"
"$CRATE" gmm roundtrip "${MIDPOINT[@]}" -q -o "$out/midpoint" | tee "$out/midpoint.txt"

cp "$out/roundtrip.png" "$here/roundtrip.png"
echo "wrote $out/ and $here/roundtrip.png"
