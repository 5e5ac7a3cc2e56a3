import { ConfigError, coreSchedEndpoint, loadConfig, portControlMode, VARIABLES } from "./config.ts";
import { assertEq, assertJsonEq } from "../../tests/rigs/assert.ts";
import { parseEnvFile } from "./envfile.ts";
import { BAD_VALUES as BAD } from "../../tests/fixtures/bad_config_values.ts";

const fixture = (name: string) => new URL(`../../tests/fixtures/${name}`, import.meta.url).pathname;
const DOCUMENTED = fixture("documented.virtioforwarder");
const SHIPPED = fixture("shipped.virtioforwarder");

Deno.test("the documented example file (every variable, arrays included) loads without error or warning", async () => {
  const { config, warnings } = loadConfig(await Deno.readTextFile(DOCUMENTED), DOCUMENTED);
  if (warnings.length) throw new Error(warnings.join("\n"));
  if (config.staticVfs.length !== 2 || config.cpuPins[0].vmToVf !== 2) throw new Error(JSON.stringify(config));
});

Deno.test("the original's shipped file loads as the original reads it: ZeroMQ port control over IPC, core scheduling on, client mode, the template binary line ignored", async () => {
  const l = loadConfig(await Deno.readTextFile(SHIPPED), SHIPPED);
  const c = l.config;
  assertEq(portControlMode(c), "zmq", "port control");
  assertEq(coreSchedEndpoint(c), "ipc:///var/run/virtio-forwarder/core_sched", "core scheduling endpoint");
  assertEq(c.vhostClient && c.jumbo && c.mrgbuf && !c.tso, true, "flags");
  assertEq(c.binary, "@BINDIR@/virtio-forwarder", "template line kept as written");
  assertEq(c.socketDir, "/tmp/virtio-forwarder", "socket dir");
  assertJsonEq(l.warnings, [
    `${SHIPPED}:6: VIRTIOFWD_IPC_PORT_CONTROL is ignored: VIRTIOFWD_ZMQ_PORT_CONTROL_EP (${SHIPPED}:26) takes precedence ` +
    "for port control, as in virtio-forwarder (ZeroMQ, then IPC, then OVSDB); blank it to silence this",
  ], "the one warning");
});

Deno.test("port control precedence: ZeroMQ over IPC over OVSDB; each lower source that is also set is one warning", () => {
  const l = loadConfig("VIRTIOFWD_IPC_PORT_CONTROL=y\nVIRTIOFWD_OVSDB_SOCK_PATH=/run/db.sock\n", "f");
  assertEq(portControlMode(l.config), "ipc", "IPC over OVSDB");
  assertJsonEq(
    l.warnings.map((w) => w.slice(0, w.indexOf(" is ignored"))),
    ["f:2: VIRTIOFWD_OVSDB_SOCK_PATH"],
    "warned",
  );
  const all = loadConfig(
    "VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///x\nVIRTIOFWD_IPC_PORT_CONTROL=y\nVIRTIOFWD_OVSDB_SOCK_PATH=/run/db.sock\n",
    "f",
  );
  assertEq(portControlMode(all.config), "zmq", "ZeroMQ first");
  assertEq(all.warnings.filter((w) => w.includes("takes precedence")).length, 2, "two ignored sources");
});

Deno.test("flags: any non-empty value enables, as the original; n, no, 0, false get a warning that they enable it", () => {
  for (const value of ["y", "yes", "1", "true", "on"]) {
    const l = loadConfig(`VIRTIOFWD_JUMBO=${value}\n`, "f");
    assertEq(l.config.jumbo, true, `${value} enables`);
    assertJsonEq(l.warnings, [], `${value}: no warning`);
  }
  for (const value of ["n", "no", "0", "false", "off", "FALSE"]) {
    const l = loadConfig(`VIRTIOFWD_DYNAMIC_SOCKETS=${value}\n`, "f");
    assertEq(l.config.dynamicSockets, true, `${value} enables, as in the original`);
    if (!l.warnings[0]?.includes(`f:1: VIRTIOFWD_DYNAMIC_SOCKETS=${value} ENABLES it`)) {
      throw new Error(l.warnings.join());
    }
  }
  assertEq(loadConfig("VIRTIOFWD_JUMBO=\n", "f").config.jumbo, false, "blank disables");
  const arr = loadConfig("VIRTIOFWD_JUMBO=(y n)\n", "f");
  assertEq(arr.config.jumbo, true, "an array: its first element, as $VAR in bash");
  if (!arr.warnings[0]?.includes("VIRTIOFWD_JUMBO is a bash array; its first element 'y' is used")) {
    throw new Error(arr.warnings.join());
  }
});

