/**
 * Operations: Prometheus metrics checked by promtool, systemd units checked by systemd-analyze,
 * libvirt snippets checked by virt-xml-validate; the README's first command, `vio4wd demo`.
 */

import { runVio4wd, STEPS_SHIM, until } from "./rigs/daemon_process.ts";
import { World } from "./rigs/world.ts";
import { assert, assertEq } from "./rigs/assert.ts";
import { virtioUser } from "./rigs/devices.ts";
import { hugepageFilesUnder } from "./rigs/testpmd.ts";
import { fakeCpus } from "./rigs/sysfs.ts";

for (const steps of [false, true]) {
  const what = steps
    ? "; on the STEPS=1 shim it also has the workers' busy cycles by step"
    : ", and no step split on the usual shim";
  Deno.test(`metrics: /metrics serves every relay's counters by direction and reason, and promtool accepts it${what}`, async () => {
    await using w = await World.create("metrics");
    const d = await w.daemon([
      "VIO4WD_METRICS_LISTEN=127.0.0.1:0",
      "VIRTIOFWD_STATIC_VFS=net_null0=0",
    ], steps ? { env: { VIO4WD_SHIM: STEPS_SHIM } } : {});
    const url = await d.metricsUrl();
    const idle = await (await fetch(url)).text();
    // no VM yet: the VF is stopped (as the original), nothing is received or dropped
    for (
      const want of [
        /^vio4wd_relay_rx_packets_total\{relay="0",direction="vf_to_vm"\} 0$/m,
        /^vio4wd_relay_dropped_packets_total\{relay="0",direction="vf_to_vm",reason="not_connected"\} 0$/m,
        /^vio4wd_relay_vm_connected\{relay="0"\} 0$/m,
        /^vio4wd_relay_info\{relay="0",socket=".*virtio-forwarder0\.sock",vf="net_null0",vf_to_vm_cpu="1",vm_to_vf_cpu="-1"\} 1$/m,
      ]
    ) {
      if (!want.test(idle)) throw new Error(`no ${want} in:\n${idle.slice(0, 3000)}`);
    }
    const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
    await vm.send("set fwd rxonly");
    await vm.send("start");
    await d.untilVm(0);
    await new Promise((r) => setTimeout(r, 300));
    const text = await (await fetch(url)).text();
    for (
      const want of [
        /^vio4wd_relay_rx_packets_total\{relay="0",direction="vf_to_vm"\} [1-9]\d*$/m, // net_null receives at once
        /^vio4wd_relay_tx_packets_total\{relay="0",direction="vf_to_vm"\} [1-9]\d*$/m,
        /^vio4wd_relay_dropped_packets_total\{relay="0",direction="vf_to_vm",reason="not_connected"\} \d+$/m,
        /^vio4wd_relay_vm_connected\{relay="0"\} 1$/m,
        /^vio4wd_relay_vf_attached\{relay="0"\} 1$/m,
        /^vio4wd_relay_info\{relay="0",socket=".*virtio-forwarder0\.sock",vf="net_null0",vf_to_vm_cpu="1",vm_to_vf_cpu="1"\} 1$/m,
        /^vio4wd_worker_busy_ratio\{cpu="1"\} [\d.e-]+$/m,
        /^vio4wd_worker_busy_cycles_total\{cpu="1"\} [1-9]\d*$/m,
        /^vio4wd_worker_idle_cycles_total\{cpu="1"\} \d+$/m,
        /^vio4wd_worker_rx_packets_total\{cpu="1"\} [1-9]\d*$/m,
        /^vio4wd_worker_bursts_total\{cpu="1"\} [1-9]\d*$/m,
        /^vio4wd_worker_long_passes_total\{cpu="1"\} \d+$/m,
        /^vio4wd_worker_cycles_per_packet\{cpu="1"\} [\d.e+-]+$/m,
        /^vio4wd_tsc_hz [1-9]\d*$/m,
        /^vio4wd_build_info\{version="[^"]+",dpdk="DPDK 22\.11[^"]*"\} 1$/m,
      ]
    ) {
      if (!want.test(text)) throw new Error(`no ${want} in:\n${text.slice(0, 3000)}`);
    }
    // every relay shown (here relay 0 with its VF and VM; the 63 others have their sockets), both
    // directions, every counter and drop reason as a number
    const valueIn = (t: string, re: string) => {
      const m = new RegExp(`^${re} (\\d+)$`, "m").exec(t);
      if (!m) throw new Error(`no ${re} in:\n${t.slice(0, 2000)}`);
      return Number(m[1]);
    };
    const shownRelays = new Set([...text.matchAll(/^vio4wd_relay_rx_packets_total\{relay="(\d+)"/gm)].map((m) => m[1]));
    assertEq(shownRelays.size, 64, "every relay with a socket or VF is shown");
    const at = (dir: string) => `\\{relay="0",direction="${dir}"`;
    for (const dir of ["vf_to_vm", "vm_to_vf"]) {
      for (const name of ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"]) {
        valueIn(text, `vio4wd_relay_${name}_total${at(dir)}\\}`);
      }
      for (const unit of ["packets", "bytes"]) {
        for (const reason of ["queue_full", "not_connected"]) {
          valueIn(text, `vio4wd_relay_dropped_${unit}_total${at(dir)},reason="${reason}"\\}`);
        }
      }
    }
    assert(valueIn(text, `vio4wd_relay_tx_packets_total${at("vf_to_vm")}\\}`) > 0, "VF->VM sent some");
    // the VF's own receive losses, per relay with a VF
    for (const name of ["vf_rx_missed_packets_total", "vf_rx_nombuf_total"]) {
      valueIn(text, `vio4wd_relay_${name}\\{relay="0"\\}`);
    }
    const stepLine = /^vio4wd_worker_step_cycles_total\{cpu="1",step="vf_rx"\} [1-9]\d*$/m;
    if (steps !== stepLine.test(text)) {
      throw new Error(`step cycles ${steps ? "missing" : "present"}:\n${text.slice(-3000)}`);
    }
    if (steps && !/^vio4wd_worker_step_cycles_total\{cpu="1",step="vm_enqueue"\} [1-9]\d*$/m.test(text)) {
      throw new Error(`no copy into the VM counted:\n${text.slice(-3000)}`);
    }
    const p = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    const stdin = p.stdin.getWriter();
    await stdin.write(new TextEncoder().encode(text));
    await stdin.close();
    const r = await p.output();
    const dec = new TextDecoder();
    if (!r.success) throw new Error(`promtool: ${dec.decode(r.stdout)}${dec.decode(r.stderr)}`);
    // the VM gone, its VF stops and the counters hold still: what came in was sent on or dropped
    await vm.close();
    await until("the relay's VM gone", async () => !(await d.status()).some((r) => r.id === 0 && r.vmToVf.active));
    const frozen = await (await fetch(url)).text();
    for (const dir of ["vf_to_vm", "vm_to_vf"]) {
      const n = (name: string) =>
        valueIn(frozen, `vio4wd_relay_${name}${at(dir)}${name.startsWith("dropped") ? "" : "\\}"}`);
      const dropped = ["queue_full", "not_connected"]
        .map((reason) => valueIn(frozen, `vio4wd_relay_dropped_packets_total${at(dir)},reason="${reason}"\\}`))
        .reduce((a, b) => a + b);
      assertEq(n("tx_packets_total") + dropped, n("rx_packets_total"), `${dir}: sent + dropped = received`);
    }
    const notFound = await fetch(url.replace(/\/metrics$/, "/other"));
    await notFound.body?.cancel();
    if (notFound.status !== 404) throw new Error(`/other: ${notFound.status}`);
  });
}

Deno.test("install.sh --prefix stages a working vio4wd, and systemd-analyze verify accepts its units", async () => {
  await using w = await World.create("install");
  const root = w.dir;
  const run = (cmd: string, args: string[], cwd?: string) =>
    new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  const script = new URL("../scripts/install.sh", import.meta.url).pathname;
  let r = await run(script, ["--prefix", root]);
  if (!r.success) throw new Error(`install.sh: ${dec.decode(r.stderr)}`);
  for (
    const f of [
      "usr/bin/vio4wd",
      "lib/systemd/system/virtio-forwarder.service",
      "lib/systemd/system/vio4wd_core_scheduler.service",
      "etc/default/virtioforwarder",
      "usr/share/bash-completion/completions/vio4wd",
      "usr/share/zsh/vendor-completions/_vio4wd",
      "usr/share/fish/vendor_completions.d/vio4wd.fish",
      "usr/lib/vio4wd/shim/build/libvio4wd_shim.so",
    ]
  ) await Deno.stat(`${root}/${f}`);
  // the shipped file's workers (CPUs 1 and 2) on a host that has them: this one has two CPUs
  r = await new Deno.Command(`${root}/usr/bin/vio4wd`, {
    args: ["config", "check", `${root}/etc/default/virtioforwarder`],
    env: { VIO4WD_SYSFS_ROOT: fakeCpus(`${root}/sys`, "0-3") },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`installed vio4wd config check: ${dec.decode(r.stderr)}`);
  // The units as installed, with paths pointing into the staging root so that verify can check them.
  await Deno.mkdir(`${root}/verify`);
  for (const u of ["virtio-forwarder.service", "vio4wd_core_scheduler.service"]) {
    const text = (await Deno.readTextFile(`${root}/lib/systemd/system/${u}`))
      .replaceAll("/usr/bin/vio4wd", `${root}/usr/bin/vio4wd`)
      .replaceAll("/etc/default/virtioforwarder", `${root}/etc/default/virtioforwarder`);
    await Deno.writeTextFile(`${root}/verify/${u}`, text);
  }
  r = await run(
    "systemd-analyze",
    ["verify", "virtio-forwarder.service", "vio4wd_core_scheduler.service"],
    `${root}/verify`,
  );
  if (!r.success || dec.decode(r.stderr).trim() !== "") {
    throw new Error(`systemd-analyze verify: ${dec.decode(r.stdout)}${dec.decode(r.stderr)}`);
  }
  r = await run(script, ["--prefix", root]); // again: the edited configuration is kept
  if (!dec.decode(r.stdout).includes("etc/default/virtioforwarder kept")) throw new Error(dec.decode(r.stdout));
});

Deno.test("vm-config: libvirt XML validates with virt-xml-validate in both socket modes; QEMU arguments carry path, queues and vectors", async () => {
  await using w = await World.create("vmconfig");
  const dir = w.dir;
  const conf = `${dir}/c.conf`;
  await Deno.writeTextFile(conf, `VIRTIOFWD_SOCKET_DIR=${dir}\nVIRTIOFWD_SOCKET_FNAME_PATTERN=vm%u.sock\n`);
  const dec = new TextDecoder();
  for (const extra of [[], ["--client"]]) {
    const r = await runVio4wd(["vm-config", "7", "--queues", "4", "--config", conf, ...extra]);
    if (r.code !== 0) throw new Error(r.stderr);
    if (!r.stdout.includes(`path='${dir}/vm7.sock' mode='${extra.length ? "server" : "client"}'`)) {
      throw new Error(r.stdout);
    }
    if (!r.stdout.includes("<driver queues='4'/>")) throw new Error(r.stdout);
    await Deno.writeTextFile(`${dir}/d.xml`, r.stdout);
    const v = await new Deno.Command("virt-xml-validate", {
      args: [`${dir}/d.xml`, "domain"],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!v.success) throw new Error(`virt-xml-validate ${extra}: ${dec.decode(v.stdout)}${dec.decode(v.stderr)}`);
  }
  const q = await runVio4wd(["vm-config", "7", "--queues", "4", "--qemu", "--config", conf]);
  for (const want of [`path=${dir}/vm7.sock,reconnect=1`, "queues=4", "mq=on,vectors=10", "share=on"]) {
    if (!q.stdout.includes(want)) throw new Error(`no '${want}' in:\n${q.stdout}`);
  }
  const bad = await runVio4wd(["vm-config", "64", "--config", conf]);
  if (bad.code === 0) throw new Error("relay 64 accepted");
});

Deno.test("doctor --json on this host: every check has a verdict, and the exit status follows the failures", async () => {
  const r = await runVio4wd(["doctor", "--json", "--config", "/dev/null"]);
  const out = JSON.parse(r.stdout);
  const failed = out.checks.filter((c: { status: string }) => c.status === "fail");
  if (r.code !== (failed.length ? 1 : 0)) throw new Error(`exit ${r.code} with failures ${JSON.stringify(failed)}`);
  for (const c of out.checks) {
    if (!["ok", "warn", "fail"].includes(c.status) || (c.status !== "ok" && !c.fix)) throw new Error(JSON.stringify(c));
  }
  if (!out.checks.some((c: { name: string }) => c.name === "hugepages")) throw new Error("no hugepages check");
});

Deno.test("the self-extracting dist/vio4wd runs --version, config check and stats against a daemon", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const dec = new TextDecoder();
  const build = await new Deno.Command(`${root}scripts/build-sfx.sh`, { stdout: "piped", stderr: "piped" }).output();
  if (!build.success) throw new Error(`build-sfx.sh: ${dec.decode(build.stderr)}`);
  await using w = await World.create("sfx");
  const home = `${w.dir}/home`;
  await Deno.mkdir(home);
  // VIO4WD_SYSFS_ROOT: the shipped file's workers (CPUs 1 and 2) on a host that has them; this one has two CPUs
  const fourCpus = fakeCpus(`${w.dir}/sys`, "0-3");
  const sfx = (args: string[]) =>
    new Deno.Command(`${root}dist/vio4wd`, {
      args,
      env: { VIO4WD_HOME: home, VIO4WD_SYSFS_ROOT: fourCpus },
      stdout: "piped",
      stderr: "piped",
    }).output();
  let r = await sfx(["--version"]);
  if (!r.success || !/^vio4wd \d/.test(dec.decode(r.stdout)) || !dec.decode(r.stdout).includes("DPDK 22.11")) {
    throw new Error(`--version: ${dec.decode(r.stdout)}${dec.decode(r.stderr)}`);
  }
  r = await sfx(["config", "check", `${root}scripts/virtioforwarder.default`]);
  if (!r.success) throw new Error(`config check: ${dec.decode(r.stderr)}`);
  const dir = w.dir;
  await w.daemon([`VIRTIOFWD_ZMQ_STATS_EP=ipc://${dir}/zmq/stats`]);
  const s = await sfx([
    "stats",
    "--zmq-ep",
    `ipc://${dir}/zmq/stats`,
    "--include-inactive",
    "--relay",
    "5",
    "--json",
  ]);
  if (!s.success) throw new Error(`stats: ${dec.decode(s.stderr)}`);
  const j = JSON.parse(dec.decode(s.stdout));
  if (j.status !== "OK" || j.relay[0].id !== 5) throw new Error(dec.decode(s.stdout));
});

Deno.test("vio4wd demo (the README's first command) relays real packets both ways through its own daemon, says PASS with balanced counts and no error, and leaves no hugepage file, DPDK run directory or temporary directory", async () => {
  const left = () => {
    const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name);
    return [
      ...hugepageFilesUnder("vio4wd-demo-"),
      ...names("/var/run/dpdk").filter((n) => n.startsWith("vio4wd-demo-")),
      ...names("/tmp").filter((n) => n.startsWith("vio4wd-demo-")),
    ];
  };
  const before = left();
  const r = await runVio4wd(["demo", "--seconds", "2", "--json"]);
  assertEq(r.code, 0, `demo exit status: ${r.stdout}${r.stderr}`);
  type Dir = { rx: number; tx: number; drops: number };
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
    result: string;
    vf_to_vm: Dir;
    vm_to_vf: Dir;
    vm_standin: { rx: number; tx: number };
  };
  assertEq(out.result, "PASS", "result");
  for (const [name, d] of [["VF->VM", out.vf_to_vm], ["VM->VF", out.vm_to_vf]] as const) {
    assert(d.tx > 1000, `${name}: packets relayed (${d.tx})`);
    assertEq(d.tx + d.drops, d.rx, `${name}: relayed + dropped = received`);
  }
  // what the VM stand-in sent is what the relay took from it
  assertEq(out.vm_to_vf.rx, out.vm_standin.tx, "VM->VF: taken = sent by the VM");
  assert(!/ (err|crit|alert|emerg|warning): /.test(r.stderr), `no error or warning: ${r.stderr}`);
  assertEq(left().filter((n) => !before.includes(n)).join(" "), "", "left behind");
});
