/**
 * `vio4wd daemon`: the forwarder in the foreground, with the original daemon's options.
 *
 * @module
 */

import { examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message, text } from "@optique/core/message";
import { multiple, optional } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { string } from "@optique/core/valueparser";
import { type OptionValues, ORIGINAL_ENDPOINTS, VARIABLES } from "../config/config.ts";

/** Options whose value the original makes optional: their value when given bare. */
const BARE_VALUE: Record<string, string> = {
  "-Y": ORIGINAL_ENDPOINTS.config,
  "--zmq-config-ep": ORIGINAL_ENDPOINTS.config,
  "-Z": ORIGINAL_ENDPOINTS.portControl,
  "--zmq-port-control-ep": ORIGINAL_ENDPOINTS.portControl,
  "-z": ORIGINAL_ENDPOINTS.stats,
  "--zmq-stats-ep": ORIGINAL_ENDPOINTS.stats,
  "-s": ORIGINAL_ENDPOINTS.coreSched,
  "--zmq-core-sched-ep": ORIGINAL_ENDPOINTS.coreSched,
};

const valueOptions = VARIABLES.flatMap((v) => v.option && v.option.kind !== "flag" ? [v.option] : []);

/**
 * Rewrites the original daemon's argument forms into ones the parser takes: attached short
 * values (`-C1,2`), bare optional-value options (`-Z` = default endpoint), and `-n`/`--nodaemon`
 * (vio4wd always stays in the foreground, so it is dropped).
 */
export function normalizeOriginalArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-n" || a.startsWith("--nodaemon")) continue;
    if (a in BARE_VALUE) {
      // The original takes these values only attached; bare means the default endpoint.
      const next = args[i + 1];
      if (next === undefined || !/^(ipc|tcp|inproc):\/\//.test(next)) {
        out.push(a, BARE_VALUE[a]);
        continue;
      }
    }
    const m = /^(-[A-Za-z0-9])(.+)$/.exec(a);
    if (m && valueOptions.some((o) => o.short === m[1])) {
      out.push(m[1], m[2]);
      continue;
    }
    out.push(a);
  }
  return out;
}

type DaemonOptionParser = Parser<"sync", unknown, unknown>;

function optionParsers(): Record<string, DaemonOptionParser> {
  const out: Record<string, DaemonOptionParser> = {};
  for (const v of VARIABLES) {
    const o = v.option;
    if (!o) continue;
    const names = (o.short ? [o.short, o.long] : [o.long]) as [`-${string}`, ...`-${string}`[]];
    const description = message`${text(`${v.description} (${v.name})`)}`;
    if (o.kind === "flag") out[v.name] = optional(flag(...names, { description })) as DaemonOptionParser;
    else {
      const p = option(...names, string({ metavar: (o.metavar ?? "VALUE") as "VALUE" }), { description });
      out[v.name] = (o.kind === "repeat" ? multiple(p) : optional(p)) as DaemonOptionParser;
    }
  }
  return out;
}

/** The `daemon` command's parser. */
export const daemonCommand = command(
  "daemon",
  object({
    action: constant("daemon" as const),
    config: optional(
      option("--config", string({ metavar: "FILE" }), {
        description: message`Configuration file (default /etc/default/virtioforwarder).`,
      }),
    ),
    options: object(optionParsers()),
  }),
  {
    brief: message`Run the forwarder in the foreground.`,
    description:
      message`Run the forwarder in the foreground (systemd runs it this way). Reads the configuration file; the original daemon's options override its values. SIGTERM/SIGINT stop it cleanly, SIGUSR1 logs every relay's state and counters.`,
    footer: examples(
      "vio4wd daemon",
      "vio4wd daemon --config /etc/default/virtioforwarder -C 1,2 --vhost-path /run/vio4wd",
      "vio4wd daemon -P net_tap0,iface=vf0=1 --file-prefix test1 --memory 256",
    ),
  },
);

/** Turns parsed daemon options into config overrides keyed by variable name. */
export function optionOverrides(parsed: Record<string, unknown>): OptionValues {
  const out: OptionValues = {};
  for (const v of VARIABLES) {
    const o = v.option;
    const value = parsed[v.name];
    if (!o || value === undefined || value === false) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    out[v.name] = {
      value: value === true ? "y" : Array.isArray(value) ? [...value] as string[] : String(value),
      option: o.long,
    };
  }
  return out;
}
