/**
 * The data plane through real DPDK: `vio4wd daemon` relays between a memif VF stand-in and a
 * dpdk-testpmd virtio_user VM stand-in; counts are checked on both ends and in the relay.
 */

import { TestPmd } from "./rigs/testpmd.ts";
import {
  DaemonProcess,
  FAULTS_SHIM,
  num,
  type RelayState,
  runVio4wd,
  settled,
  show,
  STEPS_SHIM,
  until,
} from "./rigs/daemon_process.ts";
import { memifPair, virtioUser } from "./rigs/devices.ts";
import { World } from "./rigs/world.ts";
import type { NetNs } from "./rigs/netns.ts";
import { descheduleCycle } from "./rigs/signals.ts";
import { fakeCpus, fakeSysfs, standInForVf } from "./rigs/sysfs.ts";
import { assert, assertEq, assertJsonEq } from "./rigs/assert.ts";
import { request } from "../src/control/client.ts";
import {
  CoreSchedRequest_Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status,
  CoreSchedResponseSchema,
} from "../src/control/gen/virtioforwarder_pb.ts";

const relay0 = (s: RelayState[]) => s.find((r) => r.id === 0);

/**
 * Waits until relay 0 (as `d` reports it) satisfies `ok`; returns that state. On a timeout the
 * error shows relay 0's last state.
 */
async function untilRelay0(
  d: DaemonProcess,
  what: string,
  ok: (r: RelayState) => boolean,
  timeoutMs?: number,
): Promise<RelayState> {
  let last: RelayState | undefined;
  await until(what, async () => {
    last = relay0(await d.status());
    return last !== undefined && ok(last);
  }, timeoutMs).catch((e) => {
    throw new Error(`${e.message}: relay 0 = ${last && show(last)}`);
  });
  return last!;
}

for (const idleUs of [0, 500]) {
  const idle = idleUs ? `, in idle mode (${idleUs} us sleeps: the worker is asleep when they arrive)` : "";
  Deno.test(`daemon relays exactly N packets each way and its counters agree with both ends${idle}`, async () => {
    await using w = await World.create("count");
    const vf = memifPair(`${w.dir}/vf.sock`);
    const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=(${vf.vf}=0)`, `VIO4WD_IDLE_SLEEP_US=${idleUs}`]);
    const pmd = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0)), vf.peer] });
    await pmd.waitLinksUp();
    await d.untilVm(0);
    await pmd.send("set fwd rxonly");
    if (idleUs) await new Promise((r) => setTimeout(r, 500)); // well past the idle threshold
    // 6 bursts of 32 = 192 packets each way: within the virtio rings (256), so nothing may drop.
    const bursts = 6;
    await pmd.send(`start tx_first ${bursts}`);
    const n = bursts * 32;
    let last: RelayState | undefined;
    await until("relay counters", async () => {
      last = relay0(await d.status());
      return last !== undefined && num(last.vfToVm.pktsTxToVm) === n && num(last.vmToVf.pktsTxToVf) === n;
    }).catch((e) => {
      throw new Error(`${e.message}: relay 0 = ${last && show(last)}; testpmd: ${pmd.output.slice(-800)}`);
    });
    const ports = await pmd.stop();
    const r = relay0(await d.status())!;
    assertEq(ports[0].txPackets, n, "VM stand-in sent");
    assertEq(ports[1].txPackets, n, "VF peer sent");
    assertEq(ports[1].rxPackets, n, "VF peer received (VM->VF)");
    assertEq(ports[0].rxPackets, n, "VM stand-in received (VF->VM)");
    assertEq(num(r.vmToVf.pktsRxFromVm), n, "relay VM->VF rx");
    assertEq(num(r.vfToVm.pktsRxFromVf), n, "relay VF->VM rx");
    assertEq(num(r.vmToVf.pktsDroppedVfQueueFull) + num(r.vmToVf.pktsDroppedVfNotConnected), 0, "relay VM->VF drops");
    assertEq(num(r.vfToVm.pktsDroppedVmQueueFull) + num(r.vfToVm.pktsDroppedVmNotConnected), 0, "relay VF->VM drops");
    assertEq(num(r.vmToVf.bytesTxToVf), n * 64, "relay VM->VF bytes");
  });
}

for (const steps of [false, true]) {
  const name = steps
    ? "worker accounting by step (the STEPS=1 shim): VF RX, copies into and out of the VM and VF TX each have busy cycles, together no more than the worker's busy cycles; stats shows the split"
    : "worker accounting: the worker took in exactly the packets the relay received, in bursts, with busy cycles per packet; stats --json and monitor show it, and no step split (not a STEPS=1 shim)";
  Deno.test(name, async () => {
    await using w = await World.create(steps ? "steps" : "cycles");
    const vf = memifPair(`${w.dir}/vf.sock`);
    const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=(${vf.vf}=0)`], steps ? { env: { VIO4WD_SHIM: STEPS_SHIM } } : {});
    const pmd = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0)), vf.peer] });
    await pmd.waitLinksUp();
    await d.untilVm(0);
    await pmd.send("set fwd rxonly");
    const n = 6 * 32;
    await pmd.send("start tx_first 6");
    await until("relay counters", async () => {
      const r = relay0(await d.status());
      return r !== undefined && num(r.vfToVm.pktsTxToVm) === n && num(r.vmToVf.pktsTxToVf) === n;
    });
    const stats = await runVio4wd(["stats", "--json", "--zmq-ep", d.statsEndpoint, "--delay", "0"]);
    assertEq(stats.code, 0, `stats --json: ${stats.stderr}`);
    const j = JSON.parse(stats.stdout) as {
      relay: { id: number; vf_rx_missed?: number; vf_rx_nombuf?: number }[];
      workers: {
        cpu: number;
        rx_pkts: number;
        bursts: number;
        busy_cycles: number;
        cycles_per_pkt: number;
        steps?: Record<string, number>;
      }[];
      tsc_hz: number;
    };
    assertEq(j.workers.map((x) => x.cpu).join(","), "1", "one worker, on CPU 1");
    const rj = j.relay.find((x) => x.id === 0);
    assertJsonEq([rj?.vf_rx_missed, rj?.vf_rx_nombuf], [0, 0], "the VF's receive losses, per relay");
    const wk = j.workers[0];
    assertEq(wk.rx_pkts, 2 * n, "packets the worker took in: both directions");
    if (!(wk.bursts >= (2 * n) / 32 && wk.bursts <= 2 * n)) throw new Error(`bursts ${wk.bursts} for ${2 * n} packets`);
    if (!(wk.busy_cycles > 0 && wk.cycles_per_pkt > 0)) throw new Error(`no busy cycles: ${JSON.stringify(wk)}`);
    if (!(j.tsc_hz > 1e8)) throw new Error(`tsc_hz ${j.tsc_hz}`);
    if (!steps) {
      assert(wk.steps === undefined, `a shim without STEPS=1 reports no step split: ${JSON.stringify(wk)}`);
    } else {
      const st = wk.steps ?? {};
      for (const k of ["vf_rx", "vm_enqueue", "vm_dequeue", "vf_tx"]) {
        assert(Number(st[k]) > 0, `step ${k} has busy cycles: ${JSON.stringify(wk)}`);
      }
      const sum = Object.values(st).reduce((a, b) => a + Number(b), 0);
      assert(sum <= wk.busy_cycles, `the steps (${sum}) fit in the busy cycles (${wk.busy_cycles})`);
      const text = await runVio4wd(["stats", "--zmq-ep", d.statsEndpoint, "--delay", "0"]);
      assertEq(text.code, 0, `stats: ${text.stderr}`);
      assert(/cpu 1: VF RX [\d.]+, copy into VM [\d.]+/.test(text.stdout), `stats shows the split: ${text.stdout}`);
      await pmd.stop();
      return;
    }
    const mon = await runVio4wd([
      "monitor",
      "--once",
      "--json",
      "--stats-ep",
      d.statsEndpoint,
      "--sched-ep",
      "ipc:///nonexistent",
    ]);
    assertEq(mon.code, 0, `monitor: ${mon.stderr}`);
    const cpu = (JSON.parse(mon.stdout) as { cpus: { cpu: number; busy: number | null }[] }).cpus.find((c) =>
      c.cpu === 1
    );
    if (!(cpu && typeof cpu.busy === "number" && cpu.busy >= 0 && cpu.busy <= 1)) {
      throw new Error(`monitor: no measured busy share for CPU 1: ${mon.stdout}`);
    }
    await pmd.stop();
  });
}

