#!/bin/bash
# Runs tests against a hardware-semantics /dev/kvm: boots a Debian kernel under QEMU TCG
# (which emulates AMD SVM), loads kvm_amd nested=1 inside it, and runs each test there.
#
#   tests/hwkvm/run.sh BUILD_DIR TESTLIST...
#
# TESTLIST: one test per line, NAME<TAB>EXPECTED_EXIT<TAB>COMMAND[<TAB>EXPECTED_STDOUT_FILE].
# COMMAND runs under sh in the guest with BUILD_DIR as working directory and first in PATH
# (BUILD_DIR/kvmserver, or else BUILD_DIR/src/kvmserver, is there as `kvmserver`; the
# guest-side checkers in tests/hwkvm/guest/, e.g. hw-same, are in /bin);
# every word of it naming a file under BUILD_DIR (or an absolute host path) is copied into
# the guest, with the shared libraries it needs. EXPECTED_STDOUT_FILE is relative to its
# TESTLIST's directory. Blank lines and lines starting with # are ignored. The lists run in
# one guest, in order; the harness's own probe (kvmprobe.c) always runs first as
# hwkvm/kvmprobe. diff-list.py writes the differential list.
#
# Prints `PASS hwkvm/NAME` or `FAIL hwkvm/NAME (...)` per test, or `FAIL hwkvm/boot: why`;
# exits 0 only if every test passed. Console transcript and test output: BUILD_DIR/hwkvm.log.
# Environment: KVMS_CACHE (see prepare.sh), KVMS_HWKVM_TIMEOUT (whole run, default 300 s),
# KVMS_HWKVM_TEST_TIMEOUT (per test, default 60 s), KVMS_HWKVM_BZIMAGE=1 (boot vmlinuz
# instead of the faster PVH vmlinux).
set -u

