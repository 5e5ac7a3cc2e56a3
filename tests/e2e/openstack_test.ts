/**
 * An OpenStack compute host, without OpenStack: what Neutron, Nova and os-vif do to the forwarder
 * for a `virtio-forwarder` port, replayed step by step against vio4wd as Netronome's deployment
 * configures it (ZeroMQ port control, dynamic sockets, client mode, sockets for QEMU's account),
 * with real libvirt guests whose interfaces are the XML Nova writes for such a VIF.
 *
 * The VFs are fake PCI devices (a fake sysfs tree) standing in as net_tap devices in a network
 * namespace, where the host end of each guest's traffic lives.
 */

import { runVio4wd, until } from "../rigs/daemon_process.ts";
import { buildInitramfs, guestKernel } from "../rigs/qemu.ts";
import { Libvirt, virsh } from "../rigs/libvirt.ts";
import { OvsDb } from "../rigs/ovs.ts";
import { fakeSysfs, standInForVf } from "../rigs/sysfs.ts";
import { World } from "../rigs/world.ts";
import { assert, assertEq, assertJsonEq } from "../rigs/assert.ts";
import { accountId } from "../../src/config/values.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const GUEST_TIMEOUT = 120_000;
const dec = new TextDecoder();

/** One VM of the test: its Neutron port, VF, socket, addresses. */
interface Vm {
  name: string;
  portId: string;
  mac: string;
  pci: string;
  tap: string;
  socket: string;
  host: string;
  guest: string;
}

/** The guest's side: up, then after the host says "done" (sent after the daemon restart), ping again. */
const guestScript = (host: string) => `
wait_peer ${host} 60 || exit 1
say "UP"
n=$(listen_count 5002)
ping -c 3 -i 0.2 -W 1 ${host} >/dev/null || exit 1
[ "$n" = 4 ]
`;

/** The domain Nova defines for an instance with one virtio-forwarder VIF (plus TCG, direct boot, a serial file). */
function novaDomain(vm: Vm, o: { kernel: string; initrd: string; serial: string }): string {
  const cmdline = `console=ttyS0 quiet panic=-1 e2e.ip=${vm.guest}/30 e2e.script=${btoa(guestScript(vm.host))}`;
  return `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${vm.name}</name>
  <memory unit='KiB'>262144</memory>
  <memoryBacking><hugepages/><access mode='shared'/></memoryBacking>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${o.kernel}</kernel><initrd>${o.initrd}</initrd>
    <cmdline>${cmdline}</cmdline></os>
  <cpu><numa><cell id='0' cpus='0' memory='262144' unit='KiB' memAccess='shared'/></numa></cpu>
  <devices>
    <interface type='vhostuser'>
      <mac address='${vm.mac}'/>
      <model type='virtio'/>
      <source type='unix' path='${vm.socket}' mode='server'/>
      <target dev='tap${vm.portId.slice(0, 11)}'/>
    </interface>
    <serial type='file'><source path='${o.serial}'/><target port='0'/></serial>
  </devices>
  <qemu:commandline><qemu:arg value='-global'/><qemu:arg value='virtio-net-pci.vectors=0'/></qemu:commandline>
</domain>
`;
}

Deno.test("e2e: an OpenStack compute host: os-vif's plug (OVSDB, the original's add_sock from the built package) and Nova's libvirt XML give two guests their network, one socket in the socket directory deleted as by a reboot, one in Neutron's; both ride out a daemon restart; unplug frees the relay", async () => {
  const names: string[] = [];
  await openstackHost(names);
  for (const name of names) {
    const left = await new Deno.Command("pgrep", { args: ["-f", `guest=${name}`], stdout: "piped" }).output();
    assertEq(dec.decode(left.stdout).trim(), "", `no libvirt guest ${name} left running`);
  }
});

