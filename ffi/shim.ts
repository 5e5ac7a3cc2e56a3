/**
 * The FFI surface of the C shim (shim/vio4wd_shim.h): its symbol table, the layout of the memory
 * it shares (from ffi/layout.ts, generated from the header), and the loader. Nothing else:
 * src/dataplane/ wraps this in typed classes.
 *
 * @module
 */

import { SHIM_CONSTANTS as C, SHIM_ENUMS, SHIM_STRUCTS as S } from "./layout.ts";

/** Every exported shim function, with its C prototype. */
export const symbols = {
  // const char *vio4wd_version(void)
  vio4wd_version: { parameters: [], result: "pointer" },
  // const char *vio4wd_last_error(void)
  vio4wd_last_error: { parameters: [], result: "pointer" },
  // int vio4wd_last_error_stage(void)
  vio4wd_last_error_stage: { parameters: [], result: "i32" },
  // struct vio4wd_shared *vio4wd_shared(void)
  vio4wd_shared: { parameters: [], result: "pointer" },
  // void vio4wd_limits(struct vio4wd_limits *out)
  vio4wd_limits: { parameters: ["buffer"], result: "void" },
  // int vio4wd_init(const char *args_nl, uint32_t mbuf_data_size, uint32_t flags, uint32_t event_queue_cap)
  vio4wd_init: { parameters: ["buffer", "u32", "u32", "u32"], result: "i32" },
  // int vio4wd_shutdown(void)
  vio4wd_shutdown: { parameters: [], result: "i32" },
  // void vio4wd_log_to_fd(int fd)
  vio4wd_log_to_fd: { parameters: ["i32"], result: "void" },
  // int vio4wd_socket_register(uint32_t relay, const char *path, uint32_t flags, const char *owner, const char *group)
  vio4wd_socket_register: { parameters: ["u32", "buffer", "u32", "buffer", "buffer"], result: "i32" },
  // int vio4wd_socket_unregister(uint32_t relay)
  vio4wd_socket_unregister: { parameters: ["u32"], result: "i32" },
  // int vio4wd_handover_check(uint32_t relay, char *why, uint32_t why_size)
  vio4wd_handover_check: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // int vio4wd_handover_quiesce(uint32_t relay, char *why, uint32_t why_size)
  vio4wd_handover_quiesce: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // void vio4wd_handover_resume(uint32_t relay)
  vio4wd_handover_resume: { parameters: ["u32"], result: "void" },
  // int vio4wd_handover_send(uint32_t relay, const char *path, char *why, uint32_t why_size): blocks
  vio4wd_handover_send: { parameters: ["u32", "buffer", "buffer", "u32"], result: "i32", nonblocking: true },
  // int vio4wd_handover_listen(const char *path)
  vio4wd_handover_listen: { parameters: ["buffer"], result: "i32" },
  // int vio4wd_handover_adopt(uint32_t relay, uint32_t timeout_ms, char *why, uint32_t why_size): blocks
  vio4wd_handover_adopt: { parameters: ["u32", "u32", "buffer", "u32"], result: "i32", nonblocking: true },
  // int vio4wd_vf_attach(uint32_t relay, const char *devargs, uint32_t mtu)
  vio4wd_vf_attach: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // int vio4wd_vf_detach(uint32_t relay)
  vio4wd_vf_detach: { parameters: ["u32"], result: "i32" },
  // int vio4wd_vf_flush_at_start(uint32_t relay)
  vio4wd_vf_flush_at_start: { parameters: ["u32"], result: "i32" },
  // int vio4wd_vf_reset(uint32_t relay)
  vio4wd_vf_reset: { parameters: ["u32"], result: "i32" },
  // int vio4wd_bond_attach(uint32_t relay, const char *name, uint32_t mode, const char *members_nl, uint32_t mtu)
  vio4wd_bond_attach: { parameters: ["u32", "buffer", "u32", "buffer", "u32"], result: "i32" },
  // int vio4wd_relay_set_cpus(uint32_t relay, int32_t vf_to_vm_cpu, int32_t vm_to_vf_cpu)
  vio4wd_relay_set_cpus: { parameters: ["u32", "i32", "i32"], result: "i32" },
  // int vio4wd_relay_report(uint32_t relay, struct vio4wd_relay_report *out)
  vio4wd_relay_report: { parameters: ["u32", "buffer"], result: "i32" },
  // uint64_t vio4wd_hugepage_bytes_used(void)
  vio4wd_hugepage_bytes_used: { parameters: [], result: "u64" },
  // void vio4wd_set_idle_sleep(uint32_t us)
  vio4wd_set_idle_sleep: { parameters: ["u32"], result: "void" },
  // int vio4wd_place_threads(void)
  vio4wd_place_threads: { parameters: [], result: "i32" },
  // void vio4wd_bonds_supervise(void)
  vio4wd_bonds_supervise: { parameters: [], result: "void" },
  // int vio4wd_next_event(struct vio4wd_event *ev)
  vio4wd_next_event: { parameters: ["buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded shim. */
export type ShimLibrary = Deno.DynamicLibrary<typeof symbols>;

/** The ABI version this binding speaks (VIO4WD_SHIM_ABI). */
export const SHIM_ABI = C.SHIM_ABI;

/** `struct vio4wd_limits`: what the shim can hold. */
export interface ShimLimits {
  abi: number;
  maxRelays: number;
  maxWorkers: number;
  maxQueuePairs: number;
  maxBondMembers: number;
  /** DPDK ethdev ports per process (RTE_MAX_ETHPORTS). */
  maxPorts: number;
  /** Default capacity of the event queue. */
  eventQueueCap: number;
  /** Mbufs of a relay's pool per VF port (a bond: per member). */
  poolMbufs: number;
}

/** A field of a struct of the header, as ffi/layout.ts describes it. */
export type ShimField = {
  readonly type: string;
  readonly offset: number;
  readonly size: number;
  readonly count: number;
};

/** Element `index` of an integer field of at most 32 bits, at `base` in `dv` (little-endian, signed as its C type). */
export function readNumber(dv: DataView, f: ShimField, index = 0, base = 0): number {
  const at = base + f.offset + index * f.size;
  switch (f.type) {
    case "uint8_t":
      return dv.getUint8(at);
    case "uint16_t":
      return dv.getUint16(at, true);
    case "uint32_t":
      return dv.getUint32(at, true);
    case "int32_t":
      return dv.getInt32(at, true);
  }
  throw new Error(`readNumber: a ${f.type} field is not read as a number`);
}

/** Element `index` of a 64-bit unsigned field, at `base` in `dv`. */
export function readBigint(dv: DataView, f: ShimField, index = 0, base = 0): bigint {
  if (f.type !== "uint64_t") throw new Error(`readBigint: a ${f.type} field is not read as a bigint`);
  return dv.getBigUint64(base + f.offset + index * f.size, true);
}

/** Reads `struct vio4wd_limits` from a loaded shim. */
export function readLimits(lib: ShimLibrary): ShimLimits {
  const b = new Uint8Array(S.vio4wd_limits.size);
  lib.symbols.vio4wd_limits(b);
  const dv = new DataView(b.buffer), f = S.vio4wd_limits.fields;
  return {
    abi: readNumber(dv, f.abi),
    maxRelays: readNumber(dv, f.max_relays),
    maxWorkers: readNumber(dv, f.max_workers),
    maxQueuePairs: readNumber(dv, f.max_queue_pairs),
    maxBondMembers: readNumber(dv, f.max_bond_members),
    maxPorts: readNumber(dv, f.max_ports),
    eventQueueCap: readNumber(dv, f.event_queue_cap),
    poolMbufs: readNumber(dv, f.pool_mbufs),
  };
}

/**
 * What is wrong with a loaded shim for this binding, or null: another ABI, or limits other than
 * the header this binding was generated from (a library built from another vio4wd_shim.h).
 */
export function shimMismatch(l: ShimLimits): string | null {
  if (l.abi !== SHIM_ABI) return `the data-plane library speaks ABI ${l.abi}, this vio4wd ABI ${SHIM_ABI}`;
  const want = { maxRelays: C.MAX_RELAYS, maxWorkers: C.MAX_WORKERS, maxQueuePairs: C.MAX_QUEUE_PAIRS };
  for (const [k, v] of Object.entries(want)) {
    const got = l[k as keyof typeof want];
    if (got !== v) return `the data-plane library holds ${k} ${got}, its header ${v}`;
  }
  return null;
}

let cachedLimits: ShimLimits | null = null;
/** The shim's limits, loading it once for that if needed (before any EAL init). */
export function shimLimits(): ShimLimits {
  if (!cachedLimits) {
    const lib = openShim();
    try {
      cachedLimits = readLimits(lib);
    } finally {
      lib.close();
    }
  }
  return cachedLimits;
}

/**
 * Where things are in `struct vio4wd_shared` (shim/vio4wd_shim.h, through ffi/layout.ts): a
 * header (worker count, event overflows, TSC frequency), the relays' counters, then the workers'.
 */
export const SHARED_LAYOUT = {
  nWorkers: S.vio4wd_shared.fields.n_workers,
  eventOverflows: S.vio4wd_shared.fields.event_overflows,
  tscHz: S.vio4wd_shared.fields.tsc_hz,
  relays: S.vio4wd_shared.fields.relays,
  workers: S.vio4wd_shared.fields.workers,
  vmQueuePairs: S.vio4wd_shared.fields.vm_queue_pairs,
  /** A relay's two directions inside its stats. */
  vfToVm: S.vio4wd_relay_stats.fields.vf_to_vm,
  vmToVf: S.vio4wd_relay_stats.fields.vm_to_vf,
  /** A direction's counters, in DIR_COUNTERS' order (a test holds the two in step). */
  dirCounters: Object.values(S.vio4wd_dir_stats.fields),
  /** A worker's counters, in WORKER_COUNTERS' order, then step_cycles. */
  workerCounters: Object.values(S.vio4wd_worker_stats.fields),
  stepCycles: S.vio4wd_worker_stats.fields.step_cycles,
  size: S.vio4wd_shared.size,
} as const;

/** `struct vio4wd_event`. */
export const EVENT_LAYOUT = S.vio4wd_event;
/** `struct vio4wd_relay_report`. */
export const RELAY_REPORT_LAYOUT = S.vio4wd_relay_report;

/** The counters of `struct vio4wd_dir_stats` (u64 each), named as TypeScript names them, in order. */
export const DIR_COUNTERS = [
  "rxPkts",
  "rxBytes",
  "txPkts",
  "txBytes",
  "dropFullPkts",
  "dropFullBytes",
  "dropUnavailPkts",
  "dropUnavailBytes",
] as const;

/** The counters of `struct vio4wd_worker_stats` before step_cycles ("lcore" is the worker's CPU), in order. */
export const WORKER_COUNTERS = [
  "passes",
  "busyPasses",
  "lcore",
  "busyCycles",
  "idleCycles",
  "rxPkts",
  "bursts",
  "longPasses",
] as const;

/** `enum vio4wd_step`, in order: the steps `step_cycles[]` splits a worker's busy cycles into. */
export const WORKER_STEPS = ["vfRx", "vmEnqueue", "mbufFree", "vmDequeue", "vfTx", "emptyPoll"] as const;

const EV = SHIM_ENUMS.vio4wd_event_type;
/** `enum vio4wd_event_type`. */
export const EVENT = {
  vmConnected: EV.VIO4WD_EV_VM_CONNECTED,
  vmDisconnected: EV.VIO4WD_EV_VM_DISCONNECTED,
  vringState: EV.VIO4WD_EV_VRING_STATE,
  vmRejected: EV.VIO4WD_EV_VM_REJECTED,
  liveMigration: EV.VIO4WD_EV_LIVE_MIGRATION,
  bondFailover: EV.VIO4WD_EV_BOND_FAILOVER,
  vfFailed: EV.VIO4WD_EV_VF_FAILED,
  vfReset: EV.VIO4WD_EV_VF_RESET,
  vfRemoved: EV.VIO4WD_EV_VF_REMOVED,
} as const;
/** VIO4WD_STAGE_*: where a VF attach failed. */
export const STAGE = {
  other: C.STAGE_OTHER,
  probe: C.STAGE_PROBE,
  info: C.STAGE_INFO,
  pool: C.STAGE_POOL,
  configure: C.STAGE_CONFIGURE,
  rxq: C.STAGE_RXQ,
  txq: C.STAGE_TXQ,
  start: C.STAGE_START,
  bond: C.STAGE_BOND,
  member: C.STAGE_MEMBER,
} as const;

/** Flags of vio4wd_socket_register(). */
export const SOCK_FLAG = {
  client: C.SOCK_CLIENT,
  mrgbuf: C.SOCK_MRGBUF,
  tso: C.SOCK_TSO,
  adopt: C.SOCK_ADOPT,
} as const;
/** Flags of vio4wd_init (VIO4WD_INIT_*). */
export const INIT_FLAG = { vfTso: C.INIT_VF_TSO } as const;
/** Bits of `struct vio4wd_relay_report`'s state. */
export const STATE_BIT = {
  socket: C.STATE_SOCKET,
  vm: C.STATE_VM,
  vf: C.STATE_VF,
  vfLink: C.STATE_VF_LINK,
  vfRunning: C.STATE_VF_RUNNING,
} as const;

/** The shim could not be loaded; says where it looked and how to build it. */
export class ShimNotFoundError extends Error {
  constructor(readonly tried: string[], cause: unknown) {
    super(
      `vio4wd data-plane library not found, looked in: ${tried.join(", ")}. ` +
        `Build it with 'make -C shim' (scripts/setup.sh does), or set VIO4WD_SHIM to its path.`,
      { cause },
    );
    this.name = "ShimNotFoundError";
  }
}

/** Where the shim is looked for: `$VIO4WD_SHIM`, then the build directory of this checkout. */
export function shimCandidates(): string[] {
  const out: string[] = [];
  const env = Deno.env.get("VIO4WD_SHIM");
  if (env) out.push(env);
  out.push(new URL("../shim/build/libvio4wd_shim.so", import.meta.url).pathname);
  out.push("/usr/lib/vio4wd/libvio4wd_shim.so");
  return out;
}

/** Opens the shim from the first candidate that loads. */
export function openShim(): ShimLibrary {
  const tried = shimCandidates();
  let last: unknown;
  for (const path of tried) {
    try {
      return Deno.dlopen(path, symbols);
    } catch (e) {
      last = e;
    }
  }
  throw new ShimNotFoundError(tried, last);
}
