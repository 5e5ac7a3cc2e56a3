/**
 * Where sysfs is: `/sys`, or the tree VIO4WD_SYSFS_ROOT names (tests lay out fake ones).
 *
 * @module
 */

/** The root of the sysfs tree read and written (`/sys` unless VIO4WD_SYSFS_ROOT is set). */
export function sysfsRoot(): string {
  return Deno.env.get("VIO4WD_SYSFS_ROOT") ?? "/sys";
}

/**
 * The DPDK device standing in for PCI device `pci` in a fake sysfs tree: the devargs written in
 * `<root>/bus/pci/devices/<pci>/vio4wd_standin` (tests give a VF stand-in, e.g. a net_tap, the
 * PCI address of a VF, so that the clients' PCI path runs end to end on a machine without SR-IOV).
 * Read only when VIO4WD_SYSFS_ROOT names a tree other than /sys; null otherwise or without one.
 */
export function pciStandIn(pci: string): string | null {
  const root = sysfsRoot();
  if (root.replace(/\/+$/, "") === "/sys") return null;
  try {
    return Deno.readTextFileSync(`${root}/bus/pci/devices/${pci}/vio4wd_standin`).trim() || null;
  } catch {
    return null;
  }
}
