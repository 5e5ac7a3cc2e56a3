/**
 * Security: hostile inputs a local user or a client can send, each performed against a running
 * daemon that must refuse it with a log line, lose nothing and keep serving. Each test prints
 * `security <name> refused: <what it tried>`.
 */

import { request, requestRaw } from "../../src/control/client.ts";
import {
  PortControlRequest_Op as Op,
  PortControlRequestSchema,
  PortControlResponse_Status,
  PortControlResponseSchema,
  StatsRequestSchema,
  StatsResponse_Status,
  StatsResponseSchema,
} from "../../src/control/gen/virtioforwarder_pb.ts";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ZMQ_REQ, ZmqContext } from "../../ffi/zmq.ts";
import { World } from "../rigs/world.ts";
import { ADD_VF } from "../../src/control/port_codes.ts";
import { Canary } from "../rigs/canary.ts";
import { PID_FILE } from "../../src/config/config.ts";
import { hugepageFiles } from "../rigs/testpmd.ts";
import { fakeSysfs } from "../rigs/sysfs.ts";
import { OvsDb } from "../rigs/ovs.ts";
import { tgkill, threadsNamed } from "../rigs/signals.ts";
import { type DaemonProcess, freePort, LAUNCHER, runVio4wd, until } from "../rigs/daemon_process.ts";
import { assert, assertEq, assertJsonEq } from "../rigs/assert.ts";
import { accountId } from "../../src/config/values.ts";
import { STATS_PEER_WAITING } from "../../src/control/stats.ts";

const refused = (name: string, what: string) => console.log(`security ${name} refused: ${what}`);

const ROOT = new URL("../..", import.meta.url).pathname;

/** Checked after every attack; the attacks that plant links point them here. */
const canary = Canary.plant();

/** The daemon still answers stats, and the canary is intact. */
async function serving(d: DaemonProcess, after: string): Promise<void> {
  await d.status().catch((e) => {
    throw new Error(`after ${after}: the daemon no longer answers: ${e.message}`);
  });
  canary.check(after);
}

Deno.test("security: a client string with newlines and a syslog priority cannot forge a log line", async () => {
  await using w = await World.create("loginject");
  const ep = `ipc://${w.dir}/pc`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`]);
  const forged = "net_null9\n<0>FORGED: relay 0 removed by root\r\n2026-01-01T00:00:00Z vio4wd err: FORGED";
  const req = toBinary(
    PortControlRequestSchema,
    create(PortControlRequestSchema, { op: Op.ADD, virtioId: 1, devargs: [forged] }),
  );
  await requestRaw(ep, req);
  await d.waitLog(/net_null9\\x0a<0>FORGED/);
  const lines = d.log.split("\n");
  assertEq(
    lines.filter((l) => /^(<0>)?FORGED|^2026-01-01T00:00:00Z/.test(l)).length,
    0,
    "no line starts with the forgery",
  );
  assert(
    lines.some((l) => l.includes("net_null9\\x0a<0>FORGED: relay 0 removed by root\\x0d\\x0a2026")),
    "escaped, on one line",
  );
  await serving(d, "log injection");
  refused("log-injection", "a device string carrying \\n<0>... and \\r\\n with a fake timestamp");
});

Deno.test("security: ZeroMQ requests above a few KiB are dropped by the transport and a request of many frames is refused with nothing of it kept; the daemon keeps answering", async () => {
  await using w = await World.create("zmqsize");
  const ep = `ipc://${w.dir}/stats`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_STATS_EP=${ep}`]);
  const ctx = new ZmqContext();
  w.defer(() => ctx.close());
  // 1 MiB in one frame: libzmq drops it (and the peer) at the 4 KiB limit, nothing is answered
  const huge = ctx.socket(ZMQ_REQ);
  huge.connect(ep);
  assert(huge.trySend(new Uint8Array(1 << 20)), "sent");
  assertEq(await huge.receive(1000), null, "no answer to 1 MiB");
  huge.close();
  await serving(d, "a 1 MiB request");
  // 10 000 frames of 1 KiB, twice: each answered as one bad request (one frame is expected); the
  // frames past the second are read and dropped, not kept
  const manyFrames = async () => {
    const many = ctx.socket(ZMQ_REQ);
    many.connect(ep);
    const frame = new Uint8Array(1024);
    assert(many.trySendFrames(Array.from({ length: 10_000 }, () => frame)), "sent");
    const reply = await many.receive(5000);
    many.close();
    assert(reply !== null, "a multi-frame request is answered");
    assertEq(fromBinary(StatsResponseSchema, reply![0]).status, StatsResponse_Status.EBADR, "answered EBADR");
  };
  await manyFrames();
  await manyFrames();
  // only two of the 10 000 frames were kept: the request is seen as "2 frames"
  await d.waitCount(/zmq_stats: request of 2 frames \(expected 1\)/, 2);
  const ok = toBinary(StatsRequestSchema, create(StatsRequestSchema, {}));
  assertEq(fromBinary(StatsResponseSchema, await requestRaw(ep, ok)).relay.length, 64, "still serving");
  refused("zmq-size", "a 1 MiB frame and a 10 000-frame message");
});

