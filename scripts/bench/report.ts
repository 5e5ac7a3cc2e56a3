/**
 * The bench's arithmetic and report: medians, percentiles, ratios of medians, the result object
 * (its JSON keys are what the README and scripts read), the markdown table and the files written.
 *
 * @module
 */

import { type Case, caseName, IDLE_US, MANY_RELAYS } from "./cases.ts";

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

/** The result of a full run: ratios first, then each case's median, then the other figures. */
export function buildResult(
  samples: ReadonlyMap<string, number[]>,
  figures: Record<string, number>,
  run: { rounds: number; seconds: number; date: string; host: { cpus: number; kernel: string } },
): Record<string, unknown> {
  const get = (key: string) => {
    const v = samples.get(key);
    if (!v) throw new Error(`no samples of ${key}`);
    return v;
  };
  const ratio = (a: string, b: string) => ratioOfMedians(get(a), get(b));
  return {
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
    ...Object.fromEntries([...samples].map(([k, v]) => [`${k}_mpps`, Math.round(median(v) * 1000) / 1000])),
    ...figures,
    date: run.date,
    host: run.host,
  };
}

/** The result as the README's markdown block. */
export function markdown(r: Record<string, unknown>, cases: readonly Case[]): string {
  const f = (k: string) => (r[k] as number).toFixed(3);
  const rows = cases.map((c) =>
    `| ${c.kind}${c.idleUs ? ` (idle mode ${c.idleUs} us)` : ""} | ${c.relays} | ${c.vf} | ${
      f(`${caseName(c)}_64_mpps`)
    } | ${f(`${caseName(c)}_1518_mpps`)} |`
  );
  return [
    `PVP loop, Mpps per direction (medians of ${r.rounds} rounds, ${r.seconds_per_sample} s each; ` +
    `generator on CPU 0, relay on CPU 1; memif VF, vhost-user VM)`,
    "",
    "| relay | relays | VF stand-in | 64 B | 1518 B |",
    "|---|---:|---|---:|---:|",
    ...rows,
    "",
    "| ratio | 64 B | 1518 B |",
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
  ].join("\n");
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
