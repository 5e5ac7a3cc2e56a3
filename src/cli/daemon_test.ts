import { assertEq, assertJsonEq } from "../../tests/rigs/assert.ts";
import { normalizeOriginalArgs } from "./daemon.ts";

/** [arguments as an operator's script passes them, what the parser gets, warnings, error] */
const TABLE: [string[], string[], number, string | null][] = [
  [["-C1,2"], ["--cpus", "1,2"], 0, null],
  [["-C", "1,2"], ["--cpus", "1,2"], 0, null],
  [["--cpus=1,2"], ["--cpus", "1,2"], 0, null],
  [["--cpus", "1,2"], ["--cpus", "1,2"], 0, null],
  [["--cpu=1,2"], ["--cpus", "1,2"], 0, null], // a unique prefix, as getopt_long
  [["--master=3"], ["--master-lcore", "3"], 0, null],
  [["-JR"], ["--enable-jumbo", "--enable-mrgbuf"], 0, null], // clustered flags
  [["-JC1"], ["--enable-jumbo", "--cpus", "1"], 0, null],
  [["-Z"], ["--zmq-port-control-ep", "ipc:///var/run/virtio-forwarder/port_control"], 0, null],
  [["-Zipc:///run/pc"], ["--zmq-port-control-ep", "ipc:///run/pc"], 0, null],
  [["--zmq-stats-ep=ipc:///run/s"], ["--zmq-stats-ep", "ipc:///run/s"], 0, null],
  [["-s"], ["--zmq-core-sched-ep", "ipc:///var/run/virtio-forwarder/core_sched"], 0, null],
  [["--nodaemon=log_syslog", "-n", "-C1"], ["--cpus", "1"], 0, null],
  [
    ["-P0000:05:08.1=1", "-P", "0000:05:08.2=2"],
    ["--add-pci-vf", "0000:05:08.1=1", "--add-pci-vf", "0000:05:08.2=2"],
    0,
    null,
  ],
  [["--foo", "-C1"], ["--cpus", "1"], 1, null], // unknown long: ignored, as the original
  [["--vhost=x", "-C1"], ["--cpus", "1"], 1, null], // ambiguous: ignored, as the original
  [["-X"], [], 0, "Unknown option 'X' (58)"],
  [["-C1", "stray"], ["--cpus", "1"], 0, "Unhandled extra option 'stray'"],
  [["-C"], [], 0, "Missing argument for option 'C'"],
  [["-C1", "--", "stray"], ["--cpus", "1"], 0, null], // after -- nothing more is read
];

for (const [args, want, warnings, error] of TABLE) {
  Deno.test(`daemon arguments as getopt_long reads them: ${args.join(" ")}`, () => {
    const n = normalizeOriginalArgs(args);
    assertEq(n.error, error, "error");
    if (error === null) assertJsonEq(n.args, want, "rewritten arguments");
    assertEq(n.warnings.length, warnings, `warnings: ${n.warnings.join("; ")}`);
  });
}
