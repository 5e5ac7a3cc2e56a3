/**
 * An in-memory data path for the relay table's unit tests (the `DataPath` seam): it keeps what
 * the shim would (sockets, devices, bonds, the VM, CPUs, the pool's NUMA node), refuses what the
 * shim refuses (a device probe that fails, a socket already registered, a second VF on a relay),
 * and lets a test connect and disconnect VMs (returning the events the shim would raise). No DPDK.
 *
 * @module
 */

import {
  type DataPath,
  DataplaneError,
  type DataplaneEvent,
  type RelayCounters,
  type RelayReport,
  type ShimLimits,
  type SocketOptions,
  VF_ATTACH_STAGE,
  type WorkerCounters,
} from "../../src/dataplane/dataplane.ts";

/** One relay as the fake shim has it. */
export interface FakeRelay {
  socket: { path: string; options: SocketOptions } | null;
  vf: { devargs: string; mtu: number } | null;
  bond: { name: string; mode: number; members: readonly string[] } | null;
  vm: { queuePairs: number } | null;
  cpus: [number, number];
  numaNode: number;
}

const ZERO_DIR = {
  rxPkts: 0n,
  rxBytes: 0n,
  txPkts: 0n,
  txBytes: 0n,
  dropFullPkts: 0n,
  dropFullBytes: 0n,
  dropUnavailPkts: 0n,
  dropUnavailBytes: 0n,
};

/** The fake; `refuse` holds device strings whose probe fails (as a device that is not there). */
export class FakeDataPath implements DataPath {
  readonly limits: ShimLimits = {
    abi: 0,
    maxRelays: 8,
    maxWorkers: 64,
    maxQueuePairs: 32,
    maxBondMembers: 8,
    maxPorts: 32,
    eventQueueCap: 1024,
    poolMbufs: 4095,
  };
  readonly relays: FakeRelay[];
  readonly refuse = new Set<string>();
  /** Every setCpus call, in order: [relay, VF->VM CPU, VM->VF CPU]. */
  readonly cpuCalls: [number, number, number][] = [];

  constructor(numaNode = 0) {
    this.relays = Array.from({ length: this.limits.maxRelays }, () => ({
      socket: null,
      vf: null,
      bond: null,
      vm: null,
      cpus: [-1, -1],
      numaNode,
    }));
  }

  #relay(relay: number): FakeRelay {
    const r = this.relays[relay];
    if (!r) throw new DataplaneError("relay", 22, `relay ${relay} is out of range`);
    return r;
  }

  #device(relay: number): FakeRelay {
    const r = this.#relay(relay);
    if (r.vf || r.bond) throw new DataplaneError("attach", 17, `relay ${relay} already has a VF`);
    return r;
  }

  #probe(devargs: string, stage: number): void {
    if (this.refuse.has(devargs)) {
      throw new DataplaneError("attach", 19, `cannot probe ${devargs}: no such device`, stage);
    }
    const inUse = this.relays.some((r) => r.vf?.devargs === devargs || r.bond?.members.includes(devargs));
    if (inUse) throw new DataplaneError("attach", 17, `device ${devargs} is already in use`, stage);
  }

  registerSocket(relay: number, path: string, options: SocketOptions): void {
    const r = this.#relay(relay);
    if (r.socket) throw new DataplaneError("socket", 17, `relay ${relay} already has a socket`);
    r.socket = { path, options };
  }

  unregisterSocket(relay: number): void {
    const r = this.#relay(relay);
    r.socket = null;
    r.vm = null;
  }

  attachVf(relay: number, devargs: string, mtu: number): void {
    const r = this.#device(relay);
    this.#probe(devargs, VF_ATTACH_STAGE.probe);
    r.vf = { devargs, mtu };
  }

  attachBond(relay: number, name: string, mode: number, members: readonly string[], _mtu: number): void {
    const r = this.#device(relay);
    for (const m of members) this.#probe(m, VF_ATTACH_STAGE.member);
    r.bond = { name, mode, members: [...members] };
  }

  detachVf(relay: number): void {
    const r = this.#relay(relay);
    r.vf = null;
    r.bond = null;
  }

  resetVf(relay: number): void {
    if (!this.#relay(relay).vf) throw new DataplaneError("reset", 2, `relay ${relay} has no VF to reset`);
  }

  setCpus(relay: number, vfToVm: number, vmToVf: number): void {
    this.#relay(relay).cpus = [vfToVm, vmToVf];
    this.cpuCalls.push([relay, vfToVm, vmToVf]);
  }

  report(relay: number): RelayReport {
    const r = this.#relay(relay);
    const hasVf = r.vf !== null || r.bond !== null;
    return {
      socket: r.socket !== null,
      vm: r.vm !== null,
      vf: hasVf,
      vfLink: hasVf,
      vfRunning: hasVf && r.vm !== null,
      queuePairs: r.vm?.queuePairs ?? 0,
      rxqMask: 0,
      txqMask: 0,
      numaNode: r.numaNode,
      mbufsInUse: hasVf ? 0 : null,
      cpus: [...r.cpus],
      vfRxMissed: hasVf ? 0n : null,
      vfRxNombuf: hasVf ? 0n : null,
    };
  }

  vmQueuePairs(): number[] {
    return this.relays.map((r) => r.vm?.queuePairs ?? 0);
  }

  counters(): RelayCounters[] {
    return this.relays.map(() => ({ vfToVm: { ...ZERO_DIR }, vmToVf: { ...ZERO_DIR } }));
  }

  workers(): WorkerCounters[] {
    return [];
  }

  get tscHz(): bigint {
    return 1_000_000_000n;
  }

  /** A VM connects to `relay`'s socket (its memory on `numaNode`): the event the daemon hands the table. */
  connectVm(relay: number, queuePairs = 1, numaNode = this.relays[relay].numaNode): DataplaneEvent {
    const r = this.#relay(relay);
    if (!r.socket) throw new Error(`fake: relay ${relay} has no socket for a VM to connect to`);
    r.vm = { queuePairs };
    r.numaNode = numaNode;
    return { type: "vm-connected", relay, queuePairs, numaNode };
  }

  /** The VM of `relay` leaves. */
  disconnectVm(relay: number): DataplaneEvent {
    this.#relay(relay).vm = null;
    return { type: "vm-disconnected", relay };
  }
}
