/**
 * The bench's arithmetic and report: medians, percentiles, ratios of medians, the result object
 * (its JSON keys are what the README and scripts read), the markdown table and the files written.
 *
 * @module
 */

import { type Case, caseName, IDLE_US, MANY_RELAYS, MAX_ETHPORTS } from "./cases.ts";

/** The median of `xs` (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of no samples");
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The `p` quantile (0-1) of `xs`, nearest rank below. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) throw new Error("percentile of no samples");
  return [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
}

/** median(a) / median(b), to 3 decimals. */
export function ratioOfMedians(a: readonly number[], b: readonly number[]): number {
  return Math.round(median(a) / median(b) * 1000) / 1000;
}

/** What the rounds collected: per `<case>_<size>`, Mpps and cycles per packet of kept windows. */
export interface Samples {
  mpps: Map<string, number[]>;
  cycles: Map<string, number[]>;
  /** Per `<case>_steps_<size>`: each kept window's cycles per packet by step. */
  steps: Map<string, Record<string, number>[]>;
  /**
   * Per `<case>_<size>`: each window's relay cycles per packet over the generator's in the same
   * window. The generator does the same work whichever relay it drives, so this moves much less
   * with the machine than cycles per packet do (on a virtual machine those swing 2-4x within a
   * minute, generator and relay together).
   */
  perGenerator: Map<string, number[]>;
  kept: number;
  /** Discarded windows by reason. */
  discarded: Map<string, number>;
}

export const emptySamples = (): Samples => ({
  mpps: new Map(),
  cycles: new Map(),
  steps: new Map(),
  perGenerator: new Map(),
  kept: 0,
  discarded: new Map(),
});

const round1 = (x: number) => Math.round(x * 10) / 10;

/** A window that passed measure()'s checks. */
export interface KeptWindow {
  /** `<case>_<size>` */
  key: string;
  mpps: number;
  cycles: number;
  /** The generator's cycles per packet in the same window (Window.generatorCyclesPerPkt). */
  generator: number;
  steps: Record<string, number> | null;
}

/** The samples of kept windows, by `<case>_<size>`; `discarded`: the windows measure() refused. */
export function samplesOf(windows: readonly KeptWindow[], discarded: Map<string, number>): Samples {
  const s: Samples = { ...emptySamples(), discarded: new Map(discarded), kept: windows.length };
  const push = <T>(m: Map<string, T[]>, key: string, v: T) => m.set(key, [...(m.get(key) ?? []), v]);
  for (const w of windows) {
    push(s.mpps, w.key, w.mpps);
    push(s.cycles, w.key, w.cycles);
    if (w.generator > 0) push(s.perGenerator, w.key, w.cycles / w.generator);
    if (w.steps) push(s.steps, w.key, w.steps);
  }
  return s;
}

/**
 * What the shim variants measured (see ShimVariant): per `<case>_steps_<size>`, the median cycles
 * per packet of each step (`steps_<key>`); per `<case>_against_<size>`, its cycles per packet over
 * the same case on the checked-out build (`ratio_cycles_against_<key>`, ratio of medians: below 1,
 * the other build costs less).
 */
export function variantFigures(samples: Samples): Record<string, number | Record<string, number>> {
  const out: Record<string, number | Record<string, number>> = {};
  for (const [key, windows] of samples.steps) {
    if (windows.length === 0) continue;
    const steps = Object.keys(windows[0]);
    out[`steps_${key}`] = Object.fromEntries(steps.map((s) => [s, round1(median(windows.map((w) => w[s])))]));
  }
  for (const [key, cycles] of samples.cycles) {
    const baseKey = key.replace("_against_", "_"), base = samples.cycles.get(baseKey);
    if (!key.includes("_against_") || !base?.length || !cycles.length) continue;
    out[`ratio_cycles_against_${baseKey}`] = ratioOfMedians(cycles, base);
    const g = samples.perGenerator.get(key), gBase = samples.perGenerator.get(baseKey);
    if (g?.length && gBase?.length) out[`ratio_per_generator_against_${baseKey}`] = ratioOfMedians(g, gBase);
  }
  return out;
}

/** variantFigures() for people: one line each. */
export function variantLines(figures: Record<string, number | Record<string, number>>): string[] {
  return Object.entries(figures).map(([k, v]) =>
    typeof v === "number"
      ? k.startsWith("ratio_cycles_against_")
        ? `${k.replace("ratio_cycles_against_", "")}: the other build's cycles/pkt / this build's = ${v}`
        : `${k.replace("ratio_per_generator_against_", "")}: the same, read against the generator = ${v}`
      : `${k.replace("steps_", "")}: cycles/pkt by step: ${Object.entries(v).map(([s, c]) => `${s} ${c}`).join(", ")}`
  );
}

