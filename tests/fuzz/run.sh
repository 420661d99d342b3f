#!/bin/sh
# Builds the libFuzzer targets with ASan + UBSan and runs each for a bounded time:
#   elf        the ELF parser (src/vm/elf.c)
#   config     kvmserver.toml and the command line (src/cli)
#   transport  the shared-page syscall transport's handling of requests (src/vm/transport.c)
#   snapshot   the snapshot loader's checks (src/vm/snapfile.c, image.c, image_map.c, linux/snapshot_load.c)
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]   (default 20 s each, every target)
# Env: FUZZ_WORK_DIR=dir to keep the builds, corpora and logs (default: a temp dir, removed
#      on success). CC defaults to clang. KVMS_BUILD (default build): a kvmserver there makes
#      the snapshot fuzzer's seed (a real snapshot of examples/httpd) where KVM can be used.
# Prints one final line per target, "PASS fuzz_NAME" or "FAIL fuzz_NAME", and exits non-zero
# when any failed.
set -u

seconds=${1:-20}
[ $# -gt 0 ] && shift
targets=${*:-elf config transport snapshot}
root=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-clang}

case $seconds in
    ''|*[!0-9]*) echo "fuzz: SECONDS must be a number, got '$seconds'" >&2
                 echo "FAIL fuzz"; exit 1 ;;
esac

if [ -n "${FUZZ_WORK_DIR:-}" ]; then
    top=$FUZZ_WORK_DIR
    keep=1
    mkdir -p "$top"
else
    top=$(mktemp -d /tmp/fuzz.XXXXXX) || { echo "FAIL fuzz"; exit 1; }
    keep=0
fi

elf_seeds() {
    # The committed corpus plus small real programs (large ones slow every mutation).
    [ -d "$root/tests/fuzz/corpus" ] && cp "$root"/tests/fuzz/corpus/* "$work/corpus/" 2>/dev/null
    cp /bin/true "$work/corpus/bin_true"
    cat >"$work/tiny.c" <<'EOF'
__thread int tls_value = 1;
void _start(void)
{
    __asm__ volatile("syscall" :: "a"(60), "D"(tls_value) : "rcx", "r11", "memory");
    for (;;)
        ;
}
EOF
    printf 'int main(void) { return 0; }\n' >"$work/main.c"
    gcc -O2 -nostdlib -static "$work/tiny.c" -o "$work/corpus/tiny_static" 2>/dev/null
    gcc -O2 -nostdlib -static-pie -fPIE "$work/tiny.c" -o "$work/corpus/tiny_static_pie" 2>/dev/null
    command -v musl-gcc >/dev/null 2>&1 &&
        musl-gcc -O2 -static "$work/main.c" -o "$work/corpus/musl_static" 2>/dev/null
    [ -f "$work/corpus/tiny_static" ]
}

config_seeds() {
    # A file with every kind of value, and a command line (first byte 0, NUL-separated).
    printf 'threads = 2\nephemeral = true\nmax-boot-time = 2.5\n[run]\nallow-read = ["/a", "/b"]\nenv = ["K=V"]  # c\n' \
        >"$work/corpus/toml"
    printf '\000-e\000-t\0002\000--allow-listen=127.0.0.1:8000\000run\000prog\000arg\000' \
        >"$work/corpus/argv"
}

snapshot_seeds() {
    # A real snapshot of the example server, where this machine can make one (KVM); then
    # headers with no sections and with an empty section of every tag, and the real
    # snapshot cut down to one page of memory.
    build_dir=${KVMS_BUILD:-build}
    case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ -x "$build_dir/kvmserver" ]; then
        timeout 20 "$build_dir/kvmserver" --allow-listen snapshot -o "$work/httpd.snap" \
            "$build_dir/examples/httpd" "$port" >/dev/null 2>&1
    fi
    if [ -f "$work/httpd.snap" ]; then
        python3 "$root/tests/fuzz/snapshot_seeds.py" "$work/corpus" "$work/httpd.snap"
    else
        python3 "$root/tests/fuzz/snapshot_seeds.py" "$work/corpus"
    fi
}

# One target in a subshell: builds, seeds, runs; prints its PASS or FAIL line.
run_target() {
    name=fuzz_$1
    work=$top/$1
    mkdir -p "$work/corpus" "$work/artifacts"
    fail() {
        echo "$name: $1 (work dir: $work)" >&2
        echo "FAIL $name"
        exit 1
    }
    case $1 in
        elf) sources="$root/src/vm/elf.c" ;;
        config) sources="$(ls "$root"/src/cli/options_*.c) $root/src/cli/toml.c
                         $root/src/cli/env.c $root/src/base/log.c" ;;
        transport) sources="" ;;    # the target includes transport.c itself
        # What the loader hands on to KVM and the host is stubbed out in the target.
        snapshot) sources="-Wno-unused-parameter $root/src/vm/snapfile.c $root/src/vm/image.c
                           $root/src/vm/image_map.c
                           $root/src/linux/snapshot_load.c" ;;
        *) fail "no such target" ;;
    esac
    # shellcheck disable=SC2086
    "$cc" -std=c17 -g -O1 -Wall -Wextra -Werror -D_GNU_SOURCE \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$root/src" $sources "$root/tests/fuzz/$name.c" -o "$work/$name" -lm \
        >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "build failed"; }
    case $1 in
        elf) elf_seeds || fail "could not build the static seed" ;;
        config) config_seeds ;;
        snapshot) snapshot_seeds ;;
    esac
    # From the work dir: a command line looks for ./kvmserver.toml, and there is none there.
    cd "$work" || fail "no work dir"
    "$work/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" \
        >"$work/fuzz.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        tail -n 40 "$work/fuzz.log" >&2
        fail "fuzzer exited with $rc; reproducer in $work/artifacts/"
    fi
    grep -E '^stat::number_of_executed_units' "$work/fuzz.log" | sed "s/^/$name: /" >&2
    echo "PASS $name"
}

failed=0
for target in $targets; do
    (run_target "$target") || failed=1
done
[ $keep -eq 1 ] || [ $failed -ne 0 ] || rm -rf "$top"
exit $failed
