/**
 * Which NUMA node each CPU is on, from sysfs (`devices/system/node/node<N>/cpulist`).
 *
 * @module
 */

import { parseKernelCpuList } from "../config/values.ts";

/** CPU -> NUMA node; empty when sysfs has no node directories (then nothing is preferred). */
export function cpuNodes(root: string): Map<number, number> {
  const out = new Map<number, number>();
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(`${root}/devices/system/node`)];
  } catch {
    return out;
  }
  for (const e of entries) {
    const m = /^node(\d+)$/.exec(e.name);
    if (!m) continue;
    try {
      const cpus = parseKernelCpuList(Deno.readTextFileSync(`${root}/devices/system/node/${e.name}/cpulist`));
      for (const c of cpus) out.set(c, Number(m[1]));
    } catch { /* a node without CPUs */ }
  }
  return out;
}
