/**
 * The core-scheduling service: CoreSchedRequest in, CoreSchedResponse out. GET_EAL_CORES lists
 * the worker CPUs; UPDATE moves relay directions to other workers while they run (what the core
 * pinner and the scheduler use). Unlike the original, relay numbers out of range and CPUs that are
 * not workers are refused (ERROR, nothing changed).
 *
 * @module
 */

import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "../common/log.ts";
import type { RelayPlacement } from "../relays/table.ts";
import {
  type CoreSchedRequest,
  CoreSchedRequest_Op as Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status as Status,
  CoreSchedResponseSchema,
} from "./gen/virtioforwarder_pb.ts";
import { decodeRequest } from "./proto_check.ts";
import type { Service } from "./server.ts";

const encode = (r: MessageInitShape<typeof CoreSchedResponseSchema>) =>
  toBinary(CoreSchedResponseSchema, create(CoreSchedResponseSchema, { status: Status.ERROR, ...r }));

/** Answers one decoded request. */
export function answerCoreSched(placement: RelayPlacement, log: Logger, req: CoreSchedRequest): Uint8Array {
  const workers = placement.workerCpus;
  const max = placement.limits.maxRelays;
  if (req.op === Op.GET_EAL_CORES) {
    if (workers.length === 0) return encode({ errorCode: 1, errorCodeSource: "worker core request" });
    return encode({ status: Status.OK, ealCores: [...workers] });
  }
  if (req.op !== Op.UPDATE) {
    log.crit(`zmq_core_sched: unknown op ${req.op}`);
    return encode({});
  }
  log.info("CoreSchedRequest: [op=UPDATE]");
  if (req.relayCpuMap.length === 0) return encode({});
  const bad = req.relayCpuMap.find((m) =>
    m.relayNumber < 0 || m.relayNumber >= max || !workers.includes(m.vf2virtioCpu) ||
    !workers.includes(m.virtio2vfCpu)
  );
  if (bad) {
    log.warn(
      `zmq_core_sched: invalid field value(s): relay ${bad.relayNumber} -> ${bad.vf2virtioCpu},${bad.virtio2vfCpu} ` +
        `(relays 0-${max - 1}, worker CPUs ${workers.join(",")})`,
    );
    return encode({});
  }
  for (const m of req.relayCpuMap) {
    log.info(`Setting relay ${m.relayNumber}'s virtio2vf_cpu=${m.virtio2vfCpu} and vf2virtio_cpu=${m.vf2virtioCpu}`);
    placement.migrate(m.relayNumber, m.vf2virtioCpu, m.virtio2vfCpu);
  }
  return encode({ status: Status.OK });
}

/** The core-scheduling ZeroMQ service. */
export function coreSchedService(endpoint: string, placement: RelayPlacement, log: Logger): Service {
  return {
    name: "zmq_core_sched",
    endpoint,
    maxRequestBytes: 1024,
    errorReply: () => encode({}),
    handle(bytes) {
      const req = decodeRequest(CoreSchedRequestSchema, bytes, "zmq_core_sched", log);
      return req ? answerCoreSched(placement, log, req) : encode({});
    },
  };
}
