#!/usr/bin/env bash
# vio4wd setup on a fresh Debian machine: apt packages, deno and tools from npm (package-lock.json),
# the C shim, and 2 MiB hugepages. Idempotent: safe to re-run.
#   VIO4WD_HUGEPAGES=N   number of 2 MiB hugepages to reserve (default 1536: 64 relays at the
#                        original's pool size beside the tests' VM stand-ins)
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { printf '\n== %s\n' "$*"; }
APT_PACKAGES=(dpdk dpdk-dev libdpdk-dev pkg-config libzmq5 gcc make iproute2 procps
  bash-completion zsh fish protobuf-compiler openvswitch-switch-dpdk tmux prometheus libvirt-clients libxml2-utils systemd
  qemu-system-x86 busybox-static ethtool lintian man-db strace util-linux python3 tcpdump jq
  libvirt-daemon libvirt-daemon-driver-qemu)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; else SUDO=none; fi
fi

step "apt packages: ${APT_PACKAGES[*]}"
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "all installed"
elif [ "$SUDO" = none ]; then
  echo "not root: run these, then re-run scripts/setup.sh:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
else
  $SUDO apt-get update -q
  # Open vSwitch is for the tests and the bench, which start their own private instances: keep
  # its packages from starting system services while they install (policy-rc.d, removed after).
  rcd=/usr/sbin/policy-rc.d created_rcd=""
  if [ ! -e "$rcd" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rcd" >/dev/null && $SUDO chmod 755 "$rcd" && created_rcd=1
    trap '$SUDO rm -f "$rcd"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ -n "$created_rcd" ]; then $SUDO rm -f "$rcd"; trap - EXIT; fi
fi

step "npm ci (deno, dprint, CLI libraries; .npmrc: ignore-scripts)"
npm ci --no-audit --no-fund
export PATH="$PWD/node_modules/.bin:$PATH"
deno --version | head -1

step "build the shim (shim/build/libvio4wd_shim.so; the STEPS=1 profiling build and the tests' FAULTS=1 build)"
make -C shim
make -C shim STEPS=1
make -C shim FAULTS=1
deno cache --quiet src/main.ts

step "guest kernel for the QEMU end-to-end tests (apt-get download, extracted, not installed)"
guest=${VIO4WD_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vio4wd-guest}
if ls "$guest"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
  echo "cached: $(ls "$guest"/kernel/boot/vmlinuz-*)"
else
  # the cloud flavour boots in about 2 s under TCG; its virtio modules go into the test initramfs
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
  if [ -z "$pkg" ]; then
    echo "cannot resolve linux-image-cloud-amd64: run apt-get update, then re-run scripts/setup.sh" >&2
    exit 1
  fi
  mkdir -p "$guest/download"
  (cd "$guest/download" && apt-get download -q "$pkg")
  rm -rf "$guest/kernel.tmp" && mkdir -p "$guest/kernel.tmp"
  dpkg-deb -x "$guest/download/${pkg}"_*.deb "$guest/kernel.tmp"
  rm -rf "$guest/kernel" && mv "$guest/kernel.tmp" "$guest/kernel" && rm -rf "$guest/download"
  echo "extracted $pkg into $guest/kernel"
fi

step "accounts libvirt runs QEMU as (libvirt-qemu:kvm, also in group libvirt-qemu, as Debian's libvirt-daemon-system makes them)"
if getent passwd libvirt-qemu >/dev/null && getent group kvm >/dev/null && getent group libvirt-qemu >/dev/null; then
  echo "libvirt-qemu, kvm and group libvirt-qemu exist"
elif [ "$SUDO" = none ]; then
  echo "not root: create them with:  sudo groupadd -r kvm; sudo groupadd -r libvirt-qemu;" \
    "sudo useradd -r -g kvm -G libvirt-qemu -s /usr/sbin/nologin -M libvirt-qemu" >&2
else
  getent group kvm >/dev/null || $SUDO groupadd -r kvm
  getent group libvirt-qemu >/dev/null || $SUDO groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null || $SUDO useradd -r -g kvm -s /usr/sbin/nologin -M libvirt-qemu
  $SUDO usermod -a -G libvirt-qemu libvirt-qemu
  echo "accounts: $(id libvirt-qemu)"
fi

step "hugepages"
want=${VIO4WD_HUGEPAGES:-1536}
hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
have=$(cat "$hp" 2>/dev/null || echo 0)
if [ "$have" -ge "$want" ]; then
  echo "$have x 2 MiB reserved"
elif [ "$SUDO" = none ]; then
  echo "not root: reserve hugepages with:  echo $want | sudo tee $hp" >&2
else
  echo "$want" | $SUDO tee "$hp" >/dev/null
  echo "reserved $(cat "$hp") x 2 MiB (asked $want)"
fi
if mountpoint -q /dev/hugepages; then
  echo "hugetlbfs mounted at /dev/hugepages"
elif [ "$SUDO" = none ]; then
  echo "not root: mount hugetlbfs with:  sudo mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages" >&2
else
  $SUDO mkdir -p /dev/hugepages
  $SUDO mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
  echo "mounted hugetlbfs at /dev/hugepages"
fi

echo
echo "setup done in $(($(date +%s) - t0)) s; try: ./vio4wd demo"
