/**
 * The core scheduler's loop: polls the daemon's stats (active relays, 200 ms rate window) and
 * worker list, decides with {@link decide}, and applies a group's new mapping with one UPDATE.
 * When the daemon stops answering it says so once, keeps retrying every poll interval, and says
 * when it is back.
 *
 * @module
 */

import { RATE_WINDOW_MS } from "../control/stats.ts";
import { isFieldSet } from "@bufbuild/protobuf";
import { DaemonUnreachableError, request } from "../control/client.ts";
import {
  CoreSchedRequest_Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status,
  CoreSchedResponseSchema,
  type RelayState,
  RelayState_CPUSchema,
  StatsRequestSchema,
  StatsResponse_Status,
  StatsResponseSchema,
} from "../control/gen/virtioforwarder_pb.ts";
import { cpuNodes } from "../host/topology.ts";
import { sysfsRoot } from "../common/sysfs.ts";
import { errorText, type Logger } from "../common/log.ts";
import { decide, type GroupDecision, type RelayRates } from "./plan.ts";

/** How the scheduler runs. */
export interface SchedulerOptions {
  statsEp: string;
  schedEp: string;
  pollIntervalS: number;
  sensitivity: number;
  globalNumaOpt: boolean;
  /** Print the plan of one poll instead of applying it. */
  dryRun: boolean;
  /** Stop after this many polls (0: run until stopped). */
  polls: number;
}

/** Rates of the active relays that report both CPUs, as the planner takes them. */
export function relayRates(relays: readonly RelayState[]): RelayRates[] {
  const F = RelayState_CPUSchema.field;
  return relays.filter((r) => r.cpu && isFieldSet(r.cpu, F.vfToVm) && isFieldSet(r.cpu, F.vmToVf)).map((r) => ({
    id: r.id,
    socketId: r.socketId,
    vfToVmCpu: r.cpu!.vfToVm,
    vmToVfCpu: r.cpu!.vmToVf,
    pktRxFromVf: r.vfToVm!.pktRateRxFromVf,
    byteRxFromVf: r.vfToVm!.byteRateRxFromVf,
    pktTxToVm: r.vfToVm!.pktRateTxToVm,
    byteTxToVm: r.vfToVm!.byteRateTxToVm,
    pktRxFromVm: r.vmToVf!.pktRateRxFromVm,
    byteRxFromVm: r.vmToVf!.byteRateRxFromVm,
    pktTxToVf: r.vmToVf!.pktRateTxToVf,
    byteTxToVf: r.vmToVf!.byteRateTxToVf,
  }));
}

/**
 * CPU -> NUMA node from sysfs (VIO4WD_SYSFS_ROOT, as the daemon reads it); CPUs it does not list
 * (lcores mapped onto CPUs) go to the only node, if there is one.
 */
export function numaNodes(root = sysfsRoot()): (cpu: number) => number {
  const map = cpuNodes(root);
  const nodes = new Set(map.values());
  const only = nodes.size <= 1 ? [...nodes][0] ?? 0 : -1;
  return (cpu) => map.get(cpu) ?? only;
}

/** One line per decision, for logs and --dry-run. */
export function describeDecision(d: GroupDecision): string {
  const head = `NUMA ${d.group} (workers ${d.workers.join(",")}): current CV ${d.currentCv.toFixed(3)}, plan CV ${
    d.planCv.toFixed(3)
  }: ${d.reason}`;
  if (!d.apply) return head;
  return `${head}\n${
    d.apply.map((m) => `  relay ${m.relay}: VF->VM CPU ${m.vfToVm}, VM->VF CPU ${m.vmToVf}`).join("\n")
  }`;
}

