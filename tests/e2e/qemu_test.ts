/**
 * End to end with a real Linux guest: QEMU (TCG) with virtio-net over vhost-user to
 * `vio4wd daemon`, whose VF is a net_tap device in a network namespace the test creates. The
 * guest runs one shell script per case (tests/rigs/guest/init.sh); the host side of its traffic
 * runs in the namespace with busybox.
 */

import {
  type DaemonOptions,
  type DaemonProcess,
  FAULTS_SHIM,
  num,
  type RelayState,
  runVio4wd,
  show,
  until,
} from "../rigs/daemon_process.ts";
import type { NetNs } from "../rigs/netns.ts";
import { buildInitramfs, GUEST_MAC, guestKernel, type GuestOptions, monitorCommand, QemuGuest } from "../rigs/qemu.ts";
import { Libvirt, virsh } from "../rigs/libvirt.ts";
import { assert, assertEq } from "../rigs/assert.ts";
import { memifPair } from "../rigs/devices.ts";
import { World } from "../rigs/world.ts";
import { pingEvery, vethVf } from "../rigs/veth_vf.ts";
import { firstFailure } from "../rigs/first_failure.ts";
import { errorText } from "../../src/common/log.ts";

const HOST = "10.200.0.1";
const GUEST = "10.200.0.2";
/** The VF stand-in: a tap interface with a fixed MAC, so the guest's ARP entry survives a restart. */
const TAP_VF = "net_tap0,iface=vtap0,mac=02:00:00:c0:ff:ee";
const MIB = 1 << 20;
/** A guest boots to /init in about 2 s under TCG; a whole case takes 10-30 s. */
const GUEST_TIMEOUT = 120_000;

/** One case's world (see World) plus a namespace, the initramfs, and the host ends of its traffic. */
class E2eRun implements AsyncDisposable {
  readonly daemons: DaemonProcess[] = [];
  readonly guests: QemuGuest[] = [];
  private constructor(readonly world: World, readonly ns: NetNs, readonly initrd: string) {}

  static async create(name: string): Promise<E2eRun> {
    const world = await World.create(name);
    try {
      const initrd = `${world.dir}/initrd.gz`;
      await buildInitramfs(initrd);
      return new E2eRun(world, await world.netns(), initrd);
    } catch (e) {
      await world[Symbol.asyncDispose]();
      throw e;
    }
  }

  get dir(): string {
    return this.world.dir;
  }

  get socket(): string {
    return this.world.vmSocket(0);
  }

  /** Starts a daemon in the namespace with relay 0's VF (a tap is configured as the host end). */
  async daemon(lines: string[], vf: string | null = TAP_VF, options: DaemonOptions = {}): Promise<DaemonProcess> {
    const d = await this.world.daemon([...(vf ? [`VIRTIOFWD_STATIC_VFS=(${vf}=0)`] : []), ...lines], {
      ...options,
      netns: this.ns.name,
    });
    this.daemons.push(d);
    if (vf === TAP_VF) await this.ns.configure("vtap0", `${HOST}/30`);
    return d;
  }

  /** Host end receiving one TCP connection on port 5001: resolves to what `sink` makes of it (the
   * bytes received by default; busybox nc quits at stdin EOF, so its stdin is an open fifo). */
  receive(sink = "wc -c"): Promise<string> {
    const fifo = `${this.dir}/nofin`;
    return this.ns.sh(`mkfifo ${fifo}; timeout 90 busybox nc -l -p 5001 3<>${fifo} <&3 | ${sink}`)
      .then((r) => r.stdout.trim());
  }

  /** Host end sending the output of shell command `produce` to the guest's `port` (5002), retrying
   * while the guest is not listening yet; throws after 40 tries. `before`: shell commands to run first. */
  async sendToGuest(produce: string, what: string, before = "", port = 5002): Promise<void> {
    const r = await this.ns.sh(
      `${before}for i in $(seq 40); do ${produce} | busybox nc ${GUEST} ${port} && exit 0; sleep 0.25; done; exit 1`,
    );
    assertEq(r.code, 0, `${what}: ${r.stderr}`);
  }

  /** Relay 0 as `d` reports it while the guest holds (`hold` in its script), then lets it go on. */
  async relayWhileHeld(d: DaemonProcess, guest: QemuGuest): Promise<RelayState> {
    await guest.waitSerial(/E2E: HOLD/, GUEST_TIMEOUT);
    const r = (await d.status()).find((s) => s.id === 0);
    await this.sendToGuest("printf go", "releasing the guest", "", 5003);
    if (!r?.vmToVf.active) throw new Error(`relay 0 has no VM while the guest holds: ${show(r)}`);
    return r;
  }

  guest(o: Omit<GuestOptions, "dir" | "initrd" | "socket" | "ip">): QemuGuest {
    const g = QemuGuest.start({ dir: this.dir, initrd: this.initrd, socket: this.socket, ip: `${GUEST}/30`, ...o });
    this.guests.push(this.world.own(g));
    return g;
  }

  /** The daemons' logs and the guests' state, for a failure message. */
  describe(): string {
    return [
      ...this.daemons.map((d, i) => `--- daemon ${i} log:\n${d.log.slice(-2000)}`),
      ...this.guests.map((g, i) => `--- guest ${i}: ${g.describe()}`),
    ].join("\n");
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.world[Symbol.asyncDispose]();
  }
}

/** Runs one case in its own run; a failure (the first: see firstFailure) carries the daemons' logs and the guests' state. */
async function e2e(name: string, fn: (run: E2eRun) => Promise<void>): Promise<void> {
  const run = await E2eRun.create(name);
  await firstFailure(run, fn, () => run.describe());
}

