/**
 * What an OpenStack compute host does to the forwarder, without OpenStack: os-vif runs the
 * original's port-control program (`add_sock --pci-addr=<VF> --vhost-path=<neutron dir>/vhu...`)
 * against a daemon in client mode with dynamic sockets. Here: sockets in directories outside
 * VIRTIOFWD_SOCKET_DIR (trusted or refused), the original's five launchers with the original's
 * argument forms, and pairings that outlive a daemon restart. VFs are fake PCI devices (a fake
 * sysfs tree) with DPDK stand-ins; VMs are testpmd's virtio_user. tests/e2e/openstack_test.ts
 * plays the whole plug with libvirt, a real guest and OVSDB.
 */

import { type DaemonProcess, num, type RelayState, runVio4wd, until } from "./rigs/daemon_process.ts";
import { virtioUser } from "./rigs/devices.ts";
import { fakeSysfs, standInForVf } from "./rigs/sysfs.ts";
import { World } from "./rigs/world.ts";
import { assert, assertEq, assertJsonEq } from "./rigs/assert.ts";
import { request } from "../src/control/client.ts";
import {
  PortControlRequest_Op as Op,
  PortControlRequestSchema,
  type PortControlResponse,
  PortControlResponse_Status as Status,
  PortControlResponseSchema,
} from "../src/control/gen/virtioforwarder_pb.ts";
import { accountId } from "../src/config/values.ts";
import { PAIRINGS_FILE } from "../src/relays/pairings.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const NOBODY = 65534;
const dec = new TextDecoder();

