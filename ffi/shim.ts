/**
 * The FFI surface of the C shim (shim/vio4wd_shim.h): its symbol table, the layout of the memory
 * it shares, and the loader. Nothing else: src/dataplane/ wraps this in typed classes.
 *
 * @module
 */

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
  // int vio4wd_vf_attach(uint32_t relay, const char *devargs, uint32_t mtu)
  vio4wd_vf_attach: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // int vio4wd_vf_detach(uint32_t relay)
  vio4wd_vf_detach: { parameters: ["u32"], result: "i32" },
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
export const SHIM_ABI = 5;

/** `struct vio4wd_limits`: what the shim can hold. TypeScript takes these from here, never repeats them. */
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

/** Reads `struct vio4wd_limits` from a loaded shim. */
export function readLimits(lib: ShimLibrary): ShimLimits {
  const b = new Uint32Array(8);
  lib.symbols.vio4wd_limits(b);
  return {
    abi: b[0],
    maxRelays: b[1],
    maxWorkers: b[2],
    maxQueuePairs: b[3],
    maxBondMembers: b[4],
    maxPorts: b[5],
    eventQueueCap: b[6],
    poolMbufs: b[7],
  };
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
 * Layout of `struct vio4wd_shared` and friends for `maxRelays` relays (checked by _Static_assert in
 * shim/eal.c): a 64-byte header (n_workers u32 at 0, event_overflows u64 at 8, tsc_hz u64 at 16), the relays'
 * counters, then the workers'.
 */
export function sharedLayout(limits: ShimLimits) {
  const relaysOffset = 64, relayStride = 128, workerStride = 128;
  const workersOffset = relaysOffset + relayStride * limits.maxRelays;
  return {
    nWorkersOffset: 0,
    eventOverflowsOffset: 8,
    tscHzOffset: 16,
    relaysOffset,
    relayStride,
    /** Offset of VM->VF inside a relay's stats; VF->VM is at 0. */
    vmToVfOffset: 64,
    workersOffset,
    workerStride,
    size: workersOffset + workerStride * limits.maxWorkers,
  } as const;
}

/** `struct vio4wd_event` size. */
export const EVENT_SIZE = 24;
/** `struct vio4wd_relay_report` size. */
export const RELAY_REPORT_SIZE = 48;

/** Counter order inside `struct vio4wd_dir_stats` (u64 each). */
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

/** Counter order inside `struct vio4wd_worker_stats` (u64 each; "lcore" is the worker's CPU). */
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
/** Where `step_cycles[]` starts in `struct vio4wd_worker_stats` (u64 index). */
export const WORKER_STEP_CYCLES_AT = 8;

/** `enum vio4wd_event_type`. */
export const EVENT = {
  vmConnected: 1,
  vmDisconnected: 2,
  vringState: 3,
  vmRejected: 4,
  liveMigration: 5,
  bondFailover: 6,
  vfFailed: 7,
  vfReset: 8,
  vfRemoved: 9,
} as const;
/** VIO4WD_STAGE_*: where a VF attach failed. */
export const STAGE = {
  other: 0,
  probe: 1,
  info: 2,
  pool: 3,
  configure: 4,
  rxq: 5,
  txq: 6,
  start: 7,
  bond: 8,
  member: 9,
} as const;

/** Flags of vio4wd_socket_register(). */
export const SOCK_FLAG = { client: 1, mrgbuf: 2, tso: 4 } as const;
/** Flags of vio4wd_init (VIO4WD_INIT_*). */
export const INIT_FLAG = { vfTso: 1 } as const;
/** Bits of `struct vio4wd_relay_report`'s state. */
export const STATE_BIT = { socket: 1, vm: 2, vf: 4, vfLink: 8, vfRunning: 16 } as const;

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
