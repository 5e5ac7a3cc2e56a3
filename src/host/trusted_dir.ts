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
  /** Groups that may have write access to the directory itself (not parents). */
  writerGroups?: readonly (number | null)[];
  /** The directory itself may not be world-writable even with the sticky bit (anyone could put a socket there). */
  noWorldWrite?: boolean;
  /**
   * A directory of the chain (the directory itself or a parent) that others may own or write too:
   * VIRTIOFWD_SOCKET_DIR, which the daemon hands to the socket owner and group at start as the
   * original did, when the PID file or ZeroMQ endpoints are kept in or under it.
   */
  shared?: { path: string; owners: readonly number[]; writerGroups: readonly (number | null)[] };
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
  let shared: string | null = null;
  try {
    if (trust.shared) shared = Deno.realPathSync(trust.shared.path);
  } catch { /* not there yet: nothing shared */ }
  const parts = existing.split("/").filter((p) => p !== "");
  const chain = ["/", ...parts.map((_, i) => "/" + parts.slice(0, i + 1).join("/"))];
  for (const path of chain) {
    const st = Deno.lstatSync(path);
    const { uid, gid } = st;
    const mode = st.mode ?? 0;
    const last = !missing && path === chain[chain.length - 1];
    const isShared = path === shared;
    const owners = [0, self, ...(last ? trust.owners ?? [] : []), ...(isShared ? trust.shared!.owners : [])];
    if (uid === null || !owners.includes(uid)) {
      return `${path} is owned by uid ${uid}, not by root${
        last && trust.owners?.length ? " or the socket owner" : ""
      }: ` +
        `another user could replace what vio4wd keeps under it (chown root ${path}, or choose a directory of root's)`;
    }
    const groupOk = gid === 0 || (last && gid !== null && (trust.writerGroups ?? []).includes(gid)) ||
      (isShared && gid !== null && trust.shared!.writerGroups.includes(gid));
    if ((mode & 0o020) !== 0 && !groupOk) {
      return `${path} is writable by group ${gid} (mode ${octal(mode)}): its members could replace what vio4wd keeps ` +
        `under it (chmod g-w ${path})`;
    }
    if ((mode & 0o002) !== 0 && last && trust.noWorldWrite) {
      return `${path} is writable by every user (mode ${octal(mode)}): anyone could put a socket there for vio4wd to ` +
        `use; sockets from clients go in a directory of root's or QEMU's (chmod o-w ${path})`;
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
  const checks: [string, string, DirTrust][] = [
    ["VIRTIOFWD_SOCKET_DIR", c.socketDir, socketDirOwnTrust(accounts)],
    ["VIRTIOFWD_PID_DIR", c.pidDir, { shared: sharedSocketDir(c.socketDir, accounts) }],
  ];
  return checks.flatMap(([variable, dir, trust]) => {
    const why = untrustedDir(dir, trust);
    return why ? [{ variable, dir, why }] : [];
  });
}

/** Who may own and write VIRTIOFWD_SOCKET_DIR itself: the socket owner and group (handed it at start). */
export function socketDirOwnTrust(
  accounts: Pick<SocketAccounts, "owner" | "group">,
): { owners: number[]; writerGroups: (number | null)[] } {
  const owner = accounts.owner ? accountId("passwd", accounts.owner) : null;
  const group = accounts.group ? accountId("group", accounts.group) : null;
  return { owners: owner === null ? [] : [owner], writerGroups: [group] };
}

/** VIRTIOFWD_SOCKET_DIR as a directory others' files may lie in or under (see DirTrust.shared). */
export function sharedSocketDir(
  socketDir: string,
  accounts: Pick<SocketAccounts, "owner" | "group">,
): NonNullable<DirTrust["shared"]> {
  return { path: socketDir, ...socketDirOwnTrust(accounts) };
}

/**
 * Whether `dir` passes the trust check only because VIRTIOFWD_SOCKET_DIR, in its chain, belongs
 * to the socket accounts: what the daemon warns about (QEMU's account could replace what is there).
 */
export function trustedOnlyAsShared(dir: string, trust: DirTrust): boolean {
  return trust.shared !== undefined && untrustedDir(dir, trust) === null &&
    untrustedDir(dir, { ...trust, shared: undefined }) !== null;
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

/**
 * Who may own, and which groups may write, a directory that holds vhost-user sockets: the socket
 * owner and group, and the account libvirt runs QEMU as (in client mode QEMU creates its socket
 * there: Neutron's vhostuser_socket_dir, libvirt's /var/lib/libvirt/qemu).
 */
export function socketDirTrust(
  accounts: Pick<SocketAccounts, "owner" | "group">,
  qemu: { user: string; group: string },
  etc = "/etc",
): DirTrust {
  const ids = (file: "passwd" | "group", names: string[]) =>
    [...new Set(names.filter((n) => n !== "").map((n) => accountId(file, n, etc)))].filter((x) => x !== null);
  return {
    owners: ids("passwd", [accounts.owner, qemu.user]),
    writerGroups: ids("group", [accounts.group, qemu.group]),
    noWorldWrite: true,
  };
}

/** Where a client may put a vhost-user socket (ADD_SOCK): the socket directory and, if any, others. */
export interface SocketPlaces {
  /** VIRTIOFWD_SOCKET_DIR: trusted at start. */
  socketDir: string;
  /** VIO4WD_SOCKET_DIRS_ALLOW: the only other directories allowed; empty = any trusted one. */
  allow: readonly string[];
  /** Who may own and write those other directories. */
  trust: DirTrust;
}

/** The longest socket path a unix socket address holds (sun_path less its NUL). */
export const MAX_SOCKET_PATH = 107;

/**
 * Why a client's vhost-user socket path is refused, naming the rule and the fix; null when it may
 * be used. The path must be absolute and plain (no `.`/`..`, no empty parts, printable, at most
 * 107 bytes); its directory is the socket directory, or one that exists, is on the allow-list if
 * there is one, passes {@link untrustedDir} with the socket accounts and QEMU's, and reaches its
 * real path only through links of root's. Whether something already lies at the path is the
 * data plane's to check (only a leftover socket of the daemon's may be replaced).
 */
export function socketPathRefusal(path: string, places: SocketPlaces): string | null {
  if (!path.startsWith("/")) return `'${path}' is not an absolute path`;
  if ([...path].some((ch) => ch < " " || ch === "\x7f")) return "the path has control characters";
  if (new TextEncoder().encode(path).length > MAX_SOCKET_PATH) {
    return `the path is longer than a unix socket address holds (${MAX_SOCKET_PATH} bytes)`;
  }
  const parts = path.split("/").slice(1);
  if (parts.some((p) => p === "" || p === "." || p === "..")) {
    return `'${path}' is not a plain path (empty, '.' or '..' parts): name the socket by its plain absolute path`;
  }
  const dir = "/" + parts.slice(0, -1).join("/");
  const socketDir = places.socketDir.replace(/\/+$/, "") || "/";
  if (dir === socketDir) return null;
  const fix = `(VIRTIOFWD_SOCKET_DIR=${socketDir}${
    places.allow.length ? `, VIO4WD_SOCKET_DIRS_ALLOW=${places.allow.join(",")}` : ""
  })`;
  if (places.allow.length > 0 && !places.allow.some((a) => (a.replace(/\/+$/, "") || "/") === dir)) {
    return `${dir} is neither the socket directory nor in VIO4WD_SOCKET_DIRS_ALLOW ${fix}: add it there`;
  }
  for (let i = 1; i < parts.length; i++) {
    const prefix = "/" + parts.slice(0, i).join("/");
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(prefix);
    } catch {
      return `${prefix} does not exist: create the socket directory ${dir} first (QEMU's or Neutron's)`;
    }
    if (st.isSymlink && st.uid !== 0) {
      return `${prefix} is a link of uid ${st.uid}, not of root's: it could point the socket anywhere ` +
        `(use the real path ${realPathOr(prefix)})`;
    }
    if (!st.isSymlink && !st.isDirectory) return `${prefix} is not a directory`;
  }
  const why = untrustedDir(dir, places.trust);
  return why === null ? null : `socket directory ${dir}: ${why}`;
}

function realPathOr(p: string): string {
  try {
    return Deno.realPathSync(p);
  } catch {
    return p;
  }
}
