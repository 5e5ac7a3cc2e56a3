/**
 * dpdk-testpmd for the tests and the bench: the demo's driver (src/demo/testpmd.ts) plus what
 * only they use.
 *
 * @module
 */

import type { TestPmd } from "../../src/demo/testpmd.ts";

export { type PortTotals, removeDpdkFiles, stopChild, TestPmd, type TestPmdOptions } from "../../src/demo/testpmd.ts";

/** Each port's hardware-level RX packet count (`show port stats all`), in port order. */
export async function rxPackets(pmd: TestPmd): Promise<number[]> {
  const last = pmd.options.vdevs.length - 1;
  const text = await pmd.command(
    "show port stats all",
    new RegExp(`NIC statistics for port ${last}[\\s\\S]*?testpmd> `),
    5000,
  );
  const out: number[] = [];
  for (const x of text.matchAll(/NIC statistics for port (\d+)\s+#+\s*\n\s*RX-packets:\s+(\d+)/g)) {
    out[Number(x[1])] = Number(x[2]);
  }
  return out;
}

/** The hugepage files of the DPDK process with file prefix `prefix` (DPDK names them `<prefix>map_<n>`). */
export function hugepageFiles(prefix: string, hugeDir = "/dev/hugepages"): string[] {
  return findHugepageFiles(`${prefix}map_*`, prefix, hugeDir);
}

/** The hugepage files of every DPDK process whose prefix starts with `tag` (a bench run's). */
export function hugepageFilesUnder(tag: string, hugeDir = "/dev/hugepages"): string[] {
  return findHugepageFiles(`${tag}*`, tag, hugeDir);
}

/** find(1) in `hugeDir` for `pattern` (Deno reads /dev only with --allow-all). */
function findHugepageFiles(pattern: string, prefix: string, hugeDir: string): string[] {
  if (!/^[A-Za-z0-9_-]+$/.test(prefix)) throw new Error(`unsafe DPDK file prefix '${prefix}'`);
  const out = new Deno.Command("find", { args: [hugeDir, "-maxdepth", "1", "-name", pattern], stderr: "null" })
    .outputSync();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "");
}

/**
 * The forwarding cores' busy cycles and packets received since `start` (testpmd started with
 * `--record-core-cycles`; `show fwd stats all`: cycles of bursts that received packets).
 */
export async function coreCycles(pmd: TestPmd): Promise<{ cycles: number; pkts: number }> {
  const text = await pmd.command("show fwd stats all", /CPU cycles\/packet=.*\n|total cycles=\d+.*\n/, 5000);
  const m = /total cycles=(\d+) \/ total \w+ packets=(\d+)/.exec(text);
  if (!m) throw new Error(`testpmd printed no cycles (started without --record-core-cycles?):\n${text.slice(-800)}`);
  return { cycles: Number(m[1]), pkts: Number(m[2]) };
}
