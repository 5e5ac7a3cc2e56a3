/**
 * `vio4wd monitor`: a live view of worker CPU load (bars from the scheduler's load model, the
 * measured busy share and cycles per packet of each worker) and per-relay rates and drops,
 * refreshed every second. Full screen on a terminal (q quits, s changes the sort), plain lines
 * otherwise, `--once --json` for scripts.
 *
 * @module
 */

import { RATE_WINDOW_MS } from "../control/stats.ts";
import { configOption, examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional, withDefault } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import { float, string } from "@optique/core/valueparser";
import { DaemonUnreachableError, request, resolveEndpoint } from "../control/client.ts";
import {
  CoreSchedRequest_Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status,
  CoreSchedResponseSchema,
  StatsRequestSchema,
  StatsResponse_Status,
  StatsResponseSchema,
  type WorkerState,
} from "../control/gen/virtioforwarder_pb.ts";
import { type Rates, type RelayRates, vfToVmLoad, vmToVfLoad } from "../sched/plan.ts";
import { relayRates } from "../sched/scheduler.ts";
import { si } from "./stats.ts";

/** The original's full-scale load: a relay at 15 Mpps and 50 Gbps (6250 MB/s) in both directions. */
const FULL_SCALE: Rates = {
  pktRxFromVf: 15e6,
  byteRxFromVf: 6250e6,
  pktTxToVm: 15e6,
  byteTxToVm: 6250e6,
  pktRxFromVm: 15e6,
  byteRxFromVm: 6250e6,
  pktTxToVf: 15e6,
  byteTxToVf: 6250e6,
};
export const MAX_LOAD = vfToVmLoad(FULL_SCALE) + vmToVfLoad(FULL_SCALE);
const BAR = 60;

/** The `monitor` command's parser. */
export const monitorCommand = command(
  "monitor",
  object({
    action: constant("monitor" as const),
    config: configOption(),
    statsEp: optional(
      option("--stats-ep", "--zmq-ep", string({ metavar: "EP" }), {
        description: message`Stats endpoint (--zmq-ep as vio4wd stats takes it).`,
      }),
    ),
    schedEp: optional(
      option("--sched-ep", string({ metavar: "EP" }), {
        description: message`Core-scheduling endpoint (for the worker list; else the CPUs relays are on).`,
      }),
    ),
    interval: withDefault(
      option("--poll-interval", float({ min: 0.5, max: 3600, metavar: "SECONDS" }), {
        description: message`Refresh period (default 1 s).`,
      }),
      1,
    ),
    once: optional(flag("--once", { description: message`One snapshot, then exit.` })),
    json: optional(flag("--json", { description: message`With --once: print the snapshot as JSON.` })),
  }),
  {
    brief: message`Live worker CPU load and relay rates.`,
    description:
      message`Show one bar per worker CPU (estimated load, the relays on it, and measured: the share of its cycles spent moving packets and those cycles per packet) and each active relay's rates and drops in both directions, refreshed every second. Keys: q quits, s sorts relays by id or by load. Without a terminal: plain lines.`,
    footer: examples(
      "vio4wd monitor",
      "vio4wd monitor --once --json",
    ),
  },
);

/** Parsed `monitor` arguments. */
export interface MonitorArgs {
  config?: string;
  statsEp?: string;
  schedEp?: string;
  interval: number;
  once?: boolean;
  json?: boolean;
}

/** One snapshot: per-CPU load and the relays. */
export interface Snapshot {
  cpus: {
    cpu: number;
    load: number;
    /** Measured over the window: share of the worker's cycles in passes that moved packets, and
     * those cycles per packet. */
    busy: number | null;
    cycles_per_pkt: number | null;
    relays: { vf_to_vm: number[]; vm_to_vf: number[] };
  }[];
  relays: {
    id: number;
    load: number;
    vf_to_vm: { cpu: number; pps: number; bps: number; drops: number };
    vm_to_vf: { cpu: number; pps: number; bps: number; drops: number };
  }[];
}

/**
 * Builds a snapshot from workers, relay rates (`drops` = total drop counters per relay/dir) and
 * the workers' accounting over the window.
 */
