/**
 * Typed access to the C data path: the only module that calls `ffi/`.
 *
 * @module
 */

import {
  DIR_COUNTERS,
  EVENT,
  INIT_FLAG,
  LAYOUT,
  openShim,
  type ShimLibrary,
  SOCK_FLAG,
  STAGE,
  STATE_BIT,
} from "../../ffi/shim.ts";

/** Where a VF attach failed ({@link DataplaneError.stage}). */
export const VF_ATTACH_STAGE = STAGE;

/** A shim call failed; carries the errno and DPDK's/the shim's message. */
export class DataplaneError extends Error {
  /**
   * @param stage where a VF attach failed (ffi STAGE values; 0 for anything else)
   */
  constructor(readonly operation: string, readonly errno: number, readonly detail: string, readonly stage = 0) {
    super(`${operation}: ${detail}`);
    this.name = "DataplaneError";
  }
}

/** Counters of one direction. */
export type DirCounters = Record<typeof DIR_COUNTERS[number], bigint>;

/** Counters of one relay, both directions. */
export interface RelayCounters {
  vfToVm: DirCounters;
  vmToVf: DirCounters;
}

/** A worker CPU's loop counters. */
export interface WorkerCounters {
  cpu: number;
  passes: bigint;
  busyPasses: bigint;
}

/** What the shim reports about a relay. */
export interface RelayState {
  socket: boolean;
  vm: boolean;
  vf: boolean;
  vfLink: boolean;
}

/** An event from the vhost side. */
export type DataplaneEvent =
  | { type: "vm-connected"; relay: number; queuePairs: number; numaNode: number }
  | { type: "vm-disconnected"; relay: number }
  | { type: "vring-state"; relay: number; queue: number; enabled: boolean }
  | { type: "vm-rejected"; relay: number; errno: number }
  | { type: "live-migration"; relay: number }
  | { type: "bond-failover"; relay: number; active: number; lost: number };

/** Socket options of a relay. */
export interface SocketOptions {
  client: boolean;
  mrgbuf: boolean;
  tso: boolean;
  owner: string;
  group: string;
}

const enc = new TextEncoder();
function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = enc.encode(s);
  const b = new Uint8Array(bytes.length + 1);
  b.set(bytes);
  return b;
}

/**
 * The data plane of this process: DPDK's EAL, worker lcores and up to 64 relays. One per
 * process (EAL can be initialised once).
 *
 * @example
 * ```ts
 * const dp = Dataplane.open();
 * dp.init(["vio4wd", "-l", "0,1", "--file-prefix", "x", "-m", "256", "--no-pci"], 2254);
 * dp.registerSocket(0, "/tmp/vm0.sock", { client: false, mrgbuf: false, tso: false, owner: "", group: "" });
 * ```
 */
export class Dataplane {
  #lib: ShimLibrary;
  #shared: Deno.UnsafePointerView | null = null;
  #event = new Uint8Array(LAYOUT.eventSize);

  private constructor(lib: ShimLibrary) {
    this.#lib = lib;
  }

  /** Loads the shim (see ffi/shim.ts for where it is looked for). */
  static open(): Dataplane {
    return new Dataplane(openShim());
  }

  /** DPDK's version string, e.g. `DPDK 22.11.11`. */
  get dpdkVersion(): string {
    return Deno.UnsafePointerView.getCString(this.#lib.symbols.vio4wd_version()!);
  }

  #check(operation: string, rc: number): void {
    if (rc < 0) {
      const msg = Deno.UnsafePointerView.getCString(this.#lib.symbols.vio4wd_last_error()!);
      throw new DataplaneError(operation, -rc, msg, this.#lib.symbols.vio4wd_last_error_stage());
    }
  }

  /** Initialises EAL with `args` (argv[0] first) and starts the workers; `tso`: ask VFs for TSO. */
  init(args: readonly string[], mbufDataSize: number, tso = false): void {
    const bad = args.find((a) => a.includes("\n"));
    if (bad !== undefined) throw new DataplaneError("init", 22, `EAL argument contains a newline: ${bad}`);
    this.#lib.symbols.vio4wd_log_to_fd(2);
    this.#check(
      "EAL init",
      this.#lib.symbols.vio4wd_init(cstr(args.join("\n")), mbufDataSize, tso ? INIT_FLAG.vfTso : 0),
    );
    this.#shared = new Deno.UnsafePointerView(this.#lib.symbols.vio4wd_shared()!);
  }

  /** Stops workers, removes every socket and VF, releases hugepage memory. */
  shutdown(): void {
    this.#check("shutdown", this.#lib.symbols.vio4wd_shutdown());
    this.#shared = null;
  }

  /** Creates (server) or connects (client) the relay's vhost-user socket. */
  registerSocket(relay: number, path: string, o: SocketOptions): void {
    const flags = (o.client ? SOCK_FLAG.client : 0) | (o.mrgbuf ? SOCK_FLAG.mrgbuf : 0) | (o.tso ? SOCK_FLAG.tso : 0);
    this.#check(
      `relay ${relay}: vhost-user socket ${path}`,
      this.#lib.symbols.vio4wd_socket_register(relay, cstr(path), flags, cstr(o.owner), cstr(o.group)),
    );
  }

  /** Closes the relay's socket (disconnecting its VM) and removes the file in server mode. */
  unregisterSocket(relay: number): void {
    this.#check(`relay ${relay}: socket removal`, this.#lib.symbols.vio4wd_socket_unregister(relay));
  }

  /** Probes, configures and starts the VF (PCI address or vdev devargs) of a relay. */
  attachVf(relay: number, devargs: string, mtu: number): void {
    this.#check(`relay ${relay}: VF ${devargs}`, this.#lib.symbols.vio4wd_vf_attach(relay, cstr(devargs), mtu));
  }