/** Guest script lines that wait, connected, until the host has read the relay (E2eRun.relayWhileHeld). */
const HOLD = `say "HOLD"\nlisten_count 5003 >/dev/null`;

/**
 * Guest side of "ping and TCP both ways": ping the host, send `mib` MiB, then receive 1 MiB on
 * port 5002; then hold while the host reads the relay's counters.
 */
const pingAndTcpScript = (mib = 1) => `
wait_peer ${HOST} 30 || exit 1
ping -c 3 -i 0.2 -W 1 ${HOST} || exit 1
dd if=/dev/zero bs=65536 count=${16 * mib} 2>/dev/null | nc ${HOST} 5001 || exit 1
say "READY"
n=$(listen_count 5002)
say "received $n bytes"
${HOLD}
[ "$n" = ${MIB} ]
`;

/**
 * Host side of pingAndTcpScript: receive on 5001 while the guest sends, then ping it and send to
 * 5002; returns relay 0 as `d` reports it while the guest still holds.
 */
async function pingAndTcp(run: E2eRun, guest: QemuGuest, d: DaemonProcess, mib = 1): Promise<RelayState> {
  const received = run.receive();
  await guest.waitSerial(/E2E: READY/, GUEST_TIMEOUT);
  assertEq(await received, String(mib * MIB), "bytes the host received from the guest over TCP");
  const ping = await run.ns.run(["busybox", "ping", "-c", "3", "-W", "2", GUEST]);
  assertEq(ping.code, 0, `host -> guest ping: ${ping.stdout}`);
  await run.sendToGuest("dd if=/dev/zero bs=65536 count=16 2>/dev/null", "host -> guest TCP");
  const r = await run.relayWhileHeld(d, guest);
  await guest.expectPass(GUEST_TIMEOUT);
  return r;
}

Deno.test("e2e: QEMU as vhost-user client, ping and TCP both ways through vio4wd, counted in the relay", async () => {
  await e2e("qc", async (run) => {
    const d = await run.daemon([]);
    const guest = run.guest({ script: pingAndTcpScript() });
    const r = await pingAndTcp(run, guest, d);
    // 1 MiB each way is at least 725 full-size TCP segments
    if (!(num(r.vfToVm.pktsTxToVm) > 725 && num(r.vmToVf.pktsTxToVf) > 725)) {
      throw new Error(`relay 0 counters: ${show(r)}`);
    }
  });
});

/** VirtIO modes a guest can be given, with the feature bits it must then have negotiated. */
const VIRTIO_MODES = [
  { mode: "legacy only", device: "disable-legacy=off,disable-modern=on", version1: false, packed: false },
  { mode: "VirtIO 1.0 only", device: "disable-legacy=on,disable-modern=off", version1: true, packed: false },
  { mode: "packed virtqueues", device: "disable-legacy=on,disable-modern=off,packed=on", version1: true, packed: true },
];
const VIRTIO_F_VERSION_1 = 32, VIRTIO_F_RING_PACKED = 34, VIRTIO_NET_F_HOST_UFO = 14;

for (const m of VIRTIO_MODES) {
  Deno.test(`e2e: ${m.mode} (guest RAM on hugetlbfs): the guest negotiates it, ping and TCP both ways`, async () => {
    await e2e(`vm-${m.packed ? "packed" : m.version1 ? "modern" : "legacy"}`, async (run) => {
      const d = await run.daemon([]);
      const features = `say "features $(cat /sys/bus/virtio/devices/virtio0/features)"`;
      const guest = run.guest({
        script: `${features}\n${pingAndTcpScript()}`,
        device: m.device,
        hugetlbfs: "/dev/hugepages",
      });
      await pingAndTcp(run, guest, d);
      // the guest's own view: one character per feature bit, bit 0 first
      const bits = (await guest.waitSerial(/E2E: features ([01]+)/, GUEST_TIMEOUT))[1];
      assertEq(bits[VIRTIO_F_VERSION_1] === "1", m.version1, `VIRTIO_F_VERSION_1 in ${bits}`);
      assertEq(bits[VIRTIO_F_RING_PACKED] === "1", m.packed, `VIRTIO_F_RING_PACKED in ${bits}`);
      // no UFO: DPDK would cut a UFO datagram into fragments no VF takes (they vanished, uncounted)
      assertEq(bits[VIRTIO_NET_F_HOST_UFO], "0", `VIRTIO_NET_F_HOST_UFO in ${bits}`);
    });
  });
}

for (const client of [false, true]) {
  for (const queues of [1, 2]) {
    const mode = client ? "client mode (QEMU listens)" : "server mode";
    Deno.test(`e2e: the QEMU arguments 'vio4wd vm-config --qemu' prints, ${mode}, ${queues} queue pair(s), start a guest that pings and talks TCP both ways`, async () => {
      await e2e(`vmc-${client ? "c" : "s"}${queues}`, async (run) => {
        const conf = `${run.dir}/vm-config.conf`;
        Deno.writeTextFileSync(
          conf,
          `VIRTIOFWD_SOCKET_DIR=${run.world.sockDir}\n${client ? "VIRTIOFWD_VHOST_CLIENT=y\n" : ""}`,
        );
        const printed = await runVio4wd([
          "vm-config",
          "--qemu",
          "--config",
          conf,
          "--queues",
          String(queues),
          "--memory",
          "256",
          "0",
        ]);
        assertEq(printed.code, 0, `vm-config: ${printed.stderr}`);
        assert(printed.stdout.includes(`path=${run.socket}`), `vm-config names relay 0's socket: ${printed.stdout}`);
        const config = client ? ["VIRTIOFWD_VHOST_CLIENT=y"] : [];
        let d: DaemonProcess, guest: QemuGuest;
        if (client) {
          guest = run.guest({ script: pingAndTcpScript(), vmConfig: printed.stdout });
          await until("QEMU's socket", () => Deno.stat(run.socket).then(() => true, () => false), 10_000);
          d = await run.daemon(config);
        } else {
          d = await run.daemon(config);
          guest = run.guest({ script: pingAndTcpScript(), vmConfig: printed.stdout });
        }
        const r = await pingAndTcp(run, guest, d);
        assertEq(r.vmToVf.active, true, "the VM is on relay 0");
      });
    });
  }
}

