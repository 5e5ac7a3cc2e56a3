/**
 * The stats service: StatsRequest in, StatsResponse out, as the original answers it. Counters
 * are cumulative since start; rates are measured over the request's own `delay` window (clients
 * use delay=200); requests with a delay wait side by side, a few at most.
 *
 * @module
 */

import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "../common/log.ts";
import type { DirCounters, RelayCounters, RelayReport, WorkerCounters } from "../dataplane/dataplane.ts";
import { hasSteps, workerLoad } from "../dataplane/worker_load.ts";
import { type RelayReader, type RelaySnapshot, VF_TO_VM, VM_TO_VF } from "../relays/table.ts";
import {
  type RelayState,
  RelayStateSchema,
  type StatsRequest,
  StatsRequestSchema,
  StatsResponse_Status as Status,
  StatsResponseSchema,
  type WorkerState,
  WorkerStateSchema,
} from "./gen/virtioforwarder_pb.ts";
import { decodeRequest } from "./proto_check.ts";
import type { Service } from "./server.ts";

/** The original's request buffer. */
export const STATS_MAX_REQUEST = 512;
/** Longest rate window accepted: a longer `delay` would hold the stats service for minutes. */
export const STATS_MAX_DELAY_MS = 60_000;
/** `socket_id` of a relay with no NUMA node, as the original sends -1. */
const ANY_NODE = 4294967295;

/** Internal state strings of the two directions, as the original reports them. */
export function vfState(r: RelaySnapshot): string {
  return r.vf === null ? "DPDK_UNINIT" : r.vm ? "DPDK_READY" : "DPDK_ADDED";
}
export function vmState(r: RelaySnapshot): string {
  return r.vm ? "VIRTIO_READY" : "VIRTIO_UNINIT";
}

const rate = (now: bigint, then: bigint, secs: number) => secs > 0 ? Number(now - then) / secs : 0;

/** One RelayState from the table, the data plane's report, current counters and the window's starting counters. */
export function relayState(
  r: RelaySnapshot,
  report: RelayReport,
  now: RelayCounters,
  then: RelayCounters,
  secs: number,
): RelayState {
  const vfOn = r.vf !== null;
  const up = (c: DirCounters, p: DirCounters) => ({
    rx: rate(c.rxPkts, p.rxPkts, secs),
    rxB: rate(c.rxBytes, p.rxBytes, secs),
    tx: rate(c.txPkts, p.txPkts, secs),
    txB: rate(c.txBytes, p.txBytes, secs),
  });
  const a = up(now.vfToVm, then.vfToVm), b = up(now.vmToVf, then.vmToVf);
  const u = now.vfToVm, d = now.vmToVf;
  const cpu: MessageInitShape<typeof RelayStateSchema>["cpu"] = {};
  if (vfOn) cpu.vfToVm = r.cpus[VF_TO_VM];
  if (r.vm) cpu.vmToVf = r.cpus[VM_TO_VF];
  return create(RelayStateSchema, {
    id: r.id,
    active: vfOn && r.vm,
    ...(vfOn || r.vm ? { cpu } : {}),
    vhost: { vhostSocketName: r.socket ?? "NONE" },
    ...(vfOn ? { vf: { pciAddrStr: r.vf! } } : {}),
    vfToVm: {
      active: vfOn,
      internalState: vfState(r),
      ...(vfOn
        ? {
          pktsRxFromVf: u.rxPkts,
          bytesRxFromVf: u.rxBytes,
          pktsTxToVm: u.txPkts,
          bytesTxToVm: u.txBytes,
          pktsDroppedVmQueueFull: u.dropFullPkts,
          bytesDroppedVmQueueFull: u.dropFullBytes,
          pktsDroppedVmNotConnected: u.dropUnavailPkts,
          bytesDroppedVmNotConnected: u.dropUnavailBytes,
        }
        : {}),
      pktRateRxFromVf: a.rx,
      byteRateRxFromVf: a.rxB,
      pktRateTxToVm: a.tx,
      byteRateTxToVm: a.txB,
    },
    vmToVf: {
      active: r.vm,
      internalState: vmState(r),
      ...(r.vm
        ? {
          pktsRxFromVm: d.rxPkts,
          bytesRxFromVm: d.rxBytes,
          pktsTxToVf: d.txPkts,
          bytesTxToVf: d.txBytes,
          pktsDroppedVfQueueFull: d.dropFullPkts,
          bytesDroppedVfQueueFull: d.dropFullBytes,
          pktsDroppedVfNotConnected: d.dropUnavailPkts,
          bytesDroppedVfNotConnected: d.dropUnavailBytes,
        }
        : {}),
      pktRateRxFromVm: b.rx,
      byteRateRxFromVm: b.rxB,
      pktRateTxToVf: b.tx,
      byteRateTxToVf: b.txB,
    },
    socketId: report.numaNode < 0 ? ANY_NODE : report.numaNode,
    ...(vfOn ? { vfLink: report.vfLink } : {}),
    ...(report.mbufsInUse !== null ? { mbufsInUse: report.mbufsInUse } : {}),
  });
}

