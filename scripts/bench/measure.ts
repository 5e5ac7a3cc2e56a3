/**
 * What the bench measures: the PVP loop through one relay (rates read at the generator), the
 * daemon's control-plane and memory figures, and an idle worker's CPU use.
 *
 * @module
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ZmqContext } from "../../ffi/zmq.ts";
import { Requester } from "../../src/control/client.ts";
import {
  PortControlRequest_Op,
  PortControlRequestSchema,
  PortControlResponse_Status,
  PortControlResponseSchema,
  StatsRequestSchema,
  StatsResponseSchema,
} from "../../src/control/gen/virtioforwarder_pb.ts";
import { DaemonProcess } from "../../tests/rigs/daemon_process.ts";
import { coreCycles, rxPackets, TestPmd } from "../../tests/rigs/testpmd.ts";
import { MAX_ETHPORTS } from "./cases.ts";
import { type RunningRelay, vfDevargs } from "./relays.ts";
import { median, percentile } from "./report.ts";
import { hasSteps, stepCyclesPerPkt } from "../../src/dataplane/worker_load.ts";

/** How long and how often to measure. */
export interface Timing {
  rounds: number;
  seconds: number;
  warmup: number;
  quick: boolean;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One window's figures; `discarded` says why the window does not count (null: it does). */
export interface Window {
  mppsPerDir: number;
  vfToVm: number;
  vmToVf: number;
  /** The relay core's busy cycles per packet received, by the relay's own accounting. */
  cyclesPerPkt: number;
  /**
   * The generator's busy cycles per packet in the same window: the same work whichever relay it
   * drives, so it moves with the machine only (on these VMs it swings with the relay's, 2-4x
   * within a minute); the yardstick the relay's figure is read against.
   */
  generatorCyclesPerPkt: number;
  /** vio4wd on a STEPS=1 shim: those cycles per packet by step, and what the steps leave (`loop`). */
  steps: Record<string, number> | null;
  discarded: string | null;
}

/** Relays per generator: it spends two ethdev ports per relay. */
const RELAYS_PER_GENERATOR = MAX_ETHPORTS / 2;
/** CPU the relays forward on. */
export const RELAY_CPU = 1;
/** A window whose relay CPU lost more than this share of its time to the hypervisor is discarded. */
const MAX_STEAL = 0.02;

/** Steal and total jiffies of `cpu` (/proc/stat). */
function cpuTimes(cpu: number): { steal: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n").find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) throw new Error(`/proc/stat has no cpu${cpu}`);
  const f = line.split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
  return { steal: f[7], total: f.reduce((a, b) => a + b, 0) };
}

/**
 * Loops `size`-byte packets through the relay (one generator per 16 relays, all on CPU 0) and
 * measures one window: rates at the generators, cycles per packet from the relay's accounting.
 * The window is discarded when the loop died in a direction, the relay dropped packets, or the
 * relay's CPU had steal time.
 */
export async function measure(relay: RunningRelay, size: number, o: Timing, tag: string): Promise<Window> {
  const n = relay.vmSockets.length;
  const gens: TestPmd[] = [];
  try {
    for (let g = 0; g * RELAYS_PER_GENERATOR < n; g++) {
      const ids = Array.from(
        { length: Math.min(RELAYS_PER_GENERATOR, n - g * RELAYS_PER_GENERATOR) },
        (_, i) => g * RELAYS_PER_GENERATOR + i,
      );
      gens.push(
        await TestPmd.start({
          prefix: `${tag}-g${g}`,
          cores: "0,1",
          mainLcore: 1,
          memoryMb: 512,
          mbufs: 2048 * 2 * ids.length + 4096,
          packetLength: size,
          appArgs: ["--record-core-cycles"],
          vdevs: ids.flatMap((id, i) => [
            `net_virtio_user${2 * i},path=${relay.vmSockets[id]},queues=1`,
            relay.vfPeers[id].replace(/^(net_\w+?)(\d+)/, (_m, drv) => `${drv}${2 * i + 1}`),
          ]),
        }),
      );
    }
    for (const gen of gens) {
      await gen.waitLinksUp(30_000);
      await gen.send("set fwd io");
    }
    // Rx packets per direction: the generators' VM ports (even) receive what the relay sent
    // VF->VM, their VF ports (odd) what it sent VM->VF.
    const rx = async () => (await Promise.all(gens.map((g) => rxPackets(g))));
    const perDir = (a: number[][], b: number[][], odd: number) =>
      b.reduce((s, ports, g) => s + ports.reduce((t, v, i) => i % 2 === odd ? t + v - (a[g][i] ?? 0) : t, 0), 0);
    // A relay may still be setting up the port it just saw connect and drop the seed burst: then
    // one direction stays empty, and the loop is seeded again.
    let a: number[][] = [];
    for (let attempt = 1;; attempt++) {
      const before = await rx();
      for (const gen of gens) await gen.send("start tx_first 4");
      await sleep(o.warmup * 1000);
      a = await rx();
      if (perDir(before, a, 0) > 0 && perDir(before, a, 1) > 0) break;
      if (attempt === 3) throw new Error(`no loop after 3 seeds; generator:\n${gens[0].output.slice(-1500)}`);
      for (const gen of gens) await gen.stop();
    }
    const genCycles = async () => {
      const all = await Promise.all(gens.map((g) => coreCycles(g)));
      return { cycles: all.reduce((s, c) => s + c.cycles, 0), pkts: all.reduce((s, c) => s + c.pkts, 0) };
    };
    const [c0, s0, g0] = [await relay.read(), cpuTimes(RELAY_CPU), await genCycles()];
    const t0 = performance.now();
    await sleep(o.seconds * 1000);
    const b = await rx();
    const [c1, s1, g1] = [await relay.read(), cpuTimes(RELAY_CPU), await genCycles()];
    const secs = (performance.now() - t0) / 1000;
    const vfToVm = perDir(a, b, 0) / secs / 1e6;
    const vmToVf = perDir(a, b, 1) / secs / 1e6;
    const pkts = c1.pkts - c0.pkts;
    const steal = (s1.steal - s0.steal) / Math.max(1, s1.total - s0.total);
    const discarded = vfToVm === 0 || vmToVf === 0
      ? "the loop died in one direction"
      : pkts <= 0
      ? "the relay counted no packets"
      : c0.drops !== null && c1.drops !== null && c1.drops > c0.drops
      ? `the relay dropped ${c1.drops - c0.drops} packets`
      : steal > MAX_STEAL
      ? `CPU ${RELAY_CPU} had ${(steal * 100).toFixed(1)}% steal time`
      : null;
    return {
      mppsPerDir: (vfToVm + vmToVf) / 2,
      vfToVm,
      vmToVf,
      cyclesPerPkt: pkts > 0 ? (c1.cycles - c0.cycles) / pkts : 0,
      generatorCyclesPerPkt: g1.pkts > g0.pkts ? (g1.cycles - g0.cycles) / (g1.pkts - g0.pkts) : 0,
      steps: c1.workers && hasSteps(c1.workers.steps) ? stepCyclesPerPkt(c1.workers, c0.workers) : null,
      discarded,
    };
  } finally {
    for (const gen of gens) await gen.close();
  }
}

/**
 * Control-plane and memory figures of a daemon with 64 sockets and a VF on every ethdev port
 * but one: start-up time, hugepages, RSS, stats latency for 64 relays, and port add -> first
 * packet forwarded (a net_null VF, which receives from the moment it starts, onto a relay whose
 * VM is connected).
 */
export async function daemonFigures(tag: string, o: Timing): Promise<Record<string, number>> {
  const dir = await Deno.makeTempDir({ prefix: `${tag}-mem-` });
  const vfs = MAX_ETHPORTS - 1;
  const ctx = new ZmqContext();
  let vm: TestPmd | null = null;
  try {
    const t0 = performance.now();
    const d = await DaemonProcess.start(dir, `${tag}-m`, [
      "VIO4WD_EAL_MEMORY_MB=512",
      "VIRTIOFWD_LOG_LEVEL=5",
      `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${dir}/port_control`,
      `VIRTIOFWD_ZMQ_STATS_EP=ipc://${dir}/stats`,
      "VIRTIOFWD_STATIC_VFS=(",
      ...Array.from({ length: vfs }, (_, i) => `  ${vfDevargs("memif", i, `${dir}/vf${i}.sock`).relay}=${i}`),
      ")",
    ]);
    const readyMs = performance.now() - t0;
    try {
      const m = d.log.match(/ready: (\d+) vhost-user socket\(s\).*?, (\d+) VF\(s\), ([\d.]+) MiB of hugepages/);
      if (!m || m[1] !== "64" || m[2] !== String(vfs)) {
        throw new Error(`expected 64 sockets and ${vfs} VFs; daemon log:\n${d.log.slice(-2000)}`);
      }
      const rssKb = d.rssKiB();

      const statsEp = new Requester(ctx, `ipc://${dir}/stats`, 5000);
      const stats = (req: Uint8Array) => statsEp.reply(req);
      const all = toBinary(StatsRequestSchema, create(StatsRequestSchema, {}));
      const lat: number[] = [];
      for (let i = 0; i < (o.quick ? 100 : 1000); i++) {
        const t = performance.now();
        const res = fromBinary(StatsResponseSchema, await stats(all));
        lat.push(performance.now() - t);
        if (res.relay.length !== 64) throw new Error(`stats: ${res.relay.length} relays, expected 64`);
      }

      vm = await TestPmd.start({
        prefix: `${tag}-mvm`,
        vdevs: [`net_virtio_user0,path=${dir}/sock/virtio-forwarder63.sock,queues=1`],
      });
      await vm.send("set fwd rxonly");
      await vm.send("start");
      const controlEp = new Requester(ctx, `ipc://${dir}/port_control`, 5000);
      const control = (req: Uint8Array) => controlEp.reply(req);
      const relay63 = toBinary(StatsRequestSchema, create(StatsRequestSchema, { relay: [63] }));
      const firstPacket: number[] = [];
      for (let i = 0; i < 5; i++) {
        const op = (o: PortControlRequest_Op) =>
          toBinary(
            PortControlRequestSchema,
            create(PortControlRequestSchema, { op: o, virtioId: 63, devargs: [`net_null${i}`] }),
          );
        const before = fromBinary(StatsResponseSchema, await stats(relay63)).relay[0].vfToVm!.pktsTxToVm;
        const t = performance.now();
        const added = fromBinary(PortControlResponseSchema, await control(op(PortControlRequest_Op.ADD)));
        if (added.status !== PortControlResponse_Status.OK) throw new Error(`port add net_null${i} failed`);
        while (fromBinary(StatsResponseSchema, await stats(relay63)).relay[0].vfToVm!.pktsTxToVm === before) {
          if (performance.now() - t > 5000) throw new Error("no packet forwarded 5 s after port add");
        }
        firstPacket.push(performance.now() - t);
        await control(op(PortControlRequest_Op.REMOVE));
      }
      const r2 = (x: number) => Math.round(x * 100) / 100;
      return {
        daemon_start_64_sockets_31_vfs_ms: Math.round(readyMs),
        hugepages_64_sockets_31_vfs_mib: Number(m[3]),
        daemon_rss_mib: Math.round(rssKb / 102.4) / 10,
        stats_64_relays_median_ms: r2(median(lat)),
        stats_64_relays_p99_ms: r2(percentile(lat, 0.99)),
        port_add_to_first_packet_ms: r2(median(firstPacket)),
      };
    } finally {
      await vm?.close();
      await d.stop();
    }
  } finally {
    ctx.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * CPU use of the worker serving one relay whose VM and VF peer are connected but send nothing:
 * percent of one CPU over 2 s, from the worker thread's scheduler ticks.
 */
export async function idleWorkerCpu(tag: string, idleUs: number): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: `${tag}-idle-` });
  const vf = vfDevargs("memif", 0, `${dir}/vf0.sock`);
  const d = await DaemonProcess.start(dir, `${tag}-i`, [
    "VIRTIOFWD_LOG_LEVEL=5",
    `VIO4WD_IDLE_SLEEP_US=${idleUs}`,
    `VIRTIOFWD_STATIC_VFS=${vf.relay}=0`,
  ]);
  let peers: TestPmd | null = null;
  try {
    peers = await TestPmd.start({
      prefix: `${tag}-ip`,
      vdevs: [`net_virtio_user0,path=${dir}/sock/virtio-forwarder0.sock,queues=1`, vf.peer(1)],
    });
    await peers.waitLinksUp(30_000);
    const worker = [...Deno.readDirSync(`/proc/${d.pid}/task`)].map((t) => t.name).find((tid) =>
      Deno.readTextFileSync(`/proc/${d.pid}/task/${tid}/comm`).startsWith("rte-worker")
    );
    if (!worker) throw new Error("no rte-worker thread in the daemon");
    const ticks = () => {
      const f = Deno.readTextFileSync(`/proc/${d.pid}/task/${worker}/stat`).split(") ")[1].split(" ");
      return Number(f[11]) + Number(f[12]); // utime + stime
    };
    await sleep(1000); // past the idle threshold
    const a = ticks(), t0 = performance.now();
    await sleep(2000);
    const hz = 100; // USER_HZ on Linux
    return Math.round((ticks() - a) / hz / ((performance.now() - t0) / 1000) * 1000) / 10;
  } finally {
    await d.stop(); // before its memif peer leaves
    await peers?.close();
    await Deno.remove(dir, { recursive: true });
  }
}
