#!/bin/sh
# Builds the e2e guest's initramfs: static busybox, the virtio-net modules of the guest kernel,
# ethtool (for 'ethtool -L' and per-queue counters) and init.sh as /init.
# usage: mkinitramfs.sh KERNEL_TREE OUT.cpio.gz   (KERNEL_TREE: an extracted linux-image .deb)
set -eu
kt=$(cd "${1:?kernel tree}" && pwd)
out=${2:?output file}
here=$(cd "$(dirname "$0")" && pwd)
kver=$(ls "$kt/lib/modules" | head -1)
root=$(mktemp -d "${TMPDIR:-/tmp}/vio4wd-initrd.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/sbin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/modules"
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
# in dependency order: virtio_ring <- virtio <- virtio_pci (+ its transports), failover <- virtio_net
md=$kt/lib/modules/$kver/kernel
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
  drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci net/core/failover \
  drivers/net/net_failover drivers/net/virtio_net; do
  for ext in ko ko.xz ko.zst; do
    if [ -f "$md/$m.$ext" ]; then
      cp "$md/$m.$ext" "$root/modules/"
      echo "$(basename "$m").$ext" >>"$root/modules/order"
    fi
  done
done
[ -s "$root/modules/order" ] || { echo "mkinitramfs: no virtio modules under $md" >&2; exit 1; }
ethtool=$(command -v ethtool || echo /usr/sbin/ethtool)
cp "$ethtool" "$root/sbin/ethtool"
for lib in $(ldd "$ethtool" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp "$here/init.sh" "$root/init"
chmod 755 "$root/init"
(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$out.tmp")
mv "$out.tmp" "$out"