Deno.test("a VM that stops reading: its relay holds one burst for it and drops nothing, and the other relay on the same worker keeps flowing", async () => {
  await using w = await World.create("stall");
  // both relays on worker CPU 1; net_null VFs send VF->VM without end
  const d = await w.daemon(["VIRTIOFWD_STATIC_VFS=(net_null0=0 net_null1=1)"]);
  const stalled = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  const reading = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(1))] });
  for (const vm of [stalled, reading]) {
    await vm.send("set fwd rxonly");
    await vm.send("start");
  }
  await until("both VMs connected", async () => (await d.status()).filter((r) => r.vmToVf.active).length === 2);
  await stalled.send("stop"); // its RX ring fills and stays full
  const byId = async () => new Map((await d.status()).map((r) => [r.id, r]));
  await settled("the stopped VM's ring full", async () => (await byId()).get(0)!.vfToVm.pktsTxToVm);
  const a = await byId();
  await new Promise((r) => setTimeout(r, 1000));
  const b = await byId();
  const delivered = (m: Map<number, RelayState>, id: number) => num(m.get(id)!.vfToVm.pktsTxToVm);
  const r0 = b.get(0)!.vfToVm;
  assertEq(delivered(b, 0) - delivered(a, 0), 0, "nothing reaches the VM that stopped reading");
  assertEq(num(r0.pktsDroppedVmQueueFull) + num(r0.pktsDroppedVmNotConnected), 0, `relay 0 drops: ${show(b.get(0))}`);
  const held = num(r0.pktsRxFromVf) - num(r0.pktsTxToVm);
  assert(held >= 0 && held <= 32, `relay 0 holds at most one burst (${held}) and takes no more from its VF`);
  assertEq(num(b.get(0)!.vfToVm.pktsRxFromVf), num(a.get(0)!.vfToVm.pktsRxFromVf), "relay 0 took nothing new");
  if (!(delivered(b, 1) - delivered(a, 1) > 10_000)) {
    throw new Error(`relay 1 stalled beside the full ring: ${delivered(b, 1) - delivered(a, 1)} packets in 1 s`);
  }
  // the VM reads again: what was held reaches it, nothing lost inside the relay
  await stalled.send("start");
  await until("the held burst delivered", async () => {
    const r = (await byId()).get(0)!.vfToVm;
    return num(r.pktsTxToVm) > num(b.get(0)!.vfToVm.pktsRxFromVf);
  });
});

/** The slow-destination cases: which end reads a quarter of the time, and over how many queues. */
const SLOW_CASES = [
  { dir: "vfToVm", queues: 1, who: "a guest that reads", loss: "the VF side" },
  { dir: "vfToVm", queues: 2, who: "a guest with 2 queues that reads", loss: "the VF side" },
  { dir: "vmToVf", queues: 1, who: "a VF whose far end reads", loss: "the guest's TX ring" },
] as const;

for (const c of SLOW_CASES) {
  Deno.test(`${c.who} a quarter of the time (descheduled 15 ms of every 20): the relay drops nothing, holds at most a burst, the loss shows at ${c.loss}, and the other relay on the worker keeps its rate`, async () => {
    await using w = await World.create(`slow${c.dir === "vfToVm" ? "u" : "d"}${c.queues}`);
    const vf = memifPair(`${w.dir}/vf.sock`);
    // relay 0: a memif VF; relay 1: a net_null VF sending to a guest that reads; both on CPU 1
    const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=(${vf.vf}=0 net_null1=1)`]);
    const q = c.queues > 1 ? [`--rxq=${c.queues}`, `--txq=${c.queues}`] : [];
    const peer = await w.testpmd({ vdevs: [vf.peer], appArgs: ["--txonly-multi-flow"] });
    const guest = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0), { queues: c.queues })], appArgs: q });
    const other = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(1))] });
    const [gen, slow] = c.dir === "vfToVm" ? [peer, guest] : [guest, peer];
    for (const pmd of [slow, other]) {
      await pmd.send("set fwd rxonly");
      await pmd.send("start");
    }
    await until("both VMs connected", async () => (await d.status()).filter((r) => r.active).length === 2);
    await peer.waitLinksUp();
    await gen.send("set fwd txonly");
    await gen.send("start");
    const byId = async () => new Map((await d.status()).map((r) => [r.id, r]));
    const counts = (m: Map<number, RelayState>) => {
      const r = m.get(0)!;
      return c.dir === "vfToVm"
        ? { rx: num(r.vfToVm.pktsRxFromVf), tx: num(r.vfToVm.pktsTxToVm) }
        : { rx: num(r.vmToVf.pktsRxFromVm), tx: num(r.vmToVf.pktsTxToVf) };
    };
    const dropsOf = (r: RelayState) =>
      c.dir === "vfToVm"
        ? num(r.vfToVm.pktsDroppedVmQueueFull) + num(r.vfToVm.pktsDroppedVmNotConnected)
        : num(r.vmToVf.pktsDroppedVfQueueFull) + num(r.vmToVf.pktsDroppedVfNotConnected);
    /** Packets taken in and neither delivered nor dropped: what the relay holds. */
    const held = (m: Map<number, RelayState>) => counts(m).rx - counts(m).tx - dropsOf(m.get(0)!);
    // The slow end runs 5 ms of every 20, as a VM on a busy host that is descheduled most of the time.
    const endCycle = descheduleCycle(slow.pid, 15, 5);
    const samples: number[] = [];
    let a: Map<number, RelayState>, b: Map<number, RelayState>;
    try {
      await new Promise((r) => setTimeout(r, 500));
      a = await byId();
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 100));
        samples.push(held(await byId()));
      }
      b = await byId();
    } finally {
      await endCycle();
    }
    const genPorts = await gen.stop();
    await until("the relay delivered all it took", async () => held(await byId()) === 0);
    const end = (await byId()).get(0)!;
    const slowPorts = await slow.stop();
    assertEq(dropsOf(end), 0, `relay 0 drops: ${show(end)}`);
    assertEq(slowPorts[0].rxPackets, counts(new Map([[0, end]])).tx, "the slow end counted what the relay delivered");
    assert(samples.every((h) => h >= 0 && h <= 32), `held at most one burst at every sample: ${samples}`);
    assert(samples.some((h) => h > 0) || c.queues === 1, `a burst was held at some sample: ${samples}`);
    const offered = genPorts[0].txPackets + genPorts[0].txDropped;
    const taken = counts(new Map([[0, end]])).rx;
    const refused = genPorts[0].txDropped + (c.dir === "vfToVm" ? Number(end.vfRxMissed) : 0);
    assert(
      refused > 0 && taken < offered,
      `the loss is at ${c.loss}: offered ${offered}, relay took ${taken}, refused ${genPorts[0].txDropped}, ` +
        `VF missed ${end.vfRxMissed}`,
    );
    const rate1 = num(b.get(1)!.vfToVm.pktsTxToVm) - num(a.get(1)!.vfToVm.pktsTxToVm);
    if (!(rate1 > 10_000)) throw new Error(`relay 1 slowed beside the slow end: ${rate1} packets in 1 s`);
  });
}

Deno.test("thread placement: every daemon thread but the workers runs on the main lcore's CPU, each worker on its own", async () => {
  await using w = await World.create("placement");
  const d = await w.daemon(["VIRTIOFWD_STATIC_VFS=net_null0=0"]); // main lcore on CPU 0, a worker on CPU 1
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  await vm.send("set fwd rxonly");
  await vm.send("start");
  await d.untilVm(0);
  const dec = new TextDecoder();
  const ps = await new Deno.Command("ps", { args: ["-L", "-o", "tid=,comm=", "-p", String(d.pid)], stdout: "piped" })
    .output();
  const threads = dec.decode(ps.stdout).trim().split("\n").map((l) => l.trim().split(/\s+/, 2));
  const wrong: string[] = [];
  for (const [tid, comm] of threads) {
    const t = await new Deno.Command("taskset", { args: ["-p", tid], stdout: "piped", stderr: "null" }).output();
    const mask = /mask: ([0-9a-f]+)/.exec(dec.decode(t.stdout))?.[1];
    if (mask === undefined) continue; // ended meanwhile
    const want = comm.startsWith("rte-worker") ? "2" : "1";
    if (mask !== want) wrong.push(`${tid} ${comm}: mask ${mask}, expected ${want}`);
  }
  if (threads.filter(([, c]) => c.startsWith("rte-worker")).length !== 1) throw new Error(`no worker: ${ps.stdout}`);
  assert(threads.length > 5, `the daemon's threads: ${threads.length}`);
  assertEq(wrong.join("\n"), "", "threads off their CPUs");
});

Deno.test("VF offloads follow the guest: a guest without checksum offload gets a VF that is not asked for them (a vhost VF then checksums nothing in software), and packets cross both ways", async () => {
  await using w = await World.create("vfoffload");
  const vfSock = `${w.sockDir}/wire-vf.sock`;
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=net_vhost1,iface=${vfSock},queues=1=0`, "VIRTIOFWD_LOG_LEVEL=7"]);
  // the VM stand-in's virtio_user does not negotiate VIRTIO_NET_F_CSUM with the daemon's socket
  const pmd = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0)), `net_virtio_user1,path=${vfSock},queues=1`] });
  await pmd.waitLinksUp();
  await d.untilVm(0);
  await pmd.send("set fwd rxonly");
  await pmd.send("start tx_first 2");
  await until("64 packets each way", async () => {
    const r = relay0(await d.status());
    return r !== undefined && num(r.vfToVm.pktsTxToVm) === 64 && num(r.vmToVf.pktsTxToVf) === 64;
  });
  // the VF was configured with checksum offloads (the vhost VF has them), then without for this guest
  const m = await d.waitLog(/relay 0: VF TX offloads 0x([0-9a-f]+) -> 0x([0-9a-f]+) for the guest's features/);
  const CSUM = 0x2 | 0x4 | 0x8; // RTE_ETH_TX_OFFLOAD_IPV4/UDP/TCP_CKSUM
  assert((parseInt(m[1], 16) & CSUM) !== 0 && (parseInt(m[2], 16) & CSUM) === 0, `offloads: ${m[0]}`);
  const afterVm = d.log.slice(d.log.search(/relay 0: VM connected/));
  assertEq(/Tx csum will be done in SW/.test(afterVm), false, "the VF started for the guest checksums in software");
  await pmd.stop();
});

Deno.test("a VF whose PMD takes frames larger than one buffer only with scattered RX (virtio, as mlx5): attached with the default MTU 2100 over 2048-byte buffers (its RX queue set up), started with its VM, and it takes the VM's packets", async () => {
  await using w = await World.create("scatter");
  const vfSock = `${w.sockDir}/nic.sock`;
  // the "NIC" behind the VF: testpmd's net_vhost; the VF: a virtio_user port of the daemon's, whose
  // RX queue setup refuses a pool whose buffers are smaller than the MTU's frame without scatter
  const nic = await w.testpmd({ vdevs: [`net_vhost1,iface=${vfSock},queues=1`] });
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=net_virtio_user1,path=${vfSock},queues=1=0`]);
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  await until("the VF attached and the VM connected", async () => relay0(await d.status())?.active === true);
  await vm.send("set fwd rxonly");
  await vm.send("start tx_first 2");
  await untilRelay0(d, "64 packets VM->VF", (r) => num(r.vmToVf.pktsTxToVf) === 64);
  // (VF->VM is not checked here: DPDK 22.11's virtio_user does not reach DRIVER_OK again after the
  // stop and start that every VF goes through when its VM comes, so its "NIC" never sends.)
  await vm.stop();
  await nic.close();
});

