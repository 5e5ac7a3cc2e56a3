/**
 * `vio4wd doctor [--json]`: checks the host against the configuration and names each fix.
 *
 * @module
 */

import { configOption, examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, flag } from "@optique/core/primitives";
import { readConfig } from "../config/config.ts";
import { runChecks } from "../doctor/doctor.ts";
import { startupFindings } from "../doctor/refusals.ts";

/** The `doctor` command's parser. */
export const doctorCommand = command(
  "doctor",
  object({
    action: constant("doctor" as const),
    config: configOption(),
    json: optional(flag("--json", { description: message`Print the checks as JSON.` })),
  }),
  {
    brief: message`Check the host: hugepages, CPUs, VFIO, sockets, DPDK prefixes.`,
    description:
      message`Check what the daemon and VMs need under the configuration: 2 MiB hugepages reserved and free, hugetlbfs mounted, worker CPUs online and isolated, IOMMU/VFIO and each PCI VF's driver, socket directory and accounts, AppArmor/SELinux, other DPDK processes on the file prefix. Each problem comes with the command that fixes it. Exit 0 when nothing fails, 1 otherwise.`,
    footer: examples(
      "vio4wd doctor",
      "vio4wd doctor --json | jq '.checks[] | select(.status != \"ok\")'",
    ),
  },
);

/** Runs `vio4wd doctor`; returns the exit status. */
export async function runDoctor(a: { config?: string; json?: boolean }): Promise<number> {
  const loaded = await readConfig(a.config);
  const checks = runChecks(loaded.config);
  // what the daemon would refuse or ignore at start, besides the directories and accounts above
  for (const f of startupFindings(loaded)) {
    if (f.level === "error" && !/_EP=/.test(f.text)) continue;
    checks.push({
      name: "endpoints and settings",
      status: f.level === "error" ? "fail" : "warn",
      detail: f.text,
      fix: "see the detail",
    });
  }
  const failed = checks.filter((c) => c.status === "fail").length;
  if (a.json) {
    console.log(JSON.stringify({ ok: failed === 0, config: loaded.file, checks }, null, 2));
  } else {
    const mark = { ok: "ok  ", warn: "WARN", fail: "FAIL" };
    const width = Math.max(...checks.map((c) => c.name.length));
    for (const c of checks) {
      console.log(`${mark[c.status]}  ${c.name.padEnd(width)}  ${c.detail}`);
      if (c.fix) console.log(`      ${"".padEnd(width)}  fix: ${c.fix}`);
    }
    console.log(failed === 0 ? "\nall checks passed" : `\n${failed} check(s) failed`);
  }
  return failed === 0 ? 0 : 1;
}
