#!/bin/busybox sh
# /init of the hwkvm initramfs: loads kvm_amd (nested SVM under QEMU TCG), runs every test
# under /tests in order and reports on the serial console with marker lines
#   @@HWKVM-<nonce> RESULT <index> <exit> <stdout: ok|differs|-> <timed out: yes|no>
# that run.sh parses. The nonce (from the kernel command line) keeps test output that
# happens to look like a marker from being taken for one. Then powers off.
# Layout (made by run.sh): /bin/busybox, /modules/*.ko, /work = BUILD_DIR copy,
# /tests/NNNN/{name,cmd[,stdout]}.

/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin
# --install finds busybox through /proc/self/exe, so /proc comes first.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t sysfs sysfs /sys
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm

export PATH=/work:/bin:/sbin:/usr/bin:/usr/sbin HOME=/root HWKVM=1
m="@@HWKVM-${HWKVM_NONCE:-0}"
test_timeout=${HWKVM_TEST_TIMEOUT:-60}
uptime_s() { cut -d' ' -f1 /proc/uptime; }

power_off() {
    sync
    poweroff -f
    echo o > /proc/sysrq-trigger
    sleep 5
    exit 1   # last resort: init exiting panics, and panic=-1 with -no-reboot stops QEMU
}

echo "$m BOOTED $(uptime_s)"

for mod in irqbypass kvm ccp kvm-amd; do
    args=""
    # Nested SVM exists only with nested=1; shadow paging (npt=0) is faster under TCG.
    [ "$mod" = kvm-amd ] && args="nested=1 npt=0"
    # shellcheck disable=SC2086 # module parameters are separate words
    if ! err=$(insmod "/modules/$mod.ko" $args 2>&1); then
        echo "$m KVMFAIL insmod $mod.ko: $err" | tr '\n' ' '
        echo
        power_off
    fi
done
if [ ! -c /dev/kvm ]; then
    echo "$m KVMFAIL /dev/kvm missing after loading kvm-amd"
    power_off
fi
echo "$m KVMREADY $(uptime_s) nested=$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null)"

# Prints a capped copy of file $1, ending in a newline so the next marker starts a line.
show() {
    head -c 65536 "$1"
    [ -s "$1" ] && [ -n "$(head -c 65536 "$1" | tail -c 1)" ] && echo
}

flavour_done=0
for dir in /tests/*; do
    [ -f "$dir/cmd" ] || continue
    index=${dir##*/}
    cd /work || power_off
    started=$(date +%s)
    started_up=$(uptime_s)
    timeout -s KILL "$test_timeout" sh -c "$(cat "$dir/cmd")" </dev/null >/tmp/stdout 2>/tmp/stderr
    rc=$?
    timed_out=no
    [ "$rc" = 137 ] && [ $(( $(date +%s) - started )) -ge "$test_timeout" ] && timed_out=yes
    cd /
    stdout_check=-
    if [ -f "$dir/stdout" ]; then
        if cmp -s "$dir/stdout" /tmp/stdout; then stdout_check=ok; else stdout_check=differs; fi
    fi
    # The flavour kvmserver reports (e.g. "platform: hardware"), once, from the first run.
    if [ "$flavour_done" = 0 ] && grep -q kvmserver "$dir/cmd"; then
        flavour_done=1
        line=$(grep -m 1 'platform:' /tmp/stderr)
        [ -n "$line" ] && echo "$m FLAVOUR $line"
    fi
    # Output goes to the host's log; capped so one chatty test cannot stall the console.
    echo "$m LOG-BEGIN $index $(cat "$dir/name")"
    echo "--- stdout"
    show /tmp/stdout
    echo "--- stderr"
    show /tmp/stderr
    if [ "$stdout_check" = differs ]; then
        echo "--- stdout diff (expected vs got)"
        diff "$dir/stdout" /tmp/stdout | head -n 50
    fi
    echo "$m LOG-END $index (started at uptime $started_up s, ended $(uptime_s) s)"
    echo "$m RESULT $index $rc $stdout_check $timed_out"
done

echo "$m DONE $(uptime_s)"
power_off
