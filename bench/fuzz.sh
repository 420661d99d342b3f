#!/usr/bin/env bash
# The syscall fuzzer (tests/programs/fuzz_syscalls.c) for 10^6 calls per syscall transport:
# tests/e2e/test_fuzz_syscalls.py with KVMS_FUZZ_CALLS, against `kvmserver -e -t 2` with the
# host seccomp filter on. Prints, per transport, calls made, distinct numbers reached, host
# crashes and kvmserver's fds, RSS and frozen memory before and after; fails as the test does.
# Usage: bench/fuzz.sh [BUILD_DIR] [CALLS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
calls=${2:-1000000}
cd "$(dirname "$0")/.."
for transport in exit shared; do
  echo "== --syscall-transport=$transport, $calls calls"
  KVMS_FUZZ_CALLS=$calls KVMS_TRANSPORT=$transport KVMS_BUILD=$build /usr/bin/python3 -m pytest \
    -q -s -p no:cacheprovider tests/e2e/test_fuzz_syscalls.py::test_fuzz_syscalls 2>&1 |
    grep -aE '^fuzz:|passed|failed|^E ' | cut -c1-400
done
