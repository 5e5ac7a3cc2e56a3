/**
 * VIRTIOFWD_BIND_VFIO_PCI: the devices to hand to vfio-pci before DPDK starts, as the original's
 * pre-start script does: PCI addresses (`bb:dd.f` gets `0000:`), a PF's netdev (all its VFs) or
 * `netdev:count` (its first count VFs by address); de-duplicated and sorted. Each device not yet on
 * the driver gets `driver_override`, is unbound from its driver, probed again (`drivers_probe`),
 * and its override cleared. Nothing is restored on stop, as the original.
 *
 * @module
 */

import { basename } from "node:path";
import { isPciAddress, normalizePci } from "../config/values.ts";
import { errorText } from "../common/log.ts";

/** The driver DPDK needs the VFs on. */
export const VFIO_DRIVER = "vfio-pci";

/** One device of the list and what binding it did or would do. */
export interface Binding {
  pci: string;
  /** The driver it was on before ("" none). */
  from: string;
  /** already: on the driver; bound: moved to it now; failed: see `error`. */
  result: "already" | "bound" | "failed" | "pending";
  error?: string;
}

const realName = (path: string): string | null => {
  try {
    return basename(Deno.realPathSync(path));
  } catch {
    return null;
  }
};

/** The PCI addresses the list names, found through `<root>` (sysfs); throws naming a bad entry. */
export function expandBindList(items: readonly string[], root: string): string[] {
  const out = new Set<string>();
  for (const item of items) {
    if (isPciAddress(item)) {
      out.add(normalizePci(item));
      continue;
    }
    const [netdev, count] = item.split(":");
    const dev = `${root}/class/net/${netdev}/device`;
    let vfs: string[];
    try {
      vfs = [...Deno.readDirSync(dev)].filter((e) => /^virtfn\d+$/.test(e.name))
        .map((e) => realName(`${dev}/${e.name}`)).filter((x): x is string => x !== null).sort();
    } catch {
      throw new Error(`${netdev}: ${dev} does not exist: not a network interface with a PCI device`);
    }
    if (vfs.length === 0) throw new Error(`${netdev} has no VFs (${dev}/virtfn*): create them first`);
    for (const vf of count === undefined ? vfs : vfs.slice(0, Number(count))) out.add(vf);
  }
  return [...out].sort();
}

/** The driver `pci` is bound to now ("" none). */
export function currentDriver(pci: string, root: string): string {
  return realName(`${root}/bus/pci/devices/${pci}/driver`) ?? "";
}

/** What binding each device would do, without doing it (doctor). */
export function plannedBindings(pcis: readonly string[], root: string): Binding[] {
  return pcis.map((pci) => {
    const from = currentDriver(pci, root);
    return { pci, from, result: from === VFIO_DRIVER ? "already" : "pending" };
  });
}

/** Asks the kernel to probe `pci` again (it then honours driver_override). */
const probeThroughSysfs = (pci: string, root: string) => Deno.writeTextFileSync(`${root}/bus/pci/drivers_probe`, pci);

/**
 * Binds each device to vfio-pci through `<root>` (sysfs) and checks that it got there; one failure
 * does not stop the others. `probe` is the kernel's part (tests act it out on a fake tree).
 */
export function bindVfio(pcis: readonly string[], root: string, probe = probeThroughSysfs): Binding[] {
  return plannedBindings(pcis, root).map((b) => {
    if (b.result === "already") return b;
    const dev = `${root}/bus/pci/devices/${b.pci}`;
    try {
      Deno.writeTextFileSync(`${dev}/driver_override`, VFIO_DRIVER);
      if (b.from !== "") Deno.writeTextFileSync(`${dev}/driver/unbind`, b.pci);
      probe(b.pci, root);
      Deno.writeTextFileSync(`${dev}/driver_override`, "\0");
    } catch (e) {
      return { ...b, result: "failed", error: errorText(e) };
    }
    const now = currentDriver(b.pci, root);
    return now === VFIO_DRIVER ? { ...b, result: "bound" } : {
      ...b,
      result: "failed",
      error: `still on ${now || "no driver"} after probing: is the vfio-pci module loaded (modprobe vfio-pci)?`,
    };
  });
}
