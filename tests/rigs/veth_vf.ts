/**
 * A VF stand-in that two processes can hold at once, for the hot-upgrade cases: an AF_PACKET
 * socket (net_af_packet) on one end of a veth pair whose other end is the host's, in a network
 * namespace. And the 1 ms pinger that measures a traffic gap across it.
 *
 * @module
 */

import type { NetNs } from "./netns.ts";
import { assertEq } from "./assert.ts";

const PINGER = new URL("./pinger.py", import.meta.url).pathname;

/**
 * Makes the veth pair in `ns` (the host's end `vfh` with address `hostCidr`); returns the
 * daemon's VF devargs for the other end.
 */
export async function vethVf(ns: NetNs, hostCidr: string): Promise<string> {
  const veth = await ns.sh(
    `ip link add vfd type veth peer name vfh && ip addr add ${hostCidr} dev vfh && ip link set vfd up && ` +
      // whole frames with their checksums, as a NIC puts on the wire (AF_PACKET would get 64 KiB
      // GSO frames with checksums left to the hardware, which its 2 KiB ring slots cut)
      "ip link set vfh up && ethtool -K vfh tso off gso off tx off && ethtool -K vfd gro off rx off",
  );
  assertEq(veth.code, 0, `the veth pair: ${veth.stderr}`);
  return "net_af_packet0,iface=vfd";
}

/** What the pinger saw. */
export interface Pings {
  /** Sequence numbers answered, in arrival order (a duplicate as often as it came). */
  replies: number[];
  dups: number;
  longest_silence_ms: number;
}

/** Pings `target` from `ns` every `everyS` seconds, `count` times (tests/rigs/pinger.py). */
export async function pingEvery(ns: NetNs, target: string, everyS: number, count: number): Promise<Pings> {
  const out = await ns.run(["python3", PINGER, target, String(everyS), String(count)]);
  return JSON.parse(out.stdout) as Pings;
}
