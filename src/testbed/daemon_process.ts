/**
 * `vio4wd daemon` as a subprocess with its own temp dir and DPDK file prefix, read through its
 * log (SIGUSR1 prints every relay's counters) and stopped by PID. Used by the tests and the bench.
 *
 * @module
 */

import { removeDpdkFiles, stopChild } from "./testpmd.ts";

/** The `./vio4wd` launcher at the top of the checkout. */
export const LAUNCHER = new URL("../../vio4wd", import.meta.url).pathname;

/** One relay as the daemon's relay-status line reports it. */
export interface RelayStatus {
  id: number;
  vf: string | null;
  vm: boolean;
  vf_link: boolean;
  cpus: { vf_to_vm: number; vm_to_vf: number };
  mbufs_in_use: number | null;
  vf_to_vm: Record<string, number>;
  vm_to_vf: Record<string, number>;
}

/** A unique tag for DPDK file prefixes and temp names of this test run. */
export function uniqueTag(name: string): string {
  return `v4t-${name}-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
}

/** How to start a daemon besides its configuration. */
export interface DaemonOptions {
  /** More `vio4wd daemon` arguments. */
  args?: string[];
  /** More environment variables. */
  env?: Record<string, string>;
  /** A network namespace to run in (its net_tap VFs appear there). */
  netns?: string;
}

/** A running daemon subprocess. */
export class DaemonProcess {
  #child: Deno.ChildProcess;
  #log = "";
  #pump: Promise<void>;
  #exitCode: number | null = null;

  private constructor(child: Deno.ChildProcess, readonly dir: string, readonly prefix: string) {
    this.#child = child;
    const dec = new TextDecoder();
    child.status.then((st) => this.#exitCode = st.code);
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
    options: DaemonOptions = {},
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
    const argv = [LAUNCHER, "daemon", "--config", conf, ...(options.args ?? [])];
    // `ip netns exec` execs the command: the PID stays the daemon's
    if (options.netns) argv.unshift("ip", "netns", "exec", options.netns);
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: options.env ?? {},
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
      if (this.#exitCode !== null) {
        throw new Error(`daemon exited (status ${this.#exitCode}) before ${re}; log:\n${this.#log.slice(-3000)}`);
      }
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

  /** Resident memory in KiB (ps(1): Deno reads /proc only with --allow-all). */
  rssKiB(): number {
    const out = new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(this.pid)], stderr: "null" }).outputSync();
    const kib = Number(new TextDecoder().decode(out.stdout).trim());
    if (!out.success || !(kib > 0)) throw new Error(`no resident memory figure for daemon pid ${this.pid}`);
    return kib;
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

  #stopped: Promise<number> | null = null;

  /**
   * SIGTERM, wait (SIGKILL after 10 s), remove DPDK files; returns the exit code. Calling it again
   * returns the same code: tests stop the daemon before closing memif peers (see `withDaemon`).
   */
  stop(): Promise<number> {
    this.#stopped ??= (async () => {
      const st = await stopChild(this.#child, 10_000);
      await this.#pump;
      removeDpdkFiles(this.prefix);
      return st.code;
    })();
    return this.#stopped;
  }
}

/** Polls `f` until it returns true. */
export async function until(what: string, f: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
