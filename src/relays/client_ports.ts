/**
 * The relay table as clients reach it (ZeroMQ port control, OVSDB, the IPC file): the same
 * operations, but every device string and bond name is checked against the client device policy
 * first (src/config/client_devices.ts). A refusal is a RelayError, so each channel answers with
 * the original's error code for a failed probe and logs the rule that refused.
 *
 * @module
 */

import { clientBondNameRefusal, type ClientDevicePolicy, clientDeviceRefusal } from "../config/client_devices.ts";
import { sysfsRoot } from "../common/sysfs.ts";
import { ERRNO } from "../../ffi/errno.ts";
import { RelayError, type RelayPorts } from "./table.ts";

const { EPERM, EBUSY } = ERRNO;

/** A client's device string or bond name was refused by the client device policy. */
export class ClientDeviceRefused extends RelayError {
  constructor(readonly what: "device" | "bond name", why: string) {
    super(EPERM, `refused for a client: ${why}`);
    this.name = "ClientDeviceRefused";
  }
}

/** Whether `pci` is an SR-IOV VF: the kernel links its physical function as `physfn`. */
export function isSriovVf(pci: string, sys = sysfsRoot()): boolean {
  try {
    Deno.lstatSync(`${sys}/bus/pci/devices/${pci}/physfn`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a net_virtio_user peer socket at `path` is not to be used: not a socket, or not root's or
 * the daemon's (checked without following a link). Null when it may be.
 */
export function untrustedPeerSocket(path: string): string | null {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch {
    return "no socket there (the peer must listen before the device is added)";
  }
  if (!st.isSocket) return "not a socket";
  const self = Deno.uid() ?? 0;
  if (st.uid !== 0 && st.uid !== self) {
    return `a socket of uid ${st.uid}, not of root's: the probe waits for its peer on the daemon's thread, and ` +
      "a peer that never answers would hold the daemon";
  }
  return null;
}

/**
 * `ports` with device strings from clients checked against `policy`; while `busy` says why (a hot
 * upgrade hands the relays over), every change is refused with EBUSY.
 */
export function clientPorts(
  ports: RelayPorts,
  policy: ClientDevicePolicy,
  busy: () => string | null = () => null,
): RelayPorts {
  const check = (what: ClientDeviceRefused["what"], why: string | null) => {
    if (why !== null) throw new ClientDeviceRefused(what, why);
  };
  /** Changes wait while the relays are being handed to another daemon (hot upgrade). */
  const free = () => {
    const why = busy();
    if (why !== null) throw new RelayError(EBUSY, why);
  };
  return {
    get limits() {
      return ports.limits;
    },
    get: (id) => ports.get(id),
    list: () => ports.list(),
    findBySocket: (path) => ports.findBySocket(path),
    findByDevice: (device) => ports.findByDevice(device),
    defaultSocketPath: (id) => ports.defaultSocketPath(id),
    addSocket: (id, path) => (free(), ports.addSocket(id, path)),
    removeSocket: (id) => (free(), ports.removeSocket(id)),
    removeVf: (id) => (free(), ports.removeVf(id)),
    addVf(id, device) {
      free();
      check("device", clientDeviceRefusal(device, policy));
      ports.addVf(id, device);
    },
    addBond(id, name, mode, members) {
      free();
      check("bond name", clientBondNameRefusal(name));
      for (const m of members) check("device", clientDeviceRefusal(m, policy));
      ports.addBond(id, name, mode, members);
    },
  };
}
