/**
 * A newcomer's first hour as one transcript: the README's and the manual's first commands in the
 * order a new operator meets them, each checked to succeed or fail as the docs say. The manual's
 * "Run it by hand" blocks (`sh by-hand`) are read from docs/manual.md and run as written, with the
 * manual's example configuration in a temp dir (its /tmp/vio4wd paths moved there) and the run's
 * own DPDK file prefix.
 */

import { DaemonProcess, LAUNCHER } from "./rigs/daemon_process.ts";
import { assert, assertEq } from "./rigs/assert.ts";
import { blocks, MANUAL } from "./rigs/manual.ts";
import { World } from "./rigs/world.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** The CPUs online on this machine (sysfs ranges such as "0-1,4"; cat(1): Deno reads /sys only with --allow-all). */
function onlineCpus(): Set<number> {
  const cat = new Deno.Command("cat", { args: ["/sys/devices/system/cpu/online"] }).outputSync();
  const text = new TextDecoder().decode(cat.stdout).trim();
  const out = new Set<number>();
  for (const part of text.split(",")) {
    const [a, b] = part.split("-").map(Number);
    for (let c = a; c <= (b ?? a); c++) out.add(c);
  }
  return out;
}

Deno.test("a newcomer's first hour, in the docs' order: version and help, the shipped file checked, the demo, the daemon run by hand with the clients pointed at its file (manual), a clean stop, doctor, completions", async () => {
  await using w = await World.create("first");
  const dec = new TextDecoder();
  const transcript: string[] = [];
  /** Runs `vio4wd ARGS` (as ./vio4wd from the checkout); checks its exit status is one of `expect`. */
  const step = async (args: string[], expect: number[], env: Record<string, string> = {}) => {
    const out = await new Deno.Command(LAUNCHER, { args, env, cwd: ROOT, stdout: "piped", stderr: "piped" }).output();
    const text = dec.decode(out.stdout) + dec.decode(out.stderr);
    transcript.push(`$ vio4wd ${args.join(" ")}  -> ${out.code}`);
    if (!expect.includes(out.code)) {
      throw new Error(`'vio4wd ${args.join(" ")}' exited ${out.code}, the docs say ${expect.join(" or ")}:\n${text}`);
    }
    return text;
  };

  // README: the program, its help
  assert(/^vio4wd \d+\.\d+\.\d+/.test(await step(["--version"], [0])), "--version names vio4wd");
  assert((await step(["-h"], [0])).includes("Usage"), "-h prints help");
  // the shipped file: its CPU_MASK 1,2 needs CPU 2 online (the README: "at least 2 CPUs", and the
  // check names the variable to change on a 2-CPU host)
  const check = await step(["config", "check", "scripts/virtioforwarder.default"], onlineCpus().has(2) ? [0] : [1]);
  if (!onlineCpus().has(2)) assert(check.includes("VIRTIOFWD_CPU_MASK"), `the check names the mask: ${check}`);
  // README's quick start: the demo relays real packets and says PASS
  assert(/\bPASS\b/.test(await step(["demo", "--seconds", "1"], [0])), "the demo passes");

  // the manual, "Run it by hand": its example file, then its blocks as written
  const md = await Deno.readTextFile(MANUAL);
  const example = blocks(md).find((b) => b.info === "bash config-example")!.body;
  const conf = `${w.dir}/manual.conf`; // (the rig writes its own vio4wd.conf beside it)
  const here = (s: string) => s.replaceAll("/tmp/vio4wd.conf", conf).replaceAll("/tmp/vio4wd", w.dir);
  await Deno.writeTextFile(conf, here(example));
  const byHand = blocks(md).filter((b) => b.info === "sh by-hand").map((b) => here(b.body).trim().split("\n"));
  assertEq(byHand.length, 2, "'Run it by hand': the daemon's block and the clients'");
  const [daemonLine] = byHand[0];
  assertEq(daemonLine, `vio4wd daemon --config ${conf}`, "the daemon's command");
  // the manual's command (its file), with this run's DPDK file prefix (DaemonProcess's verbatim mode)
  const d = await DaemonProcess.start(w.dir, w.nextTag("d"), [], {
    verbatim: { file: conf, stats: `ipc://${w.dir}/zmq/stats` },
  });
  transcript.push(`$ ${daemonLine}  (ready)`);
  try {
    const env: Record<string, string> = {};
    for (const line of byHand[1]) {
      const exported = /^export (\w+)=(\S+)$/.exec(line);
      if (exported) {
        env[exported[1]] = exported[2];
        continue;
      }
      assert(line.startsWith("vio4wd "), `a client line runs vio4wd: ${line}`);
      await step(line.split(/\s+/).slice(1), [0], env);
    }
    assertEq(env.VIO4WD_CONFIG, conf, "the clients read the daemon's file");
    // what they did shows: the relay the manual's `port add` gave a device
    const list: { relay: number; device: string | null }[] = JSON.parse(
      await step(["port", "list", "--json"], [0], env),
    );
    assertEq(list.find((r) => r.relay === 1)?.device, "net_null1", `relay 1's device in ${JSON.stringify(list)}`);
  } finally {
    // "kill -TERM ... exit status 0 means a clean stop" (and the rig checks nothing is left)
    assertEq(await d.stop(), 0, "the daemon's exit status on SIGTERM");
  }
  transcript.push("$ kill -TERM <daemon>  -> 0, nothing left");

  // doctor: a check per line with its fix; exit 1 when one fails (this machine may lack VFIO)
  assert((await step(["doctor"], [0, 1])).length > 0, "doctor prints its checks");
  // completions for the shell
  const bash = await step(["completions", "bash"], [0]);
  const parse = await new Deno.Command("bash", { args: ["-n"], stdin: "piped", stderr: "piped" }).spawn();
  const writer = parse.stdin.getWriter();
  await writer.write(new TextEncoder().encode(bash));
  await writer.close();
  assertEq((await parse.output()).code, 0, "bash parses the completion script");
  console.log(`first hour:\n  ${transcript.join("\n  ")}`);
});
