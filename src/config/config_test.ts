import { ConfigError, loadConfig, VARIABLES } from "./config.ts";
import { parseEnvFile } from "./envfile.ts";

const ORIGINAL = new URL("../../tests/fixtures/original.virtioforwarder", import.meta.url).pathname;

Deno.test("the original's example file (every variable, arrays included) loads without error or warning", async () => {
  const { config, warnings } = loadConfig(await Deno.readTextFile(ORIGINAL), ORIGINAL);
  if (warnings.length) throw new Error(warnings.join("\n"));
  if (config.staticVfs.length !== 2 || config.cpuPins[0].vmToVf !== 2) throw new Error(JSON.stringify(config));
});

/** One bad value per variable, and the text its error must contain. */
const BAD: Record<string, [string, string]> = {
  VIRTIOFWD_CPU_MASK: ["1,x", "allowed: a comma-separated list of CPUs"],
  VIRTIOFWD_LOG_LEVEL: ["8", "8 is out of range; allowed: an integer from 0 to 7"],
  VIRTIOFWD_IPC_PORT_CONTROL: ["(a b)", "is an array; a single value is expected"],
  VIRTIOFWD_OVSDB_SOCK_PATH: ["db.sock", "'db.sock' is relative"],
  VIRTIOFWD_ZMQ_PORT_CONTROL_EP: ["udp://x", "is not a ZeroMQ endpoint"],
  VIRTIOFWD_JUMBO: ["(y n)", "is an array"],
  VIRTIOFWD_MRGBUF: ["(y n)", "is an array"],
  VIRTIOFWD_TSO: ["(y n)", "is an array"],
  VIRTIOFWD_ZERO_COPY: ["(y n)", "is an array"],
  VIRTIOFWD_SOCKET_OWNER: ["'bad user'", "is not one"],
  VIRTIOFWD_SOCKET_GROUP: ["'bad group'", "is not one"],
  VIRTIOFWD_HUGETLBFS_MOUNT_POINT: ["huge", "is relative"],
  VIRTIOFWD_STATIC_VFS: ["(0000:05:08.1)", "has no '=<relay id>'"],
  VIRTIOFWD_DYNAMIC_SOCKETS: ["(y n)", "is an array"],
  VIRTIOFWD_CPU_NIC_SAME_NUMA: ["(y n)", "is an array"],
  VIRTIOFWD_VFIO_VF_TOKEN: ["not-a-uuid", "allowed: 0 (the default token) or a UUID"],
  VIO4WD_CORE_SCHED_ENABLE: ["yes", "allowed: true or false"],
  VIO4WD_CORE_SCHED_SENSITIVITY: ["-1", "is not a number"],
  VIO4WD_CORE_SCHED_LOG_LEVEL: ["9", "out of range"],
  VIO4WD_CORE_SCHED_POLL_INTERVAL: ["0", "allowed: a number > 0"],
  VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT: ["(y n)", "is an array"],
  VIRTIOFWD_CPU_PINS: ["1:3", "CPU 3 for relay 1 is not a worker CPU"],
  VIRTIOFWD_PID_DIR: ["run", "is relative"],
  VIRTIOFWD_ZMQ_CONFIG_EP: ["ipc://relative", "is not a ZeroMQ endpoint"],
  VIRTIOFWD_ZMQ_STATS_EP: ["tcp://host", "is not a ZeroMQ endpoint"],
  VIRTIOFWD_ZMQ_CORE_SCHED_EP: ["x", "is not a ZeroMQ endpoint"],
  VIRTIOFWD_SOCKET_DIR: ["tmp", "is relative"],
  VIRTIOFWD_SOCKET_FNAME_PATTERN: ["vm%u%u.sock", "'%u' occurs more than once"],
  VIRTIOFWD_BINARY: ["vio4wd", "is relative"],
  VIRTIOFWD_MASTER_LCORE: ["1", "must not be one of the worker CPUs"],
  VIRTIOFWD_VHOST_CLIENT: ["(y n)", "is an array"],
  VIRTIOFWD_BIND_VFIO_PCI: ["eth0:x", "is neither"],
  VIO4WD_EAL_FILE_PREFIX: ["a/b", "letters, digits"],
  VIO4WD_EAL_MEMORY_MB: ["12", "out of range"],
  VIO4WD_ZMQ_GROUP: ["'two words'", "is not one"],
  VIO4WD_IPC_CMD_FILE: ["vio_cmd", "is relative"],
  VIO4WD_EAL_LCORES: ["1:1", "is not LCORE@CPU"],
  VIO4WD_METRICS_LISTEN: ["9464", "is not HOST:PORT"],
};

Deno.test("every variable has a bad-value case in this table", () => {
  const missing = VARIABLES.map((v) => v.name).filter((n) => !(n in BAD));
  if (missing.length) throw new Error(`no bad-value case for ${missing.join(", ")}`);
});

for (const [name, [value, text]] of Object.entries(BAD)) {
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

Deno.test("two port-control modes are a config error naming both variables", () => {
  try {
    loadConfig("VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///x\nVIRTIOFWD_IPC_PORT_CONTROL=y\n", "f");
  } catch (e) {
    if (e instanceof ConfigError && /VIRTIOFWD_ZMQ_PORT_CONTROL_EP.*VIRTIOFWD_IPC_PORT_CONTROL/.test(e.message)) return;
    throw e;
  }
  throw new Error("accepted");
});

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
