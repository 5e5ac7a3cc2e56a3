/**
 * A systemd unit's sandbox, as far as it can be reproduced without systemd as PID 1: the
 * program runs in a service's environment under the unit's capability bounding set and
 * no_new_privs (setpriv), traced by strace, which also fails every system call outside the unit's
 * SystemCallFilter= with EPERM as seccomp would (SystemCallErrorNumber=EPERM). The trace is then
 * held against the unit's address families, device policy, ProtectSystem= and ProtectHome=: a
 * trace that steps outside is what systemd would have refused.
 *
 * @module
 */

/** The [Service] settings of a unit file: each key with every value it was given, in order. */
export function serviceSettings(unitFile: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = "";
  for (const raw of Deno.readTextFileSync(unitFile).split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = head[1];
      continue;
    }
    const eq = line.indexOf("=");
    if (section !== "Service" || eq < 0) continue;
    const key = line.slice(0, eq).trim();
    settings.set(key, [...settings.get(key) ?? [], line.slice(eq + 1).trim()]);
  }
  return settings;
}

/** The one value of `key` (the last, as systemd reads a single-valued setting), or "". */
export function setting(s: Map<string, string[]>, key: string): string {
  return s.get(key)?.at(-1) ?? "";
}

/**
 * `setpriv` arguments giving the unit's CapabilityBoundingSet= (empty: none) and
 * NoNewPrivileges=yes.
 */
