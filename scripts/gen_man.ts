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
  "upgrade",
  "demo",
  "completions",
] as const;

const LAUNCHER = new URL("../vio4wd", import.meta.url).pathname;

/** Text as roff shows it: backslashes escaped, lines that start with a control character guarded. */
export function roffText(text: string): string {
  return text.split("\n").map((l) => l.replaceAll("\\", "\\e").replace(/^([.'])/, "\\&$1")).join("\n");
}

/** Columns a help line may take in the page: man indents the COMMANDS section by 7 of 80. */
const HELP_WIDTH = 72;

/**
 * `text` with its lines broken at spaces to `width` columns (unfilled roff keeps lines as they
 * are). A continuation is indented as the line's own text starts: after `Usage: `, at an option's
 * description column, or at the line's indentation.
 */
export function wrapHelp(text: string, width = HELP_WIDTH): string {
  return text.split("\n").flatMap((line) => {
    if (line.length <= width) return [line];
    const usage = /^(\s*Usage: )/.exec(line)?.[1].length;
    const column = /^(\s+\S.*?\s{2,})\S/.exec(line)?.[1].length;
    let indent = " ".repeat(Math.min(usage ?? column ?? line.search(/\S/), width / 2));
    const out: string[] = [];
    let rest = line;
    while (rest.length > width) {
      let at = rest.lastIndexOf(" ", width);
      if (at <= indent.length && indent.length > 8) { // a word too long for the column: less indent
        indent = " ".repeat(8);
        rest = indent + rest.trimStart();
        continue;
      }
      if (at <= indent.length) at = rest.indexOf(" ", width); // a word longer than the line
      if (at < 0) break;
      out.push(rest.slice(0, at).trimEnd());
      rest = indent + rest.slice(at + 1).trimStart();
    }
    out.push(rest);
    return out;
  }).join("\n");
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
  for (const c of COMMANDS) out.push(`.SS ${c}`, ".nf", roffText(wrapHelp(helps[c])), ".fi");
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
    ".SH ENVIRONMENT",
    "Precedence, lowest first: the built\\-in default, the environment, the file, a daemon option. A",
    "configuration variable set in the environment counts where the file does not assign it, as with",
    "the original, whose start script sourced the file over its environment.",
    ".TP",
    ".B VIO4WD_CONFIG",
    "The configuration file every command reads when \\-\\-config is not given.",
    ".TP",
    '.BR VIO4WD_SHIM ", " VIO4WD_LIBZMQ',
    "The data\\-plane library and libzmq to load instead of the installed ones.",
    ".TP",
    ".B NOTIFY_SOCKET",
    "Set by systemd: the daemon reports ready and stopping.",
    ".TP",
    ".B JOURNAL_STREAM",
    "Set by systemd: log lines carry syslog priorities instead of timestamps.",
    ".SH EXIT STATUS",
    ".TP",
    ".B 0",
    "Success; for the daemon, a clean stop.",
    ".TP",
    ".B 1",
    "Refused: the daemon answered ERROR (the reply and what its code means are printed), the daemon",
    "refused to start (the reason is its last log line), config check found what would stop it,",
    "doctor found a failing check.",
    ".TP",
    ".B 2",
    "Bad arguments, a configuration error (file, line, variable and what is allowed are printed),",
    "or no answer from the daemon.",
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
