/**
 * What a worker's loop accounting says between two readings (or since start): the share of its
 * cycles spent in passes that moved packets, and those cycles per packet, as OVS's
 * `dpif-netdev/pmd-perf-show` reports them.
 *
 * @module
 */

import type { WORKER_STEPS } from "../../ffi/shim.ts";

/** The counters the figures come from (WorkerCounters, or a WorkerState from the stats endpoint). */
export interface WorkerCycles {
  busyCycles: bigint;
  idleCycles: bigint;
  rxPkts: bigint;
  longPasses: bigint;
}

/** Busy share and cycles per packet of a window. */
export interface WorkerLoad {
  /** busy / (busy + idle) cycles, 0..1; null without any cycles. */
  busyShare: number | null;
  /** Busy cycles per packet taken in; null without packets. */
  cyclesPerPkt: number | null;
  /** Packets taken in. */
  pkts: bigint;
  /** Passes over 50 us per burst moved (interrupted; not counted as busy). */
  longPasses: bigint;
}

/** The load between `before` (absent: since start) and `now`. */
export function workerLoad(now: WorkerCycles, before?: WorkerCycles): WorkerLoad {
  const d = (k: keyof WorkerCycles) => now[k] - (before?.[k] ?? 0n);
  const busy = d("busyCycles"), idle = d("idleCycles"), pkts = d("rxPkts");
  return {
    busyShare: busy + idle > 0n ? Number(busy) / Number(busy + idle) : null,
    cyclesPerPkt: pkts > 0n ? Number(busy) / Number(pkts) : null,
    pkts,
    longPasses: d("longPasses"),
  };
}

/** Busy cycles by step (`enum vio4wd_step`), as a STEPS=1 shim counts them (a WorkerCounters' or a WorkerState's steps; all zero on the usual build). */
export type StepCycles = Record<typeof WORKER_STEPS[number], bigint>;

/** What each step is, for people: the order is the packet's way through the worker. */
export const STEP_LABELS: Readonly<Record<keyof StepCycles, string>> = {
  vfRx: "VF RX",
  vmEnqueue: "copy into VM",
  mbufFree: "mbuf free",
  vmDequeue: "copy from VM",
  vfTx: "VF TX",
  emptyPoll: "empty polls",
};

/** A step's name as the proto field and the metric label spell it: vfRx -> vf_rx. */
export const stepName = (step: string): string => step.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Whether the shim split the busy cycles by step (a STEPS=1 build that counted a busy pass). */
export const hasSteps = (steps: StepCycles): boolean => Object.values(steps).some((c) => c !== 0n);

/**
 * The busy cycles of a window split by step, each as cycles per packet, plus `loop`: what the
 * steps leave of the busy cycles (counting, hashing, the pass itself). Null without packets.
 */
export function stepCyclesPerPkt(
  now: WorkerCycles & { steps: StepCycles },
  before?: WorkerCycles & { steps: StepCycles },
): (Record<keyof StepCycles, number> & { loop: number }) | null {
  const pkts = now.rxPkts - (before?.rxPkts ?? 0n);
  if (pkts <= 0n) return null;
  const per = (c: bigint) => Number(c) / Number(pkts);
  const keys = Object.keys(STEP_LABELS) as (keyof StepCycles)[];
  const steps = Object.fromEntries(keys.map((k) => [k, per(now.steps[k] - (before?.steps[k] ?? 0n))]));
  const busy = per(now.busyCycles - (before?.busyCycles ?? 0n));
  const loop = busy - Object.values(steps).reduce((a, b) => a + b, 0);
  return { ...(steps as Record<keyof StepCycles, number>), loop };
}
