/**
 * The stats service: StatsRequest in, StatsResponse out, as the original answers it. Counters
 * are cumulative since start; rates are measured over the request's `delay` (every request
 * restarts the window for all relays, as in the original: clients use delay=200).
 *
 * @module
 */

import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "../common/log.ts";
import type { DirCounters, RelayCounters, RelayReport } from "../dataplane/dataplane.ts";
import { type RelayReader, type RelaySnapshot, VF_TO_VM, VM_TO_VF } from "../relays/table.ts";
import {
  type RelayState,
  RelayStateSchema,
  type StatsRequest,
  StatsRequestSchema,
  StatsResponse_Status as Status,
  StatsResponseSchema,
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

/** Answers one decoded request: snapshot, wait `delay`, report. */
export async function answerStats(relays: RelayReader, log: Logger, req: StatsRequest): Promise<Uint8Array> {
  const max = relays.limits.maxRelays;
  if (req.relay.length > max) return encode({ status: Status.E2BIG });
  if (req.delay > STATS_MAX_DELAY_MS) {
    log.warn(`zmq_stats: delay ${req.delay} ms is above ${STATS_MAX_DELAY_MS} ms: answered EBADR`);
    return encode({ status: Status.EBADR });
  }
  const then = relays.counters();
  const t0 = performance.now();
  if (req.delay > 0) await new Promise((r) => setTimeout(r, req.delay));
  const now = relays.counters();
  const secs = (performance.now() - t0) / 1000;
  const all = relays.list();
  const ids = req.relay.length ? req.relay.filter((id) => id < max) : all.map((r) => r.id);
  const relay: RelayState[] = [];
  for (const id of ids) {
    const r = all[id];
    if (!req.includeInactive && !(r.vm && r.vf !== null)) continue;
    relay.push(relayState(r, relays.report(id), now[id], then[id], secs));
  }
  return encode({ status: Status.OK, relay });
}

/** The stats ZeroMQ service. */
export function statsService(endpoint: string, relays: RelayReader, log: Logger): Service {
  return {
    name: "zmq_stats",
    endpoint,
    maxRequestBytes: STATS_MAX_REQUEST,
    errorReply: () => encode({ status: Status.EBADR }),
    handle(bytes) {
      const req = decodeRequest(StatsRequestSchema, bytes, "zmq_stats", log);
      if (!req) return encode({ status: Status.EBADR });
      return answerStats(relays, log, req);
    },
  };
}
