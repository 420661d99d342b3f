#!/bin/sh
# Fetches a Debian 12 kernel (vmlinuz, a PVH-bootable vmlinux and the four KVM modules) for
# the hwkvm harness, once: later runs reuse the cache. Prints the kernel directory on stdout.
#   KVMS_CACHE       cache directory (default $HOME/.cache/kvmserver/hwkvm)
#   KVMS_KERNEL_ABI  e.g. 6.1.0-56 to pin a version; default: the cached one, else the one
#                    Debian's linux-image-amd64 depends on (after `apt-get update`).
set -eu

cache=${KVMS_CACHE:-${HOME:-/root}/.cache/kvmserver/hwkvm}
modules="irqbypass kvm ccp kvm-amd"   # load order: each needs the ones before it

say() { echo "hwkvm/prepare: $*" >&2; }
die() { say "$*"; exit 1; }

# Host tools: install what a fresh Debian 12 lacks when we are root, else say what is missing.
need_pkgs=""
need() { command -v "$1" >/dev/null 2>&1 || need_pkgs="$need_pkgs $2"; }
need qemu-system-x86_64 qemu-system-x86
need cpio cpio
need xz xz-utils
need gcc gcc
need apt-get apt
need flock util-linux
[ -x /bin/busybox ] || need_pkgs="$need_pkgs busybox-static"
[ -r /usr/include/linux/kvm.h ] && [ -r /usr/lib/x86_64-linux-gnu/libc.a ] || need_pkgs="$need_pkgs libc6-dev"
if [ -n "$need_pkgs" ]; then
    [ "$(id -u)" -eq 0 ] || die "missing packages:$need_pkgs (apt-get install them)"
    say "installing:$need_pkgs"
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need_pkgs >&2 \
        || die "apt-get install$need_pkgs failed (run apt-get update first?)"
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 600 9 || die "cache $cache is locked by another run"

is_complete() { [ -f "$1/.complete" ]; }

# A pinned or already cached kernel needs no registry access at all.
if [ -n "${KVMS_KERNEL_ABI:-}" ]; then
    abi=$KVMS_KERNEL_ABI
elif [ -L "$cache/current" ] && is_complete "$cache/current"; then
    readlink -f "$cache/current"
    exit 0
else
    # The version the archive's metapackage points at is the one guaranteed downloadable.
    abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
          sed -n 's/^ *Depends: linux-image-\(6\.1\.0-[0-9]*\)-amd64$/\1/p' | head -n 1)
    if [ -z "$abi" ]; then
        abi=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
              sed -n 's/^linux-image-\(6\.1\.0-[0-9]*\)-amd64 .*/\1/p' | sort -t- -k2 -n | tail -n 1)
    fi
    [ -n "$abi" ] || die "apt-cache knows no linux-image-6.1.0-*-amd64 (run apt-get update)"
fi
case $abi in
    6.1.0-[0-9]*) ;;
    *) die "unexpected kernel ABI '$abi' (want 6.1.0-N)" ;;
esac

kdir=$cache/$abi
if ! is_complete "$kdir"; then
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    pkg=linux-image-$abi-amd64
    say "downloading $pkg"
    started=$(date +%s)
    # _apt cannot write into root's private dirs: download as root without the sandbox warning.
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2) \
        || die "apt-get download $pkg failed"
    deb=$(ls "$tmp"/*.deb)
    say "downloaded $(du -k "$deb" | cut -f1) KiB in $(( $(date +%s) - started )) s"

    mkdir "$tmp/x" "$tmp/k"
    dpkg-deb --fsys-tarfile "$deb" |
        tar -x -C "$tmp/x" --wildcards './boot/vmlinuz-*' \
            './lib/modules/*/irqbypass.ko*' './lib/modules/*/kvm.ko*' \
            './lib/modules/*/ccp.ko*' './lib/modules/*/kvm-amd.ko*' \
        || die "extracting $deb failed"
    cp "$tmp/x/boot/vmlinuz-$abi-amd64" "$tmp/k/vmlinuz"
    mkdir "$tmp/k/modules"
    for m in $modules; do
        f=$(find "$tmp/x/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" | head -n 1)
        [ -n "$f" ] || die "$pkg has no $m.ko"
        case $f in
            *.xz) xz -dc "$f" > "$tmp/k/modules/$m.ko" ;;
            *) cp "$f" "$tmp/k/modules/$m.ko" ;;
        esac
    done

    # The bzImage carries the kernel as an XZ stream at (setup_sects + 1) * 512 +
    # payload_offset (boot protocol header fields 0x1f1 and 0x248). The ELF inside has a PVH
    # entry note, which lets QEMU skip the real-mode boot path (about twice as fast to /init).
    # Optional: run.sh falls back to vmlinuz when vmlinux is absent.
    z=$tmp/k/vmlinuz
    setup_sects=$(od -An -tu1 -j 497 -N1 "$z" | tr -d ' ')
    payload_offset=$(od -An -tu4 -j 584 -N4 "$z" | tr -d ' ')
    [ "$setup_sects" -eq 0 ] && setup_sects=4   # boot protocol: 0 means 4
    if tail -c +$(( (setup_sects + 1) * 512 + payload_offset + 1 )) "$z" |
           xz -dc --single-stream > "$tmp/k/vmlinux" 2>/dev/null &&
       [ "$(od -An -c -N4 "$tmp/k/vmlinux" | tr -d ' ')" = '177ELF' ]; then
        :
    else
        say "could not extract vmlinux from the bzImage; will boot vmlinuz"
        rm -f "$tmp/k/vmlinux"
    fi

    echo "$abi" > "$tmp/k/VERSION"
    touch "$tmp/k/.complete"
    rm -rf "$kdir"
    mv "$tmp/k" "$kdir"
    rm -rf "$tmp"
    trap - EXIT
fi
ln -sfn "$abi" "$cache/current"
echo "$kdir"