  /**
   * Attaches a bonding device `name` (net_bonding...) in `mode` (0-6) over 2-8 member devices
   * (PCI addresses or devargs) as the relay's VF; removed with {@link detachVf}.
   */
  attachBond(relay: number, name: string, mode: number, members: readonly string[], mtu: number): void {
    const bad = members.find((m) => m.includes("\n"));
    if (bad !== undefined) {
      throw new DataplaneError(`relay ${relay}: bond ${name}`, 22, `member contains a newline: ${bad}`);
    }
    this.#check(
      `relay ${relay}: bond ${name}`,
      this.#lib.symbols.vio4wd_bond_attach(relay, cstr(name), mode, cstr(members.join("\n")), mtu),
    );
  }

  /** Stops and removes the relay's VF (or bond and its members). */
  detachVf(relay: number): void {
    this.#check(`relay ${relay}: VF removal`, this.#lib.symbols.vio4wd_vf_detach(relay));
  }

  /** Moves the relay's directions to these worker CPUs (-1: none). */
  setCpus(relay: number, vfToVm: number, vmToVf: number): void {
    this.#check(`relay ${relay}: CPU assignment`, this.#lib.symbols.vio4wd_relay_set_cpus(relay, vfToVm, vmToVf));
  }

  /** What is connected on a relay. */
  state(relay: number): RelayState {
    const s = this.#lib.symbols.vio4wd_relay_state(relay);
    return {
      socket: (s & STATE_BIT.socket) !== 0,
      vm: (s & STATE_BIT.vm) !== 0,
      vf: (s & STATE_BIT.vf) !== 0,
      vfLink: (s & STATE_BIT.vfLink) !== 0,
    };
  }

  /** Mbufs of the relay's pool in use, or null when the relay has no pool. */
  mbufsInUse(relay: number): number | null {
    const n = this.#lib.symbols.vio4wd_relay_mbufs_in_use(relay);
    return n < 0 ? null : n;
  }

  /** NUMA node of the relay's pool (-1: any / none). */
  numaNode(relay: number): number {
    return this.#lib.symbols.vio4wd_relay_numa_node(relay);
  }

  /** Bytes of hugepage memory in use by DPDK's heaps (pools, rings, vhost queues). */
  hugepageBytesUsed(): number {
    return Number(this.#lib.symbols.vio4wd_hugepage_bytes_used());
  }

  #view(): Deno.UnsafePointerView {
    if (!this.#shared) throw new DataplaneError("counters", 22, "the data plane is not initialised");
    return this.#shared;
  }

  /** Counters of every relay, read straight from the shared memory (one view, no call per counter). */
  counters(): RelayCounters[] {
    const buf = new BigUint64Array(this.#view().getArrayBuffer(LAYOUT.workersOffset, 0));
    const out: RelayCounters[] = [];
    for (let r = 0; r < LAYOUT.maxRelays; r++) {
      const base = (LAYOUT.relaysOffset + r * LAYOUT.relayStride) / 8;
      const dir = (at: number) => Object.fromEntries(DIR_COUNTERS.map((k, i) => [k, buf[at + i]])) as DirCounters;
      out.push({ vfToVm: dir(base), vmToVf: dir(base + LAYOUT.vmToVfOffset / 8) });
    }
    return out;
  }

  /** Loop counters of the worker CPUs. */
  workers(): WorkerCounters[] {
    const buf = new BigUint64Array(this.#view().getArrayBuffer(LAYOUT.size, 0));
    const n = new Uint32Array(this.#view().getArrayBuffer(12, 0))[2];
    const out: WorkerCounters[] = [];
    for (let i = 0; i < n; i++) {
      const at = (LAYOUT.workersOffset + i * LAYOUT.workerStride) / 8;
      out.push({ cpu: Number(buf[at + 2]), passes: buf[at], busyPasses: buf[at + 1] });
    }
    return out;
  }

  /** Idle mode: microseconds a worker without traffic sleeps between polls (0: always poll). */
  setIdleSleep(us: number): void {
    this.#lib.symbols.vio4wd_set_idle_sleep(us);
  }

  /** Moves active-backup bonds off members that lost their link (events follow). */
  superviseBonds(): void {
    this.#lib.symbols.vio4wd_bonds_supervise();
  }

  /** Drains the pending vhost and bond events. */
  events(): DataplaneEvent[] {
    const out: DataplaneEvent[] = [];
    const dv = new DataView(this.#event.buffer);
    while (this.#lib.symbols.vio4wd_next_event(this.#event) === 1) {
      const type = dv.getUint32(0, true);
      const relay = dv.getUint32(4, true);
      const value = dv.getInt32(8, true);
      const enabled = dv.getUint32(12, true) !== 0;
      const numaNode = dv.getInt32(16, true);
      if (type === EVENT.vmConnected) out.push({ type: "vm-connected", relay, queuePairs: value, numaNode });
      else if (type === EVENT.vmDisconnected) out.push({ type: "vm-disconnected", relay });
      else if (type === EVENT.vringState) out.push({ type: "vring-state", relay, queue: value, enabled });
      else if (type === EVENT.vmRejected) out.push({ type: "vm-rejected", relay, errno: -value });
      else if (type === EVENT.liveMigration) out.push({ type: "live-migration", relay });
      else if (type === EVENT.bondFailover) {
        out.push({ type: "bond-failover", relay, active: value, lost: dv.getUint32(12, true) });
      }
    }
    return out;
  }

  /** Unloads the shim library (after shutdown). */
  close(): void {
    this.#lib.close();
  }
}