Deno.test("security: the IPC command file is taken only as a regular file of root or the ZeroMQ group: a symlink, a FIFO, another user's file and an oversized file are ignored, nothing leaks or blocks", async () => {
  await using w = await World.create("ipcfile");
  const cmd = `${w.dir}/vio_cmd`;
  fakeSysfs(`${w.dir}/sys`, [3]);
  const secret = `${w.dir}/secret`;
  await Deno.writeTextFile(secret, "add_port vf3\nTOP-SECRET-CONTENT\n");
  await Deno.chmod(secret, 0o600);
  const d = await w.daemon(["VIRTIOFWD_IPC_PORT_CONTROL=y", `VIO4WD_IPC_CMD_FILE=${cmd}`], {
    env: { VIO4WD_SYSFS_ROOT: `${w.dir}/sys` },
  });
  const gone = () => Deno.stat(cmd).then(() => false, () => true);
  /** Puts `text` at the command path whole (written beside it, owned by `owner`, then renamed). */
  const place = async (text: string, owner?: string) => {
    const tmp = `${w.dir}/vio_cmd.tmp`;
    await Deno.writeTextFile(tmp, text);
    if (owner) await new Deno.Command("chown", { args: [owner, tmp] }).output();
    await Deno.rename(tmp, cmd);
  };

  // a symbolic link to a file the attacker cannot read: neither followed nor leaked
  await Deno.symlink(secret, cmd);
  await d.waitLog(/ipc: .*vio_cmd ignored: it is a symbolic link/);
  assert(!d.log.includes("TOP-SECRET"), "the link's target never reaches the log");
  assert(!d.log.includes("add_port vf3"), "nor is it carried out");
  await Deno.remove(cmd);
  refused("ipc-symlink", "vio_cmd -> a root-only file");

  // a FIFO: opening it must not block the monitor
  await new Deno.Command("mkfifo", { args: [cmd] }).output();
  await d.waitLog(/ipc: .*vio_cmd ignored: it is not a regular file/);
  await Deno.remove(cmd);
  refused("ipc-fifo", "vio_cmd as a FIFO with no writer");

  // another user's file
  await place("del_port vf3\n", "nobody:nogroup");
  await d.waitLog(/ipc: .*vio_cmd ignored: it belongs to uid \d+, gid \d+: commands are taken from root's files only/);
  assert(!(await gone()), "left as it is");
  await Deno.remove(cmd);
  refused("ipc-owner", "a command file owned by nobody");

  // 8 KiB of commands: at most 129 bytes are read, and it is not a command
  await place("add_port vf3\n".repeat(700));
  await d.waitLog(/ipc: .*vio_cmd is not a command \(longer than 128 bytes\)/);
  await Deno.remove(cmd);
  refused("ipc-size", "an 8 KiB command file");

  // still working: a proper command from root is carried out
  await place("add_port vf3\n");
  await until("the command file consumed", gone, 3000);
  await d.waitLog(/ipc: cannot add 0000:05:08\.3 to relay 3/);
  await serving(d, "the IPC attacks");
});

Deno.test("security: a port-control endpoint on a network address is not opened without VIO4WD_ZMQ_ALLOW_REMOTE; loopback tcp is warned at start", async () => {
  await using w = await World.create("remote");
  const stats = `tcp://127.0.0.1:${freePort()}`;
  // 192.0.2.1 (TEST-NET-1) is never this machine's: the daemon must refuse before binding it
  const d = await w.daemon([
    "VIRTIOFWD_ZMQ_PORT_CONTROL_EP=tcp://192.0.2.1:5555", // refused before any bind: the port does not matter
    `VIRTIOFWD_ZMQ_STATS_EP=${stats}`,
  ]);
  await d.waitLog(/zmq_port_control: tcp:\/\/192\.0\.2\.1:\d+ not opened: .*VIO4WD_ZMQ_ALLOW_REMOTE=y/);
  await d.waitLog(/zmq_stats: tcp:\/\/127\.0\.0\.1:\d+ is unauthenticated: every local user can use it/);
  assert(!d.log.includes("zmq_port_control: listening"), "port control not listening");
  await serving(d, "the refused endpoint");
  refused("remote-endpoint", "VIRTIOFWD_ZMQ_PORT_CONTROL_EP on a non-loopback address");
});

Deno.test("security: an OVSDB server sending 8 MiB of garbage on every connection is dropped at once, logged once, and the daemon keeps serving", async () => {
  await using w = await World.create("ovsdbgarbage");
  const path = `${w.dir}/db.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  let connections = 0;
  const serve = (async () => {
    for await (const conn of listener) {
      connections++;
      conn.write(new Uint8Array(8 << 20).fill(0x61)).catch(() => {}).finally(() => conn.close());
    }
  })().catch(() => {});
  w.defer(async () => {
    listener.close();
    await serve;
  });
  const d = await w.daemon([`VIRTIOFWD_OVSDB_SOCK_PATH=${path}`]);
  await d.waitLog(/ovsdb: .*db\.sock sent 'a' between JSON-RPC messages: connection dropped, reconnecting/);
  await until("reconnected and dropped again", () => connections >= 3, 10_000);
  assertEq(d.count(/between JSON-RPC messages/), 1, "logged once");
  await serving(d, "the garbage stream");
  refused("ovsdb-garbage", `8 MiB of garbage on each of ${connections} connections`);
});

/** Runs `cmd` (this checkout's launchers) with `env`; its exit status and wall time in ms. */
async function timed(cmd: string[], env: Record<string, string>): Promise<{ code: number; ms: number; out: string }> {
  const t0 = performance.now();
  const o = await new Deno.Command(cmd[0], { args: cmd.slice(1), env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: o.code, ms: performance.now() - t0, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

Deno.test("security: no client can starve another of stats: a ZeroMQ group member holding 1000 requests of 60 s gets EBADR past its 32, root's tools (the original's stats tool, vio4wd stats, monitor, scheduler) answer as fast as without it, memory stays bounded, and the requests go with their connections", async () => {
  await using w = await World.create("statshog");
  Deno.chmodSync(w.dir, 0o755); // the group member reaches the endpoints' directory (0750, group kvm)
  const kvm = accountId("group", "kvm")!;
  const ep = `ipc://${w.dir}/zmq/stats`;
  const d = await w.daemon([
    `VIRTIOFWD_ZMQ_STATS_EP=${ep}`,
    `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${w.dir}/zmq/core_sched`,
    "VIO4WD_CORE_SCHED_ENABLE=true",
    "VIO4WD_ZMQ_GROUP=kvm",
    "VIRTIOFWD_STATIC_VFS=net_null0=0",
  ]);
  const env = { VIO4WD_CONFIG: d.config, VIO4WD: LAUNCHER, PATH: Deno.env.get("PATH")!, HOME: w.dir };
  const tools: [string, string[]][] = [
    ["the original's stats tool (200 ms)", [`${ROOT}scripts/original/virtioforwarder_stats.py`, `--stats-ep=${ep}`]],
    ["vio4wd stats (200 ms)", [LAUNCHER, "stats"]],
    ["vio4wd monitor --once --json", [LAUNCHER, "monitor", "--once", "--json"]],
    ["the scheduler, one poll (200 ms)", [LAUNCHER, "sched", "--dry-run", "--polls", "1", "--poll-interval", "0.2"]],
  ];
  const baseline = new Map<string, number>();
  for (const [what, cmd] of tools) {
    const r = await timed(cmd, env);
    assertEq(r.code, 0, `${what} without the attack: ${r.out}`);
    baseline.set(what, r.ms);
  }
  const rss0 = d.rssKiB();

  // the attacker: nobody, in the ZeroMQ group, 1000 connections each waiting out 60 s
  const denoDir = `${w.dir}/hog-deno`;
  Deno.mkdirSync(denoDir);
  Deno.chownSync(denoDir, 65534, 65534);
  const start = (n: number) => {
    const c = new Deno.Command("setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        `--groups=${kvm}`,
        "--",
        `${ROOT}node_modules/deno/deno`,
        "run",
        "--no-config",
        "--allow-ffi",
        "--allow-read",
        "--allow-env",
        `${ROOT}tests/rigs/stats_hog.ts`,
        ep,
        String(n),
      ],
      env: { DENO_DIR: denoDir, HOME: denoDir, PATH: Deno.env.get("PATH")! },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    w.own({
      close: async () => {
        try {
          c.kill("SIGKILL");
        } catch { /* exited */ }
        await c.output().catch(() => {});
      },
    });
    const lines = c.stdout.pipeThrough(new TextDecoderStream()).getReader();
    return {
      result: async () => {
        const { value } = await lines.read();
        if (!value) throw new Error(`the hog printed nothing: ${await new Response(c.stderr).text()}`);
        return JSON.parse(value) as { sent: number; ebadr: number };
      },
      leave: async () => {
        await c.stdin.close();
        await c.status;
      },
    };
  };
  const first = start(1000);
  assertJsonEq(
    await first.result(),
    { sent: 1000, ebadr: 1000 - STATS_PEER_WAITING },
    `the offender's extra requests; log:\n${d.log.split("\n").filter((l) => l.includes("zmq_stats")).join("\n")}`,
  );
  for (const [what, cmd] of tools) {
    const r = await timed(cmd, env);
    assertEq(r.code, 0, `${what} during the attack: ${r.out}`);
    const before = baseline.get(what)!;
    assert(r.ms <= before + 400, `${what}: ${Math.round(r.ms)} ms during the attack, ${Math.round(before)} ms without`);
  }
  const grown = (d.rssKiB() - rss0) / 1024;
  assert(grown < 64, `the daemon grew ${grown.toFixed(1)} MiB holding the attack`);
  // the attacker leaves: its waiting requests go with its connections, so the same user starts afresh
  await first.leave();
  await until("the attacker's connections dropped", async () => {
    const again = start(STATS_PEER_WAITING);
    const r = await again.result();
    await again.leave();
    return r.ebadr === 0;
  }, 15_000);
  await serving(d, "1000 waiting requests of a group member");
  refused(
    "stats-starvation",
    `1000 requests of 60 s from a group member: ${STATS_PEER_WAITING} waited, the rest EBADR`,
  );
});

Deno.test("security: the metrics endpoint serves a scrape while 500 connections hold half a request each (slowloris), and shows no stats request waiting", async () => {
  await using w = await World.create("metricsslow");
  const d = await w.daemon(["VIO4WD_METRICS_LISTEN=127.0.0.1:0", "VIRTIOFWD_STATIC_VFS=net_null0=0"]);
  const url = await d.metricsUrl();
  const port = Number(new URL(url).port);
  await until(
    "metrics served",
    () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).then(() => true, () => false),
  );
  const held: Deno.Conn[] = [];
  w.defer(() => held.forEach((c) => c.close()));
  const half = new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
  for (let i = 0; i < 500; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    await c.write(half);
    held.push(c);
  }
  const t0 = performance.now();
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) =>
    r.text()
  );
  const ms = performance.now() - t0;
  assert(ms < 2000, `a scrape took ${Math.round(ms)} ms with 500 half-open connections`);
  assert(/^vio4wd_stats_waiting_requests 0$/m.test(text), "no stats request waits");
  await serving(d, "500 half-open metrics connections");
  refused("metrics-slowloris", "500 connections each holding half an HTTP request while a scrape is served");
});

