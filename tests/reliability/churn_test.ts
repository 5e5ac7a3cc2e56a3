/**
 * Churn: a VM stand-in (testpmd virtio_user) connects and disconnects again and again while the VF
 * stand-in sends; the daemon must not crash, every packet must be forwarded or counted as a drop,
 * and the mbufs in use must come back to where they started.
 */

import { num, type RelayState } from "../rigs/daemon_process.ts";
import { memifPair, virtioUser } from "../rigs/devices.ts";
import { World } from "../rigs/world.ts";
import { assertEq } from "../rigs/assert.ts";
import { sized, summary } from "./common.ts";

const CYCLES = sized(50, 500);
const relay0 = (s: RelayState[]) => s.find((r) => r.id === 0);

Deno.test(`churn: ${CYCLES} VM connect/disconnect cycles while the VF sends: no crash, drops account for every packet, mbufs back to baseline`, async () => {
  await using w = await World.create("churn");
  const wire = memifPair(`${w.dir}/vf.sock`);
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=${wire.vf}=0`]);
  const vf = await w.testpmd({ vdevs: [wire.peer] });
  await vf.waitLinksUp();
  const baseline = relay0(await d.status())!.mbufsInUse;
  await vf.send("set fwd txonly");
  await vf.send("start");
  const t0 = performance.now();
  for (let i = 1; i <= CYCLES; i++) {
    const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
    await d.waitCount(/relay 0: VM connected/, i, 15_000);
    await vm.close();
    await d.waitCount(/relay 0: VM disconnected/, i, 15_000);
  }
  const sent = (await vf.stop())[0].txPackets;
  await new Promise((r) => setTimeout(r, 300));
  const r = relay0(await d.status())!;
  const up = r.vfToVm;
  if (d.log.includes("Uncaught")) throw new Error("daemon threw: " + d.log.slice(-2000));
  assertEq(num(up.pktsRxFromVf), sent, "relay received every packet the VF sent");
  const dropped = num(up.pktsDroppedVmQueueFull) + num(up.pktsDroppedVmNotConnected);
  assertEq(num(up.pktsTxToVm) + dropped, num(up.pktsRxFromVf), "forwarded + dropped = received");
  summary("churn", {
    cycles: CYCLES,
    crashes: d.log.includes("Uncaught") ? 1 : 0,
    vf_sent: sent,
    to_vm: num(up.pktsTxToVm),
    dropped_vm_away: num(up.pktsDroppedVmNotConnected),
    dropped_full: num(up.pktsDroppedVmQueueFull),
    unaccounted: num(up.pktsRxFromVf) - num(up.pktsTxToVm) - dropped,
    mbufs_leaked: (r.mbufsInUse ?? 0) - (baseline ?? 0),
    secs: ((performance.now() - t0) / 1000).toFixed(1),
  });
  if (num(up.pktsDroppedVmNotConnected) === 0) {
    throw new Error("no packet was counted as dropped while the VM was away");
  }
  assertEq(r.mbufsInUse, baseline, "mbufs in use back to baseline");
});
