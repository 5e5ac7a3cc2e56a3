/**
 * The core scheduler and the monitor against a running daemon with two worker lcores (mapped
 * onto one CPU with VIO4WD_EAL_LCORES, so this runs on a 2-CPU machine) and uneven load.
 */

import { TestPmd } from "../src/testbed/testpmd.ts";
import { type RelayStatus, runVio4wd, uniqueTag, until, withDaemon } from "./helpers.ts";
import { assertEq } from "../src/testbed/assert.ts";

/** Three relays with net_null VFs (endless VF->VM traffic), all pinned to worker lcore 1. */
const unevenDaemon = (dir: string) => [
  "VIO4WD_EAL_LCORES=0@0,1@1,2@1",
  "VIRTIOFWD_CPU_MASK=1,2",
  `VIRTIOFWD_ZMQ_STATS_EP=ipc://${dir}/zmq/stats`,
  `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${dir}/zmq/core_sched`,
  "VIO4WD_CORE_SCHED_ENABLE=true",
  "VIRTIOFWD_CPU_PINS=(0:1 1:1 2:1)",
  "VIRTIOFWD_STATIC_VFS=(net_null0=0 net_null1=1 net_null2=2)",
];

const vms = (dir: string, tag: string) =>
  TestPmd.start({
    prefix: `${tag}-vm`,
    vdevs: [0, 1, 2].map((i) => `net_virtio_user${i},path=${dir}/sock/virtio-forwarder${i}.sock,queues=1`),
  });

const cpusOf = (s: RelayStatus[]) => s.filter((r) => r.vm).map((r) => `${r.id}:${r.cpus.vf_to_vm}`).join(" ");

Deno.test("sched: uneven load on two worker CPUs converges to a balanced map and then stays put", async () => {
  await withDaemon("sched", unevenDaemon, async (d, dir, tag) => {
    const pmd = await vms(dir, tag);
    try {
      await pmd.send("set fwd rxonly");
      await pmd.send("start");
      await until("3 VMs", async () => (await d.status()).filter((r) => r.vm).length === 3, 10_000);
      assertEq(cpusOf(await d.status()), "0:1 1:1 2:1", "all on lcore 1 before");
      const dry = await runVio4wd([
        "sched",
        "--stats-ep",
        `ipc://${dir}/zmq/stats`,
        "--sched-ep",
        `ipc://${dir}/zmq/core_sched`,
        "--dry-run",
        "--global-numa-opt",
      ]);
      if (!/NUMA global \(workers 1,2\).*plan CV/.test(dry.stdout)) {
        throw new Error(`dry run: ${dry.stdout}${dry.stderr}`);
      }
      assertEq(cpusOf(await d.status()), "0:1 1:1 2:1", "a dry run changes nothing");
      const r = await runVio4wd([
        "sched",
        "--stats-ep",
        `ipc://${dir}/zmq/stats`,
        "--sched-ep",
        `ipc://${dir}/zmq/core_sched`,
        "--poll-interval",
        "0.5",
        "--polls",
        "5",
        "--global-numa-opt",
        "--loglevel",
        "6",
      ]);
      assertEq(r.code, 0, `sched exit status: ${r.stderr}`);
      const moves = r.stderr.split("\n").filter((l) => l.includes("Migrating workers")).length;
      assertEq(moves, 1, `migrations (then balanced):\n${r.stderr}`);
      if (!r.stderr.includes("Scheduler response: OK")) throw new Error(r.stderr);
      const after = (await d.status()).filter((x) => x.vm).map((x) => x.cpus.vf_to_vm);
      if (!after.includes(1) || !after.includes(2)) {
        throw new Error(`not spread over lcores 1 and 2: ${cpusOf(await d.status())}`);
      }
    } finally {
      await pmd.close();
    }
  });
});