Deno.test("security: a virtio_user device from a client cannot hold the daemon: server=1 (the probe would wait for a peer) and a peer socket of another user's that never answers are refused; the daemon keeps answering", async () => {
  await using w = await World.create("vuhold");
  const ep = `ipc://${w.dir}/pc`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`, "VIO4WD_DEVARGS_ALLOW=net_virtio_user"]);
  await Deno.mkdir(w.sockDir, { recursive: true });
  // a peer that accepts and never answers, its socket nobody's
  const silent = `${w.sockDir}/silent.sock`;
  const listener = Deno.listen({ transport: "unix", path: silent });
  w.defer(() => listener.close());
  Deno.chownSync(silent, 65534, 65534);
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const c of listener) held.push(c);
  })().catch(() => {});
  w.defer(() => held.forEach((c) => c.close()));
  const add = async (device: string) => {
    const req = { op: Op.ADD, virtioId: 1, devargs: [device] };
    const r = await request(ep, PortControlRequestSchema, req, PortControlResponseSchema, 5000);
    return r.status === PortControlResponse_Status.OK;
  };
  // a socket of root's at the path, so that it is server=1 alone that is refused
  const roots = Deno.listen({ transport: "unix", path: `${w.sockDir}/wait.sock` });
  w.defer(() => roots.close());
  assert(!(await add(`net_virtio_user1,path=${w.sockDir}/wait.sock,server=1`)), "server=1 refused");
  await serving(d, "a virtio_user device that would wait for a peer");
  assert(!(await add(`net_virtio_user2,path=${silent}`)), "a silent peer of nobody's refused");
  await serving(d, "a virtio_user device whose peer never answers");
  assert(/net_virtio_user key .server. is not allowed from clients/.test(d.log), "the first rule logged");
  assert(/path=\S+silent\.sock: a socket of uid 65534, not of root's/.test(d.log), "the second rule logged");
  assertEq(held.length, 0, "the daemon never connected to the silent peer");
  refused("virtio-user-hold", "net_virtio_user with server=1, and one whose peer (nobody's) never answers");
});

Deno.test("security: the ipc:// endpoints are a directory 0750 and sockets 0660 of VIO4WD_ZMQ_GROUP: a user outside the group gets no answer from any of them, a member of the group is served", async () => {
  await using w = await World.create("ipcacl");
  Deno.chmodSync(w.dir, 0o755); // the way to the endpoints' directory is open: the directory itself decides
  const kvm = accountId("group", "kvm")!;
  const ep = (name: string) => `ipc://${w.dir}/zmq/${name}`;
  const d = await w.daemon([
    `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep("port_control")}`,
    `VIRTIOFWD_ZMQ_STATS_EP=${ep("stats")}`,
    `VIRTIOFWD_ZMQ_CONFIG_EP=${ep("config")}`,
    `VIRTIOFWD_ZMQ_CORE_SCHED_EP=${ep("core_sched")}`,
    "VIO4WD_CORE_SCHED_ENABLE=true",
    "VIO4WD_ZMQ_GROUP=kvm",
  ]);
  const mode = (p: string) => {
    const st = Deno.statSync(p);
    return `${(st.mode! & 0o7777).toString(8)} ${st.gid}`;
  };
  assertEq(mode(`${w.dir}/zmq`), `750 ${kvm}`, "the endpoints' directory");
  for (const name of ["port_control", "stats", "config", "core_sched"]) {
    assertEq(mode(`${w.dir}/zmq/${name}`), `660 ${kvm}`, `the ${name} socket`);
  }
  // the original's stats tool, run as another user: outside the group, then in it
  const denoDir = `${w.dir}/client-deno`;
  Deno.mkdirSync(denoDir);
  Deno.chownSync(denoDir, 65534, 65534);
  const asNobody = (groups: string[], args: string[]) =>
    new Deno.Command("setpriv", {
      args: ["--reuid=65534", "--regid=65534", ...groups, "--", LAUNCHER, ...args],
      env: { DENO_DIR: denoDir, HOME: denoDir, PATH: Deno.env.get("PATH")! },
      stdout: "piped",
      stderr: "piped",
    }).output();
  for (
    const [name, args] of [
      ["stats", ["stats", "--zmq-ep", ep("stats"), "--delay", "0"]],
      ["port_control", [
        "port",
        "query-pci",
        "--vhost-path",
        "/x",
        "--zmq-ep",
        ep("port_control"),
        "--timeout",
        "1000",
      ]],
      ["core_sched", ["pin", "--zmq-ep", ep("core_sched"), "--stats-ep", ep("stats")]],
    ] as [string, string[]][]
  ) {
    const outside = await asNobody(["--clear-groups"], args);
    const said = new TextDecoder().decode(outside.stderr);
    assertEq(outside.code, 2, `${name}: an outsider is not served (${said.trim()})`);
    assert(
      /permission denied.*VIO4WD_ZMQ_GROUP: join that group/.test(said),
      `${name}: the outsider is told why: ${said}`,
    );
  }
  const member = await asNobody([`--groups=${kvm}`], ["stats", "--zmq-ep", ep("stats"), "--delay", "0", "--json"]);
  assertEq(member.code, 0, `a member of the group is served: ${new TextDecoder().decode(member.stderr)}`);
  await serving(d, "clients outside the ZeroMQ group");
  refused("ipc-acl", "stats, port control and core scheduling from a user outside VIO4WD_ZMQ_GROUP");
});

