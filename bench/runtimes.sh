#!/usr/bin/env bash
# HTTP benchmark of real runtimes as servers: each one natively, under `kvmserver -t 1` (one
# request VM that is never reset) and under `kvmserver -e -w N` (a reset after every
# connection, N warm-up requests before the freeze), with `wrk -t1 -c1 -H "Connection: close"`.
# Rounds are interleaved (every server and mode once per round), and each row gives the
# median over the rounds (resets/requests: the last round's); `ratio` is the median of each round's req/s over that round's
# native req/s. CPUs: the native server on CPU 0, kvmserver on CPUs 0-1 (the shared
# transport's poller takes the second), wrk on CPU 1.
# From kvmserver's exit statistics: `exits/rq` VM exits per request, `reset us` and
# `pages/rs` what a reset cost, and `resets/requests` (-e only) the resets against wrk's
# requests: an -e figure is per-request isolation only where every request was reset
# (the few extra resets are the probe connections). The -e rows run with --profile, and
# `top costs` gives the three largest parts of a request from it, in us: guest (KVM_RUN),
# calls (system-call handlers), wait (for the client), and the reset's scan, copy, vcpu and
# proc (fds, epoll sets and threads made again).
# A runtime that is not installed is skipped; one that does not answer shows "does not serve".
# Usage: bench/runtimes.sh [BUILD_DIR] [SECONDS] [ROUNDS] [EXTRA KVMSERVER OPTIONS...]
# Environment: WARMUPS ("20 200"): the -w counts to run the JIT runtimes and python at (the
# static server always runs at -w 1); ONLY: a regular expression of the server names to run;
# BASELINE: another build directory whose kvmserver runs the -t 1 and -e rows too, marked
# "(base)";
# IDLE (0): seconds every server sits idle between its probe and wrk, so that the -e rows
# show what a request VM costs once the image's timers (a runtime's delayed GC work) are due.
set -uo pipefail
build=${1:-build}
secs=${2:-4}
rounds=${3:-3}
shift $(( $# > 3 ? 3 : $# ))
extra=("$@")
warmups=${WARMUPS:-20 200}
only=${ONLY:-.}
baseline=${BASELINE:-}
idle=${IDLE:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
rt=$root/tests/servers/runtime
cache=${KVMS_CACHE:-$HOME/.cache/kvmserver}
bun=$cache/bun/node_modules/@oven/bun-linux-x64/bin/bun
deno=$cache/deno/node_modules/@deno/linux-x64-glibc/deno
react=$cache/react/node_modules
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
# Deno's own server API (a Deno.serve hello that counts, as counter.js does for Node).
cat >"$work/deno_counter.js" <<'EOF'
let served = 0;
Deno.serve({ hostname: '127.0.0.1', port: Number(Deno.args[0]), onListen() {} },
  () => new Response(`deno served ${++served}\n`));
EOF

# name | -w counts | program and arguments (PORT is replaced by the port)
servers=(
  "static C (examples/httpd)|1|$build/examples/httpd PORT"
  "python3 asyncio counter|$warmups|/usr/bin/python3 $rt/counter_asyncio.py PORT"
  "node counter|$warmups|/usr/bin/node $rt/counter.js PORT"
  "bun counter|$warmups|$bun $rt/counter.js PORT"
  "deno counter|$warmups|$deno run -A $work/deno_counter.js PORT"
  "node react ssr|$warmups|/usr/bin/node $rt/react_ssr.js PORT $react"
  "deno react ssr|$warmups|$deno run -A $rt/react_ssr.js PORT $react"
)

port=$((20000 + RANDOM % 12000))   # below the ephemeral range: no clash with TIME_WAIT clients
log=$work/server.log
start() {   # start CPUS CMD...: runs CMD pinned to CPUS; 0 once the port answers HTTP
  local cpus=$1; shift
  taskset -c "$cpus" "$@" >"$log" 2>&1 &
  pid=$!
  local end=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$end" ] && kill -0 "$pid" 2>/dev/null; do
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$port/" && return 0
    grep -qE "could not be created|not serving" "$log" && break   # kvmserver gave up
    sleep 0.05
  done
  return 1
}
stop() { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=; }

run_wrk() {  # -> "rps p50 p99 requests"
  taskset -c 1 wrk -t1 -c1 -d"${secs}s" --latency -H "Connection: close" \
    "http://127.0.0.1:$port/" | awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; return v * 1e6 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    /requests in/ { n = $1 }
    END { print rps, p50, p99, n }'
}

top_costs() {  # the three largest parts of a request in --profile's key=value line, or -
  sed -n 's/.*kvmserver: profile: requests=[0-9]* \(.*\) top=.*/\1/p' "$log" | tr ' ' '\n' | awk -F= '
    $1 == "guest_us" { c["guest"] = $2 } $1 == "handler_us" { c["calls"] = $2 }
    $1 == "wait_us" { c["wait"] = $2 } $1 == "scan_us" { c["scan"] = $2 }
    $1 == "copy_us" { c["copy"] = $2 } $1 == "cpu_us" { c["vcpu"] = $2 }
    $1 == "process_us" { c["proc"] = $2 }
    END {
      out = ""
      for (k = 0; k < 3; k++) {
        best = ""; for (n in c) if (best == "" || c[n] + 0 > c[best] + 0) best = n
        if (best == "") break
        out = out (out == "" ? "" : ",") best ":" int(c[best] + 0.5); delete c[best]
      }
      print out == "" ? "-" : out
    }'
}

results=$work/results   # one line per run: key round rps p50 p99 exits/rq reset_us pages resets/n top
: >"$results"
one_run() {  # one_run KEY ROUND CPUS CMD...
  local key=$1 round=$2 cpus=$3; shift 3
  if ! start "$cpus" "$@"; then
    echo "$key|$round|fail" >>"$results"; stop
    { echo "== $key round $round: does not serve"; tail -5 "$log"; } >&2
    return
  fi
  sleep "$idle"
  local r; r=$(run_wrk)
  stop
  local n; n=$(awk '{ print $4 }' <<<"$r")
  if [ "${n:-0}" -eq 0 ]; then      # it answered the probe, then nothing more
    echo "$key|$round|fail" >>"$results"
    { echo "== $key round $round: served no request to wrk"; tail -5 "$log"; } >&2
    return
  fi
  local exits rus pgs resets
  exits=$(sed -n 's/.*: \([0-9]*\) VM exits in request VMs.*/\1/p' "$log")
  rus=$(sed -n 's/.*per reset: \([0-9.]*\) us, \([0-9.]*\) pages.*/\1/p' "$log")
  pgs=$(sed -n 's/.*per reset: \([0-9.]*\) us, \([0-9.]*\) pages.*/\2/p' "$log")
  resets=$(sed -n 's/.*: \([0-9]*\) resets; per reset.*/\1/p' "$log")
  local epr=- rr=-
  [ -n "$exits" ] && [ "${n:-0}" -gt 0 ] && epr=$(awk -v e="$exits" -v n="$n" 'BEGIN { printf "%.1f", e / n }')
  [[ $key == *" -e "* ]] && rr="${resets:-0}/$n"
  local top; top=$(top_costs)
  echo "$key|$round|$r ${epr} ${rus:--} ${pgs:--} $rr $top" >>"$results"
  echo "$key round $round: $r exits/rq=$epr reset=${rus:--}us pages=${pgs:--} resets=$rr top=$top" >&2
}

for round in $(seq "$rounds"); do
  for entry in "${servers[@]}"; do
    IFS='|' read -r name ws cmd <<<"$entry"
    [[ $name =~ $only ]] || continue
    read -ra argv <<<"${cmd//PORT/$port}"
    [ -x "${argv[0]}" ] || { [ "$round" = 1 ] && echo "skipped (not installed): $name" >&2; continue; }
    one_run "$name|native" "$round" 0 "${argv[@]}"
    for b in "$build" ${baseline:+"$baseline"}; do
      label="kvmserver -t 1"; [ "$b" = "$build" ] || label="$label (base)"
      one_run "$name|$label" "$round" 0,1 "$b/kvmserver" --allow-read --allow-listen \
        "${extra[@]}" run "${argv[@]}"
    done
    for w in $ws; do
      for b in "$build" ${baseline:+"$baseline"}; do
        label="kvmserver -e -w $w"; [ "$b" = "$build" ] || label="$label (base)"
        one_run "$name|$label" "$round" 0,1 "$b/kvmserver" --allow-read \
          --allow-listen -e -w "$w" --profile "${extra[@]}" run "${argv[@]}"
      done
    done
  done
done

printf '%-26s %-27s %9s %9s %9s %6s %8s %8s %8s %-16s %s\n' server mode "req/s" "p50 us" \
  "p99 us" ratio "exits/rq" "reset us" "pages/rs" "resets/requests" "top costs (us)"
awk -F'|' '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n == 0 ? "-" : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
  }
  {
    key = $1 "|" $2
    if (!(key in seen)) { seen[key] = 1; order[++count] = key }
    if ($4 == "fail") { failed[key]++; next }
    split($4, f, " ")
    rps[key] = rps[key] " " f[1]; p50[key] = p50[key] " " f[2]; p99[key] = p99[key] " " f[3]
    if (f[5] != "-") epr[key] = epr[key] " " f[5]
    if (f[6] != "-") rus[key] = rus[key] " " f[6]
    if (f[7] != "-") pgs[key] = pgs[key] " " f[7]
    rr[key] = f[8]; top[key] = f[9]
    if ($2 == "native") native[$1 "|" $3] = f[1]
    else if (($1 "|" $3) in native && native[$1 "|" $3] > 0)
      ratio[key] = ratio[key] " " f[1] / native[$1 "|" $3]
  }
  END {
    for (i = 1; i <= count; i++) {
      key = order[i]; split(key, k, "|")
      if (rps[key] == "") { printf "%-26s %-27s %s\n", k[1], k[2], "does not serve"; continue }
      r = ratio[key] == "" ? "-" : sprintf("%.2fx", median(ratio[key]))
      printf "%-26s %-27s %9.0f %9.0f %9.0f %6s %8s %8s %8s %-16s %s%s\n", k[1], k[2],
        median(rps[key]), median(p50[key]), median(p99[key]), k[2] == "native" ? "1.00x" : r,
        median(epr[key]), median(rus[key]), median(pgs[key]), rr[key], top[key],
        failed[key] ? " (" failed[key] " runs did not serve)" : ""
    }
  }' "$results"
