/**
 * Fuzz: random and mutated messages on every ZeroMQ endpoint of a running daemon (seeded). Every
 * message must be answered with a reply that decodes, the daemon must not crash, and its resident
 * memory must stay within 5% once warmed up.
 */

import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  ConfigResponseSchema,
  CoreSchedRequest_Op,
  CoreSchedRequestSchema,
  CoreSchedResponseSchema,
  PortControlRequest_Op as Op,
  PortControlRequestSchema,
  PortControlResponse_Status,
  PortControlResponseSchema,
  StatsRequestSchema,
  StatsResponseSchema,
} from "../../src/control/gen/virtioforwarder_pb.ts";
import { ZmqContext } from "../../ffi/zmq.ts";
import { World } from "../rigs/world.ts";
import { vmSocket } from "../rigs/devices.ts";
import { Rng, SEED, sized, summary } from "./common.ts";
import { Requester } from "../../src/control/client.ts";

const MESSAGES = sized(2_000, 100_000);

/** Valid messages of each endpoint, drawn at random. */
function seeds(rng: Rng, dir: string): Record<string, () => Uint8Array> {
  const enc = <S extends DescMessage>(s: S, m: MessageInitShape<S>) => toBinary(s, create(s, m));
  return {
    port_control: () =>
      enc(PortControlRequestSchema, {
        op: rng.pick([Op.ADD, Op.REMOVE, Op.ADD_SOCK, Op.REMOVE_SOCK, Op.QUERY_PCI]),
        virtioId: rng.int(70),
        conditional: rng.next() < 0.5,
        ...(rng.next() < 0.6 ? { devargs: [`net_null${rng.int(40)}`] } : {}),
        ...(rng.next() < 0.2
          ? { pciAddrs: [{ domain: rng.int(2), bus: rng.int(256), slot: rng.int(32), function: rng.int(8) }] }
          : {}),
        ...(rng.next() < 0.1 ? { name: `net_bonding_fz${rng.int(4)}`, mode: rng.int(8) } : {}),
        ...(rng.next() < 0.3 ? { vhostPath: vmSocket(`${dir}/sock`, rng.int(70)) } : {}),
      }),
    stats: () =>
      enc(StatsRequestSchema, {
        relay: Array.from({ length: rng.int(6) }, () => rng.int(70)),
        includeInactive: rng.next() < 0.5,
      }),
    config: () => new Uint8Array(0),
    core_sched: () =>
      enc(CoreSchedRequestSchema, {
        op: rng.pick([CoreSchedRequest_Op.UPDATE, CoreSchedRequest_Op.GET_EAL_CORES]),
        relayCpuMap: Array.from({ length: rng.int(4) }, () => ({
          relayNumber: rng.int(70) - 2,
          vf2virtioCpu: rng.int(5) - 1,
          virtio2vfCpu: rng.int(5) - 1,
        })),
      }),
  };
}

/** A valid message, a mutated one (bit flips, byte changes, insertions, deletions, truncation), or noise. */
function fuzzed(rng: Rng, valid: () => Uint8Array): Uint8Array {
  const roll = rng.next();
  if (roll < 0.25) return valid();
  if (roll < 0.4) return rng.bytes(rng.int(rng.next() < 0.9 ? 64 : 4096));
  const b = Array.from(valid());
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const at = rng.int(b.length + 1);
    switch (rng.int(5)) {
      case 0:
        if (at < b.length) b[at] ^= 1 << rng.int(8);
        break;
      case 1:
        if (at < b.length) b[at] = rng.int(256);
        break;
      case 2:
        b.splice(at, 0, ...rng.bytes(1 + rng.int(8)));
        break;
      case 3:
        b.splice(at, 1 + rng.int(4));
        break;
      case 4:
        b.length = Math.min(b.length, at);
    }
  }
  return Uint8Array.from(b);
}

const RESPONSES: Record<string, DescMessage> = {
  port_control: PortControlResponseSchema,
  stats: StatsResponseSchema,
  config: ConfigResponseSchema,
  core_sched: CoreSchedResponseSchema,
};

Deno.test(`fuzz: ${MESSAGES} random/mutated messages per ZeroMQ endpoint, each answered, no crash, RSS within 5%`, async () => {
  await using w = await World.create("fuzz");
  const dir = w.dir;
  const d = await w.daemon([
    `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${dir}/zmq/port_control`,
    `VIRTIOFWD_ZMQ_STATS_EP=ipc://${dir}/zmq/stats`,
    `VIRTIOFWD_ZMQ_CONFIG_EP=ipc://${dir}/zmq/config`,
    `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${dir}/zmq/core_sched`,
    "VIO4WD_CORE_SCHED_ENABLE=true",
  ]);
  const rng = new Rng(SEED);
  const valid = seeds(rng, dir);
  const ctx = new ZmqContext();
  w.defer(() => ctx.close());
  const t0 = performance.now();
  let unanswered = 0, undecodable = 0, portOk = 0, slowest = 0, rssWarm = 0, rssEnd = 0;
  const clients = Object.fromEntries(
    Object.keys(valid).map((e) => [e, new Requester(ctx, `ipc://${dir}/zmq/${e}`, 65_000)]),
  );
  // endpoints interleaved, as clients would use them
  const total = MESSAGES * Object.keys(valid).length;
  for (let i = 0; i < total; i++) {
    if (i === Math.floor(total / 10)) rssWarm = d.rssKiB();
    const endpoint = Object.keys(valid)[i % Object.keys(valid).length];
    const frame = fuzzed(rng, valid[endpoint]);
    const t = performance.now();
    const reply = await clients[endpoint].ask(frame);
    slowest = Math.max(slowest, performance.now() - t);
    if (reply === null) {
      unanswered++;
      console.error(`no reply from ${endpoint} to message ${i}: ${Array.from(frame).join(",")}`);
      continue;
    }
    try {
      const r = fromBinary(RESPONSES[endpoint], reply) as { status?: number };
      if (endpoint === "port_control" && r.status === PortControlResponse_Status.OK) portOk++;
    } catch {
      undecodable++;
    }
  }
  rssEnd = d.rssKiB();
  const crashed = d.log.includes("Uncaught") || d.log.includes("panicked") ? 1 : 0;
  const growth = (rssEnd - rssWarm) / rssWarm;
  summary("fuzz", {
    messages: MESSAGES * 4,
    per_endpoint: MESSAGES,
    port_ops_ok: portOk,
    unanswered,
    undecodable,
    crashes: crashed,
    slowest_reply_ms: slowest.toFixed(1),
    rss_kib: `${rssWarm}->${rssEnd}`,
    rss_growth: `${(growth * 100).toFixed(1)}%`,
    secs: ((performance.now() - t0) / 1000).toFixed(1),
  });
  if (unanswered || undecodable || crashed) {
    throw new Error(`${unanswered} unanswered, ${undecodable} undecodable replies, crashed=${crashed}`);
  }
  if (growth > 0.05) throw new Error(`daemon RSS grew ${(growth * 100).toFixed(1)}% (${rssWarm} -> ${rssEnd} KiB)`);
});