Deno.test("bad VFs and relay ids are clear errors, leave nothing behind and do not disturb other relays", async () => {
  await using w = await World.create("bad");
  const d = await w.daemon([
    "VIRTIOFWD_STATIC_VFS=(",
    `  ${memifPair(`${w.dir}/vf.sock`).vf}=0`,
    "  net_bogus0=1",
    "  0000:0f:1f.7=2",
    `  ${memifPair(`${w.dir}/vf2.sock`).vf}=3`,
    ")",
  ]);
  await d.waitLog(/static VF net_bogus0=1: .*cannot probe device 'net_bogus0'/);
  await d.waitLog(/static VF 0000:0f:1f.7=2: .*cannot probe device '0000:0f:1f.7'/);
  await d.waitLog(
    /static VF net_memif0,role=server,socket=.*vf2.sock=3: .*device net_memif0 is already in use by another relay/,
  );
  const s = await d.status();
  assertEq(s.map((r) => r.id).join(","), "0", "only relay 0 has a VF");
  assertEq(relay0(s)!.vf?.pciAddrStr, memifPair(`${w.dir}/vf.sock`).vf, "relay 0 VF");
  // an empty file is valid: on a host with CPUs 0-3 (the defaults' worker CPUs 1 and 2 online) it passes
  const fourCpus = fakeCpus(`${w.dir}/sys4`, "0-3");
  const empty = await runVio4wd(["config", "check", "/dev/null"], { VIO4WD_SYSFS_ROOT: fourCpus });
  assertEq(empty.code, 0, `empty config is valid: ${empty.stderr}`);
  const here = await runVio4wd(["config", "check", "/dev/null"]);
  if (navigator.hardwareConcurrency < 3) {
    assertEq(here.code, 1, "on this 2-CPU host the defaults would not start: CPU 2 is not there");
    assert(/VIRTIOFWD_CPU_MASK=1,2: CPU 2 is not online on this host/.test(here.stderr), here.stderr);
  }
  const conf = `${w.dir}/id.conf`;
  await Deno.writeTextFile(conf, `VIRTIOFWD_STATIC_VFS=net_null0=64\nVIO4WD_EAL_FILE_PREFIX=${w.nextTag("id")}\n`);
  const r = await runVio4wd(["daemon", "--config", conf]);
  assertEq(r.code, 2, "relay id 64 exit status");
  if (!r.stderr.includes(`${conf}:1: VIRTIOFWD_STATIC_VFS='net_null0=64': relay id 64 is out of range`)) {
    throw new Error(`unexpected error text: ${r.stderr}`);
  }
});

