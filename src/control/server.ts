/**
 * The ZeroMQ control server: one ROUTER socket per service (port control, stats, core scheduling,
 * configuration), all polled from one loop; the original's REQ clients talk to it as to a REP
 * socket. Every request gets exactly one reply, including garbage, multi-frame and oversized ones,
 * so a client's REQ/REP state machine never wedges. Requests are answered each on its own: a slow
 * one (stats with a `delay`) holds nobody else (the stats service caps how many wait).
 *
 * @module
 */

import { type DirTrust, makeDirs, trustedOnlyAsShared, untrustedDir } from "../host/trusted_dir.ts";
import { dirname } from "node:path";
import {
  ZMQ_EVENT_DISCONNECTED,
  ZMQ_MAXMSGSIZE,
  ZMQ_PAIR,
  ZMQ_ROUTER,
  ZmqContext,
  type ZmqPeer,
  type ZmqSocket,
} from "../../ffi/zmq.ts";
import { accountId } from "../config/values.ts";
import { errorText, type Logger } from "../common/log.ts";

/** One control service: where it listens and how it answers. */
export interface Service {
  /** Name in logs: zmq_port_control, zmq_stats, zmq_core_sched, zmq_config. */
  name: string;
  endpoint: string;
  /** Larger requests are answered with {@link Service.errorReply} without being decoded. */
  maxRequestBytes: number;
  /**
   * Decodes, handles, encodes; answers undecodable input itself (never throws for bad input).
   * `peer`: who sent it. Null (at once or later): no reply, the peer is gone.
   */
  handle(request: Uint8Array, peer: ZmqPeer): Reply | Promise<Reply>;
  /** The connection with file descriptor `fd` closed: whatever its peer waits for can go. */
  peerGone?(fd: number): void;
  /** The reply to a request that could not be handled at all. */
  errorReply(): Uint8Array;
}

/** A service's answer: the reply's body, or null for none (the peer is gone). */
export type Reply = Uint8Array | null;

/** Messages above this are dropped by libzmq itself (the peer is disconnected). */
const TRANSPORT_LIMIT = 4096;
const POLL_MS = 500;

interface Entry {
  service: Service;
  socket: ZmqSocket;
  /** Reports the socket's closed connections (when the service wants to know). */
  monitor: ZmqSocket | null;

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
  /**
   * `socketDir`: VIRTIOFWD_SOCKET_DIR and who may own it. An ipc:// endpoint in or under that
   * directory is taken under the same trust (the original's deployments put both in
   * /var/run/virtio-forwarder and hand it to QEMU's account), with a warning.
   */
  constructor(
    services: readonly Service[],
    readonly log: Logger,
    group = "",
    readonly socketDir: DirTrust["shared"] = undefined,
  ) {
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
      const trust = { shared: this.socketDir };
      const why = untrustedDir(dir, trust);
      if (why) throw new Error(`${service.name}: ${service.endpoint}: ${why}`);
      if (trustedOnlyAsShared(dir, trust)) {
        this.log.warn(
          `${service.name}: ${service.endpoint} lies in or under VIRTIOFWD_SOCKET_DIR, which the socket owner or group can ` +
            `write: a process of theirs (QEMU) could replace the endpoint; put the ZeroMQ endpoints in a directory of ` +
            `root's (e.g. ipc:///var/run/vio4wd/...)`,
        );
      }
      try {
        Deno.statSync(dir);
      } catch {
        // parents searchable by the group's clients, the socket's own directory closed to others
        makeDirs(dir, 0o755);
        Deno.chmodSync(dir, 0o750);
        if (gid !== null) Deno.chownSync(dir, null, gid);
      }
    }
    const socket = this.#ctx.socket(ZMQ_ROUTER);
    socket.setInt64(ZMQ_MAXMSGSIZE, TRANSPORT_LIMIT);
    try {
      socket.bind(service.endpoint);
    } catch (e) {
      socket.close();
      const why = errorText(e);
      throw new Error(`${service.name}: cannot bind ${service.endpoint}: ${why}`);
    }
    if (file) {
      // chmod and chown follow links: only the socket ZeroMQ just made (the directory is trusted)
      if (!Deno.lstatSync(file).isSocket) {
        socket.close();
        throw new Error(`${service.name}: ${file} is not the socket just bound (replaced?); not changing its mode`);
      }
      Deno.chmodSync(file, 0o660);
      if (gid !== null) Deno.chownSync(file, null, gid);
    }
    this.log.info(`${service.name}: listening on ${service.endpoint}`);
    const monitor = service.peerGone ? socket.monitor(ZMQ_EVENT_DISCONNECTED) : null;
    return { service, socket, monitor, file };
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      let ready: ZmqSocket[];
      try {
        const monitors = this.#entries.flatMap((e) => e.monitor ? [e.monitor] : []);
        ready = await this.#ctx.pollIn(
          [this.#wakeReader, ...monitors, ...this.#entries.map((e) => e.socket)],
          POLL_MS,
        );
      } catch (e) {
        this.log.error(`control server: ${errorText(e)}`);
        await new Promise((r) => setTimeout(r, POLL_MS));
        continue;
      }
      if (this.#stopping) break;
      while (this.#wakeReader.tryReceive()) { /* drain */ }
      for (const e of this.#entries) {
        // closed connections right before the requests: a new connection may reuse a closed
        // one's file descriptor, and its close is reported before the new one can send
        if (e.monitor) this.#peersGone(e);
        if (ready.includes(e.socket)) this.#serveAll(e);
      }
    }
  }

