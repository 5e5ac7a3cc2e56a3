/**
 * The socket-device pairings that port control made at run time (ADD_SOCK, with dynamic
 * sockets), kept in a state file so that a restarted daemon (an upgrade, a crash) serves the same
 * VMs on the same relays. The original forgot them: every OpenStack VM stayed without network
 * until it was plugged again.
 *
 * The file is the daemon's alone: `<VIO4WD_STATE_DIR>/pairings.json`, root's, mode 0600, in a
 * directory that passes the trust check; written whole under a fresh name and renamed; read
 * without following a link, at most 256 KiB, and only when it is a regular file of root's (or
 * the daemon's) that nobody else can write.
 *
 * @module
 */

import { readNoFollow } from "../../ffi/libc.ts";
import type { RelaySnapshot } from "./table.ts";

/** One pairing: the relay, its socket, and its VF (a device) or bond. */
export interface Pairing {
  relay: number;
  socket: string;
  device: string;
  bond?: { mode: number; members: string[] };
}

/** The state file's name in the state directory. */
export const PAIRINGS_FILE = "pairings.json";
/** What is read of it at most. */
const MAX_BYTES = 256 * 1024;
const FORMAT = 1;

/** The pairings to keep: every relay with a socket and a VF or bond (dynamic sockets only have those). */
export function pairingsOf(relays: readonly RelaySnapshot[]): Pairing[] {
  return relays.filter((r) => r.socket !== null && r.vf !== null).map((r) => ({
    relay: r.id,
    socket: r.socket!,
    device: r.vf!,
    ...(r.bond ? { bond: { mode: r.bond.mode, members: [...r.bond.members] } } : {}),
  }));
}

/** Writes `pairings` to `dir` atomically (a fresh 0600 file renamed over the old one). */
export function savePairings(dir: string, pairings: readonly Pairing[]): void {
  const path = `${dir}/${PAIRINGS_FILE}`;
  const fresh = `${path}.${Deno.pid}.new`;
  const text = JSON.stringify({ format: FORMAT, pairings }, null, 1) + "\n";
  try {
    Deno.removeSync(fresh);
  } catch { /* none */ }
  Deno.writeTextFileSync(fresh, text, { createNew: true, mode: 0o600 });
  Deno.renameSync(fresh, path);
}

/** What loading found: the pairings, and why anything in the file was not taken. */
export interface LoadedPairings {
  pairings: Pairing[];
  problems: string[];
}

/**
 * Reads the pairings in `dir`; a missing file is none. A file that is not a regular file of
 * root's or the daemon's, is writable by others, is too long or is not the format is ignored
 * whole (a problem says why); entries that are malformed are dropped one by one.
 */
export function loadPairings(dir: string): LoadedPairings {
  const path = `${dir}/${PAIRINGS_FILE}`;
  let f;
  try {
    f = readNoFollow(path, MAX_BYTES + 1);
  } catch (e) {
    const missing = e instanceof Error && /ENOENT/.test(e.message);
    return { pairings: [], problems: missing ? [] : [`${path}: ${(e as Error).message}; not read`] };
  }
  const self = Deno.uid() ?? 0;
  const ignored = (why: string): LoadedPairings => ({ pairings: [], problems: [`${path}: ${why}; ignored`] });
  if ((f.mode & 0o170000) !== 0o100000) return ignored("not a regular file");
  if (f.uid !== 0 && f.uid !== self) return ignored(`owned by uid ${f.uid}, not by root`);
  if ((f.mode & 0o022) !== 0) return ignored(`writable by others (mode ${(f.mode & 0o777).toString(8)})`);
  if (f.data.length > MAX_BYTES) return ignored(`longer than ${MAX_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(f.data));
  } catch {
    return ignored("not JSON");
  }
  const d = doc as { format?: unknown; pairings?: unknown };
  if (d?.format !== FORMAT || !Array.isArray(d.pairings)) return ignored(`not format ${FORMAT}`);
  const out: Pairing[] = [];
  const problems: string[] = [];
  for (const p of d.pairings as unknown[]) {
    const why = malformed(p);
    if (why) problems.push(`${path}: entry ${JSON.stringify(p).slice(0, 200)} dropped: ${why}`);
    else out.push(p as Pairing);
  }
  return { pairings: out, problems };
}

const isString = (x: unknown): x is string => typeof x === "string" && x.length > 0 && x.length <= 1024;

function malformed(p: unknown): string | null {
  if (typeof p !== "object" || p === null) return "not an object";
  const x = p as Record<string, unknown>;
  if (!Number.isInteger(x.relay) || (x.relay as number) < 0) return "no relay id";
  if (!isString(x.socket) || !x.socket.startsWith("/")) return "no absolute socket path";
  if (!isString(x.device)) return "no device";
  if (x.bond !== undefined) {
    const b = x.bond as Record<string, unknown>;
    if (
      typeof b !== "object" || b === null || !Number.isInteger(b.mode) || !Array.isArray(b.members) ||
      !b.members.every(isString)
    ) return "a bond without mode or members";
  } else if ([...x.device].some((ch) => ch < " ")) return "a device with control characters";
  return null;
}
