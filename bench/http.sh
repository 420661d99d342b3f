#!/usr/bin/env bash
# HTTP benchmark of the static blocking-accept test server, server and wrk pinned to one CPU
# (cross-CPU wake-ups cost ~100 us on these machines): requests/s, p50/p99 latency, VM exits
# per request, reset cost and host CPU time per request, for native, native
# fork-per-connection, kvmserver -t 1, -e and -e -w 1 with each syscall transport, with keep-alive and
# with Connection: close. The shared transport's poller needs a CPU of its own: those runs
# give kvmserver CPUs 0-1 (wrk stays on CPU 0, or WRK_CPUS).
# `resets` counts the request-VM resets of a run against the requests wrk made: an -e figure
# is per-request isolation only where they are equal (Connection: close). With keep-alive a
# connection is one request VM for all its requests; such rows are marked "(per conn)".
# Usage: bench/http.sh [BUILD_DIR] [SECONDS] [EXTRA KVMSERVER OPTIONS...]
# Environment: WRK_CPUS (0): the CPUs wrk runs on; on a machine with more than 2 CPUs, give
# it others (e.g. 4-7) so that the client does not share the server's CPUs.
set -euo pipefail
build=${1:-build}
secs=${2:-5}
wrk_cpus=${WRK_CPUS:-0}
shift $(( $# > 2 ? 2 : $# ))
extra=("$@")
port=$((20000 + RANDOM % 12000))   # below the ephemeral range: no clash with TIME_WAIT clients
url="http://127.0.0.1:$port/"
log=$(mktemp)
trap 'rm -f "$log"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT

start() {   # start CPUS CMD...: runs CMD pinned to CPUS, waits for the port
  local cpus=$1; shift
  taskset -c "$cpus" "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "server did not start: $*" >&2; cat "$log" >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

run_wrk() {  # run_wrk MODE -> "rps p50 p99 requests"
  local hdr=()
  [ "$1" = close ] && hdr=(-H "Connection: close")
  curl -s -o /dev/null "$url" || true      # one request first: warm caches and paths
  taskset -c "$wrk_cpus" wrk -t1 -c1 -d"${secs}s" --latency "${hdr[@]}" "$url" | awk '
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
    /requests in/ { n = $1 }
    END { print rps, p50, p99, n }'
}

printf '%-34s %-9s %9s %9s %9s %9s %9s %9s %9s %s\n' setup mode "req/s" p50 p99 "exits/rq" \
  "reset us" "pages/rs" "cpu us/rq" "resets/requests"
row() {  # row LABEL MODE "rps p50 p99 n" [exits reset_us pages cpu_seconds resets]
  local rps p50 p99 n; read -r rps p50 p99 n <<<"$3"
  local epr="-" rus="${5:--}" pgs="${6:--}" cpu="-" resets="-"
  [ -n "${4:-}" ] && [ "${n:-0}" -gt 0 ] && epr=$(awk -v e="$4" -v n="$n" 'BEGIN { printf "%.1f", e / n }')
  [ -n "${7:-}" ] && [ "${n:-0}" -gt 0 ] && cpu=$(awk -v c="$7" -v n="$n" 'BEGIN { printf "%.0f", c * 1e6 / n }')
  if [ -n "${8:-}" ]; then
    resets="$8/$n"
    # wrk's own requests, plus the probe and warm-up connections of start and run_wrk.
    [ "$8" -lt "$n" ] && resets="$resets (per conn)"
  fi
  printf '%-34s %-9s %9s %9s %9s %9s %9s %9s %9s %s\n' "$1" "$2" "$rps" "$p50" "$p99" "$epr" "$rus" "$pgs" "$cpu" "$resets"
}
cpu_seconds() {  # user+sys CPU seconds used so far by process $1
  awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"
}

for mode in keepalive close; do
  start 0 "$build/tests/servers/srv_accept" "$port"
  row native "$mode" "$(run_wrk "$mode")"; stop
  start 0 "$build/tests/servers/srv_fork" "$port"
  row "native fork/connection" "$mode" "$(run_wrk "$mode")"; stop
  for transport in exit shared; do
    cpus=0; [ "$transport" = shared ] && cpus=0,1
    # -w 1: one warm-up request before the freeze runs the request path in the master, so
    # its system call sites are rewritten in the image every fork starts from (kvm_pvm).
    for kmode in "-t 1" "-e -t 1" "-e -t 1 -w 1"; do
      # shellcheck disable=SC2086
      start "$cpus" "$build/kvmserver" --allow-listen --syscall-transport=$transport $kmode \
        "${extra[@]}" run "$build/tests/servers/srv_accept" "$port"
      cpu0=$(cpu_seconds "$pid")
      result=$(run_wrk "$mode")
      cpu1=$(cpu_seconds "$pid")
      stop
      exits=$(sed -n 's/.*: \([0-9]*\) VM exits in request VMs.*/\1/p' "$log")
      rus=$(sed -n 's/.*per reset: \([0-9.]*\) us, \([0-9.]*\) pages.*/\1/p' "$log")
      pgs=$(sed -n 's/.*per reset: \([0-9.]*\) us, \([0-9.]*\) pages.*/\2/p' "$log")
      resets=$(sed -n 's/.*: \([0-9]*\) resets; per reset.*/\1/p' "$log")
      row "kvmserver $kmode $transport ${extra[*]}" "$mode" "$result" "$exits" "$rus" "$pgs" \
        "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" \
        "$([[ $kmode == *-e* ]] && echo "${resets:-0}")"
    done
  done
done