export function setprivArgs(s: Map<string, string[]>): string[] {
  const caps = (s.get("CapabilityBoundingSet") ?? []).join(" ").split(/\s+/).filter(Boolean)
    .map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`);
  if (!s.has("CapabilityBoundingSet")) throw new Error("the unit sets no CapabilityBoundingSet=");
  const args = [`--bounding-set=${["-all", ...caps].join(",")}`];
  if (setting(s, "NoNewPrivileges") === "yes") args.push("--no-new-privs");
  return args;
}

let groups: Map<string, string[]> | null = null;

/** systemd's system call groups (`systemd-analyze syscall-filter`), each with its members. */
function syscallGroups(): Map<string, string[]> {
  if (groups) return groups;
  const out = new Deno.Command("systemd-analyze", { args: ["syscall-filter"], stdout: "piped", stderr: "null" })
    .outputSync();
  groups = new Map();
  let current: string[] | null = null;
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    if (/^@\S+/.test(line)) groups.set(line.trim(), current = []);
    else if (current && line.trim() && !line.trim().startsWith("#")) current.push(line.trim());
  }
  if (!groups.has("@system-service")) throw new Error("systemd-analyze syscall-filter listed no @system-service");
  return groups;
}

function expand(item: string, seen = new Set<string>()): string[] {
  if (!item.startsWith("@")) return [item];
  if (seen.has(item)) return [];
  seen.add(item);
  const members = syscallGroups().get(item);
  if (!members) throw new Error(`unknown system call group ${item}`);
  return members.flatMap((m) => expand(m, seen));
}

/**
 * The system calls the unit's SystemCallFilter= lets through: the first allow list, minus every
 * `~` list, as systemd combines them.
 */
export function allowedSyscalls(s: Map<string, string[]>): Set<string> {
  let allowed: Set<string> | null = null;
  const denied = new Set<string>();
  for (const v of s.get("SystemCallFilter") ?? []) {
    const deny = v.startsWith("~");
    const names = v.replace(/^~/, "").split(/\s+/).filter(Boolean).flatMap((i) => expand(i));
    if (deny) names.forEach((n) => denied.add(n));
    else names.forEach((n) => (allowed ??= new Set()).add(n));
  }
  if (!allowed) throw new Error("the unit sets no SystemCallFilter= allow list");
  return new Set([...allowed].filter((n) => !denied.has(n)));
}

/** One traced system call: its name, arguments and result as strace printed them. */
interface Call {
  name: string;
  args: string;
  result: string;
}

/** The calls of an `strace -f` trace (a call split by another thread's is joined back). */
export function traceCalls(trace: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<string, { name: string; args: string }>();
  for (const line of trace.split("\n")) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid, rest] = m;
    const unfinished = /^([a-z0-9_]+)\((.*) <unfinished \.\.\.>$/.exec(rest);
    if (unfinished) {
      pending.set(pid, { name: unfinished[1], args: unfinished[2] });
      continue;
    }
    const resumed = /^<\.\.\. ([a-z0-9_]+) resumed>(.*)\)\s+= (.*)$/.exec(rest);
    if (resumed) {
      const p = pending.get(pid);
      pending.delete(pid);
      calls.push({ name: resumed[1], args: (p?.args ?? "") + resumed[2], result: resumed[3] });
      continue;
    }
    const whole = /^([a-z0-9_]+)\((.*)\)\s+= (.*)$/.exec(rest);
    if (whole) calls.push({ name: whole[1], args: whole[2], result: whole[3] });
    else if (/^[a-z0-9_]+\(/.test(rest)) {
      // no result: the process ended inside the call (exit_group, or a call cut short)
      const name = /^([a-z0-9_]+)\(/.exec(rest)![1];
      calls.push({ name, args: rest.slice(name.length + 1), result: "?" });
    }
  }
  for (const p of pending.values()) calls.push({ ...p, result: "?" });
  return calls;
}

/** Calls that change the file system at a path they name. */
const WRITING = new Set([
  "mkdir",
  "mkdirat",
  "unlink",
  "unlinkat",
  "rmdir",
  "rename",
  "renameat",
  "renameat2",
  "symlink",
  "symlinkat",
  "link",
  "linkat",
  "chmod",
  "fchmodat",
  "chown",
  "lchown",
  "fchownat",
  "truncate",
  "mknod",
  "mknodat",
  "utimensat",
  "creat",
]);
/** Pseudo devices DevicePolicy=closed always allows. */
const PSEUDO_DEVICES = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/** Whether a call changes the file system at the paths it names. */
const writes = (c: Call) =>
  WRITING.has(c.name) || (/^open/.test(c.name) && /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(c.args));
const paths = (args: string) => [...args.matchAll(/"(\/[^"]*)"/g)].map((m) => m[1]);
const under = (p: string, dirs: readonly string[]) => dirs.some((d) => p === d || p.startsWith(`${d}/`));

/** Where the sandbox is checked: what the trace may touch besides the unit's rules. */
export interface TraceAllowances {
  /** Directories on file systems, not device nodes, under /dev (hugetlbfs, /dev/shm). */
  devFileDirs: string[];
  /**
   * Directories the test itself lives in that a real install would not use (the checkout, Deno's
   * cache), with their parents as far as a path is resolved through them.
   */
  testDirs: string[];
  /** Files read only if present, which the sandbox hides (they are then absent, as expected). */
  optionalReads: string[];
}

/**
 * What the trace did that the unit's sandbox would have refused: sockets of families it does not
 * list, device nodes outside DeviceAllow=, writes under ProtectSystem='s read-only trees,
 * anything under ProtectHome=yes's hidden ones.
 */
export function sandboxViolations(s: Map<string, string[]>, calls: Call[], allow: TraceAllowances): string[] {
  const out = new Set<string>();
  const families = new Set(setting(s, "RestrictAddressFamilies").split(/\s+/).filter(Boolean));
  const devices = (s.get("DeviceAllow") ?? []).map((v) => v.split(/\s+/)[0]);
  const devicePolicy = setting(s, "DevicePolicy");
  const protectSystem = setting(s, "ProtectSystem");
  const readOnly = protectSystem === "strict"
    ? ["/"]
    : protectSystem === "full"
    ? ["/usr", "/boot", "/efi", "/etc"]
    : protectSystem === "yes"
    ? ["/usr", "/boot", "/efi"]
    : [];
  const hidden = setting(s, "ProtectHome") === "yes" ? ["/home", "/root", "/run/user"] : [];
  for (const c of calls) {
    if (c.name === "socket" && families.size) {
      const family = /^(AF_\w+|\d+)/.exec(c.args)?.[1] ?? c.args;
      if (!families.has(family)) out.add(`socket(${family}) (not in RestrictAddressFamilies=)`);
    }
    const named = paths(c.args).filter((p) =>
      !under(p, allow.testDirs) && !allow.testDirs.some((d) => d.startsWith(`${p}/`)) &&
      !(allow.optionalReads.includes(p) && !writes(c))
    );
    for (const p of named) {
      if (writes(c) && under(p, readOnly) && !c.result.startsWith("-1")) {
        out.add(`${c.name} ${p} (read-only under ProtectSystem=${protectSystem})`);
      }
      if (under(p, hidden)) out.add(`${c.name} ${p} (hidden by ProtectHome=yes)`);
      if (
        devicePolicy === "closed" && /^open/.test(c.name) && p.startsWith("/dev/") && !c.result.startsWith("-1") &&
        !PSEUDO_DEVICES.includes(p) && !under(p, allow.devFileDirs) && !under(p, devices) &&
        !(devices.includes("char-vfio") && p.startsWith("/dev/vfio/"))
      ) out.add(`open ${p} (not in DeviceAllow=)`);
    }
  }
  return [...out].sort();
}

/** The system calls of the trace outside the unit's filter (each failed with EPERM, injected). */
export function refusedCalls(s: Map<string, string[]>, calls: Call[]): string[] {
  const allowed = allowedSyscalls(s);
  return [...new Set(calls.map((c) => c.name).filter((n) => !allowed.has(n)))].sort();
}

/** The PATH systemd gives a service (and nothing else of the caller's environment). */
const SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Writes an executable wrapper that runs `program` (then its arguments) under the unit's
 * capability bounding set, no_new_privs and system call filter, in a service's environment (PATH
 * and `env` only), traced into `trace`. SIGTERM to the wrapper reaches the program's PID as
 * written to `pidFile` (strace would swallow it); the wrapper exits with the program's status.
 */
export function sandboxWrapper(
  at: string,
  s: Map<string, string[]>,
  o: { program: string; trace: string; pidFile?: string; env?: Record<string, string> },
): string {
  const q = (x: string) => `'${x.replaceAll("'", `'\\''`)}'`;
  const env = Object.entries({ PATH: SERVICE_PATH, ...o.env }).map(([k, v]) => q(`${k}=${v}`)).join(" ");
  // setpriv first (the filter applies once the program runs, as under systemd); "?name": a name
  // this architecture lacks is not an error
  const filter = `inject=!${[...allowedSyscalls(s)].map((n) => `?${n}`).join(",")}:error=EPERM`;
  const forward = o.pidFile ? `trap 'kill -TERM "$(cat ${q(o.pidFile)})"' TERM INT\n` : "";
  Deno.writeTextFileSync(
    at,
    `#!/bin/sh
env -i ${env} setpriv ${setprivArgs(s).map(q).join(" ")} -- strace -f -qq -s 200 -o ${q(o.trace)} -e ${q(filter)} -- ${
      q(o.program)
    } "$@" &
tracer=$!
${forward}wait "$tracer"
rc=$?
if kill -0 "$tracer" 2>/dev/null; then wait "$tracer"; rc=$?; fi
exit $rc
`,
    { mode: 0o755 },
  );
  return at;
}
