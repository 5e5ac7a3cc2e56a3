/**
 * The relay table: the one source of truth for what each relay has (socket, VF, VM, CPUs), and
 * the operations that change it, applied to the data plane.
 *
 * @module
 */

import type { Config } from "../config/config.ts";
import { isPciAddress, MAX_RELAYS, normalizePci, socketPath } from "../config/values.ts";
import { type Dataplane, DataplaneError, type DataplaneEvent } from "../dataplane/dataplane.ts";
import type { Logger } from "./log.ts";

/** Which direction of a relay: index into {@link Relay.cpus}. */
export const VF_TO_VM = 0;
export const VM_TO_VF = 1;

/** One relay's control-plane record. */
export interface Relay {
  id: number;
  /** vhost-user socket path, or null without one. */
  socket: string | null;
  /** VF devargs or PCI address (a bond's name), or null without one. */
  vf: string | null;
  /** When the VF side is a bond: its mode and member devices. */
  bond: { mode: number; members: string[] } | null;
  /** A VM is connected on the socket. */
  vm: boolean;
  queuePairs: number;
  /** Worker CPU of [VF->VM, VM->VF]; -1 when unassigned. */
  cpus: [number, number];
  /** CPUs from VIRTIOFWD_CPU_PINS ([VF->VM, VM->VF]): used whenever a side comes up. */
  pin: [number, number] | null;
}

/** A relay-table operation was refused; `code` is an errno-like number. */
export class RelayError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "RelayError";
  }
}

const EINVAL = 22;
const EEXIST = 17;

/**
 * Picks the least busy worker CPU: 12 points per VF->VM direction with a VF on the CPU, 10 per
 * VM->VF direction with a VM (the original's weights); ties go to the lowest CPU.
 */
export function leastBusyCpu(workers: readonly number[], relays: Iterable<Relay>): number {
  const score = new Map(workers.map((c) => [c, 0]));
  for (const r of relays) {
    if (r.vf !== null && score.has(r.cpus[VF_TO_VM])) score.set(r.cpus[VF_TO_VM], score.get(r.cpus[VF_TO_VM])! + 12);
    if (r.vm && score.has(r.cpus[VM_TO_VF])) score.set(r.cpus[VM_TO_VF], score.get(r.cpus[VM_TO_VF])! + 10);
  }
  let best = workers[0];
  for (const c of workers) if (score.get(c)! < score.get(best)!) best = c;
  return best;
}

/** The relay table over a running data plane. */
export class RelayTable {
  readonly relays: Relay[] = [];

  constructor(readonly config: Config, readonly dp: Dataplane, readonly log: Logger) {
    const pins = new Map(config.cpuPins.map((p) => [p.relay, p]));
    for (let id = 0; id < MAX_RELAYS; id++) {
      const pin = pins.get(id);
      this.relays.push({
        id,
        socket: null,
        vf: null,
        bond: null,
        vm: false,
        queuePairs: 0,
        cpus: pin ? [pin.vfToVm, pin.vmToVf] : [-1, -1],
        pin: pin ? [pin.vfToVm, pin.vmToVf] : null,
      });
    }
  }

