/**
 * `deno task bench`: the PVP loop of ../shared/testbed/pvp-testpmd.sh with three relays in one
 * run, alternating, medians over rounds: dpdk-testpmd io-fwd (the physical-limit proxy), vio4wd,
 * and OVS-DPDK. A generator testpmd on CPU 0 loops packets VM -> relay -> VF -> generator ->
 * relay -> VM; the relay forwards on CPU 1. The VM side is vhost-user (generator: virtio_user),
 * the VF stand-in memif (and a vhost-user pair, the only one OVS can drive).
 *
 * The primary figure is the relay core's busy cycles per packet, from each relay's own
 * accounting in the same window (it does not depend on how fast the generator is); Mpps per
 * direction, read at the generator, is secondary. Windows where the loop died, the relay dropped
 * or its CPU had steal time are discarded and counted.
 *
 * Also: vio4wd with as many relays as the generator's own port limit allows, daemon start-up
 * with 64 sockets and a VF on every ethdev port the process may have, its hugepage use and RSS.
 *
 * The parts: bench/cases.ts (what is measured), bench/relays.ts (the relays under test),
 * bench/measure.ts (the loops), bench/report.ts (medians, ratios, the report).
 *
 * @module
 */

import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional, withDefault } from "@optique/core/modifiers";
import { flag, option } from "@optique/core/primitives";
import { integer, string } from "@optique/core/valueparser";
import { run } from "@optique/run";
import { STEPS_SHIM, uniqueTag } from "../tests/rigs/daemon_process.ts";
import { hugepageFilesUnder } from "../tests/rigs/testpmd.ts";
import { type Case, caseName, CASES, IDLE_US, type ShimVariant, SIZES, withVariants } from "./bench/cases.ts";
import { daemonFigures, idleWorkerCpu, measure, type Timing, type Window } from "./bench/measure.ts";
import { type RunningRelay, startRelay } from "./bench/relays.ts";
import { slowGuest, slowGuestFigures, slowGuestLine } from "./bench/slow_guest.ts";
import { upgradeGapLines, upgradeGaps } from "./bench/upgrade_gap.ts";
import {
  buildResult,
  type KeptWindow,
  markdown,
  median,
  samplesOf,
  variantFigures,
  variantLines,
  writeResults,
} from "./bench/report.ts";

/** The bench's command line. */
export const benchParser = object({
  quick: optional(flag("--quick", { description: message`One short round (CI: proves the harness works).` })),
  rounds: withDefault(option("--rounds", integer({ min: 1, metavar: "N" }), { description: message`Rounds.` }), 5),
  seconds: withDefault(
    option("--seconds", integer({ min: 1, metavar: "S" }), { description: message`Seconds per sample.` }),
    3,
  ),
  only: withDefault(
    option("--only", string({ metavar: "NAME[,NAME]" }), {
      description:
        message`Only these cases: a NAME that is a case's name picks it, any other the cases whose names contain it. A case picked brings its --steps/--against variants; slow_guest picks the slow-guest case, upgrade_gap the upgrade-vs-restart gap.`,
    }),
    "",
  ),
  json: optional(flag("--json", { description: message`Print the result as JSON.` })),
  steps: optional(flag("--steps", {
    description:
      message`Also run each vio4wd case on the STEPS=1 shim (shim/build/steps): where its cycles go, by step.`,
  })),
  against: optional(option("--against", string({ metavar: "PATH" }), {
    description:
      message`Also run each vio4wd case on another build, alternating, and print the ratio: PATH is a shim (.so, same ABI) or another checkout (its own vio4wd, shim built).`,
  })),
  write: optional(flag("--write", { description: message`Write bench/results and the README block.` })),
});

const progress = (s: string) => console.error(`bench: ${s}`);

