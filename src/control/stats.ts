/**
 * The stats service: StatsRequest in, StatsResponse out, as the original answers it. Counters
 * are cumulative since start; rates are measured over the request's own `delay` window (clients
 * use delay=200); requests with a delay wait side by side, a few at most.
 *
 * @module
 */

import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { errorText, type Logger } from "../common/log.ts";
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
import type { Reply, Service } from "./server.ts";
import type { ZmqPeer } from "../../ffi/zmq.ts";

/** The original's request buffer. */
export const STATS_MAX_REQUEST = 512;
/** Longest rate window accepted: a longer `delay` would hold the stats service for minutes. */
export const STATS_MAX_DELAY_MS = 60_000;
/** The rate window the original's tools ask for (delay=200), and ours by default. */
export const RATE_WINDOW_MS = 200;
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
    active: vfOn && r.vm && report.vfRunning, // as the proto says: VM connected and VF started
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
    ...(report.vfRxMissed !== null ? { vfRxMissed: report.vfRxMissed } : {}),
    ...(report.vfRxNombuf !== null ? { vfRxNombuf: report.vfRxNombuf } : {}),
    ...(r.vm ? { vmQueuePairs: r.queuePairs } : {}),
  });
}

const encode = (r: MessageInitShape<typeof StatsResponseSchema>) =>
  toBinary(StatsResponseSchema, create(StatsResponseSchema, r));

/**
 * How many requests may wait out their `delay` at once. Each costs about 300 bytes (its envelope,
 * the request, a timer entry) plus its share of a counter snapshot (about 60 KiB with 64 relays,
 * shared by every request that arrives within the same 20 ms, and at most
 * {@link STATS_MAX_SNAPSHOTS} snapshots live at once): a client of another user than root may
 * hold {@link STATS_PEER_WAITING} (over ipc:// one user is one client, however many connections
 * it opens; over tcp:// one connection is one client), all such clients together
 * {@link STATS_OTHERS_WAITING}; root's clients (the scheduler, the monitor, the operator's tools)
 * are never refused for what others hold, and are bounded by {@link STATS_ROOT_WAITING} alone.
 * A request over a limit is answered EBADR at once. When a connection closes, its waiting
 * requests stop counting against its client at once (and cost only memory until they are due,
 * when their replies go nowhere): a file descriptor can be reused by a new connection, so a
 * request is never dropped on a close that may not be its own. All waiting requests together are
 * capped at {@link STATS_TOTAL_WAITING}: past it, those of closed connections are answered early.
 */
export const STATS_PEER_WAITING = 32;
export const STATS_OTHERS_WAITING = 2048;
export const STATS_ROOT_WAITING = 8192;
export const STATS_TOTAL_WAITING = STATS_OTHERS_WAITING + STATS_ROOT_WAITING;
export const STATS_MAX_SNAPSHOTS = 256;
/** Requests arriving within this many ms share one counter snapshot. */
const SNAPSHOT_SHARE_MS = 20;

/** A request waiting out its delay. */
interface Waiter {
  due: number;
  peer: ZmqPeer;
  key: string;
  req: StatsRequest;
  then: Snapshot;
  taken: number;
  /** Its connection closed: it no longer counts against its client. */
  gone: boolean;
  done: (reply: Reply) => void;
}

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
 * at once; those with one wait on one timer, within the limits above (STATS_PEER_WAITING...).
 */
export class StatsAnswerer {
  #waiting: Waiter[] = [];
  #perKey = new Map<string, number>();
  #others = 0;
  #root = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerDue = Infinity;
  #shared: { taken: number; snap: Snapshot } | null = null;
  constructor(readonly relays: RelayReader, readonly log: Logger) {}

  /** Requests waiting out their delay now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  answer(req: StatsRequest, peer: ZmqPeer = LOCAL_PEER): Reply | Promise<Reply> {
    if (req.relay.length > this.relays.limits.maxRelays) return encode({ status: Status.E2BIG });
    if (req.delay > STATS_MAX_DELAY_MS) {
      this.log.warn(`zmq_stats: delay ${req.delay} ms is above ${STATS_MAX_DELAY_MS} ms: answered EBADR`);
      return encode({ status: Status.EBADR });
    }
    if (req.delay === 0) return report(this.relays, req, snapshot(this.relays, req), 0);
    const key = peer.uid !== null ? `uid ${peer.uid}` : `connection ${peer.fd}`;
    const refused = this.#refusal(peer, key);
    if (refused) {
      this.#logRefusal(key, refused);
      return encode({ status: Status.EBADR });
    }
    const now = performance.now();
    // the workers' counters are read with the relays' (cheap) so that any request can share it; a
    // new snapshot only while fewer than STATS_MAX_SNAPSHOTS are held (rates stay exact: they are
    // over the time since the snapshot the request got)
    if (
      this.#shared === null ||
      (now - this.#shared.taken > SNAPSHOT_SHARE_MS &&
        new Set(this.#waiting.map((w) => w.then)).size < STATS_MAX_SNAPSHOTS)
    ) {
      this.#shared = { taken: now, snap: snapshot(this.relays, { ...req, includeWorkers: true }) };
    }
    const { taken, snap } = this.#shared;
    if (this.#waiting.length >= STATS_TOTAL_WAITING) this.#answerGoneEarly();
    this.#perKey.set(key, (this.#perKey.get(key) ?? 0) + 1);
    if (peer.uid === 0) this.#root++;
    else this.#others++;
    return new Promise<Reply>((done) => {
      this.#waiting.push({ due: now + req.delay, peer, key, req, then: snap, taken, gone: false, done });
      this.#arm();
    });
  }

  /** Refusals per client since its last log line: one line per client every 10 s at most. */
  #refusals = new Map<string, { count: number; logged: number }>();

