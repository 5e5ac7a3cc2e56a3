/**
 * dpdk-testpmd as a VM stand-in (virtio_user over vhost-user) and VF peer (memif client),
 * driven interactively through its stdin: what `vio4wd demo` needs (tests/rigs/testpmd.ts adds
 * what only the tests and the bench use).
 *
 * @module
 */

/** Per-port totals testpmd prints on `stop`. */
export interface PortTotals {
  rxPackets: number;
  txPackets: number;
  rxDropped: number;
  txDropped: number;
}

/** How to start a testpmd. */
export interface TestPmdOptions {
  /** DPDK file prefix (unique per run; its hugepage files are removed on close). */
  prefix: string;
  /** `--vdev` arguments, in port order. */
  vdevs: string[];
  /** EAL core list and main lcore: forwarding runs on the other core. */
  cores?: string;
  mainLcore?: number;
  memoryMb?: number;
  /** Mbufs in testpmd's pool (default 8192; every port's RX ring must fit). */
  mbufs?: number;
  /** Packet length for txonly / tx_first. */
  packetLength?: number;
  hugeDir?: string;
  /** More testpmd (application) arguments, e.g. `--rxq=2`, `--txonly-multi-flow`. */
  appArgs?: string[];
  /** A network namespace to run in (where its net_tap interfaces appear). */
  netns?: string;
}

/** A running interactive testpmd. */
export class TestPmd {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  /** stdout only: prompts and statistics; stderr kept apart so it cannot split a prompt. */
  #out = "";
  #err = "";
  #closed: Promise<void>;
  #exited = false;
  #enc = new TextEncoder();

  private constructor(child: Deno.ChildProcess, readonly options: TestPmdOptions) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    const pump = async (s: ReadableStream<Uint8Array>, append: (text: string) => void) => {
      const dec = new TextDecoder();
      for await (const chunk of s) append(dec.decode(chunk, { stream: true }));
    };
    this.#closed = Promise.all([
      pump(child.stdout, (t) => this.#out += t),
      pump(child.stderr, (t) => this.#err += t),
    ]).then(() => {});
    child.status.then(() => this.#exited = true);
  }

  /** Whether the testpmd process has ended (asked to, or on its own). */
  get exited(): boolean {
    return this.#exited;
  }

  /** PID of the testpmd process. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Everything testpmd printed so far: stdout, then stderr. */
  get output(): string {
    return `${this.#out}\n--- stderr ---\n${this.#err}`;
  }

  /** Starts testpmd in interactive mode and waits for its prompt. */
  static async start(o: TestPmdOptions): Promise<TestPmd> {
    const args = [
      "-l",
      o.cores ?? "0,1",
      "--main-lcore",
      String(o.mainLcore ?? 1),
      "--no-pci",
      "--no-telemetry",
      "--file-prefix",
      o.prefix,
      "--single-file-segments", // vhost-user rejects a memory table with too many regions otherwise
      "-m",
      String(o.memoryMb ?? 256),
      "--huge-dir",
      o.hugeDir ?? "/dev/hugepages",
      ...o.vdevs.flatMap((v) => ["--vdev", v]),
      "--",
      "-i",
      `--total-num-mbufs=${o.mbufs ?? 8192}`,
      "--nb-cores=1",
      ...(o.packetLength ? [`--txpkts=${o.packetLength}`] : []),
      ...(o.appArgs ?? []),
    ];
    const child = // stdbuf: testpmd printf()s into a pipe would be block-buffered and arrive late.
      new Deno.Command(o.netns ? "ip" : "stdbuf", {
        args: [...(o.netns ? ["netns", "exec", o.netns, "stdbuf"] : []), "-o0", "-e0", "dpdk-testpmd", ...args],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      })
        .spawn();
    const t = new TestPmd(child, o);
    try {
      await t.waitFor(/testpmd> /, 30_000);
    } catch (e) {
      await t.close(); // never leave a half-started testpmd or its files behind
      throw e;
    }
    return t;
  }

  /** Sends one interactive command. */
  async send(cmd: string): Promise<void> {
    await this.#writer.write(this.#enc.encode(cmd + "\n"));
  }

