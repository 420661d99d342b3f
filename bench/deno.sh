#!/usr/bin/env bash
# Deno hello (tests/servers/runtime/hello_deno.ts, `deno run -A`) natively and under
# kvmserver -e, in interleaved rounds: requests/s with Connection: close (so under -e every
# request is a reset: `resets/requests` says so; the few resets more than wrk's requests are
# start's probe and the connections wrk cut at its end), the reset's cost, and the ratio to
# the native figure of the same round. Native Deno is pinned to CPU 0, kvmserver to CPUs 0-1,
# wrk to CPU 1 (wrk -t1 -c1).
# Usage: bench/deno.sh [BUILD_DIR] [SECONDS] [ROUNDS] [EXTRA KVMSERVER OPTIONS...]
set -euo pipefail
build=${1:-build}
secs=${2:-5}
rounds=${3:-3}
shift $(( $# > 3 ? 3 : $# ))
extra=("$@")
here=$(cd "$(dirname "$0")/.." && pwd)
deno=${KVMS_DENO:-$(command -v deno || echo "$HOME/.cache/kvmserver/deno/node_modules/@deno/linux-x64-glibc/deno")}
script="$here/tests/servers/runtime/hello_deno.ts"
port=$((20000 + RANDOM % 12000))
url="http://127.0.0.1:$port/"
log=$(mktemp)
trap 'rm -f "$log"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT

start() {   # start CPUS CMD...: runs CMD pinned to CPUS, waits until it answers
  local cpus=$1; shift
  taskset -c "$cpus" "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null -m 1 "$url" && return 0
    sleep 0.1
  done
  echo "server did not start: $*" >&2; cat "$log" >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

run_wrk() {  # -> "rps p50 p99 requests"
  taskset -c 1 wrk -t1 -c1 -d"${secs}s" --latency -H "Connection: close" "$url" | awk '
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
    /requests in/ { n = $1 }
    END { print rps, p50, p99, n }'
}

printf '%-6s %-28s %9s %9s %9s %7s %9s %9s %s\n' round setup "req/s" p50 p99 ratio \
  "reset us" "pages/rs" "resets/requests"
for round in $(seq "$rounds"); do
  start 0 "$deno" run -A "$script" "$port"
  read -r nrps p50 p99 n <<<"$(run_wrk)"; stop
  printf '%-6s %-28s %9s %9s %9s %7s %9s %9s %s\n' "$round" native "$nrps" "$p50" "$p99" 1.00 - - -
  for kmode in "-e" "-e -w 100"; do
    # shellcheck disable=SC2086
    start 0,1 "$build/kvmserver" --allow-read --allow-listen=127.0.0.1:$port $kmode \
      "${extra[@]}" run "$deno" run -A "$script" "$port"
    read -r rps p50 p99 n <<<"$(run_wrk)"; stop
    rus=$(sed -n 's/.*per reset: \([0-9.]*\) us, \([0-9.]*\) pages.*/\1/p' "$log")
    pgs=$(sed -n 's/.*per reset: \([0-9.]*\) us, \([0-9.]*\) pages.*/\2/p' "$log")
    resets=$(sed -n 's/.*: \([0-9]*\) resets; per reset.*/\1/p' "$log")
    ratio=$(awk -v a="$rps" -v b="$nrps" 'BEGIN { printf "%.2f", a / b }')
    printf '%-6s %-28s %9s %9s %9s %7s %9s %9s %s\n' "$round" "kvmserver $kmode ${extra[*]}" \
      "$rps" "$p50" "$p99" "$ratio" "${rus:--}" "${pgs:--}" "${resets:-0}/$n"
  done
done
