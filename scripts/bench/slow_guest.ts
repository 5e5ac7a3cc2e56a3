/**
 * The bench's "slow guest" case: a generator offers packets to a relay's VF (memif) at full speed
 * while the guest behind the relay runs 5 ms of every 20 (stopped and continued, as a VM on a busy
 * host that is descheduled most of the time). Counted: packets offered, delivered to the guest,
 * dropped inside the relay (the goal is 0: what the guest refuses is held) and refused at the VF
 * (the memif ring full: the generator's TX drops; a real VF counts them as missed).
 *
 * @module
 */

import { DaemonProcess, num, type RelayState } from "../../tests/rigs/daemon_process.ts";
import { TestPmd } from "../../tests/rigs/testpmd.ts";
import { virtioUser } from "../../tests/rigs/devices.ts";
import { descheduleCycle } from "../../tests/rigs/signals.ts";
import { vfDevargs } from "./relays.ts";
import { type ShimVariant, variantDaemonOptions } from "./cases.ts";

/** One slow-guest run, in packets. */
export interface SlowGuestFigures {
  offered: number;
  delivered: number;
  dropped_in_relay: number;
  refused_at_vf: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the slow-guest case for `seconds` on the usual shim, or on `shim`. */
export async function slowGuest(tag: string, seconds: number, shim?: ShimVariant): Promise<SlowGuestFigures> {
  const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
  const vf = vfDevargs("memif", 0, `${dir}/vf0.sock`);
  const started: { close(): Promise<unknown> }[] = [];
  let d: DaemonProcess | null = null;
  try {
    d = await DaemonProcess.start(dir, `${tag}-s`, [
      "VIO4WD_EAL_MEMORY_MB=512",
      "VIRTIOFWD_LOG_LEVEL=5",
      `VIRTIOFWD_STATIC_VFS=(${vf.relay}=0)`,
    ], variantDaemonOptions(shim));
    const daemon = d;
    const generator = await TestPmd.start({ prefix: `${tag}-sg`, vdevs: [vf.peer(0)] });
    started.push(generator);
    const guest = await TestPmd.start({
      prefix: `${tag}-sv`,
      vdevs: [virtioUser(`${dir}/sock/virtio-forwarder0.sock`)],
    });
    started.push(guest);
    await guest.send("set fwd rxonly");
    await guest.send("start");
    const relay0 = async () => (await daemon.status()).find((r) => r.id === 0);
    for (let i = 0; !(await relay0())?.active; i++) {
      if (i > 100) throw new Error("slow guest: the relay did not become active");
      await sleep(100);
    }
    await generator.send("set fwd txonly");
    await generator.send("start");
    const endCycle = descheduleCycle(guest.pid, 15, 5);
    try {
      await sleep(seconds * 1000);
    } finally {
      await endCycle();
    }
    const gen = (await generator.stop())[0];
    // what the relay still holds reaches the guest once it reads
    let r: RelayState | undefined;
    for (let i = 0; i < 50; i++) {
      r = await relay0();
      const u = r!.vfToVm;
      if (
        num(u.pktsRxFromVf) === num(u.pktsTxToVm) + num(u.pktsDroppedVmQueueFull) + num(u.pktsDroppedVmNotConnected)
      ) {
        break;
      }
      await sleep(100);
    }
    const g = (await guest.stop())[0];
    const u = r!.vfToVm;
    return {
      offered: gen.txPackets + gen.txDropped,
      delivered: g.rxPackets,
      dropped_in_relay: num(u.pktsDroppedVmQueueFull) + num(u.pktsDroppedVmNotConnected),
      // a build before the VF's missed counter (#26) reports none
      refused_at_vf: gen.txDropped + Number(r!.vfRxMissed ?? 0),
    };
  } finally {
    for (const p of started.reverse()) await p.close();
    await d?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The slow-guest figures as flat bench figures: `slow_guest_<figure>` (`_<variant>` for another build). */
export function slowGuestFigures(f: SlowGuestFigures, variant?: string): Record<string, number> {
  return Object.fromEntries(
    Object.entries(f).map(([k, v]) => [`slow_guest_${k}${variant ? `_${variant}` : ""}`, v]),
  );
}

/** One line per run: delivered, dropped in the relay, refused at the VF, of the offered packets. */
export function slowGuestLine(f: SlowGuestFigures, label: string): string {
  const pct = (n: number) => f.offered ? `${(100 * n / f.offered).toFixed(1)}%` : "-";
  return `slow guest (${label}): offered ${f.offered}, delivered to the guest ${f.delivered} (${pct(f.delivered)}), ` +
    `dropped in the relay ${f.dropped_in_relay}, refused at the VF ${f.refused_at_vf} (${pct(f.refused_at_vf)})`;
}
