#!/bin/bash
# Packs what checking kvmserver on another x86-64 machine takes (one with hardware KVM, where
# nothing can be installed) into DEST: the built kvmserver, the test programs the hwkvm lists
# name, the lists and their checkers, bench/http.sh, busybox, wrk, and the libraries these
# need beyond libc. On that machine, `DEST/check.sh` reports what its /dev/kvm is and, when
# there is one, runs the lists on it (run-host.sh) and the HTTP benchmark with wrk on CPUs
# 8-11 (WRK_CPUS). Results go to $OUT (default DEST/out).
#
#   tests/hwkvm/bundle.sh BUILD_DIR DEST        (DEST is made anew; about 40 MiB)
set -euo pipefail
[ $# -eq 2 ] && [ -x "$1/kvmserver" ] || { echo "usage: $0 BUILD_DIR DEST" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
dest=$2
rm -rf "$dest"
mkdir -p "$dest/build/hwkvm" "$dest/bin" "$dest/lib" "$dest/hwkvm" "$dest/bench"

copy_libs() {   # copy_libs ELF: the libraries it needs, except the C library's own
    ldd "$1" | grep -o '=> /[^ ]*' | cut -c4- | grep -v -E '/(libc|libm|libpthread|libdl|ld-linux[^/]*)\.so' |
        while read -r lib; do cp -Ln "$lib" "$dest/lib/"; done
}
cp "$build/kvmserver" "$dest/build/"
copy_libs "$build/kvmserver"
for tool in busybox wrk; do
    path=$(command -v "$tool") || { echo "$0: $tool is not installed" >&2; exit 1; }
    cp -L "$path" "$dest/bin/"
    ldd "$path" >/dev/null 2>&1 && copy_libs "$path"
done
gcc -std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -static -o "$dest/build/hwkvm/kvmprobe" \
    "$here/kvmprobe.c"
cp "$here/run-host.sh" "$here/tests.list" "$here"/*.expected "$dest/hwkvm/"
cp -r "$here/guest" "$dest/hwkvm/"
cp "$top/bench/http.sh" "$dest/bench/"
/usr/bin/python3 "$here/diff-list.py" "$build" >"$dest/hwkvm/diff.list"
cp -r "$build/hwkvm-diff" "$dest/build/"
# The programs the lists and the benchmark name, stripped: static ones are ~0.8 MiB each.
{ grep -ohE '(tests/programs|tests/servers|examples)/[A-Za-z0-9_.-]+' "$here/tests.list" "$dest/hwkvm/diff.list"
  echo tests/servers/srv_accept; echo tests/servers/srv_fork; } | sort -u | while read -r prog; do
    mkdir -p "$dest/build/$(dirname "$prog")"
    cp "$build/$prog" "$dest/build/$prog"
    strip "$dest/build/$prog"
done

cat >"$dest/check.sh" <<'EOF'
#!/bin/bash
# Made by tests/hwkvm/bundle.sh. Reports this machine's /dev/kvm; on one, runs the hwkvm
# lists and bench/http.sh (wrk on CPUs $WRK_CPUS, default 8-11) and keeps their output in $OUT.
exec 2>&1
D=$(cd "$(dirname "$0")" && pwd) B=$(cd "$(dirname "$0")" && pwd)/build
OUT=${OUT:-$D/out}; mkdir -p "$OUT"
echo "== machine"; uname -a; nproc; grep -m1 'model name' /proc/cpuinfo
echo "cpu flags: $(grep -o -w -E 'vmx|svm|hypervisor' /proc/cpuinfo | sort -u | tr '\n' ' ')"
ls -l /dev/kvm; ls /sys/module | grep -i kvm
for f in /sys/module/kvm*/parameters/{nested,ept,npt}; do [ -r "$f" ] && echo "$f=$(cat "$f")"; done
echo "== kvmprobe"; timeout 20 "$B/hwkvm/kvmprobe"; echo "kvmprobe rc=$?"
[ -c /dev/kvm ] || { echo "RESULT: no /dev/kvm on this machine"; exit 0; }
mkdir -p /tmp/kvms-bin
# wrk may need the carried libraries; busybox is static (and picks its applet by argv[0]).
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$D/lib" "$D/bin/wrk" >/tmp/kvms-bin/wrk
chmod +x /tmp/kvms-bin/wrk
if ldd "$B/kvmserver" | grep -q 'not found'; then
    mv "$B/kvmserver" "$B/kvmserver.bin"
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$D/lib" "$B/kvmserver.bin" >"$B/kvmserver"
    chmod +x "$B/kvmserver"
fi
export PATH=/tmp/kvms-bin:$PATH:$D/bin
echo "== flavour"; (cd "$B" && timeout 20 ./kvmserver -v run tests/programs/exitcode_static exit 42; echo "rc=$?")
echo "== hwkvm lists on this host"
SECONDS=0
timeout 200 "$D/hwkvm/run-host.sh" "$B" "$D/hwkvm/tests.list" "$D/hwkvm/diff.list" >"$OUT/hwkvm-host.txt"
echo "rc=$? in ${SECONDS}s: $(grep -c ^PASS "$OUT/hwkvm-host.txt") passed, $(grep -c ^FAIL "$OUT/hwkvm-host.txt") failed"
grep ^FAIL "$OUT/hwkvm-host.txt" | head -30
cp "$B/hwkvm-host.log" "$OUT/"
echo "== bench/http.sh: the server on CPU 0 (kvmserver 0-1), wrk on CPUs ${WRK_CPUS:=8-11}"
WRK_CPUS=$WRK_CPUS timeout 240 "$D/bench/http.sh" "$B" 2 | tee "$OUT/http.txt"
echo "bench rc=${PIPESTATUS[0]}"
EOF
chmod +x "$dest/check.sh"
echo "$dest: $(du -sh "$dest" | cut -f1); on the other machine run $dest/check.sh"
