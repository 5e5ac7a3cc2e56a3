/**
 * The configuration service: ConfigRequest (usually an empty frame) in, ConfigResponse out: the
 * CPU pins of the configuration (VIRTIOFWD_CPU_PINS), as the original reports its start-up pins.
 *
 * @module
 */

import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { Config } from "../config/config.ts";
import type { Logger } from "../common/log.ts";
import {
  ConfigRequestSchema,
  ConfigResponse_Status as Status,
  ConfigResponseSchema,
} from "./gen/virtioforwarder_pb.ts";
import { decodeRequest } from "./proto_check.ts";
import type { Service } from "./server.ts";

const encode = (r: MessageInitShape<typeof ConfigResponseSchema>) =>
  toBinary(ConfigResponseSchema, create(ConfigResponseSchema, r));

/** The config ZeroMQ service. */
export function configService(endpoint: string, config: Config, log: Logger): Service {
  const relayCpuMap = [...config.cpuPins].sort((a, b) => a.relay - b.relay).map((p) => ({
    relayNumber: p.relay,
    vf2virtioCpu: p.vfToVm,
    virtio2vfCpu: p.vmToVf,
  }));
  return {
    name: "zmq_config",
    endpoint,
    maxRequestBytes: 512,
    errorReply: () => encode({ status: Status.EBADR }),
    handle(bytes) {
      if (!decodeRequest(ConfigRequestSchema, bytes, "zmq_config", log)) return encode({ status: Status.EBADR });
      return encode({ status: Status.OK, relayCpuMap });
    },
  };
}