Deno.test("a socket directory that cannot be written stops the daemon with a clear error and no leftovers", async () => {
  await using w = await World.create("nodir");
  const dir = `${w.dir}/t`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/sock`, "a file, not a directory");
  const conf = `${dir}/c.conf`;
  await Deno.writeTextFile(
    conf,
    `VIRTIOFWD_CPU_MASK=1\nVIRTIOFWD_SOCKET_DIR=${dir}/sock\nVIRTIOFWD_PID_DIR=${dir}\nVIO4WD_EAL_FILE_PREFIX=${
      w.nextTag("d")
    }\nVIO4WD_EAL_MEMORY_MB=128\n`,
  );
  const r = await runVio4wd(["daemon", "--config", conf]);
  assertEq(r.code, 1, "exit status");
  if (!r.stderr.includes(`socket directory ${dir}/sock is not a directory`)) throw new Error(r.stderr);
  assertEq([...Deno.readDirSync(dir)].map((e) => e.name).sort().join(","), "c.conf,sock", "files left in the dir");
});

Deno.test("client mode: the daemon restarts while the VM (virtio_user server=1) stays up and traffic resumes", async () => {
  await using w = await World.create("client");
  const wire = memifPair(`${w.dir}/vf.sock`);
  const config = ["VIRTIOFWD_VHOST_CLIENT=true", `VIRTIOFWD_STATIC_VFS=${wire.vf}=0`];
  // virtio_user in server mode blocks in accept() until a backend connects: start both together.
  const vmStarting = w.testpmd({ vdevs: [virtioUser(w.vmSocket(0), { server: true }), wire.peer] });
  const d = await w.daemon(config);
  const vm = await vmStarting;
  await d.untilVm(0, 15_000);
  await vm.waitLinksUp();
  await vm.send("set fwd io");
  await vm.send("start tx_first 4");
  const flowing = async (daemon: DaemonProcess) => {
    const a = relay0(await daemon.status());
    await new Promise((r) => setTimeout(r, 300));
    const b = relay0(await daemon.status());
    return a !== undefined && b !== undefined && num(b.vfToVm.pktsTxToVm) > num(a.vfToVm.pktsTxToVm) &&
      num(b.vmToVf.pktsTxToVf) > num(a.vmToVf.pktsTxToVf);
  };
  await until("traffic through the first daemon", () => flowing(d), 10_000);
  // The stand-in stops polling first: its memif port (the VF's wire) would otherwise be read
  // while DPDK 22.11's memif frees it on the daemon's hang-up, and the stand-in could crash.
  await vm.send("stop");
  assertEq(await d.stop(), 0, "first daemon exit status");
  const vmPid = vm.pid;
  const restarted = await w.daemon(config);
  // DPDK's vhost client redials every second. virtio_user's server side notices the old
  // connection is gone when its link is looked at (QEMU does that itself): poll the link meanwhile.
  await until("the VM reconnected to the restarted daemon", async () => {
    if (restarted.count(/relay 0: VM connected/) > 0) return true;
    await vm.linksUp().catch(() => false);
    return false;
  }, 30_000).catch((e) => {
    throw new Error(`${e.message}\ndaemon:\n${restarted.log.slice(-1500)}\ntestpmd (VM):\n${vm.output.slice(-2000)}`);
  });
  // The memif peer stands in for the VF's wire and does not redial a server that went away:
  // restart that port only (port 1), never the VM's virtio port (port 0). The packets in flight
  // were lost with the old daemon, so seed the loop again.
  await vm.send("stop");
  await vm.send("port stop 1");
  await vm.send("port start 1");
  await vm.waitLinksUp();
  await vm.send("start tx_first 4");
  await until("traffic through the restarted daemon", () => flowing(restarted), 15_000).catch((e) => {
    throw new Error(`${e.message}; daemon log:\n${restarted.log.slice(-1500)}\ntestpmd:\n${vm.output.slice(-1500)}`);
  });
  assertEq(vm.pid, vmPid, "VM stand-in is the same process");
});

Deno.test("multiqueue: 4 queue pairs, VF->VM flows spread over every virtio RX queue, VM->VF served from every TX queue", async () => {
  await using w = await World.create("mq");
  const wire = memifPair(`${w.dir}/vf.sock`);
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=${wire.vf}=0`]);
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0), { queues: 4 })], appArgs: ["--rxq=4", "--txq=4"] });
  const vf = await w.testpmd({ vdevs: [wire.peer], appArgs: ["--txonly-multi-flow"] });
  await vm.waitLinksUp();
  await vf.waitLinksUp();
  await d.untilVm(0, undefined, 4);
  await until("the VF link", async () => relay0(await d.status())?.vfLink === true);
  // memif takes packets only once its peer polls: the VF peer receives first, then sends.
  await vf.send("set fwd rxonly");
  await vf.send("start");
  await vm.send("set fwd rxonly");
  await vm.send("start tx_first"); // one burst of 32 on each of the VM's four TX queues
  await until("VM->VF from every queue", async () => num(relay0(await d.status())?.vmToVf.pktsTxToVf) === 128).catch(
    async (e) => {
      throw new Error(`${e.message}: ${show(relay0(await d.status()))}\n${d.log.slice(-1500)}`);
    },
  );
  await vf.stop();
  await vf.send("set fwd txonly");
  await vf.send("start");
  await until("VF->VM traffic", async () => num(relay0(await d.status())?.vfToVm.pktsTxToVm) > 10_000);
  await vf.stop();
  await settled("VF->VM counters once the VF stopped", async () => relay0(await d.status())?.vfToVm);
  const { queues } = await vm.stopWithQueues();
  const r = relay0(await d.status())!;
  const q = queues[0] ?? [];
  if (!(q.length === 4 && q.every((n) => n > 0))) {
    throw new Error(`VF->VM packets per VM RX queue: ${JSON.stringify(q)}`);
  }
  assertEq(q.reduce((a, b) => a + b, 0), num(r.vfToVm.pktsTxToVm), "VM received what the relay sent VF->VM");
  assertEq(num(r.vmToVf.pktsRxFromVm), 128, "relay received VM->VF from all four TX queues (32 each)");
});

Deno.test("64 relays: VFs up to DPDK's port limit each pass traffic both ways, the next VF is refused naming the limit, VM-only relays are served", async () => {
  await using w = await World.create("limit");
  const wire = (i: number) => memifPair(`${w.dir}/vf${i}.sock`, i, 100 + i);
  const d = await w.daemon([
    "VIO4WD_EAL_MEMORY_MB=512",
    "VIRTIOFWD_STATIC_VFS=(",
    ...Array.from({ length: 33 }, (_, i) => `  ${wire(i).vf}=${i}`),
    ")",
  ]);
  const sockets = [...Deno.readDirSync(w.sockDir)].filter((e) => /^virtio-forwarder\d+\.sock$/.test(e.name));
  assertEq(sockets.length, 64, "vhost-user sockets");
  await d.waitLog(/static VF net_memif32,.*=32: .*DPDK allows 32 ports per process \(RTE_MAX_ETHPORTS\)/);
  assertEq(
    (await d.status()).map((r) => r.id).join(","),
    Array.from({ length: 32 }, (_, i) => i).join(","),
    "relays with a VF",
  );
  // Stand-ins hold 32 ports each too: relays 0-15 and 16-31 as VM + VF peer pairs looping
  // packets (io forwarding), relays 32-63 as VMs only, sending.
  const vm = (i: number) => virtioUser(w.vmSocket(i), { port: i });
  const pairs = (from: number) => Array.from({ length: 16 }, (_, k) => [vm(from + k), wire(from + k).peer]).flat();
  const pmds: TestPmd[] = [];
  for (const vdevs of [pairs(0), pairs(16), Array.from({ length: 32 }, (_, k) => vm(32 + k))]) {
    pmds.push(await w.testpmd({ vdevs, memoryMb: 384, mbufs: 16384 }));
  }
  await until("64 VMs connected", async () => (await d.status()).filter((r) => r.vmToVf.active).length === 64, 30_000);
  // VFs start when their VM connects (as the original): seed the loops once their links are up too
  await until("32 VF links up", async () => (await d.status()).filter((r) => r.vfLink).length === 32, 30_000);
  await pmds[0].send("set fwd io");
  await pmds[1].send("set fwd io");
  await pmds[2].send("set fwd txonly");
  for (const p of pmds) await p.send("start tx_first");
  let last: RelayState[] = [];
  const passing = (r: RelayState) =>
    r.id < 32
      ? num(r.vfToVm.pktsTxToVm) > 0 && num(r.vmToVf.pktsTxToVf) > 0
      : r.vmToVf.active && num(r.vmToVf.pktsDroppedVfNotConnected) > 0;
  await until("traffic on every relay", async () => {
    last = await d.status();
    return last.length === 64 && last.every(passing);
  }, 20_000).catch((e) => {
    throw new Error(`${e.message}: idle relays ${last.filter((r) => !passing(r)).map((r) => r.id).join(",")}`);
  });
});

