#!/bin/sh
# Installs the Debian packages the build and the tests need; does nothing when all are present.
set -eu
pkgs="meson ninja-build gcc clang libcmocka-dev python3-pytest musl-tools
      nodejs golang-go qemu-system-x86 busybox-static cpio wrk curl libclang-rt-14-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
