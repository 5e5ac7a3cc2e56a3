/**
 * The hot-upgrade design's mechanism (docs/hot-upgrade.md, issue #28): a front door between the
 * VM and vio4wd's rte_vhost keeps the session's replay record, takes the rings' positions from
 * rte_vhost (GET_VRING_BASE), drops that connection and replays the session into a fresh one. The
 * front door is the daemon's own (shim/frontdoor.c; the fault build's VIO4WD_FAULT_FILE asks it
 * to replay, until the handover does), or, into another daemon, the test rig
 * tests/rigs/vhost_replay_proxy.py. The VM stand-in is dpdk-testpmd's virtio_user, whose socket
 * is never closed.
 */

import { FAULTS_SHIM, num, type RelayState, show, until } from "./rigs/daemon_process.ts";
import { virtioUser } from "./rigs/devices.ts";
import { World } from "./rigs/world.ts";
import { handOver, replayInDaemon, replayProxy } from "./rigs/replay.ts";
import { assert, assertEq } from "./rigs/assert.ts";

const relay0 = (s: RelayState[]) => s.find((r) => r.id === 0)!;

// The check on the rings' positions: with packed rings a replay at base 0 (the recorded
// SET_VRING_BASE, what a replay without GET_VRING_BASE would send) stops the traffic (tried). With
// split rings rte_vhost 22.11 takes the position from the guest's used index when the two disagree
// (translate_ring_addresses, with a warning), so there a wrong base cannot show.
type Mode = "same" | "rig" | "handover" | "refused";
const cases: { packed: boolean; queues: number; mode: Mode }[] = [
  { packed: false, queues: 1, mode: "same" },
  { packed: true, queues: 1, mode: "same" },
  { packed: false, queues: 2, mode: "same" },
  { packed: false, queues: 1, mode: "rig" },
  { packed: true, queues: 1, mode: "rig" },
  { packed: false, queues: 1, mode: "handover" },
  { packed: true, queues: 2, mode: "handover" },
  { packed: false, queues: 1, mode: "refused" },
];
const HOW: Record<Mode, string> = {
  same: "",
  rig: ", into another daemon (its own DPDK, the guest's memory mapped anew; the front door a test rig)",
  handover:
    ", handed to another daemon by the daemons' own front doors (record, bases and descriptors over a unix socket)",
  refused: ", offered to another daemon that takes everything and then refuses: the first takes it back (rollback)",
};

