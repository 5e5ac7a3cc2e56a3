/**
 * Test helpers: a `vio4wd daemon` subprocess with its own temp dir and DPDK file prefix, read
 * through its log (SIGUSR1 prints every relay's counters); cleaned up by PID.
 */

import { removeDpdkFiles } from "../src/testbed/testpmd.ts";

const LAUNCHER = new URL("../vio4wd", import.meta.url).pathname;

/** One relay as the daemon's relay-status line reports it. */
export interface RelayStatus {
  id: number;
  vf: string | null;
  vm: boolean;
  mbufs_in_use: number | null;
  vf_to_vm: Record<string, number>;
  vm_to_vf: Record<string, number>;
}

/** A unique tag for DPDK file prefixes and temp names of this test run. */
export function uniqueTag(name: string): string {
  return `v4t-${name}-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
}

/** A running daemon subprocess. */
export class DaemonProcess {
  #child: Deno.ChildProcess;
  #log = "";
  #pump: Promise<void>;

  private constructor(child: Deno.ChildProcess, readonly dir: string, readonly prefix: string) {
    this.#child = child;
    const dec = new TextDecoder();
    this.#pump = (async () => {
      for await (const c of child.stderr) this.#log += dec.decode(c, { stream: true });
    })();
  }

  get log(): string {
    return this.#log;
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Starts `vio4wd daemon` with `configLines` (dir and prefix variables added). */
  static async start(
    dir: string,
    prefix: string,
    configLines: string[],
    extraArgs: string[] = [],
  ): Promise<DaemonProcess> {
    const conf = `${dir}/vio4wd.conf`;
    await Deno.writeTextFile(
      conf,
      [
        "VIRTIOFWD_CPU_MASK=1",
        "VIRTIOFWD_MASTER_LCORE=0",
        "VIRTIOFWD_LOG_LEVEL=6",
        `VIRTIOFWD_SOCKET_DIR=${dir}/sock`,
        `VIRTIOFWD_PID_DIR=${dir}`,
        `VIO4WD_EAL_FILE_PREFIX=${prefix}`,
        "VIO4WD_EAL_MEMORY_MB=256",
        ...configLines,
      ].join("\n") + "\n",
    );
    const child = new Deno.Command(LAUNCHER, {
      args: ["daemon", "--config", conf, ...extraArgs],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const d = new DaemonProcess(child, dir, prefix);
    await d.waitLog(/ready: /, 30_000);
    return d;
  }

  /** Waits until the log matches `re`. */
  async waitLog(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.#log.match(re);
      if (m) return m;
      if (Date.now() > end) throw new Error(`daemon: no ${re} after ${timeoutMs} ms; log:\n${this.#log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until at least `n` log lines match `re` (a line count: no regex over the whole log). */
  async waitCount(re: RegExp, n: number, timeoutMs = 10_000): Promise<void> {
    await until(`${n} log lines matching ${re}`, () => this.count(re) >= n, timeoutMs);
  }

  /** Counts log lines matching `re`. */
  count(re: RegExp): number {
    return this.#log.split("\n").filter((l) => re.test(l)).length;
  }

  /** Asks for a relay-status line (SIGUSR1) and returns it parsed. */
  async status(): Promise<RelayStatus[]> {
    const before = this.count(/relay-status /);
    this.#child.kill("SIGUSR1");
    const end = Date.now() + 5000;
    while (this.count(/relay-status /) === before) {
      if (Date.now() > end) throw new Error("daemon: no relay-status after SIGUSR1");
      await new Promise((r) => setTimeout(r, 20));
    }
    const lines = this.#log.split("\n").filter((l) => l.includes("relay-status "));
    return JSON.parse(lines[lines.length - 1].slice(lines[lines.length - 1].indexOf("relay-status ") + 13));
  }

  /** SIGTERM, wait (SIGKILL after 10 s), remove DPDK files; returns the exit code. */
  async stop(): Promise<number> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* exited */ }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited */ }
    }, 10_000);
    const st = await this.#child.status;
    clearTimeout(timer);
    await this.#pump;
    removeDpdkFiles(this.prefix);
    return st.code;
  }
}

/** Runs `./vio4wd args` to completion. */
export async function runVio4wd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(LAUNCHER, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Polls `f` until it returns true. */
export async function until(what: string, f: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs `fn` against a daemon started in a fresh temp dir with a unique DPDK prefix; afterwards
 * stops it (asserting exit status 0) and removes the dir, whatever `fn` did.
 */
export async function withDaemon(
  name: string,
  configLines: (dir: string) => string[],
  fn: (d: DaemonProcess, dir: string, tag: string) => Promise<void>,
): Promise<void> {
  const tag = uniqueTag(name);
  const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
  try {
    const d = await DaemonProcess.start(dir, tag, configLines(dir));
    let failure: unknown = null;
    try {
      await fn(d, dir, tag);
    } catch (e) {
      failure = e;
    }
    const code = await d.stop();
    if (failure) throw failure;
    if (code !== 0) throw new Error(`daemon exit status: expected 0, got ${code}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