/** Seconds per ping in the migration test, and the longest silence it allows. */
const PING_EVERY = 0.2, MAX_PING_GAP_S = 2;
/** Replies in busybox ping's output, and the longest run of missing ones in seconds. */
function pingSilence(output: string): { replies: number; worst: number } {
  const seqs = [...output.matchAll(/seq=(\d+)/g)].map((m) => Number(m[1]));
  return { replies: seqs.length, worst: Math.max(0, ...seqs.slice(1).map((q, i) => q - seqs[i])) * PING_EVERY };
}

/** A guest on relay 0 (host "a") and an identical QEMU waiting with -incoming on relay 1 (host
 * "b"), the daemon, the host receiving the guest's 8 MiB on 5001 (its md5), the guest's md5 of
 * what it sends; returns once the guest is about to send (paced over about 7 s). */
async function migrationPair(run: E2eRun, client: boolean) {
  const dir = run.dir;
  const daemon = async () => {
    // relays 0 and 1 (the manual's "relay 1 and 2") with tap VFs bridged to the host end in the namespace
    const d = await run.daemon([
      "VIRTIOFWD_STATIC_VFS=(net_tap0,iface=vtap0,mac=02:00:00:c0:ff:e0=0 net_tap1,iface=vtap1,mac=02:00:00:c0:ff:e1=1)",
      ...(client ? ["VIRTIOFWD_VHOST_CLIENT=y"] : []),
    ], null);
    const bridge = await run.ns.sh(
      "ip link add br0 type bridge && for i in vtap0 vtap1; do ip link set $i master br0 && ip link set $i up; done && " +
        `ip addr add ${HOST}/30 dev br0 && ip link set br0 up`,
    );
    assertEq(bridge.code, 0, `bridge: ${bridge.stderr}`);
    return d;
  };
  // per "host", a directory with the same socket name linked to its relay's socket (server
  // mode); in client mode each QEMU listens on its relay's socket path itself
  const socketOf = (host: string, relay: number) => client ? run.world.vmSocket(relay) : `${dir}/${host}/vm.sock`;
  for (const [host, relay] of [["a", 0], ["b", 1]] as const) {
    Deno.mkdirSync(`${dir}/${host}`);
    if (!client) Deno.symlinkSync(run.world.vmSocket(relay), socketOf(host, relay));
  }
  const d = client ? null : await daemon();
  const script = `
wait_peer ${HOST} 30 || exit 1
head -c 8388608 /dev/urandom > /tmp/data
say "md5 $(md5sum /tmp/data | cut -d' ' -f1)"
say "MIGRATE"
i=0
while [ $i -lt 64 ]; do dd if=/tmp/data bs=131072 skip=$i count=1 2>/dev/null; sleep 0.1; i=$((i + 1)); done | nc ${HOST} 5001 || exit 1
say "SENT"
sleep 4
`;
  const guest = (host: string, relay: number, extra: string[]) => {
    const g = QemuGuest.start({
      dir: `${dir}/${host}`,
      initrd: run.initrd,
      socket: socketOf(host, relay),
      server: client,
      ip: `${GUEST}/30`,
      hugetlbfs: "/dev/hugepages",
      script,
      extraArgs: ["-monitor", `unix:${dir}/${host}/monitor,server=on,wait=off`, ...extra],
    });
    run.guests.push(run.world.own(g));
    return g;
  };
  const a = guest("a", 0, []);
  const b = guest("b", 1, ["-incoming", `unix:${dir}/migration.sock`]);
  if (client) {
    for (const relay of [0, 1]) {
      await until(
        "QEMU's socket",
        () => Deno.stat(run.world.vmSocket(relay)).then(() => true, () => false),
        10_000,
      );
    }
  }
  const dd = d ?? await daemon();
  const received = run.receive("md5sum");
  const md5 = (await a.waitSerial(/E2E: md5 ([0-9a-f]{32})/, GUEST_TIMEOUT))[1];
  await a.waitSerial(/E2E: MIGRATE/, GUEST_TIMEOUT);
  return { dir, a, b, d: dd, received, md5 };
}

