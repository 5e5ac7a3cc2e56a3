/**
 * Drop-in: an existing virtio-forwarder host's files and options work with vio4wd unchanged. The
 * original's shipped /etc/default/virtioforwarder and the documented every-variable file pass
 * `config check` and start the daemon with only their paths moved into a temp dir; the shipped one
 * then runs as the original would: ZeroMQ port control (IPC ignored), core scheduling and client
 * mode.
 */

import { World } from "./rigs/world.ts";
import { runVio4wd } from "./rigs/daemon_process.ts";
import { virtioUser } from "./rigs/devices.ts";
import { assert, assertEq } from "./rigs/assert.ts";
import { fakeSysfs } from "./rigs/sysfs.ts";
import { fakeCpus } from "./rigs/sysfs.ts";

const fixture = (name: string) => Deno.readTextFileSync(new URL(`./fixtures/${name}`, import.meta.url));

/** The file with its run-time paths moved under `dir` (nothing else changed). */
function movePaths(text: string, dir: string): string {
  return text.replaceAll("/tmp/virtio-forwarder", `${dir}/sock`).replaceAll("/var/run", `${dir}/run`);
}

/** Worker lcores 1 and 2 of the files mapped onto this 2-CPU machine's CPU 1 (a vio4wd option). */
const LCORES = ["--lcores", "0@0,1@1,2@1"];

Deno.test("drop-in: the original's shipped file passes config check and starts the daemon with ZeroMQ port control, core scheduling and client mode", async () => {
  await using w = await World.create("shipped");
  await Deno.mkdir(`${w.dir}/run`);
  const file = `${w.dir}/virtioforwarder`;
  // vio4wd's one addition: the VF stand-in below is a net_null vdev, which clients may add only
  // when allowed (the SR-IOV VFs the original's clients name need nothing)
  await Deno.writeTextFile(
    file,
    movePaths(fixture("shipped.virtioforwarder"), w.dir) + "VIO4WD_DEVARGS_ALLOW=net_null\n",
  );
  const ep = (name: string) => `ipc://${w.dir}/run/virtio-forwarder/${name}`;

  // the file's workers (CPUs 1 and 2) exist on the hosts it was written for; this one has two CPUs
  const check = await runVio4wd(["config", "check", file], { VIO4WD_SYSFS_ROOT: fakeCpus(`${w.dir}/sys`, "0-3") });
  assertEq(check.code, 0, `config check: ${check.stderr}`);
  assert(check.stderr.includes("VIRTIOFWD_IPC_PORT_CONTROL is ignored"), `IPC warning: ${check.stderr}`);
  const show = await runVio4wd(["config", "show", "--config", file]);
  assertEq(show.stdout.split("\n").filter((l) => l.startsWith("note: VIRTIOFWD_BINARY")).length, 1, "said once");

  // The VM of relay 0 listens (QEMU's side in client mode) before the daemon comes.
  const vm = w.testpmd({ vdevs: [virtioUser(w.vmSocket(0), { server: true })] });
  const d = await w.daemon([], { verbatim: { file, stats: ep("stats") }, args: LCORES });
  await vm;
  await d.untilVm(0, 15_000); // client mode: the daemon dialled the VM's socket
  assert(d.log.includes(`port control: ${ep("port_control")}`), "ZeroMQ port control, not IPC");
  assert(d.log.includes("VIRTIOFWD_IPC_PORT_CONTROL is ignored"), "the ignored IPC setting is logged");

  const add = await runVio4wd([
    "port",
    "add",
    "--virtio-id",
    "0",
    "--device",
    "net_null0",
    "--zmq-ep",
    ep("port_control"),
  ]);
  assertEq(add.code, 0, `port add over the shipped endpoint: ${add.stdout}${add.stderr}`);
  const pin = await runVio4wd(["pin", "--zmq-ep", ep("core_sched"), "--stats-ep", ep("stats")]);
  assertEq(pin.code, 0, `core scheduling endpoint: ${pin.stdout}${pin.stderr}`);
  assert(pin.stdout.includes("== 01 ==") && pin.stdout.includes("== 02 =="), `workers 1 and 2: ${pin.stdout}`);
  const relay0 = (await d.status()).find((r) => r.id === 0);
  assertEq(relay0?.active, true, "relay 0 has its VF and its VM");
});

