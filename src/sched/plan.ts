/**
 * The core scheduler's decision, as the original's: a load per relay direction from its rates,
 * a greedy longest-processing-time placement over the worker CPUs of each NUMA group, and a move
 * only when the plan's coefficient of variation beats the current one by the sensitivity. Pure:
 * snapshots in, plan out.
 *
 * @module
 */

/** One active relay as the stats endpoint reports it. */
export interface RelayRates {
  id: number;
  /** NUMA node of the relay's pool (4294967295 = any). */
  socketId: number;
  /** Current CPUs. */
  vfToVmCpu: number;
  vmToVfCpu: number;
  /** Rates, packets/s and bytes/s. */
  pktRxFromVf: number;
  byteRxFromVf: number;
  pktTxToVm: number;
  byteTxToVm: number;
  pktRxFromVm: number;
  byteRxFromVm: number;
  pktTxToVf: number;
  byteTxToVf: number;
}

/** A relay's CPUs in a plan. */
export interface RelayCpus {
  relay: number;
  vfToVm: number;
  vmToVf: number;
}

/** A relay's rates alone (what the load model reads). */
export type Rates = Omit<RelayRates, "id" | "socketId" | "vfToVmCpu" | "vmToVfCpu">;

/** The load model: coefficient x mean Mpps + coefficient x mean MB/s, per direction. */
export function vmToVfLoad(r: Rates): number {
  return 0.082 * (r.pktRxFromVm + r.pktTxToVf) / 2 / 1e6 + 9.3e-5 * (r.byteRxFromVm + r.byteTxToVf) / 2 / 1e6;
}
export function vfToVmLoad(r: Rates): number {
  return 0.0795 * (r.pktRxFromVf + r.pktTxToVm) / 2 / 1e6 + 8.2e-5 * (r.byteRxFromVf + r.byteTxToVm) / 2 / 1e6;
}

/** Population standard deviation / mean of the loads; -1 when there is no load. */
export function coefficientOfVariation(loads: readonly number[]): number {
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  if (!(mean > 0)) return -1;
  const variance = loads.reduce((a, b) => a + (b - mean) ** 2, 0) / loads.length;
  return Math.sqrt(variance) / mean;
}

/** Per-worker load of a mapping (relays on CPUs outside `workers` are not counted). */
export function workerLoads(
  workers: readonly number[],
  relays: readonly RelayRates[],
  map: readonly RelayCpus[],
): number[] {
  const load = new Map(workers.map((w) => [w, 0]));
  for (const r of relays) {
    const m = map.find((x) => x.relay === r.id);
    if (!m) continue;
    if (load.has(m.vmToVf)) load.set(m.vmToVf, load.get(m.vmToVf)! + vmToVfLoad(r));
    if (load.has(m.vfToVm)) load.set(m.vfToVm, load.get(m.vfToVm)! + vfToVmLoad(r));
  }
  return workers.map((w) => load.get(w)!);
}

/** Greedy LPT: direction loads descending (stable), each to the least loaded worker (first on ties). */
export function proposeMapping(workers: readonly number[], relays: readonly RelayRates[]): RelayCpus[] {
  const items = relays.flatMap((r) => [
    { relay: r.id, dir: "vmToVf" as const, load: vmToVfLoad(r) },
    { relay: r.id, dir: "vfToVm" as const, load: vfToVmLoad(r) },
  ]);
  items.sort((a, b) => b.load - a.load); // Array.prototype.sort is stable
  const load = workers.map(() => 0);
  const out = new Map(relays.map((r) => [r.id, { relay: r.id, vfToVm: -1, vmToVf: -1 }]));
  for (const it of items) {
    let best = 0;
    for (let i = 1; i < workers.length; i++) if (load[i] < load[best]) best = i;
    load[best] += it.load;
    out.get(it.relay)![it.dir] = workers[best];
  }
  return [...out.values()];
}

/** What the scheduler decided for one NUMA group. */
export interface GroupDecision {
  /** NUMA node, or "global". */
  group: string;
  workers: number[];
  currentCv: number;
  planCv: number;
  /** The complete new mapping of the group when it should be applied, else null. */
  apply: RelayCpus[] | null;
  reason: string;
}

/** A CV that forces a move: a relay sits on a CPU outside its group's workers. */
const MISPLACED_CV = 1e10;

/**
 * Decides per NUMA group (or one global group). `nodeOfCpu` maps a worker CPU to its node.
 * Relays whose pool node is not a known node are left out, as the original does.
 */
export function decide(
  workers: readonly number[],
  relays: readonly RelayRates[],
  nodeOfCpu: (cpu: number) => number,
  sensitivity: number,
  global = false,
): { decisions: GroupDecision[]; skipped: number[] } {
  const known = new Set(workers.map(nodeOfCpu));
  const nodes = new Map<string, number[]>();
  for (const w of workers) {
    const key = global ? "global" : String(nodeOfCpu(w));
    nodes.set(key, [...(nodes.get(key) ?? []), w]);
  }
  const skipped: number[] = [];
  const groups = new Map<string, RelayRates[]>();
  for (const r of relays) {
    if (!known.has(r.socketId)) {
      skipped.push(r.id);
      continue;
    }
    const key = global ? "global" : String(r.socketId);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const decisions: GroupDecision[] = [];
  for (const [group, rs] of groups) {
    const ws = nodes.get(group)!;
    const current = rs.map((r) => ({ relay: r.id, vfToVm: r.vfToVmCpu, vmToVf: r.vmToVfCpu }));
    const plan = proposeMapping(ws, rs);
    const planCv = coefficientOfVariation(workerLoads(ws, rs, plan));
    const misplaced = current.some((m) => !ws.includes(m.vfToVm) || !ws.includes(m.vmToVf));
    const currentCv = misplaced ? MISPLACED_CV : coefficientOfVariation(workerLoads(ws, rs, current));
    let apply: RelayCpus[] | null = null;
    let reason: string;
    if (planCv === -1) reason = "no load";
    else if (planCv + sensitivity < currentCv) {
      apply = plan;
      reason = `plan CV ${planCv.toFixed(3)} + sensitivity ${sensitivity} < current CV ${currentCv.toFixed(3)}`;
    } else reason = "Worker cores still sufficiently balanced.";
    decisions.push({ group, workers: [...ws], currentCv, planCv, apply, reason });
  }
  return { decisions, skipped };
}