usage() { echo "usage: $0 BUILD_DIR TESTLIST..." >&2; exit 2; }
if [ $# -lt 2 ] || [ ! -d "$1" ]; then usage; fi
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
shift
lists=()
for list in "$@"; do
    [ -f "$list" ] || usage
    lists+=("$(cd "$(dirname "$list")" && pwd)/$(basename "$list")")
done
budget=${KVMS_HWKVM_TIMEOUT:-300}
test_timeout=${KVMS_HWKVM_TEST_TIMEOUT:-60}
work=$build/hwkvm
root=$work/root
log=$build/hwkvm.log
SECONDS=0

note() { echo "hwkvm: $*" >&2; echo "# $*" >> "$log"; }
boot_fail() {
    echo "FAIL hwkvm/boot: $*"
    echo "# FAIL hwkvm/boot: $*" >> "$log"
    exit 1
}

mkdir -p "$work" || exit 1
: > "$log"
rm -rf "$root"
mkdir -p "$root/bin" "$root/modules" "$root/work" "$root/tests" || boot_fail "cannot create $root"

kdir=$(timeout "$budget" "$here/prepare.sh" 2>>"$log") || boot_fail "prepare.sh failed (see $log)"
prepare_s=$SECONDS

# The harness's own sanity probe, built outside meson so it works before kvmserver exists.
probe=$work/kvmprobe
if [ ! -x "$probe" ] || [ "$here/kvmprobe.c" -nt "$probe" ]; then
    gcc -std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -static -o "$probe" \
        "$here/kvmprobe.c" 2>>"$log" || boot_fail "cannot build kvmprobe (see $log)"
fi

is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

# Copies host file $1 to guest path $2 (absolute), plus the loader and libraries it needs.
copy_in() {
    local src=$1 dest=$root$2 lib
    [ -e "$dest" ] && return 0
    mkdir -p "$(dirname "$dest")" && cp -L "$src" "$dest" || return 1
    is_elf "$src" || return 0
    # ldd lists "name => /path (addr)" and the loader as "/path (addr)"; static: nothing.
    for lib in $(ldd "$src" 2>/dev/null | grep -o '^[^(]*' | grep -o '/[^ ]*'); do
        copy_in "$lib" "$lib" || return 1
    done
    if ldd "$src" 2>/dev/null | grep -q 'not found'; then
        note "$src: some libraries not found: $(ldd "$src" | grep 'not found' | tr '\n' ' ')"
    fi
}

# Guest file system: busybox, modules, /init, and BUILD_DIR's files mirrored under /work.
copy_in /bin/busybox /bin/busybox || boot_fail "cannot copy /bin/busybox"
cp "$kdir"/modules/*.ko "$root/modules/" || boot_fail "cannot copy modules from $kdir"
{ cp "$here/init.sh" "$root/init" && chmod 755 "$root/init"; } || boot_fail "cannot install /init"
cp "$here"/guest/* "$root/bin/" || boot_fail "cannot install the guest-side checkers"
copy_in "$probe" /work/hwkvm/kvmprobe || boot_fail "cannot copy kvmprobe"
# Meson puts the binary in src/; commands say just `kvmserver`, found through PATH=/work.
for candidate in "$build/kvmserver" "$build/src/kvmserver"; do
    if [ -f "$candidate" ]; then
        copy_in "$candidate" /work/kvmserver || boot_fail "cannot copy $candidate"
        break
    fi
done

names=() expects=() list_ok=1
add_test() {   # name expected-exit command [expected-stdout-file]
    local i=${#names[@]} d
    d=$root/tests/$(printf '%04d' "$i")
    mkdir -p "$d" && printf '%s\n' "$1" > "$d/name" && printf '%s\n' "$3" > "$d/cmd" || return 1
    if [ -n "${4:-}" ]; then cp "$4" "$d/stdout" || return 1; fi
    names+=("$1")
    expects+=("$2")
}
add_test kvmprobe 0 hwkvm/kvmprobe || boot_fail "cannot stage kvmprobe"

stage_list() {   # stage_list TESTLIST: checks its lines and stages their tests
    local list=$1 list_dir lineno=0 line name expect cmd stdout_file extra bad word
    list_dir=$(dirname "$list")
    while IFS= read -r line || [ -n "$line" ]; do
        lineno=$((lineno + 1))
        case $line in ''|'#'*) continue ;; esac
        IFS=$'\t' read -r name expect cmd stdout_file extra <<< "$line"
        bad=""
        if [ -z "$name" ] || [ -z "$cmd" ] || [ -n "$extra" ]; then
            bad="want NAME<TAB>EXPECTED_EXIT<TAB>COMMAND[<TAB>STDOUT_FILE]"
        elif ! [[ $name =~ ^[A-Za-z0-9._/+-]+$ ]]; then
            bad="test name '$name' has characters other than [A-Za-z0-9._/+-]"
        elif ! [[ $expect =~ ^[0-9]{1,3}$ ]] || [ "$expect" -gt 255 ]; then
            bad="expected exit '$expect' is not 0..255"
        elif [ -n "$stdout_file" ]; then
            [[ $stdout_file == /* ]] || stdout_file=$list_dir/$stdout_file
            [ -f "$stdout_file" ] || bad="no expected-stdout file $stdout_file"
        fi
        if [ -n "$bad" ]; then
            echo "FAIL hwkvm/testlist: $(basename "$list") line $lineno: $bad"
            list_ok=0
            continue
        fi
        # Bring every file the command names; --opt=path counts as path.
        set -f
        for word in $cmd; do
            word=${word#*=}
            case $word in
                *..*) ;;   # never let a path escape /work
                /*) [ -f "$word" ] && { copy_in "$word" "$word" || boot_fail "cannot copy $word"; } ;;
                *) [ -f "$build/$word" ] &&
                       { copy_in "$build/$word" "/work/$word" || boot_fail "cannot copy $word"; } ;;
            esac
        done
        set +f
        add_test "$name" "$expect" "$cmd" "$stdout_file" || boot_fail "cannot stage test $name"
    done < "$list"
}
for list in "${lists[@]}"; do stage_list "$list"; done

initrd=$work/initrd.img
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) > "$initrd" ||
    boot_fail "cannot build the initramfs"
note "initramfs $(du -k "$initrd" | cut -f1) KiB, ${#names[@]} tests, prepared in $SECONDS s (kernel fetch/cache $prepare_s s)"

kernel=$kdir/vmlinux
[ -f "$kernel" ] && [ -z "${KVMS_HWKVM_BZIMAGE:-}" ] || kernel=$kdir/vmlinuz
nonce=$(od -An -tx4 -N8 /dev/urandom | tr -d ' \n')
marker="@@HWKVM-$nonce"
remaining=$((budget - SECONDS))
[ "$remaining" -gt 10 ] || boot_fail "no time left for QEMU (budget ${budget}s)"
qemu=(qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 -nographic -no-reboot -nic none
      -kernel "$kernel" -initrd "$initrd"
      -append "console=ttyS0 panic=-1 quiet loglevel=0 mitigations=off HWKVM_NONCE=$nonce HWKVM_TEST_TIMEOUT=$test_timeout")
note "running: ${qemu[*]} (time limit ${remaining}s)"
qemu_start=$SECONDS
timeout -k 2 "$((remaining - 2))" "${qemu[@]}" < /dev/null > "$work/console.raw" 2> "$work/qemu.err"
qemu_rc=$?
qemu_s=$((SECONDS - qemu_start))
tr -d '\r' < "$work/console.raw" > "$work/console.txt"
{ echo "# --- guest console"; cat "$work/console.txt"; echo "# --- qemu stderr"; cat "$work/qemu.err"; } >> "$log"

marker_field() {   # marker_field WORD FIELD: FIELD-th word after "$marker WORD" (first match)
    local v
    v=$(grep -o "$marker $1 .*" "$work/console.txt" | head -n 1 | cut -d' ' -f"$(($2 + 2))")
    echo "${v:--}"
}
why="qemu exit $qemu_rc"
[ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ] && why="the run's time limit of ${budget}s was reached"
grep -q "$marker BOOTED" "$work/console.txt" ||
    boot_fail "guest never reached /init ($why; see $log)"
if grep -q "$marker KVMFAIL" "$work/console.txt"; then
    boot_fail "$(grep -o "$marker KVMFAIL .*" "$work/console.txt" | head -n 1 | cut -d' ' -f3- |
                 sed 's/ *$//')"
fi
grep -q "$marker KVMREADY" "$work/console.txt" ||
    boot_fail "guest stopped before /dev/kvm was ready ($why; see $log)"
flavour=$(grep -o "$marker FLAVOUR .*" "$work/console.txt" | head -n 1 | cut -d' ' -f3-)
[ -n "$flavour" ] && note "flavour: $flavour"

all_ok=$list_ok
for i in "${!names[@]}"; do
    index=$(printf '%04d' "$i")
    result=$(grep -o "$marker RESULT $index .*" "$work/console.txt" | head -n 1)
    read -r _ _ _ got stdout_check timed_out _ <<< "$result"
    name=${names[$i]} expect=${expects[$i]}
    if [ -z "$result" ] || ! [[ $got =~ ^[0-9]+$ ]]; then
        echo "FAIL hwkvm/$name (no result: $why)"
        all_ok=0
    elif [ "$timed_out" = yes ]; then
        echo "FAIL hwkvm/$name (timed out after ${test_timeout}s, expected exit $expect)"
        all_ok=0
    elif [ "$got" != "$expect" ]; then
        echo "FAIL hwkvm/$name (exit $got, expected $expect)"
        all_ok=0
    elif [ "$stdout_check" = differs ]; then
        echo "FAIL hwkvm/$name (stdout differs, see $log)"
        all_ok=0
    else
        echo "PASS hwkvm/$name"
    fi
done
note "guest uptime at /init $(marker_field BOOTED 1) s, kvm ready $(marker_field KVMREADY 1) s, done $(marker_field DONE 1) s; QEMU wall ${qemu_s} s; total ${SECONDS} s"
[ "$all_ok" = 1 ]
