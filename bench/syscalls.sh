#!/usr/bin/env bash
# Prints, natively and inside kvmserver with each syscall transport (and, for comparison, the
# exit transport with --no-syscall-rewrite, where every call traps first): the cost per call of
# getpid (answered in the guest's entry stub), getuid (the same triviality answered by the
# host), a 1-byte write to /dev/null and clock_gettime (the vDSO), the VM exits per call, and the
# start-up time of a trivial program. The exit transport runs pinned to CPU 0; the shared
# transport gets CPUs 0-1 (its poller thread spins on a CPU of its own).
# Usage: bench/syscalls.sh [BUILD_DIR] [CALLS]
set -euo pipefail
build=${1:-build}
n=${2:-20000}
kvms="$build/kvmserver"
prog="$build/bench/syscall_cost"
hello="$build/examples/hello"

costs() {   # costs CMD... -> "getpid getuid write clock_gettime" nanoseconds per call
  "$@" "$n" 2>&1 >/dev/null | awk '$1 ~ /^(getpid|getuid|write|clock_gettime)$/ { v[$1] = $2 }
    END { print v["getpid"], v["getuid"], v["write"], v["clock_gettime"] }'
}
exits_per_call() {   # exits_per_call TRANSPORT CPUS [OPTIONS...]
  local t=$1 cpus=$2 e0 e1; shift 2
  e0=$(taskset -c "$cpus" "$kvms" -v "$@" --syscall-transport="$t" run "$prog" 0 2>&1 >/dev/null |
       sed -n 's/.*: \([0-9]*\) VM exits.*/\1/p')
  e1=$(taskset -c "$cpus" "$kvms" -v "$@" --syscall-transport="$t" run "$prog" "$n" 2>&1 >/dev/null |
       sed -n 's/.*: \([0-9]*\) VM exits.*/\1/p')
  awk -v a="$e0" -v b="$e1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / (4 * n) }'
}
startup_ms() {   # startup_ms CMD... -> mean of 20 runs
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq 20); do "$@" >/dev/null; done
  t1=$(date +%s%N)
  awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f ms", d / 20 / 1e6 }'
}

keep=(--no-syscall-rewrite)
read -r n_pid n_uid n_write n_clock <<<"$(costs taskset -c 0 "$prog")"
read -r k_pid k_uid k_write k_clock <<<"$(costs taskset -c 0 "$kvms" "${keep[@]}" --syscall-transport=exit run "$prog")"
read -r e_pid e_uid e_write e_clock <<<"$(costs taskset -c 0 "$kvms" --syscall-transport=exit run "$prog")"
read -r s_pid s_uid s_write s_clock <<<"$(costs taskset -c 0,1 "$kvms" --syscall-transport=shared run "$prog")"

line() { printf '%-26s %12s %16s %14s %14s\n' "$@"; }
line "per call (ns)" native "exit, trapping" "kvm exit" "kvm shared"
line "getpid (answered in stub)" "$n_pid" "$k_pid" "$e_pid" "$s_pid"
line "getuid (answered by host)" "$n_uid" "$k_uid" "$e_uid" "$s_uid"
line "write 1 byte, /dev/null" "$n_write" "$k_write" "$e_write" "$s_write"
line "clock_gettime (vDSO)" "$n_clock" "$k_clock" "$e_clock" "$s_clock"
line "VM exits per call (avg)" "-" "$(exits_per_call exit 0 "${keep[@]}")" \
  "$(exits_per_call exit 0)" "$(exits_per_call shared 0,1)"
line "start-up, trivial program" "$(startup_ms "$hello")" \
  "$(startup_ms taskset -c 0 "$kvms" "${keep[@]}" --syscall-transport=exit run "$hello")" \
  "$(startup_ms taskset -c 0 "$kvms" --syscall-transport=exit run "$hello")" \
  "$(startup_ms taskset -c 0,1 "$kvms" --syscall-transport=shared run "$hello")"
