/**
 * `vio4wd daemon` as a subprocess with its own temp dir and DPDK file prefix, read through its
 * log and its stats endpoint (the StatsRequest `vio4wd stats --json` sends) and stopped by PID.
 * Used by the tests and the bench.
 *
 * @module
 */

import { toJsonString } from "@bufbuild/protobuf";
import { allRelays } from "../../src/control/client.ts";
import { type RelayState as StatsRelayState, RelayStateSchema } from "../../src/control/gen/virtioforwarder_pb.ts";
import { hugepageFiles, removeDpdkFiles, stopChild } from "./testpmd.ts";
import { coreSchedEndpoint, loadConfig } from "../../src/config/config.ts";
import { pidFilePath } from "../../src/config/config.ts";
import type { UpgradeResult } from "../../src/daemon/upgrade.ts";

/** A RelayState as the daemon sends it: its proto2-required directions are always there. */
export type RelayState = StatsRelayState & Required<Pick<StatsRelayState, "vfToVm" | "vmToVf">>;

/** A 64-bit counter of a RelayState as a number (absent: 0). */
export const num = (x: bigint | undefined): number => Number(x ?? 0n);

/** A RelayState as JSON with .proto field names, for failure messages. */
export const show = (r: RelayState | undefined): string =>
  r ? toJsonString(RelayStateSchema, r, { useProtoFieldName: true }) : "(no such relay)";

/** The `./vio4wd` launcher at the top of the checkout. */
export const LAUNCHER = new URL("../../vio4wd", import.meta.url).pathname;

