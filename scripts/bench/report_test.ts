import { assertEq, assertJsonEq } from "../../tests/rigs/assert.ts";
import { caseName, CASES, MANY_RELAYS, SIZES } from "./cases.ts";
import { buildResult, markdown, median, percentile, ratioOfMedians } from "./report.ts";

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

Deno.test("bench report: the result carries every JSON key the README and scripts read, and the markdown shows them", () => {
  const samples = new Map<string, number[]>();
  CASES.forEach((c, i) => SIZES.forEach((s) => samples.set(`${caseName(c)}_${s}`, [i + 1, i + 2, i + 3])));
  const r = buildResult(samples, { daemon_rss_mib: 42 }, {
    rounds: 3,
    seconds: 1,
    date: "2026-12-02T00:00:00Z",
    host: { cpus: 2, kernel: "6.1" },
  });
  // testpmd (case 0) median 2, vio4wd (case 1) median 3
  assertEq(r.ratio_vio4wd_testpmd_64, 1.5, "vio4wd / testpmd at 64 B");
  assertEq(r[`vio4wd_${MANY_RELAYS}_relays_64_mpps`], 5, "a case's median");
  assertEq(r.daemon_rss_mib, 42, "other figures are carried");
  const keys = Object.keys(r).filter((k) => k.startsWith("ratio_")).sort();
  assertJsonEq(keys, [
    "ratio_64_relays_vs_1",
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
  const md = markdown({ ...r, stats_64_relays_median_ms: 1, idle_worker_cpu_polling_pct: 100 }, CASES);
  if (!md.includes("| vio4wd / testpmd | 1.5 |")) throw new Error(`markdown:\n${md}`);
  if (!md.includes(`| vio4wd | 1 | memif | 3.000 | 3.000 |`)) throw new Error(`markdown rows:\n${md}`);
});

Deno.test("bench report: a missing case is an error naming it, not a NaN ratio", () => {
  let msg = "";
  try {
    buildResult(new Map([["testpmd_64", [1]]]), {}, { rounds: 1, seconds: 1, date: "", host: { cpus: 2, kernel: "" } });
  } catch (e) {
    msg = (e as Error).message;
  }
  assertEq(msg, "no samples of vio4wd_64", "error");
});