async function main(args: string[]): Promise<number> {
  const a = run(benchParser, { programName: "deno task bench", help: "option", args });
  const t: Timing = a.quick
    ? { rounds: 1, seconds: 1, warmup: 1, quick: true }
    : { rounds: a.rounds, seconds: a.seconds, warmup: 2, quick: false };
  const tag = uniqueTag("bench");
  stopOnInterrupt(tag);
  const windows: KeptWindow[] = [];
  const discarded = new Map<string, number>();
  /** One sample: a fresh relay (testpmd's relay does not survive its generator going away). */
  const sample = async (c: Case, size: number, round: number) => {
    const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
    let relay: RunningRelay | null = null;
    let r: Window;
    try {
      relay = await startRelay(c, dir, tag);
      r = await measure(relay, size, t, tag);
    } finally {
      await relay?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    const key = `${caseName(c)}_${size}`;
    const line = `round ${round}/${t.rounds} ${caseName(c)} ${size} B: ${r.cyclesPerPkt.toFixed(1)} cycles/pkt, ` +
      `${r.mppsPerDir.toFixed(3)} Mpps per direction (VF->VM ${r.vfToVm.toFixed(3)}, VM->VF ${r.vmToVf.toFixed(3)})` +
      `; generator ${r.generatorCyclesPerPkt.toFixed(1)} cycles/pkt`;
    if (r.discarded) {
      discarded.set(r.discarded, (discarded.get(r.discarded) ?? 0) + 1);
      progress(`${line}: discarded, ${r.discarded}`);
      if (!t.quick) return; // --quick proves the harness: its one window counts whatever it was
    }
    windows.push({
      key,
      mpps: r.mppsPerDir,
      cycles: r.cyclesPerPkt,
      generator: r.generatorCyclesPerPkt,
      steps: r.steps,
    });
    progress(line);
  };
  const variants: ShimVariant[] = [];
  for (const [label, path] of [["steps", a.steps ? STEPS_SHIM : undefined], ["against", a.against]] as const) {
    if (path === undefined) continue;
    const program = path.endsWith(".so") ? path : `${path}/vio4wd`;
    try {
      if (!Deno.statSync(program).isFile) throw new Error("not a file");
      if (!path.endsWith(".so") && !Deno.statSync(`${path}/shim/build/libvio4wd_shim.so`).isFile) {
        throw new Error("its shim is not built (make -C PATH/shim)");
      }
    } catch (e) {
      const hint = label === "steps" ? " (build it with 'make -C shim STEPS=1')" : "";
      throw new Error(`--${label}: no shim or checkout at ${path}${hint}: ${e instanceof Error ? e.message : e}`);
    }
    variants.push({ label, path: Deno.realPathSync(path) });
  }
  const only = a.only.split(",");
  const picks = (o: string) => (c: Case) =>
    CASES.some((x) => caseName(x) === o) ? caseName(c) === o : caseName(c).includes(o);
  const selected = withVariants(CASES.filter((c) => only.some((o) => picks(o)(c))), variants);
  for (let round = 1; round <= t.rounds; round++) {
    for (const c of selected) for (const size of SIZES) await sample(c, size, round);
  }
  const samples = samplesOf(windows, discarded);
  /** The slow-guest case on this build and each --against build (not the steps one: same data path). */
  const slowGuestRuns = async () => {
    let out: Record<string, number> = {};
    for (const v of [undefined, ...variants.filter((x) => x.label === "against")]) {
      const label = v ? `${v.label} ${v.path}` : "this build";
      progress(`slow guest on ${label}: the guest reads 5 ms of every 20`);
      const f = await slowGuest(tag, t.quick ? 2 : 3 * t.seconds, v);
      console.log(slowGuestLine(f, label));
      out = { ...out, ...slowGuestFigures(f, v?.label) };
    }
    return out;
  };
  /** The upgrade-vs-restart gap under a QEMU guest, both socket modes (this build only). */
  const upgradeGapRuns = async () => {
    progress("upgrade gap: a QEMU guest pinged every 1 ms across `vio4wd upgrade`, then across a restart");
    const f = await upgradeGaps(tag);
    for (const l of upgradeGapLines(f)) console.log(l);
    return f;
  };
  if (a.only) {
    if (only.includes("slow_guest")) await slowGuestRuns();
    if (only.includes("upgrade_gap")) await upgradeGapRuns();
    // a partial run: the full report needs every case; print what was measured
    for (const [k, v] of samples.cycles) {
      const g = samples.perGenerator.get(k);
      const perGen = g?.length ? median(g).toFixed(3) : "-";
      console.log(`${k}: ${median(v).toFixed(1)} cycles/pkt, ${perGen} per generator cycle (${v.length} windows)`);
    }
    for (const l of variantLines(variantFigures(samples))) console.log(l);
    console.log(
      `windows kept ${samples.kept}, discarded ${JSON.stringify(Object.fromEntries(samples.discarded))}`,
    );
    return 0;
  }
  progress("control plane and memory: 64 sockets, 31 VFs, stats latency, port add -> first packet");
  const daemon = await daemonFigures(tag, t);
  progress(`idle worker CPU: polling, and idle mode (${IDLE_US} us)`);
  const idle = {
    idle_worker_cpu_polling_pct: await idleWorkerCpu(tag, 0),
    idle_worker_cpu_idle_mode_pct: await idleWorkerCpu(tag, IDLE_US),
  };
  const slow = await slowGuestRuns();
  const gaps = await upgradeGapRuns();
  const result = buildResult(samples, { ...daemon, ...idle, ...slow, ...gaps }, {
    rounds: t.rounds,
    seconds: t.seconds,
    date: new Date().toISOString(),
    host: { cpus: navigator.hardwareConcurrency, kernel: Deno.osRelease() },
  });
  const md = markdown(result, CASES);
  console.log(a.json ? JSON.stringify(result, null, 2) : md);
  if (a.write) await writeResults(md, result);
  return 0;
}

/** The PIDs of `pid`'s descendants, children first. */
function descendants(pid: number): number[] {
  const out = new Deno.Command("pgrep", { args: ["-P", String(pid)], stdout: "piped" }).outputSync();
  const kids = new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number);
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

/**
 * Ctrl-C or SIGTERM: stops everything the bench started (daemons, generators, testpmd and OVS
 * relays, by PID: SIGTERM, then SIGKILL after 5 s) and removes its temporary directories and
 * hugepage files (all named after `tag`), so that an interrupted run leaves nothing behind.
 */
function stopOnInterrupt(tag: string) {
  const stop = async () => {
    progress("interrupted: stopping what the bench started");
    const pids = descendants(Deno.pid);
    for (const p of pids) signal(p, "SIGTERM");
    for (let i = 0; i < 50 && pids.some((p) => signal(p, "SIGCONT")); i++) await new Promise((r) => setTimeout(r, 100));
    for (const p of pids) signal(p, "SIGKILL");
    for (const f of hugepageFilesUnder(tag)) Deno.removeSync(f);
    const tmp = Deno.env.get("TMPDIR") ?? "/tmp"; // where Deno.makeTempDir put the bench's directories
    for (const e of Deno.readDirSync(tmp)) {
      if (e.name.startsWith(`${tag}-`)) Deno.removeSync(`${tmp}/${e.name}`, { recursive: true });
    }
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

/** Sends `sig` to `pid`; false when there is no such process (any more). */
const signal = (pid: number, sig: Deno.Signal) => {
  try {
    Deno.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
};

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
