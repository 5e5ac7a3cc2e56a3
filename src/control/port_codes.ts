/**
 * The original's port-control error codes: for each function it names in `error_code_source`, its
 * return values and what they mean. The port-control service answers with these, and `vio4wd
 * port` explains them from the same table.
 *
 * @module
 */

/** One function's codes: by name for the server, by number for the client. */
export interface CodeTable<K extends string> {
  /** `error_code_source`, e.g. `virtio_forwarder_add_vf2()`. */
  readonly source: string;
  readonly code: Readonly<Record<K, number>>;
  readonly meaning: ReadonlyMap<number, string>;
}

function codeTable<K extends string>(source: string, entries: Record<K, readonly [number, string]>): CodeTable<K> {
  const list = Object.entries(entries) as [K, readonly [number, string]][];
  return {
    source,
    code: Object.fromEntries(list.map(([k, [n]]) => [k, n])) as Record<K, number>,
    meaning: new Map(list.map(([, [n, text]]) => [n, text])),
  };
}

const BUSY = "the relay already has a VF or bond: remove it first";
const BAD_ID = "relay id out of range";
const NO_DEVICE = "the relay has no device (use --conditional to accept that)";
const OTHER_DEVICE = "the relay holds a different device";

export const ADD_VF = codeTable("virtio_forwarder_add_vf2()", {
  ok: [0, "OK"],
  badId: [1, BAD_ID],
  probe: [
    2,
    "the device could not be probed (missing, not bound to vfio-pci, in use, or the DPDK port limit is reached)",
  ],
  configure: [4, "the device could not be configured (MTU)"],
  rxq: [5, "RX queue setup failed"],
  txq: [6, "TX queue setup failed"],
  busy: [8, BUSY],
  pool: [-1, "no memory for the relay's mbuf pool (more hugepages needed)"],
});

export const REMOVE_VF = codeTable("virtio_forwarder_remove_vf2()", {
  ok: [0, "OK"],
  badId: [1, BAD_ID],
  detach: [2, "detaching the device failed"],
  otherDevice: [3, OTHER_DEVICE],
  noDevice: [4, NO_DEVICE],
});

export const ADD_SOCK = codeTable("virtio_add_sock_dev_pair()", {
  ok: [0, "OK"],
  noPath: [-1, "--vhost-path is required"],
  deviceInUse: [-17, "the device is already attached"],
  pathInUse: [1, "the socket path is already registered"],
  noFreeRelay: [2, "no free relay (without dynamic sockets every relay owns its default socket)"],
  vf: [3, "the device could not be attached"],
  bond: [4, "the bond could not be created (see the daemon's log)"],
  socket: [
    5,
    "the socket could not be registered (its directory must be VIRTIOFWD_SOCKET_DIR, or a trusted one in VIO4WD_SOCKET_DIRS_ALLOW if set; see the daemon's log)",
  ],
});

export const REMOVE_SOCK = codeTable("virtio_remove_sock_dev_pair()", {
  ok: [0, "OK"],
  nothingGiven: [-1, "give --vhost-path or a device"],
  notFound: [1, "no relay has that socket (or device)"],
  otherDevice: [2, OTHER_DEVICE],
  socket: [3, "the socket could not be unregistered"],
  noDevice: [4, NO_DEVICE],
});

export const QUERY_PCI = codeTable("virtio_query_pci()", {
  ok: [0, "OK"],
  notFound: [2, "no relay has that socket path"],
});

export const ADD_BOND = codeTable("virtio_forwarder_bond_add()", {
  ok: [0, "OK"],
  badId: [1, BAD_ID],
  create: [2, "the bond could not be created (its name must start with net_bonding)"],
  memberInUse: [3, "a member device is already in use"],
  configure: [4, "the bond could not be configured"],
  member: [5, "a member device could not be probed or added"],
  start: [6, "the bond could not be started"],
  busy: [8, BUSY],
  pool: [-1, "no memory for the relay's mbuf pool (more hugepages needed)"],
});

const ALL = [ADD_VF, REMOVE_VF, ADD_SOCK, REMOVE_SOCK, QUERY_PCI, ADD_BOND];

/** What `code` from `source` means, or undefined for a pair the original does not define. */
export function meaningOf(source: string, code: number): string | undefined {
  return ALL.find((t) => t.source === source)?.meaning.get(code);
}