Deno.test("CPU migration under traffic: a relay moves between worker lcores 200 times with no packet lost, the other relay never stalls", async () => {
  await using w = await World.create("migrate");
  const dir = w.dir;
  const wire = (i: number) => memifPair(`${dir}/vf${i}.sock`, i, 10 + i);
  const d = await w.daemon([
    "VIO4WD_EAL_LCORES=0@0,1@1,2@1",
    "VIRTIOFWD_CPU_MASK=1,2",
    `VIRTIOFWD_ZMQ_STATS_EP=ipc://${dir}/zmq/stats`,
    `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${dir}/zmq/core_sched`,
    "VIO4WD_CORE_SCHED_ENABLE=true",
    "VIRTIOFWD_CPU_PINS=(0:1 1:2)",
    "VIRTIOFWD_STATIC_VFS=(",
    `  ${wire(0).vf}=0`,
    `  ${wire(1).vf}=1`,
    ")",
  ]);
  // Two VM + VF-peer pairs looping packets through relays 0 and 1 (io forwarding).
  const pmd = await w.testpmd({
    vdevs: [virtioUser(w.vmSocket(0)), wire(0).peer, virtioUser(w.vmSocket(1), { port: 1 }), wire(1).peer],
  });
  await pmd.waitLinksUp();
  await until("both VMs", async () => (await d.status()).filter((r) => r.vmToVf.active).length === 2);
  await pmd.send("set fwd io");
  await pmd.send("start tx_first 2");
  const pin = (spec: string) =>
    runVio4wd([
      "pin",
      "--zmq-ep",
      `ipc://${dir}/zmq/core_sched`,
      "--stats-ep",
      `ipc://${dir}/zmq/stats`,
      `--virtio-cpu=${spec}`,
    ]);
  // The first moves through `vio4wd pin`, the rest straight over the core-scheduling endpoint.
  const move = async (to: number, i: number) => {
    if (i < 2) {
      const r = await pin(`0:${to},${to}`); // C1 = VM->VF, C2 = VF->VM
      assertEq(r.code, 0, `pin ${i}: ${r.stdout}${r.stderr}`);
      return;
    }
    const r = await request(`ipc://${dir}/zmq/core_sched`, CoreSchedRequestSchema, {
      op: CoreSchedRequest_Op.UPDATE,
      relayCpuMap: [{ relayNumber: 0, vf2virtioCpu: to, virtio2vfCpu: to }],
    }, CoreSchedResponseSchema);
    assertEq(r.status, CoreSchedResponse_Status.OK, `move ${i}`);
  };
  const relay1Sent = async () => num((await d.status()).find((r) => r.id === 1)!.vfToVm.pktsTxToVm);
  for (let i = 0; i < 200; i++) {
    const to = i % 2 === 0 ? 2 : 1;
    const before = await relay1Sent();
    await move(to, i);
    const s = await d.status();
    const r0 = s.find((r) => r.id === 0)!;
    assertEq(`${r0.cpu?.vfToVm},${r0.cpu?.vmToVf}`, `${to},${to}`, `relay 0 CPUs after move ${i}`);
    // Both worker lcores share CPU 1 with the stand-in: "never stalls" = moves on within 1 s of each move.
    let after = num(s.find((r) => r.id === 1)!.vfToVm.pktsTxToVm);
    await until(`relay 1 moving on after move ${i}`, async () => (after = await relay1Sent()) > before, 1000).catch(
      () => {
        throw new Error(`relay 1 stalled during move ${i}: ${before} -> ${after}`);
      },
    );
  }
  await pmd.stop();
  await settled("relays 0 and 1 once the generator stopped", async () => (await d.status()).filter((x) => x.id <= 1));
  for (const r of (await d.status()).filter((x) => x.id <= 1)) {
    const up = r.vfToVm, down = r.vmToVf;
    assertEq(num(up.pktsDroppedVmQueueFull) + num(up.pktsDroppedVmNotConnected), 0, `relay ${r.id} VF->VM drops`);
    assertEq(num(up.pktsRxFromVf), num(up.pktsTxToVm), `relay ${r.id} VF->VM: every packet received was sent`);
    assertEq(num(down.pktsDroppedVfQueueFull) + num(down.pktsDroppedVfNotConnected), 0, `relay ${r.id} VM->VF drops`);
    assertEq(num(down.pktsRxFromVm), num(down.pktsTxToVf), `relay ${r.id} VM->VF: every packet received was sent`);
  }
});

Deno.test("feature flags: jumbo frames (MTU 9000, big mbufs) cross both ways with mergeable RX buffers; zero-copy is a warning", async () => {
  await using w = await World.create("jumbo");
  const d = await w.daemon([
    "VIRTIOFWD_JUMBO=y",
    "VIRTIOFWD_MRGBUF=y",
    "VIRTIOFWD_ZERO_COPY=y",
    "VIRTIOFWD_STATIC_VFS=net_null0,size=9000=0",
  ]);
  await d.waitLog(/VIRTIOFWD_ZERO_COPY: dequeue zero-copy is not supported by DPDK >= 20\.11/);
  const pmd = await w.testpmd({
    vdevs: [`${virtioUser(w.vmSocket(0))},mrg_rxbuf=1`],
    // --txpkts after --mbuf-size: testpmd checks the length against the mbuf size it has parsed so far.
    appArgs: ["--mbuf-size=10240", "--max-pkt-len=9018", "--txpkts=9000"],
  });
  await pmd.waitLinksUp();
  await d.untilVm(0);
  await pmd.send("set fwd rxonly");
  await pmd.send("start tx_first"); // 32 jumbo frames VM->VF; net_null sends 9000-byte frames VF->VM
  await untilRelay0(
    d,
    "jumbo frames both ways",
    (r) => num(r.vmToVf.pktsTxToVf) === 32 && num(r.vfToVm.pktsTxToVm) > 0,
    10_000,
  );
  const r = relay0(await d.status())!;
  assertEq(num(r.vmToVf.bytesTxToVf), 32 * 9000, "VM->VF bytes: whole 9000-byte frames");
  assertEq(num(r.vmToVf.pktsDroppedVfQueueFull), 0, "VM->VF drops");
  if (num(r.vfToVm.bytesTxToVm) !== num(r.vfToVm.pktsTxToVm) * 9000) {
    throw new Error(`VF->VM frames not whole: ${show(r)}`);
  }
  const ports = await pmd.stop();
  if (!(ports[0].rxPackets > 0)) throw new Error("the VM received no jumbo frame");
});

/**
 * Adds bond net_bonding0 in `mode` over two net_tap members (their kernel interfaces `ifaces` in
 * `ns`, given 10.9.1.1/24 and 10.9.2.1/24 and set up) to relay 0 through port control at `ep`.
 */
async function addTapBond(ep: string, ns: NetNs, mode: number, ifaces: [string, string]): Promise<void> {
  const add = await runVio4wd([
    ...["port", "add", "--virtio-id", "0", "--name", "net_bonding0", "--mode", String(mode), "--zmq-ep", ep],
    ...["--device", `net_tap1,iface=${ifaces[0]}`, "--device", `net_tap2,iface=${ifaces[1]}`],
  ]);
  assertEq(add.code, 0, `port add (bond): ${add.stdout}${add.stderr}`);
  await ns.configure(ifaces[0], "10.9.1.1/24");
  await ns.configure(ifaces[1], "10.9.2.1/24");
}

