/**
 * `vio4wd sched`: the core scheduler (load balancer), as the original's separate daemon. Knobs
 * default to the configuration (VIO4WD_CORE_SCHED_*), options override them.
 *
 * @module
 */

import { configOption, examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import { float, integer, string } from "@optique/core/valueparser";
import { readConfig } from "../config/config.ts";
import { resolveEndpoint } from "../control/client.ts";
import { Logger } from "../common/log.ts";
import { runScheduler } from "../sched/scheduler.ts";

/** The `sched` command's parser. */
export const schedCommand = command(
  "sched",
  object({
    action: constant("sched" as const),
    config: configOption(),
    statsEp: optional(option("--stats-ep", string({ metavar: "EP" }), { description: message`Stats endpoint.` })),
    schedEp: optional(
      option("--sched-ep", "--zmq-ep", string({ metavar: "EP" }), { description: message`Core-scheduling endpoint.` }),
    ),
    pollInterval: optional(
      option("--poll-interval", float({ min: 0.2, max: 3600, metavar: "SECONDS" }), {
        description: message`Seconds between polls (default VIO4WD_CORE_SCHED_POLL_INTERVAL, 5).`,
      }),
    ),
    sensitivity: optional(
      option("--sensitivity", float({ min: 0, metavar: "X" }), {
        description: message`Move only when the plan's CV + X < the current CV (default 0.25).`,
      }),
    ),
    globalNumaOpt: optional(
      flag("--global-numa-opt", { description: message`Balance across NUMA nodes instead of within each.` }),
    ),
    loglevel: optional(option("--loglevel", integer({ min: 0, max: 7 }), { description: message`Log level 0-7.` })),
    dryRun: optional(flag("--dry-run", { description: message`Print the plan of one poll; change nothing.` })),
    polls: optional(
      option("--polls", integer({ min: 1, metavar: "N" }), { description: message`Stop after N polls.` }),
    ),
    ifEnabled: optional(
      flag("--if-enabled", {
        description:
          message`Exit 0 at once unless the configuration enables core scheduling (VIO4WD_CORE_SCHED_ENABLE=true): what the service unit runs.`,
      }),
    ),
  }),
  {
    brief: message`Balance relay directions over the worker CPUs (core scheduler).`,
    description:
      message`Poll relay rates, estimate each worker CPU's load with the original's model, and move relay directions when the plan is better by more than the sensitivity. Runs until SIGTERM/SIGINT; the daemon needs VIO4WD_CORE_SCHED_ENABLE=true.`,
    footer: examples(
      "vio4wd sched",
      "vio4wd sched --dry-run",
      "vio4wd sched --poll-interval 2 --sensitivity 0.1",
      "vio4wd sched --config /etc/default/virtioforwarder --if-enabled",
    ),
  },
);

/** Parsed `sched` arguments. */
export interface SchedArgs {
  config?: string;
  statsEp?: string;
  schedEp?: string;
  pollInterval?: number;
  sensitivity?: number;
  globalNumaOpt?: boolean;
  loglevel?: number;
  dryRun?: boolean;
  polls?: number;
  ifEnabled?: boolean;
}

/** Runs `vio4wd sched`; returns the exit status. */
export async function runSched(a: SchedArgs): Promise<number> {
  const c = (await readConfig(a.config)).config;
  const log = new Logger(a.loglevel ?? c.coreSchedLogLevel, "vio4wd-sched");
  if (a.ifEnabled && !c.coreSchedEnable) {
    log.notice("core scheduling is off (VIO4WD_CORE_SCHED_ENABLE is not true): nothing to do");
    return 0;
  }
  const stop = { stopped: false };
  const onSignal = () => stop.stopped = true;
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    return await runScheduler(
      {
        statsEp: await resolveEndpoint("stats", a.statsEp, a.config),
        schedEp: await resolveEndpoint("coreSched", a.schedEp, a.config),
        pollIntervalS: a.pollInterval ?? c.coreSchedPollInterval,
        sensitivity: a.sensitivity ?? c.coreSchedSensitivity,
        globalNumaOpt: a.globalNumaOpt ?? c.coreSchedGlobalNumaOpt,
        dryRun: a.dryRun === true,
        polls: a.polls ?? 0,
      },
      log,
      stop,
    );
  } finally {
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}
