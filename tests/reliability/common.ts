/**
 * The reliability suite's shared parts: the profile (VIO4WD_RELIABILITY=short, the default and
 * what CI runs, or long, the full figures), a seeded random source so every run can be
 * replayed (VIO4WD_SEED), the one summary line each test prints, and a kept-open ZeroMQ client.
 */

import { ZMQ_REQ, type ZmqContext, type ZmqSocket } from "../../ffi/zmq.ts";

/** Which profile runs: `short` unless VIO4WD_RELIABILITY=long. */
export const PROFILE: "short" | "long" = Deno.env.get("VIO4WD_RELIABILITY") === "long" ? "long" : "short";

/** The figure for this profile. */
export function sized(short: number, long: number): number {
  return PROFILE === "long" ? long : short;
}

/** The seed of this run (VIO4WD_SEED, default 1): the same seed replays the same inputs. */
export const SEED = Number(Deno.env.get("VIO4WD_SEED") ?? 1) >>> 0;

/** A small seeded PRNG (mulberry32): uniform floats in [0, 1). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(256));
  }
}

/** Prints the test's one summary line: `reliability <name> [profile, seed]: k=v ...`. */
export function summary(name: string, figures: Record<string, string | number>): void {
  const kv = Object.entries(figures).map(([k, v]) => `${k}=${v}`).join(" ");
  console.log(`reliability ${name} [${PROFILE}, seed ${SEED}]: ${kv}`);
}

/** Resident memory of process `pid` in KiB (ps(1): Deno reads /proc only with --allow-all). */
export function rssKiB(pid: number): number {
  const out = new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)], stderr: "null" }).outputSync();
  const kib = Number(new TextDecoder().decode(out.stdout).trim());
  if (!out.success || !(kib > 0)) throw new Error(`no resident memory figure for pid ${pid}`);
  return kib;
}

/** One REQ socket per endpoint, kept open: a fresh context per message would measure libzmq, not the daemon. */
export class Requester {
  #sock: ZmqSocket;
  constructor(private readonly ctx: ZmqContext, private readonly endpoint: string, readonly timeoutMs: number) {
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
}