  /** Waits until the output (from `from` on) matches `re`; returns the match. */
  async waitFor(re: RegExp, timeoutMs = 10_000, from = 0): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.#out.slice(from).match(re);
      if (m) return m;
      if (Date.now() > end) {
        throw new Error(
          `testpmd ${this.options.prefix}: timed out waiting for ${re}; last output:\n${this.output.slice(-2500)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Runs `show port info`-free link check: true when every port reports link up. */
  async linksUp(): Promise<boolean> {
    const from = this.#out.length;
    await this.send("show port summary all");
    const m = await this.waitFor(/Number of available ports: \d+[\s\S]*?testpmd> /, 5000, from);
    const rows = m[0].split("\n").filter((l) => /^\d+\s/.test(l.trim()));
    return rows.length === this.options.vdevs.length && rows.every((l) => /\bup\b/.test(l));
  }

  /** Waits until every port's link is up. */
  async waitLinksUp(timeoutMs = 20_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await this.linksUp())) {
      if (Date.now() > end) {
        throw new Error(
          `testpmd ${this.options.prefix}: links not up after ${timeoutMs} ms; last output:\n${
            this.output.slice(-2000)
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Sends `cmd` and returns what testpmd printed from then until `until` matched. */
  async command(cmd: string, until: RegExp, timeoutMs = 10_000): Promise<string> {
    const from = this.#out.length;
    await this.send(cmd);
    const m = await this.waitFor(until, timeoutMs, from);
    return this.#out.slice(from, from + (m.index ?? 0) + m[0].length);
  }

  /** `stop`, returning each port's forward totals. */
  async stop(): Promise<PortTotals[]> {
    return (await this.stopWithQueues()).ports;
  }

  /**
   * `stop`, returning each port's forward totals and the RX packets of each port's queues
   * (`queues[port][queue]`, from the per-stream statistics testpmd prints with several queues).
   */
  async stopWithQueues(): Promise<{ ports: PortTotals[]; queues: number[][] }> {
    const text = await this.command("stop", /Done\.\s*\n/);
    const queues: number[][] = [];
    for (const x of text.matchAll(/Forward Stats for RX Port=\s*(\d+)\/Queue=\s*(\d+)[^\n]*\n\s*RX-packets: (\d+)/g)) {
      (queues[Number(x[1])] ??= [])[Number(x[2])] = Number(x[3]);
    }
    const out: PortTotals[] = [];
    const re =
      /Forward statistics for port (\d+)\s*-+\s*\n\s*RX-packets: (\d+)\s+RX-dropped: (\d+)\s+RX-total: \d+\s*\n\s*TX-packets: (\d+)\s+TX-dropped: (\d+)/g;
    for (const x of text.matchAll(re)) {
      out[Number(x[1])] = {
        rxPackets: Number(x[2]),
        rxDropped: Number(x[3]),
        txPackets: Number(x[4]),
        txDropped: Number(x[5]),
      };
    }
    return { ports: out, queues };
  }

  #closing: Promise<void> | null = null;

  /** Quits (SIGKILL after 5 s), then removes its hugepage and runtime files; again: the same. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await stopChild(this.#child, 5000, () => void this.send("quit").catch(() => {}));
      await this.#closed;
      this.#writer.releaseLock();
      removeDpdkFiles(this.options.prefix, this.options.hugeDir);
    })();
    return this.#closing;
  }
}

/**
 * Asks a child process to end (`ask`, SIGTERM by default), sends SIGKILL after `graceMs`, and
 * waits for it; returns its status.
 */
export async function stopChild(
  child: Deno.ChildProcess,
  graceMs: number,
  ask: () => void = () => child.kill("SIGTERM"),
): Promise<Deno.CommandStatus> {
  try {
    ask();
  } catch { /* exited */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, graceMs);
  const status = await child.status;
  clearTimeout(timer);
  return status;
}

/** Removes the hugepage files and runtime directory a DPDK process with `prefix` left. */
export function removeDpdkFiles(prefix: string, hugeDir = "/dev/hugepages"): void {
  if (!/^[A-Za-z0-9_-]+$/.test(prefix)) throw new Error(`unsafe DPDK file prefix '${prefix}'`);
  // Deno grants access under /dev only with --allow-all: find(1) removes the files instead.
  new Deno.Command("find", { args: [hugeDir, "-maxdepth", "1", "-name", `${prefix}map_*`, "-delete"], stderr: "null" })
    .outputSync();
  try {
    Deno.removeSync(`/var/run/dpdk/${prefix}`, { recursive: true });
  } catch { /* none */ }
}
