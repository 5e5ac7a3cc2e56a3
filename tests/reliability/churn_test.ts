/**
 * Churn: a VM stand-in (testpmd virtio_user) connects and disconnects again and again while the VF
 * stand-in sends; the daemon must not crash, every packet must be forwarded or counted as a drop,
 * and the mbufs in use must come back to where they started.
 */

import { TestPmd } from "../../src/testbed/testpmd.ts";
import { type RelayStatus, withDaemon } from "../helpers.ts";
import { assertEq } from "../../src/testbed/assert.ts";
import { sized, summary } from "./common.ts";

const CYCLES = sized(50, 500);
const relay0 = (s: RelayStatus[]) => s.find((r) => r.id === 0);

Deno.test(`churn: ${CYCLES} VM connect/disconnect cycles while the VF sends: no crash, drops account for every packet, mbufs back to baseline`, async () => {
  await withDaemon("churn", (dir) => [
    `VIRTIOFWD_STATIC_VFS=net_memif0,role=server,socket=${dir}/vf.sock=0`,
  ], async (d, dir, tag) => {
    let vf: TestPmd | null = null;
    let vm: TestPmd | null = null;
    try {
      vf = await TestPmd.start({ prefix: `${tag}-vf`, vdevs: [`net_memif1,role=client,socket=${dir}/vf.sock`] });
      await vf.waitLinksUp();
      const baseline = relay0(await d.status())!.mbufs_in_use;
      await vf.send("set fwd txonly");
      await vf.send("start");
      const t0 = performance.now();
      for (let i = 1; i <= CYCLES; i++) {
        vm = await TestPmd.start({
          prefix: `${tag}-vm`,
          vdevs: [`net_virtio_user0,path=${dir}/sock/virtio-forwarder0.sock,queues=1`],
        });
        await d.waitCount(/relay 0: VM connected/, i, 15_000);
        await vm.close();
        vm = null;
        await d.waitCount(/relay 0: VM disconnected/, i, 15_000);
      }
      const sent = (await vf.stop())[0].txPackets;
      await new Promise((r) => setTimeout(r, 300));
      const r = relay0(await d.status())!;
      if (d.log.includes("Uncaught")) throw new Error("daemon threw: " + d.log.slice(-2000));
      assertEq(r.vf_to_vm.rxPkts, sent, "relay received every packet the VF sent");
      assertEq(
        r.vf_to_vm.txPkts + r.vf_to_vm.dropFullPkts + r.vf_to_vm.dropUnavailPkts,
        r.vf_to_vm.rxPkts,
        "forwarded + dropped = received",
      );
      summary("churn", {
        cycles: CYCLES,
        crashes: d.log.includes("Uncaught") ? 1 : 0,
        vf_sent: sent,
        to_vm: r.vf_to_vm.txPkts,
        dropped_vm_away: r.vf_to_vm.dropUnavailPkts,
        dropped_full: r.vf_to_vm.dropFullPkts,
        unaccounted: r.vf_to_vm.rxPkts - r.vf_to_vm.txPkts - r.vf_to_vm.dropFullPkts - r.vf_to_vm.dropUnavailPkts,
        mbufs_leaked: (r.mbufs_in_use ?? 0) - (baseline ?? 0),
        secs: ((performance.now() - t0) / 1000).toFixed(1),
      });
      if (r.vf_to_vm.dropUnavailPkts === 0) throw new Error("no packet was counted as dropped while the VM was away");
      assertEq(r.mbufs_in_use, baseline, "mbufs in use back to baseline");
    } finally {
      await d.stop(); // before its memif peers leave (see withDaemon)
      await vm?.close();
      await vf?.close();
    }
  });
});