/** Runs until `stop.stopped` (or `polls` polls); returns the exit status. */
export async function runScheduler(o: SchedulerOptions, log: Logger, stop: { stopped: boolean }): Promise<number> {
  const nodeOf = numaNodes();
  const down = new Set<string>();
  /** Calls `fn` until it answers, logging an outage once per endpoint. */
  const retrying = async <T>(name: string, fn: () => Promise<T>): Promise<T | null> => {
    for (;;) {
      try {
        const r = await fn();
        if (down.delete(name)) log.error(`Reconnected to ${name} server`);
        return r;
      } catch (e) {
        if (!(e instanceof DaemonUnreachableError)) throw e;
        if (!down.has(name)) log.error(`No response from ${name} server (${e.message}). Reconnecting...`);
        down.add(name);
        if (stop.stopped) return null;
        await sleep(o.pollIntervalS * 1000, stop);
        if (stop.stopped) return null;
      }
    }
  };
  // the original's line when it runs; a dry run polls once and says so
  log.notice(
    o.dryRun
      ? "Dry run: one poll, the plan printed, nothing changed."
      : `Dynamic load balancing initiated... Polling every ${o.pollIntervalS.toFixed(2)} seconds.`,
  );
  let workers: number[] | null = null;
  for (let poll = 1; !stop.stopped && (o.polls === 0 || poll <= o.polls); poll++) {
    const wasDown = down.has("stats");
    const stats = await retrying(
      "stats",
      () =>
        request(
          o.statsEp,
          StatsRequestSchema,
          { includeInactive: false, delay: RATE_WINDOW_MS },
          StatsResponseSchema,
          2200,
        ),
    );
    if (!stats) break;
    if (stats.status !== StatsResponse_Status.OK) {
      log.error(`stats answered ${StatsResponse_Status[stats.status]}`);
    } else {
      if (workers === null || wasDown) {
        const cores = await retrying(
          "core scheduling",
          () =>
            request(
              o.schedEp,
              CoreSchedRequestSchema,
              { op: CoreSchedRequest_Op.GET_EAL_CORES },
              CoreSchedResponseSchema,
            ),
        );
        if (!cores) break;
        workers = cores.status === CoreSchedResponse_Status.OK ? cores.ealCores : [];
        log.debug(`worker cores: ${workers.join(",")}`);
      }
      const relays = relayRates(stats.relay);
      if (relays.length > 0 && workers.length > 0) {
        const { decisions, skipped } = decide(workers, relays, nodeOf, o.sensitivity, o.globalNumaOpt);
        for (const id of skipped) {
          const r = relays.find((x) => x.id === id)!;
          log.warn(`${r.socketId} is not a valid socket id! Relay ${id} will not form part of the optimization.`);
        }
        for (const d of decisions) {
          if (o.dryRun) {
            console.log(describeDecision(d));
            continue;
          }
          if (!d.apply) {
            log.info(`NUMA ${d.group}: ${d.reason}`);
            continue;
          }
          log.notice(`Migrating workers on NUMA ${d.group}... (${d.reason})`);
          try {
            const res = await request(o.schedEp, CoreSchedRequestSchema, {
              op: CoreSchedRequest_Op.UPDATE,
              relayCpuMap: d.apply.map((m) => ({
                relayNumber: m.relay,
                vf2virtioCpu: m.vfToVm,
                virtio2vfCpu: m.vmToVf,
              })),
            }, CoreSchedResponseSchema);
            if (res.status === CoreSchedResponse_Status.OK) log.notice("Scheduler response: OK");
            else log.error("Scheduler response: ERROR");
          } catch (e) {
            // Unlike the original (which crashed here), an unanswered UPDATE is logged and retried next poll.
            log.error(`UPDATE not answered: ${errorText(e)}`);
          }
        }
      } else if (o.dryRun) {
        console.log("no active relays: nothing to plan");
      }
    }
    if (o.dryRun) return 0;
    if (o.polls === 0 || poll < o.polls) await sleep(o.pollIntervalS * 1000, stop);
  }
  log.notice("Stopping vio4wd core scheduler");
  return 0;
}

/** Sleeps `ms`, waking early when `stop.stopped` turns true. */
async function sleep(ms: number, stop: { stopped: boolean }): Promise<void> {
  const end = Date.now() + ms;
  while (!stop.stopped && Date.now() < end) await new Promise((r) => setTimeout(r, Math.min(100, end - Date.now())));
}