Deno.test("security: signals interrupting the control server's poll (on its pool thread) lose nothing: every request answered, no poll error logged", async () => {
  await using w = await World.create("pollsignals");
  const ep = `ipc://${w.dir}/stats`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_STATS_EP=${ep}`]);
  const req = toBinary(StatsRequestSchema, create(StatsRequestSchema, {}));
  // zmq_poll waits on one of Deno's pool threads; a signal sent to the process goes to the JS
  // thread, so each pool thread is signalled itself (SIGUSR2: the daemon ignores it)
  const SIGUSR2 = 12;
  let signals = 0;
  const storm = (async () => {
    for (let round = 0; round < 200; round++) {
      for (const tid of await threadsNamed(d.pid, "tokio-runtime")) if (tgkill(d.pid, tid, SIGUSR2)) signals++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  let answered = 0;
  let done = false;
  storm.finally(() => done = true);
  while (!done) {
    await requestRaw(ep, req, 2000);
    answered++;
  }
  await storm;
  assert(answered > 0 && signals > 0, `requests (${answered}) went on during the signals (${signals})`);
  assertEq(d.log.split("\n").filter((l) => l.includes("zmq_poll")).join("\n"), "", "no poll error logged");
  await serving(d, `${signals} signals to the pool threads`);
});

Deno.test("security: a socket the daemon did not create is never removed: ADD_SOCK on a live socket or another user's fails and leaves it; a stale one of root's is replaced", async () => {
  await using w = await World.create("foreignsock");
  const ep = `ipc://${w.dir}/pc`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`, "VIRTIOFWD_DYNAMIC_SOCKETS=y"]);
  await Deno.mkdir(w.sockDir, { recursive: true });
  const live = `${w.sockDir}/live.sock`, foreign = `${w.sockDir}/foreign.sock`, stale = `${w.sockDir}/stale.sock`;
  const listener = Deno.listen({ transport: "unix", path: live });
  try {
    // socket files nobody listens on: links to a listener's socket, which stay when it closes
    for (const path of [foreign, stale]) {
      const gone = Deno.listen({ transport: "unix", path: `${path}.gone` });
      Deno.linkSync(`${path}.gone`, path); // a second name of its own inode
      gone.close();
    }
    Deno.chownSync(foreign, 65534, 65534); // nobody's
    const before = new Map([live, foreign].map((p) => [p, Deno.lstatSync(p).ino]));
    const addSock = async (path: string, dev: string) => {
      const req = { op: Op.ADD_SOCK, vhostPath: path, devargs: [dev] };
      const answer = await request(ep, PortControlRequestSchema, req, PortControlResponseSchema, 5000);
      return answer.status === PortControlResponse_Status.OK;
    };
    assert(!(await addSock(live, "net_null1")), "ADD_SOCK on a socket another program listens on is refused");
    assert(!(await addSock(foreign, "net_null2")), "ADD_SOCK on another user's socket is refused");
    Deno.symlinkSync(canary.path, `${w.sockDir}/link.sock`);
    assert(!(await addSock(`${w.sockDir}/link.sock`, "net_null4")), "ADD_SOCK on a link to the canary is refused");
    canary.check("ADD_SOCK on a link to it");
    for (const [p, ino] of before) assertEq(Deno.lstatSync(p).ino, ino, `${p} is still the same file`);
    // the listener still works: its socket was not replaced
    const accepted = listener.accept();
    (await Deno.connect({ transport: "unix", path: live })).close();
    (await accepted).close();
    assert(/another program is listening on; not removing it/.test(d.log), "the live socket's refusal is logged");
    assert(/socket of uid 65534, not a leftover/.test(d.log), "the foreign socket's refusal is logged");
    // a leftover of root's with nobody listening is what an earlier run leaves: it is replaced
    assert(await addSock(stale, "net_null3"), "ADD_SOCK on a stale socket of root's works");
    refused(
      "foreign-socket",
      "ADD_SOCK on a socket another program listens on, on one of uid 65534 and on a link to the canary",
    );
  } finally {
    listener.close();
  }
  await serving(d, "ADD_SOCK on foreign sockets");
});

