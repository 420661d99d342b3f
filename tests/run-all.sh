#!/usr/bin/env bash
# Runs every test suite against a build directory and ends with one line
# "N passed, N failed, N skipped" (what CI reads), counting the tests of the sandbox; the
# line before it reports the native oracle checks apart. Exit status 0 only when nothing
# failed, native checks included; under CI (CI=true) a skipped test counts as failed too:
# there, every prerequisite is installed, so a skip means a claim went untested.
set -uo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
passed=0 failed=0 skipped=0
failures=()

count() {   # count SUITE PASSED FAILED [SKIPPED]
  local s=${4:-0}
  passed=$((passed + $2)); failed=$((failed + $3)); skipped=$((skipped + s))
  [ "$3" -gt 0 ] && failures+=("$1")
  [ "$s" -gt 0 ] && [ "${CI:-}" = true ] && failures+=("$1 (skips under CI)")
  echo "== $1: $2 passed, $3 failed, $s skipped"
}

# 1. Unit tests (cmocka), counted per test case.
echo "== unit tests"
meson test -C "$build" --suite unit --print-errorlogs >"$build/unit.log" 2>&1
unit_rc=$?
p=$(grep -ho '\[  PASSED  \] [0-9]* test' "$build/meson-logs/testlog.txt" | awk '{s+=$4} END {print s+0}')
f=$(grep -ho '\[  FAILED  \] [0-9]* test' "$build/meson-logs/testlog.txt" | awk '{s+=$4} END {print s+0}')
s=$(grep -ho '\[  SKIPPED \] [0-9]* test' "$build/meson-logs/testlog.txt" | awk '{s+=$4} END {print s+0}')
# A failing group setup or teardown is reported apart from the failed tests.
e=$(grep -c '\[  FAILED  \] GROUP' "$build/meson-logs/testlog.txt")
f=$((f + e))
if [ "$unit_rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; cat "$build/unit.log"; fi
count unit "$p" "$f" "$s"

# 1b. The layering rules: includes and the reaches across layers (tests/layers).
echo "== layer check"
if /usr/bin/python3 tests/layers/check_layers.py src >"$build/layers.log" 2>&1; then
  count layers 1 0
else
  cat "$build/layers.log"; count layers 0 1
fi

# 2. End-to-end and differential tests (pytest, Debian's python3), once per syscall
#    transport: VM exits, and shared memory served by a poller thread. The tests that start
#    no kvmserver (marked native by tests/e2e/conftest.py: the test programs and servers
#    checked on their own, the oracle the differential tests compare with) run once, apart,
#    and have their own line: the summary counts sandbox tests only.
e2e() {   # e2e NAME MARK-EXPRESSION [VAR=VALUE...]: runs pytest, sets p f s from its summary
  local name=$1 mark=$2 line
  shift 2
  env "$@" KVMS_BUILD="$top/$build" /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider \
    -m "$mark" tests/e2e 2>&1 | tee "$build/e2e-$name.log"
  line=$(grep -E '[0-9]+ (passed|failed|errors?)' "$build/e2e-$name.log" | tail -1)
  p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
  f=$(echo "$line" | grep -oE '[0-9]+ (failed|errors?)' | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
  s=$(echo "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
  [ -z "$line" ] && f=1
  p=${p:-0} f=${f:-0} s=${s:-0}
}
for transport in exit shared; do
  echo "== end-to-end tests, --syscall-transport=$transport"
  e2e "$transport" "not native" KVMS_TRANSPORT="$transport"
  count "e2e-$transport" "$p" "$f" "$s"
done
echo "== native oracle: the test programs and servers run natively (no kvmserver)"
e2e native native
native="$p passed, $f failed, $s skipped"
[ "$f" -gt 0 ] && failures+=("native-oracle")
[ "$s" -gt 0 ] && [ "${CI:-}" = true ] && failures+=("native-oracle (skips under CI)")
echo "== native-oracle: $native (not in the summary's counts)"

# 3. The libFuzzer targets (ELF parser, snapshot loader, configuration, shared-page
#    transport), each for a bounded time.
echo "== fuzz"
KVMS_BUILD=$build tests/fuzz/run.sh "${KVMS_FUZZ_SECONDS:-10}" >"$build/fuzz.log" 2>&1
fuzz_rc=$?
p=$(grep -c '^PASS fuzz_' "$build/fuzz.log")
f=$(grep -c '^FAIL fuzz' "$build/fuzz.log")
if [ "$fuzz_rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
[ "$f" -gt 0 ] && tail -20 "$build/fuzz.log"
count fuzz "$p" "$f"

# 4. The hardware-KVM flavour, inside a QEMU-emulated machine with nested kvm_amd: the
#    hand-written list and the differential one generated from the e2e test modules.
echo "== hardware KVM flavour (QEMU TCG)"
{ /usr/bin/python3 tests/hwkvm/diff-list.py "$build" > "$build/hwkvm-diff.list" ||
    echo "FAIL hwkvm/diff-list: tests/hwkvm/diff-list.py failed"
  tests/hwkvm/run.sh "$build" tests/hwkvm/tests.list "$build/hwkvm-diff.list"
} 2>&1 | tee "$build/hwkvm-summary.log"
p=$(grep -c '^PASS hwkvm/' "$build/hwkvm-summary.log")
f=$(grep -c '^FAIL hwkvm/' "$build/hwkvm-summary.log")
[ "$p" -eq 0 ] && [ "$f" -eq 0 ] && f=1
count hwkvm "$p" "$f"

[ ${#failures[@]} -gt 0 ] && echo "failing suites: ${failures[*]}"
echo "native oracle checks, not counted below: $native"
echo "$passed passed, $failed failed, $skipped skipped"
[ ${#failures[@]} -eq 0 ]
