import { ConfigError, coreSchedEndpoint, describeSource, loadConfig, portControlMode, VARIABLES } from "./config.ts";
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

Deno.test("parseEnvFile() agrees with bash on append, declare/export/readonly, $'...', ${X:-y}, indexes, unset, continuations and word splitting in arrays", async () => {
  const text = [
    "A=one",
    "A+=two",
    "ARR=(x y)",
    'ARR+=("z w" $A)',
    "declare -a DA=(1 2) ; export EX=exported # comment after a value",
    "declare -a EMPTY",
    "readonly RO=$'tab\\there\\x41\\101\\u00e9'",
    'typeset -x DQ=$"locale ${A}"',
    "CONT=first\\",
    "second",
    "S1=${UNSET:-fallback} S2=${A:+alt} S3=${UNSET-dash} S4=${#A}",
    "IDX[2]=two",
    "IDX[0]=zero",
    'SPLIT="a b  c"',
    'WORDS=($SPLIT "$SPLIT" pre${SPLIT}post)',
    "ALL=(${ARR[@]})",
    "ONE=${ARR[2]}",
    "GONE=1",
    "unset GONE",
    "export PLAIN",
    "ARR2=(a b); ARR2=c",
    "  X=1 Y=2",
  ].join("\n") + "\n";
  const mine = parseEnvFile(text);
  const scalars = ["A", "EX", "RO", "DQ", "CONT", "S1", "S2", "S3", "S4", "ONE", "X", "Y"];
  const arrays = ["ARR", "DA", "EMPTY", "IDX", "WORDS", "ALL", "ARR2"];
  const script = `${text}\nfor v in ${scalars.join(" ")}; do printf '%s\\0' "\${!v}"; done\n` +
    arrays.map((a) => `printf '%s\\0' "\${#${a}[@]}"; printf '%s\\0' "\${${a}[@]}"`).join("\n") +
    `\nprintf '%s\\0' "\${GONE-unset}"`;
  const out = await new Deno.Command("bash", { args: ["-c", script], stdout: "piped" }).output();
  const bash = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
  const ours = [
    ...scalars.map((k) => {
      const v = mine.get(k)?.value;
      return Array.isArray(v) ? v[0] : v;
    }),
    ...arrays.flatMap((k) => {
      const v = mine.get(k)?.value ?? [];
      const arr = (Array.isArray(v) ? v : [v]).filter((x) => x !== undefined);
      // bash skips unset indexes; ours fills them with "": compare the set elements
      const set = k === "IDX" ? arr.filter((x) => x !== "") : arr;
      return [String(set.length), ...(set.length ? set : [""])]; // printf prints once with no arguments
    }),
    mine.has("GONE") ? "set" : "unset",
  ];
  assertJsonEq(ours, bash, "values as bash holds them");
  assertEq(mine.get("ARR")!.line, 4, "the line of the last assignment");
});

Deno.test("parseEnvFile() refuses what would run something, naming the line and the construct", () => {
  const cases: [string, RegExp][] = [
    ["A=1\nB=$(rm -rf /)\n", /^line 2: command substitution \$\(\.\.\.\)/],
    ["A=1\nB=`id`\n", /^line 2: command substitution `\.\.\.`/],
    ["A=$((1+2))\n", /^line 1: arithmetic/],
    ["\nif [ -e /x ]; then A=1; fi\n", /^line 2: a conditional \(if\)/],
    ["[[ -n x ]] && A=1\n", /^line 1: a conditional \(\[\[ \.\.\. \]\]\)/],
    ["A=1 && B=2\n", /^line 1: a conditional \(&&\)/],
    ["for x in 1; do A=$x; done\n", /^line 1: a loop \(for\)/],
    ["source /etc/other\n", /^line 1: reading another file \(source\)/],
    [". /etc/other\n", /^line 1: reading another file \(\.\)/],
    ["f() { A=1; }\n", /^line 1: a subshell or function definition/],
    ["A=1 rm -rf /\n", /^line 1: 'rm' is a command, not NAME=value/],
    ["A=x > /etc/passwd\n", /^line 1: a redirection/],
    ["A=x | cat\n", /^line 1: a pipe/],
    ["declare -A M=([k]=v)\n", /^line 1: declare -A: associative arrays/],
    ["echo hi\n", /^line 1: 'echohi' is a command|^line 1: 'echo' is a command/],
  ];
  for (const [t, want] of cases) {
    let got = "accepted";
    try {
      parseEnvFile(t);
    } catch (e) {
      got = (e as Error).message;
    }
    if (!want.test(got)) throw new Error(`${JSON.stringify(t)}: got ${got}`);
  }
});

