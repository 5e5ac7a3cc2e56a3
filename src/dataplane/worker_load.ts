/**
 * What a worker's loop accounting says between two readings (or since start): the share of its
 * cycles spent in passes that moved packets, and those cycles per packet, as OVS's
 * `dpif-netdev/pmd-perf-show` reports them.
 *
 * @module
 */

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
