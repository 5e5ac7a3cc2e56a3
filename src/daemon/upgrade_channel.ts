/**
 * The hot upgrade's channel (docs/hot-upgrade.md): JSON objects, one per line, over a unix
 * socket. Both ends are processes of root's, but a line is still read bounded and parsed
 * defensively: the socket is reachable by whatever root runs.
 *
 * @module
 */

/** The longest line read (the relay list of 64 relays with their counters is about 40 KiB). */
export const MAX_LINE = 1 << 20;

/** A message: one JSON object. */
export type Message = Record<string, unknown>;

/** The upgrade socket of a daemon whose PID file is `pidFile`: root only, beside it. */
export function upgradeSocketPath(pidFile: string): string {
  return pidFile.replace(/\.pid$/, "") + ".upgrade.sock";
}

/** An open channel. */
export class Channel {
  readonly #conn: Deno.UnixConn;
  #buf = new Uint8Array(0);
  #closed = false;

  constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  /** Connects to the upgrade socket at `path`. */
  static async connect(path: string): Promise<Channel> {
    return new Channel(await Deno.connect({ transport: "unix", path }));
  }

  /** Sends one message; false when the other end is gone. */
  async send(m: Message): Promise<boolean> {
    const bytes = new TextEncoder().encode(JSON.stringify(m, (_k, v) => typeof v === "bigint" ? String(v) : v) + "\n");
    try {
      for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The next message, or null when the other end closed, `timeoutMs` passed (the channel is then
   * closed) or it sent something that is not a JSON object on a line of at most MAX_LINE bytes.
   */
  async receive(timeoutMs = 0): Promise<Message | null> {
    const timer = timeoutMs > 0 ? setTimeout(() => this.close(), timeoutMs) : undefined;
    try {
      for (;;) {
        const nl = this.#buf.indexOf(10);
        if (nl >= 0) {
          const line = new TextDecoder().decode(this.#buf.subarray(0, nl));
          this.#buf = this.#buf.slice(nl + 1);
          const m = JSON.parse(line);
          return typeof m === "object" && m !== null && !Array.isArray(m) ? m : null;
        }
        if (this.#buf.length > MAX_LINE) return null;
        const chunk = new Uint8Array(65536);
        const n = await this.#conn.read(chunk);
        if (n === null) return null;
        const joined = new Uint8Array(this.#buf.length + n);
        joined.set(this.#buf);
        joined.set(chunk.subarray(0, n), this.#buf.length);
        this.#buf = joined;
      }
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

/** The object `m[key]`, or null. */
export function field(m: Message | null, key: string): Message | null {
  const v = m?.[key];
  return typeof v === "object" && v !== null && !Array.isArray(v) ? v as Message : null;
}
