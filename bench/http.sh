#!/usr/bin/env bash
# HTTP benchmark of the static blocking-accept test server, server and wrk pinned to one CPU
# (cross-CPU wake-ups cost ~100 us on these machines): requests/s, p50/p99 latency, VM exits
# per request and reset cost, for native, native fork-per-connection, kvmserver -t 1 and -e,
# with keep-alive and with Connection: close.
# Usage: bench/http.sh [BUILD_DIR] [SECONDS] [EXTRA KVMSERVER OPTIONS...]
set -euo pipefail
build=${1:-build}
secs=${2:-5}
shift $(( $# > 2 ? 2 : $# ))
extra=("$@")
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port/"
log=$(mktemp)
trap 'rm -f "$log"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT

start() {   # start LABEL CMD...: runs CMD pinned to CPU 0, waits for the port
  taskset -c 0 "$@" >"$log" 2>&1 &
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
  taskset -c 0 wrk -t1 -c1 -d"${secs}s" --latency "${hdr[@]}" "$url" | awk '
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
    /requests in/ { n = $1 }
    END { print rps, p50, p99, n }'
}

printf '%-26s %-10s %10s %9s %9s %12s %12s %10s\n' setup mode "req/s" p50 p99 "exits/req" "reset us" "pages/rst"
row() {  # row LABEL MODE "rps p50 p99 n" [exits resets reset_us pages]
  local rps p50 p99 n; read -r rps p50 p99 n <<<"$3"
  local epr="-" rus="${5:--}" pgs="${6:--}"
  [ -n "${4:-}" ] && [ "${n:-0}" -gt 0 ] && epr=$(awk -v e="$4" -v n="$n" 'BEGIN { printf "%.1f", e / n }')
  printf '%-26s %-10s %10s %9s %9s %12s %12s %10s\n' "$1" "$2" "$rps" "$p50" "$p99" "$epr" "$rus" "$pgs"
}

for mode in keepalive close; do
  start native "$build/tests/servers/srv_accept" "$port"
  row native "$mode" "$(run_wrk "$mode")"; stop
  start fork "$build/tests/servers/srv_fork" "$port"
  row "native fork/connection" "$mode" "$(run_wrk "$mode")"; stop
  for kmode in "-t 1" "-e -t 1"; do
    # shellcheck disable=SC2086
    start kvm "$build/kvmserver" --allow-listen $kmode "${extra[@]}" run \
      "$build/tests/servers/srv_accept" "$port"
    result=$(run_wrk "$mode"); stop
    exits=$(sed -n 's/.*: \([0-9]*\) VM exits in request VMs.*/\1/p' "$log")
    rus=$(sed -n 's/.*per reset: \([0-9.]*\) us, \([0-9.]*\) pages.*/\1/p' "$log")
    pgs=$(sed -n 's/.*per reset: \([0-9.]*\) us, \([0-9.]*\) pages.*/\2/p' "$log")
    row "kvmserver $kmode ${extra[*]}" "$mode" "$result" "$exits" "$rus" "$pgs"
  done
done
