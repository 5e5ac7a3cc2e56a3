/**
 * `deno task bench`: the PVP loop of ../shared/testbed/pvp-testpmd.sh with three relays in one
 * run, alternating, medians over rounds: dpdk-testpmd io-fwd (the physical-limit proxy), vio4wd,
 * and OVS-DPDK. A generator testpmd on CPU 0 loops packets VM -> relay -> VF -> generator ->
 * relay -> VM; the relay forwards on CPU 1. The VM side is vhost-user (generator: virtio_user),
 * the VF stand-in memif (and a vhost-user pair, the only one OVS can drive; see VfKind). Rates
 * are read at the generator, the same way for every relay.
 *
 * Also: vio4wd with as many relays as the generator's own port limit allows, daemon start-up
 * with 64 sockets and a VF on every ethdev port the process may have, its hugepage use and RSS.
 *
 * usage: deno task bench [--quick] [--rounds N] [--seconds S] [--json] [--write]
 *
 * @module
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ZmqContext } from "../ffi/zmq.ts";
import { Requester } from "../src/control/client.ts";
import {
  PortControlRequest_Op,
  PortControlRequestSchema,
  PortControlResponse_Status,
  PortControlResponseSchema,
  StatsRequestSchema,
  StatsResponseSchema,
} from "../src/control/gen/virtioforwarder_pb.ts";
import { DaemonProcess, uniqueTag } from "../src/testbed/daemon_process.ts";
import { OvsDb, OvsDpdk } from "../src/testbed/ovs.ts";
import { TestPmd } from "../src/testbed/testpmd.ts";

/** DPDK 22.11 from Debian: RTE_MAX_ETHPORTS. The generator spends two ports per relay. */
const MAX_ETHPORTS = 32;
const MANY_RELAYS = MAX_ETHPORTS / 2;
const SIZES = [64, 1518] as const;

interface Options {
  /** Only cases whose name contains this (for investigating one case). */
  only: string;
  rounds: number;
  seconds: number;
  warmup: number;
  json: boolean;
  write: boolean;
  quick: boolean;
}