  /** Tells the service of each connection its monitor reports closed. */
  #peersGone(e: Entry): void {
    for (let ev = e.monitor!.tryReceiveEvent(); ev; ev = e.monitor!.tryReceiveEvent()) {
      if (ev.event === ZMQ_EVENT_DISCONNECTED) e.service.peerGone!(ev.value);
    }
  }

  /** Takes every request waiting on a service and starts answering each. */
  #serveAll(e: Entry): void {
    for (;;) {
      let got: { frames: Uint8Array[]; peer: ZmqPeer } | null;
      try {
        // the envelope (identity, empty delimiter) and at most two frames of the request are kept
        got = e.socket.tryReceiveFrom(3);
      } catch (err) {
        this.log.error(`${e.service.name}: receive failed: ${errorText(err)}`);
        return;
      }
      if (!got) return;
      const { frames, peer } = got;
      const delimiter = frames.findIndex((f) => f.length === 0);
      if (delimiter < 1) {
        this.log.warn(`${e.service.name}: a message without a REQ envelope: dropped`);
        continue;
      }
      this.#serve(e, frames.slice(0, delimiter + 1), frames.slice(delimiter + 1), peer);
    }
  }

  /** Answers one request (asynchronously) to the envelope it came with. */
  #serve(e: Entry, envelope: Uint8Array[], frames: Uint8Array[], peer: ZmqPeer): void {
    const reply = (body: Reply) => {
      if (this.#stopping || body === null) return;
      try {
        if (!e.socket.trySendFrames([...envelope, body])) {
          this.log.warn(`${e.service.name}: reply could not be queued (client gone?)`);
        }
      } catch (err) {
        this.log.warn(`${e.service.name}: reply failed: ${errorText(err)}`);
      }
    };
    if (frames.length !== 1) {
      this.log.warn(`${e.service.name}: request of ${frames.length} frames (expected 1): answered ERROR`);
      return reply(e.service.errorReply());
    }
    if (frames[0].length > e.service.maxRequestBytes) {
      this.log.warn(
        `${e.service.name}: request of ${frames[0].length} bytes (limit ${e.service.maxRequestBytes}): answered ERROR`,
      );
      return reply(e.service.errorReply());
    }
    (async () => {
      let body: Reply;
      try {
        body = await e.service.handle(frames[0], peer);
      } catch (err) {
        this.log.error(`${e.service.name}: request failed: ${err instanceof Error ? err.stack : err}`);
        body = e.service.errorReply();
      }
      reply(body);
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