/** The issue's targets for cycles per packet: ratio key, at most this. */
export const CYCLE_TARGETS: Record<string, number> = {
  ratio_cycles_vio4wd_testpmd_64: 0.9,
  ratio_cycles_vio4wd_testpmd_1518: 1.0,
  ratio_cycles_vio4wd_ovs_64: 0.6,
  ratio_cycles_vio4wd_ovs_1518: 0.6,
  ratio_cycles_32relays_vs_1_64: 1.1,
};

/** The result of a full run: cycle ratios first, then Mpps ratios, each case's medians, the other figures. */
export function buildResult(
  samples: Samples,
  figures: Record<string, number>,
  run: { rounds: number; seconds: number; date: string; host: { cpus: number; kernel: string } },
): Record<string, unknown> {
  const from = (m: Map<string, number[]>, what: string) => (key: string) => {
    const v = m.get(key);
    if (!v || v.length === 0) throw new Error(`no ${what} of ${key}`);
    return v;
  };
  const get = from(samples.mpps, "samples"), cyc = from(samples.cycles, "cycle samples");
  const ratio = (a: string, b: string) => ratioOfMedians(get(a), get(b));
  const cratio = (a: string, b: string) => ratioOfMedians(cyc(a), cyc(b));
  const gratio = (a: string, b: string) => {
    const x = samples.perGenerator.get(a), y = samples.perGenerator.get(b);
    return x?.length && y?.length ? ratioOfMedians(x, y) : undefined; // a generator that counted nothing
  };
  // The same ratios with each window read against its generator (one generator per relay compared;
  // 32 relays take two generators sharing a CPU, so that ratio has no such reading).
  const perGeneratorRatios: Record<string, number | undefined> = {
    ratio_cycles_vio4wd_testpmd_64: gratio("vio4wd_64", "testpmd_64"),
    ratio_cycles_vio4wd_testpmd_1518: gratio("vio4wd_1518", "testpmd_1518"),
    ratio_cycles_vio4wd_ovs_64: gratio("vio4wd_vhost_vf_64", "ovs_vhost_vf_64"),
    ratio_cycles_vio4wd_ovs_1518: gratio("vio4wd_vhost_vf_1518", "ovs_vhost_vf_1518"),
  };
  const cycleRatios = {
    ratio_cycles_vio4wd_testpmd_64: cratio("vio4wd_64", "testpmd_64"),
    ratio_cycles_vio4wd_testpmd_1518: cratio("vio4wd_1518", "testpmd_1518"),
    ratio_cycles_vio4wd_ovs_64: cratio("vio4wd_vhost_vf_64", "ovs_vhost_vf_64"),
    ratio_cycles_vio4wd_ovs_1518: cratio("vio4wd_vhost_vf_1518", "ovs_vhost_vf_1518"),
    ratio_cycles_32relays_vs_1_64: cratio(`vio4wd_${MAX_ETHPORTS}_relays_64`, "vio4wd_64"),
  };
  return {
    ...cycleRatios,
    targets: Object.fromEntries(
      Object.entries(CYCLE_TARGETS).map(([k, max]) => {
        const v = cycleRatios[k as keyof typeof cycleRatios], g = perGeneratorRatios[k];
        return [k, { value: v, ...(g !== undefined ? { per_generator: g } : {}), at_most: max, met: v <= max }];
      }),
    ),
    cycles_per_pkt_testpmd_64: round1(median(cyc("testpmd_64"))),
    cycles_per_pkt_testpmd_1518: round1(median(cyc("testpmd_1518"))),
    cycles_per_pkt_vio4wd_64: round1(median(cyc("vio4wd_64"))),
    cycles_per_pkt_vio4wd_1518: round1(median(cyc("vio4wd_1518"))),
    cycles_per_pkt_ovs_64: round1(median(cyc("ovs_vhost_vf_64"))),
    cycles_per_pkt_ovs_1518: round1(median(cyc("ovs_vhost_vf_1518"))),
    cycles_per_pkt_vio4wd_32relays_64: round1(median(cyc(`vio4wd_${MAX_ETHPORTS}_relays_64`))),
    windows_kept: samples.kept,
    windows_discarded: [...samples.discarded.values()].reduce((a, b) => a + b, 0),
    windows_discarded_why: Object.fromEntries(samples.discarded),
    ratio_vio4wd_testpmd_64: ratio("vio4wd_64", "testpmd_64"),
    ratio_vio4wd_testpmd_1518: ratio("vio4wd_1518", "testpmd_1518"),
    ratio_vio4wd_ovs_64: ratio("vio4wd_vhost_vf_64", "ovs_vhost_vf_64"),
    ratio_vio4wd_ovs_1518: ratio("vio4wd_vhost_vf_1518", "ovs_vhost_vf_1518"),
    ratio_vio4wd_testpmd_vhost_vf_64: ratio("vio4wd_vhost_vf_64", "testpmd_vhost_vf_64"),
    ratio_vio4wd_testpmd_vhost_vf_1518: ratio("vio4wd_vhost_vf_1518", "testpmd_vhost_vf_1518"),
    ratio_64_relays_vs_1: ratio(`vio4wd_${MANY_RELAYS}_relays_64`, "vio4wd_64"),
    ratio_many_relays_vs_1_1518: ratio(`vio4wd_${MANY_RELAYS}_relays_1518`, "vio4wd_1518"),
    ratio_idle_mode_vs_polling_64: ratio("vio4wd_idle_64", "vio4wd_64"),
    ratio_idle_mode_vs_polling_1518: ratio("vio4wd_idle_1518", "vio4wd_1518"),
    many_relays: MANY_RELAYS,
    rounds: run.rounds,
    seconds_per_sample: run.seconds,
    ...Object.fromEntries([...samples.cycles].map(([k, v]) => [`cycles_per_pkt_${k}`, round1(median(v))])),
    ...Object.fromEntries(
      [...samples.perGenerator].map(([k, v]) => [`per_generator_${k}`, Math.round(median(v) * 1000) / 1000]),
    ),
    ...Object.fromEntries([...samples.mpps].map(([k, v]) => [`${k}_mpps`, Math.round(median(v) * 1000) / 1000])),
    ...variantFigures(samples),
    ...figures,
    date: run.date,
    host: run.host,
  };
}

