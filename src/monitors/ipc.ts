/**
 * The IPC file monitor: the original's single command file (`/tmp/vio_cmd` by default) holding
 * `add_port <netdev>` or `del_port <netdev>`. A valid command is carried out and the file deleted;
 * a malformed file is logged once with the reason and left alone (fix or delete it). Adds and
 * removes are unconditional, as the original's: asking for what is already so is an error in the log.
 *
 * @module
 */

import type { Logger } from "../common/log.ts";
import type { RelayPorts } from "../relays/table.ts";
import { mapNetdev, type VfMapping } from "./netdev.ts";
import { addMapping, relayVf, removeMapping } from "./relay_sync.ts";

/** How often the file is looked for. */
const POLL_MS = 10;
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
  /** Identity (mtime, size) of a malformed file already reported. */
  #reported = "";

  constructor(
    readonly ports: RelayPorts,
    readonly log: Logger,
    readonly path: string,
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
      stat = await Deno.stat(this.path);
    } catch {
      this.#reported = "";
      return;
    }
    const id = `${stat.mtime?.getTime()}:${stat.size}:${stat.ino}`;
    if (id === this.#reported) return;
    const log = this.log;
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      log.error(`ipc: cannot read ${this.path}: ${e instanceof Error ? e.message : e}`);
      this.#reported = id;
      return;
    }
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
      log.error(`ipc: ${cmd.op}_port ${cmd.netdev}: ${e instanceof Error ? e.message : e}`);
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
