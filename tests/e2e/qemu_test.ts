/**
 * End to end with a real Linux guest: QEMU (TCG) with virtio-net over vhost-user to
 * `vio4wd daemon`, whose VF is a net_tap device in a network namespace the test creates. The
 * guest runs one shell script per case (src/testbed/guest/init.sh); the host side of its traffic
 * runs in the namespace with busybox.
 */

import { DaemonProcess, runVio4wd, uniqueTag, until } from "../helpers.ts";
import { NetNs } from "../../src/testbed/netns.ts";
import { buildInitramfs, type GuestOptions, QemuGuest } from "../../src/testbed/qemu.ts";
import { assertEq } from "../../src/testbed/assert.ts";
import { TestPmd } from "../../src/testbed/testpmd.ts";

const HOST = "10.200.0.1";
const GUEST = "10.200.0.2";
/** The VF stand-in: a tap interface with a fixed MAC, so the guest's ARP entry survives a restart. */
const TAP_VF = "net_tap0,iface=vtap0,mac=02:00:00:c0:ff:ee";
const MIB = 1 << 20;
/** A guest boots to /init in about 2 s under TCG; a whole case takes 10-30 s. */
const GUEST_TIMEOUT = 120_000;

/** One case's world: a temp dir, a namespace, the initramfs, and whatever processes it started. */
class E2eRun {
  readonly daemons: DaemonProcess[] = [];
  readonly guests: QemuGuest[] = [];
  private constructor(readonly tag: string, readonly dir: string, readonly ns: NetNs, readonly initrd: string) {}

  static async create(name: string): Promise<E2eRun> {
    const tag = uniqueTag(name);
    const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
    await Deno.mkdir(`${dir}/sock`);
    const initrd = `${dir}/initrd.gz`;
    await buildInitramfs(initrd);
    return new E2eRun(tag, dir, await NetNs.create(tag), initrd);
  }

  get socket(): string {
    return `${this.dir}/sock/virtio-forwarder0.sock`;
  }

  /** Starts a daemon in the namespace with relay 0's VF (a tap is configured as the host end). */
  async daemon(lines: string[], vf: string | null = TAP_VF): Promise<DaemonProcess> {
    const d = await DaemonProcess.start(this.dir, `${this.tag}-${this.daemons.length}`, [
      ...(vf ? [`VIRTIOFWD_STATIC_VFS=(${vf}=0)`] : []),
      ...lines,
    ], { netns: this.ns.name });
    this.daemons.push(d);
    if (vf === TAP_VF) await this.ns.configure("vtap0", `${HOST}/30`);
    return d;
  }

  /** Host end receiving one TCP connection on port 5001: resolves to the bytes received (busybox nc
   * quits at stdin EOF, so its stdin is an open fifo). */
  receive(): Promise<string> {
    const fifo = `${this.dir}/nofin`;
    return this.ns.sh(`mkfifo ${fifo}; timeout 90 busybox nc -l -p 5001 3<>${fifo} <&3 | wc -c`)
      .then((r) => r.stdout.trim());
  }

  /** Host end sending the output of shell command `produce` to the guest's port 5002, retrying while
   * the guest is not listening yet; throws after 40 tries. `before`: shell commands to run first. */
  async sendToGuest(produce: string, what: string, before = ""): Promise<void> {
    const r = await this.ns.sh(
      `${before}for i in $(seq 40); do ${produce} | busybox nc ${GUEST} 5002 && exit 0; sleep 0.25; done; exit 1`,
    );
    assertEq(r.code, 0, `${what}: ${r.stderr}`);
  }

  guest(o: Omit<GuestOptions, "dir" | "initrd" | "socket" | "ip">): QemuGuest {
    const g = QemuGuest.start({ dir: this.dir, initrd: this.initrd, socket: this.socket, ip: `${GUEST}/30`, ...o });
    this.guests.push(g);
    return g;
  }

