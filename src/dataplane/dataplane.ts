/**
 * Typed access to the C data path: the wrapper over `ffi/shim.ts` (which `doctor` and `main.ts`
 * also read, for the pool size and the loader's error).
 *
 * @module
 */

import {
  DIR_COUNTERS,
  EVENT,
  EVENT_LAYOUT,
  INIT_FLAG,
  openShim,
  readBigint,
  readLimits,
  readNumber,
  RELAY_REPORT_LAYOUT,
  SHARED_LAYOUT,
  type ShimLibrary,
  type ShimLimits,
  shimMismatch,
  SOCK_FLAG,
  STAGE,
  STATE_BIT,
  WORKER_COUNTERS,
  WORKER_STEPS,
} from "../../ffi/shim.ts";
import type { StepCycles } from "./worker_load.ts";

export type { ShimLimits };

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

/**
 * A worker CPU's loop counters (see `struct vio4wd_worker_stats`): passes, cycles of passes that
 * moved packets and of passes that moved none, packets and bursts taken in, passes over 50 us per burst moved.
 */
export type WorkerCounters =
  & { cpu: number; steps: StepCycles } // steps: all zero unless the shim was built with STEPS=1
  & Record<Exclude<typeof WORKER_COUNTERS[number], "lcore">, bigint>;

/** What the shim has of a relay (`struct vio4wd_relay_report`). */
export interface RelayReport {
  socket: boolean;
  vm: boolean;
  vf: boolean;
  vfLink: boolean;
  /** The VF is started (it runs only while its VM is there). */
  vfRunning: boolean;
  /** Queue pairs of the connected VM, 0 without one. */
  queuePairs: number;
  /** Enabled virtio RX / TX queue pairs (bit q: pair q). */
  rxqMask: number;
  txqMask: number;
  /** NUMA node of the relay's pool (-1: any / none). */
  numaNode: number;
  /** Mbufs of the relay's pool in use, null without a pool. */
  mbufsInUse: number | null;
  /** Worker CPU of [VF->VM, VM->VF], -1 unassigned. */
  cpus: [number, number];
  /** The VF's receive losses (its RX ring full; no mbuf for a receive), null without a VF. */
  vfRxMissed: bigint | null;
  vfRxNombuf: bigint | null;
}

/** How to start the data plane. */
export interface InitOptions {
  /** Mbuf data room in bytes. */
  mbufDataSize: number;
  /** Ask VFs for TSO. */
  tso?: boolean;
  /** Event queue capacity (tests make it tiny to overflow it); the shim's default when absent. */
  eventQueueCap?: number;
}

/** An event from the vhost side. */
export type DataplaneEvent =
  | { type: "vm-connected"; relay: number; queuePairs: number; numaNode: number }
  | { type: "vm-disconnected"; relay: number }
  | { type: "vring-state"; relay: number; queue: number; enabled: boolean }
  | { type: "vm-rejected"; relay: number; errno: number }
  | { type: "live-migration"; relay: number }
  | { type: "bond-failover"; relay: number; active: number; lost: number }
  | { type: "vf-failed"; relay: number; errno: number }
  | { type: "vf-reset"; relay: number }
  | { type: "vf-removed"; relay: number };

/**
 * What the relay table needs of the data path: the seam its unit tests fill with an in-memory
 * fake (tests/rigs/fake_data_path.ts) instead of DPDK.
 */
export type DataPath = Pick<
  Dataplane,
  | "limits"
  | "registerSocket"
  | "unregisterSocket"
  | "attachVf"
  | "attachBond"
  | "detachVf"
  | "resetVf"
  | "setCpus"
  | "report"
  | "vmQueuePairs"
  | "counters"
  | "workers"
  | "tscHz"
>;

/** Socket options of a relay. */
export interface SocketOptions {
  client: boolean;
  mrgbuf: boolean;
  tso: boolean;
  owner: string;
  group: string;
  /** The socket comes from the daemon this one takes over from ({@link Dataplane.adopt}). */
  adopt?: boolean;
}

/** How long the reason of a handover step may be. */
const WHY_SIZE = 256;

/** A VF counter of the relay report: all ones when the relay has no VF. */
const vfCounter = (v: bigint) => v === 0xffff_ffff_ffff_ffffn ? null : v;

/** `a` + `b`, counter by counter. */
function addCounters(a: DirCounters, b: DirCounters): DirCounters {
  return Object.fromEntries(DIR_COUNTERS.map((k) => [k, a[k] + BigInt(b[k])])) as DirCounters;
}

/** The NUL-terminated text in `buf`. */
function cText(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return new TextDecoder().decode(end < 0 ? buf : buf.subarray(0, end));
}