/** The result as the README's markdown block. */
export function markdown(r: Record<string, unknown>, cases: readonly Case[]): string {
  const f = (k: string) => (r[k] as number).toFixed(3);
  const c1 = (k: string) => r[k] === undefined ? "-" : (r[k] as number).toFixed(1);
  const rows = cases.map((c) =>
    `| ${c.kind}${c.idleUs ? ` (idle mode ${c.idleUs} us)` : ""} | ${c.relays} | ${c.vf} | ${
      c1(`cycles_per_pkt_${caseName(c)}_64`)
    } | ${c1(`cycles_per_pkt_${caseName(c)}_1518`)} | ${f(`${caseName(c)}_64_mpps`)} | ${
      f(`${caseName(c)}_1518_mpps`)
    } |`
  );
  const targets = r.targets as Record<string, { value: number; per_generator?: number; at_most: number; met: boolean }>;
  return [
    `PVP loop (medians of ${r.rounds} rounds, ${r.seconds_per_sample} s each; generator on CPU 0, relay on CPU 1; ` +
    `vhost-user VM). Cycles per packet: the relay core's busy cycles per packet received, by each relay's own ` +
    `accounting (testpmd --record-core-cycles, OVS pmd-stats-show, vio4wd's workers); Mpps per direction at the ` +
    `generator. Windows kept ${r.windows_kept}, discarded ${r.windows_discarded}` +
    (r.windows_discarded ? ` (${JSON.stringify(r.windows_discarded_why)})` : "") + ".",
    "",
    "| relay | relays | VF stand-in | cycles/pkt 64 B | cycles/pkt 1518 B | Mpps 64 B | Mpps 1518 B |",
    "|---|---:|---|---:|---:|---:|---:|",
    ...rows,
    "",
    "| cycles per packet | ratio | ratio per generator cycle | target | met |",
    "|---|---:|---:|---:|---|",
    ...Object.entries(targets).map(([k, t]) =>
      `| ${k.replace("ratio_cycles_", "").replaceAll("_", " ")} | ${t.value} | ${
        t.per_generator ?? "-"
      } | <= ${t.at_most} | ${t.met ? "yes" : "no"} |`
    ),
    "",
    "Ratio per generator cycle: each window's relay cycles per packet over the generator's in the same window " +
    "(the generator's work is the same whichever relay it drives; on this virtual machine cycles per packet " +
    "swing 2-4x within a minute, generator and relay together), medians compared.",
    "",
    "| Mpps ratio | 64 B | 1518 B |",
    "|---|---:|---:|",
    `| vio4wd / testpmd | ${r.ratio_vio4wd_testpmd_64} | ${r.ratio_vio4wd_testpmd_1518} |`,
    `| vio4wd / testpmd (vhost VF) | ${r.ratio_vio4wd_testpmd_vhost_vf_64} | ${r.ratio_vio4wd_testpmd_vhost_vf_1518} |`,
    `| vio4wd / OVS-DPDK (vhost VF) | ${r.ratio_vio4wd_ovs_64} | ${r.ratio_vio4wd_ovs_1518} |`,
    `| vio4wd ${r.many_relays} relays / 1 relay | ${r.ratio_64_relays_vs_1} | ${r.ratio_many_relays_vs_1_1518} |`,
    `| vio4wd idle mode / polling | ${r.ratio_idle_mode_vs_polling_64} | ${r.ratio_idle_mode_vs_polling_1518} |`,
    "",
    `Daemon with 64 sockets and 31 VFs: ready in ${r.daemon_start_64_sockets_31_vfs_ms} ms, ` +
    `${r.hugepages_64_sockets_31_vfs_mib} MiB of hugepages, RSS ${r.daemon_rss_mib} MiB; ` +
    `stats for 64 relays ${r.stats_64_relays_median_ms} ms median (p99 ${r.stats_64_relays_p99_ms} ms); ` +
    `port add -> first packet forwarded ${r.port_add_to_first_packet_ms} ms (median of 5). ` +
    `A worker with a connected relay and no traffic: ${r.idle_worker_cpu_polling_pct}% of a CPU polling, ` +
    `${r.idle_worker_cpu_idle_mode_pct}% in idle mode (${IDLE_US} us).`,
    "",
    "Traffic gap under a QEMU guest pinged every 1 ms (longest silence; the guest's carrier changes):",
    "",
    "| socket mode | `vio4wd upgrade` | restart |",
    "|---|---:|---:|",
    ...["server", "client"].map((m) =>
      `| ${m} | ${r[`upgrade_gap_ms_${m}_mode`]} ms (${r[`upgrade_carrier_changes_${m}_mode`]}) | ` +
      `${r[`restart_gap_ms_${m}_mode`]} ms (${r[`restart_carrier_changes_${m}_mode`]}) |`
    ),
    ...variantBlock(r),
  ].join("\n");
}