  /** Stops every guest and daemon (asserting the daemons' exit status), removes the namespace and dir. */
  async close(failed: boolean): Promise<void> {
    for (const g of this.guests) await g.stop();
    const codes: number[] = [];
    for (const d of this.daemons) codes.push(await d.stop());
    await this.ns.delete();
    await Deno.remove(this.dir, { recursive: true });
    if (!failed) assertEq(codes.every((c) => c === 0), true, `daemon exit statuses ${codes}`);
  }
}

async function e2e(name: string, fn: (run: E2eRun) => Promise<void>): Promise<void> {
  const run = await E2eRun.create(name);
  let failure: unknown = null;
  try {
    await fn(run);
  } catch (e) {
    const logs = [
      ...run.daemons.map((d, i) => `--- daemon ${i} log:\n${d.log.slice(-2000)}`),
      ...run.guests.map((g, i) => `--- guest ${i}: ${g.describe()}`),
    ].join("\n");
    failure = new Error(`${e instanceof Error ? e.message : e}\n${logs}`);
  }
  await run.close(failure !== null);
  if (failure) throw failure;
}

/** Guest side of "ping and TCP both ways": ping the host, send `mib` MiB, then receive 1 MiB on port 5002. */
const pingAndTcpScript = (mib = 1) => `
wait_peer ${HOST} 30 || exit 1
ping -c 3 -i 0.2 -W 1 ${HOST} || exit 1
dd if=/dev/zero bs=65536 count=${16 * mib} 2>/dev/null | nc ${HOST} 5001 || exit 1
say "READY"
n=$(listen_count 5002)
say "received $n bytes"
[ "$n" = ${MIB} ]
`;

/** Host side of pingAndTcpScript: receive on 5001 while the guest sends, then ping it and send to 5002. */
async function pingAndTcp(run: E2eRun, guest: QemuGuest, mib = 1): Promise<void> {
  const received = run.receive();
  await guest.waitSerial(/E2E: READY/, GUEST_TIMEOUT);
  assertEq(await received, String(mib * MIB), "bytes the host received from the guest over TCP");
  const ping = await run.ns.run(["busybox", "ping", "-c", "3", "-W", "2", GUEST]);
  assertEq(ping.code, 0, `host -> guest ping: ${ping.stdout}`);
  await run.sendToGuest("dd if=/dev/zero bs=65536 count=16 2>/dev/null", "host -> guest TCP");
  await guest.expectPass(GUEST_TIMEOUT);
}

Deno.test("e2e: QEMU as vhost-user client, ping and TCP both ways through vio4wd, counted in the relay", async () => {
  await e2e("qc", async (run) => {
    const d = await run.daemon([]);
    const guest = run.guest({ script: pingAndTcpScript() });
    await pingAndTcp(run, guest);
    const r = (await d.status()).find((s) => s.id === 0)!;
    // 1 MiB each way is at least 725 full-size TCP segments
    if (!(r.vf_to_vm.txPkts > 725 && r.vm_to_vf.txPkts > 725)) {
      throw new Error(`relay 0 counters: ${JSON.stringify(r)}`);
    }
  });
});

Deno.test("e2e: QEMU as vhost-user server (vio4wd client mode), ping and TCP both ways", async () => {
  await e2e("qs", async (run) => {
    const guest = run.guest({ script: pingAndTcpScript(), server: true });
    await until("QEMU's socket", () => Deno.stat(run.socket).then(() => true, () => false), 10_000);
    await run.daemon(["VIRTIOFWD_VHOST_CLIENT=y"]);
    await pingAndTcp(run, guest);
  });
});