Deno.test("a log level above 7 is clamped to 7 with a warning, as the original clamps it; the daemon still starts", () => {
  const l = loadConfig("VIRTIOFWD_LOG_LEVEL=8\nVIO4WD_CORE_SCHED_LOG_LEVEL=12\n", "f");
  assertEq(`${l.config.logLevel} ${l.config.coreSchedLogLevel}`, "7 7", "clamped");
  assertJsonEq(l.warnings, [
    "f:1: VIRTIOFWD_LOG_LEVEL=8 is not a level from 0 to 7: 7 is used (virtio-forwarder reads it the same way)",
    "f:2: VIO4WD_CORE_SCHED_LOG_LEVEL=12 is not a level from 0 to 7: 7 is used (virtio-forwarder reads it the same way)",
  ], "one warning each");
});

Deno.test("the shipped file gives the effective configuration of the original's shipped file (its binary line filled in as its package does), and names every variable", async () => {
  const shipped = new URL("../../scripts/virtioforwarder.default", import.meta.url).pathname;
  const text = await Deno.readTextFile(shipped);
  const ours = loadConfig(text, shipped).config;
  const original = loadConfig(
    (await Deno.readTextFile(SHIPPED)).replace("@BINDIR@/virtio-forwarder", "/usr/bin/virtio-forwarder"),
    SHIPPED,
  ).config;
  assertJsonEq(ours, original, "effective configuration");
  const missing = VARIABLES.filter((v) => !v.retired && !new RegExp(`^${v.name}=`, "m").test(text)).map((v) => v.name);
  assertJsonEq(missing, [], "variables missing from the shipped file");
});

Deno.test("VIO4WD_TX_RETRIES (read by vio4wd before relays held packets) is accepted in the file and as --tx-retries, whatever its value, with a warning naming it", () => {
  for (const value of ["8", "2000", "x"]) {
    const l = loadConfig(`VIO4WD_TX_RETRIES=${value}\n`, "f");
    assertEq(l.warnings.length, 1, `one warning for ${value}`);
    assertEq(
      l.warnings[0].startsWith("f:1: VIO4WD_TX_RETRIES is no longer used and is ignored: "),
      true,
      l.warnings[0],
    );
  }
  assertJsonEq(loadConfig("VIO4WD_TX_RETRIES=\n", "f").warnings, [], "blank: the default, no warning");
  const o = loadConfig(null, null, { VIO4WD_TX_RETRIES: { value: "8", option: "--tx-retries" } });
  assertEq(
    o.warnings[0]?.startsWith("option --tx-retries: VIO4WD_TX_RETRIES is no longer used"),
    true,
    o.warnings.join(),
  );
});

Deno.test("the environment sets what the file does not (the original sourced the file over its environment); the file wins over it, options over both", () => {
  const env = { VIRTIOFWD_CPU_MASK: "3", VIRTIOFWD_LOG_LEVEL: "7", VIO4WD_NICE: "-5", UNRELATED: "x" };
  const l = loadConfig("VIRTIOFWD_LOG_LEVEL=5\n", "f.conf", { VIO4WD_NICE: { option: "--nice", value: "0" } }, env);
  assertEq(l.config.cpus.join(","), "3", "from the environment");
  assertEq(describeSource(l.sources.cpus), "environment", "its source");
  assertEq(l.config.logLevel, 5, "the file wins");
  assertEq(l.config.nice, 0, "an option wins");
  let refused = "";
  try {
    loadConfig("", "f.conf", {}, { VIRTIOFWD_CPU_MASK: "zz" });
  } catch (e) {
    refused = (e as Error).message;
  }
  if (!refused.includes("environment VIRTIOFWD_CPU_MASK")) throw new Error(`a bad environment value: '${refused}'`);
});