const enc = new TextEncoder();
function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = enc.encode(s);
  const b = new Uint8Array(bytes.length + 1);
  b.set(bytes);
  return b;
}

/**
 * The data plane of this process: DPDK's EAL, worker lcores and the relays (as many as
 * {@link Dataplane.limits} says). One per process (EAL can be initialised once).
 *
 * @example
 * ```ts
 * const dp = Dataplane.open();
 * dp.init(["vio4wd", "-l", "0,1", "--file-prefix", "x", "-m", "256", "--no-pci"], { mbufDataSize: 2254 });
 * dp.registerSocket(0, "/tmp/vm0.sock", { client: false, mrgbuf: false, tso: false, owner: "", group: "" });
 * ```
 */
export class Dataplane {
  #lib: ShimLibrary;
  #shared: Deno.UnsafePointerView | null = null;
  #event = new Uint8Array(EVENT_LAYOUT.size);
  #report = new Uint8Array(RELAY_REPORT_LAYOUT.size);
  /** Per relay, the counters of the daemon it was taken over from ({@link continueCounters}). */
  #counterBase: (RelayCounters | undefined)[] = [];
  /** What the shim can hold. */
  readonly limits: ShimLimits;

  private constructor(lib: ShimLibrary) {
    this.#lib = lib;
    this.limits = readLimits(lib);
  }

