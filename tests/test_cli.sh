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

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
