/** The subcommands' --help output: what operators read first. */

import { runVio4wd } from "./rigs/daemon_process.ts";
import { assertEq } from "./rigs/assert.ts";

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
