/**
 * The bench's "upgrade gap" case (issue #28): how long a VM's traffic stops when the forwarder is
 * upgraded with `vio4wd upgrade` and when it is restarted, in both socket modes, in the same run.
 * A QEMU guest (TCG) behind relay 0, its VF an AF_PACKET socket on a veth pair whose host end
 * pings the guest every 1 ms; the figure is the longest silence, and the guest's carrier changes
 * (a restart takes the guest's link down: QEMU's vhost-user netdev does so when its socket closes).
 *
 * @module
 */

import { DaemonProcess, pathExists } from "../../tests/rigs/daemon_process.ts";
import { NetNs } from "../../tests/rigs/netns.ts";
import { buildInitramfs, QemuGuest } from "../../tests/rigs/qemu.ts";
import { pingEvery, vethVf } from "../../tests/rigs/veth_vf.ts";

const HOST = "10.201.0.1", GUEST = "10.201.0.2";
const GUEST_TIMEOUT = 120_000;

/** The guest: says its carrier_changes each time the host connects to port 5003, until told to stop. */
const SCRIPT = `
wait_peer ${HOST} 30 || exit 1
while :; do
  say "carrier $(cat /sys/class/net/eth0/carrier_changes)"
  [ "$(listen_count 5003)" = 4 ] && exit 0
done
`;

/** One mode's figures. */
export interface GapFigures {
  upgradeMs: number;
  restartMs: number;
  upgradeCarrierChanges: number;
  restartCarrierChanges: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Measures an upgrade and then a restart under one guest, vio4wd in `client` mode or not. */
async function gapsInMode(tag: string, client: boolean): Promise<GapFigures> {
  const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
  const ns = await NetNs.create(`${tag}-g${client ? "c" : "s"}`);
  const stop: (() => Promise<unknown>)[] = [];
  try {
    const vf = await vethVf(ns, `${HOST}/30`);
    const initrd = `${dir}/initrd.gz`;
    await buildInitramfs(initrd);
    const socket = `${dir}/sock/virtio-forwarder0.sock`;
    Deno.mkdirSync(`${dir}/sock`);
    const guest = QemuGuest.start({ dir, initrd, socket, ip: `${GUEST}/30`, server: client, script: SCRIPT });
    stop.push(() => guest.stop());
    const lines = [
      `VIRTIOFWD_STATIC_VFS=(${vf}=0)`,
      "VIRTIOFWD_LOG_LEVEL=5",
      ...(client ? ["VIRTIOFWD_VHOST_CLIENT=y"] : []),
    ];
    if (client) {
      for (let i = 0; i < 100 && !pathExists(socket); i++) await sleep(100);
    }
    let d = await DaemonProcess.start(dir, `${tag}-g${client ? "c" : "s"}1`, lines, { netns: ns.name });
    stop.push(() => d.stop());
    await d.untilVm(0, 30_000);
    const carriers = () => [...guest.serial().matchAll(/E2E: carrier (\d+)/g)].map((m) => Number(m[1]));
    /** The guest's carrier_changes now (it says them when the host connects to port 5003). */
    const carrier = async () => {
      const before = carriers().length;
      const r = await ns.sh(`for i in $(seq 40); do printf ok | busybox nc ${GUEST} 5003 && exit 0; sleep 0.25; done`);
      if (r.code !== 0) throw new Error(`upgrade gap: the guest does not answer on 5003: ${r.stderr}`);
      for (let i = 0; i < 100 && carriers().length <= before; i++) await sleep(50);
      return carriers().at(-1)!;
    };
    await guest.waitSerial(/E2E: carrier/, GUEST_TIMEOUT);
    const c0 = carriers()[0];

    const up = pingEvery(ns, GUEST, 0.001, 2500);
    await sleep(700);
    const result = await d.upgrade();
    if (!result.result.ok) throw new Error(`upgrade gap: the upgrade failed: ${result.result.error}`);
    const upgradeMs = (await up).longest_silence_ms;
    const c1 = await carrier();

    const restart = pingEvery(ns, GUEST, 0.001, 8000);
    await sleep(700);
    await d.stop();
    d = await DaemonProcess.start(dir, `${tag}-g${client ? "c" : "s"}2`, lines, { netns: ns.name });
    const restartMs = (await restart).longest_silence_ms;
    const c2 = await carrier();
    await ns.sh(`printf stop | busybox nc ${GUEST} 5003`);
    return { upgradeMs, restartMs, upgradeCarrierChanges: c1 - c0, restartCarrierChanges: c2 - c1 };
  } finally {
    for (const s of stop.reverse()) await s().catch(() => {});
    await ns.delete();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Both modes' figures, named for the report. */
export async function upgradeGaps(tag: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const client of [false, true]) {
    const f = await gapsInMode(tag, client);
    const m = client ? "client" : "server";
    out[`upgrade_gap_ms_${m}_mode`] = f.upgradeMs;
    out[`restart_gap_ms_${m}_mode`] = f.restartMs;
    out[`upgrade_carrier_changes_${m}_mode`] = f.upgradeCarrierChanges;
    out[`restart_carrier_changes_${m}_mode`] = f.restartCarrierChanges;
  }
  return out;
}

/** The line the bench prints for them. */
export function upgradeGapLines(f: Record<string, number>): string[] {
  return ["server", "client"].map((m) =>
    `${m} mode: upgrade gap ${f[`upgrade_gap_ms_${m}_mode`]} ms (carrier changes ${
      f[`upgrade_carrier_changes_${m}_mode`]
    }), restart gap ${f[`restart_gap_ms_${m}_mode`]} ms (carrier changes ${f[`restart_carrier_changes_${m}_mode`]})`
  );
}
