import { assert, assertEq, assertJsonEq } from "../../tests/rigs/assert.ts";
import { caseName, CASES, MANY_RELAYS, MAX_ETHPORTS, SIZES, withVariants } from "./cases.ts";
import {
  buildResult,
  emptySamples,
  markdown,
  median,
  percentile,
  ratioOfMedians,
  variantFigures,
  variantLines,
} from "./report.ts";

Deno.test("bench report: median of odd and even counts, unsorted input, and no samples is an error", () => {
  assertEq(median([3, 1, 2]), 2, "odd count");
  assertEq(median([4, 1, 3, 2]), 2.5, "even count: mean of the middle two");
  assertEq(median([7]), 7, "one sample");
  let threw = false;
  try {
    median([]);
  } catch {
    threw = true;
  }
  assertEq(threw, true, "no samples");
});

Deno.test("bench report: percentile is the nearest rank below, clamped to the largest", () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assertEq(percentile(xs, 0.99), 100, "p99 of 1..100");
  assertEq(percentile(xs, 0.5), 51, "p50 of 1..100");
  assertEq(percentile([5], 0.99), 5, "one sample");
});

Deno.test("bench report: ratios compare medians, not means, rounded to 3 decimals", () => {
  // an outlier moves the mean of a, not its median
  assertEq(ratioOfMedians([1, 1, 100], [2, 2, 2]), 0.5, "median ratio");
  assertEq(ratioOfMedians([2], [3]), 0.667, "rounded");
});

Deno.test("bench report: the result carries every JSON key the README and scripts read, targets say whether they are met, and the markdown shows them", () => {
  const samples = emptySamples();
  CASES.forEach((c, i) =>
    SIZES.forEach((s) => {
      samples.mpps.set(`${caseName(c)}_${s}`, [i + 1, i + 2, i + 3]);
      samples.cycles.set(`${caseName(c)}_${s}`, [(i + 1) * 100, (i + 2) * 100, (i + 3) * 100]);
      samples.perGenerator.set(`${caseName(c)}_${s}`, [i + 10, i + 9, i + 11]);
    })
  );
  samples.kept = 48;
  samples.discarded.set("the relay dropped 3 packets", 2);
  const r = buildResult(samples, { daemon_rss_mib: 42 }, {
    rounds: 3,
    seconds: 1,
    date: "2026-12-02T00:00:00Z",
    host: { cpus: 2, kernel: "6.1" },
  });
  // testpmd (case 0) median 2, vio4wd (case 1) median 3
  assertEq(r.ratio_vio4wd_testpmd_64, 1.5, "vio4wd / testpmd at 64 B");
  assertEq(r.cycles_per_pkt_testpmd_64, 200, "testpmd cycles per packet: the median");
  assertEq(r.cycles_per_pkt_vio4wd_64, 300, "vio4wd cycles per packet");
  assertEq(r.ratio_cycles_vio4wd_testpmd_64, 1.5, "cycle ratio of medians");
  const i32 = CASES.findIndex((c) => c.kind === "vio4wd" && c.relays === MAX_ETHPORTS);
  assertEq(r.cycles_per_pkt_vio4wd_32relays_64, (i32 + 2) * 100, "32 relays");
  assertEq(r[`vio4wd_${MANY_RELAYS}_relays_64_mpps`], 5, "a case's median");
  assertEq(r.daemon_rss_mib, 42, "other figures are carried");
  assertEq(r.windows_kept, 48, "windows kept");
  assertEq(r.windows_discarded, 2, "windows discarded");
  const targets = r.targets as Record<string, { met: boolean; per_generator?: number }>;
  assertEq(targets.ratio_cycles_vio4wd_testpmd_64.met, false, "1.5 > 0.9: not met");
  assertEq(targets.ratio_cycles_vio4wd_testpmd_64.per_generator, 1.1, "read against the generator: 11 / 10");
  assertEq(
    targets.ratio_cycles_32relays_vs_1_64.per_generator,
    undefined,
    "32 relays: two generators, no such reading",
  );
  assertEq(r.per_generator_vio4wd_64, 11, "a case's median per generator cycle");
  const keys = Object.keys(r).filter((k) => k.startsWith("ratio_")).sort();
  assertJsonEq(keys, [
    "ratio_64_relays_vs_1",
    "ratio_cycles_32relays_vs_1_64",
    "ratio_cycles_vio4wd_ovs_1518",
    "ratio_cycles_vio4wd_ovs_64",
    "ratio_cycles_vio4wd_testpmd_1518",
    "ratio_cycles_vio4wd_testpmd_64",
    "ratio_idle_mode_vs_polling_1518",
    "ratio_idle_mode_vs_polling_64",
    "ratio_many_relays_vs_1_1518",
    "ratio_vio4wd_ovs_1518",
    "ratio_vio4wd_ovs_64",
    "ratio_vio4wd_testpmd_1518",
    "ratio_vio4wd_testpmd_64",
    "ratio_vio4wd_testpmd_vhost_vf_1518",
    "ratio_vio4wd_testpmd_vhost_vf_64",
  ], "ratio keys");
  for (const k of ["ovs_64", "ovs_1518", "testpmd_1518", "vio4wd_1518"]) {
    if (typeof r[`cycles_per_pkt_${k}`] !== "number") throw new Error(`no cycles_per_pkt_${k}`);
  }
  const md = markdown({ ...r, stats_64_relays_median_ms: 1, idle_worker_cpu_polling_pct: 100 }, CASES);
  if (!md.includes("| vio4wd / testpmd | 1.5 |")) throw new Error(`markdown:\n${md}`);
  if (!md.includes(`| vio4wd | 1 | memif | 300.0 | 300.0 | 3.000 | 3.000 |`)) throw new Error(`markdown rows:\n${md}`);
  if (!md.includes("| vio4wd testpmd 64 | 1.5 | 1.1 | <= 0.9 | no |")) throw new Error(`markdown targets:\n${md}`);
});