export function snapshot(
  workers: readonly number[],
  rates: readonly RelayRates[],
  drops: Map<number, [number, number]>,
  accounting: readonly WorkerState[] = [],
): Snapshot {
  const cpus = [...new Set([...workers, ...rates.flatMap((r) => [r.vfToVmCpu, r.vmToVfCpu])])].sort((a, b) => a - b);
  const measured = new Map(accounting.map((w) => [w.cpu, w]));
  return {
    cpus: cpus.map((cpu) => ({
      cpu,
      load: rates.reduce(
        (s, r) => s + (r.vfToVmCpu === cpu ? vfToVmLoad(r) : 0) + (r.vmToVfCpu === cpu ? vmToVfLoad(r) : 0),
        0,
      ),
      busy: measured.get(cpu)?.busyShare ?? null,
      cycles_per_pkt: measured.get(cpu)?.cyclesPerPkt ?? null,
      relays: {
        vf_to_vm: rates.filter((r) => r.vfToVmCpu === cpu).map((r) => r.id),
        vm_to_vf: rates.filter((r) => r.vmToVfCpu === cpu).map((r) => r.id),
      },
    })),
    relays: rates.map((r) => ({
      id: r.id,
      load: vfToVmLoad(r) + vmToVfLoad(r),
      vf_to_vm: { cpu: r.vfToVmCpu, pps: r.pktTxToVm, bps: r.byteTxToVm * 8, drops: drops.get(r.id)?.[0] ?? 0 },
      vm_to_vf: { cpu: r.vmToVfCpu, pps: r.pktTxToVf, bps: r.byteTxToVf * 8, drops: drops.get(r.id)?.[1] ?? 0 },
    })),
  };
}

/**
 * The screen (or plain text) for a snapshot, fitted to `width` columns: the load bar shrinks first,
 * then a long relay list is cut with a count of what is left out; below 100 columns the relay table
 * drops its bits-per-second columns. Every figure stays.
 */
export function render(s: Snapshot, sortByLoad: boolean, width = 100): string {
  const lines = ["CPU loads"];
  for (const c of s.cpus) {
    const on = [...new Set([...c.relays.vf_to_vm, ...c.relays.vm_to_vf])].sort((a, b) => a - b);
    const busy = c.busy === null ? "    -" : `${(c.busy * 100).toFixed(1).padStart(5)}%`;
    const cpp = c.cycles_per_pkt === null ? "-" : c.cycles_per_pkt.toFixed(0);
    const head = `CPU${c.cpu}: `;
    const figures = ` ${(c.load / MAX_LOAD * 100).toFixed(1).padStart(5)}%  busy ${busy}  ${cpp.padStart(5)} cyc/pkt`;
    // room for the list: at least a few ids and the count of the rest (`0,2,+18`)
    const bar = Math.max(5, Math.min(BAR, width - head.length - figures.length - "  relays ".length - 10));
    const n = Math.min(bar, Math.round(c.load / MAX_LOAD * bar));
    const line = `${head}${"#".repeat(n).padEnd(bar, ".")}${figures}  relays `;
    let list = on.join(",") || "-";
    for (let shown = on.length; line.length + list.length > width && shown > 1;) {
      shown--;
      list = `${on.slice(0, shown).join(",")},+${on.length - shown}`;
    }
    lines.push(line + list);
  }
  lines.push("");
  const relays = [...s.relays].sort((a, b) => sortByLoad ? b.load - a.load : a.id - b.id);
  const wide = width >= 100;
  const by = `(sorted by ${sortByLoad ? "load" : "id"})`;
  lines.push(
    wide
      ? `relay  VF->VM cpu      pps      bps    drops  VM->VF cpu      pps      bps    drops   ${by}`
      : `relay VF->VM cpu      pps    drops VM->VF cpu      pps    drops ${by}`,
  );
  for (const r of relays) {
    const d = (x: Snapshot["relays"][number]["vf_to_vm"]) =>
      `${String(x.cpu).padStart(3)} ${si(x.pps).padStart(8)} ${wide ? `${si(x.bps).padStart(8)} ` : ""}${
        String(x.drops).padStart(8)
      }`;
    lines.push(
      wide
        ? `${String(r.id).padStart(5)}         ${d(r.vf_to_vm)}         ${d(r.vm_to_vf)}`
        : `${String(r.id).padStart(5)}        ${d(r.vf_to_vm)}        ${d(r.vm_to_vf)}`,
    );
  }
  if (relays.length === 0) lines.push("(no active relays)");
  return lines.map((l) => l.slice(0, width)).join("\n");
}

