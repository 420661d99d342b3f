#!/bin/bash
# Runs the hwkvm test lists on this machine's own /dev/kvm, without QEMU: for a host with
# hardware KVM (kvm_intel or kvm_amd), where run.sh's nested guest would only be slower.
#
#   tests/hwkvm/run-host.sh BUILD_DIR TESTLIST...
#
# Same lists, checkers (guest/hw-same, hw-serve, hw-exits) and report as run.sh: a
# `PASS hwkvm/NAME` or `FAIL hwkvm/NAME (...)` line per test, and exit 0 only if every test
# passed. Commands run under sh in BUILD_DIR with BUILD_DIR and the checkers first in PATH;
# their wget and ip are busybox's (GNU wget retries a closed connection, where the checks
# expect no answer), so busybox must be in PATH.
# Test output: BUILD_DIR/hwkvm-host.log. KVMS_HWKVM_TEST_TIMEOUT: per test (default 60 s).
set -u
[ $# -ge 2 ] && [ -d "$1" ] || { echo "usage: $0 BUILD_DIR TESTLIST..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
shift
test_timeout=${KVMS_HWKVM_TEST_TIMEOUT:-60}
log=$build/hwkvm-host.log
: >"$log"
[ -c /dev/kvm ] || { echo "FAIL hwkvm/host: no /dev/kvm on this machine"; exit 1; }
# The checkers call `kvmserver`; meson puts it in BUILD_DIR (or BUILD_DIR/src).
bin=$(mktemp -d) || exit 1
trap 'rm -rf "$bin"' EXIT
for candidate in "$build/kvmserver" "$build/src/kvmserver"; do
    [ -x "$candidate" ] && { ln -s "$candidate" "$bin/kvmserver"; break; }
done
busybox=$(command -v busybox) || { echo "FAIL hwkvm/host: busybox is not in PATH"; exit 1; }
for applet in wget ip; do ln -s "$busybox" "$bin/$applet"; done
export PATH=$bin:$here/guest:$PATH HWKVM=1

all_ok=1
run_list() {   # run_list TESTLIST
    local list=$1 list_dir line name expect cmd stdout_file rc why
    list_dir=$(cd "$(dirname "$list")" && pwd)
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in ''|'#'*) continue ;; esac
        IFS=$'\t' read -r name expect cmd stdout_file <<<"$line"
        [ -n "$stdout_file" ] && [[ $stdout_file != /* ]] && stdout_file=$list_dir/$stdout_file
        (cd "$build" && timeout -s KILL "$test_timeout" sh -c "$cmd") \
            </dev/null >"$bin/stdout" 2>"$bin/stderr"
        rc=$?
        why=""
        if [ "$rc" != "$expect" ]; then
            why="exit $rc, expected $expect"
        elif [ -n "$stdout_file" ] && ! cmp -s "$stdout_file" "$bin/stdout"; then
            why="stdout differs from $(basename "$stdout_file")"
        fi
        { echo "### $name: exit $rc"; echo "--- stdout"; head -c 65536 "$bin/stdout"
          echo "--- stderr"; head -c 65536 "$bin/stderr"; } >>"$log"
        if [ -z "$why" ]; then echo "PASS hwkvm/$name"; else echo "FAIL hwkvm/$name ($why)"; all_ok=0; fi
    done <"$list"
}
for list in "$@"; do run_list "$list"; done
[ "$all_ok" = 1 ]
