/**
 * `vio4wd pin`: print the relay-to-worker-CPU map, or move relays with `--virtio-cpu=R:C1,C2`
 * (the original core pinner's syntax: C1 is the VM->VF CPU, C2 the VF->VM CPU) through the
 * core-scheduling endpoint.
 *
 * @module
 */

import { configOption, examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { multiple, optional } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import { string } from "@optique/core/valueparser";
import { request, resolveEndpoint } from "../control/client.ts";
import { cpuOf } from "./stats.ts";
import {
  CoreSchedRequest_Op as Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status as SchedStatus,
  CoreSchedResponseSchema,
  type RelayState,
  StatsRequestSchema,
  StatsResponse_Status as StatsStatus,
  StatsResponseSchema,
} from "../control/gen/virtioforwarder_pb.ts";

/** The `pin` command's parser. */
export const pinCommand = command(
  "pin",
  object({
    action: constant("pin" as const),
    virtioCpu: multiple(
      option("--virtio-cpu", string({ metavar: "R:C1,C2" }), {
        description: message`Move relay R: VM->VF to CPU C1, VF->VM to CPU C2 (repeatable).`,
      }),
    ),
    json: optional(flag("--json", { description: message`Print the worker CPUs and the map as JSON.` })),
    zmqEp: optional(
      option("--zmq-ep", "--sched-ep", string({ metavar: "EP" }), {
        description:
          message`Core-scheduling endpoint (default: the config's, else ipc:///var/run/virtio-forwarder/core_sched).`,
      }),
    ),
    statsEp: optional(
      option("--stats-ep", string({ metavar: "EP" }), { description: message`Stats endpoint (for the current map).` }),
    ),
    config: configOption(),
  }),
  {
    brief: message`Show or change which worker CPU serves each relay direction.`,
    description:
      message`Without --virtio-cpu: print the worker CPUs and the relays on each (VM->VF and VF->VM columns). With it: move the relays, then print the new map. Needs VIO4WD_CORE_SCHED_ENABLE=true in the daemon.`,
    footer: examples(
      "vio4wd pin",
      "vio4wd pin --virtio-cpu=0:2,1 --virtio-cpu=3:1,1",
    ),
  },
);

/** Parsed `pin` arguments. */
export interface PinArgs {
  virtioCpu: readonly string[];
  json?: boolean;
  zmqEp?: string;
  statsEp?: string;
  config?: string;
}

/** `R:C1,C2` (C1 = VM->VF, C2 = VF->VM), or null when malformed. */
export function parseVirtioCpu(s: string): { relay: number; vmToVf: number; vfToVm: number } | null {
  const m = /^(\d+):(\d+),(\d+)$/.exec(s);
  return m ? { relay: Number(m[1]), vmToVf: Number(m[2]), vfToVm: Number(m[3]) } : null;
}

/** The core pinner's map: per worker a VM->VF and a VF->VM column of relay ids. */
export function formatCoreMap(workers: readonly number[], relays: readonly RelayState[]): string {
  const cols = workers.map((w) => ({
    vmToVf: relays.filter((r) => cpuOf(r, "vmToVf") === w).map((r) => r.id),
    vfToVm: relays.filter((r) => cpuOf(r, "vfToVm") === w).map((r) => r.id),
  }));
  const rule = "=".repeat(8 * workers.length + 3 * (workers.length - 1));
  const id = (n: number | undefined) => n === undefined ? "  " : String(n).padStart(2, "0");
  const lines = [rule, workers.map((w) => `== ${String(w).padStart(2, "0")} ==   `).join("").trimEnd()];
  const rows = Math.max(0, ...cols.map((c) => Math.max(c.vmToVf.length, c.vfToVm.length)));
  for (let i = 0; i < rows; i++) {
    lines.push(cols.map((c) => `${id(c.vmToVf[i])}    ${id(c.vfToVm[i])}   `).join("").trimEnd());
  }
  lines.push(rule);
  return lines.join("\n");
}

/** Runs `vio4wd pin`; returns the exit status. */
export async function runPin(a: PinArgs): Promise<number> {
  const moves = a.virtioCpu.map((s) => [s, parseVirtioCpu(s)] as const);
  const bad = moves.find(([, m]) => m === null);
  if (bad) {
    console.error(`vio4wd pin: --virtio-cpu '${bad[0]}': expected R:C1,C2 (C1 = VM->VF CPU, C2 = VF->VM CPU)`);
    return 2;
  }
  const sched = await resolveEndpoint("coreSched", a.zmqEp, a.config);
  const stats = await resolveEndpoint("stats", a.statsEp, a.config);
  const current = async () => {
    const s = await request(stats, StatsRequestSchema, { includeInactive: false, delay: 0 }, StatsResponseSchema);
    if (s.status !== StatsStatus.OK) throw new Error(`stats request answered ${StatsStatus[s.status]}`);
    return s.relay;
  };
  const cores = await request(sched, CoreSchedRequestSchema, { op: Op.GET_EAL_CORES }, CoreSchedResponseSchema);
  if (cores.status !== SchedStatus.OK) {
    console.error(`vio4wd pin: GET_EAL_CORES answered ERROR (${cores.errorCodeSource ?? "no detail"})`);
    return 1;
  }
  const workers = cores.ealCores;
  let status = 0;
  if (moves.length > 0) {
    for (const [, m] of moves) console.log(`Setting relay ${m!.relay}=${m!.vmToVf},${m!.vfToVm}`);
    const res = await request(sched, CoreSchedRequestSchema, {
      op: Op.UPDATE,
      relayCpuMap: moves.map(([, m]) => ({ relayNumber: m!.relay, vf2virtioCpu: m!.vfToVm, virtio2vfCpu: m!.vmToVf })),
    }, CoreSchedResponseSchema);
    const ok = res.status === SchedStatus.OK;
    console.log(`Scheduler response: ${ok ? "OK" : "ERROR"}`);
    if (!ok) {
      console.error(
        `vio4wd pin: refused (a relay id out of range, or CPUs not among the workers ${
          workers.join(",")
        }; see the daemon's log)`,
      );
      status = 1;
    }
  }
  const relays = await current();
  if (status === 0) {
    // the daemon answers OK for a relay it cannot move yet (no VM): say so, and what it has now
    for (const [, m] of moves) {
      const r = relays.find((x) => x.id === m!.relay);
      if (!r) {
        console.error(
          `vio4wd pin: relay ${m!.relay} not moved: its VM is not connected (a relay's directions move only while ` +
            "its VM is there; pin it in VIRTIOFWD_CPU_PINS to place it when it comes)",
        );
        status = 1;
      } else if (cpuOf(r, "vmToVf") !== m!.vmToVf || cpuOf(r, "vfToVm") !== m!.vfToVm) {
        console.error(
          `vio4wd pin: relay ${m!.relay} is on ${cpuOf(r, "vmToVf")},${cpuOf(r, "vfToVm")}, not ${m!.vmToVf},${
            m!.vfToVm
          } as asked (see the daemon's log)`,
        );
        status = 1;
      }
    }
  }
  if (a.json) {
    console.log(JSON.stringify({
      workers,
      relays: relays.map((r) => ({
        id: r.id,
        vf_to_vm: cpuOf(r, "vfToVm") ?? null,
        vm_to_vf: cpuOf(r, "vmToVf") ?? null,
      })),
    }));
  } else {
    console.log(moves.length > 0 ? "New worker core mapping:" : "Worker cores affinities:");
    console.log(formatCoreMap(workers, relays));
  }
  return status;
}