Deno.test("security: the PID file is written without following a link or blocking on a FIFO put in its place", async () => {
  await using w = await World.create("pidfile");
  const pidFile = `${w.dir}/${PID_FILE}`;
  for (const plant of ["symlink", "fifo"] as const) {
    if (plant === "symlink") Deno.symlinkSync(canary.path, pidFile);
    else await new Deno.Command("mkfifo", { args: [pidFile] }).output();
    const d = await w.daemon([]);
    const st = Deno.lstatSync(pidFile);
    assert(st.isFile, `with a ${plant} planted the PID file is a regular file`);
    assertEq(Deno.readTextFileSync(pidFile).trim(), String(d.pid), `the PID file holds the daemon's PID (${plant})`);
    await serving(d, `a ${plant} at the PID file`);
    assertEq(await d.stop(), 0, "the daemon stops cleanly");
    try {
      Deno.removeSync(pidFile); // the daemon removes it at exit; this is for a failed run
    } catch { /* removed */ }
  }
  refused("pid-file", "a symlink to a canary file and a FIFO planted as the PID file");
});

Deno.test("security: a socket, PID or ZeroMQ directory another user owns or can write stops the start with the path and the fix, nothing written there", async () => {
  await using w = await World.create("dirtrust");
  const NOBODY = 65534;
  const mk = (name: string, mode: number, uid = 0) => {
    const path = `${w.dir}/${name}`;
    Deno.mkdirSync(path);
    Deno.chmodSync(path, mode);
    Deno.chownSync(path, uid, uid);
    return path;
  };
  const theirs = mk("theirs", 0o755, NOBODY), open = mk("open", 0o777), mine = mk("mine", 0o755);
  const cases: [string, string[], RegExp][] = [
    [
      "a socket directory of another user's",
      [`VIRTIOFWD_SOCKET_DIR=${theirs}`],
      /VIRTIOFWD_SOCKET_DIR=.*theirs is owned by uid 65534, not by root/,
    ],
    [
      "a PID directory below a world-writable one without the sticky bit",
      [`VIRTIOFWD_PID_DIR=${open}/pid`],
      /VIRTIOFWD_PID_DIR=.*open is writable by every user and has no sticky bit/,
    ],
    [
      "a port-control endpoint in another user's directory",
      [`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${theirs}/zmq/pc`],
      /zmq_port_control: ipc:\/\/.*theirs is owned by uid 65534/,
    ],
  ];
  for (const [what, lines, want] of cases) {
    const file = `${w.dir}/${what.replaceAll(" ", "-")}.conf`;
    const prefix = w.nextTag("d");
    const base = [
      `VIRTIOFWD_SOCKET_DIR=${mine}/sock`,
      `VIRTIOFWD_PID_DIR=${mine}`,
      `VIO4WD_EAL_FILE_PREFIX=${prefix}`,
    ];
    Deno.writeTextFileSync(
      file,
      [...base, "VIRTIOFWD_CPU_MASK=1", "VIRTIOFWD_MASTER_LCORE=0", ...lines].join("\n") + "\n",
    );
    const out = await runVio4wd(["daemon", "--config", file]);
    assertEq(out.code, 1, `${what}: exit status`);
    assert(want.test(out.stderr), `${what}: says why; got ${out.stderr.slice(-600)}`);
    for (const dir of [theirs, open]) {
      assertEq([...Deno.readDirSync(dir)].length, 0, `${what}: nothing written in ${dir}`);
    }
    // refused before or after DPDK started: nothing of the run is left
    const left = hugepageFiles(prefix);
    for (const p of [`/var/run/dpdk/${prefix}`, `${mine}/${PID_FILE}`]) {
      if (await Deno.lstat(p).then(() => true, () => false)) left.push(p);
    }
    assertEq(left.join(" "), "", `${what}: left behind`);
  }
  canary.check("the untrusted directories");
  refused("untrusted-dirs", "socket, PID and ZeroMQ directories owned by uid 65534 or world-writable without +t");
});