for (const client of [false, true]) {
  const how = client
    ? "vio4wd in client mode (each QEMU serves its relay's socket)"
    : "through per-host socket symlinks";
  Deno.test(`e2e: live migration from relay 1 to relay 2, ${how}: completes, the MAC is announced on the new VF within 1 s, pings resume within 2 s, a TCP transfer across the switch-over arrives intact, counters move over`, async () => {
    await e2e(client ? "migc" : "mig", async (run) => {
      const { dir, b, d: dd, received, md5 } = await migrationPair(run, client);
      // pings from before the switch-over to well after it
      const pings = run.ns.sh(`timeout 10 busybox ping -i ${PING_EVERY} -W 1 ${GUEST}`);
      await new Promise((r) => setTimeout(r, 1000)); // the transfer is under way
      // the guest's own announce: its MAC as the source, ARP or RARP
      const announce = (await run.ns.startUntil(
        [
          "timeout",
          "30",
          "tcpdump",
          "-l",
          "-n",
          "-tt",
          "-e",
          "-i",
          "vtap1",
          "-c",
          "1",
          `ether src ${GUEST_MAC} and (arp or rarp)`,
        ],
        /listening on/,
      )).done;
      let before: RelayState | undefined;
      await until("the guest on the first relay", async () => {
        before = (await dd.status()).find((r) => r.id === 0);
        return before?.vmToVf.active === true;
      }, 5_000).catch((e) => {
        throw new Error(`${errorText(e)}: ${show(before)}`);
      });
      const started = Date.now();
      const reply = await monitorCommand(`${dir}/a/monitor`, `migrate -d unix:${dir}/migration.sock`);
      assert(!/error/i.test(reply), `migrate: ${reply}`);
      let status = "";
      await until("migration completed", async () => {
        status = (await monitorCommand(`${dir}/a/monitor`, "info migrate")).match(/Migration status: (\S+)/)?.[1] ?? "";
        if (status === "failed" || status === "cancelled") throw new Error(`migration ${status}`);
        return status === "completed";
      }, 60_000);
      const completed = Date.now();
      console.log(`e2e migration: completed in ${completed - started} ms`);

      // the announce (RARP from rte_vhost, or the guest's gratuitous ARP) on the new relay's VF
      const seen = await announce;
      const at = Number(seen.stdout.trim().split(/\s+/)[0]) * 1000;
      assert(at > 0, `no announce on vtap1: ${seen.stdout}${seen.stderr}`);
      console.log(
        `e2e migration: announce ${Math.round(at - completed)} ms after completion was seen: ${seen.stdout.trim()}`,
      );
      assert(at - completed <= 1000, `announce ${Math.round(at - completed)} ms after the switch-over`);

      // the transfer crossed the switch-over intact: dirty pages vio4wd wrote reached the destination
      await b.waitSerial(/E2E: SENT/, GUEST_TIMEOUT);
      assertEq((await received).split(/\s+/)[0], md5, "md5 of the 8 MiB the host received");
      // counters, while the guest still runs: the new relay carries it, the old one no longer moves
      const relays = async () => new Map((await dd.status()).map((r) => [r.id, r]));
      const x = await relays();
      await new Promise((r) => setTimeout(r, 1000));
      const y = await relays();
      assert(num(y.get(1)?.vmToVf.pktsTxToVf) > 0, `relay 1 carried nothing: ${show(y.get(1))}`);
      const moved = (m: Map<number, RelayState>) =>
        m.get(0) ? num(m.get(0)!.vmToVf.pktsRxFromVm) + num(m.get(0)!.vfToVm.pktsTxToVm) : 0;
      assertEq(moved(y), moved(x), "relay 0 moves nothing after the migration");
      assert(
        dd.log.includes("relay 0: VHOST_F_LOG_ALL set, live migration is being initiated"),
        "migration start logged",
      );
      assert(/relay 1: VM connected/.test(dd.log), "the VM's arrival on relay 1 logged");
      await b.expectPass(GUEST_TIMEOUT);

      // pings: no silence longer than MAX_PING_GAP_S
      const { replies, worst } = pingSilence((await pings).stdout);
      console.log(`e2e migration: ${replies} ping replies, longest silence ${worst.toFixed(1)} s`);
      assert(replies > 20 && worst <= MAX_PING_GAP_S, `pings: ${replies} replies, longest silence ${worst} s`);
    });
  });
}

Deno.test("e2e: a live migration cancelled half-way: the guest keeps working on relay 1 (transfer intact, pings answered), relay 2 carries nothing", async () => {
  await e2e("migx", async (run) => {
    const { dir, a, d, received, md5 } = await migrationPair(run, false);
    const pings = run.ns.sh(`timeout 8 busybox ping -i ${PING_EVERY} -W 1 ${GUEST}`);
    const monitor = (cmd: string) => monitorCommand(`${dir}/a/monitor`, cmd);
    // slow enough (1 MiB/s for 256 MiB of RAM) to be caught half-way
    await monitor("migrate_set_parameter max-bandwidth 1M"); // HMP: MiB/s
    await monitor(`migrate -d unix:${dir}/migration.sock`);
    await new Promise((r) => setTimeout(r, 1500));
    assertEq((await monitor("info migrate")).match(/Migration status: (\S+)/)?.[1], "active", "migration under way");
    assert(d.log.includes("relay 0: VHOST_F_LOG_ALL set, live migration is being initiated"), "migration start logged");
    await monitor("migrate_cancel");
    await until(
      "migration cancelled",
      async () => /Migration status: cancelled/.test(await monitor("info migrate")),
      10_000,
    );
    // the guest goes on sending through relay 0: the transfer completes, intact
    await a.waitSerial(/E2E: SENT/, GUEST_TIMEOUT);
    assertEq((await received).split(/\s+/)[0], md5, "md5 of the 8 MiB the host received");
    const x = (await d.status()).find((r) => r.id === 0)!;
    assert(x.vmToVf.active && num(x.vmToVf.pktsTxToVf) > 5000, `relay 0 carries the guest: ${show(x)}`);
    const r1 = (await d.status()).find((r) => r.id === 1);
    assertEq(num(r1?.vmToVf.pktsRxFromVm) + num(r1?.vfToVm.pktsTxToVm), 0, "relay 1 carried nothing");
    await a.expectPass(GUEST_TIMEOUT);
    const { replies, worst } = pingSilence((await pings).stdout);
    assert(replies > 20 && worst <= MAX_PING_GAP_S, `pings: ${replies} replies, longest silence ${worst} s`);
  });
});

