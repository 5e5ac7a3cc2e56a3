/**
 * The relay table: the one owner of what TypeScript decides for each relay (socket, VF or bond,
 * CPUs, pins). Its records are private; everything else reads them as {@link RelaySnapshot}s and
 * changes them only through the table's methods, which apply each change to the data plane. What
 * the data plane learns on its own (a VM connecting) is read from it, never mirrored: snapshots
 * take the VM from the shared memory, and {@link RelayTable.tick} places or releases a VM's side
 * once per tick of the daemon's loop. Events only feed the log (and a VF's reset or removal).
 *
 * Services depend on the narrow views: {@link RelayReader} (stats, metrics), {@link RelayPorts}
 * (port control, monitors), {@link RelayPlacement} (core scheduling).
 *
 * @module
 */

import { ERRNO } from "../../ffi/errno.ts";
import { type Config, vfMtu } from "../config/config.ts";
import { isPciAddress, normalizePci, socketPath } from "../config/values.ts";
import { pciStandIn } from "../common/sysfs.ts";
import { errorText, type Logger } from "../common/log.ts";
import {
  type DataPath,
  DataplaneError,
  type DataplaneEvent,
  type RelayCounters,
  type RelayReport,
  type ShimLimits,
  type WorkerCounters,
} from "../dataplane/dataplane.ts";

/** Which direction of a relay: index into {@link RelaySnapshot.cpus}. */
export const VF_TO_VM = 0;
export const VM_TO_VF = 1;

/** A relay as the table has it, read-only. */
export interface RelaySnapshot {
  readonly id: number;
  /** vhost-user socket path, or null without one. */
  readonly socket: string | null;
  /** VF devargs or PCI address (a bond's name), or null without one. */
  readonly vf: string | null;
  /** When the VF side is a bond: its mode and member devices. */
  readonly bond: { readonly mode: number; readonly members: readonly string[] } | null;
  /** A VM is connected on the socket. */
  readonly vm: boolean;
  readonly queuePairs: number;
  /** Worker CPU of [VF->VM, VM->VF]; -1 when unassigned. */
  readonly cpus: readonly [number, number];
  /** CPUs from VIRTIOFWD_CPU_PINS ([VF->VM, VM->VF]): used whenever a side comes up. */
  readonly pin: readonly [number, number] | null;
}

/** Reading relays and their counters: what stats, metrics and status logs need. */
export interface RelayReader {
  readonly limits: ShimLimits;
  get(id: number): RelaySnapshot;
  list(): RelaySnapshot[];
  counters(): RelayCounters[];
  workers(): WorkerCounters[];
  /** The workers' cycle counter frequency (Hz). */
  tscHz(): bigint;
  /** The relay as the data plane has it (link, NUMA node, mbufs in use). */
  report(id: number): RelayReport;
}

/** Adding and removing ports: what port control and the port monitors need. */
export interface RelayPorts {
  readonly limits: ShimLimits;
  get(id: number): RelaySnapshot;
  list(): RelaySnapshot[];
  /** The relay whose socket is `path`. */
  findBySocket(path: string): RelaySnapshot | undefined;
  /** The relay whose VF is `device` (PCI addresses compared normalised). */
  findByDevice(device: string): RelaySnapshot | undefined;
  /** The socket path of relay `id` under the configured directory and pattern. */
  defaultSocketPath(id: number): string;
  addSocket(id: number, path?: string): void;
  removeSocket(id: number): void;
  addVf(id: number, device: string): void;
  addBond(id: number, name: string, mode: number, members: readonly string[]): void;
  removeVf(id: number): void;
}

/** Moving relay directions between worker CPUs: what core scheduling needs. */
export interface RelayPlacement {
  readonly limits: ShimLimits;
  /** The worker CPUs, ascending. */
  readonly workerCpus: readonly number[];
  migrate(id: number, vfToVmCpu: number, vmToVfCpu: number): void;
}

/** A relay-table operation was refused; `code` is an errno-like number. */
export class RelayError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "RelayError";
  }
}

/** What a refused relay operation throws. */
export type RelayFailure = DataplaneError | RelayError;

/**
 * Runs one relay operation: null when it worked, else the refusal, logged as `what: why`. Other
 * errors (bugs) are thrown.
 */
