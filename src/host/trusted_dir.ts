/**
 * Whether a directory the daemon keeps files in can be trusted: OpenSSH's StrictModes rule,
 * applied to the directory and every parent. Each must be owned by root, the daemon's user or an
 * account the caller names, and not writable by others: group write only for a group the caller
 * names (or root's), world write only with the sticky bit (like /tmp). Otherwise another user
 * could replace what the daemon puts there: the vhost sockets QEMU connects to, the PID file.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import type { Config } from "../config/config.ts";
import type { SocketAccounts } from "../config/accounts.ts";
import { accountId } from "../config/values.ts";

/** Who may own, and which group may write, the directory and its parents (root always may). */
export interface DirTrust {
  /** Users besides root and the daemon's own that may own the directory itself (not parents). */
  owners?: readonly number[];
  /** A group that may have write access to the directory itself (not parents). */
  writerGroup?: number | null;
}

/**
 * Why `dir` (or the nearest part of it that exists: the rest is created by the daemon) is not
 * to be trusted, naming the path, its owner or mode and the fix; null when it is.
 */
export function untrustedDir(dir: string, trust: DirTrust = {}): string | null {
  let existing = dir.replace(/\/+$/, "") || "/";
  let missing = false; // the directory itself is still to be created: all that exists are parents
  for (;;) {
    try {
      existing = Deno.realPathSync(existing);
      break;
    } catch {
      if (existing === "/") return null;
      missing = true;
      existing = existing.slice(0, existing.lastIndexOf("/")) || "/";
    }
  }
  const self = Deno.uid() ?? 0;
  const parts = existing.split("/").filter((p) => p !== "");
  const chain = ["/", ...parts.map((_, i) => "/" + parts.slice(0, i + 1).join("/"))];
  for (const path of chain) {
    const st = Deno.lstatSync(path);
    const { uid, gid } = st;
    const mode = st.mode ?? 0;
    const last = !missing && path === chain[chain.length - 1];
    const owners = [0, self, ...(last ? trust.owners ?? [] : [])];
    if (uid === null || !owners.includes(uid)) {
      return `${path} is owned by uid ${uid}, not by root${
        last && trust.owners?.length ? " or the socket owner" : ""
      }: ` +
        `another user could replace what vio4wd keeps under it (chown root ${path}, or choose a directory of root's)`;
    }
    const groupOk = gid === 0 || (last && trust.writerGroup != null && gid === trust.writerGroup);
    if ((mode & 0o020) !== 0 && !groupOk) {
      return `${path} is writable by group ${gid} (mode ${octal(mode)}): its members could replace what vio4wd keeps ` +
        `under it (chmod g-w ${path})`;
    }
    if ((mode & 0o002) !== 0 && (mode & 0o1000) === 0) {
      return `${path} is writable by every user and has no sticky bit (mode ${octal(mode)}): anyone could replace ` +
        `what vio4wd keeps under it (chmod o-w ${path}, or +t as on /tmp)`;
    }
  }
  return null;
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, "0");

/** A configured directory that is not to be trusted: the variable, its value and why. */
export interface UntrustedDirectory {
  variable: string;
  dir: string;
  why: string;
}

/**
 * The daemon's socket and PID directories that fail untrustedDir. The socket directory may also
 * belong to the socket owner and be writable by the socket group (QEMU creates the sockets there
 * in client mode). (ipc:// endpoint directories are checked where they are bound.)
 */
export function untrustedDirectories(
  c: Pick<Config, "socketDir" | "pidDir">,
  accounts: Pick<SocketAccounts, "owner" | "group">,
): UntrustedDirectory[] {
  const owner = accounts.owner ? accountId("passwd", accounts.owner) : null;
  const group = accounts.group ? accountId("group", accounts.group) : null;
  const checks: [string, string, DirTrust][] = [
    ["VIRTIOFWD_SOCKET_DIR", c.socketDir, { owners: owner === null ? [] : [owner], writerGroup: group }],
    ["VIRTIOFWD_PID_DIR", c.pidDir, {}],
  ];
  return checks.flatMap(([variable, dir, trust]) => {
    const why = untrustedDir(dir, trust);
    return why ? [{ variable, dir, why }] : [];
  });
}

/**
 * Creates `dir` and every missing parent with `mode` whatever the process's umask (the unit
 * runs with UMask=0027; a socket directory QEMU must reach needs 0755); returns what it created,
 * parents first.
 */
export function makeDirs(dir: string, mode: number): string[] {
  const missing: string[] = [];
  for (let p = resolve(dir); p !== "/"; p = dirname(p)) {
    try {
      Deno.lstatSync(p);
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      missing.unshift(p);
    }
  }
  for (const p of missing) {
    Deno.mkdirSync(p, { mode });
    Deno.chmodSync(p, mode);
  }
  return missing;
}