Deno.test("e2e: QEMU as vhost-user server (vio4wd client mode), ping and TCP both ways", async () => {
  await e2e("qs", async (run) => {
    const guest = run.guest({ script: pingAndTcpScript(), server: true });
    await until("QEMU's socket", () => Deno.stat(run.socket).then(() => true, () => false), 10_000);
    await pingAndTcp(run, guest, await run.daemon(["VIRTIOFWD_VHOST_CLIENT=y"]));
  });
});

/**
 * Guest side of a daemon restart: pings the host every 0.2 s until the host, after the restart,
 * connects to it over TCP; then the host must still answer. (Pings sent while the daemon is down
 * wait in the virtio ring and may all be answered: the guest need not see a loss.)
 */
const RESTART_SCRIPT = `
wait_peer ${HOST} 30 || exit 1
ping -i 0.2 -W 1 ${HOST} > /tmp/ping.log 2>&1 &
say "RECHECK start"
n=$(listen_count 5002)
kill -INT $! ; sleep 0.5
say "RECHECK pings during the restart: $(grep -E 'transmitted' /tmp/ping.log)"
ping -c 3 -i 0.2 -W 1 ${HOST} >/dev/null || exit 1
say "RECHECK ok, $n bytes after the restart"
[ "$n" = 4 ]
`;

