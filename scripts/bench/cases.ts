/**
 * The bench's cases: which relay, how many relays, which VF stand-in.
 *
 * @module
 */

/** DPDK 22.11 from Debian: RTE_MAX_ETHPORTS. The generator spends two ports per relay. */
export const MAX_ETHPORTS = 32;
export const MANY_RELAYS = MAX_ETHPORTS / 2;
/** Idle mode's sleep in the bench: the figure the manual suggests. */
export const IDLE_US = 500;
/** Packet sizes measured. */
export const SIZES = [64, 1518] as const;

export type RelayKind = "testpmd" | "vio4wd" | "ovs";

/**
 * The VF stand-in: memif (the usual one), or a vhost-user pair (net_vhost in the relay,
 * virtio_user in the generator). OVS needs the latter: its PMD thread transmits on a second
 * queue that a single-queue memif peer never reads (OVS gives every dpdk port one TX queue per
 * thread; net_vhost,queues=1 caps that at one).
 */
export type VfKind = "memif" | "vhost";

/**
 * Another build for vio4wd to run on, measured beside the usual one: `steps`, the profiling build
 * of the shim (`make -C shim STEPS=1`: busy cycles split by step), or `against`, any other build
 * (`--against PATH`: a change measured side by side with the one checked out). `path` is a shim
 * (run by this checkout's daemon, VIO4WD_SHIM: same ABI) or, for `against`, another checkout
 * whose own `vio4wd` runs (any version: the bench reads it over the stats protocol).
 */
export type ShimVariant = { label: "steps" | "against"; path: string };

/** How a daemon runs on `v`: another checkout's program, or this one's on another shim. */
export function variantDaemonOptions(v?: ShimVariant): { env?: Record<string, string>; executable?: string } {
  if (!v) return {};
  return v.path.endsWith(".so") ? { env: { VIO4WD_SHIM: v.path } } : { executable: `${v.path}/vio4wd` };
}

/** A relay to measure; `idleUs`: vio4wd with idle mode (VIO4WD_IDLE_SLEEP_US); `shim`: vio4wd on another build. */
export type Case = { kind: RelayKind; relays: number; vf: VfKind; idleUs?: number; shim?: ShimVariant };
export const caseName = (c: Case) =>
  (c.relays === 1 ? c.kind : `${c.kind}_${c.relays}_relays`) + (c.vf === "memif" ? "" : "_vhost_vf") +
  (c.idleUs ? "_idle" : "") + (c.shim ? `_${c.shim.label}` : "");

/** `cases` with each vio4wd case (polling) followed by the same case on each of `variants`. */
export function withVariants(cases: readonly Case[], variants: readonly ShimVariant[]): Case[] {
  return cases.flatMap((c) =>
    c.kind === "vio4wd" && !c.idleUs && !c.shim ? [c, ...variants.map((shim) => ({ ...c, shim }))] : [c]
  );
}

/** The cases of a full run, in the order they alternate. */
export const CASES: Case[] = [
  { kind: "testpmd", relays: 1, vf: "memif" },
  { kind: "vio4wd", relays: 1, vf: "memif" },
  { kind: "vio4wd", relays: 1, vf: "memif", idleUs: IDLE_US },
  { kind: "vio4wd", relays: MANY_RELAYS, vf: "memif" },
  { kind: "vio4wd", relays: MAX_ETHPORTS, vf: "memif" },
  { kind: "testpmd", relays: MANY_RELAYS, vf: "memif" },
  { kind: "testpmd", relays: 1, vf: "vhost" },
  { kind: "vio4wd", relays: 1, vf: "vhost" },
  { kind: "ovs", relays: 1, vf: "vhost" },
];
