#!/usr/bin/env bash
# run.sh: experiment 002, convergence order of the PF-ODE samplers (README.md).
# usage: experiments/002-convergence-order/run.sh [PATH/TO/crate]
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

echo "== C1: order against the exact K=1 flow, Karras grid"
"$CRATE" gmm order "${ORDER[@]}" -o "$out/order" | tee "$out/order.txt"
"$CRATE" gmm order "${ORDER[@]}" -q --json -o "$out/order" >"$out/order.json"

echo "== C1: the same on the exponential grid"
"$CRATE" gmm order "${ORDER[@]}" --schedule exp -q -o "$out/order_exp" | tee "$out/order_exp.txt"

echo "== C6: log-likelihood by change of variables"
"$CRATE" gmm likelihood "${LIKELIHOOD[@]}" -o "$out/likelihood" | tee "$out/likelihood.txt"

cp "$out/order.png" "$here/order.png"
cp "$out/likelihood.png" "$here/likelihood.png"
echo "wrote $out/ and $here/{order,likelihood}.png"