/** The test's body; `names`: the domains it starts, for the check that none is left. */
async function openstackHost(names: string[]): Promise<void> {
  await using w = await World.create("openstack");
  await using libvirt = await Libvirt.ensure();
  // destroyed before libvirtd (if started here) stops: `using` scopes end in reverse order
  await using _domains = {
    [Symbol.asyncDispose]: async () => {
      for (const name of names) await libvirt.destroy(name);
    },
  };
  const ns = await w.netns();
  // QEMU runs as libvirt-qemu: it must reach the world directory, the kernel and the initramfs
  Deno.chmodSync(w.dir, 0o755);
  const initrd = `${w.dir}/initrd.gz`;
  await buildInitramfs(initrd);
  Deno.chmodSync(initrd, 0o644);
  const kernel = `${w.dir}/vmlinuz`;
  Deno.copyFileSync(guestKernel().vmlinuz, kernel);

  // the original's port-control program as the package installs it (os-vif's hard-coded lib64 path)
  const built = await new Deno.Command(`${ROOT}scripts/build-deb.sh`, { args: ["--no-lintian"], stdout: "piped" })
    .output();
  assertEq(built.code, 0, "build the package");
  const deb = /built (\S+\.deb)/.exec(dec.decode(built.stdout))![1];
  const tree = `${w.dir}/pkg`;
  assertEq((await new Deno.Command("dpkg-deb", { args: ["-x", `${ROOT}${deb}`, tree] }).output()).code, 0, "extract");
  const osVif = async (args: string[]) => {
    const out = await new Deno.Command(`${tree}/usr/lib64/virtio-forwarder/virtioforwarder_port_control.py`, {
      args: [...args, `--zmq_ep=ipc://${socketDir}/port_control`],
      env: { VIO4WD: `${tree}/usr/bin/vio4wd`, HOME: w.dir, PATH: Deno.env.get("PATH")! },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
  };

  // Netronome's deployment: sockets for QEMU's account, ZeroMQ endpoints in the socket directory,
  // which a reboot has emptied (it is gone); Neutron's vhostuser_socket_dir is QEMU's own
  const socketDir = `${w.dir}/run/virtio-forwarder`;
  const qemuUid = accountId("passwd", "libvirt-qemu")!, kvm = accountId("group", "kvm")!;
  const neutronDir = `${w.dir}/libvirt-qemu`;
  Deno.mkdirSync(neutronDir, { mode: 0o751 });
  Deno.chownSync(neutronDir, qemuUid, kvm);
  const vms: Vm[] = [
    ["a", "1", socketDir],
    ["b", "2", neutronDir],
  ].map(([x, n, dir], i) => {
    const portId = `${x.repeat(8)}-${x.repeat(4)}-4${x.repeat(3)}-8${x.repeat(3)}-${x.repeat(12)}`;
    return {
      name: `vio4wd-${w.tag}-${x}`.replace(/[^A-Za-z0-9_-]/g, "-"),
      portId,
      mac: `fa:16:3e:00:00:0${n}`,
      pci: `0000:05:08.${n}`,
      tap: `vtap${i}`,
      socket: `${dir}/vhu${portId.slice(0, 11)}`,
      host: `10.201.${i}.1`,
      guest: `10.201.${i}.2`,
    };
  });
  const sys = `${w.dir}/sys`;
  fakeSysfs(sys, [1, 2]);
  vms.forEach((vm, i) => standInForVf(sys, vm.pci, `net_tap${i},iface=${vm.tap},mac=02:00:00:c0:ff:0${i + 1}`));
  const config = [
    `VIRTIOFWD_SOCKET_DIR=${socketDir}`,
    "VIRTIOFWD_SOCKET_OWNER=libvirt-qemu",
    "VIRTIOFWD_SOCKET_GROUP=kvm",
    "VIRTIOFWD_VHOST_CLIENT=y",
    "VIRTIOFWD_DYNAMIC_SOCKETS=y",
    `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${socketDir}/port_control`,
    `VIRTIOFWD_ZMQ_STATS_EP=ipc://${socketDir}/stats`,
  ];
  const startDaemon = async () => {
    const d = await w.daemon(config, { netns: ns.name, env: { VIO4WD_SYSFS_ROOT: sys } });
    return d;
  };
  let d = await startDaemon();
  const st = Deno.statSync(socketDir);
  assertEq(`${st.uid}:${st.gid}`, `${qemuUid}:${kvm}`, "the socket directory made again, QEMU's account's");

  // os-vif's plug, in its order: the representor on br-int with the standard keys only, then add_sock
  // (--no-wait: no ovs-vswitchd here; the daemon takes nothing from OVSDB in this mode)
  const ovsdb = w.own(await OvsDb.start(await Deno.makeTempDir({ dir: w.dir, prefix: "ovsdb-" })));
  await ovsdb.vsctl(
    "--no-wait",
    "--",
    "--may-exist",
    "add-br",
    "br-int",
    "--",
    "set",
    "Bridge",
    "br-int",
    "datapath_type=system",
  );
  for (const [i, vm] of vms.entries()) {
    await ovsdb.vsctl(
      "--no-wait",
      "--",
      "--may-exist",
      "add-port",
      "br-int",
      `rep${i}`,
      "--",
      "set",
      "Interface",
      `rep${i}`,
      `external_ids:iface-id=${vm.portId}`,
      "external_ids:iface-status=active",
      `external_ids:attached-mac=${vm.mac}`,
      `external_ids:vm-uuid=${crypto.randomUUID()}`,
    );
    const r = await osVif(["add_sock", `--pci-addr=${vm.pci}`, `--vhost-path=${vm.socket}`]);
    assertJsonEq([r.code, r.out], [0, ""], `add_sock for VM ${vm.name}`);
  }
  for (const vm of vms) await ns.configure(vm.tap, `${vm.host}/30`);

  // Nova starts the guests: QEMU (as libvirt-qemu) creates each socket, the daemon connects
  const serial = (vm: Vm) => `${w.dir}/${vm.name}.serial`;
  for (const vm of vms) {
    const xml = `${w.dir}/${vm.name}.xml`;
    Deno.writeTextFileSync(xml, novaDomain(vm, { kernel, initrd, serial: serial(vm) }));
    names.push(vm.name);
    await virsh("create", xml);
  }
  const consoleOf = (vm: Vm) => {
    try {
      return Deno.readTextFileSync(serial(vm));
    } catch {
      return "";
    }
  };
  const waitConsole = (vm: Vm, re: RegExp, what: string) =>
    until(`${vm.name}: ${what}`, () => re.test(consoleOf(vm)), GUEST_TIMEOUT).catch((e) => {
      throw new Error(`${e.message}; console:\n${consoleOf(vm).slice(-1500)}\ndaemon:\n${d.log.slice(-2500)}`);
    });
  for (const vm of vms) await waitConsole(vm, /E2E: UP/, "the guest reaches its host over the VF");
  for (const vm of vms) {
    const sock = Deno.lstatSync(vm.socket);
    assert(sock.isSocket && sock.uid === qemuUid, `${vm.socket}: QEMU's socket, made as libvirt-qemu`);
    await ns.firstReply(vm.guest, 10_000);
  }

  // the daemon restarted (an upgrade): both pairings come back, the guests answer again
  assertEq(await d.stop(), 0, "first daemon's exit status");
  d = await startDaemon();
  for (const vm of vms) await ns.configure(vm.tap, `${vm.host}/30`);
  for (const vm of vms) {
    const ms = await ns.firstReply(vm.guest, 20_000);
    console.log(`e2e openstack: ${vm.name} answered ${ms} ms after its VF was up again on the restarted daemon`);
  }
  assertEq(d.count(/paired with 0000:05:08\.\d again/), 2, "both pairings restored");
  for (const vm of vms) {
    const r = await ns.sh(
      `for i in $(seq 40); do printf done | busybox nc ${vm.guest} 5002 && exit 0; sleep 0.25; done; exit 1`,
    );
    assertEq(r.code, 0, `host -> ${vm.name} TCP after the restart: ${r.stderr}`);
    await waitConsole(vm, /E2E-RESULT: PASS/, "the guest's verdict");
  }

  // unplug VM b as Nova and os-vif do: the domain goes, remove_sock, the representor leaves br-int
  await libvirt.destroy(vms[1].name);
  await d.waitLog(new RegExp(`destroy virtio device on '${vms[1].socket}'`)); // the original's words
  const r = await osVif(["remove_sock", `--pci-addr=${vms[1].pci}`, `--vhost-path=${vms[1].socket}`]);
  assertJsonEq([r.code, r.out], [0, ""], "remove_sock");
  await ovsdb.vsctl("--no-wait", "--", "--if-exists", "del-port", "br-int", "rep1");
  const listed = await runVio4wd(["port", "list", "--json", "--zmq-ep", `ipc://${socketDir}/stats`]);
  assertJsonEq(
    (JSON.parse(listed.stdout) as { relay: number; device: string }[]).map((x) => `${x.relay} ${x.device}`),
    ["0 0000:05:08.1"],
    "only VM a's relay is left",
  );
  const kept = JSON.parse(Deno.readTextFileSync(`${w.dir}/state/pairings.json`)).pairings as { socket: string }[];
  assertJsonEq(kept.map((p) => p.socket), [vms[0].socket], "the pairings file keeps VM a only");
}
