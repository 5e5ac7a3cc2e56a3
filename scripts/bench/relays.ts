/**
 * The relays under test in the bench: dpdk-testpmd io-fwd, vio4wd and OVS-DPDK, each started
 * with the VM sockets and VF peers the generator connects to.
 *
 * @module
 */

import { DaemonProcess } from "../../tests/rigs/daemon_process.ts";
import { OvsDb, OvsDpdk } from "../../tests/rigs/ovs.ts";
import { TestPmd } from "../../tests/rigs/testpmd.ts";
import type { Case, VfKind } from "./cases.ts";

/** A relay under test, with the devargs the generator uses for each relay's VM and VF peers. */
export interface RunningRelay {
  vmSockets: string[];
  vfPeers: string[];
  stop(): Promise<void>;
}

/** memif on a file-system socket (DPDK 22.11's abstract default is per network namespace). */
export function vfDevargs(kind: VfKind, i: number, socket: string): { relay: string; peer: (port: number) => string } {
  return kind === "memif"
    ? {
      relay: `net_memif${i + 1},role=server,socket=${socket},socket-abstract=no`,
      peer: (port) => `net_memif${port},role=client,socket=${socket},socket-abstract=no`,
    }
    : {
      relay: `net_vhost${i + 1},iface=${socket},queues=1`,
      peer: (port) => `net_virtio_user${port},path=${socket},queues=1`,
    };
}

export async function startRelay(c: Case, dir: string, tag: string): Promise<RunningRelay> {
  const vfs = Array.from({ length: c.relays }, (_, i) => vfDevargs(c.vf, i, `${dir}/vf${i}.sock`));
  const vfPeers = vfs.map((v, i) => v.peer(2 * i + 1));
  if (c.kind === "testpmd") {
    // VM side net_vhost100+i: clear of the vhost VF stand-in's names (net_vhost1...).
    const pmd = await TestPmd.start({
      prefix: `${tag}-r`,
      cores: "0,1",
      mainLcore: 0,
      memoryMb: 512,
      mbufs: 16384 * c.relays,
      vdevs: vfs.flatMap((v, i) => [`net_vhost${100 + i},iface=${dir}/vm${i}.sock,queues=1`, v.relay]),
    });
    await pmd.send("set fwd io");
    await pmd.send("start");
    const vmSockets = vfs.map((_, i) => `${dir}/vm${i}.sock`);
    return { vmSockets, vfPeers, stop: () => pmd.close() };
  }
  if (c.kind === "vio4wd") {
    const d = await DaemonProcess.start(dir, `${tag}-r`, [
      "VIO4WD_EAL_MEMORY_MB=512",
      "VIRTIOFWD_LOG_LEVEL=5",
      `VIO4WD_IDLE_SLEEP_US=${c.idleUs ?? 0}`,
      "VIRTIOFWD_STATIC_VFS=(",
      ...vfs.map((v, i) => `  ${v.relay}=${i}`),
      ")",
    ]);
    const vmSockets = vfs.map((_, i) => `${dir}/sock/virtio-forwarder${i}.sock`);
    return { vmSockets, vfPeers, stop: async () => void (await d.stop()) };
  }
  const db = await OvsDb.start(dir);
  let ovs: OvsDpdk | null = null;
  try {
    ovs = await OvsDpdk.start(db, { lcoreMask: "0x1", pmdCpuMask: "0x2", memoryMb: 512, prefix: `${tag}-r` });
    const vm = await ovs.addRelay("v4bench", "vhu0", "vf0", vfs[0].relay);
    const o = ovs;
    return { vmSockets: [vm], vfPeers, stop: async () => (await o.stop(), await db.stop()) };
  } catch (e) {
    await ovs?.stop();
    await db.stop();
    throw e;
  }
}
