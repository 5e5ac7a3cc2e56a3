import { loadConfig } from "../config/config.ts";
import { assert, assertJsonEq } from "../../tests/rigs/assert.ts";
import { startupFindings } from "./refusals.ts";
import { fakeCpus } from "../../tests/rigs/sysfs.ts";

// a 4-CPU host, whatever this one has: the default CPU mask 1,2 is online there
const SYS = fakeCpus(Deno.makeTempDirSync({ prefix: "refusals-sys-" }), "0-3");
globalThis.addEventListener("unload", () => Deno.removeSync(SYS, { recursive: true }));
const startup = (text: string) => startupFindings(loadConfig(text, "f"), "/etc", SYS);
const findings = (text: string) => startup(text).map((f) => `${f.level} ${f.text.split(": ").slice(0, 2).join(": ")}`);

Deno.test("startup findings: endpoints the daemon will not open, or that every local user can use, are warnings naming the variable and its line", () => {
  assertJsonEq(findings("VIRTIOFWD_ZMQ_STATS_EP=tcp://0.0.0.0:15999\n"), [
    "warning f:1: VIRTIOFWD_ZMQ_STATS_EP=tcp://0.0.0.0:15999",
  ], "a non-loopback endpoint without the opt-in");
  const why = startup("VIRTIOFWD_ZMQ_STATS_EP=tcp://0.0.0.0:15999\n")[0].text;
  assert(why.includes("will not open it") && why.includes("VIO4WD_ZMQ_ALLOW_REMOTE"), why);
  assertJsonEq(findings("VIRTIOFWD_ZMQ_PORT_CONTROL_EP=tcp://127.0.0.1:5555\n"), [
    "warning f:1: VIRTIOFWD_ZMQ_PORT_CONTROL_EP=tcp://127.0.0.1:5555",
  ], "loopback");
  assertJsonEq(findings("VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc:///run/x/cs\n"), [
    "warning f:1: VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc:///run/x/cs",
  ], "core scheduling endpoint without VIO4WD_CORE_SCHED_ENABLE=true");
  assertJsonEq(
    findings("VIO4WD_METRICS_LISTEN=0.0.0.0:9464\n"),
    ["warning f:1: VIO4WD_METRICS_LISTEN=0.0.0.0:9464"],
    "metrics",
  );
  assertJsonEq(findings("VIRTIOFWD_ZMQ_STATS_EP=ipc:///run/vio4wd-test-none/stats\n"), [], "a clean file");
});

Deno.test("startup findings: a directory that fails the trust check is an error when the daemon would not start, a warning when it would start without it", () => {
  const root = Deno.makeTempDirSync();
  try {
    const theirs = `${root}/theirs`;
    Deno.mkdirSync(theirs);
    Deno.chownSync(theirs, 65534, 65534);
    assertJsonEq(findings(`VIRTIOFWD_ZMQ_STATS_EP=ipc://${theirs}/stats\n`), [
      `error f:1: VIRTIOFWD_ZMQ_STATS_EP=ipc://${theirs}/stats`,
    ], "an endpoint in another user's directory stops the start");
    assertJsonEq(findings(`VIRTIOFWD_PID_DIR=${theirs}\n`), [`error f:1: VIRTIOFWD_PID_DIR=${theirs}`], "PID dir");
    assertJsonEq(findings(`VIO4WD_SOCKET_DIRS_ALLOW=${theirs}\n`), [
      `warning f:1: VIO4WD_SOCKET_DIRS_ALLOW=${theirs}`,
    ], "an allowed socket directory ADD_SOCK would refuse");
    assertJsonEq(findings(`VIRTIOFWD_DYNAMIC_SOCKETS=y\nVIO4WD_STATE_DIR=${theirs}/state\n`), [
      `warning f:2: VIO4WD_STATE_DIR=${theirs}/state`,
    ], "a state directory the pairings cannot be kept in");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
