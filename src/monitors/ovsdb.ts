/**
 * The OVSDB monitor: speaks RFC 7047 JSON-RPC to ovsdb-server's unix socket, monitors the
 * Interface table's `name` and `external_ids`, and keeps one relay per tagged interface.
 *
 * An interface is relayed while `external_ids:virtio_forwarder` (or `virtio_relay`) holds a
 * number (any number, 0 too, as the original). Its VF and relay id come from sysfs (the VF's
 * number under its PF), or, for devices without SR-IOV, from `external_ids:vio4wd_device=<PCI
 * address or devargs>` with the tag's number as the relay id. After every (re)connection the
 * full table is reconciled against the relays this monitor owns: tagged ones added, untagged
 * ones removed, unchanged ones untouched. Connection losses are logged once, then retried.
 *
 * @module
 */

import { errorText, type Logger } from "../common/log.ts";
import type { RelayPorts } from "../relays/table.ts";
import { mapNetdev, type VfMapping } from "./netdev.ts";
import { OwnedRelays } from "./relay_sync.ts";

/** Keys of external_ids that tag an interface for relaying. */
export const TAG_KEYS = ["virtio_forwarder", "virtio_relay"] as const;
/** Key naming the device directly (no sysfs). */
export const DEVICE_KEY = "vio4wd_device";

const MONITOR_ID = "vio4wd-interfaces";
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 1000;
const ECHO_EVERY_MS = 5000;

/** One Interface row as monitored. */
export interface InterfaceRow {
  name: string;
  externalIds: Record<string, string>;
}

/** An OVSDB map value (`["map", [[k, v], ...]]`) as an object. */
export function ovsdbMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(v) && v[0] === "map" && Array.isArray(v[1])) {
    for (const pair of v[1]) if (Array.isArray(pair) && pair.length === 2) out[String(pair[0])] = String(pair[1]);
  }
  return out;
}

/** C's strtol(base 0) on a whole tag value: decimal, 0x hex or 0-octal; null when not a number. */
export function tagNumber(v: string): number | null {
  const s = v.trim();
  if (/^[+-]?0[xX][0-9a-fA-F]+$/.test(s)) return parseInt(s, 16);
  if (/^[+-]?0[0-7]+$/.test(s)) return parseInt(s, 8);
  if (/^[+-]?\d+$/.test(s)) return parseInt(s, 10);
  return null;
}

/** Where a row's interface should be relayed, null when it is not tagged; throws when it cannot be mapped. */
export function rowMapping(row: InterfaceRow, map: (netdev: string) => VfMapping = mapNetdev): VfMapping | null {
  const key = TAG_KEYS.find((k) => k in row.externalIds);
  if (key === undefined) return null;
  const n = tagNumber(row.externalIds[key]);
  if (n === null) return null;
  const device = row.externalIds[DEVICE_KEY];
  if (device !== undefined) {
    if (n < 0) throw new Error(`${key}=${row.externalIds[key]}: with ${DEVICE_KEY} the tag is the relay id (>= 0)`);
    return { device, relay: n };
  }
  return map(row.name);
}

/** The largest JSON-RPC message taken from the server, and the deepest nesting. */
export const MAX_MESSAGE_CHARS = 4 << 20;
export const MAX_DEPTH = 64;

/** The server's stream is not JSON-RPC (or too big, or too deep): the connection is dropped. */
export class JsonStreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JsonStreamError";
  }
}

/**
 * Splits a byte stream into complete top-level JSON texts. The scan keeps its state between
 * reads, so every byte is looked at once however the stream is cut; only whitespace may come
 * between messages, a message may be at most MAX_MESSAGE_CHARS and MAX_DEPTH deep.
 */
export class JsonFramer {
  #buf = "";
  #pos = 0;
  #start = -1;
  #depth = 0;
  #inString = false;
  #escaped = false;
  #dec = new TextDecoder();
  /** Characters scanned so far (each once). */
  scanned = 0;

  push(chunk: Uint8Array): unknown[] {
    this.#buf += this.#dec.decode(chunk, { stream: true });
    const out: unknown[] = [];
    for (; this.#pos < this.#buf.length; this.#pos++) {
      this.scanned++;
      const c = this.#buf[this.#pos];
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (c === "\\") this.#escaped = true;
        else if (c === '"') this.#inString = false;
        continue;
      }
      if (this.#depth === 0 && c !== "{" && c !== "[") {
        if (c === " " || c === "\n" || c === "\r" || c === "\t") continue;
        throw new JsonStreamError(`'${c}' between JSON-RPC messages`);
      }
      if (c === '"') this.#inString = true;
      else if (c === "{" || c === "[") {
        if (this.#depth++ === 0) this.#start = this.#pos;
        if (this.#depth > MAX_DEPTH) throw new JsonStreamError(`a message nested deeper than ${MAX_DEPTH}`);
      } else if ((c === "}" || c === "]") && --this.#depth === 0) {
        const text = this.#buf.slice(this.#start, this.#pos + 1);
        try {
          out.push(JSON.parse(text));
        } catch (e) {
          throw new JsonStreamError(`a message that is not JSON (${errorText(e)})`);
        }
        this.#buf = this.#buf.slice(this.#pos + 1);
        this.#pos = -1;
      }
    }
    if (this.#depth === 0) {
      this.#buf = ""; // only whitespace is left
      this.#pos = 0;
    } else if (this.#buf.length - this.#start > MAX_MESSAGE_CHARS) {
      throw new JsonStreamError(`a message above ${MAX_MESSAGE_CHARS >> 20} MiB`);
    }
    return out;
  }
}

/** The OVSDB monitor over the relay table's port view. */
export class OvsdbMonitor {
  readonly rows = new Map<string, InterfaceRow>();
  readonly #owned: OwnedRelays;
  #conn: Deno.UnixConn | null = null;
  #stopping = false;
  #loop: Promise<void> = Promise.resolve();
  #mapErrors = new Map<string, string>();
  /** Resolves the first time the table has been reconciled with the server (tests, logs). */
  synced = 0;