/** A unique tag for DPDK file prefixes and temp names of this test run. */
export function uniqueTag(name: string): string {
  return `v4t-${name}-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
}

/**
 * The fault-injection build of the shim (`make -C shim FAULTS=1`, which scripts/setup.sh runs):
 * VIO4WD_FAULT_* variables in the daemon's environment force what this machine cannot produce.
 */
export const FAULTS_SHIM = new URL("../../shim/build/faults/libvio4wd_shim.so", import.meta.url).pathname;

/** The profiling build of the shim (`make -C shim STEPS=1`, which scripts/setup.sh runs): start a daemon on it with `{ env: { VIO4WD_SHIM: STEPS_SHIM } }`. */
export const STEPS_SHIM = new URL("../../shim/build/steps/libvio4wd_shim.so", import.meta.url).pathname;

/** How to start a daemon besides its configuration. */
export interface DaemonOptions {
  /** More `vio4wd daemon` arguments. */
  args?: string[];
  /** More environment variables. */
  env?: Record<string, string>;
  /** A network namespace to run in (its net_tap VFs appear there). */
  netns?: string;
  /**
   * Run with this configuration file as it is (the config lines are then ignored): only the
   * DPDK file prefix and memory are given, as command-line options. Its stats endpoint is `stats`.
   */
  verbatim?: { file: string; stats: string };
  /** The vio4wd executable to run (default: this checkout's launcher). */
  executable?: string;
}

/** A running daemon subprocess. */
export class DaemonProcess {
  #child: Deno.ChildProcess;
  #log = "";
  #pump: Promise<void>;
  #exitCode: number | null = null;

  /** The daemon that took this one's relays over (`upgrade`): the one this object follows then. */
  #successor: { pid: number; prefix: string } | null = null;

  private constructor(
    child: Deno.ChildProcess,
    readonly dir: string,
    readonly firstPrefix: string,
    /** The daemon's configuration file. */
    readonly config: string,
    /** The daemon's stats endpoint. */
    readonly statsEndpoint: string,
  ) {
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
    return this.#successor?.pid ?? this.#child.pid;
  }

  /** The DPDK file prefix of the daemon running now. */
  get prefix(): string {
    return this.#successor?.prefix ?? this.firstPrefix;
  }

  /** Whether the process is still running (it has not exited, crashed or not). */
  get alive(): boolean {
    return this.#successor ? processRunning(this.#successor.pid) : this.#exitCode === null;
  }

  /**
   * Runs `vio4wd upgrade --json` (hot upgrade) with `args`; its exit status and result. When it
   * succeeded this object follows the new daemon from then on, and `oldExit` is the old daemon's
   * exit status (waited for, 10 s at most) and `oldLeft` what it left of its DPDK files.
   */
  async upgrade(args: string[] = []): Promise<
    { code: number; result: UpgradeResult; stderr: string; oldExit?: number; oldLeft?: string[] }
  > {
    const out = await new Deno.Command(LAUNCHER, {
      args: ["upgrade", "--config", this.config, "--json", ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr);
    let result: UpgradeResult;
    try {
      result = JSON.parse(text);
    } catch {
      throw new Error(
        `vio4wd upgrade printed no JSON (exit ${out.code}): ${text}\n${stderr}\nlog:\n${this.#log.slice(-2500)}`,
      );
    }
    if (!result.ok || result.pid === undefined) return { code: out.code, result, stderr };
    const old = this.prefix;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const st = await Promise.race([
      this.#child.status,
      new Promise<null>((r) => timer = setTimeout(() => r(null), 10_000)),
    ]);
    clearTimeout(timer);
    this.#successor = { pid: result.pid, prefix: result.filePrefix! };
    const oldLeft = [...hugepageFiles(old), `/var/run/dpdk/${old}`].filter(pathExists);
    return { code: out.code, result, stderr, oldExit: st?.code ?? -1, oldLeft };
  }

  /**
   * Starts `vio4wd daemon` with `configLines` (dir and prefix variables added, and a stats
   * endpoint in `dir` unless the lines set one).
   */
  static async start(
    dir: string,
    prefix: string,
    configLines: string[],
    options: DaemonOptions = {},
  ): Promise<DaemonProcess> {
    const conf = `${dir}/vio4wd.conf`;
    const statsLine = configLines.find((l) => l.startsWith("VIRTIOFWD_ZMQ_STATS_EP="));
    const stats = statsLine?.slice(statsLine.indexOf("=") + 1) ?? `ipc://${dir}/stats-${prefix}.sock`;
    await Deno.writeTextFile(
      conf,
      [
        "VIRTIOFWD_CPU_MASK=1",
        "VIRTIOFWD_MASTER_LCORE=0",
        "VIRTIOFWD_LOG_LEVEL=6",
        `VIRTIOFWD_SOCKET_DIR=${dir}/sock`,
        `VIRTIOFWD_PID_DIR=${dir}`,
        `VIO4WD_STATE_DIR=${dir}/state`,
        // the stand-ins share the workers' CPUs on a 2-CPU machine: nice -20 would starve them
        "VIO4WD_NICE=0",
        `VIO4WD_EAL_FILE_PREFIX=${prefix}`,
        "VIO4WD_EAL_MEMORY_MB=256",
        // the tests' VF stand-ins come from clients too (a test's own line overrides this)
        `VIO4WD_DEVARGS_ALLOW=${TEST_CLIENT_DRIVERS}`,
        ...(statsLine ? [] : [`VIRTIOFWD_ZMQ_STATS_EP=${stats}`]),
        ...configLines,
      ].join("\n") + "\n",
    );
    const exe = options.executable ?? LAUNCHER;
    const argv = options.verbatim
      ? [
        exe,
        "daemon",
        "--config",
        options.verbatim.file,
        "--file-prefix",
        prefix,
        "--memory",
        "256",
        "--state-dir",
        `${dir}/state`,
        "--nice",
        "0",
      ]
      : [exe, "daemon", "--config", conf];
    argv.push(...(options.args ?? []));
    // `ip netns exec` execs the command: the PID stays the daemon's
    if (options.netns) argv.unshift("ip", "netns", "exec", options.netns);
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: options.env ?? {},
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const v = options.verbatim;
    const d = new DaemonProcess(child, dir, prefix, v?.file ?? conf, v?.stats ?? stats);
    await d.waitLog(/ready: /, 30_000);
    return d;
  }

  /** Waits until the log matches `re`. */
  /**
   * The metrics URL of a daemon started with VIO4WD_METRICS_LISTEN=127.0.0.1:0: the port it bound,
   * as its log line says (the operator's way to learn it).
   */
  async metricsUrl(): Promise<string> {
    return (await this.waitLog(/metrics: (http:\/\/\S+\/metrics)/))[1];
  }

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

  /**
   * The relays that have a VF or a VM, as the stats endpoint reports them (the request `vio4wd
   * stats --json --include-inactive` sends; counters cumulative, 64-bit as bigint).
   */
  async status(): Promise<RelayState[]> {
    const all = await allRelays(this.statsEndpoint);
    const relays = all.filter((r): r is RelayState => r.vfToVm !== undefined && r.vmToVf !== undefined);
    if (relays.length !== all.length) throw new Error("stats: a relay without its directions");
    return relays.filter((r) => r.vfToVm.active || r.vmToVf.active);
  }

  /**
   * Waits until relay `id`'s VM is connected (with `queuePairs` queue pairs, if given) and its
   * VM->VF direction placed on a worker, as the stats endpoint reports it (the state `relay N: VM
   * connected` in the log announces); returns it.
   */
  async untilVm(id = 0, timeoutMs = 10_000, queuePairs?: number): Promise<RelayState> {
    let last: RelayState | undefined;
    const pairs = queuePairs === undefined ? "" : ` with ${queuePairs} queue pair(s)`;
    await until(`relay ${id}'s VM connected${pairs} and placed`, async () => {
      last = (await this.status()).find((r) => r.id === id);
      return last !== undefined && last.vmToVf.active && (last.cpu?.vmToVf ?? -1) >= 0 &&
        (queuePairs === undefined || last.vmQueuePairs === queuePairs);
    }, timeoutMs).catch((e) => {
      throw new Error(
        `${(e as Error).message}: relay ${id} = ${show(last)}; log:\n${this.#log.slice(-1500)}\n${
          Deno.env.get("V4_FULLLOG") ? this.#log : ""
        }`,
      );
    });
    return last!;
  }

  #stopped: Promise<number> | null = null;

  /** SIGKILL, as a crash would end it; returns what it left (see leftovers). */
  async crash(): Promise<string[]> {
    this.#stopped ??= (async () => {
      if (this.#successor) return await this.#stopSuccessor("SIGKILL");
      this.#child.kill("SIGKILL");
      const st = await this.#child.status;
      await this.#pump;
      return st.code;
    })();
    await this.#stopped;
    return this.leftovers();
  }

  /**
   * SIGTERM, wait (SIGKILL after 10 s), remove DPDK files; returns the exit code. Calling it again
   * returns the same code: tests stop the daemon before closing memif peers (see `withDaemon`).
   */
  stop(): Promise<number> {
    this.#stopped ??= (async () => {
      const st = this.#successor
        ? { code: await this.#stopSuccessor("SIGTERM") }
        : await stopChild(this.#child, 10_000);
      await this.#pump;
      // what a clean stop must not leave, checked before any clean-up of the rig's own
      const left = st.code === 0 ? this.leftovers() : [];
      removeDpdkFiles(this.prefix); // only what a crash (SIGKILL) leaves
      if (left.length > 0) {
        throw new Error(`the daemon exited 0 but left: ${left.join(", ")}; log:\n${this.#log.slice(-1500)}`);
      }
      return st.code;
    })();
    return this.#stopped;
  }

  /**
   * Ends the daemon that took over (not this process's child: its exit status is not ours to
   * read): `signal`, SIGKILL after 10 s; 0 when it said it stopped ("Stopping virtio-forwarder:
   * stopped", the line a clean stop ends with), else 1.
   */
  async #stopSuccessor(signal: Deno.Signal): Promise<number> {
    const pid = this.#successor!.pid;
    const before = this.#log.length;
    try {
      Deno.kill(pid, signal);
    } catch { /* gone */ }
    const t0 = Date.now();
    while (processRunning(pid)) {
      if (Date.now() - t0 > 10_000) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.#pump;
    return this.#log.slice(before).includes("Stopping virtio-forwarder: stopped") ? 0 : 1;
  }

  /**
   * What the stopped daemon left that a clean stop removes: its hugepage files and DPDK run
   * directory, its PID file, its ipc:// endpoint files, and (server mode) the relays' sockets it
   * made in the socket directory.
   */
  leftovers(): string[] {
    let text = "";
    try {
      text = Deno.readTextFileSync(this.config);
    } catch { /* a file the test removed: only the DPDK files are checked */ }
    const c = loadConfig(text, this.config).config;
    const left = [...hugepageFiles(this.prefix)];
    const paths = [
      `/var/run/dpdk/${this.prefix}`,
      pidFilePath(c),
      ...[c.zmqConfigEp, c.zmqPortControlEp, c.zmqStatsEp, coreSchedEndpoint(c), this.statsEndpoint]
        .filter((ep) => ep.startsWith("ipc://")).map((ep) => ep.slice("ipc://".length)),
    ];
    left.push(...paths.filter(pathExists));
    if (!c.vhostClient) {
      const [head, tail] = c.socketPattern.split("%u");
      try {
        for (const e of Deno.readDirSync(c.socketDir)) {
          if (
            e.name.startsWith(head) && e.name.endsWith(tail) &&
            /^\d+$/.test(e.name.slice(head.length, -tail.length || undefined))
          ) {
            left.push(`${c.socketDir}/${e.name}`);
          }
        }
      } catch { /* no socket directory */ }
    }
    return left;
  }
}