Deno.test("e2e: vio4wd restarted under a running guest (client mode): traffic resumes within 3 s, no guest restart", async () => {
  await e2e("rs", async (run) => {
    // The guest pings the host every 0.2 s until the host, after the restart, connects to it over
    // TCP; then the host must still answer. (Pings sent while the daemon is down wait in the virtio
    // ring and may all be answered: the guest need not see a loss.)
    const guest = run.guest({
      server: true,
      script: `
wait_peer ${HOST} 30 || exit 1
ping -i 0.2 -W 1 ${HOST} > /tmp/ping.log 2>&1 &
say "RECHECK start"
n=$(listen_count 5002)
kill -INT $! ; sleep 0.5
say "RECHECK pings during the restart: $(grep -E 'transmitted' /tmp/ping.log)"
ping -c 3 -i 0.2 -W 1 ${HOST} >/dev/null || exit 1
say "RECHECK ok, $n bytes after the restart"
[ "$n" = 4 ]
`,
    });
    await until("QEMU's socket", () => Deno.stat(run.socket).then(() => true, () => false), 10_000);
    const config = ["VIRTIOFWD_VHOST_CLIENT=y"];
    const first = await run.daemon(config);
    await guest.waitSerial(/E2E: RECHECK start/, GUEST_TIMEOUT);
    await new Promise((r) => setTimeout(r, 1000));
    const stopped = Date.now();
    assertEq(await first.stop(), 0, "first daemon's exit status");
    run.daemons.splice(run.daemons.indexOf(first), 1);
    const started = Date.now();
    await run.daemon(config);
    await run.ns.firstReply(GUEST, 10_000);
    const resumed = Date.now() - started;
    console.log(
      `e2e restart: first guest reply ${resumed} ms after the new daemon was started (${
        Date.now() - stopped
      } ms after the old one was told to stop)`,
    );
    if (resumed > 3000) throw new Error(`traffic resumed ${resumed} ms after the restart (limit 3000 ms)`);
    await run.sendToGuest("printf done", "host -> guest TCP after the restart");
    await guest.expectPass(GUEST_TIMEOUT);
    assertEq(guest.serial().split("E2E: init started").length - 1, 1, "guest boots (no guest restart)");
    console.log(
      `e2e restart, guest side: ${guest.serial().match(/RECHECK pings during the restart: ([^\n]*) uptime/)?.[1]}`,
    );
  });
});