Deno.test("security: device strings from clients: only SR-IOV VFs unless allowed; net_pcap onto the canary, tap remote, memif sockets outside the socket directory and a non-VF PCI device are refused with the probe code", async () => {
  await using w = await World.create("devargs");
  const ep = `ipc://${w.dir}/pc`;
  const d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`, "VIO4WD_DEVARGS_ALLOW=net_tap,net_memif"]);
  const outside = `${w.dir}/outside.sock`;
  const attacks: [string, string[], string | undefined, RegExp][] = [
    [
      "net_pcap over the canary",
      [`net_pcap0,rx_iface=lo,tx_pcap=${canary.path}`],
      undefined,
      /driver net_pcap are not allowed/,
    ],
    ["net_tap capturing lo", ["net_tap0,iface=t0,remote=lo"], undefined, /net_tap key 'remote' is not allowed/],
    [
      "a memif socket outside",
      [`net_memif0,socket=${outside},socket-abstract=no`],
      undefined,
      /not a path inside the socket directory/,
    ],
    ["a driver not allowed", ["net_null0"], undefined, /net_null are not allowed.*VIO4WD_DEVARGS_ALLOW/],
    ["a PCI device that is not a VF", ["0000:00:00.0"], undefined, /0000:00:00.0 is not an SR-IOV VF/],
    ["a bond name with arguments", ["net_tap1,iface=t1", "net_tap2,iface=t2"], "net_bonding0,mode=0", /bond name/],
  ];
  for (const [what, devargs, name, log] of attacks) {
    const req = { op: Op.ADD, virtioId: 3, devargs, ...(name ? { name } : {}) };
    const answer = await request(ep, PortControlRequestSchema, req, PortControlResponseSchema, 5000);
    assert(answer.status !== PortControlResponse_Status.OK, `${what}: refused`);
    if (!name) assertEq(answer.errorCode, ADD_VF.code.probe, `${what}: the original's code for a failed probe`);
    await d.waitLog(log);
    await serving(d, what);
  }
  assert(!(await Deno.lstat(outside).then(() => true, () => false)), "no socket made outside the socket directory");
  assertEq((await d.status()).length, 0, "no relay got a device");
  refused("client-devargs", attacks.map(([what]) => what).join("; "));
});

