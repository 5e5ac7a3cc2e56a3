/**
 * The manual's examples: every `sh` block of docs/manual.md is run, line by line, against a daemon
 * started with the manual's example configuration (its /tmp/vio4wd paths moved into a temp dir).
 * Blocks marked `sh hardware` need SR-IOV, QEMU or host changes and are only checked for shape.
 */

import { LAUNCHER } from "./rigs/daemon_process.ts";
import { World } from "./rigs/world.ts";

const MANUAL = new URL("../docs/manual.md", import.meta.url).pathname;

/** Fenced blocks: info string and body. */
function blocks(md: string): { info: string; body: string }[] {
  return [...md.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ info: m[1].trim(), body: m[2] }));
}

Deno.test("docs/manual.md: every command example runs against a daemon with the manual's configuration", async () => {
  const md = await Deno.readTextFile(MANUAL);
  const all = blocks(md);
  const example = all.find((b) => b.info === "bash config-example");
  if (!example) throw new Error("docs/manual.md has no 'bash config-example' block");
  await using w = await World.create("docs");
  const dir = w.dir;
  const here = (s: string) => s.replaceAll("/tmp/vio4wd", dir);
  const config = here(example.body).split("\n").filter((l) => l.trim() !== "");
  const d = await w.daemon(config);
  const confFile = d.config; // the example plus this run's file prefix
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
    if (!["sh", "sh hardware", "bash config-example"].includes(b.info)) {
      throw new Error(`code block '${b.info}' is neither tested ('sh') nor marked ('sh hardware')`);
    }
  }
});