export function attempt(log: Logger, what: string, fn: () => void): RelayFailure | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof DataplaneError || e instanceof RelayError) {
      log.error(`${what}: ${e.message}`);
      return e;
    }
    throw e;
  }
}

const EINVAL = 22;
const { EEXIST, ENOENT } = ERRNO;

/** The device string as the table stores it: PCI addresses normalised, devargs as given. */
export function normalizeDevice(device: string): string {
  return isPciAddress(device) ? normalizePci(device) : device;
}

/**
 * Refuses a device string DPDK should never see: control characters (DPDK logs device strings
 * as they are, so a newline would forge log lines) or more than DPDK's 256 bytes.
 */
function checkDeviceString(device: string): void {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(device)) {
    throw new RelayError(EINVAL, "a device string may not contain control characters");
  }
  if (new TextEncoder().encode(device).length >= 256) {
    throw new RelayError(EINVAL, "a device string is at most 255 bytes");
  }
}

/**
 * One relay's record (private to the table): its socket, its VF or bond, its CPUs and pin. Whether a VM
 * is connected is the data path's to know: `vmPlaced` only records whether the table has placed
 * the VM side (the last tick saw a VM), never a copy of the VM's state.
 */
interface Relay {
  id: number;
  socket: string | null;
  vf: string | null;
  bond: { mode: number; members: string[] } | null;
  vmPlaced: boolean;
  cpus: [number, number];
  pin: [number, number] | null;
}

/**
 * The worker CPUs a relay direction may be placed on, as the original picks them: those on the
 * NUMA node of the relay's buffer pool (the VF's node, then the guest memory's once the VM is
 * there) when there are any, else all of them.
 */
export function placementCandidates(
  workers: readonly number[],
  cpuNode: ReadonlyMap<number, number>,
  node: number,
): readonly number[] {
  if (node < 0) return workers;
  const local = workers.filter((c) => cpuNode.get(c) === node);
  return local.length > 0 ? local : workers;
}

/**
 * Picks the least busy worker CPU: 12 points per VF->VM direction with a VF on the CPU, 10 per
 * VM->VF direction with a VM (the original's weights); ties go to the lowest CPU.
 */
export function leastBusyCpu(
  workers: readonly number[],
  relays: Iterable<Pick<RelaySnapshot, "vf" | "vm" | "cpus">>,
): number {
  const score = new Map(workers.map((c) => [c, 0]));
  for (const r of relays) {
    if (r.vf !== null && score.has(r.cpus[VF_TO_VM])) score.set(r.cpus[VF_TO_VM], score.get(r.cpus[VF_TO_VM])! + 12);
    if (r.vm && score.has(r.cpus[VM_TO_VF])) score.set(r.cpus[VM_TO_VF], score.get(r.cpus[VM_TO_VF])! + 10);
  }
  let best = workers[0];
  for (const c of workers) if (score.get(c)! < score.get(best)!) best = c;
  return best;
}

/** The relay as the table decides it, with its VM as the data path has it (`queuePairs`, 0: none). */
const snapshot = (r: Relay, queuePairs: number): RelaySnapshot =>
  Object.freeze({
    id: r.id,
    socket: r.socket,
    vf: r.vf,
    vm: queuePairs > 0,
    queuePairs,
    bond: r.bond ? Object.freeze({ mode: r.bond.mode, members: Object.freeze([...r.bond.members]) }) : null,
    cpus: Object.freeze([...r.cpus]) as unknown as readonly [number, number],
    pin: r.pin ? Object.freeze([...r.pin]) as unknown as readonly [number, number] : null,
  });

/** The relay table over a running data plane. */
export class RelayTable implements RelayReader, RelayPorts, RelayPlacement {
  readonly #relays: Relay[] = [];
  readonly #config: Config;
  readonly #dp: DataPath;
  readonly #log: Logger;
  readonly limits: ShimLimits;
  readonly workerCpus: readonly number[];
  readonly #cpuNode: ReadonlyMap<number, number>;