  /**
   * Loads the shim (see ffi/shim.ts for where it is looked for) and checks that it speaks our ABI
   * and was built from the header our layout comes from.
   */
  static open(): Dataplane {
    const lib = openShim();
    const mismatch = shimMismatch(readLimits(lib));
    if (mismatch) {
      lib.close();
      throw new DataplaneError("open", 22, `${mismatch}: rebuild it with 'make -C shim'`);
    }
    return new Dataplane(lib);
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

  /** Initialises EAL with `args` (argv[0] first) and starts the workers; returns the limits. */
  init(args: readonly string[], o: InitOptions): ShimLimits {
    const bad = args.find((a) => a.includes("\n"));
    if (bad !== undefined) throw new DataplaneError("init", 22, `EAL argument contains a newline: ${bad}`);
    this.#lib.symbols.vio4wd_log_to_fd(2);
    this.#check(
      "EAL init",
      this.#lib.symbols.vio4wd_init(
        cstr(args.join("\n")),
        o.mbufDataSize,
        o.tso ? INIT_FLAG.vfTso : 0,
        o.eventQueueCap ?? 0xffffffff,
      ),
    );
    this.#shared = new Deno.UnsafePointerView(this.#lib.symbols.vio4wd_shared()!);
    return this.limits;
  }

  /** Stops workers, removes every socket and VF, releases hugepage memory. */
  shutdown(): void {
    this.#check("shutdown", this.#lib.symbols.vio4wd_shutdown());
    this.#shared = null;
  }

  /** Creates (server) or connects (client) the relay's vhost-user socket. */
  registerSocket(relay: number, path: string, o: SocketOptions): void {
    const flags = (o.client ? SOCK_FLAG.client : 0) | (o.mrgbuf ? SOCK_FLAG.mrgbuf : 0) | (o.tso ? SOCK_FLAG.tso : 0) |
      (o.adopt ? SOCK_FLAG.adopt : 0);
    this.#check(
      `relay ${relay}: vhost-user socket ${path}`,
      this.#lib.symbols.vio4wd_socket_register(relay, cstr(path), flags, cstr(o.owner), cstr(o.group)),
    );
  }

  /** Closes the relay's socket (disconnecting its VM) and removes the file in server mode. */
  unregisterSocket(relay: number): void {
    this.#check(`relay ${relay}: socket removal`, this.#lib.symbols.vio4wd_socket_unregister(relay));
  }

  /**
   * Hot upgrade, old daemon: why the relay's socket cannot be handed over now (a live migration,
   * an IOMMU...), or null.
   */
  handoverRefusal(relay: number): string | null {
    const why = new Uint8Array(WHY_SIZE);
    return this.#lib.symbols.vio4wd_handover_check(relay, why, WHY_SIZE) === 0 ? null : cText(why);
  }

  /**
   * Stops the relay's rings (their positions read) and its sockets' reading, to hand them over;
   * "busy" when an exchange with the VM is in flight (try again), else the refusal, or null.
   */
  handoverQuiesce(relay: number): string | null {
    const why = new Uint8Array(WHY_SIZE);
    return this.#lib.symbols.vio4wd_handover_quiesce(relay, why, WHY_SIZE) === 0 ? null : cText(why);
  }

  /** Undoes {@link handoverQuiesce}: the relay runs here again. */
  handoverResume(relay: number): void {
    this.#lib.symbols.vio4wd_handover_resume(relay);
  }

  /**
   * Hands the quiesced relay's sockets to the daemon listening on `path`; resolves once it runs
   * them (null) or, when it did not take them, with why (the relay then runs here again).
   */
  async handoverSend(relay: number, path: string): Promise<string | null> {
    const why = new Uint8Array(WHY_SIZE);
    return await this.#lib.symbols.vio4wd_handover_send(relay, cstr(path), why, WHY_SIZE) === 0 ? null : cText(why);
  }

  /** Hot upgrade, new daemon: the root-only socket the old daemon hands relays' sockets over on. */
  handoverListen(path: string): void {
    this.#check(`handover socket ${path}`, this.#lib.symbols.vio4wd_handover_listen(cstr(path)));
  }

  /**
   * Takes the sockets of relay `relay` (registered with `adopt`) from the old daemon, replays its
   * sessions here and answers it; null, or why not (the old daemon keeps the relay).
   */
  async handoverAdopt(relay: number, timeoutMs: number): Promise<string | null> {
    const why = new Uint8Array(WHY_SIZE);
    const rc = await this.#lib.symbols.vio4wd_handover_adopt(relay, timeoutMs, why, WHY_SIZE);
    return rc === 0 ? null : cText(why);
  }

  /**
   * The relay's counters continue from `from` (those of the daemon it was taken over from): they
   * are added to what this daemon counts.
   */
  continueCounters(relay: number, from: RelayCounters): void {
    this.#counterBase[relay] = from;
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

  /**
   * Drops what the relay's VF received while stopped when it starts next: the copies a VF shared
   * with the daemon this one takes over from queued while that one relayed them.
   */
  flushVfAtStart(relay: number): void {
    this.#check(`relay ${relay}: VF flush`, this.#lib.symbols.vio4wd_vf_flush_at_start(relay));
  }

  /**
   * Resets the relay's VF after its device asked for it ("vf-reset"), configures it again as it was
   * and starts it again if its VM is there.
   */
  resetVf(relay: number): void {
    this.#check(`relay ${relay}: VF reset`, this.#lib.symbols.vio4wd_vf_reset(relay));
  }

  /** Moves the relay's directions to these worker CPUs (-1: none). */
  setCpus(relay: number, vfToVm: number, vmToVf: number): void {
    this.#check(`relay ${relay}: CPU assignment`, this.#lib.symbols.vio4wd_relay_set_cpus(relay, vfToVm, vmToVf));
  }

  /** The relay as the shim has it. */
  report(relay: number): RelayReport {
    this.#check(`relay ${relay}: report`, this.#lib.symbols.vio4wd_relay_report(relay, this.#report));
    const dv = new DataView(this.#report.buffer), f = RELAY_REPORT_LAYOUT.fields;
    const state = readNumber(dv, f.state);
    const mbufs = readNumber(dv, f.mbufs_in_use);
    return {
      socket: (state & STATE_BIT.socket) !== 0,
      vm: (state & STATE_BIT.vm) !== 0,
      vf: (state & STATE_BIT.vf) !== 0,
      vfLink: (state & STATE_BIT.vfLink) !== 0,
      vfRunning: (state & STATE_BIT.vfRunning) !== 0,
      queuePairs: readNumber(dv, f.queue_pairs),
      rxqMask: readNumber(dv, f.rxq_mask),
      txqMask: readNumber(dv, f.txq_mask),
      numaNode: readNumber(dv, f.numa_node),
      mbufsInUse: mbufs < 0 ? null : mbufs,
      cpus: [readNumber(dv, f.cpu, 0), readNumber(dv, f.cpu, 1)],
      vfRxMissed: vfCounter(readBigint(dv, f.vf_rx_missed)),
      vfRxNombuf: vfCounter(readBigint(dv, f.vf_rx_nombuf)),
    };
  }

  /** Events the shim dropped because its queue was full, since init. */
  eventOverflows(): bigint {
    return this.#view().getBigUint64(SHARED_LAYOUT.eventOverflows.offset);
  }

  /** Bytes of hugepage memory in use by DPDK's heaps (pools, rings, vhost queues). */
  hugepageBytesUsed(): number {
    return Number(this.#lib.symbols.vio4wd_hugepage_bytes_used());
  }

  #view(): Deno.UnsafePointerView {
    if (!this.#shared) throw new DataplaneError("counters", 22, "the data plane is not initialised");
    return this.#shared;
  }

  /** The whole shared memory as one view (copy-free). */
  #sharedView(): DataView {
    return new DataView(this.#view().getArrayBuffer(SHARED_LAYOUT.size, 0));
  }

  /** Counters of every relay, read straight from the shared memory (one view, no call per counter). */
  counters(): RelayCounters[] {
    const L = SHARED_LAYOUT, dv = this.#sharedView();
    const dir = (at: number) =>
      Object.fromEntries(DIR_COUNTERS.map((k, i) => [k, readBigint(dv, L.dirCounters[i], 0, at)])) as DirCounters;
    const out: RelayCounters[] = [];
    for (let r = 0; r < this.limits.maxRelays; r++) {
      const base = L.relays.offset + r * L.relays.size;
      const c = { vfToVm: dir(base + L.vfToVm.offset), vmToVf: dir(base + L.vmToVf.offset) };
      const from = this.#counterBase[r];
      out.push(from ? { vfToVm: addCounters(c.vfToVm, from.vfToVm), vmToVf: addCounters(c.vmToVf, from.vmToVf) } : c);
    }
    return out;
  }

  /**
   * Each relay's VM as the data path has it now: its queue pairs, 0 without a VM (read from the
   * shared memory: no call, no lock).
   */
  vmQueuePairs(): number[] {
    const L = SHARED_LAYOUT, dv = this.#sharedView();
    return Array.from({ length: this.limits.maxRelays }, (_, r) => readNumber(dv, L.vmQueuePairs, r));
  }

  /** Loop counters of the worker CPUs. */
  workers(): WorkerCounters[] {
    const L = SHARED_LAYOUT, dv = this.#sharedView();
    const n = readNumber(dv, L.nWorkers);
    const out: WorkerCounters[] = [];
    for (let i = 0; i < n; i++) {
      const at = L.workers.offset + i * L.workers.size;
      const c = Object.fromEntries(WORKER_COUNTERS.map((k, j) => [k, readBigint(dv, L.workerCounters[j], 0, at)]));
      const { lcore, ...counters } = c as Record<typeof WORKER_COUNTERS[number], bigint>;
      const steps = Object.fromEntries(
        WORKER_STEPS.map((k, j) => [k, readBigint(dv, L.stepCycles, j, at)]),
      );
      out.push({ cpu: Number(lcore), ...counters, steps: steps as StepCycles });
    }
    return out;
  }

  /** The workers' cycle counter frequency (Hz): cycles / tscHz = seconds. */
  get tscHz(): bigint {
    return this.#view().getBigUint64(SHARED_LAYOUT.tscHz.offset);
  }

  /** Idle mode: microseconds a worker without traffic sleeps between polls (0: always poll). */
  setIdleSleep(us: number): void {
    this.#lib.symbols.vio4wd_set_idle_sleep(us);
  }

  /**
   * Moves every thread but the workers to the main lcore's CPUs (so none preempts a worker);
   * returns how many were moved. Throws DataplaneError.
   */
  placeThreads(): number {
    const r = this.#lib.symbols.vio4wd_place_threads();
    if (r < 0) throw new DataplaneError("place threads", -r, "cannot set the affinity of the daemon's threads");
    return r;
  }

  /** Moves active-backup bonds off members that lost their link (events follow). */
  superviseBonds(): void {
    this.#lib.symbols.vio4wd_bonds_supervise();
  }

  /** Drains the pending vhost and bond events. */
  events(): DataplaneEvent[] {
    const out: DataplaneEvent[] = [];
    const dv = new DataView(this.#event.buffer), f = EVENT_LAYOUT.fields;
    while (this.#lib.symbols.vio4wd_next_event(this.#event) === 1) {
      const type = readNumber(dv, f.type);
      const relay = readNumber(dv, f.relay);
      const value = readNumber(dv, f.value);
      const detail = readNumber(dv, f.detail);
      const numaNode = readNumber(dv, f.numa_node);
      if (type === EVENT.vmConnected) out.push({ type: "vm-connected", relay, queuePairs: value, numaNode });
      else if (type === EVENT.vmDisconnected) out.push({ type: "vm-disconnected", relay });
      else if (type === EVENT.vringState) out.push({ type: "vring-state", relay, queue: value, enabled: detail !== 0 });
      else if (type === EVENT.vmRejected) out.push({ type: "vm-rejected", relay, errno: -value });
      else if (type === EVENT.liveMigration) out.push({ type: "live-migration", relay });
      else if (type === EVENT.bondFailover) out.push({ type: "bond-failover", relay, active: value, lost: detail });
      else if (type === EVENT.vfFailed) out.push({ type: "vf-failed", relay, errno: -value });
      else if (type === EVENT.vfReset) out.push({ type: "vf-reset", relay });
      else if (type === EVENT.vfRemoved) out.push({ type: "vf-removed", relay });
    }
    return out;
  }

  /** Unloads the shim library (after shutdown). */
  close(): void {
    this.#lib.close();
  }
}