/** Whether there is anything at `path` (not followed if it is a link). */
export function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether process `pid` runs (exists and is not a zombie). */
export function processRunning(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The drivers the tests' clients use for VF stand-ins. */
export const TEST_CLIENT_DRIVERS = "net_null,net_memif,net_tap,net_virtio_user,net_vhost";

/** Runs `./vio4wd args` to completion. */
export async function runVio4wd(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(LAUNCHER, { args, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * A TCP port on loopback that was free a moment ago (for ZeroMQ tcp endpoints, which take no port
 * 0; metrics listen on port 0, see {@link DaemonProcess.metricsUrl}).
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Polls `read` until what it returns has stayed the same for `quietMs` (counters that stopped
 * moving once their source stopped), and returns that; throws after `timeoutMs`.
 */
export async function settled<T>(
  what: string,
  read: () => Promise<T>,
  quietMs = 300,
  timeoutMs = 10_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = JSON.stringify(await read(), (_, v) => typeof v === "bigint" ? String(v) : v);
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    const value = await read();
    const now = JSON.stringify(value, (_, v) => typeof v === "bigint" ? String(v) : v);
    if (now !== last) [last, since] = [now, Date.now()];
    else if (Date.now() - since >= quietMs) return value;
    if (Date.now() > end) throw new Error(`${what}: still changing after ${timeoutMs} ms (last ${now})`);
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