for (const mode of ["client", "server"] as const) {
  const how = mode === "client"
    ? "client mode: QEMU serves the socket"
    : "server mode: QEMU reconnects with reconnect=1";
  Deno.test(`e2e: vio4wd restarted under a running guest (${how}): traffic resumes within 3 s, no guest restart`, async () => {
    await e2e(`r${mode[0]}`, async (run) => {
      const config = mode === "client" ? ["VIRTIOFWD_VHOST_CLIENT=y"] : [];
      let first: DaemonProcess, guest: QemuGuest;
      if (mode === "client") {
        guest = run.guest({ server: true, script: RESTART_SCRIPT });
        await until("QEMU's socket", () => Deno.stat(run.socket).then(() => true, () => false), 10_000);
        first = await run.daemon(config);
      } else {
        first = await run.daemon(config); // the daemon makes the socket, QEMU connects to it
        guest = run.guest({ script: RESTART_SCRIPT });
      }
      await guest.waitSerial(/E2E: RECHECK start/, GUEST_TIMEOUT);
      await new Promise((r) => setTimeout(r, 1000));
      const stopped = Date.now();
      assertEq(await first.stop(), 0, "first daemon's exit status");
      const started = Date.now();
      await run.daemon(config);
      await run.ns.firstReply(GUEST, 10_000);
      const resumed = Date.now() - started;
      console.log(
        `e2e restart (${mode} mode): first guest reply ${resumed} ms after the new daemon was started (${
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
}

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
    await d.untilVm(0, GUEST_TIMEOUT, 2);
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
    await d.untilVm(0, GUEST_TIMEOUT);
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
/**
 * The guest of the hot-upgrade cases: reads eth0's carrier_changes before and after (equal),
 * receives a TCP transfer on port 5002 and says its md5, and says how many packets it sent.
 */
const UPGRADE_SCRIPT = `
wait_peer ${HOST} 30 || exit 1
before=$(cat /sys/class/net/eth0/carrier_changes)
say "READY"
mkfifo /tmp/nofin
sum=$(timeout 120 nc -l -p 5002 3<>/tmp/nofin <&3 | md5sum | cut -d' ' -f1)
say "md5 $sum"
listen_count 5003 >/dev/null
after=$(cat /sys/class/net/eth0/carrier_changes)
say "carrier_changes $before $after"
say "tx_packets $(cat /sys/class/net/eth0/statistics/tx_packets)"
listen_count 5004 >/dev/null
[ "$before" = "$after" ]
`;

/**
 * A hot upgrade under a QEMU guest (TCG): the VF an AF_PACKET socket on a veth pair (one end the
 * host's, in the namespace), which the old daemon closes and the new one opens. The host pings the
 * guest every 1 ms and sends it 8 MiB over TCP while `vio4wd upgrade` runs.
 */
async function upgradeUnderGuest(run: E2eRun, o: { server: boolean; queues: number; packed: boolean }) {
  const vf = await vethVf(run.ns, `${HOST}/30`);
  const monitor = `${run.dir}/monitor`;
  const guest = run.guest({
    script: UPGRADE_SCRIPT,
    server: o.server,
    queues: o.queues,
    ...(o.packed ? { device: "packed=on" } : {}),
    extraArgs: ["-monitor", `unix:${monitor},server=on,wait=off`],
  });
  if (o.server) await until("QEMU's socket", () => Deno.stat(run.socket).then(() => true, () => false), 10_000);
  const d = await run.daemon(
    o.server ? ["VIRTIOFWD_VHOST_CLIENT=y"] : [],
    vf,
  );
  await guest.waitSerial(/E2E: READY/, GUEST_TIMEOUT);
  await d.untilVm(0, 10_000, o.queues);

  // refused while a live migration runs (dirty logging), done once it is cancelled
  await monitorCommand(monitor, "migrate_set_parameter max-bandwidth 1M");
  await monitorCommand(monitor, `migrate -d "exec:cat > /dev/null"`);
  await until("dirty logging on", async () => /active/.test(await monitorCommand(monitor, "info migrate")));
  const refused = await d.upgrade();
  assertEq(refused.code, 1, `the upgrade during a migration: ${JSON.stringify(refused.result)}`);
  assert(/relay 0 .*live migration/.test(refused.result.error ?? ""), `why: ${refused.result.error}`);
  assert(d.alive, "the daemon runs on after the refusal");
  await monitorCommand(monitor, "migrate_cancel");
  await until("migration cancelled", async () => /cancelled/.test(await monitorCommand(monitor, "info migrate")));

  const data = `${run.dir}/data`;
  const sh = await run.ns.sh(`head -c ${8 * MIB} /dev/urandom > ${data} && md5sum < ${data}`);
  const md5 = sh.stdout.split(/\s+/)[0];
  const every = 0.001, count = 3000;
  const ping = pingEvery(run.ns, GUEST, every, count);
  await new Promise((r) => setTimeout(r, 700));
  const sent = run.sendToGuest(`cat ${data}`, "8 MiB to the guest");
  await new Promise((r) => setTimeout(r, 300));
  const up = await d.upgrade();
  assert(up.code === 0 && up.result.ok, `the upgrade: ${JSON.stringify(up.result)}\n${up.stderr}`);
  assertEq(up.oldExit, 0, "the old daemon's exit status");
  const got = await ping;
  await sent;
  const gap = up.result.relays?.find((r) => r.relay === 0);
  console.log(
    `e2e hot upgrade (${o.server ? "vio4wd client" : "vio4wd server"} mode, ${o.queues} queue pair(s), ` +
      `${
        o.packed ? "packed" : "split"
      }): relay 0's gap ${gap?.gapMs} ms (VF ${gap?.vfMs} ms, closing it ${gap?.vfCloseMs} ms), whole upgrade ` +
      `${up.result.totalMs} ms; ${got.replies.length}/${count} pings answered, longest silence ${got.longest_silence_ms} ms`,
  );
  const twice = got.replies.filter((seq, i) => got.replies.indexOf(seq) !== i);
  // A guest on packed rings answers a ping twice now and then without any upgrade (2-9 in 3000,
  // in about half the runs, with the relay's counters showing each request delivered once: the
  // guest's side, QEMU 7.2 under TCG); there the relay's exact accounting below speaks instead.
  if (!o.packed) assertEq(got.dups, 0, `no ping answered twice (twice: ${twice.join(", ")})`);
  assert(got.longest_silence_ms < 50, `longest silence ${got.longest_silence_ms} ms (under 50)`);
  assertEq((await guest.waitSerial(/E2E: md5 ([0-9a-f]+)/, GUEST_TIMEOUT))[1], md5, "md5 of the 8 MiB the guest got");
  await run.sendToGuest("printf go", "releasing the guest", "", 5003);
  const txPackets = Number((await guest.waitSerial(/E2E: tx_packets (\d+)/, GUEST_TIMEOUT))[1]);
  // the counters went on in the new daemon: everything the guest ever sent, counted once
  const r = (await d.status()).find((x) => x.id === 0);
  assertEq(num(r?.vmToVf.pktsRxFromVm), txPackets, "packets the relay took from the guest, old and new daemon");
  const toVm = r!.vfToVm;
  assertEq(
    num(toVm.pktsTxToVm) + num(toVm.pktsDroppedVmQueueFull) + num(toVm.pktsDroppedVmNotConnected),
    num(toVm.pktsRxFromVf),
    "packets from the VF: each delivered to the guest or counted dropped, once",
  );
  await run.sendToGuest("printf go", "releasing the guest", "", 5004);
  await guest.expectPass(GUEST_TIMEOUT); // carrier_changes the same before and after
}

for (
  const o of [
    { server: false, queues: 1, packed: false },
    { server: true, queues: 2, packed: false },
    { server: false, queues: 1, packed: true },
  ]
) {
  const mode = o.server ? "vio4wd in client mode (QEMU serves the socket)" : "vio4wd in server mode";
  Deno.test(`e2e: hot upgrade under a QEMU guest, ${mode}, ${o.queues} queue pair(s), ${o.packed ? "packed" : "split"} rings: refused during a live migration; then, pinged every 1 ms and sent 8 MiB over TCP while \`vio4wd upgrade\` runs: the longest silence under 50 ms, ${o.packed ? "" : "none answered twice, "}the 8 MiB intact, the guest's carrier never changes, the counters continue, each packet counted once`, async () => {
    await e2e(`up${o.server ? "c" : "s"}${o.queues}${o.packed ? "p" : ""}`, (run) => upgradeUnderGuest(run, o));
  });
}

async function tsoOverMemif(run: E2eRun, ipv6: boolean): Promise<void> {
  const wire = memifPair(`${run.dir}/vf.sock`);
  const d = await run.daemon(["VIRTIOFWD_TSO=y"], wire.vf);
  const peer = await run.world.testpmd({
    vdevs: [wire.peer, TAP_VF],
    netns: run.ns.name,
    appArgs: ["--forward-mode=io"],
  });
  await peer.send("start");
  await run.ns.configure("vtap0", `${HOST}/30`);
  let relay: RelayState;
  if (ipv6) {
    const add = await run.ns.run(["ip", "-6", "addr", "add", "fd00::1/64", "dev", "vtap0", "nodad"]);
    assertEq(add.code, 0, `IPv6 address on the tap: ${add.stderr}`);
    const received = run.receive();
    const guest = run.guest({
      script: `
echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
ip -6 addr add fd00::2/64 dev eth0 || exit 1
wait_peer fd00::1 30 || exit 1
dd if=/dev/zero bs=65536 count=64 2>/dev/null | nc fd00::1 5001 || exit 1
${HOLD}
`,
    });
    assertEq(await received, String(4 * MIB), "bytes the host received over TCP/IPv6");
    relay = await run.relayWhileHeld(d, guest);
    await guest.expectPass(GUEST_TIMEOUT);
  } else {
    relay = await pingAndTcp(run, run.guest({ script: pingAndTcpScript(4) }), d, 4);
  }
  const down = relay.vmToVf;
  // the guest handed over packets of several MSS: more went to the VF than came from the VM
  if (!(num(down.pktsTxToVf) > num(down.pktsRxFromVm) && num(down.pktsDroppedVfQueueFull) === 0)) {
    throw new Error(`no software segmentation seen: vm_to_vf tx ${down.pktsTxToVf}, rx ${down.pktsRxFromVm}`);
  }
  console.log(
    `e2e tso (${
      ipv6 ? "IPv6" : "IPv4"
    }): VM->VF ${down.pktsRxFromVm} packets from the guest became ${down.pktsTxToVf} on the VF`,
  );
}

Deno.test("e2e: TSO guest over a VF without offloads: vio4wd segments TCP/IPv4 and checksums in software", async () => {
  await e2e("tso4", (run) => tsoOverMemif(run, false));
});

Deno.test("e2e: TSO guest over a VF without offloads: vio4wd segments TCP/IPv6 in software", async () => {
  await e2e("tso6", (run) => tsoOverMemif(run, true));
});

/** The IPv4 TCP frames of a pcap file (little-endian, Ethernet): the frame's length, the IPv4
 * header's total length and whether its checksum is right. */
export function ipv4TcpFrames(pcap: Uint8Array): { frame: number; totalLength: number; checksumOk: boolean }[] {
  const v = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
  const out = [];
  for (let at = 24; at + 16 <= pcap.length;) {
    const caught = v.getUint32(at + 8, true), frame = v.getUint32(at + 12, true), p = at + 16;
    at = p + caught;
    if (at > pcap.length) break; // tcpdump is still writing this one
    if (caught < 34 || v.getUint16(p + 12) !== 0x0800 || pcap[p + 23] !== 6) continue;
    const ihl = (pcap[p + 14] & 0xf) * 4;
    let sum = 0;
    for (let i = 0; i < ihl; i += 2) sum += v.getUint16(p + 14 + i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    out.push({ frame, totalLength: v.getUint16(p + 16), checksumOk: sum === 0xffff });
  }
  return out;
}

Deno.test("e2e: TSO guest over a VF that segments (fault build's NIC): each TCP/IPv4 TSO packet asks the VF for its segments' IP checksums over a zeroed field (#32 item 6)", async () => {
  await e2e("hwtso", async (run) => {
    // the VF: net_pcap on one end of a veth pair (big frames pass whole); the host's TCP on the other
    const link = await run.ns.sh(
      // the host's segments leave vpb checksummed (net_pcap reads them as they are)
      "ip link add vpa mtu 65000 type veth peer name vpb mtu 65000 && ip link set vpa up && ethtool -K vpb tx off",
    );
    assertEq(link.code, 0, `veth pair: ${link.stderr}`);
    const d = await run.daemon(["VIRTIOFWD_TSO=y"], "net_pcap0,iface=vpa", {
      env: { VIO4WD_SHIM: FAULTS_SHIM, VIO4WD_FAULT_VF_HW_TSO: "1" },
    });
    await run.ns.configure("vpb", `${HOST}/30`);
    const pcap = `${run.dir}/vf.pcap`;
    const dump = await run.ns.startUntil(
      ["tcpdump", "-U", "-n", "-i", "vpb", "-w", pcap, `tcp and src ${GUEST}`],
      /listening on/,
    );
    try {
      // what the host's TCP makes of the frames does not matter here (the pretend NIC sends only
      // the first segment's header): the guest sends for 10 s and stops
      const received = run.receive("wc -c");
      const guest = run.guest({
        script: `
wait_peer ${HOST} 30 || exit 1
dd if=/dev/zero bs=65536 count=16 2>/dev/null | timeout 10 nc ${HOST} 5001
say "SENT"
`,
      });
      let frames: ReturnType<typeof ipv4TcpFrames> = [], segmented = frames;
      await until("TSO packets on the VF", async () => {
        frames = ipv4TcpFrames(await Deno.readFile(pcap));
        // a frame longer than its IPv4 total length: a TSO packet the NIC was given whole
        segmented = frames.filter((f) => f.frame > 14 + f.totalLength + 4);
        return segmented.length >= 3;
      }, 60_000).catch((e) => {
        const sizes = frames.map((f) => `${f.frame}/${f.totalLength}${f.checksumOk ? "" : "!"}`).slice(0, 40);
        throw new Error(`${errorText(e)}: ${frames.length} TCP frames from the guest (frame/IP length): ${sizes}`);
      });
      const bad = segmented.filter((f) => !f.checksumOk);
      assertEq(
        bad.length,
        0,
        `TSO packets whose first segment left with a wrong IPv4 checksum (no IP_CKSUM asked, or the guest's checksum left in the field), of ${segmented.length}`,
      );
      const r = (await d.status()).find((s) => s.id === 0)!;
      // the VF segmented: no more went to it than came from the guest
      assert(
        num(r.vmToVf.pktsTxToVf) <= num(r.vmToVf.pktsRxFromVm),
        `the relay segmented in software: ${show(r)}`,
      );
      await guest.waitSerial(/E2E: SENT/, GUEST_TIMEOUT);
      await received;
      console.log(`e2e hw tso: ${segmented.length} TSO packets handed whole to the VF, every IPv4 checksum right`);
    } finally {
      try {
        Deno.kill(dump.pid, "SIGTERM");
      } catch { /* ended */ }
      await dump.done;
    }
  });
});

/**
 * `vio4wd vm-config --libvirt` output made into a bootable domain, adding only what TCG and direct
 * kernel boot need: domain type qemu, machine pc, kernel, initrd and command line, a serial
 * console to `serial`, and MSI-X off on virtio-net (QEMU 7.2 under TCG crashes with vhost-user
 * and MSI-X).
 */
function bootableDomain(
  xml: string,
  o: { name: string; kernel: string; initrd: string; cmdline: string; serial: string },
) {
  const out = xml
    .replace("<domain type='kvm'>", "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>")
    .replace(/<name>[^<]*<\/name>/, `<name>${o.name}</name>`)
    .replace(
      "<type arch='x86_64'>hvm</type>",
      `<type arch='x86_64' machine='pc'>hvm</type><kernel>${o.kernel}</kernel><initrd>${o.initrd}</initrd>` +
        `<cmdline>${o.cmdline}</cmdline>`,
    )
    .replace(
      "</devices>",
      `  <serial type='file'><source path='${o.serial}'/><target port='0'/></serial>\n  </devices>\n` +
        "  <qemu:commandline><qemu:arg value='-global'/><qemu:arg value='virtio-net-pci.vectors=0'/></qemu:commandline>",
    );
  for (const want of ["type='qemu'", "<kernel>", "<serial", "qemu:commandline", `<name>${o.name}</name>`]) {
    if (!out.includes(want)) throw new Error(`vm-config --libvirt output changed: no place for ${want}:\n${xml}`);
  }
  return out;
}

Deno.test("e2e: a libvirt guest from 'vio4wd vm-config --libvirt' (QEMU as libvirt-qemu, hugepages, vhost-user reconnect) pings through vio4wd and rides out a daemon restart", async () => {
  await e2e("lv", async (run) => {
    await using libvirt = await Libvirt.ensure();
    // QEMU runs as libvirt-qemu: it must reach the run directory, the kernel and the sockets
    Deno.chmodSync(run.dir, 0o755);
    const kernel = `${run.dir}/vmlinuz`;
    Deno.copyFileSync(guestKernel().vmlinuz, kernel);
    Deno.chmodSync(run.initrd, 0o644);
    const conf = `${run.dir}/vm-config.conf`;
    Deno.writeTextFileSync(conf, `VIRTIOFWD_SOCKET_DIR=${run.world.sockDir}\n`);
    const printed = await runVio4wd(["vm-config", "--libvirt", "--config", conf, "--memory", "256", "0"]);
    assertEq(printed.code, 0, `vm-config --libvirt: ${printed.stderr}`);
    const first = await run.daemon([]);
    const serial = `${run.dir}/libvirt-serial.log`;
    const name = `vio4wd-${run.world.tag}`.replace(/[^A-Za-z0-9_-]/g, "-");
    const xml = bootableDomain(printed.stdout, {
      name,
      kernel,
      initrd: run.initrd,
      cmdline: `console=ttyS0 quiet panic=-1 e2e.ip=${GUEST}/30 e2e.script=${btoa(RESTART_SCRIPT)}`,
      serial,
    });
    Deno.writeTextFileSync(`${run.dir}/domain.xml`, xml);
    // destroyed before libvirtd (if started here) stops: `using` scopes end in reverse order
    await using _domain = { [Symbol.asyncDispose]: () => libvirt.destroy(name) };
    await virsh("create", `${run.dir}/domain.xml`);
    const serialText = () => {
      try {
        return Deno.readTextFileSync(serial);
      } catch {
        return "";
      }
    };
    const waitConsole = (re: RegExp, what: string) =>
      until(what, () => re.test(serialText()), 60_000).catch((e) => {
        throw new Error(`${e.message}; console:\n${serialText().slice(-1500)}`);
      });
    await waitConsole(/E2E: RECHECK start/, "the libvirt guest up and pinging");
    const user = (await new Deno.Command("ps", { args: ["-o", "user=", "-C", "qemu-system-x86_64"], stdout: "piped" })
      .output().then((o) => new TextDecoder().decode(o.stdout))).split("\n").map((u) => u.trim());
    assert(user.includes("libvirt-qemu"), `QEMU runs as libvirt-qemu (ps: ${user.join(",")})`);
    assertEq(await first.stop(), 0, "first daemon's exit status");
    const started = Date.now();
    await run.daemon([]);
    await run.ns.firstReply(GUEST, 10_000);
    const resumed = Date.now() - started;
    console.log(`e2e libvirt: first guest reply ${resumed} ms after the new daemon was started`);
    await run.sendToGuest("printf done", "host -> guest TCP after the restart");
    await waitConsole(/E2E-RESULT: PASS/, "the guest's verdict");
    assertEq(serialText().split("E2E: init started").length - 1, 1, "guest boots once (no guest restart)");
  });
  const left = await new Deno.Command("pgrep", { args: ["-f", "guest=vio4wd-v4t-lv"], stdout: "piped" }).output();
  assertEq(new TextDecoder().decode(left.stdout).trim(), "", "no libvirt guest left running");
});