  constructor(
    readonly ports: RelayPorts,
    readonly log: Logger,
    readonly path: string,
    readonly map: (netdev: string) => VfMapping = mapNetdev,
  ) {
    this.#owned = new OwnedRelays(ports, log, "ovsdb");
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    try {
      this.#conn?.close();
    } catch { /* closed */ }
    await this.#loop;
  }

  /** The last bad stream logged (a server that keeps sending it is logged once). */
  #badStream = "";

  /** starting: never synced; up: synced on the current connection; down: lost, not yet resynced. */
  #state: "starting" | "up" | "down" = "starting";

  async #run(): Promise<void> {
    const log = this.log;
    let retry = RETRY_MIN_MS;
    let reported = false; // the current outage has been logged
    while (!this.#stopping) {
      try {
        this.#conn = await Deno.connect({ transport: "unix", path: this.path });
      } catch (e) {
        if (!reported) {
          const why = errorText(e);
          log.notice(`ovsdb: cannot connect to ${this.path} (${why}); retrying every ${RETRY_MAX_MS / 1000} s`);
          reported = true;
        }
        await new Promise((r) => setTimeout(r, retry));
        retry = Math.min(retry * 2, RETRY_MAX_MS);
        continue;
      }
      retry = RETRY_MIN_MS;
      let why = "the server closed the connection";
      try {
        await this.#session(this.#conn);
      } catch (e) {
        why = errorText(e);
        if (e instanceof JsonStreamError && this.#state !== "up" && why !== this.#badStream) {
          log.error(`ovsdb: ${this.path} sent ${why}: connection dropped, reconnecting`);
        }
        if (e instanceof JsonStreamError) this.#badStream = why;
      }
      try {
        this.#conn.close();
      } catch { /* closed */ }
      this.#conn = null;
      // A session that never synced belongs to the outage already reported (or to start-up).
      if (this.#state === "up" && !this.#stopping) {
        log.warn(`ovsdb: connection to ${this.path} lost (${why}); relays stay as they are, reconnecting`);
        this.#state = "down";
        reported = true;
      }
      if (this.#state !== "up") await new Promise((r) => setTimeout(r, retry));
    }
  }

  async #session(conn: Deno.UnixConn): Promise<void> {
    const enc = new TextEncoder();
    const send = (msg: unknown) => conn.write(enc.encode(JSON.stringify(msg)));
    await send({
      id: MONITOR_ID,
      method: "monitor",
      params: ["Open_vSwitch", MONITOR_ID, { Interface: { columns: ["name", "external_ids"] } }],
    });
    const framer = new JsonFramer();
    let lastHeard = Date.now();
    const keepalive = setInterval(() => {
      if (Date.now() - lastHeard > 2 * ECHO_EVERY_MS) {
        try {
          conn.close(); // no answer to two echoes: the read below ends and we reconnect
        } catch { /* closed */ }
        return;
      }
      send({ id: `echo-${Date.now()}`, method: "echo", params: [] }).catch(() => {});
    }, ECHO_EVERY_MS);
    try {
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) return;
        lastHeard = Date.now();
        for (const msg of framer.push(buf.subarray(0, n))) await this.#handle(msg as Record<string, unknown>, send);
      }
    } finally {
      clearInterval(keepalive);
    }
  }

  async #handle(msg: Record<string, unknown>, send: (m: unknown) => Promise<number>): Promise<void> {
    if (msg.method === "echo") {
      await send({ id: msg.id, result: msg.params ?? [], error: null });
      return;
    }
    if (msg.id === MONITOR_ID) {
      if (msg.error) throw new Error(`monitor request refused: ${JSON.stringify(msg.error)}`);
      this.rows.clear();
      this.#apply(msg.result);
      this.synced++;
      this.log.notice(`ovsdb: ${this.#state === "down" ? "reconnected to" : "connected to"} ${this.path}`);
      this.#state = "up";
      return;
    }
    if (msg.method === "update" && Array.isArray(msg.params) && msg.params[0] === MONITOR_ID) {
      this.#apply(msg.params[1]);
    }
  }

  /** Applies table-updates to the rows, then reconciles the relays. */
  #apply(updates: unknown): void {
    const table = (updates as Record<string, Record<string, { new?: Record<string, unknown> }>> | null)?.Interface ??
      {};
    for (const [uuid, change] of Object.entries(table)) {
      if (!change.new) {
        this.rows.delete(uuid);
        continue;
      }
      const prev = this.rows.get(uuid);
      this.rows.set(uuid, {
        name: typeof change.new.name === "string" ? change.new.name : prev?.name ?? "",
        externalIds: "external_ids" in change.new ? ovsdbMap(change.new.external_ids) : prev?.externalIds ?? {},
      });
    }
    const desired = new Map<string, VfMapping>();
    for (const row of this.rows.values()) {
      try {
        const m = rowMapping(row, this.map);
        if (m) desired.set(row.name, m);
        this.#mapErrors.delete(row.name);
      } catch (e) {
        const why = errorText(e);
        if (this.#mapErrors.get(row.name) !== why) this.log.error(`ovsdb: interface ${row.name}: ${why}`);
        this.#mapErrors.set(row.name, why);
      }
    }
    this.#owned.reconcile(desired);
  }
}
