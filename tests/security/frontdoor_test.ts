/**
 * Security: what a peer on a relay's vhost-user socket can send the daemon's front door
 * (shim/frontdoor.c), which parses every message before rte_vhost does. Each attack is performed
 * against a running daemon, which must end that connection only, leak nothing and keep serving:
 * a VM on another relay connects and relays afterwards. Each test prints
 * `security <name> refused: <what it tried>`.
 */

import { num, type RelayState, until } from "../rigs/daemon_process.ts";
import { virtioUser } from "../rigs/devices.ts";
import { World } from "../rigs/world.ts";
import { assert, assertEq } from "../rigs/assert.ts";

const refused = (name: string, what: string) => console.log(`security ${name} refused: ${what}`);

/**
 * Runs `body` (python3, with `sock` the relay's socket path, `os`, `socket`, `struct`, `array`
 * and `time` imported) as a peer; returns what it prints.
 */
async function peer(sock: string, body: string): Promise<string> {
  const py = `import array, os, socket, struct, time\nsock = ${JSON.stringify(sock)}\n${body}\n`;
  const out = await new Deno.Command("python3", { args: ["-c", py], stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assertEq(out.code, 0, `the peer: ${text}${new TextDecoder().decode(out.stderr)}`);
  return text;
}

/** The daemon's open descriptors (ls: Deno reads /proc/PID/fd only with --allow-all). */
const openFds = (pid: number) =>
  new TextDecoder().decode(new Deno.Command("ls", { args: [`/proc/${pid}/fd`] }).outputSync().stdout).split("\n")
    .filter((l) => l !== "").length;

/** A VM on relay 1 connects and packets cross both ways: the front door still serves. */
async function stillServes(w: World, d: Awaited<ReturnType<World["daemon"]>>): Promise<void> {
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(1))] });
  await vm.waitLinksUp();
  await d.untilVm(1);
  await vm.send("set fwd io");
  await vm.send("start");
  const r1 = async () => (await d.status()).find((r: RelayState) => r.id === 1)!;
  await until("relay 1 relays both ways", async () => {
    const r = await r1();
    return num(r.vfToVm.pktsTxToVm) > 1000 && num(r.vmToVf.pktsRxFromVm) > 1000;
  });
  await vm.close();
}

/** A daemon with relays 0 and 1 (net_null VFs), server mode. */
async function daemon(w: World) {
  return await w.daemon(["VIRTIOFWD_STATIC_VFS=(net_null0=0 net_null1=1)"]);
}

// a connection's end: recv returns b"" (or the peer sees a reset)
const ENDED = `
def ended(s, wait=5):
    s.settimeout(wait)
    try:
        while True:
            if s.recv(4096) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
`;

/**
 * A peer that connects to `sock`, runs `send` (python, its connection `s`) and tells whether the
 * daemon then ended the connection: "ended" or "open".
 */
async function afterSending(sock: string, send: string): Promise<string> {
  return await peer(
    sock,
    `${ENDED}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
${send}
print("ended" if ended(s) else "open")`,
  );
}

Deno.test("security frontdoor-oversize: a vhost-user message announcing 64 KiB ends that connection (rte_vhost's largest is 268 bytes); the daemon serves on", async () => {
  await using w = await World.create("fdbig");
  const d = await daemon(w);
  const out = await afterSending(w.vmSocket(0), `s.sendall(struct.pack("<III", 1, 1, 65536) + bytes(100))`);
  assertEq(out, "ended", "the connection ends");
  refused("frontdoor-oversize", "a 64 KiB vhost-user message");
  await stillServes(w, d);
});

Deno.test("security frontdoor-fds: a message carrying 64 descriptors (more than any vhost-user message) ends that connection, and the daemon keeps none of them", async () => {
  await using w = await World.create("fdfds");
  const d = await daemon(w);
  const before = openFds(d.pid);
  const out = await afterSending(
    w.vmSocket(0),
    `fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(64)]
s.sendmsg([struct.pack("<III", 5, 1, 8) + bytes(8)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])`,
  );
  assertEq(out, "ended", "the connection ends");
  await until("the daemon holds no more descriptors than before", () => openFds(d.pid) <= before);
  refused("frontdoor-fds", "64 descriptors with one message");
  await stillServes(w, d);
});

Deno.test("security frontdoor-stall: half a message held open, a peer that never reads its replies, and 20 connections at once hold nothing of other relays' (the front door's one thread never waits on a peer)", async () => {
  await using w = await World.create("fdstall");
  const d = await daemon(w);
  const before = openFds(d.pid);
  // in the background: 5 bytes of a header, then nothing for 6 s (past the other attacks and the VM on relay 1)
  const half = peer(
    w.vmSocket(0),
    `s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
s.sendall(b"\\x01\\x00\\x00\\x00\\x01")
time.sleep(6)
print("held")`,
  );
  // connected before the flood (or it would be one of the flood's refused): the daemon holds its descriptors
  await until("the half message's connection is in", () => openFds(d.pid) > before);
  // 20 connections at once: the front door keeps 8 per relay and closes the others at once
  const flood = await peer(
    w.vmSocket(0),
    `${ENDED}
conns = []
for _ in range(20):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(sock)
    conns.append(c)
print(sum(1 for c in conns if ended(c, 0.3)))`,
  );
  assert(Number(flood) >= 12, `at most 8 connections kept (besides the half message's): ${flood} of 20 ended`);
  // requests whose replies are never read: the daemon's sends would block; it ends the connection
  const deaf = await peer(
    w.vmSocket(0),
    `${ENDED}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sock)
s.settimeout(0.2)
sent = 0
try:
    for _ in range(200000):
        s.send(struct.pack("<III", 1, 1, 0))  # GET_FEATURES, its reply never read
        sent += 1
except (socket.timeout, BrokenPipeError, ConnectionResetError):
    pass
print("ended" if ended(s, 10) else "open")`,
  );
  assertEq(deaf, "ended", "a peer that never reads its replies is dropped");
  await stillServes(w, d);
  assertEq(await half, "held", "the half message's peer");
  await until("the daemon holds no more descriptors than before", () => openFds(d.pid) <= before, 15_000);
  refused("frontdoor-stall", "a half message held, replies never read, 20 connections");
});
