/**
 * The Debian package: `deno task deb` builds it lintian-clean; its payload runs from an extracted
 * tree (version, the shipped conffile, units, man page, completions); installed on this machine
 * (CI runs as root on a throw-away machine) it relays real packets from /usr/bin/vio4wd, keeps an
 * edited conffile when installed over itself, and leaves nothing but the conffile on removal and
 * nothing on purge. The man page is what the program's help says now.
 */

import { currentManPage } from "../scripts/gen_man.ts";
import { World } from "./rigs/world.ts";
import { memifPair, virtioUser } from "./rigs/devices.ts";
import { num, until } from "./rigs/daemon_process.ts";
import { assert, assertEq } from "./rigs/assert.ts";
import { fakeCpus } from "./rigs/sysfs.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const VERSION: string = JSON.parse(Deno.readTextFileSync(`${ROOT}package.json`)).version;
const DEB = `${ROOT}dist/vio4wd_${VERSION}_amd64.deb`;
const dec = new TextDecoder();

async function run(cmd: string, args: string[], o: { cwd?: string; env?: Record<string, string> } = {}) {
  const out = await new Deno.Command(cmd, { args, cwd: o.cwd, env: o.env, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
}

async function ok(cmd: string, args: string[], o: { cwd?: string; env?: Record<string, string> } = {}) {
  const r = await run(cmd, args, o);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}\n${r.out}${r.err}`);
  return r.out;
}

/** Built once per run, by the first test that needs it. */
let built: Promise<string> | null = null;
const build = () => built ??= ok(`${ROOT}scripts/build-deb.sh`, []);

Deno.test("package: the man page is what the commands' help and the configuration variables say now (run 'deno task man')", async () => {
  const committed = await Deno.readTextFile(`${ROOT}docs/vio4wd.8`);
  assert(committed === await currentManPage(), "docs/vio4wd.8 is stale: run 'deno task man'");
});

Deno.test("package: the man page renders within 80 columns with no warning from man, and has OPTIONS per command, ENVIRONMENT, EXIT STATUS and FILES", async () => {
  const r = await run("man", ["--warnings", "-l", `${ROOT}docs/vio4wd.8`], {
    env: { MANWIDTH: "80", PATH: Deno.env.get("PATH")!, MAN_KEEP_FORMATTING: "" },
  });
  assertEq(r.code, 0, `man: ${r.err}`);
  assertEq(r.err.trim(), "", "man's warnings");
  const wide = r.out.split("\n").filter((l) => [...l].length > 80);
  assertEq(wide.length, 0, `lines over 80 columns:\n${wide.join("\n")}`);
  for (const section of ["COMMANDS", "CONFIGURATION", "ENVIRONMENT", "EXIT STATUS", "FILES"]) {
    assert(new RegExp(`^${section}$`, "m").test(r.out), `section ${section}`);
  }
  assert(/--config FILE/.test(r.out) && /--virtio-id N/.test(r.out), "each command's options");
});

Deno.test("package: deno task deb builds it lintian-clean; the payload has everything and runs from an extracted tree", async () => {
  const log = await build();
  assert(log.includes("lintian: no errors"), log);
  const fields = await ok("dpkg-deb", ["-f", DEB]);
  for (const want of ["Package: vio4wd", "Conflicts: virtio-forwarder", "Replaces: virtio-forwarder"]) {
    assert(fields.includes(want), `${want} in:\n${fields}`);
  }
  const depends = fields.split("\n").find((l) => l.startsWith("Depends: "))!;
  for (const dep of ["libzmq5", "librte-eal23", "librte-vhost23", "librte-net-bond23", "libc6"]) {
    assert(depends.includes(dep), `Depends has ${dep}: ${depends}`);
  }
  const files = await ok("dpkg-deb", ["-c", DEB]);
  for (
    const f of [
      "./usr/bin/vio4wd",
      "./usr/lib/vio4wd/deno",
      "./usr/lib/vio4wd/vio4wd.js",
      "./usr/lib/vio4wd/libvio4wd_shim.so",
      "./lib/systemd/system/virtio-forwarder.service",
      "./lib/systemd/system/vio4wd_core_scheduler.service",
      "./etc/default/virtioforwarder",
      "./usr/share/bash-completion/completions/vio4wd",
      "./usr/share/zsh/vendor-completions/_vio4wd",
      "./usr/share/fish/vendor_completions.d/vio4wd.fish",
      "./usr/share/man/man8/vio4wd.8.gz",
      "./usr/share/doc/vio4wd/manual.md.gz",
      "./usr/share/doc/vio4wd/copyright",
    ]
  ) assert(files.includes(` ${f}\n`), `${f} in the payload`);
  assertEq((await ok("dpkg-deb", ["--info", DEB, "conffiles"])).trim(), "/etc/default/virtioforwarder", "conffiles");

  await using w = await World.create("debx");
  const x = `${w.dir}/x`;
  await ok("dpkg-deb", ["-x", DEB, x]);
  const home = { HOME: w.dir, PATH: Deno.env.get("PATH")! };
  assert((await ok(`${x}/usr/bin/vio4wd`, ["--version"], { env: home })).startsWith(`vio4wd ${VERSION}\n`), "version");
  // the shipped file's workers (CPUs 1 and 2) on a host that has them: this one has two CPUs
  await ok(`${x}/usr/bin/vio4wd`, ["config", "check", `${x}/etc/default/virtioforwarder`], {
    env: { ...home, VIO4WD_SYSFS_ROOT: fakeCpus(`${w.dir}/sys`, "0-3") },
  });
  // the units as installed, pointing into the extracted tree so that verify finds the executable
  await Deno.mkdir(`${w.dir}/units`);
  for (const u of ["virtio-forwarder.service", "vio4wd_core_scheduler.service"]) {
    const text = (await Deno.readTextFile(`${x}/lib/systemd/system/${u}`)).replaceAll(
      "/usr/bin/vio4wd",
      `${x}/usr/bin/vio4wd`,
    )
      .replaceAll("/etc/default/virtioforwarder", `${x}/etc/default/virtioforwarder`);
    await Deno.writeTextFile(`${w.dir}/units/${u}`, text);
  }
  // as the original's units: after the network (VFs exist), before libvirt; its syslog facility;
  // a configuration error (exit 2) is not retried every 2 s
  const daemonUnit = await Deno.readTextFile(`${w.dir}/units/virtio-forwarder.service`);
  for (
    const want of [
      "After=network-online.target",
      "Wants=network-online.target",
      "Before=libvirtd.service virtqemud.service",
      "SyslogFacility=local0",
      "RestartPreventExitStatus=2",
    ]
  ) assert(daemonUnit.split("\n").some((l) => l.startsWith(want)), `virtio-forwarder.service has ${want}`);
  const verify = await run("systemd-analyze", ["verify", "virtio-forwarder.service", "vio4wd_core_scheduler.service"], {
    cwd: `${w.dir}/units`,
  });
  assertEq(`${verify.code} ${verify.err.trim()}`, "0 ", "systemd-analyze verify");
  const man = await ok("man", ["-l", `${x}/usr/share/man/man8/vio4wd.8.gz`], { env: { ...home, MANPAGER: "cat" } });
  assert(man.includes("VIRTIOFWD_CPU_MASK") && man.includes("vio4wd daemon"), "the man page renders");
  const completion = await ok("bash", [
    "-c",
    `source ${x}/usr/share/bash-completion/completions/vio4wd && complete -p vio4wd`,
  ]);
  assert(completion.includes("vio4wd"), `bash completion: ${completion}`);
});

Deno.test("package: installed on this machine it relays from /usr/bin/vio4wd, keeps an edited conffile over a reinstall, and leaves only the conffile on removal, nothing on purge", async () => {
  await build();
  await using w = await World.create("debi");
  w.defer(() => run("dpkg", ["--purge", "vio4wd"])); // whatever happens, the machine is left without it
  const env = { DEBIAN_FRONTEND: "noninteractive", PATH: Deno.env.get("PATH")! };
  await ok("apt-get", ["install", "-y", "-q", "--no-install-recommends", DEB], { env });
  const listed = (await ok("dpkg", ["-L", "vio4wd"])).split("\n").filter((p) => p !== "" && p !== "/.");

  const wire = memifPair(`${w.dir}/vf.sock`);
  const d = await w.daemon([`VIRTIOFWD_STATIC_VFS=${wire.vf}=0`], { executable: "/usr/bin/vio4wd" });
  const pmd = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0)), wire.peer] });
  await pmd.waitLinksUp();
  await pmd.send("set fwd rxonly");
  await pmd.send("start tx_first 2");
  await until("64 packets each way through the installed daemon", async () => {
    const r = (await d.status()).find((x) => x.id === 0);
    return num(r?.vfToVm.pktsTxToVm) === 64 && num(r?.vmToVf.pktsTxToVf) === 64;
  });
  assertEq(await d.stop(), 0, "daemon exit status");

  const conf = "/etc/default/virtioforwarder";
  await Deno.writeTextFile(conf, "# edited by the operator\nVIRTIOFWD_LOG_LEVEL=5\n", { append: true });
  await ok("dpkg", ["-i", DEB], { env });
  assert((await Deno.readTextFile(conf)).includes("# edited by the operator"), "the edited conffile is kept");

  await ok("apt-get", ["remove", "-y", "-q", "vio4wd"], { env });
  const left = listed.filter((p) => {
    try {
      return !Deno.statSync(p).isDirectory;
    } catch {
      return false;
    }
  });
  assertEq(left.join(" "), conf, "files left after removal");
  await ok("dpkg", ["--purge", "vio4wd"], { env });
  let gone = false;
  try {
    Deno.statSync(conf);
  } catch {
    gone = true;
  }
  assert(gone, "purge removes the conffile");
  assertEq((await run("dpkg", ["-s", "vio4wd"])).code, 1, "not installed");
});

/** A stand-in for the original's package: named virtio-forwarder, owning the original's shipped file as a conffile. */
async function originalPackage(dir: string): Promise<string> {
  const root = `${dir}/vf-root`;
  await Deno.mkdir(`${root}/DEBIAN`, { recursive: true });
  await Deno.mkdir(`${root}/etc/default`, { recursive: true });
  await Deno.mkdir(`${root}/usr/lib/virtio-forwarder`, { recursive: true });
  const shipped = (await Deno.readTextFile(`${ROOT}tests/fixtures/shipped.virtioforwarder`))
    .replace("@BINDIR@/virtio-forwarder", "/usr/bin/virtio-forwarder"); // as its build fills it in
  await Deno.writeTextFile(`${root}/etc/default/virtioforwarder`, shipped);
  await Deno.writeTextFile(`${root}/usr/lib/virtio-forwarder/virtioforwarder_port_control.py`, "# the original's\n");
  await Deno.writeTextFile(`${root}/DEBIAN/conffiles`, "/etc/default/virtioforwarder\n");
  await Deno.writeTextFile(
    `${root}/DEBIAN/control`,
    "Package: virtio-forwarder\nVersion: 1.2.99\nArchitecture: all\nMaintainer: test <test@example.invalid>\n" +
      "Description: stand-in for the original virtio-forwarder package\n",
  );
  const deb = `${dir}/virtio-forwarder_1.2.99_all.deb`;
  await ok("dpkg-deb", ["--root-owner-group", "-b", root, deb]);
  return deb;
}

Deno.test("package: over an installed virtio-forwarder (a stand-in owning the original's conffile) the configuration in effect is the same when it was not edited, and an edited one is kept (dpkg's conffile handling); the original's clients are at its paths", async () => {
  const deb = await build();
  await using w = await World.create("debtake");
  const original = await originalPackage(w.dir);
  const env = { DEBIAN_FRONTEND: "noninteractive", PATH: Deno.env.get("PATH")! };
  const conf = "/etc/default/virtioforwarder";
  const purge = () => run("dpkg", ["--purge", "vio4wd", "virtio-forwarder"], { env });
  w.defer(async () => {
    await purge();
    await Deno.remove(`${conf}.dpkg-dist`).catch(() => {});
  });
  /** Each variable's effective value (sources differ: the files are laid out differently). */
  const effective = async () => {
    const out = JSON.parse(await ok(`${ROOT}vio4wd`, ["config", "show", "--json", "--config", conf])) as {
      variables: Record<string, { value: unknown }>;
    };
    return JSON.stringify(Object.fromEntries(Object.entries(out.variables).map(([k, v]) => [k, v.value])));
  };

  await purge();
  await ok("dpkg", ["-i", original], { env });
  const before = await effective();
  const install = await ok("apt-get", ["install", "-y", "-q", "--no-install-recommends", DEB], { env });
  const status = (await run("dpkg-query", ["-W", "-f=${Status}", "virtio-forwarder"])).out;
  assert(!status.includes(" installed"), `the original's package is removed (${status})`);
  assertEq(await effective(), before, `the same configuration in effect after the takeover (apt said:\n${install})`);
  for (const dir of ["/usr/lib/virtio-forwarder", "/usr/lib64/virtio-forwarder"]) {
    const r = await run(`${dir}/virtioforwarder_port_control.py`, ["--help"], { env: { ...env, HOME: w.dir } });
    assert(r.code === 0 && r.out.startsWith("usage: virtioforwarder_port_control.py"), `${dir}: ${r.err}`);
  }
  await purge();

  await ok("dpkg", ["-i", original], { env });
  await Deno.writeTextFile(conf, "# edited by the operator\nVIRTIOFWD_CPU_MASK=3\n", { append: true });
  const edited = await Deno.readTextFile(conf);
  await ok("apt-get", [
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
    DEB,
  ], { env });
  assertEq(await Deno.readTextFile(conf), edited, "the operator's file is kept as it was");
  assert(
    (await Deno.readTextFile(`${conf}.dpkg-dist`)).includes("VIO4WD_STATE_DIR="),
    "vio4wd's version beside it, as dpkg does for a kept conffile",
  );
  assert(deb.includes("lintian: no errors"), "the package built");
});