Deno.test("bench report: a missing case is an error naming it, not a NaN ratio", () => {
  let msg = "";
  try {
    const one = emptySamples();
    one.mpps.set("testpmd_64", [1]);
    one.cycles.set("testpmd_64", [1]);
    buildResult(one, {}, { rounds: 1, seconds: 1, date: "", host: { cpus: 2, kernel: "" } });
  } catch (e) {
    msg = (e as Error).message;
  }
  assertEq(msg, "no cycle samples of vio4wd_64", "error");
});

Deno.test("bench report: shim variants: each vio4wd polling case is followed by its variants, the steps give per-step medians and the other build a ratio against this one", () => {
  const steps = { label: "steps", path: "/s.so" } as const, other = { label: "against", path: "/o.so" } as const;
  const names = withVariants(CASES, [steps, other]).map(caseName);
  const i = names.indexOf("vio4wd");
  assertJsonEq(names.slice(i, i + 3), ["vio4wd", "vio4wd_steps", "vio4wd_against"], "variants follow their case");
  assert(!names.includes("vio4wd_idle_steps") && !names.includes("testpmd_steps"), "only vio4wd polling cases");
  const samples = emptySamples();
  samples.cycles.set("vio4wd_64", [300, 310, 290]);
  samples.cycles.set("vio4wd_against_64", [150, 160, 140]);
  samples.perGenerator.set("vio4wd_64", [1, 1, 1]);
  samples.perGenerator.set("vio4wd_against_64", [0.8, 0.9, 0.7]);
  samples.steps.set("vio4wd_steps_64", [{ vfRx: 10, loop: 5 }, { vfRx: 30, loop: 7 }, { vfRx: 20, loop: 6 }]);
  const f = variantFigures(samples);
  assertJsonEq(
    f,
    {
      steps_vio4wd_steps_64: { vfRx: 20, loop: 6 },
      ratio_cycles_against_vio4wd_64: 0.5,
      ratio_per_generator_against_vio4wd_64: 0.8,
    },
    "figures",
  );
  assertJsonEq(
    variantLines(f),
    [
      "vio4wd_steps_64: cycles/pkt by step: vfRx 20, loop 6",
      "vio4wd_64: the other build's cycles/pkt / this build's = 0.5",
      "vio4wd_64: the same, read against the generator = 0.8",
    ],
    "lines",
  );
});
