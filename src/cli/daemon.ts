/**
 * `vio4wd daemon`: the forwarder in the foreground, with the original daemon's options.
 *
 * @module
 */

import { configOption, examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message, text } from "@optique/core/message";
import { multiple, optional } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { string } from "@optique/core/valueparser";
import { type OptionValues, ORIGINAL_ENDPOINTS, VARIABLES } from "../config/config.ts";

/** Options whose value the original makes optional: their value when given bare. */
const BARE_VALUE: Record<string, string> = {
  "--zmq-config-ep": ORIGINAL_ENDPOINTS.config,
  "--zmq-port-control-ep": ORIGINAL_ENDPOINTS.portControl,
  "--zmq-stats-ep": ORIGINAL_ENDPOINTS.stats,
  "--zmq-core-sched-ep": ORIGINAL_ENDPOINTS.coreSched,
};

/** The daemon's options: the original's (from the variables) and vio4wd's own. */
const OPTIONS = [
  ...VARIABLES.flatMap((v) => v.option ? [v.option] : []),
  { long: "--config", kind: "value" },
  { short: "-n", long: "--nodaemon", kind: "flag" },
  { short: "-v", long: "--version", kind: "flag" },
  { short: "-h", long: "--help", kind: "flag" },
] as { short?: string; long: string; kind: "value" | "flag" | "repeat" }[];

/** The daemon's arguments in a form the parser takes, and what to tell the user. */
export interface NormalizedArgs {
  args: string[];
  warnings: string[];
  /** The original's error for these arguments (exit status 1), or null. */
  error: string | null;
}

/**
 * Reads the original daemon's arguments as glibc's getopt_long does and rewrites them for the
 * parser: long options by any unique prefix (`--cpu=1,2`), `--opt=value` and `--opt value`,
 * attached short values (`-C1,2`), clustered short flags (`-JR`), optional-value options bare
 * (`-Z` = the default endpoint), and `-n`/`--nodaemon` dropped (vio4wd stays in the foreground).
 * An unknown or ambiguous long option is ignored with a warning, as the original ignores it; an
 * unknown short option and an extra argument are the original's errors. After `--` the rest is
 * ignored.
 */
export function normalizeOriginalArgs(argv: readonly string[]): NormalizedArgs {
  const out: string[] = [];
  const warnings: string[] = [];
  const fail = (error: string): NormalizedArgs => ({ args: out, warnings, error });
  /** Emits option `o` with the value at argv[i + 1] when it takes one; returns the new index. */
  const emit = (o: (typeof OPTIONS)[number], name: string, attached: string | undefined, i: number): number => {
    if (o.long === "--nodaemon") return i;
    if (o.kind === "flag") {
      out.push(o.long);
      return i;
    }
    if (attached !== undefined) {
      out.push(o.long, attached);
      return i;
    }
    if (o.long in BARE_VALUE) {
      // The original takes these values only attached; bare means the default endpoint.
      const next = argv[i + 1];
      if (next === undefined || !/^(ipc|tcp|inproc):\/\//.test(next)) {
        out.push(o.long, BARE_VALUE[o.long]);
        return i;
      }
    }
    if (i + 1 >= argv.length) throw new MissingArgument(name);
    out.push(o.long, argv[i + 1]);
    return i + 1;
  };
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === "--") break;
      if (a.startsWith("--")) {
        const [name, value] = a.includes("=")
          ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
          : [a, undefined];
        const exact = OPTIONS.find((o) => o.long === name);
        const matches = exact ? [exact] : OPTIONS.filter((o) => o.long.startsWith(name));
        if (matches.length !== 1) {
          warnings.push(
            `${matches.length ? "ambiguous" : "unknown"} option '${name}' ignored${
              matches.length ? ` (${matches.map((o) => o.long).join(", ")})` : ""
            }, as virtio-forwarder ignores it`,
          );
          continue;
        }
        i = emit(matches[0], name, value, i);
      } else if (a.startsWith("-") && a.length > 1) {
        for (let k = 1; k < a.length; k++) {
          const o = OPTIONS.find((x) => x.short === `-${a[k]}`);
          if (!o) {
            return fail(`Unknown option '${a[k]}' (${a.charCodeAt(k).toString(16)})`);
          }
          if (o.kind === "flag") {
            emit(o, `-${a[k]}`, undefined, i);
            continue;
          }
          const rest = a.slice(k + 1);
          i = emit(o, `-${a[k]}`, rest === "" ? undefined : rest, i);
          break;
        }
      } else {
        return fail(`Unhandled extra option '${a}'`);
      }
    }
  } catch (e) {
    if (e instanceof MissingArgument) return fail(`Missing argument for option '${e.option.replace(/^-+/, "")}'`);
    throw e;
  }
  return { args: out, warnings, error: null };
}

class MissingArgument extends Error {
  constructor(readonly option: string) {
    super(option);
  }
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
    config: configOption(message`Configuration file (default /etc/default/virtioforwarder).`),
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
