/**
 * Churn: a VM stand-in (testpmd virtio_user) connects and disconnects again and again while the VF
 * stand-in sends; the daemon must not crash, every packet it takes must be forwarded or counted as
 * a drop, the VF must stay untouched while no VM is connected (stopped, as the original: the NIC
 * drops, not the CPU), and the mbufs in use must come back to where they started.
 */

import { num, type RelayState } from "../rigs/daemon_process.ts";
import { memifPair, virtioUser } from "../rigs/devices.ts";
import { World } from "../rigs/world.ts";
import { assertEq } from "../rigs/assert.ts";
import { sized, summary } from "./common.ts";

const CYCLES = sized(50, 500);
const relay0 = (s: RelayState[]) => s.find((r) => r.id === 0);

Deno.test(`churn: ${CYCLES} VM connect/disconnect cycles while the VF sends: no crash, every packet taken accounted for, the VF idle while no VM, mbufs back to baseline`, async () => {
  await using w = await World.create("churn");
  const wire = memifPair(`${w.dir}/vf.sock`);
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=${wire.vf}=0`]);
  const vf = await w.testpmd({ vdevs: [wire.peer] });
  await vf.waitLinksUp();
  const baseline = relay0(await d.status())!.mbufsInUse;
  await vf.send("set fwd txonly");
  await vf.send("start");
  const t0 = performance.now();
  const received = async () => num(relay0(await d.status())!.vfToVm.pktsRxFromVf);
  let idleChecks = 0, pulledWhileAway = 0;
  for (let i = 1; i <= CYCLES; i++) {
    const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
    await d.waitCount(/relay 0: VM connected/, i, 15_000);
    await vm.close();
    await d.waitCount(/relay 0: VM disconnected/, i, 15_000);
    if (i % 10 === 0) {
      // no VM: the VF is stopped, nothing is taken off it
      const before = await received();
      await new Promise((r) => setTimeout(r, 300));
      pulledWhileAway += (await received()) - before;
      idleChecks++;
    }
  }
  await vf.stop();
  await new Promise((r) => setTimeout(r, 300));
  const r = relay0(await d.status())!;
  const up = r.vfToVm;
  if (d.log.includes("Uncaught")) throw new Error("daemon threw: " + d.log.slice(-2000));
  const dropped = num(up.pktsDroppedVmQueueFull) + num(up.pktsDroppedVmNotConnected);
  assertEq(num(up.pktsTxToVm) + dropped, num(up.pktsRxFromVf), "forwarded + dropped = received");
  summary("churn", {
    cycles: CYCLES,
    crashes: d.log.includes("Uncaught") ? 1 : 0,
    relay_received: num(up.pktsRxFromVf),
    to_vm: num(up.pktsTxToVm),
    dropped_vm_away: num(up.pktsDroppedVmNotConnected),
    dropped_full: num(up.pktsDroppedVmQueueFull),
    unaccounted: num(up.pktsRxFromVf) - num(up.pktsTxToVm) - dropped,
    pulled_while_no_vm: pulledWhileAway,
    mbufs_leaked: (r.mbufsInUse ?? 0) - (baseline ?? 0),
    secs: ((performance.now() - t0) / 1000).toFixed(1),
  });
  if (!(num(up.pktsTxToVm) > 0)) throw new Error("nothing reached the VMs");
  assertEq(pulledWhileAway, 0, `packets taken off the VF while no VM was connected (${idleChecks} checks)`);
  // only what was in flight when a VM left (its rings already disabled): at most a ring per cycle
  if (num(up.pktsDroppedVmNotConnected) > CYCLES * 512) {
    throw new Error(`${up.pktsDroppedVmNotConnected} packets dropped for a missing VM in ${CYCLES} cycles`);
  }
  assertEq(r.mbufsInUse, baseline, "mbufs in use back to baseline");
});
