/**
 * The IPC file monitor: the original's single command file (`/tmp/vio_cmd` by default) holding
 * `add_port <netdev>` or `del_port <netdev>`. Once the file has stayed unchanged for 50 ms (the
 * original read it as soon as it existed, and so could take a half-written one), a valid command is
 * carried out and the file deleted;
 * a malformed file is logged once with the reason and left alone (fix or delete it). Adds and
 * removes are unconditional, as the original's: asking for what is already so is an error in the log.
 *
 * The file sits in a directory every user can write to, so it is read as hostile: opened without
 * following a symbolic link and without blocking (a FIFO), only as a regular file owned by root or
 * by the group VIO4WD_ZMQ_GROUP, and at most 129 bytes of it. Anything else is logged once, ignored.
 *
 * @module
 */

import { errorText, type Logger } from "../common/log.ts";
import { LibcError, type OpenedFile, readNoFollow, S_IFMT, S_IFREG } from "../../ffi/libc.ts";
import { ERRNO } from "../../ffi/errno.ts";
import type { RelayPorts } from "../relays/table.ts";
import { mapNetdev, type VfMapping } from "./netdev.ts";
import { addMapping, relayVf, removeMapping } from "./relay_sync.ts";

/** How often the file is looked for. */
const POLL_MS = 10;
/**
 * How long the file must stay unchanged (size, mtime, inode) before it is read: a writer truncates
 * or creates it first and writes after, and an empty or half-written file is not a command yet.
 */
const SETTLE_MS = 50;
/** The original reads at most this much of the file. */
const MAX_BYTES = 128;

/** A parsed command, or why the text is not one. */
export type IpcCommand = { op: "add" | "del"; netdev: string } | { error: string };

/** Parses the file's text: exactly `add_port <netdev>` or `del_port <netdev>` (one line). */
export function parseIpcCommand(text: string): IpcCommand {
  if (text.length > MAX_BYTES) return { error: `longer than ${MAX_BYTES} bytes` };
  const m = /^\s*(add_port|del_port)\s+(\S+)\s*$/.exec(text);
  if (!m) return { error: `expected 'add_port <netdev>' or 'del_port <netdev>', got '${text.trim().slice(0, 60)}'` };
  if (!/^[^/\s]{1,15}$/.test(m[2])) {
    return { error: `'${m[2]}' is not a network interface name (1-15 characters, no '/')` };
  }
  return { op: m[1] === "add_port" ? "add" : "del", netdev: m[2] };
}

/** Watches the command file, acting on the relay table's port view. */
export class IpcMonitor {
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy = false;
  /** Identity (mtime, size, inode, mode) of a malformed file already reported. */
  #reported = "";
  /** Identity of the file last seen and since when it has not changed. */
  #settling = { id: "", since: 0 };

  /**
   * @param trustedGid besides root, the group whose files are taken as commands (VIO4WD_ZMQ_GROUP);
   * null: root only
   */
  constructor(
    readonly ports: RelayPorts,
    readonly log: Logger,
    readonly path: string,
    readonly trustedGid: number | null = null,
    readonly map: (netdev: string) => VfMapping = mapNetdev,
  ) {}

  start(): void {
    this.log.info(`ipc: watching ${this.path} for add_port/del_port commands`);
    this.#timer = setInterval(() => {
      if (!this.#busy) {
        this.#busy = true;
        this.#poll().finally(() => this.#busy = false);
      }
    }, POLL_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #poll(): Promise<void> {
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.lstat(this.path); // the link itself, never what it points at
    } catch {
      this.#reported = "";
      this.#settling = { id: "", since: 0 };
      return;
    }
    const id = `${stat.mtime?.getTime()}:${stat.size}:${stat.ino}:${stat.mode}`;
    if (id === this.#reported) return;
    if (id !== this.#settling.id) {
      this.#settling = { id, since: Date.now() };
      return;
    }
    if (Date.now() - this.#settling.since < SETTLE_MS) return;
    const log = this.log;
    const ignore = (why: string) => {
      log.error(`ipc: ${this.path} ignored: ${why}`);
      this.#reported = id;
    };
    let f: OpenedFile;
    try {
      f = readNoFollow(this.path, MAX_BYTES + 1);
    } catch (e) {
      if (e instanceof LibcError && e.errno === ERRNO.ENOENT) return;
      if (e instanceof LibcError && e.errno === ERRNO.ELOOP) return ignore("it is a symbolic link");
      return ignore(`cannot be read (${errorText(e)})`);
    }
    if ((f.mode & S_IFMT) !== S_IFREG) return ignore("it is not a regular file");
    if (f.uid !== 0 && (this.trustedGid === null || f.gid !== this.trustedGid)) {
      return ignore(
        `it belongs to uid ${f.uid}, gid ${f.gid}: commands are taken from root's files${
          this.trustedGid === null ? "" : ` and group ${this.trustedGid}'s (VIO4WD_ZMQ_GROUP)`
        } only`,
      );
    }
    const text = new TextDecoder().decode(f.data);
    const cmd = parseIpcCommand(text);
    if ("error" in cmd) {
      log.error(`ipc: ${this.path} is not a command (${cmd.error}); left as it is`);
      this.#reported = id;
      return;
    }
    await Deno.remove(this.path).catch(() => {});
    let m: VfMapping;
    try {
      m = this.map(cmd.netdev);
    } catch (e) {
      log.error(`ipc: ${cmd.op}_port ${cmd.netdev}: ${errorText(e)}`);
      return;
    }
    const vf = relayVf(this.ports, this.log, "ipc", m);
    if (vf === undefined) return;
    if (cmd.op === "add") {
      if (vf !== null) log.error(`ipc: add_port ${cmd.netdev}: relay ${m.relay} already has ${vf}`);
      else if (addMapping(this.ports, this.log, "ipc", m)) {
        log.info(`ipc: Adding netdev '${cmd.netdev}' to virtio ${m.relay}`);
      }
    } else if (!removeMapping(this.ports, this.log, "ipc", m)) {
      log.error(`ipc: del_port ${cmd.netdev}: relay ${m.relay} does not have ${m.device}`);
    } else {
      log.info(`ipc: removing netdev '${cmd.netdev}' from virtio ${m.relay}`);
    }
  }
}
