#!/usr/bin/env bash
# Builds dist/vio4wd_<version>_amd64.deb from this checkout (after scripts/setup.sh) with Debian's
# own tools (dpkg-deb, lintian): the program (the bundled JS on the packaged Deno runtime, so the
# host needs no Deno, node or npm), the shim, the systemd units under the original's names,
# /etc/default/virtioforwarder as a conffile, completions, the man page and the documentation.
#   scripts/build-deb.sh [--no-lintian]
set -euo pipefail
cd "$(dirname "$0")/.."
lint=1
if [ "${1:-}" = --no-lintian ]; then lint=0; fi
for f in shim/build/libvio4wd_shim.so node_modules/deno/deno; do
  [ -e "$f" ] || { echo "build-deb.sh: $f is missing: run scripts/setup.sh first" >&2; exit 1; }
done
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)
[ -n "$version" ] || { echo "build-deb.sh: no version in package.json" >&2; exit 1; }
deb=dist/vio4wd_${version}_amd64.deb
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
lib=$root/usr/lib/vio4wd
doc=$root/usr/share/doc/vio4wd

# The program: one bundled JS file, the Deno runtime that runs it, the shim.
install -d "$lib" "$root/usr/bin"
node_modules/deno/deno bundle --quiet --platform=deno -o "$lib/vio4wd.js" src/main.ts
install -m 0755 node_modules/deno/deno "$lib/deno"
install -m 0644 shim/build/libvio4wd_shim.so "$lib/libvio4wd_shim.so"
strip --strip-unneeded "$lib/libvio4wd_shim.so"
cat >"$root/usr/bin/vio4wd" <<'EOF'
#!/bin/sh
# vio4wd: the bundled program on the packaged Deno runtime (next to this script's ../lib/vio4wd).
lib=$(dirname "$(readlink -f "$0")")/../lib/vio4wd
cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/vio4wd-deno
[ "$(id -u)" = 0 ] && cache=/var/cache/vio4wd
# VIO4WD_SELF: what a hot upgrade (vio4wd upgrade) starts: this script, as installed then
VIO4WD_SELF=$(readlink -f "$0") VIO4WD_SHIM="$lib/libvio4wd_shim.so" DENO_DIR="$cache" DENO_NO_UPDATE_CHECK=1 \
  exec "$lib/deno" run --quiet --no-prompt --no-config --no-lock --no-remote --no-npm --cached-only \
  --allow-all "$lib/vio4wd.js" "$@"
EOF
chmod 0755 "$root/usr/bin/vio4wd"
# The original's program names: its clients at its Debian path and at the lib64 path RHEL's
# package had and OpenStack's os-vif runs, its daemon in /usr/bin (see the lintian overrides).
for d in "$root/usr/lib/virtio-forwarder" "$root/usr/lib64/virtio-forwarder"; do
  install -d "$d"
  install -m 0755 scripts/original/virtioforwarder_*.py "$d/"
done
install -m 0755 scripts/original/virtio-forwarder "$root/usr/bin/virtio-forwarder"

# Units, configuration, completions, man page, documentation.
install -d "$root/lib/systemd/system" "$root/etc/default" "$doc" "$root/usr/share/man/man8" "$root/var/cache/vio4wd"
install -m 0644 scripts/systemd/virtio-forwarder.service scripts/systemd/vio4wd_core_scheduler.service \
  "$root/lib/systemd/system/"
install -m 0644 scripts/virtioforwarder.default "$root/etc/default/virtioforwarder"
install -D -m 0644 completions/vio4wd.bash "$root/usr/share/bash-completion/completions/vio4wd"
install -D -m 0644 completions/vio4wd.zsh "$root/usr/share/zsh/vendor-completions/_vio4wd"
install -D -m 0644 completions/vio4wd.fish "$root/usr/share/fish/vendor_completions.d/vio4wd.fish"
gzip -9n <docs/vio4wd.8 >"$root/usr/share/man/man8/vio4wd.8.gz"
printf '.so man8/vio4wd.8\n' | gzip -9n >"$root/usr/share/man/man8/virtio-forwarder.8.gz"
for f in docs/manual.md docs/architecture.md README.md; do gzip -9n <"$f" >"$doc/$(basename "$f").gz"; done
cp scripts/debian/copyright "$doc/copyright"
gzip -9n <scripts/debian/changelog >"$doc/changelog.gz"
install -D -m 0644 scripts/debian/lintian-overrides "$root/usr/share/lintian/overrides/vio4wd"

# Control: dependencies are the packages of the libraries the shim and the runtime link, plus
# libzmq5 (opened at run time) and the tools the maintainer scripts use.
# The package of a library, by its path as linked, resolved, or on the other side of the /usr merge.
owner() {
  local p real
  real=$(readlink -f "$1")
  for p in "$1" "$real" "${real#/usr}" "/usr$1"; do
    dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
  done
  echo "build-deb.sh: no package owns $1" >&2
  return 1
}
pkgs=$(ldd "$lib/libvio4wd_shim.so" "$lib/deno" | awk '$3 ~ /^\// { print $3 }' | sort -u |
  while read -r l; do owner "$l"; done | sort -u | paste -sd, -)
[ -n "$pkgs" ] || { echo "build-deb.sh: could not find the packages of the linked libraries" >&2; exit 1; }
size=$(du -sk "$root" | cut -f1)
install -d "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: vio4wd
Version: $version
Architecture: amd64
Maintainer: vio4wd developers <dev@vio4wd.org>
Installed-Size: $size
Depends: ${pkgs//,/, }, libzmq5, adduser, init-system-helpers (>= 1.52)
Recommends: dpdk, libvirt-daemon-system
Conflicts: virtio-forwarder
Replaces: virtio-forwarder
Provides: virtio-forwarder
Section: net
Priority: optional
Homepage: https://vio4wd.org
Description: relay between SR-IOV VFs and VMs' virtio-net devices (virtio-forwarder)
 vio4wd forwards packets both ways between SR-IOV virtual functions, driven
 by DPDK poll-mode drivers, and the virtio-net devices of QEMU virtual
 machines, served as vhost-user backends. It is a drop-in replacement for
 virtio-forwarder: same configuration file, daemon options, ZeroMQ protocol
 and service names.
EOF
echo /etc/default/virtioforwarder >"$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "scripts/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's#  \./#  #') \
  >"$root/DEBIAN/md5sums"

mkdir -p dist
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "built $deb ($(du -h "$deb" | cut -f1))"
if [ "$lint" = 1 ]; then
  lintian --fail-on error "$deb"
  echo "lintian: no errors"
fi