/** Runs `vio4wd monitor`; returns the exit status. */
export async function runMonitor(a: MonitorArgs): Promise<number> {
  const statsEp = await resolveEndpoint("stats", a.statsEp, a.config);
  const schedEp = await resolveEndpoint("coreSched", a.schedEp, a.config);
  using term = MonitorTerminal.open(!a.once && Deno.stdout.isTerminal() && Deno.stdin.isTerminal());
  let workers: number[] | null = null;
  while (!term.quit) {
    let text: string;
    try {
      const { snap, eal } = await fetchSnapshot(statsEp, schedEp, workers);
      workers = eal;
      if (a.once && a.json) {
        console.log(JSON.stringify(snap));
        return 0;
      }
      text = render(snap, term.sortByLoad, term.tty ? Deno.consoleSize().columns : 200);
    } catch (e) {
      if (!(e instanceof DaemonUnreachableError)) throw e;
      if (a.once) {
        console.error(`vio4wd monitor: ${e.message}`);
        return 2;
      }
      workers = null; // fetch the worker list again when the daemon is back
      text = `${e.message}\nretrying every ${a.interval} s (q quits)`;
    }
    term.show(text);
    if (a.once) return 0;
    const end = Date.now() + a.interval * 1000;
    while (!term.quit && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  }
  return 0;
}

/**
 * One reading for the monitor: stats over the rate window with the workers' loop counters, and
 * (once, or again after an outage: `workers` null) the worker CPUs from the core-scheduling
 * endpoint. Throws DaemonUnreachableError when the daemon does not answer.
 */
async function fetchSnapshot(
  statsEp: string,
  schedEp: string,
  workers: number[] | null,
): Promise<{ snap: Snapshot; eal: number[] }> {
  const stats = await request(
    statsEp,
    StatsRequestSchema,
    { includeInactive: false, delay: RATE_WINDOW_MS, includeWorkers: true },
    StatsResponseSchema,
    2200,
  );
  if (stats.status !== StatsResponse_Status.OK) throw new Error(`stats answered ${StatsResponse_Status[stats.status]}`);
  const eal = workers ?? await request(
    schedEp,
    CoreSchedRequestSchema,
    { op: CoreSchedRequest_Op.GET_EAL_CORES },
    CoreSchedResponseSchema,
  )
    .then((r) => r.status === CoreSchedResponse_Status.OK ? r.ealCores : [])
    .catch(() => []);
  const drops = new Map(stats.relay.map((r) => [r.id, [
    Number((r.vfToVm?.pktsDroppedVmQueueFull ?? 0n) + (r.vfToVm?.pktsDroppedVmNotConnected ?? 0n)),
    Number((r.vmToVf?.pktsDroppedVfQueueFull ?? 0n) + (r.vmToVf?.pktsDroppedVfNotConnected ?? 0n)),
  ] as [number, number]]));
  return { snap: snapshot(eal, relayRates(stats.relay), drops, stats.workers), eal };
}

/**
 * The monitor's terminal: on a TTY the alternate screen, raw keys (q or Ctrl-C quits, s sorts)
 * and the cursor hidden, all restored on dispose; otherwise plain lines. SIGTERM (and SIGINT off
 * a TTY) quits.
 */
class MonitorTerminal implements Disposable {
  quit = false;
  sortByLoad = false;
  readonly #onSignal = () => this.quit = true;

  private constructor(readonly tty: boolean) {}

  static open(tty: boolean): MonitorTerminal {
    const t = new MonitorTerminal(tty);
    Deno.addSignalListener("SIGTERM", t.#onSignal);
    if (!tty) {
      Deno.addSignalListener("SIGINT", t.#onSignal);
      return t;
    }
    Deno.stdin.setRaw(true);
    t.#write("\x1b[?1049h\x1b[?25l"); // alternate screen, hide cursor
    // A pending read keeps the process alive after dispose: stdin is left to exit.
    void t.#readKeys();
    return t;
  }

  async #readKeys(): Promise<void> {
    const buf = new Uint8Array(16);
    while (!this.quit) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      for (const k of buf.subarray(0, n)) {
        if (k === 0x71 || k === 0x03) this.quit = true; // q, Ctrl-C
        if (k === 0x73) this.sortByLoad = !this.sortByLoad; // s
      }
    }
  }

  #write(t: string): void {
    Deno.stdout.writeSync(new TextEncoder().encode(t));
  }

  /** One screen (a TTY: redrawn in place) or one block of lines. */
  show(text: string): void {
    const stamp = new Date().toISOString();
    if (this.tty) this.#write(`\x1b[H\x1b[2J${stamp}  vio4wd monitor  (q quit, s sort)\n${text}\n`);
    else console.log(`${stamp}\n${text}\n`);
  }

  [Symbol.dispose](): void {
    Deno.removeSignalListener("SIGTERM", this.#onSignal);
    if (!this.tty) {
      Deno.removeSignalListener("SIGINT", this.#onSignal);
      return;
    }
    this.quit = true;
    this.#write("\x1b[?25h\x1b[?1049l");
    Deno.stdin.setRaw(false);
  }
}
