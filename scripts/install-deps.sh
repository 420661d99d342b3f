#!/bin/sh
# Installs the Debian packages the build and the tests need, and Bun for the randomness tests
# (into ~/.cache/kvmserver/bun, from npm); does nothing when all are present.
set -eu
# prometheus: only for /usr/bin/promtool (tests/e2e/test_metrics.py checks the exposition).
pkgs="meson ninja-build gcc clang libcmocka-dev libseccomp-dev python3-pytest musl-tools
      nodejs golang-go qemu-system-x86 busybox-static cpio wrk curl libclang-rt-14-dev
      prometheus"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
# npm (for Bun below) is its own Debian package, or comes with another build of nodejs.
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "installing:$missing"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi
bun_dir="$HOME/.cache/kvmserver/bun"
if [ ! -x "$bun_dir/node_modules/@oven/bun-linux-x64/bin/bun" ] && command -v npm >/dev/null; then
  echo "installing: bun (npm @oven/bun-linux-x64) into $bun_dir"
  mkdir -p "$bun_dir"
  npm install --no-save --no-audit --no-fund --prefix "$bun_dir" @oven/bun-linux-x64 >/dev/null ||
    echo "could not install bun: its tests will be skipped (a failure under CI)"
fi
