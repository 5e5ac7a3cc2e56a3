/**
 * Churn: a VM stand-in (testpmd virtio_user) connects and disconnects again and again while the VF
 * has traffic for it; the daemon must not crash, every packet it takes must be forwarded or counted as
 * a drop, the VF must stay untouched while no VM is connected (stopped, as the original: the NIC
 * drops, not the CPU), and the mbufs in use must come back to where they started.
 */

import { num, type RelayState } from "../rigs/daemon_process.ts";
import { virtioUser } from "../rigs/devices.ts";
import { World } from "../rigs/world.ts";
import { assert, assertEq } from "../rigs/assert.ts";
import { sized, summary } from "./common.ts";

const CYCLES = sized(50, 500);
const relay0 = (s: RelayState[]) => s.find((r) => r.id === 0);

Deno.test(`churn: ${CYCLES} VM connect/disconnect cycles while the VF sends: no crash, every packet taken accounted for, the VF idle while no VM, mbufs back to baseline`, async () => {
  await using w = await World.create("churn");
  // The VF: net_null, an endless source while it runs. (A memif VF's testpmd peer can crash in DPDK
  // 22.11's memif when the daemon stops the VF under its feet, which it does at every disconnect.)
  const d = await w.daemon(["VIRTIOFWD_STATIC_VFS=net_null0,size=64=0"]);
  const baseline = relay0(await d.status())!.mbufsInUse;
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
  // nothing is taken off the VF for a guest that cannot take it (no VM, or its rings disabled)
  if (num(up.pktsDroppedVmNotConnected) > CYCLES * 32) {
    throw new Error(`${up.pktsDroppedVmNotConnected} packets dropped for a missing VM in ${CYCLES} cycles`);
  }
  // both present: an absent field on both sides must not pass as "back to baseline"
  assert(typeof baseline === "number" && typeof r.mbufsInUse === "number", "mbufs in use reported");
  assertEq(r.mbufsInUse, baseline, "mbufs in use back to baseline");
});