Deno.test("VIO4WD_CORE_SCHED_ENABLE: exactly true enables; blank and false disable quietly; anything else disables with a warning", () => {
  const at = (value: string) => loadConfig(`VIO4WD_CORE_SCHED_ENABLE=${value}\n`, "f");
  assertEq(at("true").config.coreSchedEnable, true, "true");
  for (const value of ["", "false"]) {
    assertEq(at(value).config.coreSchedEnable, false, `'${value}'`);
    assertJsonEq(at(value).warnings, [], `'${value}': no warning`);
  }
  for (const value of ["yes", "True", "1"]) {
    assertEq(at(value).config.coreSchedEnable, false, value);
    if (!at(value).warnings[0]?.includes("only the exact value true enables it")) {
      throw new Error(at(value).warnings.join());
    }
  }
});

Deno.test("-s/--zmq-core-sched-ep on the command line enables core scheduling whatever the file says", () => {
  const l = loadConfig("VIO4WD_CORE_SCHED_ENABLE=false\n", "f", {
    VIRTIOFWD_ZMQ_CORE_SCHED_EP: { value: "ipc:///run/cs", option: "--zmq-core-sched-ep" },
  });
  assertEq(coreSchedEndpoint(l.config), "ipc:///run/cs", "endpoint on");
  assertEq(l.sources.coreSchedEnable.kind, "option", "source");
});

Deno.test("every variable has a bad-value case in this table", () => {
  const missing = VARIABLES.map((v) => v.name).filter((n) => !(n in BAD));
  if (missing.length) throw new Error(`no bad-value case for ${missing.join(", ")}`);
});

for (const [name, bad] of Object.entries(BAD)) {
  if (bad === null) continue;
  const [value, text] = bad;
  Deno.test(`${name}=${value} is rejected with file:line, the variable and what is allowed`, () => {
    const file = "/etc/default/virtioforwarder";
    try {
      loadConfig(`VIRTIOFWD_CPU_MASK=1,2\n# comment\n${name}=${value}\n`, file);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      if (!e.message.startsWith(`${file}:3: ${name}`) || !e.message.includes(text)) {
        throw new Error(`unexpected message: ${e.message}`);
      }
      return;
    }
    throw new Error(`${name}=${value} was accepted`);
  });
}

Deno.test("static VF devargs containing '=' use the last '=' for the relay id", () => {
  const { config } = loadConfig("VIRTIOFWD_STATIC_VFS=(net_memif0,role=server,socket=/run/x.sock=1 05:08.1=2)\n", "f");
  const got = JSON.stringify(config.staticVfs);
  const want = JSON.stringify([{ device: "net_memif0,role=server,socket=/run/x.sock", relay: 1 }, {
    device: "0000:05:08.1",
    relay: 2,
  }]);
  if (got !== want) throw new Error(got);
});

Deno.test("command-line options override file values and are reported as the source", () => {
  const l = loadConfig("VIRTIOFWD_CPU_MASK=1,2\n", "f", { VIRTIOFWD_CPU_MASK: { value: "0x8", option: "--cpus" } });
  if (l.config.cpus.join() !== "3" || l.sources.cpus.kind !== "option") throw new Error(JSON.stringify(l.sources.cpus));
});

Deno.test("unknown variables are warnings, not errors", () => {
  const l = loadConfig("SOMETHING_ELSE=1\n", "f");
  if (!l.warnings[0]?.includes("f:1: unknown variable SOMETHING_ELSE")) throw new Error(l.warnings.join());
});

Deno.test("parseEnvFile() agrees with bash on quotes, expansion, comments and multi-line arrays", async () => {
  const text =
    `A=plain\nB="dq \${A} \\"x\\""\nC='sq $A'\nexport D=$A-x # comment\nE=(one "two three"\n  # skipped\n  four)\nF=\n`;
  const mine = parseEnvFile(text);
  const script = `${text}\nfor v in A B C D F; do printf '%s\\0' "\${!v}"; done; printf '%s\\0' "\${E[@]}"`;
  const out = await new Deno.Command("bash", { args: ["-c", script], stdout: "piped" }).output();
  const bash = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
  const ours = ["A", "B", "C", "D", "F"].map((k) => mine.get(k)!.value as string).concat(
    mine.get("E")!.value as string[],
  );
  if (JSON.stringify(ours) !== JSON.stringify(bash)) {
    throw new Error(`ours ${JSON.stringify(ours)} bash ${JSON.stringify(bash)}`);
  }
  if (mine.get("E")!.line !== 5) throw new Error("array line");
});

Deno.test("parseEnvFile() refuses command substitution with the line number", () => {
  for (const t of ["A=1\nB=$(rm -rf /)\n", "A=1\nB=`id`\n"]) {
    try {
      parseEnvFile(t);
    } catch (e) {
      if ((e as Error).message.startsWith("line 2: command substitution")) continue;
      throw e;
    }
    throw new Error(`accepted ${t}`);
  }
});