  /** `cpuNode`: each CPU's NUMA node (relays are placed on their pool's node). */
  constructor(config: Config, dp: DataPath, log: Logger, cpuNode: ReadonlyMap<number, number> = new Map()) {
    this.#config = config;
    this.#dp = dp;
    this.#log = log;
    this.limits = dp.limits;
    this.workerCpus = [...config.cpus].sort((a, b) => a - b);
    this.#cpuNode = cpuNode;
    const pins = new Map(config.cpuPins.map((p) => [p.relay, p]));
    for (let id = 0; id < this.limits.maxRelays; id++) {
      const pin = pins.get(id);
      this.#relays.push({
        id,
        socket: null,
        vf: null,
        bond: null,
        vmPlaced: false,
        cpus: pin ? [pin.vfToVm, pin.vmToVf] : [-1, -1],
        pin: pin ? [pin.vfToVm, pin.vmToVf] : null,
      });
    }
  }

  #relay(id: number): Relay {
    if (!Number.isInteger(id) || id < 0 || id >= this.#relays.length) {
      throw new RelayError(EINVAL, `relay id ${id} is out of range 0-${this.#relays.length - 1}`);
    }
    return this.#relays[id];
  }

  get(id: number): RelaySnapshot {
    const r = this.#relay(id);
    return snapshot(r, this.#dp.vmQueuePairs()[r.id]);
  }

  list(): RelaySnapshot[] {
    const qp = this.#dp.vmQueuePairs();
    return this.#relays.map((r) => snapshot(r, qp[r.id]));
  }

  findBySocket(path: string): RelaySnapshot | undefined {
    const r = this.#relays.find((x) => x.socket === path);
    return r && this.get(r.id);
  }

  findByDevice(device: string): RelaySnapshot | undefined {
    const dev = normalizeDevice(device);
    const r = this.#relays.find((x) => x.vf === dev);
    return r && this.get(r.id);
  }

  counters(): RelayCounters[] {
    return this.#dp.counters();
  }

  workers(): WorkerCounters[] {
    return this.#dp.workers();
  }

  tscHz(): bigint {
    return this.#dp.tscHz;
  }

  report(id: number): RelayReport {
    return this.#dp.report(this.#relay(id).id);
  }

  #apply(r: Relay): void {
    this.#dp.setCpus(r.id, r.cpus[VF_TO_VM], r.cpus[VM_TO_VF]);
  }

  /**
   * Gives directions a CPU (their pin, else the least busy worker on the NUMA node of the relay's
   * pool, see {@link placementCandidates}), in the order given, and applies them.
   */
  #place(r: Relay, ...dirs: number[]): void {
    const node = this.#dp.report(r.id).numaNode;
    for (const dir of dirs) {
      if (r.pin) r.cpus[dir] = r.pin[dir];
      else if (r.cpus[dir] < 0) {
        const load = this.#relays.map((x) => ({ vf: x.vf, vm: x.vmPlaced, cpus: x.cpus }));
        r.cpus[dir] = leastBusyCpu(placementCandidates(this.#config.cpus, this.#cpuNode, node), load);
      }
    }
    this.#apply(r);
  }

  /** Releases a direction's CPU when its side went away (pinned relays keep theirs). */
  #unplace(r: Relay, dir: number): void {
    if (!r.pin) r.cpus[dir] = -1;
    this.#apply(r);
  }

  defaultSocketPath(id: number): string {
    return socketPath(this.#config.socketDir, this.#config.socketPattern, id);
  }

  /**
   * Registers the relay's vhost-user socket (server: listen; client: connect with retry; `adopt`:
   * neither, its sockets come from the daemon this one takes over from).
   */
  addSocket(id: number, path = this.defaultSocketPath(id), adopt = false): void {
    const r = this.#relay(id);
    if (r.socket !== null) throw new RelayError(EEXIST, `relay ${id} already has socket ${r.socket}`);
    const c = this.#config;
    this.#dp.registerSocket(id, path, {
      client: c.vhostClient,
      mrgbuf: c.mrgbuf,
      tso: c.tso,
      owner: c.socketOwner,
      group: c.socketGroup,
      adopt,
    });
    r.socket = path;
    this.#log.debug(`relay ${id}: vhost-user socket ${path} (${c.vhostClient ? "client" : "server"} mode)`);
  }

  /** Closes the relay's socket, disconnecting its VM. */
  removeSocket(id: number): void {
    const r = this.#relay(id);
    if (r.socket === null) throw new RelayError(ENOENT, `relay ${id} has no socket`);
    try {
      this.#dp.unregisterSocket(id);
    } finally { // the data plane lets go of the socket even when its unregistration fails: so does the table
      const path = r.socket;
      r.socket = null;
      // its VM went with it (the next tick would find no VM, but the socket's path is gone by then)
      if (this.#syncVm(r, false)) this.#logVmLeft(id, path);
    }
  }

  /** Attaches a VF (PCI address or devargs) to a relay; on failure nothing is left behind. */
  addVf(id: number, device: string): void {
    checkDeviceString(device);
    const dev = normalizeDevice(device);
    this.#attach(id, dev, null, () => this.#dp.attachVf(id, dpdkDevice(dev), this.#mtu()));
  }

  /**
   * Attaches a bond `name` (net_bonding...) of 2 to `limits.maxBondMembers` devices in `mode`
   * (0-6) as the relay's VF side; its members count against the DPDK port limit like VFs.
   */
  addBond(id: number, name: string, mode: number, members: readonly string[]): void {
    for (const d of [name, ...members]) checkDeviceString(d);
    const devs = members.map(normalizeDevice);
    const inUse = this.#relays.find((x) => x.bond?.members.some((m) => devs.includes(m)));
    if (inUse) {
      throw new RelayError(EEXIST, `a member of bond ${name} is already in bond ${inUse.vf} on relay ${inUse.id}`);
    }
    this.#attach(
      id,
      name,
      { mode, members: devs },
      () => this.#dp.attachBond(id, name, mode, devs.map(dpdkDevice), this.#mtu()),
    );
  }

  #mtu(): number {
    return vfMtu(this.#config);
  }

  #attach(id: number, dev: string, bond: Relay["bond"], attach: () => void): void {
    const r = this.#relay(id);
    if (r.vf !== null) throw new RelayError(EEXIST, `relay ${id} already has VF ${r.vf}; remove it first`);
    const other = this.#relays.find((x) => x.vf === dev);
    if (other) throw new RelayError(EEXIST, `device ${dev} is already on relay ${other.id}`);
    attach();
    r.vf = dev;
    r.bond = bond;
    try {
      this.#place(r, VF_TO_VM);
    } catch (e) {
      r.vf = null;
      r.bond = null;
      this.#dp.detachVf(id);
      throw e;
    }
    const what = bond ? `bond ${dev} (mode ${bond.mode}: ${bond.members.join(", ")})` : `VF ${dev}`;
    this.#log.info(`relay ${id}: ${what} added (VF->VM on CPU ${r.cpus[VF_TO_VM]})`);
  }

  /** Detaches the relay's VF. */
  removeVf(id: number): void {
    const r = this.#relay(id);
    if (r.vf === null) throw new RelayError(ENOENT, `relay ${id} has no VF`);
    try {
      this.#dp.detachVf(id);
    } finally { // the data plane detaches it even when unplugging the device fails: so does the table
      this.#log.info(`relay ${id}: ${r.bond ? "bond" : "VF"} ${r.vf} removed`);
      r.vf = null;
      r.bond = null;
      this.#unplace(r, VF_TO_VM);
    }
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
      if (!this.#config.cpus.includes(cpu)) throw new RelayError(EINVAL, `CPU ${cpu} is not a worker CPU`);
    }
    const next: [number, number] = [...r.cpus];
    if (r.vf !== null) next[VF_TO_VM] = want[VF_TO_VM];
    else this.#log.warn(`relay ${id}: no VF; VF->VM CPU left as it is`);
    if (r.vmPlaced) next[VM_TO_VF] = want[VM_TO_VF];
    else this.#log.warn(`relay ${id}: will not move VM->VF before the VM has connected`);
    if (next[0] === r.cpus[0] && next[1] === r.cpus[1]) return;
    this.#dp.setCpus(r.id, next[VF_TO_VM], next[VM_TO_VF]);
    this.#log.info(`relay ${id}: VF->VM on CPU ${next[VF_TO_VM]}, VM->VF on CPU ${next[VM_TO_VF]}`);
    r.cpus = next;
  }

  /** Places (a VM came) or releases (it left) the relay's VM side; false when there was nothing to do. */
  #syncVm(r: Relay, vm: boolean): boolean {
    if (r.vmPlaced === vm) return false;
    r.vmPlaced = vm;
    if (!vm) this.#unplace(r, VM_TO_VF);
    else if (r.vf === null || r.pin) this.#place(r, VM_TO_VF);
    else {
      // As the original: with the VM there the relay's pool follows the guest's memory, so the
      // VF->VM direction (not running before the VM came) is placed again, after VM->VF.
      r.cpus[VF_TO_VM] = -1;
      this.#place(r, VM_TO_VF, VF_TO_VM);
    }
    return true;
  }

  /**
   * Level-triggered, once per tick of the daemon's loop: reads every relay's VM from the data path
   * (shared memory) and places or releases the VM side of each whose VM came or went since the
   * last tick. Nothing is learnt from events, so none can be missed.
   */
  tick(): void {
    const queuePairs = this.#dp.vmQueuePairs();
    for (const r of this.#relays) {
      const qp = queuePairs[r.id];
      if (!this.#syncVm(r, qp > 0)) continue;
      if (qp > 0) {
        this.#log.info(
          `relay ${r.id}: VM connected (${qp} queue pair(s), NUMA node ${this.#dp.report(r.id).numaNode}, ` +
            `VM->VF on CPU ${r.cpus[VM_TO_VF]}, VF->VM on CPU ${r.cpus[VF_TO_VM]}): new virtio device on '${r.socket}'`,
        );
      } else this.#logVmLeft(r.id, r.socket);
    }
  }

  /** The original's words for a VM that left (operators grep "destroy virtio device"). */
  #logVmLeft(id: number, socket: string | null): void {
    this.#log.info(`relay ${id}: VM disconnected: destroy virtio device on '${socket}'`);
  }

  /**
   * An event from the data plane: logged (what the data path did, for the record); a VF that asks
   * for a reset or went away is acted on. VMs are seen by tick(), not here.
   */
  handle(ev: DataplaneEvent): void {
    const r = this.#relays[ev.relay];
    if (!r) return;
    switch (ev.type) {
      case "vm-connected": // tick() acts on it and says so; the event is for the record
        this.#log.debug(`relay ${r.id}: vhost: new device (${ev.queuePairs} queue pair(s), NUMA node ${ev.numaNode})`);
        break;
      case "vm-disconnected":
        this.#log.debug(`relay ${r.id}: vhost: device destroyed`);
        break;
      case "vring-state":
        this.#log.debug(`relay ${r.id}: vring ${ev.queue} ${ev.enabled ? "enabled" : "disabled"}`);
        break;
      case "vm-rejected":
        this.#log.error(
          `relay ${r.id}: VM connection refused (errno ${ev.errno}: busy, more than ${this.limits.maxQueuePairs} ` +
            `queue pairs or no memory)`,
        );
        break;
      case "vf-failed":
        this.#log.error(
          `relay ${r.id}: its VF ${r.vf} could not be started for the VM (errno ${ev.errno}); the relay forwards ` +
            `nothing until the VF is removed and added again (vio4wd port remove/add)`,
        );
        break;
      case "vf-reset":
        if (r.vf === null) break;
        try {
          this.#dp.resetVf(r.id);
          this.#log.warn(
            `relay ${r.id}: its VF ${r.vf} asked for a reset (its PF was reset?); reset and running again`,
          );
        } catch (e) {
          this.#log.error(
            `relay ${r.id}: its VF ${r.vf} asked for a reset, which failed (${errorText(e)}); the relay forwards ` +
              `nothing until the VF is removed and added again (vio4wd port remove/add)`,
          );
        }
        break;
      case "vf-removed":
        if (r.vf === null) break;
        this.#log.error(
          `relay ${r.id}: its VF ${r.vf} was removed from the system (hot-unplug); detaching it. Add it again ` +
            `once it is back (vio4wd port add)`,
        );
        try {
          this.removeVf(r.id);
        } catch (e) {
          this.#log.error(`relay ${r.id}: detaching the removed VF: ${errorText(e)}`);
        }
        break;
      case "live-migration":
        this.#log.notice(`relay ${r.id}: VHOST_F_LOG_ALL set, live migration is being initiated`);
        break;
      case "bond-failover": {
        const m = r.bond?.members ?? [];
        this.#log.warn(
          `relay ${r.id}: bond ${r.vf}: member ${m[ev.lost] ?? ev.lost} lost its link; ${
            m[ev.active] ?? ev.active
          } is active now`,
        );
        break;
      }
    }
  }
}

/** What DPDK is given for a device: a PCI address's stand-in in a fake sysfs tree (tests), else the device. */
function dpdkDevice(dev: string): string {
  return isPciAddress(dev) ? pciStandIn(dev) ?? dev : dev;
}