Deno.test("bond: active-backup over two tap members survives the loss of the active member's link, both directions", async () => {
  // tap members in a namespace the test creates (memif cannot take the bond's MAC address). DPDK
  // 22.11's tap raises no link event when its interface goes down: the daemon's bond supervision
  // moves the bond to the member that still has link.
  await using w = await World.create("bondfo");
  const ns = await w.netns();
  const ep = `ipc://${w.dir}/port_control`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`], { netns: ns.name });
  await addTapBond(ep, ns, 1, ["bt1", "bt2"]);
  // what the bond sends out of a member arrives on the member's kernel interface
  const rx = async (iface: string) =>
    Number((await ns.run(["cat", `/sys/class/net/${iface}/statistics/rx_packets`])).stdout);
  const gained = async (iface: string) => {
    const a = await rx(iface);
    await new Promise((r) => setTimeout(r, 500));
    return (await rx(iface)) - a;
  };
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  await vm.waitLinksUp();
  await d.untilVm(0);
  await vm.send("set fwd txonly");
  await vm.send("start");
  const [g1, g2] = await Promise.all([gained("bt1"), gained("bt2")]);
  if (!(g1 > 1000 && g2 < 100)) throw new Error(`before: bt1 +${g1}, bt2 +${g2} packets (bt1 should carry all)`);
  const down = await ns.run(["ip", "link", "set", "bt1", "down"]);
  assertEq(down.code, 0, `ip link set bt1 down: ${down.stderr}`);
  await d.waitLog(
    /relay 0: bond net_bonding0: member net_tap1,iface=bt1 lost its link; net_tap2,iface=bt2 is active/,
  );
  const g = await gained("bt2");
  if (!(g > 1000)) throw new Error(`after bt1 went down, bt2 carried only ${g} packets`);
  // VF->VM: the kernel pings out of bt2, the bond takes it from its now active member
  const before = num(relay0(await d.status())!.vfToVm.pktsRxFromVf);
  await ns.run(["busybox", "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.9.2.2"]);
  const after = num(relay0(await d.status())!.vfToVm.pktsRxFromVf);
  if (!(after > before)) throw new Error(`no VF->VM packets from bt2 after the failover (${before} -> ${after})`);
  await vm.stop();
});

Deno.test("bond mode 4 (802.3ad): LACP keeps flowing both ways while the guest is idle and its RX ring is full (the bond hears the partner leave)", async () => {
  // A partner on the taps' kernel side speaks LACP as a switch would. The VM (testpmd, never
  // started) sends nothing and takes nothing: without zero-length TX bursts no LACPDU leaves; once
  // the flood has filled its ring, without receives the bond reads no LACPDU, so it does not see
  // the partner leave the aggregation (its LACPDUs would still say the partner is in sync).
  await using w = await World.create("lacp");
  const ns = await w.netns();
  const ep = `ipc://${w.dir}/port_control`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`], { netns: ns.name });
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  await vm.waitLinksUp();
  await d.untilVm(0);
  await addTapBond(ep, ns, 4, ["lb1", "lb2"]);
  const partner = new URL("./rigs/lacp_partner.py", import.meta.url).pathname;
  const out = await ns.run(["python3", partner, "11", "5", "3000", "8", "lb1", "lb2"]);
  assertEq(out.code, 0, `LACP partner: ${out.stderr}`);
  type Heard = { after_flood: number; actor_state: number; partner_system: string; partner_state: number };
  const heard = JSON.parse(out.stdout) as Record<string, Heard>;
  const r = relay0(await d.status())!;
  assert(num(r.vfToVm.pktsRxFromVf) >= 256, `the flood reached the relay (the bond was collecting): ${show(r)}`);
  for (const [iface, h] of Object.entries(heard)) {
    const what = `${iface}: ${JSON.stringify(h)}`;
    assert(h.after_flood >= 3, `LACPDUs kept leaving the bond after the flood: ${what}`);
    assertEq(h.partner_system, "02:00:00:00:00:aa", `the bond still hears the partner at the end: ${what}`);
    // the partner as the bond last heard it: no longer collecting and distributing (0x10, 0x20)
    assertEq(h.partner_state & 0x30, 0, `the bond heard the partner leave the aggregation after the flood: ${what}`);
  }
});

Deno.test("a device whose port is not named like its devargs and which has two ports (net_ring with two nodeactions) relays both ways, is removed whole and can be added again", async () => {
  // net_ring names its ports after the nodeactions (vr0, vr1), not net_ring0; a port created by
  // CREATE sends into the ring it receives from, so what the VM sends comes back to it.
  await using w = await World.create("ringdev");
  fakeSysfs(`${w.dir}/sys`, [3]);
  standInForVf(`${w.dir}/sys`, "0000:05:08.3", "net_ring0,nodeaction=vr0:0:CREATE,nodeaction=vr1:0:CREATE");
  const ep = `ipc://${w.dir}/port_control`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`], { env: { VIO4WD_SYSFS_ROOT: `${w.dir}/sys` } });
  const port = async (op: "add" | "remove") => {
    const r = await runVio4wd(["port", op, "--virtio-id", "3", "--pci-addr", "0000:05:08.3", "--zmq-ep", ep]);
    assertEq(r.code, 0, `port ${op}: ${r.stdout}${r.stderr}\n${d.log.slice(-1500)}`);
  };
  await port("add");
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(3))] });
  await vm.waitLinksUp();
  await d.untilVm(3);
  await vm.send("set fwd rxonly");
  await vm.send("start tx_first");
  const relay3 = async () => (await d.status()).find((r) => r.id === 3)!;
  await until("32 packets out to the ring and back", async () => num((await relay3()).vfToVm.pktsTxToVm) === 32)
    .catch(async (e) => {
      throw new Error(`${e.message}: ${show(await relay3())}`);
    });
  await port("remove");
  await port("add"); // the device and both its ports went: probing it again works
  await port("remove");
});

Deno.test("event queue overflow: with every vhost event dropped, the relay table still places the VM (its state is read from the data plane, not from events) and relays both ways", async () => {
  await using w = await World.create("overflow");
  const wire = memifPair(`${w.dir}/vf.sock`);
  // capacity 0: the shim drops every event and counts it; the table reads the VM from the shared memory
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=${wire.vf}=0`], { env: { VIO4WD_TEST_EVENT_QUEUE_CAP: "0" } });
  const pmd = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0)), wire.peer] });
  await pmd.waitLinksUp();
  await until("relay 0's VM placed", async () => (relay0(await d.status())?.cpu?.vmToVf ?? -1) >= 0);
  // the log line that says the queue overflowed is the behaviour under test here
  await d.waitLog(/event queue overflowed: \d+ event\(s\) dropped, their log lines lost/);
  await pmd.send("set fwd rxonly");
  await pmd.send("start tx_first 4"); // 128 each way
  await until("both directions relayed", async () => {
    const r = relay0(await d.status());
    return num(r?.vfToVm.pktsTxToVm) === 128 && num(r?.vmToVf.pktsTxToVf) === 128;
  }).catch(async (e) => {
    throw new Error(`${e.message}: ${show(relay0(await d.status()))}\n${d.log.slice(-1500)}`);
  });
  assertEq(relay0(await d.status())?.cpu?.vmToVf, 1, "VM->VF placed on the worker");
});