const encode = (r: MessageInitShape<typeof StatsResponseSchema>) =>
  toBinary(StatsResponseSchema, create(StatsResponseSchema, r));

/** Requests waiting out their `delay` at once; more are answered EBADR at once (one client cannot tie the service up). */
export const STATS_MAX_WAITING = 16;

/** Counter snapshots a report compares with: the relays', and the workers' when asked for. */
interface Snapshot {
  relays: RelayCounters[];
  workers: WorkerCounters[] | null;
}

const snapshot = (relays: RelayReader, req: StatsRequest): Snapshot => ({
  relays: relays.counters(),
  workers: req.includeWorkers ? relays.workers() : null,
});

/** The workers' accounting, the figures over the window when there is one (`then`). */
function workerStates(now: WorkerCounters[], then: WorkerCounters[] | null): WorkerState[] {
  return now.map((w) => {
    const load = workerLoad(w, then?.find((t) => t.cpu === w.cpu));
    const { steps, ...counters } = w; // the counters have the message's field names
    return create(WorkerStateSchema, {
      ...counters,
      ...(load.busyShare !== null ? { busyShare: load.busyShare } : {}),
      ...(load.cyclesPerPkt !== null ? { cyclesPerPkt: load.cyclesPerPkt } : {}),
      ...(hasSteps(steps) ? { steps } : {}),
    });
  });
}

/** The report of `req` between two counter snapshots taken `secs` apart. */
function report(relays: RelayReader, req: StatsRequest, before: Snapshot, secs: number): Uint8Array {
  const then = before.relays;
  const max = relays.limits.maxRelays;
  const now = relays.counters();
  const all = relays.list();
  const ids = req.relay.length ? req.relay.filter((id) => id < max) : all.map((r) => r.id);
  const relay: RelayState[] = [];
  for (const id of ids) {
    const r = all[id];
    if (!req.includeInactive && !(r.vm && r.vf !== null)) continue;
    relay.push(relayState(r, relays.report(id), now[id], then[id], secs));
  }
  if (!req.includeWorkers) return encode({ status: Status.OK, relay });
  const workers = workerStates(relays.workers(), secs > 0 ? before.workers : null);
  return encode({ status: Status.OK, relay, workers, tscHz: relays.tscHz() });
}

/**
 * Answers stats requests: snapshot, wait `delay`, report. A request without a delay is answered
 * at once; one with a delay waits on its own, at most STATS_MAX_WAITING of them at a time.
 */
export class StatsAnswerer {
  #waiting = 0;
  constructor(readonly relays: RelayReader, readonly log: Logger) {}

  answer(req: StatsRequest): Uint8Array | Promise<Uint8Array> {
    if (req.relay.length > this.relays.limits.maxRelays) return encode({ status: Status.E2BIG });
    if (req.delay > STATS_MAX_DELAY_MS) {
      this.log.warn(`zmq_stats: delay ${req.delay} ms is above ${STATS_MAX_DELAY_MS} ms: answered EBADR`);
      return encode({ status: Status.EBADR });
    }
    const then = snapshot(this.relays, req);
    if (req.delay === 0) return report(this.relays, req, then, 0);
    if (this.#waiting >= STATS_MAX_WAITING) {
      this.log.warn(`zmq_stats: ${STATS_MAX_WAITING} requests already wait out a delay: answered EBADR`);
      return encode({ status: Status.EBADR });
    }
    this.#waiting++;
    const t0 = performance.now();
    return new Promise<void>((r) => setTimeout(r, req.delay)).then(() => {
      this.#waiting--;
      return report(this.relays, req, then, (performance.now() - t0) / 1000);
    });
  }
}

/** The stats ZeroMQ service. */
export function statsService(endpoint: string, relays: RelayReader, log: Logger): Service {
  const answerer = new StatsAnswerer(relays, log);
  return {
    name: "zmq_stats",
    endpoint,
    maxRequestBytes: STATS_MAX_REQUEST,
    errorReply: () => encode({ status: Status.EBADR }),
    handle(bytes) {
      const req = decodeRequest(StatsRequestSchema, bytes, "zmq_stats", log);
      if (!req) return encode({ status: Status.EBADR });
      return answerer.answer(req);
    },
  };
}
