/**
 * A REQ client for the daemon's ZeroMQ endpoints: one request, one typed reply, a timeout with a
 * message that says what was tried. Used by the `port`, `stats` and `pin` commands (and tests).
 *
 * @module
 */

import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { ZMQ_REQ, ZmqContext, type ZmqSocket } from "../../ffi/zmq.ts";
import {
  type RelayState,
  StatsRequestSchema,
  StatsResponse_Status,
  StatsResponseSchema,
} from "./gen/virtioforwarder_pb.ts";
import { ORIGINAL_ENDPOINTS, readConfig } from "../config/config.ts";

/** The daemon did not answer (not running, endpoint off, or wrong endpoint). */
export class DaemonUnreachableError extends Error {
  constructor(readonly endpoint: string, detail: string) {
    super(
      detail.startsWith("permission denied")
        ? `cannot reach ${endpoint}: ${detail}`
        : `no answer from ${endpoint}: ${detail}. Is the daemon running with this endpoint enabled? (--zmq-ep EP)`,
    );
    this.name = "DaemonUnreachableError";
  }
}

/** Default client timeout, as the original's tools (2 s). */
export const DEFAULT_TIMEOUT_MS = 2000;

/**
 * Why this process cannot reach the ipc:// socket at `path` (libzmq would only say nothing: it
 * retries a refused connect quietly), or null when it may.
 */
function ipcDenied(path: string): string | null {
  const groupOnly = "the daemon's ipc:// endpoints are for root and the members of VIO4WD_ZMQ_GROUP: " +
    "join that group (then log in again) or run as root";
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) return `permission denied on the way to ${path}: ${groupOnly}`;
    return "the socket file does not exist";
  }
  const uid = Deno.uid();
  if (uid === null || uid === 0 || st.uid === uid || (st.mode ?? 0) & 0o002) return null;
  let groups: number[] = [];
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    groups = (/^Groups:\s*(.*)$/m.exec(status)?.[1] ?? "").split(/\s+/).filter(Boolean).map(Number);
  } catch {
    /* unknown: let libzmq try */
    return null;
  }
  if (st.gid !== null && ((st.mode ?? 0) & 0o020) && (groups.includes(st.gid) || Deno.gid() === st.gid)) return null;
  return `permission denied: ${path} is writable by group ${st.gid} only; ${groupOnly}`;
}

/** Sends raw bytes and returns the raw reply (tests use this for malformed input). */
export async function requestRaw(
  endpoint: string,
  frame: Uint8Array,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<Uint8Array> {
  if (endpoint.startsWith("ipc://")) {
    const denied = ipcDenied(endpoint.slice("ipc://".length));
    if (denied) throw new DaemonUnreachableError(endpoint, denied);
  }
  const ctx = new ZmqContext();
  try {
    const s = ctx.socket(ZMQ_REQ);
    s.connect(endpoint);
    const end = performance.now() + timeoutMs;
    while (!s.trySend(frame)) {
      if (performance.now() > end) throw new DaemonUnreachableError(endpoint, `could not send in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const reply = await s.receive(Math.max(1, end - performance.now()));
    if (!reply) throw new DaemonUnreachableError(endpoint, `no reply in ${timeoutMs} ms`);
    return reply[0] ?? new Uint8Array(0);
  } finally {
    ctx.close();
  }
}

/**
 * One REQ socket kept open for many requests in a row (benchmarks, load tests): `request` makes a
 * context per message, which would measure libzmq rather than the daemon.
 */
export class Requester {
  #sock: ZmqSocket;
  constructor(
    private readonly ctx: ZmqContext,
    private readonly endpoint: string,
    readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    this.#sock = this.#open();
  }

  #open(): ZmqSocket {
    const s = this.ctx.socket(ZMQ_REQ);
    s.connect(this.endpoint);
    return s;
  }

  /** The reply, or null when none came in time (the socket is then replaced: REQ would be stuck). */
  async ask(frame: Uint8Array): Promise<Uint8Array | null> {
    while (!this.#sock.trySend(frame)) await new Promise((r) => setTimeout(r, 1));
    const reply = await this.#sock.receive(this.timeoutMs);
    if (reply) return reply[0] ?? new Uint8Array(0);
    this.#sock.close();
    this.#sock = this.#open();
    return null;
  }

  /** `ask`, with DaemonUnreachableError when no reply comes. */
  async reply(frame: Uint8Array): Promise<Uint8Array> {
    const r = await this.ask(frame);
    if (r === null) throw new DaemonUnreachableError(this.endpoint, `no reply in ${this.timeoutMs} ms`);
    return r;
  }
}

/** Sends one message and decodes the reply. */
export async function request<Req extends DescMessage, Res extends DescMessage>(
  endpoint: string,
  reqSchema: Req,
  req: MessageInitShape<Req>,
  resSchema: Res,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<MessageShape<Res>> {
  const bytes = await requestRaw(endpoint, toBinary(reqSchema, create(reqSchema, req)), timeoutMs);
  return fromBinary(resSchema, bytes);
}

/** Which of the daemon's endpoints. */
export type EndpointKind = "portControl" | "stats" | "coreSched" | "config";

/**
 * The endpoint a client command talks to: `--zmq-ep` if given, else the configuration's value
 * (from --config or /etc/default/virtioforwarder), else the original's default path.
 */
export async function resolveEndpoint(kind: EndpointKind, explicit?: string, configFile?: string): Promise<string> {
  if (explicit) return explicit;
  try {
    const c = (await readConfig(configFile)).config;
    const fromConfig = {
      portControl: c.zmqPortControlEp,
      stats: c.zmqStatsEp,
      coreSched: c.zmqCoreSchedEp,
      config: c.zmqConfigEp,
    }[kind];
    if (fromConfig) return fromConfig;
  } catch (e) {
    if (configFile) throw e; // a file the user named must be valid
  }
  return ORIGINAL_ENDPOINTS[kind];
}

/**
 * Every relay the daemon at `endpoint` has, as its stats endpoint reports them (the request
 * `vio4wd stats --include-inactive` sends, with no rate window). Throws when it answers an error.
 */
export async function allRelays(endpoint: string, timeoutMs?: number): Promise<RelayState[]> {
  const res = await request(
    endpoint,
    StatsRequestSchema,
    { includeInactive: true, delay: 0 },
    StatsResponseSchema,
    timeoutMs,
  );
  if (res.status !== StatsResponse_Status.OK) throw new Error(`stats: status ${res.status}`);
  return res.relay;
}