Deno.test("e2e: 2-queue multiqueue after 'ethtool -L combined 2': traffic on both queues each way", async () => {
  await e2e("mq", async (run) => {
    const d = await run.daemon([]);
    // TCP connection attempts to closed ports: every attempt is a new flow (new source port), so
    // the guest's flow hash spreads its SYNs over both TX queues and vio4wd's spreads the host's
    // SYNs over both RX queues (16 flows each: all on one queue has odds of 2^-15).
    const guest = run.guest({
      queues: 2,
      script: `
ethtool -L eth0 combined 2 || exit 1
wait_peer ${HOST} 30 || exit 1
for p in $(seq 7000 7015); do nc -w 1 ${HOST} $p </dev/null; done
say "READY"
n=$(listen_count 5002)
ethtool -S eth0 > /tmp/stats
grep -E '(rx|tx)_queue_[01]_packets' /tmp/stats
for q in rx_queue_0 rx_queue_1 tx_queue_0 tx_queue_1; do
  v=$(grep " \${q}_packets:" /tmp/stats | tr -d ' ' | cut -d: -f2)
  say "\${q}_packets=$v"
  [ "\${v:-0}" -gt 0 ] || exit 1
done
`,
    });
    await d.waitLog(/relay 0: VM connected \(2 queue pair/, GUEST_TIMEOUT);
    await guest.waitSerial(/E2E: READY/, GUEST_TIMEOUT);
    await run.sendToGuest(
      "echo done",
      "host -> guest flows",
      `for p in $(seq 7000 7015); do busybox nc -w 1 ${GUEST} $p </dev/null; done; `,
    );
    await guest.expectPass(GUEST_TIMEOUT);
  });
});

Deno.test("e2e: a VF attached with 'vio4wd port add' while the guest waits for the network", async () => {
  await e2e("pa", async (run) => {
    const ep = `ipc://${run.dir}/port_control`;
    const d = await run.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`], null);
    const guest = run.guest({
      script: `
wait_peer ${HOST} 60 || exit 1
ping -c 3 -i 0.2 -W 1 ${HOST}
`,
    });
    await d.waitLog(/relay 0: VM connected/, GUEST_TIMEOUT);
    await guest.waitSerial(/E2E: eth0 up/, GUEST_TIMEOUT);
    await new Promise((r) => setTimeout(r, 2000)); // the guest is pinging into nothing
    const add = await runVio4wd(["port", "add", "--virtio-id", "0", "--device", TAP_VF, "--zmq-ep", ep]);
    assertEq(add.code, 0, `vio4wd port add: ${add.stdout}${add.stderr}`);
    await run.ns.configure("vtap0", `${HOST}/30`);
    await guest.expectPass(GUEST_TIMEOUT);
    const tries = Number(guest.serial().match(/peer \S+ answered after (\d+) tries/)?.[1]);
    if (!(tries >= 2)) throw new Error(`the guest did not wait for the VF (answered after ${tries} tries)`);
  });
});

/**
 * guest -> vio4wd -> memif VF (no offloads) -> testpmd io forwarding -> tap in the namespace: the
 * guest's TSO packets must be segmented, and their checksums completed, by vio4wd.
 */
async function tsoOverMemif(run: E2eRun, ipv6: boolean): Promise<void> {
  const vfSock = `${run.dir}/vf.sock`;
  const d = await run.daemon(["VIRTIOFWD_TSO=y"], `net_memif0,role=server,socket=${vfSock}`);
  let wire: TestPmd | null = null;
  try {
    wire = await TestPmd.start({
      prefix: `${run.tag}-w`,
      vdevs: [`net_memif1,role=client,socket=${vfSock}`, TAP_VF],
      netns: run.ns.name,
      appArgs: ["--forward-mode=io"],
    });
    await wire.send("start");
    await run.ns.configure("vtap0", `${HOST}/30`);
    let guest: QemuGuest;
    if (ipv6) {
      const add = await run.ns.run(["ip", "-6", "addr", "add", "fd00::1/64", "dev", "vtap0", "nodad"]);
      assertEq(add.code, 0, `IPv6 address on the tap: ${add.stderr}`);
      const received = run.receive();
      guest = run.guest({
        script: `
echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
ip -6 addr add fd00::2/64 dev eth0 || exit 1
wait_peer fd00::1 30 || exit 1
dd if=/dev/zero bs=65536 count=64 2>/dev/null | nc fd00::1 5001
`,
      });
      await guest.expectPass(GUEST_TIMEOUT);
      assertEq(await received, String(4 * MIB), "bytes the host received over TCP/IPv6");
    } else {
      guest = run.guest({ script: pingAndTcpScript(4) });
      await pingAndTcp(run, guest, 4);
    }
    const r = (await d.status()).find((s) => s.id === 0)!;
    // the guest handed over packets of several MSS: more went to the VF than came from the VM
    if (!(r.vm_to_vf.txPkts > r.vm_to_vf.rxPkts && r.vm_to_vf.dropFullPkts === 0)) {
      throw new Error(`no software segmentation seen: vm_to_vf ${JSON.stringify(r.vm_to_vf)}`);
    }
    console.log(
      `e2e tso (${
        ipv6 ? "IPv6" : "IPv4"
      }): VM->VF ${r.vm_to_vf.rxPkts} packets from the guest became ${r.vm_to_vf.txPkts} on the VF`,
    );
  } finally {
    await d.stop(); // before its memif peer leaves (see withDaemon in tests/helpers.ts)
    await wire?.close();
  }
}

Deno.test("e2e: TSO guest over a VF without offloads: vio4wd segments TCP/IPv4 and checksums in software", async () => {
  await e2e("tso4", (run) => tsoOverMemif(run, false));
});

Deno.test("e2e: TSO guest over a VF without offloads: vio4wd segments TCP/IPv6 in software", async () => {
  await e2e("tso6", (run) => tsoOverMemif(run, true));
});