Deno.test("monitor under tmux: bars per worker CPU, relays listed, q quits; --once --json for scripts", async () => {
  await withDaemon("mon", unevenDaemon, async (d, dir, tag) => {
    const pmd = await vms(dir, tag);
    const session = tag.replace(/[^a-zA-Z0-9-]/g, "");
    // A private tmux server (-L) in its own session (setsid): nothing shared with the test process.
    const tmux = (...args: string[]) =>
      new Deno.Command("setsid", {
        args: ["tmux", "-L", session, ...args],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      })
        .output();
    try {
      await pmd.send("set fwd rxonly");
      await pmd.send("start");
      await until("3 VMs", async () => (await d.status()).filter((r) => r.vm).length === 3, 10_000);
      const json = await runVio4wd([
        "monitor",
        "--stats-ep",
        `ipc://${dir}/zmq/stats`,
        "--sched-ep",
        `ipc://${dir}/zmq/core_sched`,
        "--once",
        "--json",
      ]);
      const snap = JSON.parse(json.stdout);
      assertEq(snap.cpus.map((c: { cpu: number }) => c.cpu).join(","), "1,2", "worker CPUs");
      assertEq(snap.relays.length, 3, "active relays");
      if (!(snap.cpus[0].load > 0)) throw new Error(`no load on CPU 1: ${json.stdout}`);

      const launcher = new URL("../vio4wd", import.meta.url).pathname;
      const cmd = `${launcher} monitor --stats-ep ipc://${dir}/zmq/stats --sched-ep ipc://${dir}/zmq/core_sched`;
      const started = await tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "30", cmd);
      if (!started.success) throw new Error(`tmux: ${new TextDecoder().decode(started.stderr)}`);
      let screen = "";
      await until("bars on screen", async () => {
        screen = new TextDecoder().decode((await tmux("capture-pane", "-p", "-t", session)).stdout);
        return /CPU1: #+/.test(screen) && /CPU2: /.test(screen) && /relays 0,1,2/.test(screen);
      }, 15_000).catch(() => {
        throw new Error(`screen:\n${screen}`);
      });
      await tmux("send-keys", "-t", session, "q");
      await until("monitor quits on q", async () => !(await tmux("has-session", "-t", session)).success, 5000);
    } finally {
      await tmux("kill-session", "-t", session);
      await pmd.close();
    }
  });
});

Deno.test("sched and monitor wait for a daemon that is not there yet, say so once, and carry on when it comes", async () => {
  const tag = uniqueTag("away");
  const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
  const launcher = new URL("../vio4wd", import.meta.url).pathname;
  const eps = ["--stats-ep", `ipc://${dir}/zmq/stats`, "--sched-ep", `ipc://${dir}/zmq/core_sched`];
  const spawn = (args: string[]) =>
    new Deno.Command(launcher, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  const sched = spawn(["sched", ...eps, "--poll-interval", "0.5", "--loglevel", "6"]);
  const monitor = spawn(["monitor", ...eps, "--poll-interval", "0.5"]);
  const text = { sched: "", monitor: "" };
  const dec = new TextDecoder();
  const pump = (s: ReadableStream<Uint8Array>, k: keyof typeof text) =>
    (async () => {
      for await (const c of s) text[k] += dec.decode(c, { stream: true });
    })();
  const pumps = [
    pump(sched.stderr, "sched"),
    pump(sched.stdout, "sched"),
    pump(monitor.stdout, "monitor"),
    pump(monitor.stderr, "monitor"),
  ];
  try {
    await until("sched reports the daemon missing", () => text.sched.includes("No response from stats server"), 10_000);
    await until("monitor reports the daemon missing", () => text.monitor.includes("no answer from"), 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    assertEq(text.sched.split("No response from stats server").length - 1, 1, "outage reported once");
    await withDaemon("away-d", () => unevenDaemon(dir), async () => {
      await until("sched reconnects", () => text.sched.includes("Reconnected to stats server"), 15_000);
      await until("monitor shows CPU loads", () => text.monitor.includes("CPU loads"), 15_000);
    }).catch((e) => {
      throw new Error(`${e.message}\nsched:\n${text.sched.slice(-1500)}\nmonitor:\n${text.monitor.slice(-800)}`);
    });
  } finally {
    for (const p of [sched, monitor]) {
      try {
        p.kill("SIGTERM");
      } catch { /* exited */ }
    }
    await Promise.all(pumps);
    await Deno.remove(dir, { recursive: true });
  }
  const codes = { sched: (await sched.status).code, monitor: (await monitor.status).code };
  for (const k of ["sched", "monitor"] as const) {
    if (codes[k] !== 0 || /Uncaught| {4}at /.test(text[k])) {
      throw new Error(`${k} exit ${codes[k]}:\n${text[k].slice(-1500)}`);
    }
  }
});