/** Runs one of the original's launchers (scripts/original/) on this checkout's vio4wd. */
async function original(tool: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(`${ROOT}scripts/original/${tool}`, {
    args,
    env: { VIO4WD: `${ROOT}vio4wd` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
const portControl = (args: string[]) => original("virtioforwarder_port_control.py", args);

/** "OK", or "ERROR <code>" as the reply carries it. */
const outcome = (r: PortControlResponse) => r.status === Status.OK ? "OK" : `ERROR ${r.errorCode}`;

/** A directory `name` under the world's, with `mode`, owner and group. */
function dir(root: string, name: string, mode: number, uid = 0, gid = 0): string {
  const path = `${root}/${name}`;
  Deno.mkdirSync(path);
  Deno.chmodSync(path, mode);
  Deno.chownSync(path, uid, gid);
  return path;
}

/** Neutron's vhostuser_socket path for a port id: `vhu` and its first 11 characters. */
const vhu = (neutronDir: string, portId: string) => `${neutronDir}/vhu${portId.slice(0, 11)}`;

Deno.test("OpenStack: ADD_SOCK takes a socket in a trusted directory outside VIRTIOFWD_SOCKET_DIR (Neutron's, QEMU's own) and refuses, logging the rule, another user's directory, a world-writable one, another user's link, a missing one and paths that are not plain; VIO4WD_SOCKET_DIRS_ALLOW narrows it", async () => {
  await using w = await World.create("osdirs");
  const ep = `ipc://${w.dir}/pc`;
  const qemuUid = accountId("passwd", "libvirt-qemu")!, kvm = accountId("group", "kvm")!;
  const neutron = dir(w.dir, "openvswitch", 0o755);
  const qemuDir = dir(w.dir, "qemu", 0o751, qemuUid, kvm);
  const theirs = dir(w.dir, "theirs", 0o755, NOBODY, NOBODY);
  const sticky = dir(w.dir, "sticky", 0o1777);
  Deno.symlinkSync(neutron, `${w.dir}/link`);
  new Deno.Command("chown", { args: ["-h", `${NOBODY}:${NOBODY}`, `${w.dir}/link`] }).outputSync();
  const addSock = async (path: string, dev: string) =>
    outcome(
      await request(
        ep,
        PortControlRequestSchema,
        { op: Op.ADD_SOCK, vhostPath: path, devargs: [dev] },
        PortControlResponseSchema,
      ),
    );

  let d = await w.daemon([`VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`, "VIRTIOFWD_DYNAMIC_SOCKETS=y"]);
  const inNeutron = vhu(neutron, "0123456789abcdef"), inQemu = vhu(qemuDir, "fedcba9876543210");
  assertEq(await addSock(inNeutron, "net_null1"), "OK", "Neutron's directory (root's, 0755)");
  assertEq(await addSock(inQemu, "net_null2"), "OK", "QEMU's own directory (libvirt-qemu:kvm 0751)");
  assert(Deno.lstatSync(inNeutron).isSocket, "server mode: the daemon listens there");
  const refusals: [string, string, RegExp][] = [
    ["another user's directory", `${theirs}/vhu1`, /theirs is owned by uid 65534/],
    ["a world-writable directory, sticky or not", `${sticky}/vhu2`, /sticky is writable by every user/],
    ["a link of another user's", `${w.dir}/link/vhu3`, /link is a link of uid 65534/],
    ["a missing directory", `${w.dir}/missing/vhu4`, /missing does not exist/],
    ["'..' in the path", `${neutron}/../openvswitch/vhu5`, /is not a plain path/],
    ["a relative path", "openvswitch/vhu6", /is not an absolute path/],
  ];
  for (const [what, path, rule] of refusals) {
    assertEq(await addSock(path, "net_null3"), "ERROR 5", what);
    assert(
      d.log.split("\n").some((l) => l.includes(`ADD_SOCK ${path} refused`) && rule.test(l)),
      `${what}: ${rule} logged`,
    );
  }
  assert(!Deno.readDirSync(theirs).next().value, "nothing was created in the refused directory");
  const q = await request(
    ep,
    PortControlRequestSchema,
    { op: Op.QUERY_PCI, vhostPath: inNeutron },
    PortControlResponseSchema,
  );
  assertEq(q.queryString, "net_null1", "QUERY_PCI by the Neutron path");
  const rm = await request(
    ep,
    PortControlRequestSchema,
    { op: Op.REMOVE_SOCK, vhostPath: inNeutron },
    PortControlResponseSchema,
  );
  assertEq(outcome(rm), "OK", "REMOVE_SOCK");
  assert(!(await Deno.lstat(inNeutron).then(() => true, () => false)), "the daemon's socket is gone with it");
  assertEq(await d.stop(), 0, "exit status");

  // with an allow-list only the listed directories besides the socket directory are taken
  d = await w.daemon([
    `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep}`,
    "VIRTIOFWD_DYNAMIC_SOCKETS=y",
    `VIO4WD_SOCKET_DIRS_ALLOW=${qemuDir}/`,
  ]);
  // the pairing of the first daemon that was left in place is restored (server mode: its socket made again)
  await until("the kept pairing restored", () => d.count(/paired with net_null2 again/) === 1);
  assert(Deno.lstatSync(inQemu).isSocket, "the restored pairing's socket is there again");
  assertEq(await addSock(inNeutron, "net_null1"), "ERROR 5", "a trusted directory not on the list");
  assert(/openvswitch is neither the socket directory nor in VIO4WD_SOCKET_DIRS_ALLOW/.test(d.log), "the rule logged");
  assertEq(await addSock(`${qemuDir}/vhu7`, "net_null1"), "OK", "a listed directory");
  assertEq(await addSock(`${w.sockDir}/vhu8`, "net_null3"), "OK", "the socket directory itself");
});

/** A daemon as Netronome's OpenStack deployment runs it: ZeroMQ port control, dynamic sockets, client mode. */
function openstackConfig(w: World): string[] {
  return [
    `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${w.dir}/zmq/port_control`,
    `VIRTIOFWD_ZMQ_STATS_EP=ipc://${w.dir}/zmq/stats`,
    `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${w.dir}/zmq/core_sched`,
    "VIO4WD_CORE_SCHED_ENABLE=true",
    "VIRTIOFWD_DYNAMIC_SOCKETS=y",
    "VIRTIOFWD_VHOST_CLIENT=y",
  ];
}

/** A fake sysfs with VFs 0000:05:08.1 and .2, standing in as `net_null<n>`. */
function fakeVfs(w: World): Record<string, string> {
  const sys = `${w.dir}/sys`;
  fakeSysfs(sys, [1, 2]);
  for (const n of [1, 2]) standInForVf(sys, `0000:05:08.${n}`, `net_null${n}`);
  return { VIO4WD_SYSFS_ROOT: sys };
}

Deno.test("OpenStack: the original's launchers take the original's argument forms: port_control (=, prefixes, its usage errors exit 2, refusals printed as the tool prints them exit 1, no daemon exit 1), stats (flat, -z, protobuf), core_pinner, the others' usage; virtio-forwarder -v", async () => {
  await using w = await World.create("oslaunch");
  const env = fakeVfs(w);
  const neutron = dir(w.dir, "openvswitch", 0o755);
  const d = await w.daemon(openstackConfig(w), { env });
  const ep = `--zmq_ep=ipc://${w.dir}/zmq/port_control`;
  const sock = vhu(neutron, "0123456789abcdef");

  let r = await portControl(["add_sock", "--pci-addr=05:08.1", `--vhost-path=${sock}`, ep]);
  assertJsonEq([r.code, r.stdout], [0, ""], `add_sock as os-vif runs it: ${r.stderr}`);
  r = await portControl(["query_pci", `--vhost=${sock}`, "--zmq", ep.split("=")[1]]);
  assertJsonEq([r.code, r.stdout], [0, "0000:05:08.1\n"], `query_pci, options by prefix: ${r.stderr}`);
  r = await portControl(["add_sock", "--pci-addr", "0000:05:08.1", "--vhost-path", `${sock}x`, ep]);
  assertJsonEq(
    [r.code, r.stdout],
    [1, 'status: ERROR\nerror_code: -17\nerror_code_source: "virtio_add_sock_dev_pair()"\n\n'],
    "a device in use: the reply as the tool prints it (text format, then print's newline)",
  );
  for (
    const [args, want] of [
      [["add_sock", "--bogus"], /error: unrecognized arguments: --bogus/],
      [["frobnicate"], /error: argument OP: invalid choice: 'frobnicate'/],
      [["add", "--virtio-id=x"], /error: argument --virtio-id: invalid int value: 'x'/],
      [["add", "--mode=9", "--name=b"], /error: argument --mode: invalid choice: '9'/],
      [[], /error: the following arguments are required: OP/],
    ] as [string[], RegExp][]
  ) {
    r = await portControl(args);
    assertEq(r.code, 2, `${args.join(" ")}: argparse's exit status`);
    assert(r.stderr.startsWith("usage: virtioforwarder_port_control.py") && want.test(r.stderr), r.stderr);
  }
  // the forms the original's manual shows: add/remove --virtio-id=<ID> --pci-addr=<PCI_ADDR>
  r = await portControl(["add", "--virtio-id=5", "--pci-addr=0000:05:08.2", ep]);
  assertJsonEq([r.code, r.stdout], [0, ""], `add --virtio-id=5: ${r.stderr}`);
  assertEq((await d.status()).find((x) => x.id === 5)?.vf?.pciAddrStr, "0000:05:08.2", "relay 5 has the VF");
  r = await portControl(["remove", "--virtio-id=5", "--pci-addr=0000:05:08.2", ep]);
  assertJsonEq([r.code, r.stdout], [0, ""], `remove --virtio-id=5: ${r.stderr}`);
  r = await portControl(["add", "--virtio-id=3", "--pci-addr=zz:00.1", ep]);
  assertEq(r.code, 1, "a badly formatted PCI address: the tool's assertion, exit 1");
  const t0 = Date.now();
  r = await portControl(["query_pci", `--vhost-path=${sock}`, `--zmq_ep=ipc://${w.dir}/nobody`]);
  assertEq(r.code, 1, "no daemon: exit 1, as the tool's timeout traceback");
  assert(Date.now() - t0 < 10_000, "within the tool's 2 s timeout and start-up");

  const stats = `--stats-ep=ipc://${w.dir}/zmq/stats`;
  r = await original("virtioforwarder_stats.py", [stats, "--include-inactive", "--delay=0"]);
  const flat = r.stdout.split("\n");
  assertEq(r.code, 0, r.stderr);
  for (const line of ["relay_0.active=False", "relay_0.vf.pci_addr_str=0000:05:08.1", "relay_63.active=False"]) {
    assert(flat.includes(line), `stats flat has ${line}`);
  }
  r = await original("virtioforwarder_stats.py", [stats, "--include-inactive", "--delay=0", "-z"]);
  assert(!r.stdout.split("\n").some((l) => /=0$/.test(l)) && r.stdout.includes("relay_0.active"), "-z hides zeros");
  r = await original("virtioforwarder_stats.py", [stats, "--output-format=protobuf", "--delay", "0"]);
  assert(/^status: OK\n/.test(r.stdout), `protobuf text format: ${r.stdout.slice(0, 200)}`);
  r = await original("virtioforwarder_stats.py", [stats, "--output-format=xml"]);
  assertEq(r.code, 2, "a choice argparse refuses");

  const sched = [`--sched-ep=ipc://${w.dir}/zmq/core_sched`, stats];
  for (const extra of [[], ["--print-core-map"]]) {
    r = await original("virtioforwarder_core_pinner.py", [...sched, ...extra]);
    assertJsonEq([r.code, r.stdout.split("\n")[0]], [0, "Worker cores affinities:"], r.stderr);
  }
  r = await original("virtioforwarder_core_pinner.py", [...sched, "--virtio-cpu=0-1-2"]);
  assertJsonEq(
    [r.code, r.stdout],
    [0, "Invalid virtio-cpu command line format. Usage: virtio-cpu=n:c1,c2\n"],
    "the tool's answer to a bad pin, with its exit status 0",
  );
  for (const tool of ["virtioforwarder_monitor_load.py", "virtioforwarder_core_scheduler.py"]) {
    assertEq((await original(tool, ["-h"])).code, 0, `${tool} -h`);
    assertEq((await original(tool, ["--poll-interval=soon"])).code, 2, `${tool}: a float argparse refuses`);
  }
  r = await portControl(["remove_sock", "--pci-addr=05:08.1", `--vhost-path=${sock}`, ep]);
  assertJsonEq([r.code, r.stdout], [0, ""], `remove_sock as os-vif runs it: ${r.stderr}`);
  assertEq((await d.status()).length, 0, "no relay left");
  const v = await original("virtio-forwarder", ["-v"]);
  assert(v.code === 0 && v.stdout.startsWith("vio4wd "), `virtio-forwarder -v: ${v.stdout}${v.stderr}`);
});

/** Relays 0 and 1 both moving packets both ways, as `d` counts them. */
async function bothRelaysFlowing(d: DaemonProcess): Promise<boolean> {
  const pick = (s: RelayState[]) => [0, 1].map((id) => s.find((r) => r.id === id));
  const a = pick(await d.status());
  await new Promise((r) => setTimeout(r, 300));
  const b = pick(await d.status());
  return [0, 1].every((i) =>
    a[i] && b[i] && num(b[i]!.vfToVm.pktsTxToVm) > num(a[i]!.vfToVm.pktsTxToVm) &&
    num(b[i]!.vmToVf.pktsTxToVf) > num(a[i]!.vmToVf.pktsTxToVf)
  );
}

Deno.test("OpenStack: pairings made by add_sock outlive a daemon restart (same relays, same devices, traffic both ways); one whose device is gone is dropped with a log line; a pairings file others can write is ignored", async () => {
  await using w = await World.create("ospairs");
  const env = fakeVfs(w);
  const neutron = dir(w.dir, "openvswitch", 0o755);
  const socks = [vhu(neutron, "aaaaaaaaaaaa-1"), vhu(neutron, "bbbbbbbbbbbb-2")];
  // two VMs (QEMU serves the socket, as Nova's XML asks): virtio_user servers in one testpmd
  const config = openstackConfig(w);
  let d = await w.daemon(config, { env });
  // virtio_user's server blocks its start until a backend connects: plug while it starts
  const starting = w.testpmd({ vdevs: socks.map((s, port) => virtioUser(s, { port, server: true })) });
  for (const [i, s] of socks.entries()) {
    const r = await portControl([
      "add_sock",
      `--pci-addr=0000:05:08.${i + 1}`,
      `--vhost-path=${s}`,
      `--zmq_ep=ipc://${w.dir}/zmq/port_control`,
    ]);
    assertEq(r.code, 0, `add_sock ${s}: ${r.stdout}${r.stderr}`);
  }
  const vm = await starting;
  await vm.waitLinksUp();
  // io: what the VF stand-ins (net_null, a source and a sink) send into one VM goes out of the other
  await vm.send("set fwd io");
  await vm.send("start");
  await until("both relays relaying both ways", () => bothRelaysFlowing(d), 15_000).catch(async (e) => {
    throw new Error(
      `${e.message}: ${JSON.stringify(await d.status(), (_k, v) => typeof v === "bigint" ? Number(v) : v)}\n${
        d.log.slice(-2500)
      }`,
    );
  });
  const file = `${w.dir}/state/${PAIRINGS_FILE}`;
  const st = Deno.statSync(file);
  assertEq(`${st.uid} ${(st.mode! & 0o777).toString(8)}`, "0 600", "the pairings file is root's, 0600");
  const listed = async (daemon: DaemonProcess) => {
    const r = await runVio4wd(["port", "list", "--json", "--zmq-ep", daemon.statsEndpoint]);
    return (JSON.parse(r.stdout) as { relay: number; socket: string; device: string }[])
      .map((x) => `${x.relay} ${x.socket} ${x.device}`);
  };
  const before = await listed(d);
  assertJsonEq(before, socks.map((s, i) => `${i} ${s} 0000:05:08.${i + 1}`), "port list");

  await vm.send("stop");
  assertEq(await d.stop(), 0, "first daemon's exit status");
  // the words operators grep for, as the original logs them
  for (
    const words of ["Starting virtio-forwarder", `new virtio device on '${socks[0]}'`, "Stopping virtio-forwarder"]
  ) {
    assert(d.log.includes(words), `the log has '${words}'`);
  }
  d = await w.daemon(config, { env });
  await until("both VMs back on the restarted daemon", async () => {
    if (d.count(/VM connected/) >= 2) return true;
    await vm.linksUp().catch(() => false); // virtio_user's server notices the hang-up when looked at
    return false;
  }, 30_000);
  assertJsonEq(await listed(d), before, "the same pairings on the same relays after the restart");
  assertEq(d.count(/paired with 0000:05:08\.\d again/), 2, "each restore logged");
  await vm.send("start");
  await until("both relays relaying both ways after the restart", () => bothRelaysFlowing(d), 15_000);

  // VF 2 gone while the daemon was down: its pairing is dropped, the other one kept
  await vm.send("stop");
  assertEq(await d.stop(), 0, "second daemon's exit status");
  Deno.removeSync(`${env.VIO4WD_SYSFS_ROOT}/bus/pci/devices/0000:05:08.2/vio4wd_standin`);
  d = await w.daemon(config, { env });
  assert(
    /relay 1: pairing of .* with 0000:05:08.2 dropped: the device 0000:05:08.2 could not be attached/.test(d.log),
    d.log,
  );
  assertJsonEq(await listed(d), before.slice(0, 1), "only relay 0's pairing is left");
  const kept = JSON.parse(Deno.readTextFileSync(file)).pairings as unknown[];
  assertEq(kept.length, 1, "the file keeps what is left");

  // a pairings file others could have written is not trusted
  assertEq(await d.stop(), 0, "third daemon's exit status");
  Deno.chmodSync(file, 0o666);
  d = await w.daemon(config, { env });
  assert(/pairings: .*pairings\.json: writable by others \(mode 666\); ignored/.test(d.log), d.log);
  assertJsonEq(await listed(d), [], "nothing restored from it");
});
