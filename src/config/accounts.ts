/**
 * Who the vhost-user sockets belong to, as the original decides it: a blank
 * VIRTIOFWD_SOCKET_OWNER / GROUP means the original daemon's own defaults, `libvirt-qemu` and
 * `kvm` (its start script passes no option, so the daemon's defaults apply), which is what lets
 * libvirt's QEMU reach the sockets. Where those accounts do not exist, the daemon keeps its own
 * (with a warning); a named account that does not exist is an error. Also: whether the account
 * QEMU runs as can use sockets owned that way.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { accountId } from "./values.ts";

/** The original daemon's socket owner and group (`-u` / `-g` defaults). */
export const ORIGINAL_SOCKET_OWNER = "libvirt-qemu";
export const ORIGINAL_SOCKET_GROUP = "kvm";

/** The owner and group sockets get ("": the daemon's own), and what to tell the operator. */
export interface SocketAccounts {
  owner: string;
  group: string;
  warnings: string[];
  /** A named account that does not exist: what to fix (the daemon refuses to start). */
  error: string | null;
}

/** Resolves the configured socket owner and group against `<etc>/passwd` and `<etc>/group`. */
export function socketAccounts(c: Pick<Config, "socketOwner" | "socketGroup">, etc = "/etc"): SocketAccounts {
  const out: SocketAccounts = { owner: "", group: "", warnings: [], error: null };
  const sides = [
    ["owner", "VIRTIOFWD_SOCKET_OWNER", c.socketOwner, ORIGINAL_SOCKET_OWNER, "passwd", "user"],
    ["group", "VIRTIOFWD_SOCKET_GROUP", c.socketGroup, ORIGINAL_SOCKET_GROUP, "group", "group"],
  ] as const;
  for (const [key, variable, value, original, file, kind] of sides) {
    if (value !== "") {
      if (accountId(file, value, etc) === null) {
        out.error ??= `${variable}='${value}': no such ${kind} on this host; name an existing ${kind}, or leave it ` +
          `blank for ${original} (the original's default)`;
      }
      out[key] = value;
    } else if (accountId(file, original, etc) !== null) {
      out[key] = original;
    } else {
      out.warnings.push(
        `${variable} is blank, which means ${original} (the original daemon's default), but there is no ${kind} ` +
          `${original} here: the sockets keep the daemon's own ${kind}`,
      );
    }
  }
  return out;
}

/** The user and group libvirt runs QEMU as (`user`/`group` in qemu.conf; Debian's defaults otherwise). */
export function qemuAccount(etc = "/etc"): { user: string; group: string } {
  let text = "";
  try {
    text = Deno.readTextFileSync(`${etc}/libvirt/qemu.conf`);
  } catch { /* libvirt not installed: its defaults */ }
  const get = (key: string) => new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`, "m").exec(text)?.[1];
  return { user: get("user") ?? ORIGINAL_SOCKET_OWNER, group: get("group") ?? ORIGINAL_SOCKET_GROUP };
}

/**
 * Why QEMU running as `qemu` cannot connect to sockets owned by `a` (mode 0660), or null when it
 * can. Root can always; otherwise QEMU must be the owner or in the group.
 */
export function qemuCannotReach(a: SocketAccounts, qemu: { user: string; group: string }): string | null {
  if (qemu.user === "root" || qemu.user === "0") return null;
  if (a.owner !== "" && a.owner === qemu.user) return null;
  if (a.group !== "" && a.group === qemu.group) return null;
  return `the sockets will be ${a.owner || "the daemon's user"}:${a.group || "the daemon's group"} mode 0660, ` +
    `but libvirt runs QEMU as ${qemu.user}:${qemu.group}, which cannot connect to them; set ` +
    `VIRTIOFWD_SOCKET_OWNER=${qemu.user} or VIRTIOFWD_SOCKET_GROUP=${qemu.group}`;
}
