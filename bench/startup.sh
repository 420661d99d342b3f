#!/usr/bin/env bash
# Start-up time (until exit) natively and inside kvmserver, with each syscall transport, for
# a static program and dynamic ones (true, python3, node); with the VM exits of one run and
# the host time spent in system-call handlers, and in file-system calls among them.
# Usage: bench/startup.sh [BUILD_DIR] [RUNS]
set -uo pipefail
build=${1:-build}
runs=${2:-10}
kvms="$build/kvmserver"

median_ms() {  # median_ms CMD... -> median wall time of $runs runs, in ms
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] / 1000 }'
}

printf '%-22s %10s %12s %12s %8s %14s %12s\n' program "native ms" "kvm exit ms" \
  "kvm shared ms" exits "handlers ms" "of it fs ms"
while IFS='|' read -r label cmd; do
  read -ra argv <<<"$cmd"
  [ -x "${argv[0]}" ] || continue
  if ! "$kvms" --allow-read run "${argv[@]}" >/dev/null 2>&1; then
    printf '%-22s %10s   (does not run inside kvmserver yet)\n' "$label" \
      "$(median_ms "${argv[@]}")"
    continue
  fi
  stats=$("$kvms" -v --syscall-transport=exit --allow-read run "${argv[@]}" 2>&1 >/dev/null |
          sed -n 's/.*: \([0-9]*\) VM exits.*; \([0-9.]*\) ms in system-call handlers, \([0-9.]*\) ms.*/\1 \2 \3/p')
  read -r exits handlers fs <<<"$stats"
  printf '%-22s %10s %12s %12s %8s %14s %12s\n' "$label" \
    "$(median_ms "${argv[@]}")" \
    "$(median_ms "$kvms" --syscall-transport=exit --allow-read run "${argv[@]}")" \
    "$(median_ms "$kvms" --syscall-transport=shared --allow-read run "${argv[@]}")" \
    "$exits" "$handlers" "$fs"
done <<EOF2
static hello|$build/examples/hello
/usr/bin/true|/usr/bin/true
python3 -c pass|/usr/bin/python3 -c pass
node -e 0|/usr/bin/node -e 0
EOF2