/** The shim variants' lines of a result (none without --steps or --against). */
function variantBlock(r: Record<string, unknown>): string[] {
  const figures = Object.fromEntries(
    Object.entries(r).filter(([k]) => /^(steps_|ratio_cycles_against_|ratio_per_generator_against_)/.test(k)),
  ) as Record<string, number | Record<string, number>>;
  const lines = variantLines(figures);
  return lines.length ? ["", "Shim variants (medians):", "", ...lines.map((l) => `- ${l}`)] : [];
}

/** Writes bench/results/<day>.md and .json and the README's bench block. */
export async function writeResults(md: string, result: Record<string, unknown>): Promise<void> {
  const root = new URL("../..", import.meta.url).pathname;
  const day = (result.date as string).slice(0, 10);
  await Deno.mkdir(`${root}bench/results`, { recursive: true });
  await Deno.writeTextFile(`${root}bench/results/${day}.md`, `# Benchmark ${day}\n\n${md}\n`);
  await Deno.writeTextFile(`${root}bench/results/${day}.json`, JSON.stringify(result, null, 2) + "\n");
  const readme = await Deno.readTextFile(`${root}README.md`);
  const start = "<!-- bench:start -->", end = "<!-- bench:end -->";
  const i = readme.indexOf(start), j = readme.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README.md has no ${start} ... ${end} block to update`);
  const block = `${start}\nLatest (bench/results/${day}.md):\n\n${md}\n${end}`;
  await Deno.writeTextFile(`${root}README.md`, readme.slice(0, i) + block + readme.slice(j + end.length));
  // The project's formatter owns markdown and JSON layout: leave the files as `dprint check` wants them.
  await new Deno.Command(`${root}node_modules/.bin/dprint`, {
    args: ["fmt", `${root}README.md`, `${root}bench/results/${day}.md`, `${root}bench/results/${day}.json`],
    cwd: root,
    stdout: "null",
  }).output();
  console.error(`bench: wrote bench/results/${day}.md, .json and the README block`);
}
