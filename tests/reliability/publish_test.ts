/**
 * Publishes under traffic with a starved worker: relay 0 moves between the two workers again and
 * again (core-scheduling UPDATE; each move swaps both workers' lists twice, the old worker letting
 * go before the new one takes over) while packets flow both ways, and one worker shares its CPU
 * with a busy process of higher priority. Each swap must wait until the worker is done with its old
 * list; one that did not would let two workers poll one queue at once (a corrupt ring: packets
 * lost or counted twice, a crash) or free what a worker still reads.
 */

import { num, type RelayState, show } from "../rigs/daemon_process.ts";
import { virtioUser } from "../rigs/devices.ts";
import { World } from "../rigs/world.ts";
import { assert, assertEq } from "../rigs/assert.ts";
import { request } from "../../src/control/client.ts";
import {
  CoreSchedRequest_Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status,
  CoreSchedResponseSchema,
} from "../../src/control/gen/virtioforwarder_pb.ts";
import { sized, summary } from "./common.ts";

const MOVES = sized(600, 5000); // two list swaps each: 1200 and 10000
const relay0 = (s: RelayState[]) => s.find((r) => r.id === 0)!;

Deno.test(`publish storm: ${MOVES} moves of a relay between workers (${2 * MOVES} list swaps) under traffic both ways, one worker starved by a busy process at higher priority: no crash, every packet counted once, mbufs back`, async () => {
  await using w = await World.create("publish");
  const ep = `ipc://${w.dir}/core_sched`;
  // worker lcore 1 on CPU 1 (with the daemon's own threads), worker lcore 2 on CPU 0 with the hog
  const d = await w.daemon([
    "VIO4WD_EAL_LCORES=0@1,1@1,2@0",
    "VIRTIOFWD_CPU_MASK=1,2",
    `VIRTIOFWD_ZMQ_CORE_SCHED_EP=${ep}`,
    "VIO4WD_CORE_SCHED_ENABLE=true",
    "VIRTIOFWD_STATIC_VFS=net_null0,size=64=0",
  ]);
  const baseline = relay0(await d.status()).mbufsInUse;
  // the VM forwards on CPU 1, away from the hog; it starts before the hog does (a starved start
  // takes minutes) and is stopped after it ended
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))], cores: "0,1", mainLcore: 0 });
  await vm.waitLinksUp();
  await vm.send("set fwd io"); // what the VM receives from the VF goes back to it
  await vm.send("start");
  const hog = new Deno.Command("taskset", {
    args: ["-c", "0", "nice", "-n", "-10", "sh", "-c", "while :; do :; done"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stopHog = async () => {
    try {
      hog.kill("SIGKILL");
    } catch { /* ended */ }
    await hog.status;
  };
  try {
    const t0 = performance.now();
    for (let i = 0; i < MOVES; i++) {
      const [a, b] = i % 2 === 0 ? [1, 2] : [2, 1];
      const res = await request(
        ep,
        CoreSchedRequestSchema,
        {
          op: CoreSchedRequest_Op.UPDATE,
          relayCpuMap: [{ relayNumber: 0, vf2virtioCpu: a, virtio2vfCpu: b }],
        },
        CoreSchedResponseSchema,
        30_000,
      );
      assertEq(res.status, CoreSchedResponse_Status.OK, `UPDATE ${i}`);
      if (vm.exited) throw new Error(`the VM stand-in ended after ${i} moves:\n${vm.output.slice(-3000)}`);
    }
    const secs = (performance.now() - t0) / 1000;
    await stopHog();
    const moved = relay0(await d.status());
    assert(
      num(moved.vmToVf.pktsTxToVf) > 0 && num(moved.vfToVm.pktsTxToVm) > 0,
      `traffic both ways: ${show(moved)}`,
    );
    const ports = await vm.stop();
    // the VM sends no more: what it sent is all taken from its ring
    let prev = -1, r = relay0(await d.status());
    while (num(r.vmToVf.pktsRxFromVm) !== prev) {
      prev = num(r.vmToVf.pktsRxFromVm);
      await new Promise((res) => setTimeout(res, 200));
      r = relay0(await d.status());
    }
    const up = r.vmToVf, down = r.vfToVm;
    assertEq(num(up.pktsRxFromVm), ports[0].txPackets, "what the relay took from the VM = what the VM sent");
    assertEq(
      num(up.pktsTxToVf) + num(up.pktsDroppedVfQueueFull) + num(up.pktsDroppedVfNotConnected),
      num(up.pktsRxFromVm),
      "VM->VF: sent + dropped = taken",
    );
    // the relay never counts as delivered less than the VM got. How much more is not bounded here:
    // testpmd's count at its stop trails by more than its ring holds (seen 864, 1088, 1344; RX-dropped
    // 0), which is the stand-in's accounting, not the relay's. The relay's own is checked exactly below.
    const delivered = num(down.pktsTxToVm);
    assert(
      delivered >= ports[0].rxPackets,
      `VF->VM: delivered ${delivered}, the VM received ${ports[0].rxPackets}`,
    );
    const accounted = delivered + num(down.pktsDroppedVmQueueFull) + num(down.pktsDroppedVmNotConnected);
    const held = num(down.pktsRxFromVf) - accounted;
    assert(held >= 0 && held <= 32, `VF->VM: taken - delivered - dropped = ${held} (a held burst at most)`);
    await vm.close();
    const end = await (async () => {
      for (let t = 0; t < 50; t++) {
        const x = relay0(await d.status());
        if (!x.vmToVf.active && x.mbufsInUse === baseline) return x;
        await new Promise((res) => setTimeout(res, 100));
      }
      return relay0(await d.status());
    })();
    assert(d.alive && !d.log.includes("Uncaught"), `the daemon runs on: ${d.log.slice(-1500)}`);
    assert(typeof baseline === "number", "mbufs in use reported");
    assertEq(end.mbufsInUse, baseline, "mbufs in use back to baseline once the VM left");
    summary("publish", {
      moves: MOVES,
      swaps: 2 * MOVES,
      secs: secs.toFixed(1),
      ms_per_move: ((secs * 1000) / MOVES).toFixed(2),
      vm_to_vf: num(up.pktsTxToVf),
      vf_to_vm: delivered,
      dropped: num(up.pktsDroppedVfQueueFull) + num(down.pktsDroppedVmQueueFull),
    });
  } finally {
    await stopHog();
  }
});
