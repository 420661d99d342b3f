#!/usr/bin/env bash
# Prints, natively and inside kvmserver: the cost per call of getpid, a 1-byte write to
# /dev/null and clock_gettime, the VM exits per call, and the start-up time of a trivial
# program. Usage: bench/syscalls.sh [BUILD_DIR] [CALLS]
set -euo pipefail
build=${1:-build}
n=${2:-20000}
kvms="$build/kvmserver"
prog="$build/bench/syscall_cost"
hello="$build/examples/hello"

cost() {   # cost LABEL CMD... -> "name ns" lines on stderr of the command
  "$@" "$n" 2>&1 >/dev/null | grep -E '^(getpid|write|clock_gettime) '
}
exits_of() {   # VM exits of one kvmserver -v run with N calls of each kind
  "$kvms" -v run "$prog" "$1" 2>&1 >/dev/null | sed -n 's/.*: \([0-9]*\) VM exits.*/\1/p'
}

native=$(taskset -c 0 "$prog" "$n" 2>&1 >/dev/null)
inside=$(taskset -c 0 "$kvms" run "$prog" "$n" 2>&1 >/dev/null | grep -E '^(getpid|write|clock_gettime) ')
e0=$(exits_of 0); e1=$(exits_of "$n")
per_call=$(awk -v a="$e0" -v b="$e1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / (3 * n) }')

start_native=$( { TIMEFORMAT=%R; time (for i in $(seq 20); do "$hello" >/dev/null; done); } 2>&1 )
start_kvm=$( { TIMEFORMAT=%R; time (for i in $(seq 20); do "$kvms" run "$hello" >/dev/null; done); } 2>&1 )

printf '%-28s %12s %12s\n' "per call (ns), pinned" native kvmserver
for name in getpid write clock_gettime; do
  a=$(echo "$native" | awk -v k="$name" '$1 == k { print $2 }')
  b=$(echo "$inside" | awk -v k="$name" '$1 == k { print $2 }')
  printf '%-28s %12s %12s\n' "$name" "$a" "$b"
done
printf '%-28s %12s %12s\n' "VM exits per call (avg)" "-" "$per_call"
printf '%-28s %12s %12s\n' "start-up, trivial program" \
  "$(awk -v t="$start_native" 'BEGIN { printf "%.1f ms", t * 1000 / 20 }')" \
  "$(awk -v t="$start_kvm" 'BEGIN { printf "%.1f ms", t * 1000 / 20 }')"
