#!/bin/sh
# Installs the Debian packages the build and the tests need, and from npm Bun, Deno, React and
# the Kubernetes schema models (under ~/.cache/kvmserver); does nothing when all are present.
set -eu
# prometheus: only for /usr/bin/promtool (tests/e2e/test_metrics.py checks the exposition);
# nginx-light, haproxy: the reverse-proxy recipes (test_proxy.py); yamllint: contrib/kubernetes;
# systemd: systemd-socket-activate and systemd-analyze (test_activation.py); memcached,
# redis-server: root-started daemons that drop their rights (test_daemons.py).
pkgs="meson ninja-build gcc clang libcmocka-dev libseccomp-dev python3-pytest musl-tools
      nodejs golang-go qemu-system-x86 busybox-static cpio wrk curl libclang-rt-14-dev
      prometheus nginx-light haproxy yamllint systemd memcached redis-server"
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
# JavaScript runtimes and packages from npm, each into its own folder under ~/.cache/kvmserver.
npm_install() {   # npm_install DIR FILE-THAT-SHOWS-IT-IS-THERE PACKAGE...
  dir="$HOME/.cache/kvmserver/$1"; probe="$2"; shift 2
  [ -e "$dir/node_modules/$probe" ] && return 0
  command -v npm >/dev/null || return 0
  echo "installing: $* (npm) into $dir"
  mkdir -p "$dir"
  npm install --no-save --no-audit --no-fund --prefix "$dir" "$@" >/dev/null ||
    echo "could not install $*: their tests will be skipped (a failure under CI)"
}
npm_install bun @oven/bun-linux-x64/bin/bun @oven/bun-linux-x64
npm_install deno @deno/linux-x64-glibc/deno @deno/linux-x64-glibc
npm_install react react-dom/server.js react react-dom
npm_install k8s kubernetes-models/package.json kubernetes-models yaml
