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

import { DaemonProcess, uniqueTag } from "../src/testbed/daemon_process.ts";
import { OvsDb, OvsDpdk } from "../src/testbed/ovs.ts";
import { TestPmd } from "../src/testbed/testpmd.ts";

/** DPDK 22.11 from Debian: RTE_MAX_ETHPORTS. The generator spends two ports per relay. */
const MAX_ETHPORTS = 32;
const MANY_RELAYS = MAX_ETHPORTS / 2;
const SIZES = [64, 1518] as const;

interface Options {
  rounds: number;
  seconds: number;
  warmup: number;
  json: boolean;
  write: boolean;
  quick: boolean;
}

function parseArgs(args: string[]): Options {
  const o: Options = { rounds: 5, seconds: 3, warmup: 2, json: false, write: false, quick: false };
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
    const pmd = await TestPmd.start({
      prefix: `${tag}-r`,
      cores: "0,1",
      mainLcore: 0,
      memoryMb: 512,
      mbufs: 16384,
      vdevs: [`net_vhost0,iface=${dir}/vm0.sock,queues=1`, vfs[0].relay],
    });
    await pmd.send("set fwd io");
    await pmd.send("start");
    return { vmSockets: [`${dir}/vm0.sock`], vfPeers, stop: () => pmd.close() };
  }
  if (c.kind === "vio4wd") {
    const d = await DaemonProcess.start(dir, `${tag}-r`, [
      "VIO4WD_EAL_MEMORY_MB=512",
      "VIRTIOFWD_LOG_LEVEL=5",
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

/** Start-up and memory figures of a daemon with 64 sockets and a VF on every ethdev port. */
async function daemonFigures(tag: string): Promise<Record<string, number>> {
  const dir = await Deno.makeTempDir({ prefix: `${tag}-mem-` });
  try {
    const t0 = performance.now();
    const d = await DaemonProcess.start(dir, `${tag}-m`, [
      "VIO4WD_EAL_MEMORY_MB=512",
      "VIRTIOFWD_LOG_LEVEL=5",
      "VIRTIOFWD_STATIC_VFS=(",
      ...Array.from({ length: MAX_ETHPORTS }, (_, i) => `  ${vfDevargs("memif", i, `${dir}/vf${i}.sock`).relay}=${i}`),
      ")",
    ]);
    const readyMs = performance.now() - t0;
    try {
      const m = d.log.match(/ready: (\d+) vhost-user socket\(s\).*?, (\d+) VF\(s\), ([\d.]+) MiB of hugepages/);
      if (!m || m[1] !== "64" || m[2] !== String(MAX_ETHPORTS)) {
        throw new Error(`expected 64 sockets and ${MAX_ETHPORTS} VFs; daemon log:\n${d.log.slice(-2000)}`);
      }
      const status = await Deno.readTextFile(`/proc/${d.pid}/status`);
      const rssKb = Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
      return {
        daemon_start_64_sockets_32_vfs_ms: Math.round(readyMs),
        hugepages_64_sockets_32_vfs_mib: Number(m[3]),
        daemon_rss_mib: Math.round(rssKb / 102.4) / 10,
      };
    } finally {
      await d.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

type Case = { kind: RelayKind; relays: number; vf: VfKind };
const caseName = (c: Case) =>
  (c.relays === 1 ? c.kind : `${c.kind}_${c.relays}_relays`) + (c.vf === "memif" ? "" : "_vhost_vf");

async function main(): Promise<number> {
  const o = parseArgs(Deno.args);
  const tag = uniqueTag("bench");
  const cases: Case[] = [
    { kind: "testpmd", relays: 1, vf: "memif" },
    { kind: "vio4wd", relays: 1, vf: "memif" },
    { kind: "vio4wd", relays: MANY_RELAYS, vf: "memif" },
    { kind: "testpmd", relays: 1, vf: "vhost" },
    { kind: "vio4wd", relays: 1, vf: "vhost" },
    { kind: "ovs", relays: 1, vf: "vhost" },
  ];
  const samples = new Map<string, number[]>();
  for (let round = 1; round <= o.rounds; round++) {
    for (const c of cases) {
      for (const size of SIZES) {
        // A fresh relay per sample: testpmd's relay does not survive its generator going away.
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
      }
    }
  }
  progress("daemon start-up, hugepages and RSS with 64 sockets and 32 VFs");
  const daemon = await daemonFigures(tag);

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
    many_relays: MANY_RELAYS,
    rounds: o.rounds,
    seconds_per_sample: o.seconds,
    ...Object.fromEntries([...samples].map(([k, v]) => [`${k}_mpps`, Math.round(median(v) * 1000) / 1000])),
    ...daemon,
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
    `| ${c.kind} | ${c.relays} | ${c.vf} | ${f(`${caseName(c)}_64_mpps`)} | ${f(`${caseName(c)}_1518_mpps`)} |`
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
    "",
    `Daemon with 64 sockets and 32 VFs (every ethdev port): ready in ${r.daemon_start_64_sockets_32_vfs_ms} ms, ` +
    `${r.hugepages_64_sockets_32_vfs_mib} MiB of hugepages, RSS ${r.daemon_rss_mib} MiB.`,
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