Deno.test("bond of 8 members (the original's maximum) on taps starts and relays both ways; a VM that came first keeps relaying as the pool grows per member", async () => {
  // tap members fill their receive rings from the relay's pool, as real VFs do: 8 x 512 buffers
  // do not fit a pool sized for one port.
  await using w = await World.create("bond8");
  const ns = await w.netns();
  const ep = `ipc://${w.dir}/port_control`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`, "VIO4WD_EAL_MEMORY_MB=512"], { netns: ns.name });
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  await vm.waitLinksUp();
  await d.untilVm(0); // the VM's pool exists first, sized for one port
  const members = Array.from({ length: 8 }, (_, i) => ["--device", `net_tap${i + 1},iface=bm${i + 1}`]).flat();
  const add = await runVio4wd([
    "port",
    "add",
    "--virtio-id",
    "0",
    "--name",
    "net_bonding0",
    "--mode",
    "1",
    "--zmq-ep",
    ep,
    ...members,
  ]);
  assertEq(add.code, 0, `port add (8 members): ${add.stdout}${add.stderr}\n${d.log.slice(-1500)}`);
  await ns.configure("bm1", "10.9.3.1/24");
  await vm.send("set fwd txonly");
  await vm.send("start");
  const rx = async () => Number((await ns.run(["cat", "/sys/class/net/bm1/statistics/rx_packets"])).stdout);
  const before = await rx();
  await until("packets out of the bond's active member", async () => (await rx()) - before > 1000);
  await vm.stop();
  const r = relay0(await d.status())!;
  if (!(num(r.vmToVf.pktsTxToVf) > 1000)) throw new Error(`relay 0: ${show(r)}`);
  // and the other way: 200 frames into the active member reach the VM
  const frames = "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('bm1', 0))\n" +
    "for _ in range(200): s.send(b'\\xff' * 6 + b'\\x02' * 6 + b'\\x88\\xb5' + b'x' * 50)";
  const sent = await ns.run(["python3", "-c", frames]);
  assertEq(sent.code, 0, `frames into bm1: ${sent.stderr}`);
  await untilRelay0(d, "200 frames VF->VM through the bond", (r) => num(r.vfToVm.pktsTxToVm) >= 200);
});

Deno.test("a second connection to a relay's socket is refused and leaves the live VM's queues alone: multi-flow VF->VM traffic all reaches its one queue, nothing is aimed at queues it does not have", async () => {
  await using w = await World.create("secondvm");
  const wire = memifPair(`${w.dir}/vf.sock`);
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=${wire.vf}=0`]);
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  const vf = await w.testpmd({ vdevs: [wire.peer], appArgs: ["--txonly-multi-flow"] });
  await vm.waitLinksUp();
  await vf.waitLinksUp();
  await d.untilVm(0, undefined, 1);
  await until("the VF link", async () => relay0(await d.status())?.vfLink === true);
  // a second frontend with 4 queue pairs on the same socket: refused, but it enables its 8 vrings
  const intruder = await w.testpmd({
    vdevs: [virtioUser(w.vmSocket(0), { queues: 4 })],
    appArgs: ["--rxq=4", "--txq=4"],
  });
  await d.waitLog(/relay 0: VM connection refused \(errno 16/); // the refusal is part of what is tested
  await vm.send("set fwd rxonly");
  await vm.send("start");
  // 8 bursts of 32 packets of many flows, which the relay spreads over the VM's enabled queues
  await vf.send("set fwd rxonly");
  await vf.send("start tx_first 8");
  await until("256 packets from the VF", async () => num(relay0(await d.status())?.vfToVm.pktsRxFromVf) >= 256);
  const accounted = (x: RelayState) =>
    num(x.vfToVm.pktsTxToVm) + num(x.vfToVm.pktsDroppedVmQueueFull) === num(x.vfToVm.pktsRxFromVf);
  await until("every packet delivered or dropped", async () => accounted(relay0(await d.status())!));
  const r = relay0(await d.status())!;
  assertEq(num(r.vfToVm.pktsDroppedVmQueueFull), 0, `no packet aimed at a queue the VM does not have: ${show(r)}`);
  assertEq(num(r.vfToVm.pktsTxToVm), num(r.vfToVm.pktsRxFromVf), "every packet reached the VM");
  await intruder.close();
});

Deno.test("a pool moved to the VM's node under a VF whose driver cannot tell its queue's pool (memif): the VF's RX queue runs on the new pool, traffic both ways, mbufs back, a clean stop (fault injection: the move forced on this one-node machine, freed pools drained so that one still in use shows)", async () => {
  await using w = await World.create("rehome");
  const wire = memifPair(`${w.dir}/vf.sock`);
  // the VF first (its pool is made then), the VM after: its connection moves the pool
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=${wire.vf}=0`], {
    // forced move; a freed pool is drained, not freed: a queue left on it would starve visibly
    env: { VIO4WD_SHIM: FAULTS_SHIM, VIO4WD_FAULT_FORCE_REHOME: "1", VIO4WD_FAULT_DRAIN_FREED_POOLS: "1" },
  });
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0)), wire.peer] });
  await vm.waitLinksUp();
  await d.untilVm(0);
  await vm.send("set fwd io");
  await vm.send("start tx_first 4");
  await until("traffic both ways on the moved pool", async () => {
    const r = relay0(await d.status());
    return num(r?.vfToVm.pktsTxToVm) > 100_000 && num(r?.vmToVf.pktsTxToVf) > 100_000;
  }, 15_000).catch(async (e) => {
    throw new Error(`${e.message}: ${show(relay0(await d.status()))}\n${d.log.slice(-1500)}`);
  });
  await vm.send("stop");
  // memif holds no mbufs between bursts: all are back in the relay's (new) pool
  await until("mbufs back", async () => (relay0(await d.status())?.mbufsInUse ?? Infinity) <= 64);
  assertEq(await d.stop(), 0, "the daemon stops cleanly");
});

Deno.test("a worker stalled for 20 s (longer than the wait used to last, about 11-15 s) while its VF is removed (fault build: descheduled mid-pass, still polling the VF): the removal waits for it instead of closing the port under it; the daemon lives on and the relay takes a VF again", async () => {
  await using w = await World.create("stallrm");
  const vf = memifPair(`${w.sockDir}/vf.sock`); // in the socket directory: clients may name it
  const pc = `ipc://${w.dir}/pc.sock`;
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=(${vf.vf}=0)`, `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${pc}`], {
    env: { VIO4WD_SHIM: FAULTS_SHIM, VIO4WD_FAULT_STALL_WORKER_MS: "20000" },
  });
  const pmd = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0)), vf.peer] });
  await pmd.waitLinksUp();
  await until("the relay active", async () => relay0(await d.status())?.active === true, 30_000);
  await pmd.send("set fwd io");
  await pmd.send("start tx_first 4");
  await until("traffic both ways", async () => num(relay0(await d.status())?.vfToVm.pktsTxToVm) > 1000, 15_000);
  const t0 = Date.now();
  const rm = await runVio4wd([
    "port",
    "remove",
    "--virtio-id",
    "0",
    "--device",
    vf.vf,
    "--zmq-ep",
    pc,
    "--timeout",
    "30000",
  ]);
  const took = Date.now() - t0;
  assertEq(rm.code, 0, `port remove: ${rm.stdout}${rm.stderr}`);
  assert(took >= 19_900, `the removal waited for the stalled worker (${took} ms): ${d.log.slice(-2500)}`);
  assert(d.alive, `the daemon lives on: ${d.log.slice(-1500)}`);
  assertEq(relay0(await d.status())?.vf?.pciAddrStr ?? null, null, "the VF is gone from the relay");
  // (the stand-in is closed at disposal: its memif peer went away under it, which is not what this tests)
  const add = await runVio4wd([
    "port",
    "add",
    "--virtio-id",
    "0",
    "--device",
    "net_null5",
    "--zmq-ep",
    pc,
    "--timeout",
    "30000",
  ]);
  assertEq(add.code, 0, `port add again: ${add.stdout}${add.stderr}`);
  assert(d.alive, "the daemon lives on after the VF came back");
});

Deno.test("a VF that cannot be started when its VM connects (fault build): the daemon says so naming the relay and VF (an event from the vhost thread, not a line on stderr), and the relay shows inactive with the VM there", async () => {
  await using w = await World.create("vffail");
  const vf = memifPair(`${w.dir}/vf.sock`);
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=(${vf.vf}=0)`], {
    env: { VIO4WD_SHIM: FAULTS_SHIM, VIO4WD_FAULT_VF_START: "1" },
  });
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  await d.waitLog(/relay 0: its VF net_memif0,\S* could not be started for the VM \(errno 5\)/);
  const r = relay0(await d.status());
  assert(r?.vmToVf.active === true && !r.active && r.vfLink === false, `VM there, VF stopped: ${show(r)}`);
  await vm.close();
});

