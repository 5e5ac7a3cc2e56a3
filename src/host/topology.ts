/**
 * The host's CPUs from sysfs: which are online, which NUMA node each is on
 * (`devices/system/node/node<N>/cpulist`).
 *
 * @module
 */

import { parseKernelCpuList } from "../config/values.ts";
import { type Config, physicalCpus } from "../config/config.ts";

/** CPUs the configuration runs DPDK on that are not online, and what to set instead; null when all are (or sysfs is unreadable). */
export function offlineCpus(c: Config, root: string): { missing: number[]; online: number[]; fix: string } | null {
  let online: number[];
  try {
    online = parseKernelCpuList(Deno.readTextFileSync(`${root}/devices/system/cpu/online`));
  } catch {
    return null;
  }
  const missing = physicalCpus(c).filter((x) => !online.includes(x));
  if (missing.length === 0) return null;
  const spare = online.filter((x) => x !== c.masterLcore);
  const fix = c.ealLcores
    ? `map the lcores in VIO4WD_EAL_LCORES to online CPUs (${online.join(",")})`
    : `set VIRTIOFWD_CPU_MASK to online CPUs other than the main lcore ${c.masterLcore} (e.g. ${
      spare.join(",") || "none: this host has no CPU to spare"
    })`;
  return { missing, online, fix };
}

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
