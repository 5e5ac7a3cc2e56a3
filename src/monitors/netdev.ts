/**
 * Which VF (PCI address) and relay id a Linux network interface stands for, from sysfs:
 * `/sys/class/net/<if>/device` is the VF's PCI device, and its number among the PF's
 * `physfn/virtfn<N>` links is the relay id (the original read the same from Netronome's
 * `ethtool -i` text). `VIO4WD_SYSFS_ROOT` points at another tree (tests).
 *
 * @module
 */

import { basename } from "node:path";
import { sysfsRoot } from "../common/sysfs.ts";

/** A VF and the relay it belongs to. */
export interface VfMapping {
  device: string;
  relay: number;
}

/** Maps `netdev` through sysfs; throws an Error saying what is missing. */
export function mapNetdev(netdev: string, root = sysfsRoot()): VfMapping {
  if (!/^[^/\s]{1,15}$/.test(netdev)) throw new Error(`'${netdev}' is not a network interface name`);
  const dev = `${root}/class/net/${netdev}/device`;
  let pci: string;
  try {
    pci = basename(Deno.realPathSync(dev));
  } catch {
    throw new Error(`${dev} does not exist: '${netdev}' is not a PCI network interface`);
  }
  if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(pci)) {
    throw new Error(`${dev} points at '${pci}', not a PCI device`);
  }
  let physfn: string;
  try {
    physfn = Deno.realPathSync(`${dev}/physfn`);
  } catch {
    throw new Error(`${pci} (${netdev}) has no physfn link: it is not an SR-IOV VF`);
  }
  for (const e of Deno.readDirSync(physfn)) {
    const m = /^virtfn(\d+)$/.exec(e.name);
    if (!m) continue;
    let target: string;
    try {
      target = basename(Deno.realPathSync(`${physfn}/${e.name}`));
    } catch {
      continue;
    }
    if (target !== pci) continue;
    return { device: pci, relay: Number(m[1]) }; // the relay table checks the range
  }
  throw new Error(`${pci} (${netdev}) is not among ${physfn}/virtfn*`);
}
