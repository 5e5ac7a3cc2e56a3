/**
 * libzmq (Debian libzmq5) over Deno FFI: the symbol table, a loader, and thin typed sockets.
 * Used instead of npm:zeromq, whose receive never resolves under Deno (denoland/deno#36317).
 *
 * Sends and receives are non-blocking calls on the JS thread; waiting happens in `zmq_poll`
 * declared `nonblocking` (a Deno pool thread). A socket is never touched by two threads at once:
 * callers poll a socket only while they are not sending or receiving on it.
 *
 * @module
 */

/** The libzmq functions used, with their C prototypes. */
export const zmqSymbols = {
  // void zmq_version(int *major, int *minor, int *patch)
  zmq_version: { parameters: ["buffer", "buffer", "buffer"], result: "void" },
  // int zmq_errno(void)
  zmq_errno: { parameters: [], result: "i32" },
  // const char *zmq_strerror(int errnum)
  zmq_strerror: { parameters: ["i32"], result: "pointer" },
  // void *zmq_ctx_new(void)
  zmq_ctx_new: { parameters: [], result: "pointer" },
  // int zmq_ctx_term(void *context)
  zmq_ctx_term: { parameters: ["pointer"], result: "i32" },
  // void *zmq_socket(void *context, int type)
  zmq_socket: { parameters: ["pointer", "i32"], result: "pointer" },
  // int zmq_close(void *socket)
  zmq_close: { parameters: ["pointer"], result: "i32" },
  // int zmq_bind(void *socket, const char *endpoint)
  zmq_bind: { parameters: ["pointer", "buffer"], result: "i32" },
  // int zmq_connect(void *socket, const char *endpoint)
  zmq_connect: { parameters: ["pointer", "buffer"], result: "i32" },
  // int zmq_setsockopt(void *socket, int option, const void *value, size_t len)
  zmq_setsockopt: { parameters: ["pointer", "i32", "buffer", "usize"], result: "i32" },
  // int zmq_send(void *socket, const void *buf, size_t len, int flags)
  zmq_send: { parameters: ["pointer", "buffer", "usize", "i32"], result: "i32" },
  // int zmq_msg_init(zmq_msg_t *msg)
  zmq_msg_init: { parameters: ["buffer"], result: "i32" },
  // int zmq_msg_recv(zmq_msg_t *msg, void *socket, int flags)
  zmq_msg_recv: { parameters: ["buffer", "pointer", "i32"], result: "i32" },
  // void *zmq_msg_data(zmq_msg_t *msg)
  zmq_msg_data: { parameters: ["buffer"], result: "pointer" },
  // int zmq_msg_more(const zmq_msg_t *msg)
  zmq_msg_more: { parameters: ["buffer"], result: "i32" },
  // const char *zmq_msg_gets(const zmq_msg_t *msg, const char *property)
  zmq_msg_gets: { parameters: ["buffer", "buffer"], result: "pointer" },
  // int zmq_msg_get(const zmq_msg_t *msg, int property)
  zmq_msg_get: { parameters: ["buffer", "i32"], result: "i32" },
  // int zmq_socket_monitor(void *socket, const char *endpoint, int events)
  zmq_socket_monitor: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  // int zmq_msg_close(zmq_msg_t *msg)
  zmq_msg_close: { parameters: ["buffer"], result: "i32" },
  // int zmq_poll(zmq_pollitem_t *items, int nitems, long timeout): on a pool thread
  zmq_poll: { parameters: ["buffer", "i32", "i64"], result: "i32", nonblocking: true },
  // the same, on the calling thread (timeout 0): to read errno after a failed pool-thread poll
  zmq_poll_here: { name: "zmq_poll", parameters: ["buffer", "i32", "i64"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Socket types. */
export const ZMQ_PAIR = 0;
export const ZMQ_REQ = 3;
export const ZMQ_REP = 4;
export const ZMQ_ROUTER = 6;
/** Socket options. */
export const ZMQ_LINGER = 17;
export const ZMQ_MAXMSGSIZE = 22;
export const ZMQ_IPC_FILTER_GID = 60;

/** Socket monitor events. */
export const ZMQ_EVENT_DISCONNECTED = 0x0200;
/** Message property: the file descriptor of the connection the message came in on. */
const ZMQ_SRCFD = 2;
/** The message property naming the peer (`localhost:UID:GID:PID` over ipc://), NUL-terminated once. */
const PEER_ADDRESS = new TextEncoder().encode("Peer-Address\0");

const ZMQ_DONTWAIT = 1;
const ZMQ_SNDMORE = 2;
const ZMQ_POLLIN = 1;
const EAGAIN = 11;
const POLLITEM_SIZE = 16; // { void *socket; int fd; short events; short revents; }
const ZMQ_MSG_SIZE = 64;

type ZmqLibrary = Deno.DynamicLibrary<typeof zmqSymbols>;

/** libzmq could not be loaded. */
export class ZmqNotFoundError extends Error {
  constructor(readonly tried: string[], cause: string) {
    super(`libzmq not found, looked in: ${tried.join(", ")} (${cause}); install it: apt-get install libzmq5`);
    this.name = "ZmqNotFoundError";
  }
}

/** A libzmq call failed; `errno` is zmq_errno(). */
export class ZmqError extends Error {
  constructor(readonly operation: string, readonly errno: number, detail: string) {
    super(`${operation}: ${detail}`);
    this.name = "ZmqError";
  }
}

/** Where libzmq is looked for: $VIO4WD_LIBZMQ, Debian's path, then the loader's search. */
export function libzmqCandidates(): string[] {
  const env = Deno.env.get("VIO4WD_LIBZMQ");
  return env
    ? [env]
    : ["/usr/lib/x86_64-linux-gnu/libzmq.so.5", "/usr/lib/aarch64-linux-gnu/libzmq.so.5", "libzmq.so.5"];
}

let shared: ZmqLibrary | null = null;

function openLibzmq(): ZmqLibrary {
  if (shared) return shared;
  const tried = libzmqCandidates();
  let last = "";
  for (const path of tried) {
    try {
      shared = Deno.dlopen(path, zmqSymbols);
      return shared;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
  }
  throw new ZmqNotFoundError(tried, last);
}

const cstr = (s: string) => new TextEncoder().encode(s + "\0");

/** A ZeroMQ context; closing it closes its sockets. */
export class ZmqContext {
  readonly #lib: ZmqLibrary;
  #ptr: Deno.PointerValue;
  readonly #sockets = new Set<ZmqSocket>();

  constructor() {
    this.#lib = openLibzmq();
    this.#ptr = this.#lib.symbols.zmq_ctx_new();
    if (this.#ptr === null) throw this.error("zmq_ctx_new");
  }

  /** libzmq's version, e.g. `4.3.4`. */
  get version(): string {
    const v = [new Int32Array(1), new Int32Array(1), new Int32Array(1)];
    this.#lib.symbols.zmq_version(v[0], v[1], v[2]);
    return v.map((x) => x[0]).join(".");
  }

  /** A ZmqError for `operation` with libzmq's current errno and message. */
  error(operation: string, errno = this.#lib.symbols.zmq_errno()): ZmqError {
    return new ZmqError(operation, errno, Deno.UnsafePointerView.getCString(this.#lib.symbols.zmq_strerror(errno)!));
  }

  /** A new socket of `type` (ZMQ_REQ, ZMQ_REP) with LINGER 0. */
  socket(type: number): ZmqSocket {
    if (this.#ptr === null) throw new ZmqError("zmq_socket", 0, "context closed");
    const ptr = this.#lib.symbols.zmq_socket(this.#ptr, type);
    if (ptr === null) throw this.error("zmq_socket");
    const s = new ZmqSocket(this.#lib, this, ptr, () => this.#sockets.delete(s));
    this.#sockets.add(s);
    s.setInt(ZMQ_LINGER, 0);
    return s;
  }

  /**
   * Waits up to `timeoutMs` until any of `sockets` has a message to receive; returns those that
   * have. Runs on a pool thread: the sockets must not be used until it resolves.
   */
  async pollIn(sockets: readonly ZmqSocket[], timeoutMs: number): Promise<ZmqSocket[]> {
    if (sockets.length === 0) {
      await new Promise((r) => setTimeout(r, timeoutMs));
      return [];
    }
    const items = new Uint8Array(POLLITEM_SIZE * sockets.length);
    const dv = new DataView(items.buffer);
    sockets.forEach((s, i) => {
      dv.setBigUint64(i * POLLITEM_SIZE, BigInt(Deno.UnsafePointer.value(s.pointer)), true);
      dv.setInt16(i * POLLITEM_SIZE + 12, ZMQ_POLLIN, true);
    });
    const s = this.#lib.symbols;
    const rc = await s.zmq_poll(items, sockets.length, BigInt(timeoutMs));
    if (rc < 0) {
      // errno stayed on the pool thread. Poll once more here, without waiting: a transient
      // failure (EINTR: a signal interrupted the wait) is gone and this poll's answer stands; a
      // real one fails again, with its errno readable on this thread.
      this.interrupted++;
      if (s.zmq_poll_here(items, sockets.length, 0n) < 0) {
        const errno = s.zmq_errno();
        throw this.error("zmq_poll", errno);
      }
    }
    return sockets.filter((_, i) => (dv.getInt16(i * POLLITEM_SIZE + 14, true) & ZMQ_POLLIN) !== 0);
  }

  /** Polls that failed on the pool thread and were found transient (a signal interrupted them). */
  interrupted = 0;

  /** Closes every socket and terminates the context. */
  close(): void {
    for (const s of [...this.#sockets]) s.close();
    if (this.#ptr !== null) this.#lib.symbols.zmq_ctx_term(this.#ptr);
    this.#ptr = null;
  }
}

/**
 * Who sent a message: the connection's file descriptor in the daemon (for as long as the
 * connection lasts) and, over ipc://, the peer process's user id (libzmq reads it with
 * SO_PEERCRED and reports it in the message's Peer-Address, `localhost:UID:GID:PID`).
 */
export interface ZmqPeer {
  fd: number;
  uid: number | null;
}

/** A socket event from a monitor: the event and its value (the connection's fd for DISCONNECTED). */
export interface ZmqEvent {
  event: number;
  value: number;
}

/** One ZeroMQ socket. Receive and send never block; wait with {@link ZmqContext.pollIn}. */
export class ZmqSocket {
  #ptr: Deno.PointerValue;
  readonly #msg = new Uint8Array(ZMQ_MSG_SIZE);

  constructor(
    private readonly lib: ZmqLibrary,
    private readonly ctx: ZmqContext,
    ptr: Deno.PointerValue,
    private readonly onClose: () => void,
  ) {
    this.#ptr = ptr;
  }

  /** The raw socket pointer (for polling). */
  get pointer(): Deno.PointerValue {
    if (this.#ptr === null) throw new ZmqError("socket", 0, "closed");
    return this.#ptr;
  }

  #check(rc: number, operation: string): void {
    if (rc < 0) throw this.ctx.error(operation);
  }

  /** Sets an int option (ZMQ_LINGER, ZMQ_IPC_FILTER_GID...). */
  setInt(option: number, value: number): void {
    const b = new Uint8Array(new Int32Array([value]).buffer);
    this.#check(this.lib.symbols.zmq_setsockopt(this.pointer, option, b, BigInt(b.length)), `zmq_setsockopt ${option}`);
  }

  /** Sets an int64 option (ZMQ_MAXMSGSIZE). */
  setInt64(option: number, value: number): void {
    const b = new Uint8Array(new BigInt64Array([BigInt(value)]).buffer);
    this.#check(this.lib.symbols.zmq_setsockopt(this.pointer, option, b, BigInt(b.length)), `zmq_setsockopt ${option}`);
  }

  bind(endpoint: string): void {
    this.#check(this.lib.symbols.zmq_bind(this.pointer, cstr(endpoint)), `bind ${endpoint}`);
  }

  connect(endpoint: string): void {
    this.#check(this.lib.symbols.zmq_connect(this.pointer, cstr(endpoint)), `connect ${endpoint}`);
  }

  /** Receives one message (all its frames) if one is waiting; null if none. */
  /**
   * A whole message, or null when none is waiting. `maxFrames`: frames kept (one more is kept to
   * show there were more; the rest are read and dropped), so a message of many frames costs no memory.
   */
  tryReceive(maxFrames = Infinity): Uint8Array[] | null {
    return this.#receive(maxFrames, null)?.frames ?? null;
  }

  /** Like tryReceive, and who sent the message (see ZmqPeer). */
  tryReceiveFrom(maxFrames = Infinity): { frames: Uint8Array[]; peer: ZmqPeer } | null {
    const peer: ZmqPeer = { fd: -1, uid: null };
    const frames = this.#receive(maxFrames, peer)?.frames;
    return frames ? { frames, peer } : null;
  }

  #receive(maxFrames: number, peer: ZmqPeer | null): { frames: Uint8Array[] } | null {
    const s = this.lib.symbols;
    const frames: Uint8Array[] = [];
    for (;;) {
      s.zmq_msg_init(this.#msg);
      try {
        const n = s.zmq_msg_recv(this.#msg, this.pointer, ZMQ_DONTWAIT);
        if (n < 0) {
          const errno = s.zmq_errno();
          if (errno === EAGAIN && frames.length === 0) return null;
          throw this.ctx.error("zmq_msg_recv", errno);
        }
        // ROUTER's routing-id frame is made locally and may lack the connection's metadata: any
        // frame that has it tells
        if (peer && peer.fd < 0) {
          peer.fd = s.zmq_msg_get(this.#msg, ZMQ_SRCFD);
          const address = s.zmq_msg_gets(this.#msg, PEER_ADDRESS);
          const creds = address === null
            ? null
            : /:(\d+):(\d+):(\d+)$/.exec(Deno.UnsafePointerView.getCString(address));
          peer.uid = creds ? Number(creds[1]) : null;
        }
        const p = s.zmq_msg_data(this.#msg);
        if (frames.length <= maxFrames) {
          frames.push(
            n === 0 || p === null
              ? new Uint8Array(0)
              : new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, n)).slice(),
          );
        }
        if (!s.zmq_msg_more(this.#msg)) return { frames };
      } finally {
        s.zmq_msg_close(this.#msg);
      }
    }
  }

  /**
   * Reports `events` (ZMQ_EVENT_*) of this socket on a new PAIR socket, read with
   * {@link ZmqSocket.tryReceiveEvent}.
   */
  monitor(events: number): ZmqSocket {
    const endpoint = `inproc://vio4wd-monitor-${crypto.randomUUID()}`;
    this.#check(this.lib.symbols.zmq_socket_monitor(this.pointer, cstr(endpoint), events), "zmq_socket_monitor");
    const pair = this.ctx.socket(ZMQ_PAIR);
    pair.connect(endpoint);
    return pair;
  }

  /** On a monitor's socket: the next event if one is waiting, else null. */
  tryReceiveEvent(): ZmqEvent | null {
    const m = this.tryReceive(2);
    if (!m || m[0].length < 6) return null;
    const dv = new DataView(m[0].buffer, m[0].byteOffset, m[0].byteLength);
    return { event: dv.getUint16(0, true), value: dv.getUint32(2, true) };
  }

  /** Sends one single-frame message; false when it cannot be queued now (EAGAIN). */
  trySend(frame: Uint8Array): boolean {
    return this.trySendFrames([frame]);
  }

  /** Sends one message of these frames; false when its first frame cannot be queued now (EAGAIN). */
  trySendFrames(frames: readonly Uint8Array[]): boolean {
    for (const [i, frame] of frames.entries()) {
      const more = i < frames.length - 1 ? ZMQ_SNDMORE : 0;
      const rc = this.lib.symbols.zmq_send(this.pointer, frame, BigInt(frame.length), ZMQ_DONTWAIT | more);
      if (rc >= 0) continue;
      const errno = this.lib.symbols.zmq_errno();
      if (errno === EAGAIN && i === 0) return false;
      throw this.ctx.error("zmq_send", errno);
    }
    return true;
  }

  /** Receives one message, waiting up to `timeoutMs`; null on timeout. */
  async receive(timeoutMs: number): Promise<Uint8Array[] | null> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const m = this.tryReceive();
      if (m) return m;
      const left = end - performance.now();
      if (left <= 0) return null;
      await this.ctx.pollIn([this], Math.min(100, Math.ceil(left)));
    }
  }

  close(): void {
    if (this.#ptr === null) return;
    this.lib.symbols.zmq_close(this.#ptr);
    this.#ptr = null;
    this.onClose();
  }
}
