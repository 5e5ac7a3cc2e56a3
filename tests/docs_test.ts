/**
 * The manual's examples: every `sh` block of docs/manual.md is run, line by line, against a daemon
 * started with the manual's example configuration (its /tmp/vio4wd paths moved into a temp dir).
 * Blocks marked `sh hardware` need SR-IOV, QEMU or host changes and are only checked for shape.
 */

import { LAUNCHER } from "./rigs/daemon_process.ts";
import { World } from "./rigs/world.ts";
import { blocks, MANUAL } from "./rigs/manual.ts";

/** A daemon started with the manual's example configuration, its /tmp/vio4wd paths moved into the world's directory. */
async function manualDaemon(w: World, md: string) {
  const example = blocks(md).find((b) => b.info === "bash config-example");
  if (!example) throw new Error("docs/manual.md has no 'bash config-example' block");
  const here = (s: string) => s.replaceAll("/tmp/vio4wd", w.dir);
  const d = await w.daemon(here(example.body).split("\n").filter((l) => l.trim() !== ""));
  return { here, confFile: d.config }; // the example plus this run's file prefix
}

Deno.test("docs/manual.md: every command example runs against a daemon with the manual's configuration", async () => {
  const md = await Deno.readTextFile(MANUAL);
  const all = blocks(md);
  await using w = await World.create("docs");
  const { here, confFile } = await manualDaemon(w, md);
  let ran = 0;
  for (const b of all.filter((b) => b.info === "sh")) {
    for (const raw of b.body.split("\n")) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      if (!line.startsWith("vio4wd ")) throw new Error(`a tested example runs something else than vio4wd: ${line}`);
      const [cmd, comment] = line.split(/\s+#\s*/);
      const allowed = /^exit ([\d|]+)$/.exec(comment ?? "")?.[1].split("|").map(Number) ?? [0];
      const out = await new Deno.Command(LAUNCHER, {
        args: here(cmd).split(/\s+/).slice(1),
        env: { VIO4WD_CONFIG: confFile },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      if (!allowed.includes(out.code)) {
        throw new Error(
          `'${line}' exited ${out.code} (expected ${allowed.join(" or ")}):\n${dec.decode(out.stdout)}${
            dec.decode(out.stderr)
          }`,
        );
      }
      ran++;
    }
  }
  if (ran < 10) throw new Error(`only ${ran} examples ran`);
});

Deno.test("docs/manual.md covers what the original's manual covers, and marks untested examples", async () => {
  const md = await Deno.readTextFile(MANUAL);
  for (
    const topic of [
      "Hugepages",
      "Installing",
      "Configuration",
      "Adding ports",
      "CPU affinity and load balancing",
      "Running VMs",
      "client mode",
      "Multiqueue",
      "Performance tuning",
      "Debugging",
      "VirtIO 1.0",
      "Live migration",
    ]
  ) {
    if (!md.includes(topic)) throw new Error(`the manual does not cover '${topic}'`);
  }
  for (const b of blocks(md)) {
    // 'sh by-hand': run in order by the newcomer's transcript (tests/first_hour_test.ts)
    if (!["sh", "sh by-hand", "sh hardware", "bash config-example"].includes(b.info)) {
      throw new Error(`code block '${b.info}' is neither tested ('sh', 'sh by-hand') nor marked ('sh hardware')`);
    }
  }
});

/** Examples that run until stopped (a daemon, a poll loop, a terminal UI) or stand for themselves elsewhere (demo). */
const LONG_RUNNING = [
  /^vio4wd daemon\b/,
  /^vio4wd demo\b/,
  /--watch/,
  /^vio4wd monitor$/,
  /^vio4wd sched( --poll-interval| --config|$)/,
];

Deno.test("every --help example runs against a daemon with the manual's configuration: none is refused as bad arguments (exit 2), and each jq example runs and prints no null", async () => {
  const md = await Deno.readTextFile(MANUAL);
  await using w = await World.create("helpex");
  const { confFile } = await manualDaemon(w, md);
  const commands = [
    ...["config check", "config show", "port add", "port remove", "port add-sock", "port remove-sock"],
    ...["port query-pci", "port list", "stats", "pin", "sched", "monitor", "vm-config", "doctor", "daemon", "demo"],
  ];
  const dec = new TextDecoder();
  const vio4wd = (args: string[]) =>
    new Deno.Command(LAUNCHER, { args, env: { VIO4WD_CONFIG: confFile }, stdout: "piped", stderr: "piped" }).output();
  // a relay with a device (no VM): what the list and stats examples show
  const add = await vio4wd(["port", "add", "--virtio-id", "5", "--device", "net_null5"]);
  if (add.code !== 0) throw new Error(`port add: ${dec.decode(add.stderr)}`);
  let ran = 0;
  for (const c of commands) {
    const help = dec.decode((await vio4wd([...c.split(" "), "--help"])).stdout);
    const examples = help.slice(help.search(/^Examples?:/m)).split("\n").map((l) => l.trim())
      .filter((l) => l.startsWith("vio4wd "));
    if (examples.length === 0) throw new Error(`vio4wd ${c} --help shows no example`);
    for (const example of examples) {
      if (LONG_RUNNING.some((re) => re.test(example))) continue;
      // paths of the examples moved into this run's directory; the shipped file's path to the manual's
      const [cmd, jq] = example.replaceAll("/etc/default/virtioforwarder", confFile).replaceAll("/tmp/", `${w.dir}/`)
        .split(/\s+\|\s+jq\s+/);
      await Deno.writeTextFile(`${w.dir}/new.virtioforwarder`, await Deno.readTextFile(confFile));
      const args = cmd.split(/\s+/).slice(1);
      const out = await vio4wd(args);
      if (![0, 1].includes(out.code)) {
        throw new Error(`'${example}' exited ${out.code}:\n${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
      }
      if (jq !== undefined) {
        const filter = jq.replace(/^'(.*)'$/, "$1");
        const p = new Deno.Command("jq", { args: [filter], stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
        const writer = p.stdin.getWriter();
        await writer.write(out.stdout);
        await writer.close();
        const r = await p.output();
        const printed = dec.decode(r.stdout).trim();
        // an iteration over no relay prints nothing; a field the output does not have prints null
        if (!r.success || /(^|: )null,?$/m.test(printed)) {
          throw new Error(`'${example}' printed '${printed}' (jq: ${dec.decode(r.stderr)})`);
        }
      }
      ran++;
    }
  }
  if (ran < 20) throw new Error(`only ${ran} examples ran`);
});
