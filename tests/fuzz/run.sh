#!/bin/sh
# Builds the ELF parser fuzzer with libFuzzer + ASan + UBSan and runs it for a bounded time.
# Usage: tests/fuzz/run.sh [SECONDS]   (default 20)
# Env: FUZZ_WORK_DIR=dir to keep the build, corpus and log (default: a temp dir, removed on
#      success). CC defaults to clang.
# Prints exactly one final line, "PASS fuzz_elf" or "FAIL fuzz_elf", and exits non-zero on failure.
set -u

seconds=${1:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-clang}

case $seconds in
    ''|*[!0-9]*) echo "fuzz_elf: SECONDS must be a number, got '$seconds'" >&2
                 echo "FAIL fuzz_elf"; exit 1 ;;
esac

if [ -n "${FUZZ_WORK_DIR:-}" ]; then
    work=$FUZZ_WORK_DIR
    keep=1
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/fuzz_elf.XXXXXX) || { echo "FAIL fuzz_elf"; exit 1; }
    keep=0
fi

fail() {
    echo "fuzz_elf: $1 (work dir: $work)" >&2
    echo "FAIL fuzz_elf"
    exit 1
}


"$cc" -std=c17 -g -O1 -Wall -Wextra -Werror -D_GNU_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/src" "$root/src/vm/elf.c" "$root/tests/fuzz/fuzz_elf.c" -o "$work/fuzz_elf" \
    >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "build failed"; }

# Seeds: the committed corpus plus small real programs (large ones slow every mutation).
mkdir -p "$work/corpus" "$work/artifacts"
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
[ -f "$work/corpus/tiny_static" ] || fail "could not build the static seed"

"$work/fuzz_elf" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/fuzz.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    tail -n 40 "$work/fuzz.log" >&2
    fail "fuzzer exited with $rc; reproducer in $work/artifacts/"
fi
grep -E '^stat::number_of_executed_units' "$work/fuzz.log" | sed 's/^/fuzz_elf: /' >&2

[ $keep -eq 1 ] || rm -rf "$work"
echo "PASS fuzz_elf"
