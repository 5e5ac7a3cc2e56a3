#!/bin/sh
# The benchmark (scripts/bench.ts): vio4wd against dpdk-testpmd and OVS-DPDK in one run.
#   scripts/bench.sh [--quick] [--rounds N] [--seconds S] [--json] [--write]
# Needs root, hugepages (about 1.5 GiB free), dpdk-testpmd and openvswitch-switch-dpdk:
# scripts/setup.sh installs and reserves them.
set -eu
cd "$(dirname "$0")/.."
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free:-0}" -lt 700 ]; then
  echo "bench: only ${free:-0} free 2 MiB hugepages; needs 700: echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" >&2
  exit 1
fi
exec node_modules/deno/deno run --no-prompt --allow-all scripts/bench.ts "$@"