Deno.test("drop-in: the documented every-variable file passes config check and starts the daemon", async () => {
  await using w = await World.create("documented");
  await Deno.mkdir(`${w.dir}/run`);
  const file = `${w.dir}/virtioforwarder`;
  await Deno.writeTextFile(file, movePaths(fixture("documented.virtioforwarder"), w.dir));
  // the file's workers (CPUs 1 and 2) exist on the hosts it was written for; this one has two CPUs
  const check = await runVio4wd(["config", "check", file], { VIO4WD_SYSFS_ROOT: fakeCpus(`${w.dir}/sys`, "0-3") });
  assertEq(check.code, 0, `config check: ${check.stderr}`);
  assertEq(check.stderr, "", "no warning");
  const d = await w.daemon([], {
    verbatim: { file, stats: `ipc://${w.dir}/run/virtio-forwarder/stats` },
    args: LCORES,
  });
  // its static VFs are PCI addresses this machine does not have: logged, the daemon runs on
  await d.waitLog(/static VF 0000:05:08\.1=1: .*cannot probe device/);
  assert(d.log.includes("ready: 64 vhost-user socket(s)"), "every socket registered");
});

Deno.test("drop-in: daemon options as the original's parser treats them: unknown short option and extra argument exit 1, unknown long option is a warning", async () => {
  const unknown = await runVio4wd(["daemon", "-X"]);
  assertEq(unknown.code, 1, "unknown short option");
  assert(unknown.stderr.includes("Unknown option 'X' (58)"), unknown.stderr);
  const extra = await runVio4wd(["daemon", "-C1", "stray"]);
  assertEq(extra.code, 1, "extra argument");
  assert(extra.stderr.includes("Unhandled extra option 'stray'"), extra.stderr);
  const ignored = await runVio4wd(["daemon", "--no-such-option", "--cpu=1", "-v"]);
  assertEq(ignored.code, 0, "unknown long option ignored, --cpu= a prefix of --cpus");
  assert(ignored.stderr.includes("unknown option '--no-such-option' ignored"), ignored.stderr);
});

Deno.test("drop-in: the units answer to the original's names, the scheduler unit runs no shell and exits 0 when scheduling is off", async () => {
  const unit = (name: string) => Deno.readTextFileSync(new URL(`../scripts/systemd/${name}`, import.meta.url));
  const daemon = unit("virtio-forwarder.service"), sched = unit("vio4wd_core_scheduler.service");
  assert(daemon.includes("Alias=vio4wd.service") && daemon.includes("SyslogIdentifier=virtio-forwarder"), daemon);
  assert(sched.includes("Requires=virtio-forwarder.service") && sched.includes("Alias=vio4wd-sched.service"), sched);
  const exec = sched.split("\n").find((l) => l.startsWith("ExecStart="))!;
  assertEq(exec, "ExecStart=/usr/bin/vio4wd sched --config /etc/default/virtioforwarder --if-enabled", "no shell");
  assert(!/bash|\/bin\/sh/.test(sched), "no shell anywhere in the scheduler unit");
  await using w = await World.create("schedoff");
  const file = `${w.dir}/virtioforwarder`;
  for (const value of ["", "false", "yes"]) {
    await Deno.writeTextFile(file, `VIO4WD_CORE_SCHED_ENABLE=${value}\n`);
    const t0 = performance.now();
    const r = await runVio4wd(["sched", "--config", file, "--if-enabled"]);
    assertEq(r.code, 0, `VIO4WD_CORE_SCHED_ENABLE=${value}: ${r.stderr}`);
    assert(r.stderr.includes("core scheduling is off"), r.stderr);
    assert(performance.now() - t0 < 10_000, "exits at once");
  }
});

