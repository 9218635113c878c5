#!/usr/bin/env bash
# test.sh: set up, build with warnings as errors, and run the whole test
# suite twice: once on an optimised build and once under AddressSanitizer +
# UndefinedBehaviorSanitizer.  This is the README's test command and what
# .ci/run calls.  Ends with a line "tests: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)
total_ok=0
total_fail=0

run_suite() { # name, build dir, extra meson options...
  local name=$1 dir=$2
  shift 2
  echo "== $name: configure ($dir) =="
  if [ -d "$dir" ]; then
    meson setup --reconfigure "$dir" -Dwerror=true "$@" >/dev/null
  else
    meson setup "$dir" -Dwerror=true "$@" >/dev/null
  fi
  echo "== $name: build =="
  ninja -C "$dir" -j "$jobs"
  echo "== $name: test =="
  local rc=0
  meson test -C "$dir" --num-processes "$jobs" --print-errorlogs || rc=$?
  local ok fail
  ok=$(python3 - "$dir/meson-logs/testlog.json" <<'PY' || echo "0 0"
import json, sys
ok = fail = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
        ok += 1
    else:
        fail += 1
print(ok, fail)
PY
)
  read -r ok fail <<<"$ok"
  echo "== $name: $ok passed, $fail failed =="
  total_ok=$((total_ok + ok))
  total_fail=$((total_fail + fail))
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
}

# 1. Optimised build, warnings as errors.
run_suite release build-test --buildtype=release -Db_ndebug=false

# 2. The same suite under ASan + UBSan (halt on the first report).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export OPENBLAS_NUM_THREADS=1
run_suite sanitize build-sanitize --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

echo "tests: $total_ok passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