  #logRefusal(key: string, why: string): void {
    const now = performance.now();
    const r = this.#refusals.get(key) ?? { count: 0, logged: -Infinity };
    r.count++;
    if (now - r.logged >= 10_000) {
      this.log.warn(`zmq_stats: ${why}: answered EBADR (${r.count} request(s) refused since the last such line)`);
      r.count = 0;
      r.logged = now;
    }
    this.#refusals.set(key, r);
    if (this.#refusals.size > 4096) this.#refusals.clear(); // bounded: one entry per client at most
  }

  /** Why a waiting request from `peer` is refused now, or null. */
  #refusal(peer: ZmqPeer, key: string): string | null {
    if (peer.uid === 0) {
      return this.#root >= STATS_ROOT_WAITING ? `${STATS_ROOT_WAITING} requests of root's already wait` : null;
    }
    if ((this.#perKey.get(key) ?? 0) >= STATS_PEER_WAITING) {
      return `${key} has ${STATS_PEER_WAITING} requests waiting out a delay already`;
    }
    if (this.#others >= STATS_OTHERS_WAITING) {
      return `${STATS_OTHERS_WAITING} requests of other users than root already wait`;
    }
    return null;
  }

  /** The connection `fd` closed: its waiting requests stop counting against its client. */
  peerGone(fd: number): void {
    const gone = this.#waiting.filter((w) => w.peer.fd === fd && !w.gone);
    for (const w of gone) this.#uncount(w);
    if (gone.length) this.log.debug(`zmq_stats: connection ${fd} closed: ${gone.length} waiting request(s) released`);
  }

  /** Past STATS_TOTAL_WAITING: the oldest requests of closed connections are answered now. */
  #answerGoneEarly(): void {
    const early = this.#waiting.filter((w) => w.gone).slice(0, 64);
    if (early.length === 0) return;
    const set = new Set(early);
    this.#waiting = this.#waiting.filter((w) => !set.has(w));
    const now = performance.now();
    for (const w of early) w.done(report(this.relays, w.req, w.then, (now - w.taken) / 1000));
  }

  #uncount(w: Waiter): void {
    w.gone = true;
    const n = (this.#perKey.get(w.key) ?? 1) - 1;
    if (n > 0) this.#perKey.set(w.key, n);
    else this.#perKey.delete(w.key);
    if (w.peer.uid === 0) this.#root--;
    else this.#others--;
  }

  #release(w: Waiter, reply: Reply): void {
    if (!w.gone) this.#uncount(w);
    w.done(reply);
  }

  /** One timer, for the earliest due request. */
  #arm(): void {
    const due = this.#waiting.reduce((m, w) => Math.min(m, w.due), Infinity);
    if (due === this.#timerDue) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerDue = due;
    if (due === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerDue = Infinity;
      this.#fire();
    }, Math.max(0, due - performance.now()));
  }

  #fire(): void {
    const now = performance.now();
    const ready = this.#waiting.filter((w) => w.due <= now);
    this.#waiting = this.#waiting.filter((w) => w.due > now);
    for (const w of ready) {
      let body: Reply;
      try {
        body = report(this.relays, w.req, w.then, (now - w.taken) / 1000);
      } catch (e) {
        this.log.error(`zmq_stats: ${errorText(e)}`);
        body = encode({ status: Status.EBADR });
      }
      this.#release(w, body);
    }
    this.#arm();
  }
}

/** A caller inside the daemon: root's. */
const LOCAL_PEER: ZmqPeer = { fd: -1, uid: 0 };

/** The stats ZeroMQ service, and how many requests wait out a delay (a metric). */
export function statsService(
  endpoint: string,
  relays: RelayReader,
  log: Logger,
  answerer = new StatsAnswerer(relays, log),
): Service {
  return {
    name: "zmq_stats",
    endpoint,
    maxRequestBytes: STATS_MAX_REQUEST,
    errorReply: () => encode({ status: Status.EBADR }),
    handle(bytes, peer) {
      const req = decodeRequest(StatsRequestSchema, bytes, "zmq_stats", log);
      if (!req) return encode({ status: Status.EBADR });
      return answerer.answer(req, peer);
    },
    peerGone: (fd) => answerer.peerGone(fd),
  };
}
