#!/usr/bin/env bash
# test_cli.sh: end-to-end checks of the crate command-line program (STYLE.md
# §5 exit codes: 0 success, 1 run-time failure, 2 usage error).
#
# usage: tests/test_cli.sh PATH/TO/crate
# Prints one line per check with what it measured; exits non-zero if any
# check fails; the last line is "N passed, M failed".
set -u

CRATE=${1:?usage: test_cli.sh PATH/TO/crate}
if [ ! -x "$CRATE" ]; then
  echo "test_cli.sh: '$CRATE' is not an executable" >&2
  exit 2
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/crate_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PASS=0
FAIL=0

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

# run NAME: runs the remaining arguments, keeping stdout, stderr and status.
run() {
  "$@" >"$TMP/out" 2>"$TMP/err"
  RC=$?
}

# expect_rc CODE DESCRIPTION -- COMMAND...
expect_rc() {
  local want=$1 what=$2
  shift 3
  run "$@"
  if [ "$RC" -eq "$want" ]; then
    ok "$what: exit $RC (want $want)"
  else
    bad "$what: exit $RC (want $want); stderr: $(head -c 300 "$TMP/err")"
  fi
}

# expect_usage DESCRIPTION -- COMMAND...: exit 2 and a "Try '...'" line on stderr.
expect_usage() {
  local what=$1
  shift 2
  run "$@"
  local first try
  first=$(head -n 1 "$TMP/err")
  try=$(grep -c "^Try '" "$TMP/err")
  if [ "$RC" -eq 2 ] && [ "$try" -ge 1 ]; then
    ok "$what: exit $RC, '$first'"
  else
    bad "$what: exit $RC (want 2), Try lines $try (want 1); stderr: $(head -c 300 "$TMP/err")"
  fi
}

# ---- help and version ------------------------------------------------------
expect_rc 0 "crate --help" -- "$CRATE" --help
grep -q "gmm" "$TMP/out" && ok "crate --help lists 'gmm' on stdout" ||
  bad "crate --help does not list 'gmm' on stdout"
expect_rc 0 "crate help" -- "$CRATE" help
expect_rc 0 "crate version" -- "$CRATE" version
if grep -Eq '^crate [0-9]+\.[0-9]+\.[0-9]+' "$TMP/out"; then
  ok "crate version prints '$(head -n 1 "$TMP/out")'"
else
  bad "crate version prints '$(head -n 1 "$TMP/out")' (want 'crate X.Y.Z')"
fi
expect_rc 0 "crate gmm --help" -- "$CRATE" gmm --help
grep -q "denoise" "$TMP/out" && ok "crate gmm --help lists 'denoise'" ||
  bad "crate gmm --help does not list 'denoise'"
expect_rc 0 "crate gmm denoise --help" -- "$CRATE" gmm denoise --help
missing=""
for flag in --d --K --p --samples --sigma-min --sigma-max --points --seed --json --out --quiet --help \
  "\[4000\]" "\[12\]" "\[0.02\]" "\[10\]" "\[gmm_denoise\]"; do
  grep -q -- "$flag" "$TMP/out" || missing="$missing $flag"
done
[ -z "$missing" ] && ok "crate gmm denoise --help shows every flag and default" ||
  bad "crate gmm denoise --help lacks:$missing"
expect_rc 0 "crate gmm denoise -h" -- "$CRATE" gmm denoise -h

# ---- usage errors ------------------------------------------------------------
run "$CRATE"
if [ "$RC" -eq 2 ] && grep -q "usage" "$TMP/err"; then
  ok "no arguments: exit 2 with usage on stderr"
else
  bad "no arguments: exit $RC (want 2 with usage on stderr)"
fi
expect_usage "unknown command" -- "$CRATE" frobnicate
expect_usage "unknown gmm subcommand" -- "$CRATE" gmm frobnicate
expect_usage "unknown flag" -- "$CRATE" gmm denoise --frobnicate
expect_usage "missing value" -- "$CRATE" gmm denoise --samples
expect_usage "--samples 0" -- "$CRATE" gmm denoise --samples 0
expect_usage "--samples abc" -- "$CRATE" gmm denoise --samples abc
expect_usage "--sigma-min 5 --sigma-max 1" -- "$CRATE" gmm denoise --sigma-min 5 --sigma-max 1
expect_usage "--sigma-min -1" -- "$CRATE" gmm denoise --sigma-min -1
expect_usage "--sigma-min 0" -- "$CRATE" gmm denoise --sigma-min 0
expect_usage "--p 9 with --d 6" -- "$CRATE" gmm denoise --p 9 --d 6
expect_usage "--points 1" -- "$CRATE" gmm denoise --points 1
expect_usage "stray argument" -- "$CRATE" gmm denoise extra
if grep -q "^crate gmm denoise: " "$TMP/err"; then
  ok "usage errors name the command ('$(head -n 1 "$TMP/err")')"
else
  bad "usage error does not start with 'crate gmm denoise: '"
fi

# ---- a real run ----------------------------------------------------------------
mkdir -p "$TMP/o"
expect_rc 0 "crate gmm denoise --samples 500 -o DIR/x" -- "$CRATE" gmm denoise --samples 500 -o "$TMP/o/x"
rows=$(grep -cE '^ +[0-9.e+-]+ +[0-9.]+e[-+][0-9]+' "$TMP/out")
if [ "$rows" -eq 12 ] && grep -q "Bayes" "$TMP/out"; then
  ok "table: $rows sigma rows (want 12) with a Bayes column"
else
  bad "table: $rows sigma rows (want 12); stdout: $(head -c 400 "$TMP/out")"
fi
sig=$(head -c 8 "$TMP/o/x.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')
if [ "$sig" = "89504e470d0a1a0a" ]; then
  ok "x.png starts with the PNG signature ($sig), $(wc -c <"$TMP/o/x.png") bytes"
else
  bad "x.png signature '$sig' (want 89504e470d0a1a0a)"
fi
if [ -f "$TMP/o/x.csv" ]; then
  lines=$(wc -l <"$TMP/o/x.csv")
  header=$(head -n 1 "$TMP/o/x.csv")
  case "$header" in
  sigma,mse_bayes,*) [ "$lines" -eq 13 ] && ok "x.csv: header + $((lines - 1)) rows (want 12)" ||
    bad "x.csv: $lines lines (want 13)" ;;
  *) bad "x.csv header '$header'" ;;
  esac
