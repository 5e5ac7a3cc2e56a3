/**
 * The core scheduler and the monitor against a running daemon with two worker lcores (mapped
 * onto one CPU with VIO4WD_EAL_LCORES, so this runs on a 2-CPU machine) and uneven load.
 */

import { LAUNCHER, type RelayState, runVio4wd, until } from "./rigs/daemon_process.ts";
import { virtioUser } from "./rigs/devices.ts";
import { World } from "./rigs/world.ts";
import { assert, assertEq } from "./rigs/assert.ts";

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

/** VM stand-ins on relays 0-2, receiving. */
async function vms(w: World) {
  const pmd = await w.testpmd({ vdevs: [0, 1, 2].map((i) => virtioUser(w.vmSocket(i), { port: i })) });
  await pmd.send("set fwd rxonly");
  await pmd.send("start");
  return pmd;
}

const withVm = (s: RelayState[]) => s.filter((r) => r.vmToVf.active);
const cpusOf = (s: RelayState[]) => withVm(s).map((r) => `${r.id}:${r.cpu?.vfToVm}`).join(" ");

Deno.test("sched: uneven load on two worker CPUs converges to a balanced map and then stays put", async () => {
  await using w = await World.create("sched");
  const dir = w.dir;
  const d = await w.daemon(unevenDaemon(dir));
  await vms(w);
  await until("3 VMs", async () => withVm(await d.status()).length === 3, 10_000);
  assertEq(cpusOf(await d.status()), "0:1 1:1 2:1", "all on lcore 1 before");
  const eps = ["--stats-ep", `ipc://${dir}/zmq/stats`, "--sched-ep", `ipc://${dir}/zmq/core_sched`];
  const dry = await runVio4wd(["sched", ...eps, "--dry-run", "--global-numa-opt"]);
  if (!/NUMA global \(workers 1,2\).*plan CV/.test(dry.stdout)) {
    throw new Error(`dry run: ${dry.stdout}${dry.stderr}`);
  }
  assertEq(cpusOf(await d.status()), "0:1 1:1 2:1", "a dry run changes nothing");
  const said = `${dry.stdout}${dry.stderr}`;
  assert(/Dry run: one poll/.test(said) && !/Polling every/.test(said), `a dry run says it polls once: ${said}`);
  const r = await runVio4wd([
    ...["sched", ...eps, "--poll-interval", "0.5", "--polls", "5", "--global-numa-opt", "--loglevel", "6"],
  ]);
  assertEq(r.code, 0, `sched exit status: ${r.stderr}`);
  const moves = r.stderr.split("\n").filter((l) => l.includes("Migrating workers")).length;
  assertEq(moves, 1, `migrations (then balanced):\n${r.stderr}`);
  if (!r.stderr.includes("Scheduler response: OK")) throw new Error(r.stderr);
  const after = withVm(await d.status()).map((x) => x.cpu?.vfToVm);
  if (!after.includes(1) || !after.includes(2)) {
    throw new Error(`not spread over lcores 1 and 2: ${cpusOf(await d.status())}`);
  }
});

Deno.test("monitor under tmux: bars per worker CPU, relays listed, q quits; --once --json for scripts", async () => {
  await using w = await World.create("mon");
  const dir = w.dir;
  const d = await w.daemon(unevenDaemon(dir));
  await vms(w);
  const session = w.tag.replace(/[^a-zA-Z0-9-]/g, "");
  // A private tmux server (-L) in its own session (setsid): nothing shared with the test process.
  const tmux = (...args: string[]) =>
    new Deno.Command("setsid", {
      args: ["tmux", "-L", session, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  w.defer(() => tmux("kill-session", "-t", session));
  await until("3 VMs", async () => withVm(await d.status()).length === 3, 10_000);
  const eps = ["--stats-ep", `ipc://${dir}/zmq/stats`, "--sched-ep", `ipc://${dir}/zmq/core_sched`];
  const json = await runVio4wd(["monitor", ...eps, "--once", "--json"]);
  const snap = JSON.parse(json.stdout);
  assertEq(snap.cpus.map((c: { cpu: number }) => c.cpu).join(","), "1,2", "worker CPUs");
  assertEq(snap.relays.length, 3, "active relays");
  if (!(snap.cpus[0].load > 0)) throw new Error(`no load on CPU 1: ${json.stdout}`);

  const started = await tmux(
    "new-session",
    "-d",
    "-s",
    session,
    "-x",
    "140",
    "-y",
    "30",
    [LAUNCHER, "monitor", ...eps].join(" "),
  );
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
});

/** A client command running in the background with its output collected; stopped with SIGTERM. */
class Background {
  text = "";
  #child: Deno.ChildProcess;
  #pumps: Promise<void>[];
  constructor(args: string[]) {
    this.#child = new Deno.Command(LAUNCHER, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
    const dec = new TextDecoder();
    this.#pumps = [this.#child.stdout, this.#child.stderr].map(async (s) => {
      for await (const c of s) this.text += dec.decode(c, { stream: true });
    });
  }
  /** SIGTERM, then the exit status once its output is read. */
  async close(): Promise<number> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* exited */ }
    await Promise.all(this.#pumps);
    return (await this.#child.status).code;
  }
}

Deno.test("sched and monitor wait for a daemon that is not there yet, say so once, and carry on when it comes", async () => {
  await using w = await World.create("away");
  const eps = ["--stats-ep", `ipc://${w.dir}/zmq/stats`, "--sched-ep", `ipc://${w.dir}/zmq/core_sched`];
  const sched = w.own(new Background(["sched", ...eps, "--poll-interval", "0.5", "--loglevel", "6"]));
  const monitor = w.own(new Background(["monitor", ...eps, "--poll-interval", "0.5"]));
  const explain = (e: Error) =>
    new Error(`${e.message}\nsched:\n${sched.text.slice(-1500)}\nmonitor:\n${monitor.text.slice(-800)}`);
  try {
    await until("sched reports the daemon missing", () => sched.text.includes("No response from stats server"), 10_000);
    await until("monitor reports the daemon missing", () => monitor.text.includes("no answer from"), 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    assertEq(sched.text.split("No response from stats server").length - 1, 1, "outage reported once");
    await w.daemon(unevenDaemon(w.dir));
    await until("sched reconnects", () => sched.text.includes("Reconnected to stats server"), 15_000);
    await until("monitor shows CPU loads", () => monitor.text.includes("CPU loads"), 15_000);
  } catch (e) {
    throw explain(e as Error);
  }
  for (const [name, p] of [["sched", sched], ["monitor", monitor]] as const) {
    const code = await p.close();
    if (code !== 0 || /Uncaught| {4}at /.test(p.text)) throw new Error(`${name} exit ${code}:\n${p.text.slice(-1500)}`);
  }
});
