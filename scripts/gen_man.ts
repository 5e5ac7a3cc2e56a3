/**
 * Writes docs/vio4wd.8, the man page, from what the program itself says (`deno task man`): each
 * command's `--help`, and the configuration variables with their defaults and options. A test
 * fails when the committed page differs from what this generates, so it never drifts.
 *
 * @module
 */

import { VARIABLES } from "../src/config/config.ts";
import { VERSION } from "../src/daemon/daemon.ts";

/** The commands in the order the page lists them. */
export const COMMANDS = [
  "daemon",
  "config",
  "port",
  "stats",
  "pin",
  "sched",
  "monitor",
  "vm-config",
  "doctor",
  "demo",
  "completions",
] as const;

const LAUNCHER = new URL("../vio4wd", import.meta.url).pathname;

/** Text as roff shows it: backslashes escaped, lines that start with a control character guarded. */
export function roffText(text: string): string {
  return text.split("\n").map((l) => l.replaceAll("\\", "\\e").replace(/^([.'])/, "\\&$1")).join("\n");
}

/** A command's `--help`, as the program prints it. */
async function helpOf(command: string): Promise<string> {
  const out = await new Deno.Command(LAUNCHER, { args: [command, "--help"], stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (text.trim() === "") throw new Error(`'vio4wd ${command} --help' printed nothing`);
  return text.trimEnd();
}

const shown = (value: unknown): string => {
  if (value === null || value === "" || value === false) return "blank";
  if (Array.isArray(value)) return value.length === 0 ? "blank" : value.join(",");
  if (value === true) return "on";
  return String(value);
};

/** The whole page. `helps`: each command's help text (the program's own words). */
export function manPage(helps: Record<string, string>): string {
  const out: string[] = [
    `.TH VIO4WD 8 "" "vio4wd ${VERSION}" "System Administration"`,
    ".SH NAME",
    "vio4wd \\- relay packets between SR\\-IOV VFs (DPDK) and VMs' virtio\\-net devices (vhost\\-user)",
    ".SH SYNOPSIS",
    ".B vio4wd",
    ".I command",
    "[\\fIoptions\\fR]",
    ".SH DESCRIPTION",
    "vio4wd re\\-implements virtio\\-forwarder: it forwards packets both ways between SR\\-IOV virtual functions",
    "and the virtio\\-net devices of QEMU virtual machines. It reads",
    ".I /etc/default/virtioforwarder",
    "and runs as the",
    ".B virtio\\-forwarder",
    "service. Each command is described below with its own help.",
    ".SH COMMANDS",
  ];
  for (const c of COMMANDS) out.push(`.SS ${c}`, ".nf", roffText(helps[c]), ".fi");
  out.push(
    ".SH CONFIGURATION",
    "Variables of",
    ".IR /etc/default/virtioforwarder ,",
    "in the order of the shipped file. A blank value means the default.",
  );
  for (const v of VARIABLES) {
    const option = v.option ? ` Option: ${[v.option.short, v.option.long].filter(Boolean).join(", ")}.` : "";
    out.push(".TP", `.B ${v.name}`, roffText(`${v.description} Default: ${shown(v.default)}.${option}`));
  }
  out.push(
    ".SH FILES",
    ".TP",
    ".I /etc/default/virtioforwarder",
    "The configuration.",
    ".TP",
    ".I /lib/systemd/system/virtio\\-forwarder.service",
    "The daemon's unit (alias vio4wd.service); vio4wd_core_scheduler.service runs the core scheduler.",
    ".SH SEE ALSO",
    ".I /usr/share/doc/vio4wd/manual.md.gz",
    "",
  );
  return out.join("\n");
}

/** The page as the program generates it now. */
export async function currentManPage(): Promise<string> {
  const helps: Record<string, string> = {};
  for (const c of COMMANDS) helps[c] = await helpOf(c);
  return manPage(helps);
}

if (import.meta.main) {
  const path = new URL("../docs/vio4wd.8", import.meta.url).pathname;
  await Deno.writeTextFile(path, await currentManPage());
  console.log(`wrote ${path}`);
}