function parseArgs(args: string[]): Options {
  const o: Options = { only: "", rounds: 5, seconds: 3, warmup: 2, json: false, write: false, quick: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const num = () => {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer, got '${args[i]}'`);
      return v;
    };
    if (a === "--quick") Object.assign(o, { quick: true, rounds: 1, seconds: 1, warmup: 1 });
    else if (a === "--rounds") o.rounds = num();
    else if (a === "--seconds") o.seconds = num();
    else if (a === "--only") o.only = args[++i] ?? "";
    else if (a === "--json") o.json = true;
    else if (a === "--write") o.write = true;
    else throw new Error(`unknown option '${a}' (try --quick, --rounds N, --seconds S, --json, --write)`);
  }
  return o;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const progress = (s: string) => console.error(`bench: ${s}`);

/** A relay under test, with the devargs the generator uses for each relay's VM and VF peers. */
interface RunningRelay {
  vmSockets: string[];
  vfPeers: string[];
  stop(): Promise<void>;
}

type RelayKind = "testpmd" | "vio4wd" | "ovs";

/**
 * The VF stand-in: memif (the usual one), or a vhost-user pair (net_vhost in the relay,
 * virtio_user in the generator). OVS needs the latter: its PMD thread transmits on a second
 * queue that a single-queue memif peer never reads (OVS gives every dpdk port one TX queue per
 * thread; net_vhost,queues=1 caps that at one).
 */
type VfKind = "memif" | "vhost";

/** memif on a file-system socket (DPDK 22.11's abstract default is per network namespace). */
function vfDevargs(kind: VfKind, i: number, socket: string): { relay: string; peer: (port: number) => string } {
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

async function startRelay(c: Case, dir: string, tag: string): Promise<RunningRelay> {
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

/** Loops `size`-byte packets through the relay; returns the median-free rate of one window. */
async function measure(
  relay: RunningRelay,
  size: number,
  o: Options,
  tag: string,
): Promise<{ mppsPerDir: number; vfToVm: number; vmToVf: number }> {
  const n = relay.vmSockets.length;
  const gen = await TestPmd.start({
    prefix: `${tag}-g`,
    cores: "0,1",
    mainLcore: 1,
    memoryMb: 512,
    mbufs: 2048 * 2 * n + 4096,
    packetLength: size,
    vdevs: relay.vmSockets.flatMap((vm, i) => [
      `net_virtio_user${2 * i},path=${vm},queues=1`,
      relay.vfPeers[i],
    ]),
  });
  try {
    await gen.waitLinksUp(30_000);
    await gen.send("set fwd io");
    // Rx packets per direction: the generator's VM ports (even) receive what the relay sent
    // VF->VM, its VF ports (odd) what it sent VM->VF.
    const perDir = (a: number[], b: number[], odd: number) =>
      b.reduce((s, v, i) => i % 2 === odd ? s + v - (a[i] ?? 0) : s, 0);
    // A relay may still be setting up the port it just saw connect and drop the seed burst: then
    // one direction stays empty, and the loop is seeded again.
    let a: number[] = [];
    for (let attempt = 1;; attempt++) {
      const before = await gen.rxPackets();
      await gen.send("start tx_first 4");
      await sleep(o.warmup * 1000);
      a = await gen.rxPackets();
      if (perDir(before, a, 0) > 0 && perDir(before, a, 1) > 0) break;
      if (attempt === 3) throw new Error(`no loop after 3 seeds; generator:\n${gen.output.slice(-1500)}`);
      await gen.stop();
    }
    const t0 = performance.now();
    await sleep(o.seconds * 1000);
    const b = await gen.rxPackets();
    const secs = (performance.now() - t0) / 1000;
    const vfToVm = perDir(a, b, 0) / secs / 1e6;
    const vmToVf = perDir(a, b, 1) / secs / 1e6;
    return { mppsPerDir: (vfToVm + vmToVf) / 2, vfToVm, vmToVf };
  } finally {
    await gen.close();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

/**
 * Control-plane and memory figures of a daemon with 64 sockets and a VF on every ethdev port
 * but one: start-up time, hugepages, RSS, stats latency for 64 relays, and port add -> first
 * packet forwarded (a net_null VF, which receives from the moment it starts, onto a relay whose
 * VM is connected).
 */
async function daemonFigures(tag: string, o: Options): Promise<Record<string, number>> {
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

/** A relay to measure; `idleUs`: vio4wd with idle mode (VIO4WD_IDLE_SLEEP_US). */
/**
 * CPU use of the worker serving one relay whose VM and VF peer are connected but send nothing:
 * percent of one CPU over 2 s, from the worker thread's scheduler ticks.
 */
async function idleWorkerCpu(tag: string, idleUs: number): Promise<number> {
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

type Case = { kind: RelayKind; relays: number; vf: VfKind; idleUs?: number };
const caseName = (c: Case) =>
  (c.relays === 1 ? c.kind : `${c.kind}_${c.relays}_relays`) + (c.vf === "memif" ? "" : "_vhost_vf") +
  (c.idleUs ? "_idle" : "");
/** Idle mode's sleep in the bench: the figure the manual suggests. */
const IDLE_US = 500;

async function main(): Promise<number> {
  const o = parseArgs(Deno.args);
  const tag = uniqueTag("bench");
  const cases: Case[] = [
    { kind: "testpmd", relays: 1, vf: "memif" },
    { kind: "vio4wd", relays: 1, vf: "memif" },
    { kind: "vio4wd", relays: 1, vf: "memif", idleUs: IDLE_US },
    { kind: "vio4wd", relays: MANY_RELAYS, vf: "memif" },
    { kind: "testpmd", relays: MANY_RELAYS, vf: "memif" },
    { kind: "testpmd", relays: 1, vf: "vhost" },
    { kind: "vio4wd", relays: 1, vf: "vhost" },
    { kind: "ovs", relays: 1, vf: "vhost" },
  ];
  const samples = new Map<string, number[]>();
  /** One sample: a fresh relay (testpmd's relay does not survive its generator going away). */
  const sample = async (c: Case, size: number, round: number) => {
    const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
    let relay: RunningRelay | null = null;
    try {
      relay = await startRelay(c, dir, tag);
      const r = await measure(relay, size, o, tag);
      const key = `${caseName(c)}_${size}`;
      samples.set(key, [...(samples.get(key) ?? []), r.mppsPerDir]);
      progress(
        `round ${round}/${o.rounds} ${caseName(c)} ${size} B: ${r.mppsPerDir.toFixed(3)} Mpps per direction ` +
          `(VF->VM ${r.vfToVm.toFixed(3)}, VM->VF ${r.vmToVf.toFixed(3)})`,
      );
    } finally {
      await relay?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
  const selected = cases.filter((c) => caseName(c).includes(o.only));
  for (let round = 1; round <= o.rounds; round++) {
    for (const c of selected) for (const size of SIZES) await sample(c, size, round);
  }
  if (o.only) return 0; // a partial run: the figures below need every case
  progress("control plane and memory: 64 sockets, 31 VFs, stats latency, port add -> first packet");
  const daemon = await daemonFigures(tag, o);
  progress(`idle worker CPU: polling, and idle mode (${IDLE_US} us)`);
  const idle = {
    idle_worker_cpu_polling_pct: await idleWorkerCpu(tag, 0),
    idle_worker_cpu_idle_mode_pct: await idleWorkerCpu(tag, IDLE_US),
  };

  const med = (key: string) => median(samples.get(key)!);
  const ratio = (a: string, b: string) => Math.round(med(a) / med(b) * 1000) / 1000;
  const result: Record<string, unknown> = {
    ratio_vio4wd_testpmd_64: ratio("vio4wd_64", "testpmd_64"),
    ratio_vio4wd_testpmd_1518: ratio("vio4wd_1518", "testpmd_1518"),
    ratio_vio4wd_ovs_64: ratio("vio4wd_vhost_vf_64", "ovs_vhost_vf_64"),
    ratio_vio4wd_ovs_1518: ratio("vio4wd_vhost_vf_1518", "ovs_vhost_vf_1518"),
    ratio_vio4wd_testpmd_vhost_vf_64: ratio("vio4wd_vhost_vf_64", "testpmd_vhost_vf_64"),
    ratio_vio4wd_testpmd_vhost_vf_1518: ratio("vio4wd_vhost_vf_1518", "testpmd_vhost_vf_1518"),
    ratio_64_relays_vs_1: ratio(`vio4wd_${MANY_RELAYS}_relays_64`, "vio4wd_64"),
    ratio_many_relays_vs_1_1518: ratio(`vio4wd_${MANY_RELAYS}_relays_1518`, "vio4wd_1518"),
    ratio_idle_mode_vs_polling_64: ratio("vio4wd_idle_64", "vio4wd_64"),
    ratio_idle_mode_vs_polling_1518: ratio("vio4wd_idle_1518", "vio4wd_1518"),
    many_relays: MANY_RELAYS,
    rounds: o.rounds,
    seconds_per_sample: o.seconds,
    ...Object.fromEntries([...samples].map(([k, v]) => [`${k}_mpps`, Math.round(median(v) * 1000) / 1000])),
    ...daemon,
    ...idle,
    date: new Date().toISOString(),
    host: { cpus: navigator.hardwareConcurrency, kernel: Deno.osRelease() },
  };
  const md = markdown(result, cases);
  if (o.json) console.log(JSON.stringify(result, null, 2));
  else console.log(md);
  if (o.write) await writeResults(md, result);
  return 0;
}

function markdown(r: Record<string, unknown>, cases: Case[]): string {
  const f = (k: string) => (r[k] as number).toFixed(3);
  const rows = cases.map((c) =>
    `| ${c.kind}${c.idleUs ? ` (idle mode ${c.idleUs} us)` : ""} | ${c.relays} | ${c.vf} | ${
      f(`${caseName(c)}_64_mpps`)
    } | ${f(`${caseName(c)}_1518_mpps`)} |`
  );
  return [
    `PVP loop, Mpps per direction (medians of ${r.rounds} rounds, ${r.seconds_per_sample} s each; ` +
    `generator on CPU 0, relay on CPU 1; memif VF, vhost-user VM)`,
    "",
    "| relay | relays | VF stand-in | 64 B | 1518 B |",
    "|---|---:|---|---:|---:|",
    ...rows,
    "",
    "| ratio | 64 B | 1518 B |",
    "|---|---:|---:|",
    `| vio4wd / testpmd | ${r.ratio_vio4wd_testpmd_64} | ${r.ratio_vio4wd_testpmd_1518} |`,
    `| vio4wd / testpmd (vhost VF) | ${r.ratio_vio4wd_testpmd_vhost_vf_64} | ${r.ratio_vio4wd_testpmd_vhost_vf_1518} |`,
    `| vio4wd / OVS-DPDK (vhost VF) | ${r.ratio_vio4wd_ovs_64} | ${r.ratio_vio4wd_ovs_1518} |`,
    `| vio4wd ${r.many_relays} relays / 1 relay | ${r.ratio_64_relays_vs_1} | ${r.ratio_many_relays_vs_1_1518} |`,
    `| vio4wd idle mode / polling | ${r.ratio_idle_mode_vs_polling_64} | ${r.ratio_idle_mode_vs_polling_1518} |`,
    "",
    `Daemon with 64 sockets and 31 VFs: ready in ${r.daemon_start_64_sockets_31_vfs_ms} ms, ` +
    `${r.hugepages_64_sockets_31_vfs_mib} MiB of hugepages, RSS ${r.daemon_rss_mib} MiB; ` +
    `stats for 64 relays ${r.stats_64_relays_median_ms} ms median (p99 ${r.stats_64_relays_p99_ms} ms); ` +
    `port add -> first packet forwarded ${r.port_add_to_first_packet_ms} ms (median of 5). ` +
    `A worker with a connected relay and no traffic: ${r.idle_worker_cpu_polling_pct}% of a CPU polling, ` +
    `${r.idle_worker_cpu_idle_mode_pct}% in idle mode (${IDLE_US} us).`,
  ].join("\n");
}

async function writeResults(md: string, result: Record<string, unknown>): Promise<void> {
  const root = new URL("..", import.meta.url).pathname;
  const day = (result.date as string).slice(0, 10);
  await Deno.mkdir(`${root}bench/results`, { recursive: true });
  await Deno.writeTextFile(`${root}bench/results/${day}.md`, `# Benchmark ${day}\n\n${md}\n`);
  await Deno.writeTextFile(`${root}bench/results/${day}.json`, JSON.stringify(result, null, 2) + "\n");
  const readme = await Deno.readTextFile(`${root}README.md`);
  const start = "<!-- bench:start -->", end = "<!-- bench:end -->";
  const i = readme.indexOf(start), j = readme.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README.md has no ${start} ... ${end} block to update`);
  const block = `${start}\nLatest (bench/results/${day}.md):\n\n${md}\n${end}`;
  await Deno.writeTextFile(`${root}README.md`, readme.slice(0, i) + block + readme.slice(j + end.length));
  // The project's formatter owns markdown and JSON layout: leave the files as `dprint check` wants them.
  await new Deno.Command(`${root}node_modules/.bin/dprint`, {
    args: ["fmt", `${root}README.md`, `${root}bench/results/${day}.md`, `${root}bench/results/${day}.json`],
    cwd: root,
    stdout: "null",
  }).output();
  progress(`wrote bench/results/${day}.md, .json and the README block`);
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
