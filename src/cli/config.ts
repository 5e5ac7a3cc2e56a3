/**
 * `vio4wd config check [FILE]` and `vio4wd config show [--json]`.
 *
 * @module
 */

import { configOption, examples, fileValue } from "./help.ts";
import { object, or } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { argument, command, constant, flag } from "@optique/core/primitives";
import {
  type Config,
  describeSource,
  type LoadedConfig,
  portControlSource,
  readConfig,
  VARIABLES,
} from "../config/config.ts";
import { ORIGINAL_SOCKET_GROUP, ORIGINAL_SOCKET_OWNER } from "../config/accounts.ts";
import { formatCpuSet, formatLcoreMap } from "../config/values.ts";
import { startupFindings } from "../doctor/refusals.ts";

/** The `config` command's parser. */
export const configCommand = command(
  "config",
  or(
    command(
      "check",
      object({
        action: constant("config-check" as const),
        file: optional(argument(fileValue(), { description: message`File to check.` })),
        config: configOption(message`File to check (as FILE, the way the other commands take it).`),
        strict: optional(
          flag("--strict", { description: message`Warnings are errors too (exit 1): for CI pipelines.` }),
        ),
      }),
      {
        brief: message`Validate a configuration file.`,
        description:
          message`Validate a configuration file (default /etc/default/virtioforwarder), and say what the daemon would refuse or ignore at start on this host: endpoints it will not open or that anyone local can use, directories that fail its trust check, accounts that do not exist, CPUs that are not online. Exit 0 when valid (warnings: the daemon would start without what they name), 1 when the daemon would not start (or, with --strict, on any warning), 2 with FILE:LINE, the variable, the value and what is allowed when a value is invalid.`,
        footer: examples(
          "vio4wd config check",
          "vio4wd config check /tmp/new.virtioforwarder",
          "vio4wd config check --strict /tmp/new.virtioforwarder",
          "vio4wd config check --config /tmp/new.virtioforwarder",
        ),
      },
    ),
    command(
      "show",
      object({
        action: constant("config-show" as const),
        config: configOption(),
        json: optional(flag("--json", { description: message`Print JSON: each variable's value and source.` })),
      }),
      {
        brief: message`Print the effective configuration.`,
        description:
          message`Print the effective configuration: every variable, its value and where it came from (default, FILE:LINE).`,
        footer: examples(
          "vio4wd config show",
          "vio4wd config show --json | jq .variables.VIRTIOFWD_CPU_MASK.value",
        ),
      },
    ),
  ),
  { brief: message`Check or show the configuration.`, description: message`Check or show the configuration.` },
);

/** A value as the file would spell it. */
function render(key: keyof Config, value: unknown): string {
  if (key === "cpus") return formatCpuSet(value as number[]);
  if (key === "cpuPins") return (value as Config["cpuPins"]).map((p) => `${p.relay}:${p.vfToVm},${p.vmToVf}`).join(" ");
  if (key === "staticVfs") return (value as Config["staticVfs"]).map((s) => `${s.device}=${s.relay}`).join(" ");
  if (key === "ealLcores") return value === null ? "" : formatLcoreMap(value as Map<number, number>);
  if (Array.isArray(value)) return value.join(",");
  if (typeof value === "boolean") return value ? "y" : "";
  return String(value);
}

/** What a blank value means where it is not "off": the original daemon's defaults. */
const BLANK_MEANS: Partial<Record<keyof Config, string>> = {
  socketOwner: `${ORIGINAL_SOCKET_OWNER}, the original's default`,
  socketGroup: `${ORIGINAL_SOCKET_GROUP}, the original's default`,
};

/** Prints the effective configuration, as a table or JSON. */
export function showConfig(loaded: LoadedConfig, json: boolean): void {
  const pc = portControlSource(loaded.config);
  if (json) {
    const out: Record<string, unknown> = {};
    for (const v of VARIABLES) {
      const value = loaded.config[v.key];
      const blank = value === "" ? BLANK_MEANS[v.key] : undefined;
      out[v.name] = {
        value: value instanceof Map ? Object.fromEntries(value) : value,
        source: describeSource(loaded.sources[v.key]),
        ...(blank ? { blank_means: blank } : {}),
        ...("ignored" in v ? { ignored: v.ignored } : {}),
      };
    }
    console.log(
      JSON.stringify({ file: loaded.file, variables: out, port_control: pc, warnings: loaded.warnings }, null, 2),
    );
    return;
  }
  const width = Math.max(...VARIABLES.map((v) => v.name.length));
  for (const v of VARIABLES) {
    const value = render(v.key, loaded.config[v.key]);
    const blank = BLANK_MEANS[v.key];
    const shown = value !== "" ? value : blank ? `(blank: ${blank})` : "(off)";
    console.log(
      `${v.name.padEnd(width)}  ${shown.padEnd(44)}  ${describeSource(loaded.sources[v.key])}${
        "ignored" in v ? "  (ignored)" : ""
      }`,
    );
  }
  const how = { zmq: "ZeroMQ at", ipc: "the IPC file", ovsdb: "the OVSDB monitor at" }[pc.mode];
  console.log(`port control: ${how} ${pc.from} (${pc.variable})`);
  for (const v of VARIABLES) {
    if ("ignored" in v && loaded.sources[v.key].kind !== "default") {
      console.log(`note: ${v.name} is known and ignored: ${v.ignored}`);
    }
  }
  for (const w of loaded.warnings) console.error(`warning: ${w}`);
}

/** Runs `config check` or `config show`; returns the exit status. */
export async function runConfig(
  a: { action: "config-check"; file?: string; config?: string; strict?: boolean } | {
    action: "config-show";
    config?: string;
    json?: boolean;
  },
): Promise<number> {
  if (a.action === "config-check") {
    if (a.file !== undefined && a.config !== undefined && a.file !== a.config) {
      console.error(`vio4wd config check: give the file once: as FILE (${a.file}) or --config (${a.config})`);
      return 2;
    }
    const loaded = await readConfig(a.file ?? a.config);
    for (const w of loaded.warnings) console.error(`warning: ${w}`);
    const findings = startupFindings(loaded);
    for (const f of findings) console.error(`${f.level}: ${f.text}`);
    const errors = findings.filter((f) => f.level === "error").length;
    const warnings = loaded.warnings.length + findings.length - errors;
    const name = loaded.file ?? "built-in defaults";
    if (errors > 0) {
      console.log(`${name}: the daemon would not start (${errors} error(s) above)`);
      return 1;
    }
    if (a.strict && warnings > 0) {
      console.log(`${name}: ${warnings} warning(s) above (--strict)`);
      return 1;
    }
    console.log(`${name}: OK${warnings > 0 ? ` (${warnings} warning(s) above)` : ""}`);
    return 0;
  }
  showConfig(await readConfig(a.config), a.json === true);
  return 0;
}