for (const { packed, queues, mode } of cases) {
  const other = mode !== "same"; // a second daemon
  const moved = mode === "rig" || mode === "handover"; // the session ends up there
  const what = `${packed ? "packed" : "split"} rings, ${queues} queue pair(s)${HOW[mode]}`;
  Deno.test(`a VM's session replayed into a fresh rte_vhost connection at the rings' positions (${what}): traffic goes on both ways, the VM's socket never closes, and what the relays took from the VM is exactly what it sent, none twice`, async () => {
    await using w = await World.create(`replay${packed ? "p" : "s"}${queues}${mode[0]}`);
    await using w2 = await World.create("replayto");
    // net_null: takes what the VM sends and gives it packets as fast as asked
    // (the stats protocol shows a relay's VM->VF counters only while it has a VM: the metrics
    // show the old daemon's after the VM left it)
    const fault = `${w.dir}/fault`, fault2 = `${w2.dir}/fault`, handover = `${w.dir}/handover.sock`;
    const faults = (file: string, more: Record<string, string> = {}): Record<string, string> =>
      mode === "rig"
        ? {}
        : { VIO4WD_SHIM: FAULTS_SHIM, VIO4WD_FAULT_FILE: file, VIO4WD_FAULT_HANDOVER_SOCK: handover, ...more };
    const d = await w.daemon(["VIRTIOFWD_STATIC_VFS=net_null0=0", "VIO4WD_METRICS_LISTEN=127.0.0.1:0"], {
      env: faults(fault),
    });
    const refuse: Record<string, string> = mode === "refused" ? { VIO4WD_FAULT_ADOPT_REFUSE: "1" } : {};
    const second = other ? await w2.daemon(["VIRTIOFWD_STATIC_VFS=net_null1=0"], { env: faults(fault2, refuse) }) : d;
    const to = moved ? second : d;
    // rte_vhost's socket thread (22.11) polls with a 1 s timeout and takes in sockets registered
    // meanwhile only at its next round: a connection in a daemon's first second waits for it
    if (other) await new Promise((r) => setTimeout(r, 1100));
    const front = mode === "rig" ? `${w.dir}/front.sock` : w.vmSocket(0);
    const proxy = mode === "rig" ? await replayProxy(w, front, w.vmSocket(0), `${w.dir}/proxy.ctl`) : null;
    const vm = await w.testpmd({
      vdevs: [virtioUser(front, { queues }) + (packed ? ",packed_vq=1" : "")],
      ...(queues > 1 ? { appArgs: [`--rxq=${queues}`, `--txq=${queues}`] } : {}),
    });
    await vm.waitLinksUp();
    await d.untilVm(0, undefined, queues);
    await vm.send("set fwd io"); // what the VM receives goes back out
    await vm.send("start");
    const both = async (dd: typeof d, what: string, above?: RelayState) =>
      await until(what, async () => {
        const r = relay0(await dd.status());
        return num(r.vfToVm.pktsTxToVm) > num(above?.vfToVm.pktsTxToVm) + 10_000 &&
          num(r.vmToVf.pktsRxFromVm) > num(above?.vmToVf.pktsRxFromVm) + 10_000;
      }, 15_000);
    await both(d, "traffic both ways");

    const answer = mode === "rig"
      ? await proxy!.replay(w2.vmSocket(0))
      : mode === "handover" || mode === "refused"
      ? await handOver(fault, fault2)
      : await replayInDaemon(fault);
    if (mode === "handover") {
      assert(/^exported [\d.]+; adopted [\d.]+$/.test(answer), `the handover: ${answer}\n${to.log.slice(-1500)}`);
    } else if (mode === "refused") {
      assertEq(
        answer,
        "failed the other daemon did not take the session; it runs here again; failed refused (fault build)",
        "the refusal, and the session back in the first daemon",
      );
    } else {
      // the rig: "replayed <rings> <ms> ..."; the daemon: "replayed <sessions> <rings> <ms>"
      const m = proxy ? /^replayed (\d+) /.exec(answer) : /^replayed 1 (\d+) /.exec(answer);
      assert(m !== null, `the replay: ${answer}\n${to.log.slice(-1500)}`);
      assertEq(Number(m![1]), 2 * queues, `every ring replayed: ${answer}`);
    }
    console.log(`replay (${what}): ${answer}`);
    await to.untilVm(0, undefined, queues);
    const at = moved ? undefined : relay0(await d.status());
    await both(to, "traffic both ways after the replay", at);

    // exactness: stop the VM, let the relay take what is left in its TX rings, compare
    const [vmPort] = await vm.stop();
    const metrics = await d.metricsUrl();
    const oldTaken = async () => {
      const text = await (await fetch(metrics)).text();
      return Number(/^vio4wd_relay_rx_packets_total\{relay="0",direction="vm_to_vf"\} (\d+)$/m.exec(text)![1]);
    };
    const taken = async () => num(relay0(await to.status()).vmToVf.pktsRxFromVm) + (moved ? await oldTaken() : 0);
    let last = -1;
    await until("what the relays take from the VM settles", async () => {
      const now = await taken();
      const same = now === last;
      last = now;
      return same && now >= vmPort.txPackets;
    }).catch((e) => {
      throw new Error(`${e.message}: VM sent ${vmPort.txPackets}; relays took ${last}`);
    });
    assertEq(last, vmPort.txPackets, "the relays took each packet the VM sent once");
    const r = relay0(await to.status());
    assert(moved || num(r.vfToVm.pktsTxToVm) >= vmPort.rxPackets, `delivered >= received by the VM: ${show(r)}`);
    assert(await vm.linksUp(), "the VM's link stayed up");
  });
}
