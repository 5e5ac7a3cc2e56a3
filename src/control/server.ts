/**
 * The ZeroMQ control server: one REP socket per service (port control, stats, core scheduling,
 * configuration), all polled from one loop. Every request gets exactly one reply, including
 * garbage, multi-frame and oversized ones, so a client's REQ/REP state machine never wedges. A
 * slow request (stats with a `delay`) holds only its own service.
 *
 * @module
 */

import { dirname } from "node:path";
import { ZMQ_MAXMSGSIZE, ZMQ_PAIR, ZMQ_REP, ZmqContext, type ZmqSocket } from "../../ffi/zmq.ts";
import { accountId } from "../config/values.ts";
import type { Logger } from "../common/log.ts";

/** One control service: where it listens and how it answers. */
export interface Service {
  /** Name in logs: zmq_port_control, zmq_stats, zmq_core_sched, zmq_config. */
  name: string;
  endpoint: string;
  /** Larger requests are answered with {@link Service.errorReply} without being decoded. */
  maxRequestBytes: number;
  /** Decodes, handles, encodes; answers undecodable input itself (never throws for bad input). */
  handle(request: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** The reply to a request that could not be handled at all. */
  errorReply(): Uint8Array;
}

/** Messages above this are dropped by libzmq itself (the peer is disconnected). */
const TRANSPORT_LIMIT = 4096;
const POLL_MS = 500;

interface Entry {
  service: Service;
  socket: ZmqSocket;
  busy: boolean;
  /** ipc:// socket file to remove on stop. */
  file: string | null;
}

/** A running set of control services. */
export class ControlServer {
  readonly #ctx = new ZmqContext();
  readonly #entries: Entry[] = [];
  /** Written when a service finishes a request, so the loop re-polls its socket at once. */
  readonly #wakeWriter: ZmqSocket;
  readonly #wakeReader: ZmqSocket;
  #stopping = false;
  #loop: Promise<void> = Promise.resolve();

  /**
   * Binds every service (creating ipc:// directories 0750 and sockets 0660, with `group` when
   * given) and starts serving. Throws, with nothing left bound, when an endpoint cannot be bound.
   */
  constructor(services: readonly Service[], readonly log: Logger, group = "") {
    const gid = group === "" ? null : accountId("group", group);
    if (group !== "" && gid === null) throw new Error(`group '${group}' does not exist (see /etc/group)`);
    const wake = `inproc://vio4wd-wake-${crypto.randomUUID()}`;
    this.#wakeReader = this.#ctx.socket(ZMQ_PAIR);
    this.#wakeReader.bind(wake);
    this.#wakeWriter = this.#ctx.socket(ZMQ_PAIR);
    this.#wakeWriter.connect(wake);
    try {
      for (const service of services) this.#entries.push(this.#bind(service, gid));
    } catch (e) {
      this.#close();
      throw e;
    }
    this.#loop = this.#run();
  }

  #bind(service: Service, gid: number | null): Entry {
    const file = service.endpoint.startsWith("ipc://") ? service.endpoint.slice("ipc://".length) : null;
    if (file) {
      const dir = dirname(file);
      try {
        Deno.statSync(dir);
      } catch {
        Deno.mkdirSync(dir, { recursive: true, mode: 0o750 });
        Deno.chmodSync(dir, 0o750);
        if (gid !== null) Deno.chownSync(dir, null, gid);
      }
    }
    const socket = this.#ctx.socket(ZMQ_REP);
    socket.setInt64(ZMQ_MAXMSGSIZE, TRANSPORT_LIMIT);
    try {
      socket.bind(service.endpoint);
    } catch (e) {
      socket.close();
      const why = e instanceof Error ? e.message : String(e);
      throw new Error(`${service.name}: cannot bind ${service.endpoint}: ${why}`);
    }
    if (file) {
      Deno.chmodSync(file, 0o660);
      if (gid !== null) Deno.chownSync(file, null, gid);
    }
    this.log.info(`${service.name}: listening on ${service.endpoint}`);
    return { service, socket, busy: false, file };
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      const idle = this.#entries.filter((e) => !e.busy);
      let ready: ZmqSocket[];
      try {
        ready = await this.#ctx.pollIn([this.#wakeReader, ...idle.map((e) => e.socket)], POLL_MS);
      } catch (e) {
        this.log.error(`control server: ${e instanceof Error ? e.message : e}`);
        await new Promise((r) => setTimeout(r, POLL_MS));
        continue;
      }
      if (this.#stopping) break;
      while (this.#wakeReader.tryReceive()) { /* drain */ }
      for (const e of idle) if (ready.includes(e.socket)) this.#serve(e);
    }
  }

  /** Receives one request on an idle service and answers it (asynchronously). */
  #serve(e: Entry): void {
    let frames: Uint8Array[] | null;
    try {
      frames = e.socket.tryReceive(1);
    } catch (err) {
      this.log.error(`${e.service.name}: receive failed: ${err instanceof Error ? err.message : err}`);
      return;
    }
    if (!frames) return;
    e.busy = true;
    (async () => {
      let reply: Uint8Array;
      try {
        if (frames.length !== 1) {
          this.log.warn(`${e.service.name}: request of ${frames.length} frames (expected 1): answered ERROR`);
          reply = e.service.errorReply();
        } else if (frames[0].length > e.service.maxRequestBytes) {
          this.log.warn(
            `${e.service.name}: request of ${
              frames[0].length
            } bytes (limit ${e.service.maxRequestBytes}): answered ERROR`,
          );
          reply = e.service.errorReply();
        } else {
          reply = await e.service.handle(frames[0]);
        }
      } catch (err) {
        this.log.error(`${e.service.name}: request failed: ${err instanceof Error ? err.stack : err}`);
        reply = e.service.errorReply();
      }
      if (this.#stopping) return;
      try {
        if (!e.socket.trySend(reply)) this.log.warn(`${e.service.name}: reply could not be queued (client gone?)`);
      } catch (err) {
        this.log.warn(`${e.service.name}: reply failed: ${err instanceof Error ? err.message : err}`);
      }
      e.busy = false;
      this.#wakeWriter.trySend(new Uint8Array(0));
    })();
  }

  #close(): void {
    for (const e of this.#entries) {
      if (e.file) {
        try {
          Deno.removeSync(e.file);
        } catch { /* gone */ }
      }
    }
    this.#ctx.close();
  }

  /** Stops serving, closes the sockets and removes the ipc:// socket files. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wakeWriter.trySend(new Uint8Array(0));
    await this.#loop;
    this.#close();
  }
}
