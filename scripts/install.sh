#!/usr/bin/env bash
# Installs vio4wd from this (set-up) checkout: the program under /usr/lib/vio4wd with its runtime
# (deno, the shim, the npm packages it imports), /usr/bin/vio4wd, the systemd units, the default
# configuration (kept if one exists) and the shell completions.
#   scripts/install.sh [--prefix DIR]     DIR: a staging root (default /)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    -h|--help) sed -n 2,6p "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (try --prefix DIR)" >&2; exit 2 ;;
  esac
done
for f in shim/build/libvio4wd_shim.so node_modules/deno/deno; do
  [ -e "$f" ] || { echo "install.sh: $f is missing: run scripts/setup.sh first" >&2; exit 1; }
done
root=${prefix%/}
lib=$root/usr/lib/vio4wd
say() { printf '  %s\n' "$*"; }

echo "installing vio4wd into ${prefix}"
rm -rf "$lib"
mkdir -p "$lib/shim/build" "$lib/node_modules/@bufbuild" "$lib/node_modules/@optique"
cp -r src ffi deno.json package.json README.md vio4wd "$lib/"
cp shim/build/libvio4wd_shim.so "$lib/shim/build/"
cp -r node_modules/deno "$lib/node_modules/"
cp -r node_modules/@bufbuild/protobuf "$lib/node_modules/@bufbuild/"
cp -r node_modules/@optique/core node_modules/@optique/run "$lib/node_modules/@optique/"
find "$lib/src" -name '*_test.ts' -delete
say "$lib"
mkdir -p "$root/usr/bin"
ln -sfn ../lib/vio4wd/vio4wd "$root/usr/bin/vio4wd"
say "$root/usr/bin/vio4wd"
# The original's program names: its clients where its Debian package (lib) and RHEL's and
# OpenStack's os-vif (lib64) have them, and its daemon.
for d in "$root/usr/lib/virtio-forwarder" "$root/usr/lib64/virtio-forwarder"; do
  install -d "$d"
  install -m 0755 scripts/original/virtioforwarder_*.py "$d/"
done
install -m 0755 scripts/original/virtio-forwarder "$root/usr/bin/virtio-forwarder"
say "the original's clients in $root/usr/lib/virtio-forwarder and $root/usr/lib64/virtio-forwarder, $root/usr/bin/virtio-forwarder"
mkdir -p "$root/lib/systemd/system"
install -m 0644 scripts/systemd/virtio-forwarder.service scripts/systemd/vio4wd_core_scheduler.service \
  "$root/lib/systemd/system/"
say "$root/lib/systemd/system/virtio-forwarder.service, vio4wd_core_scheduler.service (aliases vio4wd, vio4wd-sched)"
mkdir -p "$root/etc/default"
if [ -e "$root/etc/default/virtioforwarder" ]; then
  say "$root/etc/default/virtioforwarder kept (the shipped one is $lib/virtioforwarder.default)"
else
  install -m 0644 scripts/virtioforwarder.default "$root/etc/default/virtioforwarder"
  say "$root/etc/default/virtioforwarder"
fi
install -m 0644 scripts/virtioforwarder.default "$lib/virtioforwarder.default"
install -D -m 0644 completions/vio4wd.bash "$root/usr/share/bash-completion/completions/vio4wd"
install -D -m 0644 completions/vio4wd.zsh "$root/usr/share/zsh/vendor-completions/_vio4wd"
install -D -m 0644 completions/vio4wd.fish "$root/usr/share/fish/vendor_completions.d/vio4wd.fish"
say "completions for bash, zsh, fish"
if [ "$prefix" = / ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "next: edit /etc/default/virtioforwarder, then: systemctl enable --now virtio-forwarder"
fi
