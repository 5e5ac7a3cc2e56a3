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
import { uniqueTag } from "../tests/rigs/daemon_process.ts";
import { type Case, caseName, CASES, IDLE_US, SIZES } from "./bench/cases.ts";
import { daemonFigures, idleWorkerCpu, measure, type Timing } from "./bench/measure.ts";
import { type RunningRelay, startRelay } from "./bench/relays.ts";
import { buildResult, emptySamples, markdown, writeResults } from "./bench/report.ts";

/** The bench's command line. */
export const benchParser = object({
  quick: optional(flag("--quick", { description: message`One short round (CI: proves the harness works).` })),
  rounds: withDefault(option("--rounds", integer({ min: 1, metavar: "N" }), { description: message`Rounds.` }), 5),
  seconds: withDefault(
    option("--seconds", integer({ min: 1, metavar: "S" }), { description: message`Seconds per sample.` }),
    3,
  ),
  only: withDefault(
    option("--only", string({ metavar: "NAME" }), { description: message`Only cases whose name contains NAME.` }),
    "",
  ),
  json: optional(flag("--json", { description: message`Print the result as JSON.` })),
  write: optional(flag("--write", { description: message`Write bench/results and the README block.` })),
});

const progress = (s: string) => console.error(`bench: ${s}`);

async function main(args: string[]): Promise<number> {
  const a = run(benchParser, { programName: "deno task bench", help: "option", args });
  const t: Timing = a.quick
    ? { rounds: 1, seconds: 1, warmup: 1, quick: true }
    : { rounds: a.rounds, seconds: a.seconds, warmup: 2, quick: false };
  const tag = uniqueTag("bench");
  const samples = emptySamples();
  const push = (m: Map<string, number[]>, key: string, v: number) => m.set(key, [...(m.get(key) ?? []), v]);
  /** One sample: a fresh relay (testpmd's relay does not survive its generator going away). */
  const sample = async (c: Case, size: number, round: number) => {
    const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
    let relay: RunningRelay | null = null;
    try {
      relay = await startRelay(c, dir, tag);
      const r = await measure(relay, size, t, tag);
      const key = `${caseName(c)}_${size}`;
      const line = `round ${round}/${t.rounds} ${caseName(c)} ${size} B: ${r.cyclesPerPkt.toFixed(1)} cycles/pkt, ` +
        `${r.mppsPerDir.toFixed(3)} Mpps per direction (VF->VM ${r.vfToVm.toFixed(3)}, VM->VF ${r.vmToVf.toFixed(3)})`;
      if (r.discarded) {
        samples.discarded.set(r.discarded, (samples.discarded.get(r.discarded) ?? 0) + 1);
        progress(`${line}: discarded, ${r.discarded}`);
        if (!t.quick) return; // --quick proves the harness: its one window counts whatever it was
      }
      if (!r.discarded) samples.kept++;
      push(samples.mpps, key, r.mppsPerDir);
      push(samples.cycles, key, r.cyclesPerPkt);
      progress(line);
    } finally {
      await relay?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
  const selected = CASES.filter((c) => caseName(c).includes(a.only));
  for (let round = 1; round <= t.rounds; round++) {
    for (const c of selected) for (const size of SIZES) await sample(c, size, round);
  }
  if (a.only) return 0; // a partial run: the figures below need every case
  progress("control plane and memory: 64 sockets, 31 VFs, stats latency, port add -> first packet");
  const daemon = await daemonFigures(tag, t);
  progress(`idle worker CPU: polling, and idle mode (${IDLE_US} us)`);
  const idle = {
    idle_worker_cpu_polling_pct: await idleWorkerCpu(tag, 0),
    idle_worker_cpu_idle_mode_pct: await idleWorkerCpu(tag, IDLE_US),
  };
  const result = buildResult(samples, { ...daemon, ...idle }, {
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

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
