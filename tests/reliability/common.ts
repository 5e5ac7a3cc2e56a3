/**
 * The reliability suite's shared parts: the profile (VIO4WD_RELIABILITY=short, the default and
 * what CI runs, or long, the full figures), a seeded random source so every run can be
 * replayed (VIO4WD_SEED), and the one summary line each test prints.
 */

/** Which profile runs: `short` unless VIO4WD_RELIABILITY=long. */
export const PROFILE: "short" | "long" = Deno.env.get("VIO4WD_RELIABILITY") === "long" ? "long" : "short";

/** The figure for this profile. */
export function sized(short: number, long: number): number {
  return PROFILE === "long" ? long : short;
}

/**
 * The seed of this run: VIO4WD_SEED when set (the same seed replays the same inputs); under CI
 * (CI=true) a new one each run, so that CI covers more than one sequence; else 1. Every test's
 * summary line prints it.
 */
export const SEED = Number(
  Deno.env.get("VIO4WD_SEED") ?? (Deno.env.get("CI") === "true" ? Date.now() % 2 ** 31 : 1),
) >>> 0;

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