Deno.test("security: device strings through OVSDB and netdevs through the IPC file meet the same rules: net_pcap onto the canary, a non-VF PCI device, a PF's netdev and a path as a name are refused", async () => {
  await using w = await World.create("portsources");
  const dir = w.dir;
  await Deno.mkdir(`${dir}/ovs`);
  fakeSysfs(`${dir}/sys`, [3]);
  const db = w.own(await OvsDb.start(`${dir}/ovs`));
  await db.vsctl("--no-wait", "add-br", "br0");
  const cmd = `${dir}/vio_cmd`;
  const env = { VIO4WD_SYSFS_ROOT: `${dir}/sys` };
  const d = await w.daemon([`VIRTIOFWD_OVSDB_SOCK_PATH=${db.socket}`], { env });
  const tag = (port: string, relay: number, device: string) =>
    db.vsctl("--no-wait", "add-port", "br0", port, "--", "set", "interface", port, ...[
      `external_ids:virtio_forwarder=${relay}`,
      `external_ids:vio4wd_device="${device}"`,
    ]);
  const ovsdb: [string, string, RegExp][] = [
    ["net_pcap over the canary", `net_pcap0,rx_iface=lo,tx_pcap=${canary.path}`, /driver net_pcap are not allowed/],
    ["a PCI device that is not a VF", "0000:00:00.0", /0000:00:00\.0 is not an SR-IOV VF/],
    ["the PF itself", "0000:05:00.0", /0000:05:00\.0 is not an SR-IOV VF/],
  ];
  for (const [i, [what, device, log]] of ovsdb.entries()) {
    await tag(`p${i}`, i, device);
    await d.waitLog(log).catch((e) => {
      throw new Error(`OVSDB ${what}: ${e.message}`);
    });
    await serving(d, `OVSDB: ${what}`);
  }
  assertEq((await d.status()).filter((r) => r.vf).length, 0, "no relay got a device from OVSDB");
  assertEq(await d.stop(), 0, "OVSDB daemon exit status");
  // the IPC file is a port source of its own (one per daemon)
  const di = await w.daemon(["VIRTIOFWD_IPC_PORT_CONTROL=y", `VIO4WD_IPC_CMD_FILE=${cmd}`], { env });
  const ipc: [string, string, RegExp][] = [
    ["a PF's netdev", "add_port pf0", /ipc: add_port pf0: .*no physfn link: it is not an SR-IOV VF/],
    ["a path as an interface name", "add_port ../../../etc", /ipc: .*is not a command .*not a network interface name/],
  ];
  for (const [what, text, log] of ipc) {
    await Deno.writeTextFile(cmd, `${text}\n`);
    await di.waitLog(log).catch((e) => {
      throw new Error(`IPC ${what}: ${e.message}`);
    });
    await Deno.remove(cmd).catch(() => {});
    await serving(di, `IPC: ${what}`);
  }
  assertEq((await di.status()).filter((r) => r.vf).length, 0, "no relay got a device from the IPC file");
  refused("client-devices-ovsdb-ipc", [...ovsdb, ...ipc].map(([what]) => what).join("; "));
});