Deno.test("drop-in: VIRTIOFWD_BIND_VFIO_PCI binds the listed VFs before DPDK starts (override, unbind, probe) and a device that does not move is logged, not fatal", async () => {
  await using w = await World.create("bind");
  const sys = `${w.dir}/sys`;
  fakeSysfs(sys, [1]);
  const dev = `${sys}/bus/pci/devices/0000:05:08.1`;
  Deno.mkdirSync(`${sys}/bus/pci/drivers/ixgbevf`, { recursive: true });
  Deno.symlinkSync(`${sys}/bus/pci/drivers/ixgbevf`, `${dev}/driver`);
  const d = await w.daemon(["VIRTIOFWD_BIND_VFIO_PCI=05:08.1"], { env: { VIO4WD_SYSFS_ROOT: sys } });
  // no kernel behind the fake tree: the probe moves nothing, which the daemon reports and survives
  const line = d.log.split("\n").findIndex((l) =>
    l.includes("VIRTIOFWD_BIND_VFIO_PCI: 0000:05:08.1: still on ixgbevf")
  );
  const start = d.log.split("\n").findIndex((l) => l.includes("Starting virtio-forwarder"));
  assert(line >= 0 && line < start, `bound before DPDK starts:\n${d.log.slice(0, 1500)}`);
  assertEq(Deno.readTextFileSync(`${sys}/bus/pci/drivers/ixgbevf/unbind`), "0000:05:08.1", "unbound from ixgbevf");
  assertEq(Deno.readTextFileSync(`${sys}/bus/pci/drivers_probe`), "0000:05:08.1", "probed again");
  assertEq(Deno.readTextFileSync(`${dev}/driver_override`), "\0", "override cleared");
});

Deno.test("drop-in: blank socket owner and group give the sockets to libvirt-qemu:kvm; SIGHUP, SIGUSR1 and SIGUSR2, which end the original without cleanup, leave the daemon serving", async () => {
  await using w = await World.create("signals");
  const d = await w.daemon(["VIRTIOFWD_STATIC_VFS=net_null0=0", "VIRTIOFWD_SOCKET_OWNER=", "VIRTIOFWD_SOCKET_GROUP="]);
  const id = (args: string[]) => Number(new TextDecoder().decode(new Deno.Command("id", { args }).outputSync().stdout));
  const st = Deno.statSync(w.vmSocket(0));
  assertEq(`${st.uid}:${st.gid}`, `${id(["-u", "libvirt-qemu"])}:${id(["-g", "libvirt-qemu"])}`, "socket owner");
  assertEq(st.mode! & 0o777, 0o660, "socket mode");
  for (const sig of ["SIGHUP", "SIGUSR1", "SIGUSR2"] as const) Deno.kill(d.pid, sig);
  await d.waitLog(/SIGUSR2: ignored/);
  await d.waitLog(/relay-status \[\{"id":0/);
  assertEq((await d.status()).map((r) => r.id).join(","), "0", "still answering");
});

Deno.test("drop-in: by default the daemon and the worker threads DPDK creates run at nice -20, as the original's nice(-20); VIO4WD_NICE=0 leaves them alone", async () => {
  await using w = await World.create("nice");
  /** Each thread's name and nice value (ps(1): Deno reads /proc only with --allow-all). */
  const threads = (pid: number) =>
    new TextDecoder().decode(
      new Deno.Command("ps", { args: ["-L", "-o", "ni=,comm=", "-p", String(pid)], stdout: "piped" }).outputSync()
        .stdout,
    ).trim().split("\n").map((l) => {
      const m = /^\s*(-?\d+)\s+(.*)$/.exec(l)!;
      return { name: m[2], nice: Number(m[1]) };
    });
  // a blank line after the rig's VIO4WD_NICE=0: the default
  let d = await w.daemon(["VIO4WD_NICE=", "VIRTIOFWD_STATIC_VFS=net_null0=0"]);
  const workers = threads(d.pid).filter((t) => t.name.startsWith("rte-worker"));
  assert(workers.length > 0, `worker threads: ${JSON.stringify(threads(d.pid))}`);
  assertEq(workers.map((t) => t.nice).join(), workers.map(() => -20).join(), "the workers' nice");
  assertEq(await d.stop(), 0, "exit status");
  d = await w.daemon(["VIO4WD_NICE=0", "VIRTIOFWD_STATIC_VFS=net_null0=0"]);
  assert(threads(d.pid).every((t) => t.nice === 0), "VIO4WD_NICE=0: every thread at 0");
});
