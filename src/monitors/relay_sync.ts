/**
 * What the port monitors (OVSDB, IPC) share: turning "this device should be on that relay" into
 * relay-table operations, conditional as the original's monitors are (adding what is there and
 * removing what is not are no-ops), and reconciling a desired set against what a monitor owns.
 *
 * @module
 */

import type { Logger } from "../common/log.ts";
import { attempt, normalizeDevice, type RelayPorts } from "../relays/table.ts";
import type { VfMapping } from "./netdev.ts";

/** The VF of the mapping's relay (null: none), or undefined (logged) when the relay id is out of range. */
export function relayVf(ports: RelayPorts, log: Logger, source: string, m: VfMapping): string | null | undefined {
  if (m.relay < ports.limits.maxRelays) return ports.get(m.relay).vf;
  log.error(`${source}: ${m.device} maps to relay ${m.relay}, out of range 0-${ports.limits.maxRelays - 1}`);
  return undefined;
}

/** Adds `m` unless the relay already has that device; returns success, logging why not. */
export function addMapping(ports: RelayPorts, log: Logger, source: string, m: VfMapping): boolean {
  const vf = relayVf(ports, log, source, m);
  if (vf === undefined) return false;
  if (vf === normalizeDevice(m.device)) return true;
  if (attempt(log, `${source}: cannot add ${m.device} to relay ${m.relay}`, () => ports.addVf(m.relay, m.device))) {
    return false;
  }
  log.info(`${source}: added ${m.device} to relay ${m.relay}`);
  return true;
}

/** Removes `m` if the relay has exactly that device; returns whether something was removed. */
export function removeMapping(ports: RelayPorts, log: Logger, source: string, m: VfMapping): boolean {
  if (relayVf(ports, log, source, m) !== normalizeDevice(m.device)) return false;
  if (attempt(log, `${source}: cannot remove ${m.device} from relay ${m.relay}`, () => ports.removeVf(m.relay))) {
    return false;
  }
  log.info(`${source}: removed ${m.device} from relay ${m.relay}`);
  return true;
}

/**
 * The relays one monitor manages. {@link reconcile} brings the table to a desired set: removes
 * what is owned but no longer wanted (or wanted elsewhere), adds what is wanted and missing, and
 * leaves every unchanged relay alone.
 */
export class OwnedRelays {
  /** key (interface name or row id) -> the mapping it was added with. */
  readonly owned = new Map<string, VfMapping>();

  constructor(readonly ports: RelayPorts, readonly log: Logger, readonly source: string) {}

  reconcile(desired: Map<string, VfMapping>): void {
    for (const [key, m] of [...this.owned]) {
      const want = desired.get(key);
      if (want && want.device === m.device && want.relay === m.relay) continue;
      removeMapping(this.ports, this.log, this.source, m);
      this.owned.delete(key);
    }
    const taken = new Set([...this.owned.values()].map((m) => m.relay));
    for (const [key, m] of desired) {
      if (this.owned.has(key)) continue;
      if (taken.has(m.relay)) {
        this.log.error(`${this.source}: ${key} maps to relay ${m.relay}, which another interface already has`);
        continue;
      }
      if (addMapping(this.ports, this.log, this.source, m)) {
        this.owned.set(key, m);
        taken.add(m.relay);
      }
    }
  }
}