else
  bad "x.csv not written"
fi

# determinism: the same run gives the same CSV
cp "$TMP/o/x.csv" "$TMP/o/first.csv"
run "$CRATE" gmm denoise --samples 500 -q -o "$TMP/o/x"
if cmp -s "$TMP/o/x.csv" "$TMP/o/first.csv"; then
  ok "second run: identical CSV (bit-reproducible)"
else
  bad "second run: CSV differs"
fi
if [ ! -s "$TMP/err" ]; then ok "-q: nothing on stderr"; else bad "-q: stderr has $(wc -l <"$TMP/err") lines"; fi

# ---- JSON --------------------------------------------------------------------------
expect_rc 0 "crate gmm denoise --json" -- "$CRATE" gmm denoise --json --samples 300 --points 5 -q -o "$TMP/o/j"
if command -v python3 >/dev/null 2>&1; then
  if msg=$(python3 -c '
import json, sys
o = json.load(sys.stdin)
rows = o["rows"]
assert len(rows) == 5, len(rows)
assert o["fixture"]["d"] == 6 and o["fixture"]["K"] == 3, o["fixture"]
assert all("bayes" in r["mse"] and r["sigma"] > 0 for r in rows)
print("%d rows, sigma %.3g..%.3g, Bayes MSE %.3g..%.3g" % (len(rows), rows[0]["sigma"],
      rows[-1]["sigma"], rows[0]["mse"]["bayes"], rows[-1]["mse"]["bayes"]))
' <"$TMP/out" 2>&1); then
    ok "--json parses: $msg"
  else
    bad "--json does not parse: $msg"
  fi
else
  bad "python3 not found; cannot check --json"
fi

# ---- run-time failures ------------------------------------------------------------------
run "$CRATE" gmm denoise --samples 100 -q -o /nonexistent-dir/x
if [ "$RC" -eq 1 ] && grep -q "^crate gmm denoise: cannot write /nonexistent-dir/x" "$TMP/err"; then
  ok "unwritable output: exit 1, '$(head -n 1 "$TMP/err")'"
else
  bad "unwritable output: exit $RC (want 1); stderr: $(head -c 300 "$TMP/err")"
fi

mkdir -p "$TMP/o/y.png"
run "$CRATE" gmm denoise --samples 100 -q -o "$TMP/o/y"
if [ "$RC" -eq 1 ] && grep -q "cannot write .*y.png" "$TMP/err"; then
  ok "PNG path is a directory: exit 1, '$(head -n 1 "$TMP/err" | sed "s|$TMP|TMP|g")'"
else
  bad "PNG path is a directory: exit $RC (want 1); stderr: $(head -c 300 "$TMP/err")"
fi

# ---- crate train ---------------------------------------------------------------------
# Usage errors exit 2, a missing data path exits 1, a 20-step run on 256
# images writes a checkpoint, and a run stopped at step 20 and resumed ends
# with the same bytes as a straight run.  Runs are tiny: --limit 256
# --batch 32 (8 steps per epoch), --eval-limit 64, one thread.
expect_rc 0 "crate train --help" -- "$CRATE" train --help
missing=""
for flag in --preset --data --epochs --batch --lr --wd --warmup --mask-ratio --clip --seed \
  --threads --eval-every --ckpt-every --out --resume --max-steps --limit \
  "\[fmnist-tiny\]" "\[20\]" "\[256\]" "\[0.05\]" "\[0.75\]" "\[2e-3"; do
  grep -q -- "$flag" "$TMP/out" || missing="$missing $flag"
done
[ -z "$missing" ] && ok "crate train --help shows every flag and default" ||
  bad "crate train --help lacks:$missing"
expect_usage "train: unknown flag" -- "$CRATE" train --frobnicate
expect_usage "train: missing value" -- "$CRATE" train --epochs
expect_usage "train: --epochs abc" -- "$CRATE" train --epochs abc
expect_usage "train: --batch 0" -- "$CRATE" train --batch 0
expect_usage "train: --mask-ratio 1" -- "$CRATE" train --mask-ratio 1
expect_usage "train: --mask-ratio 0" -- "$CRATE" train --mask-ratio 0
expect_usage "train: --lr -1" -- "$CRATE" train --lr -1
expect_usage "train: --preset nope" -- "$CRATE" train --preset nope
expect_usage "train: stray argument" -- "$CRATE" train extra
run "$CRATE" train --data "$TMP/no-such-dir" -o "$TMP/t0"
if [ "$RC" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "no-such-dir" "$TMP/err"; then
  ok "train: missing --data: exit 1, '$(sed "s|$TMP|TMP|g" "$TMP/err")'"
else
  bad "train: missing --data: exit $RC (want 1, one line); stderr: $(head -c 300 "$TMP/err")"
fi
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  TR=("$CRATE" train --limit 256 --batch 32 --epochs 3 --eval-limit 64 -t 1 -q)
  expect_rc 0 "train: 20 steps" -- "${TR[@]}" --max-steps 20 -o "$TMP/t1"
  steps=$(grep -c '"type":"step"' "$TMP/t1/train.jsonl" 2>/dev/null)
  if [ -s "$TMP/t1/checkpoint.safetensors" ] && [ -s "$TMP/t1/model.safetensors" ] &&
    [ "$steps" -eq 20 ] && grep -q '"type":"eval"' "$TMP/t1/train.jsonl"; then
    ok "train: checkpoint $(wc -c <"$TMP/t1/checkpoint.safetensors") bytes, model $(wc -c <"$TMP/t1/model.safetensors") bytes, $steps step records + eval"
  else
    bad "train: outputs missing (steps logged: $steps); $(ls "$TMP/t1" 2>&1 | tr '\n' ' ')"
  fi
  run "${TR[@]}" --max-steps 1 -o "$TMP/t1"
  [ "$RC" -eq 1 ] && grep -q "already exists" "$TMP/err" &&
    ok "train: refuses to overwrite a checkpoint without --resume (exit 1)" ||
    bad "train: overwrite check: exit $RC; $(head -c 300 "$TMP/err")"
  expect_usage "train: --resume with a contradicting --lr" -- "$CRATE" train --resume "$TMP/t1/checkpoint.safetensors" --lr 1 -o "$TMP/t1"
  expect_rc 1 "train: --resume of a model file without optimiser state" -- "$CRATE" train --resume "$TMP/t1/model.safetensors" -o "$TMP/t1" -q
  expect_rc 1 "train: --resume of a missing file" -- "$CRATE" train --resume "$TMP/nope.safetensors" -o "$TMP/t1" -q
  # resume bit-identity: 20 steps + resume to 24 == 24 straight steps
  expect_rc 0 "train: resume to step 24" -- "$CRATE" train --resume "$TMP/t1/checkpoint.safetensors" -o "$TMP/t1" -t 1 -q
  expect_rc 0 "train: 24 straight steps" -- "${TR[@]}" -o "$TMP/t2"
  if cmp -s "$TMP/t1/model.safetensors" "$TMP/t2/model.safetensors" &&
    cmp -s "$TMP/t1/checkpoint.safetensors" "$TMP/t2/checkpoint.safetensors"; then
    ok "train: 20 + 4 resumed steps give byte-identical model and checkpoint files to 24 straight"
  else
    bad "train: resumed run differs from the straight run"
  fi
  # --init: fine-tuning starts from a model file's weights (fresh optimiser)
  expect_usage "train: --init with --resume" -- "$CRATE" train --init "$TMP/t2/model.safetensors" --resume "$TMP/t1/checkpoint.safetensors"
  expect_usage "train: --init of another preset's model" -- "$CRATE" train --init "$TMP/t2/model.safetensors" --preset fmnist-small -o "$TMP/t5"
  expect_rc 1 "train: --init of a non-model file" -- "$CRATE" train --init "$TMP/t2/train.jsonl" -o "$TMP/t5" -q
  expect_rc 0 "train: --init, 4 steps" -- "${TR[@]}" --init "$TMP/t2/model.safetensors" --max-steps 4 -o "$TMP/t4"
  l_init=$(grep -m1 '"type":"step"' "$TMP/t4/train.jsonl" | sed 's/.*"loss":\([^,]*\).*/\1/')
  l_fresh=$(grep -m1 '"type":"step"' "$TMP/t2/train.jsonl" | sed 's/.*"loss":\([^,]*\).*/\1/')
  if grep -q '"init":' "$TMP/t4/train.jsonl" && awk -v a="$l_init" -v b="$l_fresh" 'BEGIN { exit !(a < 0.5 * b) }'; then
    ok "train: --init: first-step loss $l_init from the trained weights against $l_fresh from a fresh init"
  else
    bad "train: --init: first-step loss $l_init, fresh $l_fresh (want < half), or no init record"
  fi
  # Ctrl-C: the step in flight finishes, a checkpoint is written, exit 1
  "${TR[@]}" --epochs 200 -o "$TMP/t3" >"$TMP/out" 2>"$TMP/err" &
  pid=$!
  for _ in $(seq 1 600); do
    grep -q '"type":"step"' "$TMP/t3/train.jsonl" 2>/dev/null && break
    sleep 0.1
  done
  kill -INT "$pid" 2>/dev/null
  wait "$pid"
  RC=$?
  if [ "$RC" -eq 1 ] && grep -q "interrupted at step" "$TMP/err" &&
    "$CRATE" train --resume "$TMP/t3/checkpoint.safetensors" -o "$TMP/t3" --max-steps 1 -q 2>/dev/null; then
    ok "train: SIGINT: exit 1, '$(sed "s|$TMP|TMP|g" "$TMP/err" | head -n 1)', checkpoint resumable"
  else
    bad "train: SIGINT: exit $RC (want 1); $(head -c 300 "$TMP/err")"
  fi
else
  bad "train: Fashion-MNIST is not installed (scripts/setup.sh installs dataset-fashion-mnist)"
fi

# =============================================================================
# gmm experiment subcommands: sample, roundtrip, order, likelihood
# (MATH.md §4, catalogue rows C1, C4, C6, C7).  Budget: well under 30 s.
# =============================================================================

# json_check DESCRIPTION PYTHON: runs PYTHON on the last stdout (the JSON
# object as `o`); it prints what it measured and raises on a failed check.
json_check() {
  local what=$1 code=$2 msg
  if ! command -v python3 >/dev/null 2>&1; then
    bad "$what: python3 not found"
    return
  fi
  if msg=$(python3 -c "
import json, sys
o = json.load(sys.stdin)
$code
" <"$TMP/out" 2>&1); then
    ok "$what: $msg"
  else
    bad "$what: $(echo "$msg" | tail -n 1)"
  fi
}

# png_check PATH DESCRIPTION: the file starts with the PNG signature.
png_check() {
  local sig
  sig=$(head -c 8 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')
  if [ "$sig" = "89504e470d0a1a0a" ]; then
    ok "$2: PNG signature, $(wc -c <"$1") bytes"
  else
    bad "$2: '$1' signature '$sig' (want 89504e470d0a1a0a)"
  fi
}

mkdir -p "$TMP/g"
for sub in sample roundtrip order likelihood; do
  expect_rc 0 "crate gmm $sub --help" -- "$CRATE" gmm "$sub" --help
  missing=""
  for flag in --sampler --steps --samples --d --K --p --pi --seed --sigma-min --sigma-max \
    --schedule --rho --json --out --quiet --strict --help "\[6\]" "\[3\]" "\[0.02\]" "\[10\]" \
    "\[karras\]" "\[7\]" "\[gmm_$sub\]"; do
    grep -q -- "$flag" "$TMP/out" || missing="$missing $flag"
  done
  [ -z "$missing" ] && ok "crate gmm $sub --help shows every flag and default" ||
    bad "crate gmm $sub --help lacks:$missing"
done

# order: slopes against the exact K = 1 flow (C1), JSON alone on stdout.
expect_rc 0 "gmm order --json" -- "$CRATE" gmm order --json -o "$TMP/g/order"
json_check "gmm order slopes (want 1, 2, 4, 2, 2 +- 0.15)" '
s = o["slopes"]
want = {"euler": 1, "heun": 2, "rk4": 4, "dpmpp2m": 2, "dpm2": 2}
for k, w in want.items():
    assert s[k] is not None and abs(s[k] - w) <= 0.15, "%s slope %s, want %d +- 0.15" % (k, s[k], w)
print(" ".join("%s %.3f" % (k, s[k]) for k in want))'
grep -q "crate gmm order: fixture: d=6 K=3" "$TMP/err" && ok "gmm order prints the configuration on stderr" ||
  bad "gmm order: no configuration line on stderr"
png_check "$TMP/g/order.png" "gmm order writes order.png"
cp "$TMP/out" "$TMP/g/order1.json"
run "$CRATE" gmm order --json -q -o "$TMP/g/order"
cmp -s "$TMP/out" "$TMP/g/order1.json" && ok "gmm order --json: second run byte-identical" ||
  bad "gmm order --json: second run differs"
[ ! -s "$TMP/err" ] && ok "gmm order -q: nothing on stderr" || bad "gmm order -q: stderr not empty"

# roundtrip: the C4 absolute gate, Heun, 80 steps, same grid, <= 1e-5.
expect_rc 0 "gmm roundtrip --sampler heun --steps 80 --json" -- \
  "$CRATE" gmm roundtrip --sampler heun --steps 80 --json -q -o "$TMP/g/rt1"
json_check "gmm roundtrip heun 80 (want roundtrip_error <= 1e-5)" '
assert o["sampler"] == "heun" and o["steps"] == 80, (o["sampler"], o["steps"])
e = o["roundtrip_error"]
assert e is not None and e <= 1e-5, "roundtrip_error %s > 1e-5" % e
print("roundtrip_error %.4e (mismatched decode grid %.3e)" % (e, o["roundtrip_error_mismatched"]))'
png_check "$TMP/g/rt1.png" "gmm roundtrip (single run) writes its PNG"
# the sweep (C4 slopes: same grid 1, 3, 5; mismatched grid 1, 2, 4), Euler/Heun/RK4
expect_rc 0 "gmm roundtrip sweep" -- "$CRATE" gmm roundtrip --sampler euler,heun,rk4 -M 64 \
  --json -q -o "$TMP/g/rt"
json_check "gmm roundtrip orders (want >= 1, 3, 5 same grid; 1, 2, 4 mismatched; -0.15)" '
s = o["slopes"]
for g, want in (("same", {"euler": 1, "heun": 3, "rk4": 5}), ("mismatched", {"euler": 1, "heun": 2, "rk4": 4})):
    for k, w in want.items():
        assert s[g][k] is not None and s[g][k] >= w - 0.15, "%s %s order %s < %g" % (g, k, s[g][k], w - 0.15)
print("same " + " ".join("%s %.2f" % kv for kv in s["same"].items()) +
      "; mismatched " + " ".join("%s %.2f" % kv for kv in s["mismatched"].items()))'

# sample: a small run writes its table, CSV and PNG.
expect_rc 0 "gmm sample -M 600" -- "$CRATE" gmm sample -M 600 --null-reps 50 -q -o "$TMP/g/s"
grep -q "C7 overall: " "$TMP/out" && ok "gmm sample table: '$(grep "C7 overall" "$TMP/out")'" ||
  bad "gmm sample: no 'C7 overall' line"
png_check "$TMP/g/s.png" "gmm sample writes s.png"
[ -s "$TMP/g/s.csv" ] && ok "gmm sample writes s.csv ($(wc -l <"$TMP/g/s.csv") lines)" ||
  bad "gmm sample: no CSV"
expect_rc 0 "gmm sample --json" -- "$CRATE" gmm sample -M 600 --null-reps 50 --json -q -o "$TMP/g/s"
json_check "gmm sample --json" '
f = o["frequencies"]
assert len(f) == 3 and abs(sum(f) - 1) < 1e-12, f
print("frequencies %s, residual %.3e vs %.3e, MMD^2 %.2e (null q99 %.2e)" % (
    " ".join("%.3f" % x for x in f), o["residual"], o["residual_target"], o["mmd2"], o["mmd2_null_q99"]))'

# likelihood: exact-divergence orders (C6) on a short sweep.
expect_rc 0 "gmm likelihood --json" -- "$CRATE" gmm likelihood --sampler euler,heun \
  --steps 40,80,160,320 -M 16 --json -q -o "$TMP/g/lik"
json_check "gmm likelihood orders (want 1, 2 +- 0.15)" '
s = o["slopes"]
assert abs(s["euler"] - 1) <= 0.15 and abs(s["heun"] - 2) <= 0.15, s
print("euler %.3f heun %.3f" % (s["euler"], s["heun"]))'
png_check "$TMP/g/lik.png" "gmm likelihood writes lik.png"

# bad input: usage errors (exit 2) for every subcommand
for sub in sample roundtrip order likelihood; do
  expect_usage "gmm $sub --sigma-min 5 --sigma-max 1" -- "$CRATE" gmm "$sub" --sigma-min 5 --sigma-max 1
  expect_usage "gmm $sub --sigma-min 0" -- "$CRATE" gmm "$sub" --sigma-min 0
  expect_usage "gmm $sub --sigma-max -2" -- "$CRATE" gmm "$sub" --sigma-max -2
  expect_usage "gmm $sub --steps 0" -- "$CRATE" gmm "$sub" --steps 0
  expect_usage "gmm $sub --steps -3" -- "$CRATE" gmm "$sub" --steps -3
  expect_usage "gmm $sub --p 7 (d = 6)" -- "$CRATE" gmm "$sub" --p 7
  expect_usage "gmm $sub --pi 0.5,0.3,0.1" -- "$CRATE" gmm "$sub" --pi 0.5,0.3,0.1
  expect_usage "gmm $sub --sampler foo" -- "$CRATE" gmm "$sub" --sampler foo
  expect_usage "gmm $sub --schedule foo" -- "$CRATE" gmm "$sub" --schedule foo
  expect_usage "gmm $sub --frobnicate" -- "$CRATE" gmm "$sub" --frobnicate
  expect_usage "gmm $sub --steps (no value)" -- "$CRATE" gmm "$sub" --steps
done

# run-time failure: a step too large for the implicit midpoint solve is a
# numeric failure (exit 1) whose message names the step and sigma.
run "$CRATE" gmm roundtrip --sampler midpoint --steps 1 -q -o "$TMP/g/mid"
if [ "$RC" -eq 1 ] && grep -q "step 0" "$TMP/err" && grep -q "sigma" "$TMP/err" && [ ! -s "$TMP/out" ]; then
  ok "numeric failure: exit 1, no table, '$(head -c 160 "$TMP/err")...'"
else
  bad "numeric failure: exit $RC (want 1, step and sigma named, empty stdout); stderr: $(head -c 300 "$TMP/err")"
fi
run "$CRATE" gmm order -q -o /nonexistent-dir/x
if [ "$RC" -eq 1 ] && grep -q "^crate gmm order: " "$TMP/err"; then
  ok "gmm order, unwritable output: exit 1, '$(head -n 1 "$TMP/err")'"
else
  bad "gmm order, unwritable output: exit $RC (want 1)"
fi

# ---- reconstruct and eval (issue 5) -----------------------------------------------
# Model: the committed parity fixture (random weights, valid file); images:
# data/samples (Fashion-MNIST test images, 28 x 28 gray).
RC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RC_MODEL="$RC_ROOT/tests/reference/fmnist-tiny.model.safetensors"
RC_IMG="$RC_ROOT/data/samples/fmnist-t10k-00000-ankle-boot.png"
RC_CAMERA="$RC_ROOT/tests/data/camera.png"
R="$TMP/recon"
mkdir -p "$R"

# png_size FILE: "WIDTH HEIGHT" from the IHDR chunk (bytes 16..23, big-endian)
png_size() {
  local hex
  hex=$(od -An -tx1 -j16 -N8 "$1" 2>/dev/null | tr -d ' \n')
  [ ${#hex} -eq 16 ] && echo "$((16#${hex:0:8})) $((16#${hex:8:8}))"
}
png_sig() { head -c 8 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n'; }

# expect_fail1 DESCRIPTION -- COMMAND...: exit 1 with exactly one stderr line naming the command.
expect_fail1() {
  local what=$1
  shift 2
  run "$@"
  local lines first
  lines=$(wc -l <"$TMP/err")
  first=$(head -n 1 "$TMP/err" | sed "s|$TMP|TMP|g")
  if [ "$RC" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "^crate [a-z]*: " "$TMP/err"; then
    ok "$what: exit 1, '$first'"
  else
    bad "$what: exit $RC (want 1), $lines stderr lines (want 1): $(head -c 300 "$TMP/err")"
  fi
}

if [ -f "$RC_MODEL" ] && [ -f "$RC_IMG" ]; then
  expect_rc 0 "crate reconstruct --help" -- "$CRATE" reconstruct --help
  missing=""
  for flag in --model --in --out --panel --mask-ratio --mask --box --seed --scale --threads \
    "\[0.75\]" "\[0\]"; do
    grep -q -- "$flag" "$TMP/out" || missing="$missing $flag"
  done
  [ -z "$missing" ] && ok "crate reconstruct --help shows every flag and default" ||
    bad "crate reconstruct --help lacks:$missing"

  # a single image: completed image + panel
  expect_rc 0 "reconstruct a sample image" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" \
    -o "$R/out.png"
  cp "$TMP/out" "$R/first.txt"
  for f in out.png out_panel.png; do
    sig=$(png_sig "$R/$f")
    [ "$sig" = "89504e470d0a1a0a" ] && ok "$f starts with the PNG signature" ||
      bad "$f signature '$sig' (want 89504e470d0a1a0a)"
  done
  size=$(png_size "$R/out.png")
  [ "$size" = "28 28" ] && ok "out.png is $size (the model's size)" || bad "out.png is '$size' (want 28 28)"
  # panel: 4 tiles of 28 x 8 = 224 px and 3 gaps of 8 px
  size=$(png_size "$R/out_panel.png")
  [ "$size" = "$((4 * 224 + 3 * 8)) 224" ] && ok "panel is $size (4 tiles of 224 + 3 gaps of 8)" ||
    bad "panel is '$size' (want $((4 * 224 + 3 * 8)) 224)"
  if grep -Eq "^ +masked region +PSNR [0-9.]+ dB +SSIM -?[0-9.]+" "$TMP/out" &&
    grep -Eq "^ +whole image +PSNR [0-9.]+ dB +SSIM -?[0-9.]+" "$TMP/out" &&
    grep -q "37 of 49 patches masked" "$TMP/out"; then
    ok "reconstruct prints masked and whole-image PSNR/SSIM: $(grep 'masked region' "$TMP/out" | tr -s ' ')"
  else
    bad "reconstruct output lacks the PSNR/SSIM lines: $(head -c 400 "$TMP/out")"
  fi
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/again.png" --scale 2
  if cmp -s "$R/out.png" "$R/again.png" && [ "$(png_size "$R/again_panel.png")" = "$((4 * 56 + 3 * 4)) 56" ]; then
    ok "second run: identical image; --scale 2 panel is $(png_size "$R/again_panel.png")"
  else
    bad "second run differs or --scale 2 panel is '$(png_size "$R/again_panel.png")'"
  fi
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/s1.png" --seed 1
  cmp -s "$R/out.png" "$R/s1.png" && bad "--seed 1 gives the same completion as seed 0" ||
    ok "--seed 1 gives a different mask and completion"
  expect_rc 0 "--panel PATH" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/p.png" \
    --panel "$R/custom_panel.png"
  [ -f "$R/custom_panel.png" ] && [ ! -e "$R/p_panel.png" ] && ok "--panel writes the panel there" ||
    bad "--panel: custom_panel.png missing or p_panel.png written"

  # grid-aligned box and mask image
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/box.png" --box 0,0,8,8
  grep -q "4 of 49 patches masked" "$TMP/out" && ok "--box 0,0,8,8 hides 4 patches" ||
    bad "--box 0,0,8,8: $(head -n 1 "$TMP/out") (want 4 of 49)"
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/box.png" --box 5,5,6,6
  grep -q "1 of 49 patches masked" "$TMP/out" && ok "--box 5,5,6,6 grows to 1 patch" ||
    bad "--box 5,5,6,6: $(head -n 1 "$TMP/out") (want 1 of 49)"
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/box.png" --box 0,0,28,28
  grep -q "49 of 49 patches masked" "$TMP/out" && ok "--box 0,0,28,28 hides all 49 patches" ||
    bad "--box 0,0,28,28: $(head -n 1 "$TMP/out")"
  # the sample itself as a mask: its bright pixels (>= 0.5) hide the patches they touch
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/m.png" --mask "$RC_IMG"
  k=$(sed -n 's/.*: \([0-9]*\) of 49 patches masked/\1/p' "$TMP/out")
  if [ "$RC" -eq 0 ] && [ -n "$k" ] && [ "$k" -gt 0 ] && [ "$k" -lt 49 ]; then
    ok "--mask PNG: $k of 49 patches hidden"
  else
    bad "--mask PNG: exit $RC, '$(head -n 1 "$TMP/out")'"
  fi

  # a directory in, a directory out
  mkdir -p "$R/in"
  cp "$RC_ROOT"/data/samples/*.png "$R/in/"
  nin=$(ls "$R/in" | wc -l)
  expect_rc 0 "reconstruct a directory of $nin PNGs" -- "$CRATE" reconstruct -q -m "$RC_MODEL" \
    -i "$R/in" -o "$R/outdir"
  nout=$(ls "$R/outdir"/*_panel.png 2>/dev/null | wc -l)
  nall=$(ls "$R/outdir"/*.png 2>/dev/null | wc -l)
  [ "$nout" -eq "$nin" ] && [ "$nall" -eq $((2 * nin)) ] && ok "directory: $nall PNGs written ($nout panels)" ||
    bad "directory: $nall PNGs, $nout panels (want $((2 * nin)), $nin)"

  # eval
  expect_rc 0 "crate eval --help" -- "$CRATE" eval --help
  expect_rc 0 "eval --json --limit 50" -- "$CRATE" eval -q -m "$RC_MODEL" --limit 50 --json
  cp "$TMP/out" "$R/eval50.json"
  if command -v python3 >/dev/null 2>&1; then
    if msg=$(python3 -c '
import json, math, sys
o = json.load(open(sys.argv[1]))
for k in ("images", "mask_ratio", "masked_mse", "masked_psnr", "masked_ssim"):
    assert k in o, "missing key " + k
assert o["images"] == 50 and o["mask_ratio"] == 0.75, (o["images"], o["mask_ratio"])
assert abs(o["masked_psnr"] - 10 * math.log10(1 / o["masked_mse"])) < 1e-6, "PSNR != 10 log10(1/MSE)"
mi = o["baselines"]["mean_image"]["masked_psnr"]
assert 9.0 < mi < 12.5, "mean-image baseline %.3f dB (issue: about 10.6)" % mi
vm = o["baselines"]["visible_mean"]["masked_psnr"]
print("masked PSNR %.3f dB, SSIM %.4f; baselines: mean image %.3f dB, visible mean %.3f dB"
      % (o["masked_psnr"], o["masked_ssim"], mi, vm))
' "$R/eval50.json" 2>&1); then
      ok "eval --json parses: $msg"
    else
      bad "eval --json: $msg"
    fi
    run "$CRATE" eval -q -m "$RC_MODEL" --limit 50 --json --batch 7 --no-baselines
    if msg=$(python3 -c '
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
r = abs(a["masked_mse"] - b["masked_mse"]) / a["masked_mse"]
assert r < 1e-5, "batch 50 vs 7: rel %.2e" % r
print("rel diff %.1e (bound 1e-5)" % r)
' "$R/eval50.json" "$TMP/out" 2>&1); then
      ok "eval --batch 7 gives the same masked MSE as one batch: $msg"
    else
      bad "eval --batch 7: $msg"
    fi
    run "$CRATE" eval -q -m "$RC_MODEL" --data "$RC_ROOT/data/samples" --json
    if msg=$(python3 -c '
import json, sys
o = json.load(sys.stdin); assert o["images"] == 4, o["images"]; print("%d images" % o["images"])
' <"$TMP/out" 2>&1); then ok "eval --data PNG-DIR: $msg"; else bad "eval --data PNG-DIR: exit $RC, $msg"; fi
  else
    bad "python3 not found; cannot check eval --json"
  fi

  # bad input: exit 1, one line
  : >"$R/zero.png"
  echo "not a png at all" >"$R/text.png"
  head -c 100 "$RC_IMG" >"$R/trunc.png"
  expect_fail1 "zero-byte PNG" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$R/zero.png" -o "$R/x.png"
  expect_fail1 "non-PNG file" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$R/text.png" -o "$R/x.png"
  expect_fail1 "truncated PNG" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$R/trunc.png" -o "$R/x.png"
  expect_fail1 "missing input" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$R/nope.png" -o "$R/x.png"
  expect_fail1 "wrong-size image" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_CAMERA" -o "$R/x.png"
  grep -q "expects 28 x 28" "$TMP/err" && ok "wrong-size message gives the model's size" ||
    bad "wrong-size message lacks 'expects 28 x 28'"
  expect_fail1 "unwritable output" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o /nonexistent-dir/x.png
  expect_fail1 "wrong-size mask" -- "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/x.png" --mask "$RC_CAMERA"
  expect_fail1 "PNG passed as --model" -- "$CRATE" reconstruct -q -m "$RC_IMG" -i "$RC_IMG" -o "$R/x.png"
  expect_fail1 "missing model" -- "$CRATE" reconstruct -q -m "$R/none.safetensors" -i "$RC_IMG" -o "$R/x.png"
  expect_fail1 "eval: dataset path does not exist" -- "$CRATE" eval -q -m "$RC_MODEL" --data "$R/no-such-dir"
  expect_fail1 "eval: PNG passed as --model" -- "$CRATE" eval -q -m "$RC_IMG" --limit 5
  mkdir -p "$R/baddir"
  cp "$R/trunc.png" "$R/baddir/"
  expect_fail1 "eval: corrupt PNG in --data DIR" -- "$CRATE" eval -q -m "$RC_MODEL" --data "$R/baddir"
  [ ! -e "$R/x.png" ] && ok "no output written by the failed runs" || bad "a failed run wrote x.png"

  # nothing already written is damaged
  cp "$R/out.png" "$R/keep.png"
  cp "$R/out_panel.png" "$R/keep_panel.png"
  cp "$R/out.png" "$R/before.png"
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$R/trunc.png" -o "$R/keep.png"
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$RC_IMG" -o "$R/keep.png" --seed 5 --panel /nonexistent-dir/p.png
  if [ "$RC" -eq 1 ] && cmp -s "$R/keep.png" "$R/before.png" && cmp -s "$R/keep_panel.png" "$R/out_panel.png"; then
    ok "failed runs (bad input; unwritable panel) leave the existing outputs byte-identical"
  else
    bad "existing outputs changed by a failed run (exit $RC)"
  fi
  ntmp=$(ls -A "$R" | grep -c '\.tmp-' || true)
  [ "$ntmp" -eq 0 ] && ok "no temporary files left behind" || bad "$ntmp temporary files left in $R"
  run "$CRATE" reconstruct -q -m "$RC_MODEL" -i "$R/keep.png" -o "$R/keep.png"
  [ "$RC" -eq 1 ] && cmp -s "$R/keep.png" "$R/before.png" && ok "--out = --in refused, input intact" ||
    bad "--out = --in: exit $RC or input changed"

  # usage errors: exit 2
  expect_usage "reconstruct: unknown flag" -- "$CRATE" reconstruct -m "$RC_MODEL" -i "$RC_IMG" -o "$R/x.png" --frobnicate
  expect_usage "reconstruct: missing --out" -- "$CRATE" reconstruct -m "$RC_MODEL" -i "$RC_IMG"
  expect_usage "reconstruct: missing --model" -- "$CRATE" reconstruct -i "$RC_IMG" -o "$R/x.png"
  expect_usage "reconstruct: --mask-ratio without value" -- "$CRATE" reconstruct -m "$RC_MODEL" -i "$RC_IMG" -o "$R/x.png" --mask-ratio
  for r in 0 1 1.5 -0.2 abc; do
    expect_usage "reconstruct: --mask-ratio $r" -- "$CRATE" reconstruct -m "$RC_MODEL" -i "$RC_IMG" -o "$R/x.png" --mask-ratio "$r"
  done
  expect_usage "reconstruct: --box 1,2,3" -- "$CRATE" reconstruct -m "$RC_MODEL" -i "$RC_IMG" -o "$R/x.png" --box 1,2,3
  expect_usage "reconstruct: --box outside the image" -- "$CRATE" reconstruct -m "$RC_MODEL" -i "$RC_IMG" -o "$R/x.png" --box 0,0,29,10
  expect_usage "reconstruct: two mask sources" -- "$CRATE" reconstruct -m "$RC_MODEL" -i "$RC_IMG" -o "$R/x.png" --box 0,0,8,8 --mask-ratio 0.5
  expect_usage "reconstruct: stray argument" -- "$CRATE" reconstruct -m "$RC_MODEL" -i "$RC_IMG" -o "$R/x.png" extra
  expect_usage "eval: unknown flag" -- "$CRATE" eval -m "$RC_MODEL" --frobnicate
  expect_usage "eval: missing --model" -- "$CRATE" eval --limit 5
  expect_usage "eval: --mask-ratio 1" -- "$CRATE" eval -m "$RC_MODEL" --mask-ratio 1
  expect_usage "eval: --limit -3" -- "$CRATE" eval -m "$RC_MODEL" --limit -3
  [ ! -e "$R/x.png" ] && ok "no output written by the usage errors" || bad "a usage error wrote x.png"
else
  bad "reconstruct/eval: fixture model or sample image missing ($RC_MODEL, $RC_IMG)"
fi

# ---- gmm crate-layers (issue 3: structured denoising / diffusion, D4-D8) ------------
LAY="$TMP/layers"
mkdir -p "$LAY"
expect_rc 0 "crate gmm crate-layers --help" -- "$CRATE" gmm crate-layers --help
missing=""
for flag in --part --tokens --sigma --eps2 --T --depth --layers --kappa --aot-layers --json --out \
  "\[8\]" "\[0.3\]" "\[0.25\]" "\[4,8,16,32,64\]" "\[gmm_crate_layers\]"; do
  grep -q -- "$flag" "$TMP/out" || missing="$missing $flag"
done
[ -z "$missing" ] && ok "crate gmm crate-layers --help shows every flag and default" ||
  bad "crate gmm crate-layers --help lacks:$missing"
# invertibility (D5, D6): slopes and the fixed-point inverse, JSON alone on stdout
expect_rc 0 "gmm crate-layers --part b --json" -- "$CRATE" gmm crate-layers --part b --json -o "$LAY/b"
json_check "gmm crate-layers slopes (decoder 2, Euler 1, Heun 3 +- 0.2; fixed point <= 1e-12)" '
s = o["slopes"]
for k, w in (("decoder_kappa", 2), ("euler_L", 1), ("heun_L", 3)):
    assert s[k] is not None and abs(s[k] - w) <= 0.2, "%s slope %s, want %d +- 0.2" % (k, s[k], w)
e = o["fixed_point_error"]
assert e is not None and e <= 1e-12, "fixed_point_error %s" % e
print("decoder %.3f euler %.3f heun %.3f fixed point %.1e" % (s["decoder_kappa"], s["euler_L"], s["heun_L"], e))'
grep -q "crate gmm crate-layers: fixture: d=6 K=3" "$TMP/err" &&
  ok "gmm crate-layers prints the configuration on stderr" ||
  bad "gmm crate-layers: no configuration line on stderr"
png_check "$LAY/b_roundtrip.png" "gmm crate-layers writes the round-trip chart"
cp "$TMP/out" "$LAY/b1.json"
run "$CRATE" gmm crate-layers --part b --json -q -o "$LAY/b"
cmp -s "$TMP/out" "$LAY/b1.json" && ok "gmm crate-layers --json: second run byte-identical" ||
  bad "gmm crate-layers --json: second run differs"
[ ! -s "$TMP/err" ] && ok "gmm crate-layers -q: nothing on stderr" || bad "gmm crate-layers -q: stderr not empty"
# the default run: every part, readable table, CSVs and charts
expect_rc 0 "gmm crate-layers (all parts)" -- "$CRATE" gmm crate-layers -q -o "$LAY/all"
for line in "D4 descent (exact field): R^c non-increasing" "D7 regime: " "D7 control (p = 2)" \
  "Bayes m(z), same sigma" "Overall: PASS"; do
  grep -qF "$line" "$TMP/out" && ok "gmm crate-layers table: '$(grep -F "$line" "$TMP/out" | head -n 1 | sed 's/^ *//')'" ||
    bad "gmm crate-layers table lacks '$line'"
done
for f in rc snr mse decoder roundtrip cosine aot; do
  png_check "$LAY/all_$f.png" "gmm crate-layers writes all_$f.png"
done
ncsv=$(ls "$LAY"/all_*.csv 2>/dev/null | wc -l)
[ "$ncsv" -eq 4 ] && ok "gmm crate-layers writes 4 CSV files" || bad "gmm crate-layers wrote $ncsv CSV files (want 4)"
# bad input: usage errors (exit 2), and a numeric failure (exit 1) naming the layer
for a in "--sigma 0" "--eps2 -1" "--T 0" "--layers 0" "--depth 0" "--tokens 0" "--kappa 0" "--part x"; do
  # shellcheck disable=SC2086
  expect_usage "gmm crate-layers $a" -- "$CRATE" gmm crate-layers $a -o "$LAY/bad"
done
run "$CRATE" gmm crate-layers --part b --T 1e300 --layers 1,2 -q -o "$LAY/bad"
if [ "$RC" -eq 1 ] && grep -q "layer" "$TMP/err" && [ ! -s "$TMP/out" ]; then
  ok "gmm crate-layers numeric failure: exit 1, no table, '$(head -c 140 "$TMP/err")...'"
else
  bad "gmm crate-layers numeric failure: exit $RC (want 1, layer named, empty stdout); stderr: $(head -c 300 "$TMP/err")"
fi
[ -z "$(ls "$LAY"/bad* 2>/dev/null)" ] && ok "gmm crate-layers: no output written by the failures" ||
  bad "gmm crate-layers: a failed run wrote $(ls "$LAY"/bad* | head -n 1)"

# ---- crate train on a directory of PNGs (issue 5, item 1) ---------------------------
# 64 PNGs: 60 copies of the four 28 x 28 gray samples and 4 copies of the
# 512 x 512 camera image (centre-crop + area downsampling to 28 x 28).  With
# no train/ and test/ subdirectories the last 10 % (6 files) are held out.
PD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PD="$TMP/pngdir"
mkdir -p "$PD/imgs" "$PD/empty"
pd_n=0
for k in $(seq 1 15); do
  for f in "$PD_ROOT"/data/samples/*.png; do
    cp "$f" "$PD/imgs/img$(printf %03d $pd_n).png" && pd_n=$((pd_n + 1))
  done
done
for k in 1 2 3 4; do
  cp "$PD_ROOT/tests/data/camera.png" "$PD/imgs/cam$k.png" && pd_n=$((pd_n + 1))
done
echo "not an image" >"$PD/empty/readme.txt"
if [ "$pd_n" -eq 64 ]; then
  PT=("$CRATE" train --data "$PD/imgs" --batch 8 -t 1)
  expect_rc 0 "train on a PNG dir: --max-steps 3 --batch 8" -- "${PT[@]}" --max-steps 3 -o "$PD/run"
  steps=$(grep -c '"type":"step"' "$PD/run/train.jsonl" 2>/dev/null)
  if [ -s "$PD/run/checkpoint.safetensors" ] && [ -s "$PD/run/model.safetensors" ] &&
    [ "$steps" -eq 3 ] && grep -q '"type":"eval","step":3,"images":6,' "$PD/run/train.jsonl" &&
    grep -q "the last 6 held out" "$TMP/err"; then
    ok "train on a PNG dir: checkpoint $(wc -c <"$PD/run/checkpoint.safetensors") bytes, $steps step records, eval on the 6 held-out images; '$(grep -o 'data [^:]*(PNG[^)]*)' "$TMP/err" | sed "s|$TMP|TMP|g")'"
  else
    bad "train on a PNG dir: outputs missing (steps $steps); $(ls "$PD/run" 2>&1 | tr '\n' ' '); $(head -c 300 "$TMP/err")"
  fi
  # resume 3 -> 5 gives the bytes of 5 straight steps (the resize mode travels in the checkpoint)
  expect_rc 0 "train on a PNG dir: resume to step 5" -- "$CRATE" train --resume "$PD/run/checkpoint.safetensors" --max-steps 5 -o "$PD/run" -t 1 -q
  expect_rc 0 "train on a PNG dir: 5 straight steps" -- "${PT[@]}" --max-steps 5 -q -o "$PD/run5"
  cmp -s "$PD/run/model.safetensors" "$PD/run5/model.safetensors" &&
    ok "train on a PNG dir: 3 + 2 resumed steps give the model bytes of 5 straight steps" ||
    bad "train on a PNG dir: resumed model differs from the straight run"
  expect_usage "train: --resize stretch contradicts a PNG checkpoint" -- "$CRATE" train --resume "$PD/run/checkpoint.safetensors" --resize stretch -o "$PD/run"
  expect_usage "train: --resize zoom" -- "${PT[@]}" --resize zoom -o "$PD/bad"
  # --resize exact refuses the 512 x 512 camera copies, naming one and the size
  run "${PT[@]}" --resize exact --max-steps 1 -o "$PD/exact"
  if [ "$RC" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "cam1.png is 512 x 512 pixels but the expected size is 28 x 28" "$TMP/err"; then
    ok "train: --resize exact on a 512x512 PNG: exit 1, '$(sed "s|$TMP|TMP|g" "$TMP/err")'"
  else
    bad "train: --resize exact: exit $RC (want 1, one line naming cam1.png); stderr: $(head -c 300 "$TMP/err")"
  fi
  # a directory with no PNGs: exit 1, one clear line
  run "$CRATE" train --data "$PD/empty" --max-steps 1 -o "$PD/none"
  if [ "$RC" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "no PNG files in" "$TMP/err"; then
    ok "train: a dir with no PNGs: exit 1, '$(sed "s|$TMP|TMP|g" "$TMP/err")'"
  else
    bad "train: a dir with no PNGs: exit $RC (want 1, one line); stderr: $(head -c 300 "$TMP/err")"
  fi
  # a truncated PNG among them: exit 1, one line naming it (not skipped)
  head -c 100 "$PD/imgs/img000.png" >"$PD/imgs/img000x.png"
  run "${PT[@]}" --max-steps 1 -o "$PD/trunc"
  if [ "$RC" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "img000x.png" "$TMP/err"; then
    ok "train: a truncated PNG in the dir: exit 1, '$(sed "s|$TMP|TMP|g" "$TMP/err")'"
  else
    bad "train: a truncated PNG in the dir: exit $RC (want 1, one line naming it); stderr: $(head -c 300 "$TMP/err")"
  fi
  [ ! -e "$PD/exact/checkpoint.safetensors" ] && [ ! -e "$PD/none/checkpoint.safetensors" ] &&
    [ ! -e "$PD/trunc/checkpoint.safetensors" ] && ok "train: the PNG-dir failures wrote no checkpoint" ||
    bad "train: a failed PNG-dir run wrote a checkpoint"
else
  bad "train on a PNG dir: could not copy the sample images ($pd_n of 64)"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
