#!/usr/bin/env bash
# Reverse proxy in front of kvmserver (the recipes in contrib/): requests/s and latency of
# direct TCP `Connection: close` against nginx and HAProxy taking keep-alive clients and
# giving kvmserver one unix-socket connection per request. Each kvmserver setup is measured
# beside the same setup with the native server, rounds interleaved. Pinning: servers
# (native or kvmserver) on CPUs 0-1, the proxy and wrk on CPU 1.
# `resets/requests`: an -e figure is per-request isolation only where they are equal.
# Usage: bench/proxy.sh [BUILD_DIR] [SECONDS] [ROUNDS]
set -euo pipefail
build=${1:-build}
secs=${2:-5}
rounds=${3:-2}
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
sock="$tmp/app.sock"
port=$((20000 + RANDOM % 12000))    # direct: the server's port
pport=$((port + 1))                 # the proxy's port
server="$build/tests/servers/srv_accept"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

wait_tcp() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done
             echo "nothing listens on $1" >&2; exit 1; }
wait_unix() { for _ in $(seq 200); do [ -S "$1" ] && curl -s -o /dev/null --unix-socket "$1" http://x/ && return
              sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }
stop_all() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done; pids=(); }

start_server() {   # start_server native|kvmserver tcp|unix
  local spec=$port; [ "$2" = unix ] && spec="unix:$sock" && rm -f "$sock"
  if [ "$1" = native ]; then
    taskset -c 0,1 "$server" "$spec" >"$tmp/server.log" 2>&1 &
  else
    taskset -c 0,1 "$build/kvmserver" -e -t 2 --allow-listen run "$server" "$spec" >"$tmp/server.log" 2>&1 &
  fi
  pids+=($!)
  if [ "$2" = unix ]; then wait_unix "$sock"; else wait_tcp "$port"; fi
}
start_proxy() {    # start_proxy nginx|haproxy
  local config; config=$(/usr/bin/python3 "$top/tests/e2e/proxies.py" "$1" "$tmp" "$sock" "$pport")
  if [ "$1" = nginx ]; then taskset -c 1 nginx -p "$tmp" -c "$config" >"$tmp/proxy.log" 2>&1 &
  else taskset -c 1 haproxy -db -f "$config" >"$tmp/proxy.log" 2>&1 &
  fi
  pids+=($!); wait_tcp "$pport"
}
run_wrk() {        # run_wrk PORT close|keepalive -> "rps p50 p99 requests"
  local hdr=(); [ "$2" = close ] && hdr=(-H "Connection: close")
  taskset -c 1 wrk -t1 -c4 -d"${secs}s" --latency "${hdr[@]}" "http://127.0.0.1:$1/" | awk '
    /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
    /requests in/ { n = $1 } END { print rps, p50, p99, n }'
}
resets() { sed -n 's/.*: \([0-9]*\) resets; per reset.*/\1/p' "$tmp/server.log"; }

printf '%-30s %-9s %9s %9s %9s %s\n' setup server "req/s" p50 p99 "resets/requests"
for round in $(seq "$rounds"); do
  for setup in direct nginx haproxy; do
    for kind in native kvmserver; do
      if [ "$setup" = direct ]; then
        start_server "$kind" tcp; read -r rps p50 p99 n <<<"$(run_wrk "$port" close)"
        label="direct TCP, Connection: close"
      else
        start_server "$kind" unix; start_proxy "$setup"
        read -r rps p50 p99 n <<<"$(run_wrk "$pport" keepalive)"
        label="$setup, keep-alive clients"
      fi
      stop_all
      r="-"; [ "$kind" = kvmserver ] && r="$(resets)/$n"
      printf '%-30s %-9s %9s %9s %9s %s\n' "$label" "$kind" "$rps" "$p50" "$p99" "$r"
    done
  done
  echo "(round $round of $rounds)"
done
