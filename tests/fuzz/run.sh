#!/bin/sh
# Builds the fuzzers with libFuzzer + ASan + UBSan and runs each for a bounded time: the ELF
# parser (fuzz_elf) and the snapshot loader's checks (fuzz_snapshot).
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]   (default 20 seconds each; elf snapshot)
# Env: FUZZ_WORK_DIR=dir to keep the builds, corpora and logs (default: a temp dir, removed on
#      success). CC defaults to clang. KVMS_BUILD (default build): a kvmserver there makes the
#      snapshot fuzzer's seed (a real snapshot of examples/httpd) where KVM can be used.
# Prints one line per target, "PASS fuzz_NAME" or "FAIL fuzz_NAME", and exits non-zero if
# any failed.
set -u

seconds=${1:-20}
[ $# -gt 0 ] && shift
targets=${*:-elf snapshot}
root=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-clang}

case $seconds in
    ''|*[!0-9]*) echo "fuzz: SECONDS must be a number, got '$seconds'" >&2
                 echo "FAIL fuzz"; exit 1 ;;
esac

if [ -n "${FUZZ_WORK_DIR:-}" ]; then
    work=$FUZZ_WORK_DIR
    keep=1
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/fuzz.XXXXXX) || { echo "FAIL fuzz"; exit 1; }
    keep=0
fi

failed=0
fail() {
    echo "fuzz_$name: $1 (work dir: $work)" >&2
    echo "FAIL fuzz_$name"
    failed=1
}

flags="-std=c17 -g -O1 -Wall -Wextra -Werror -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I$root/src"

# ELF: the committed corpus plus small real programs (large ones slow every mutation).
build_elf() {
    "$cc" $flags "$root/src/vm/elf.c" "$root/tests/fuzz/fuzz_elf.c" -o "$dir/fuzz"
}
seeds_elf() {
    [ -d "$root/tests/fuzz/corpus" ] && cp "$root"/tests/fuzz/corpus/* "$dir/corpus/" 2>/dev/null
    cp /bin/true "$dir/corpus/bin_true"
    cat >"$dir/tiny.c" <<'EOF'
__thread int tls_value = 1;
void _start(void)
{
    __asm__ volatile("syscall" :: "a"(60), "D"(tls_value) : "rcx", "r11", "memory");
    for (;;)
        ;
}
EOF
    printf 'int main(void) { return 0; }\n' >"$dir/main.c"
    gcc -O2 -nostdlib -static "$dir/tiny.c" -o "$dir/corpus/tiny_static" 2>/dev/null
    gcc -O2 -nostdlib -static-pie -fPIE "$dir/tiny.c" -o "$dir/corpus/tiny_static_pie" 2>/dev/null
    command -v musl-gcc >/dev/null 2>&1 &&
        musl-gcc -O2 -static "$dir/main.c" -o "$dir/corpus/musl_static" 2>/dev/null
    [ -f "$dir/corpus/tiny_static" ]
}

# Snapshot: the container, engine and process decoders (what they hand on to KVM and the
# host is stubbed out: the checks must not reach it).
build_snapshot() {
    "$cc" $flags -Wno-unused-parameter "$root/src/vm/snapfile.c" "$root/src/vm/image.c" \
        "$root/src/linux/snapshot_load.c" \
        "$root/tests/fuzz/fuzz_snapshot.c" -o "$dir/fuzz"
}
seeds_snapshot() {
    # A real snapshot of the example server, where this machine can make one (KVM).
    build_dir=${KVMS_BUILD:-build}
    case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ -x "$build_dir/kvmserver" ]; then
        timeout 20 "$build_dir/kvmserver" --allow-listen snapshot -o "$dir/httpd.snap" \
            "$build_dir/examples/httpd" "$port" >/dev/null 2>&1
    fi
    # Headers with no sections and with an empty section of every tag; the real snapshot
    # cut down to one page of memory.
    if [ -f "$dir/httpd.snap" ]; then
        python3 "$root/tests/fuzz/snapshot_seeds.py" "$dir/corpus" "$dir/httpd.snap"
    else
        python3 "$root/tests/fuzz/snapshot_seeds.py" "$dir/corpus"
    fi
}

for name in $targets; do
    dir=$work/$name
    mkdir -p "$dir/corpus" "$dir/artifacts"
    if ! build_$name >"$dir/build.log" 2>&1; then
        cat "$dir/build.log" >&2
        fail "build failed"
        continue
    fi
    if ! seeds_$name; then
        fail "could not make the seeds"
        continue
    fi
    "$dir/fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/fuzz.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        tail -n 40 "$dir/fuzz.log" >&2
        fail "fuzzer exited with $rc; reproducer in $dir/artifacts/"
        continue
    fi
    grep -E '^stat::number_of_executed_units' "$dir/fuzz.log" | sed "s/^/fuzz_$name: /" >&2
    echo "PASS fuzz_$name"
done

[ $keep -eq 1 ] || [ $failed -ne 0 ] || rm -rf "$work"
exit $failed
