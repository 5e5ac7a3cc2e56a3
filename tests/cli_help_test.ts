/** The subcommands' --help output, what operators read first, and what config check reports. */

import { runVio4wd } from "./rigs/daemon_process.ts";
import { assert, assertEq } from "./rigs/assert.ts";

const COMMANDS = [
  ["daemon"],
  ["config", "check"],
  ["port", "add"],
  ["port", "query-pci"],
  ["stats"],
  ["pin"],
  ["sched"],
  ["monitor"],
  ["demo"],
  ["doctor"],
  ["vm-config"],
  ["upgrade"],
];

Deno.test("every subcommand's --help ends with its examples, one command per line, and quotes no plain text", async () => {
  for (const cmd of COMMANDS) {
    const out = await runVio4wd([...cmd, "--help"]);
    assertEq(out.code, 0, `vio4wd ${cmd.join(" ")} --help exit status`);
    const lines = out.stdout.trimEnd().split("\n");
    const at = lines.findIndex((l) => /^Examples?:$/.test(l));
    if (at < 0) throw new Error(`vio4wd ${cmd.join(" ")} --help: no 'Examples:' line of its own:\n${out.stdout}`);
    const examples = lines.slice(at + 1);
    const bad = examples.filter((l) => !/^ {2}vio4wd \S/.test(l) || / {3}vio4wd /.test(l));
    if (examples.length === 0 || bad.length) {
      throw new Error(`vio4wd ${cmd.join(" ")} --help: examples not one per line: ${JSON.stringify(bad)}`);
    }
    if (lines[0].startsWith('"')) throw new Error(`vio4wd ${cmd.join(" ")} --help: quoted summary '${lines[0]}'`);
  }
});

Deno.test("config check says what the daemon would refuse at start: exit 0 with a warning for a stats endpoint it will not open, 1 with --strict, 1 when the daemon would not start", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/c`;
    // CPU 1 only: this suite runs on 2-CPU machines, where the default 1,2 would not start
    await Deno.writeTextFile(file, "VIRTIOFWD_CPU_MASK=1\nVIRTIOFWD_ZMQ_STATS_EP=tcp://0.0.0.0:15999\n");
    let r = await runVio4wd(["config", "check", file]);
    assertEq(r.code, 0, `warnings only: ${r.stderr}`);
    assert(
      r.stderr.includes(`warning: ${file}:2: VIRTIOFWD_ZMQ_STATS_EP=tcp://0.0.0.0:15999: the daemon will not open it`),
      r.stderr,
    );
    assertEq((await runVio4wd(["config", "check", "--strict", file])).code, 1, "--strict");
    // --config FILE as every other command takes it
    r = await runVio4wd(["config", "check", "--config", file]);
    assertEq(`${r.code} ${r.stdout.trim()}`, `0 ${file}: OK (1 warning(s) above)`, "--config FILE");
    r = await runVio4wd(["config", "check", "--config", file, "/dev/null"]);
    assertEq(r.code, 2, `two different files: ${r.stderr}`);
    const theirs = `${dir}/theirs`;
    await Deno.mkdir(theirs);
    await Deno.chown(theirs, 65534, 65534);
    await Deno.writeTextFile(file, `VIRTIOFWD_PID_DIR=${theirs}\n`);
    r = await runVio4wd(["config", "check", file]);
    assertEq(r.code, 1, `the daemon would not start: ${r.stderr}`);
    assert(r.stdout.includes("the daemon would not start"), r.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("-h prints the help as the manual says, for vio4wd and a subcommand; the footer names the manual; config show's jq example reads a value", async () => {
  const top = await runVio4wd(["-h"]);
  assertEq(top.code, 0, `vio4wd -h: ${top.stderr}`);
  assert(top.stdout.includes("Usage: vio4wd") && top.stdout.includes("Manual: docs/manual.md"), top.stdout.slice(-400));
  const sub = await runVio4wd(["config", "show", "-h"]);
  assertEq(sub.code, 0, `config show -h: ${sub.stderr}`);
  assert(sub.stdout.includes("jq .variables.VIRTIOFWD_CPU_MASK.value"), sub.stdout);
  const shown = JSON.parse((await runVio4wd(["config", "show", "--json", "--config", "/dev/null"])).stdout);
  assertEq(JSON.stringify(shown.variables.VIRTIOFWD_CPU_MASK.value), "[1,2]", "the path the example reads");
});

Deno.test("bad arguments exit 2 as documented, with the error alone (not every command's usage); port add without --virtio-id is refused here, not sent", async () => {
  for (
    const [args, want] of [
      [["port", "add", "--virtio-id", "abc"], /--virtio-id.*Expected a valid integer/],
      [["port", "add", "--bogus"], /Unexpected option or subcommand: `--bogus`/],
      [["port", "add", "--pci-addr", "05:08.1"], /--virtio-id N is required/],
      // monitor takes --zmq-ep as stats does: no daemon there is "no answer" (2), not a bad option
      [["monitor", "--once", "--zmq-ep", "ipc:///nonexistent/stats"], /no answer from ipc:\/\/\/nonexistent\/stats/],
    ] as [string[], RegExp][]
  ) {
    const r = await runVio4wd(args);
    assertEq(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert(want.test(r.stderr), `${args.join(" ")}: ${r.stderr}`);
    assert(!r.stderr.includes("vio4wd daemon [--config"), `${args.join(" ")}: no global usage before the error`);
  }
});

Deno.test("config show says which port-control source is active (ZeroMQ, the IPC file or OVSDB, the original's order) and what a blank socket owner or group means", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string, RegExp][] = [
      [
        "VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///run/x/pc\nVIRTIOFWD_IPC_PORT_CONTROL=y\n",
        "zmq",
        /^port control: ZeroMQ at ipc:\/\/\/run\/x\/pc /m,
      ],
      ["VIRTIOFWD_IPC_PORT_CONTROL=y\n", "ipc", /^port control: the IPC file \/tmp\/vio_cmd /m],
      [
        "VIRTIOFWD_OVSDB_SOCK_PATH=/run/o/db.sock\n",
        "ovsdb",
        /^port control: the OVSDB monitor at \/run\/o\/db\.sock /m,
      ],
    ];
    for (const [text, mode, line] of cases) {
      await Deno.writeTextFile(`${dir}/f`, text);
      const shown = await runVio4wd(["config", "show", "--config", `${dir}/f`]);
      assert(
        line.test(shown.stdout),
        `${mode}: ${shown.stdout.split("\n").filter((l) => l.startsWith("port")).join()}`,
      );
      const json = JSON.parse((await runVio4wd(["config", "show", "--json", "--config", `${dir}/f`])).stdout);
      assertEq(json.port_control.mode, mode, "--json port_control.mode");
    }
    await Deno.writeTextFile(`${dir}/f`, "VIRTIOFWD_SOCKET_OWNER=\nVIRTIOFWD_SOCKET_GROUP=\n");
    const shown = await runVio4wd(["config", "show", "--config", `${dir}/f`]);
    assert(/^VIRTIOFWD_SOCKET_OWNER\s+\(blank: libvirt-qemu/m.test(shown.stdout), shown.stdout);
    assert(/^VIRTIOFWD_SOCKET_GROUP\s+\(blank: kvm/m.test(shown.stdout), shown.stdout);
    const json = JSON.parse((await runVio4wd(["config", "show", "--json", "--config", `${dir}/f`])).stdout);
    assert(json.variables.VIRTIOFWD_SOCKET_OWNER.blank_means.startsWith("libvirt-qemu"), "--json blank_means");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
