/**
 * The core-scheduling service: CoreSchedRequest in, CoreSchedResponse out. GET_EAL_CORES lists
 * the worker CPUs; UPDATE moves relay directions to other workers while they run (what the core
 * pinner and the scheduler use). Unlike the original, relay numbers outside 0-63 and CPUs that are
 * not workers are refused (ERROR, nothing changed).
 *
 * @module
 */

import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { MAX_RELAYS } from "../config/values.ts";
import type { RelayTable } from "../daemon/relays.ts";
import {
  type CoreSchedRequest,
  CoreSchedRequest_Op as Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status as Status,
  CoreSchedResponseSchema,
} from "./gen/virtioforwarder_pb.ts";
import { missingRequired } from "./proto_check.ts";
import type { Service } from "./server.ts";

const encode = (r: MessageInitShape<typeof CoreSchedResponseSchema>) =>
  toBinary(CoreSchedResponseSchema, create(CoreSchedResponseSchema, { status: Status.ERROR, ...r }));

/** Answers one decoded request. */
export function answerCoreSched(table: RelayTable, req: CoreSchedRequest): Uint8Array {
  const log = table.log;
  const workers = [...table.config.cpus].sort((a, b) => a - b);
  if (req.op === Op.GET_EAL_CORES) {
    if (workers.length === 0) return encode({ errorCode: 1, errorCodeSource: "worker core request" });
    return encode({ status: Status.OK, ealCores: workers });
  }
  if (req.op !== Op.UPDATE) {
    log.crit(`zmq_core_sched: unknown op ${req.op}`);
    return encode({});
  }
  log.info("CoreSchedRequest: [op=UPDATE]");
  if (req.relayCpuMap.length === 0) return encode({});
  const bad = req.relayCpuMap.find((m) =>
    m.relayNumber < 0 || m.relayNumber >= MAX_RELAYS || !workers.includes(m.vf2virtioCpu) ||
    !workers.includes(m.virtio2vfCpu)
  );
  if (bad) {
    log.warn(
      `zmq_core_sched: invalid field value(s): relay ${bad.relayNumber} -> ${bad.vf2virtioCpu},${bad.virtio2vfCpu} ` +
        `(relays 0-${MAX_RELAYS - 1}, worker CPUs ${workers.join(",")})`,
    );
    return encode({});
  }
  for (const m of req.relayCpuMap) {
    log.info(`Setting relay ${m.relayNumber}'s virtio2vf_cpu=${m.virtio2vfCpu} and vf2virtio_cpu=${m.vf2virtioCpu}`);
    table.migrate(m.relayNumber, m.vf2virtioCpu, m.virtio2vfCpu);
  }
  return encode({ status: Status.OK });
}

/** The core-scheduling ZeroMQ service. */
export function coreSchedService(endpoint: string, table: RelayTable): Service {
  return {
    name: "zmq_core_sched",
    endpoint,
    maxRequestBytes: 1024,
    errorReply: () => encode({}),
    handle(bytes) {
      let req: CoreSchedRequest;
      try {
        req = fromBinary(CoreSchedRequestSchema, bytes);
      } catch (e) {
        table.log.warn(
          `zmq_core_sched: undecodable request (${bytes.length} B): ${e instanceof Error ? e.message : e}`,
        );
        return encode({});
      }
      const missing = missingRequired(CoreSchedRequestSchema, req);
      if (missing) {
        table.log.warn(`zmq_core_sched: request without required field ${missing}`);
        return encode({});
      }
      return answerCoreSched(table, req);
    },
  };
}
