/**
 * Which device strings a client (ZeroMQ port control, OVSDB, the IPC file) may make the daemon
 * probe. A device string reaches DPDK as root: `net_pcap0,tx_pcap=/any/file` overwrites a file,
 * `net_tap0,remote=eth0` puts a host interface into a VM, `net_memif0,socket=/anywhere` makes a
 * socket anywhere. So by default clients may name only SR-IOV VFs by PCI address; an operator
 * opens named drivers with VIO4WD_DEVARGS_ALLOW, each with a fixed set of keys, and every path
 * they take must lie inside the socket directory (and memif's socket must be a file there, not
 * its default abstract socket, which any local user can reach). The root-owned config file
 * (static VFs) is not restricted.
 *
 * @module
 */

import { isPciAddress, normalizePci, ValueError } from "./values.ts";

/** The drivers a client may be allowed, each with its keys; keys naming a file are in `paths`. */
export const CLIENT_DRIVERS: Readonly<Record<string, { keys: readonly string[]; paths: readonly string[] }>> = {
  net_null: { keys: ["size", "copy", "no-rx"], paths: [] },
  net_memif: {
    keys: ["id", "role", "bsize", "rsize", "socket", "socket-abstract", "mac", "zero-copy"],
    paths: ["socket"],
  },
  net_tap: { keys: ["iface", "mac"], paths: [] }, // not `remote`: it captures a host interface
  // not `server`: the probe would wait for a peer to connect, holding the daemon
  net_virtio_user: {
    keys: ["path", "queues", "queue_size", "mac", "mrg_rxbuf", "in_order", "packed_vq"],
    paths: ["path"],
  },
  net_vhost: { keys: ["iface", "queues", "client"], paths: ["iface"] },
};

/** VIO4WD_DEVARGS_ALLOW: a comma-separated list of drivers from CLIENT_DRIVERS. */
export function parseDriverList(raw: string): string[] {
  const allowed = `a comma-separated list of drivers clients may use: ${Object.keys(CLIENT_DRIVERS).join(", ")}`;
  const items = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const it of items) {
    if (!(it in CLIENT_DRIVERS)) throw new ValueError(allowed, `'${it}' is not one of them`);
  }
  return items;
}

/** VIO4WD_PCI_ALLOW: PCI addresses clients may use although they are not SR-IOV VFs. */
export function parsePciList(raw: string): string[] {
  const items = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const it of items) {
    if (!isPciAddress(it)) throw new ValueError("a comma-separated list of PCI addresses", `'${it}' is not one`);
  }
  return items.map(normalizePci);
}

/** What a client's device string is checked against. */
export interface ClientDevicePolicy {
  /** Drivers clients may use (VIO4WD_DEVARGS_ALLOW). */
  drivers: readonly string[];
  /** PCI addresses clients may use besides SR-IOV VFs (VIO4WD_PCI_ALLOW), normalised. */
  pci: readonly string[];
  /** Paths in device strings must lie inside it. */
  socketDir: string;
  /** Whether a PCI address is an SR-IOV VF (has a physfn in sysfs). */
  isVf(pci: string): boolean;
  /**
   * Why the vhost-user peer socket a net_virtio_user device would connect to is not to be used,
   * or null: DPDK's probe waits for the peer's answers on the daemon's thread, so only a socket of
   * root's or the daemon's may be named (a peer that never answers would hold the daemon).
   */
  untrustedPeerSocket(path: string): string | null;
}

/**
 * Why a client may not use `device`, naming the rule and the variable that would allow it; null
 * when it may. `role` says what the string is for ("device" or "bond name").
 */
export function clientDeviceRefusal(device: string, p: ClientDevicePolicy): string | null {
  const [name, ...args] = device.split(",");
  if (isPciAddress(name)) {
    if (args.length > 0) return `a PCI device from a client takes no arguments ('${device}')`;
    const pci = normalizePci(name);
    if (p.pci.includes(pci) || p.isVf(pci)) return null;
    return `${pci} is not an SR-IOV VF (no physfn in sysfs); list it in VIO4WD_PCI_ALLOW to let clients use it`;
  }
  const driver = Object.keys(CLIENT_DRIVERS).filter((d) => name.startsWith(d) && /^\w*$/.test(name.slice(d.length)))
    .sort((a, b) => b.length - a.length)[0];
  if (driver === undefined || !p.drivers.includes(driver)) {
    const what = driver ?? name.replace(/\d+$/, "");
    return `device strings of driver ${what} are not allowed from clients` +
      (driver
        ? ` (add ${driver} to VIO4WD_DEVARGS_ALLOW)`
        : ` (clients may use ${Object.keys(CLIENT_DRIVERS).join(", ")} when VIO4WD_DEVARGS_ALLOW lists them)`);
  }
  const rule = CLIENT_DRIVERS[driver];
  const dir = p.socketDir.replace(/\/+$/, "");
  for (const arg of args) {
    const eq = arg.indexOf("=");
    const key = eq < 0 ? arg : arg.slice(0, eq), value = eq < 0 ? "" : arg.slice(eq + 1);
    if (!rule.keys.includes(key)) {
      return `${driver} key '${key}' is not allowed from clients (allowed: ${rule.keys.join(", ")})`;
    }
    if (rule.paths.includes(key) && !insideDir(value, dir)) {
      return `${driver} ${key}=${value} is not a path inside the socket directory ${dir}`;
    }
    const untrusted = driver === "net_virtio_user" && key === "path" ? p.untrustedPeerSocket(value) : null;
    if (untrusted) return `${driver} ${key}=${value}: ${untrusted}`;
  }
  if (driver === "net_memif" && !args.includes("socket-abstract=no")) {
    // the socket directory's permissions guard only a file; and a peer that hangs up before
    // memif's hello makes DPDK 22.11 panic
    return `${driver} from a client needs socket-abstract=no: its default, an abstract socket, is open to every ` +
      `local user whatever the socket directory`;
  }
  return null;
}

/** `path` is absolute, inside `dir`, with no `.`/`..` parts or empty parts. */
function insideDir(path: string, dir: string): boolean {
  if (!path.startsWith(dir + "/")) return false;
  return path.slice(dir.length + 1).split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

/** A bond name from a client: net_bonding plus letters, digits or `_`, nothing after it. */
export function clientBondNameRefusal(name: string): string | null {
  return /^net_bonding\w*$/.test(name) ? null : `bond name '${name}' must be net_bonding followed by letters or digits`;
}