  #relay(id: number): Relay {
    if (!Number.isInteger(id) || id < 0 || id >= MAX_RELAYS) {
      throw new RelayError(EINVAL, `relay id ${id} is out of range 0-${MAX_RELAYS - 1}`);
    }
    return this.relays[id];
  }

  #apply(r: Relay): void {
    this.dp.setCpus(r.id, r.cpus[VF_TO_VM], r.cpus[VM_TO_VF]);
  }

  /** Gives a direction a CPU (its pin, else the least busy worker) and applies it. */
  #place(r: Relay, dir: number): void {
    if (r.pin) r.cpus[dir] = r.pin[dir];
    else if (r.cpus[dir] < 0) r.cpus[dir] = leastBusyCpu(this.config.cpus, this.relays);
    this.#apply(r);
  }

  /** Releases a direction's CPU when its side went away (pinned relays keep theirs). */
  #unplace(r: Relay, dir: number): void {
    if (!r.pin) r.cpus[dir] = -1;
    this.#apply(r);
  }

  /** The socket path of a relay under the configured directory and pattern. */
  defaultSocketPath(id: number): string {
    return socketPath(this.config.socketDir, this.config.socketPattern, id);
  }

  /** Registers the relay's vhost-user socket (server: listen; client: connect with retry). */
  addSocket(id: number, path = this.defaultSocketPath(id)): void {
    const r = this.#relay(id);
    if (r.socket !== null) throw new RelayError(EEXIST, `relay ${id} already has socket ${r.socket}`);
    const c = this.config;
    this.dp.registerSocket(id, path, {
      client: c.vhostClient,
      mrgbuf: c.mrgbuf,
      tso: c.tso,
      owner: c.socketOwner,
      group: c.socketGroup,
    });
    r.socket = path;
    this.log.debug(`relay ${id}: vhost-user socket ${path} (${c.vhostClient ? "client" : "server"} mode)`);
  }

  /** Closes the relay's socket, disconnecting its VM. */
  removeSocket(id: number): void {
    const r = this.#relay(id);
    if (r.socket === null) throw new RelayError(2, `relay ${id} has no socket`);
    this.dp.unregisterSocket(id);
    r.socket = null;
    this.#syncVm(r, false, 0);
  }

  /** Attaches a VF (PCI address or devargs) to a relay; on failure nothing is left behind. */
  addVf(id: number, device: string): void {
    const dev = isPciAddress(device) ? normalizePci(device) : device;
    this.#attach(id, dev, null, () => this.dp.attachVf(id, dev, this.#mtu()));
  }

  /**
   * Attaches a bond `name` (net_bonding...) of 2-8 devices in `mode` (0-6) as the relay's VF
   * side; its members count against the DPDK port limit like VFs.
   */
  addBond(id: number, name: string, mode: number, members: readonly string[]): void {
    const devs = members.map((m) => isPciAddress(m) ? normalizePci(m) : m);
    const inUse = this.relays.find((x) => x.bond?.members.some((m) => devs.includes(m)));
    if (inUse) {
      throw new RelayError(EEXIST, `a member of bond ${name} is already in bond ${inUse.vf} on relay ${inUse.id}`);
    }
    this.#attach(id, name, { mode, members: devs }, () => this.dp.attachBond(id, name, mode, devs, this.#mtu()));
  }

  #mtu(): number {
    return this.config.jumbo ? 9000 : 2100;
  }

  #attach(id: number, dev: string, bond: Relay["bond"], attach: () => void): void {
    const r = this.#relay(id);
    if (r.vf !== null) throw new RelayError(EEXIST, `relay ${id} already has VF ${r.vf}; remove it first`);
    const other = this.relays.find((x) => x.vf === dev);
    if (other) throw new RelayError(EEXIST, `device ${dev} is already on relay ${other.id}`);
    attach();
    r.vf = dev;
    r.bond = bond;
    try {
      this.#place(r, VF_TO_VM);
    } catch (e) {
      r.vf = null;
      r.bond = null;
      this.dp.detachVf(id);
      throw e;
    }
    const what = bond ? `bond ${dev} (mode ${bond.mode}: ${bond.members.join(", ")})` : `VF ${dev}`;
    this.log.info(`relay ${id}: ${what} added (VF->VM on CPU ${r.cpus[VF_TO_VM]})`);
  }

  /** Detaches the relay's VF. */
  removeVf(id: number): void {
    const r = this.#relay(id);
    if (r.vf === null) throw new RelayError(2, `relay ${id} has no VF`);
    this.dp.detachVf(id);
    this.log.info(`relay ${id}: ${r.bond ? "bond" : "VF"} ${r.vf} removed`);
    r.vf = null;
    r.bond = null;
    this.#unplace(r, VF_TO_VM);
  }

  /**
   * Moves a running relay's directions to other worker CPUs (core scheduling UPDATE): VF->VM only
   * while a VF is attached, VM->VF only while the VM is connected; the old worker lets go first.
   * Not persisted: a side that comes up again gets its pin or automatic placement.
   */
  migrate(id: number, vfToVmCpu: number, vmToVfCpu: number): void {
    const r = this.#relay(id);
    const want: [number, number] = [vfToVmCpu, vmToVfCpu];
    for (const cpu of want) {
      if (!this.config.cpus.includes(cpu)) throw new RelayError(EINVAL, `CPU ${cpu} is not a worker CPU`);
    }
    const next: [number, number] = [...r.cpus];
    if (r.vf !== null) next[VF_TO_VM] = want[VF_TO_VM];
    else this.log.warn(`relay ${id}: no VF; VF->VM CPU left as it is`);
    if (r.vm) next[VM_TO_VF] = want[VM_TO_VF];
    else this.log.warn(`relay ${id}: will not move VM->VF before the VM has connected`);
    if (next[0] === r.cpus[0] && next[1] === r.cpus[1]) return;
    this.dp.setCpus(r.id, next[VF_TO_VM], next[VM_TO_VF]);
    this.log.info(`relay ${id}: VF->VM on CPU ${next[VF_TO_VM]}, VM->VF on CPU ${next[VM_TO_VF]}`);
    r.cpus = next;
  }

  #syncVm(r: Relay, vm: boolean, queuePairs: number): void {
    if (r.vm === vm) return;
    r.vm = vm;
    r.queuePairs = queuePairs;
    if (vm) this.#place(r, VM_TO_VF);
    else this.#unplace(r, VM_TO_VF);
  }

  /** Applies vhost events (VM connect/disconnect, rings) to the table. */
  handle(ev: DataplaneEvent): void {
    const r = this.relays[ev.relay];
    if (!r) return;
    switch (ev.type) {
      case "vm-connected":
        this.#syncVm(r, true, ev.queuePairs);
        this.log.info(
          `relay ${r.id}: VM connected (${ev.queuePairs} queue pair(s), NUMA node ${ev.numaNode}, VM->VF on CPU ${
            r.cpus[VM_TO_VF]
          })`,
        );
        break;
      case "vm-disconnected":
        this.#syncVm(r, false, 0);
        this.log.info(`relay ${r.id}: VM disconnected`);
        break;
      case "vring-state":
        this.log.debug(`relay ${r.id}: vring ${ev.queue} ${ev.enabled ? "enabled" : "disabled"}`);
        break;
      case "vm-rejected":
        this.log.error(`relay ${r.id}: VM connection refused (errno ${ev.errno}: busy, >32 queue pairs or no memory)`);
        break;
      case "live-migration":
        this.log.notice(`relay ${r.id}: VHOST_F_LOG_ALL set, live migration is being initiated`);
        break;
      case "bond-failover": {
        const m = r.bond?.members ?? [];
        this.log.warn(
          `relay ${r.id}: bond ${r.vf}: member ${m[ev.lost] ?? ev.lost} lost its link; ${
            m[ev.active] ?? ev.active
          } is active now`,
        );
        break;
      }
    }
  }

  /** Relays with a VF or a VM, with their counters, for logs and tools. */
  snapshot(): Record<string, unknown>[] {
    const counters = this.dp.counters();
    return this.relays.filter((r) => r.vf !== null || r.vm).map((r) => ({
      id: r.id,
      socket: r.socket,
      vf: r.vf,
      vm: r.vm,
      vf_link: r.vf !== null && this.dp.state(r.id).vfLink,
      cpus: { vf_to_vm: r.cpus[VF_TO_VM], vm_to_vf: r.cpus[VM_TO_VF] },
      mbufs_in_use: this.dp.mbufsInUse(r.id),
      vf_to_vm: counters[r.id].vfToVm,
      vm_to_vf: counters[r.id].vmToVf,
    }));
  }
}

/** Runs `fn`, turning data-plane and table errors into one logged line; returns success. */
export function tryRelayOp(log: Logger, what: string, fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (e instanceof DataplaneError || e instanceof RelayError) {
      log.error(`${what}: ${e.message}`);
      return false;
    }
    throw e;
  }
}
