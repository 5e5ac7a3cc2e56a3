import { ConfigError, loadConfig, VARIABLES } from "./config.ts";
import { parseEnvFile } from "./envfile.ts";
import { BAD_VALUES as BAD } from "../../tests/fixtures/bad_config_values.ts";

const ORIGINAL = new URL("../../tests/fixtures/original.virtioforwarder", import.meta.url).pathname;

Deno.test("the original's example file (every variable, arrays included) loads without error or warning", async () => {
  const { config, warnings } = loadConfig(await Deno.readTextFile(ORIGINAL), ORIGINAL);
  if (warnings.length) throw new Error(warnings.join("\n"));
  if (config.staticVfs.length !== 2 || config.cpuPins[0].vmToVf !== 2) throw new Error(JSON.stringify(config));
});

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
