/**
 * What the port monitors (OVSDB, IPC) share: turning "this device should be on that relay" into
 * relay-table operations, conditional as the original's monitors are (adding what is there and
 * removing what is not are no-ops), and reconciling a desired set against what a monitor owns.
 *
 * @module
 */

import { isPciAddress, normalizePci } from "../config/values.ts";
import { DataplaneError } from "../dataplane/dataplane.ts";
import { RelayError, type RelayTable } from "../daemon/relays.ts";
import type { VfMapping } from "./netdev.ts";

const norm = (d: string) => isPciAddress(d) ? normalizePci(d) : d;

/** Adds `m` unless the relay already has that device; returns success, logging why not. */
export function addMapping(table: RelayTable, source: string, m: VfMapping): boolean {
  const r = table.relays[m.relay];
  if (r.vf === norm(m.device)) return true;
  try {
    table.addVf(m.relay, m.device);
    table.log.info(`${source}: added ${m.device} to relay ${m.relay}`);
    return true;
  } catch (e) {
    if (e instanceof DataplaneError || e instanceof RelayError) {
      table.log.error(`${source}: cannot add ${m.device} to relay ${m.relay}: ${e.message}`);
      return false;
    }
    throw e;
  }
}

/** Removes `m` if the relay has exactly that device; returns whether something was removed. */
export function removeMapping(table: RelayTable, source: string, m: VfMapping): boolean {
  const r = table.relays[m.relay];
  if (r.vf !== norm(m.device)) return false;
  try {
    table.removeVf(m.relay);
    table.log.info(`${source}: removed ${m.device} from relay ${m.relay}`);
    return true;
  } catch (e) {
    if (e instanceof DataplaneError || e instanceof RelayError) {
      table.log.error(`${source}: cannot remove ${m.device} from relay ${m.relay}: ${e.message}`);
      return false;
    }
    throw e;
  }
}

/**
 * The relays one monitor manages. {@link reconcile} brings the table to a desired set: removes
 * what is owned but no longer wanted (or wanted elsewhere), adds what is wanted and missing, and
 * leaves every unchanged relay alone.
 */
export class OwnedRelays {
  /** key (interface name or row id) -> the mapping it was added with. */
  readonly owned = new Map<string, VfMapping>();

  constructor(readonly table: RelayTable, readonly source: string) {}

  reconcile(desired: Map<string, VfMapping>): void {
    for (const [key, m] of [...this.owned]) {
      const want = desired.get(key);
      if (want && want.device === m.device && want.relay === m.relay) continue;
      removeMapping(this.table, this.source, m);
      this.owned.delete(key);
    }
    const taken = new Set([...this.owned.values()].map((m) => m.relay));
    for (const [key, m] of desired) {
      if (this.owned.has(key)) continue;
      if (taken.has(m.relay)) {
        this.table.log.error(`${this.source}: ${key} maps to relay ${m.relay}, which another interface already has`);
        continue;
      }
      if (addMapping(this.table, this.source, m)) {
        this.owned.set(key, m);
        taken.add(m.relay);
      }
    }
  }
}