Deno.test("a VF whose device asks for a reset (RTE_ETH_EVENT_INTR_RESET raised from the interrupt thread, fault build) is reset, configured again and relays both ways after it", async () => {
  // net_null: what the VM sends it takes, and it gives the VM packets as fast as asked
  await using w = await World.create("vfreset");
  const d = await w.daemon(["VIRTIOFWD_STATIC_VFS=(net_null0=0)"], {
    env: { VIO4WD_SHIM: FAULTS_SHIM, VIO4WD_FAULT_VF_EVENT: "reset", VIO4WD_FAULT_VF_EVENT_MS: "1000" },
  });
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  await vm.waitLinksUp();
  await vm.send("set fwd io"); // what the VM receives goes back out
  await vm.send("start");
  await d.waitLog(/relay 0: its VF net_null0 asked for a reset \(its PF was reset\?\); reset and running again/);
  const at = relay0(await d.status())!;
  await untilRelay0(
    d,
    "both directions relayed after the reset",
    (r) =>
      num(r.vfToVm.pktsTxToVm) > num(at.vfToVm.pktsTxToVm) + 1000 &&
      num(r.vmToVf.pktsTxToVf) > num(at.vmToVf.pktsTxToVf) + 1000,
  );
  await vm.stop();
});

Deno.test("a VF whose device goes away (RTE_ETH_EVENT_INTR_RMV, fault build) is detached with an error naming it; the relay keeps its VM and the daemon runs on", async () => {
  await using w = await World.create("vfrmv");
  const wire = memifPair(`${w.dir}/vf.sock`);
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=(${wire.vf}=0)`], {
    env: { VIO4WD_SHIM: FAULTS_SHIM, VIO4WD_FAULT_VF_EVENT: "remove", VIO4WD_FAULT_VF_EVENT_MS: "500" },
  });
  const pmd = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0)), wire.peer] });
  await pmd.waitLinksUp();
  const r = await untilRelay0(d, "the VF detached", (x) => !x.vf?.pciAddrStr && x.vmToVf.active === true);
  assert(!r.active, `the relay is inactive without its VF: ${show(r)}`);
  assertEq(
    d.count(/relay 0: its VF net_memif0,\S* was removed from the system \(hot-unplug\); detaching it/),
    1,
    "said once",
  );
  assert(d.alive, "the daemon runs on");
  await pmd.close();
});

Deno.test("a memif VF stand-in left registered with EAL after its removal (DPDK 22.11's memif, kept by the fault build): a peer connecting to it after cleanup does not crash the stopping daemon, EAL's interrupt thread is parked first (without the park it dies of SIGSEGV)", async () => {
  await using w = await World.create("park");
  const sock = `${w.dir}/vf.sock`;
  const stop = async (env: Record<string, string>) => {
    // not the world's: the one that crashes on purpose is stopped (and its files removed) here
    const d = await DaemonProcess.start(w.dir, w.nextTag("d"), [`VIRTIOFWD_STATIC_VFS=${memifPair(sock).vf}=0`], {
      env: {
        VIO4WD_SHIM: FAULTS_SHIM,
        VIO4WD_FAULT_NO_MEMIF_DISARM: "1", // memif's listener left as 22.11 leaves it
        VIO4WD_FAULT_CONNECT_AFTER_CLEANUP: sock,
        ...env,
      },
    });
    return { code: await d.stop(), log: d.log };
  };
  const unparked = await stop({ VIO4WD_FAULT_NO_PARK: "1" });
  assertEq(
    unparked.code,
    139,
    `the hazard is real: without the park the interrupt thread reads unmapped memory\n${unparked.log.slice(-800)}`,
  );
  const parked = await stop({});
  assertEq(parked.code, 0, `a clean stop with the park\n${parked.log.slice(-800)}`);
});

Deno.test("a memif server VF (abstract socket, from the config) removed at run time leaves no listener behind (DPDK 22.11's memif leaves it open, its handler on freed memory): a peer connecting there is refused and the address is free again", async () => {
  await using w = await World.create("memifgone");
  const name = `${w.dir}/vf.sock`;
  const pc = `ipc://${w.dir}/port_control`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${pc}`, `VIRTIOFWD_STATIC_VFS=${memifPair(name).vf}=0`]);
  // the attack: any local user can reach an abstract socket. The peer waits for memif's hello
  // before it hangs up (one that hangs up first makes DPDK 22.11's memif panic: the manual says so)
  const peer = async (what: "connect" | "bind") => {
    const py = `import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n` +
      `a = "\\0" + ${JSON.stringify(name)}\n` +
      (what === "connect"
        ? `try:\n  s.connect(a); s.recv(4096); print("accepted")\nexcept ConnectionRefusedError: print("refused")`
        : `try:\n  s.bind(a); print("bound")\nexcept OSError as e: print(e.strerror)`);
    const out = await new Deno.Command("python3", { args: ["-c", py], stdout: "piped" }).output();
    return new TextDecoder().decode(out.stdout).trim();
  };
  assertEq(await peer("connect"), "accepted", "the VF's memif listens while it is there");
  const r = await runVio4wd(["port", "remove", "--virtio-id", "0", "--zmq-ep", pc, "--stats-ep", d.statsEndpoint]);
  assertEq(r.code, 0, `port remove: ${r.stdout}${r.stderr}\n${d.log.slice(-1500)}`);
  assertEq(await peer("connect"), "refused", "nothing listens on the removed VF's socket");
  assertEq(await peer("bind"), "bound", "its address is free again");
  assert(d.alive, "the daemon runs on");
});

Deno.test("packets the VF refuses for good (3000-byte frames to a net_tap VF of MTU 2100) cost their relay 100 ms each, dropped and counted as queue full, instead of stopping it: the relay keeps taking the VM's packets", async () => {
  await using w = await World.create("refused");
  const d = await w.daemon(["VIRTIOFWD_STATIC_VFS=(net_tap7,iface=v4refused7=0)"]);
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))], appArgs: ["--txpkts=1500,1500"] });
  await until("the relay active", async () => relay0(await d.status())?.active === true);
  await vm.send("set fwd txonly");
  await vm.send("start");
  // every frame is refused: the first burst is held, one packet of it dropped every 100 ms, then the next burst
  const r = await untilRelay0(
    d,
    "the relay takes a second burst from the VM",
    (x) => num(x.vmToVf.pktsRxFromVm) > 32,
    10_000,
  );
  const down = r.vmToVf;
  assert(num(down.pktsDroppedVfQueueFull) >= 30, `refused packets dropped and counted: ${show(r)}`);
  const held = num(down.pktsRxFromVm) - num(down.pktsTxToVf) - num(down.pktsDroppedVfQueueFull);
  assert(held >= 0 && held <= 32, `at most one burst held (${held})`);
  await vm.stop();
});

Deno.test("a daemon killed with SIGKILL leaves its PID file, DPDK run directory and sockets; the next start with the same prefix cleans them up and its clean stop leaves nothing", async () => {
  await using w = await World.create("crash");
  const prefix = w.nextTag("same");
  const lines = ["VIRTIOFWD_STATIC_VFS=net_null0=0"];
  const first = await DaemonProcess.start(w.dir, prefix, lines);
  const left = await first.crash();
  for (const what of [`/var/run/dpdk/${prefix}`, `${w.dir}/virtio-forwarder.pid`, w.vmSocket(0)]) {
    assert(left.includes(what), `a crash leaves ${what}: ${left.join(", ")}`);
  }
  const second = await DaemonProcess.start(w.dir, prefix, lines);
  assert((await second.status()).some((r) => r.vf?.pciAddrStr === "net_null0"), "the restarted daemon has its VF");
  assertEq(Deno.readTextFileSync(`${w.dir}/virtio-forwarder.pid`).trim(), String(second.pid), "its PID file");
  // stop() checks that a clean stop leaves nothing (hugepage files, run directory, PID file, sockets)
  assertEq(await second.stop(), 0, "clean stop");
  assertJsonEq(second.leftovers(), [], "nothing left");
});
