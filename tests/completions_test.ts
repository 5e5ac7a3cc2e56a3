/** Shell completions: committed files are current, and real shells offer the subcommands. */
import { completionScripts } from "../scripts/gen_completions.ts";
import { assert, assertEq, assertJsonEq } from "./rigs/assert.ts";
import { World } from "./rigs/world.ts";

const root = new URL("../", import.meta.url).pathname;
const subcommands = ["config", "daemon", "demo"];

async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    env: { PATH: `${root}:${Deno.env.get("PATH")}` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

/** What bash's completion function offers for `vio4wd WORDS... CURRENT<TAB>`, one per line. */
function bashComplete(words: string[], current: string): Promise<string> {
  const line = `vio4wd ${[...words, current].join(" ")}`;
  return sh("bash", [
    "-c",
    `source ${root}completions/vio4wd.bash; COMP_WORDS=(vio4wd ${words.join(" ")} "${current}"); COMP_CWORD=${
      words.length + 1
    }; COMP_LINE="${line}"; COMP_POINT=${line.length}; _vio4wd; printf '%s\\n' "\${COMPREPLY[@]}"`,
  ]);
}

function assertOffers(output: string, shell: string): void {
  for (const c of subcommands) {
    if (!new RegExp(`(^|\\s)${c}(\\s|$)`, "m").test(output)) {
      throw new Error(`${shell} does not offer '${c}':\n${output}`);
    }
  }
}

Deno.test("completions/ files equal what the CLI definitions generate (run 'deno task completions')", async () => {
  for (const [name, text] of Object.entries(completionScripts())) {
    const committed = await Deno.readTextFile(`${root}completions/${name}`);
    if (committed !== text) throw new Error(`completions/${name} is stale: run 'deno task completions'`);
  }
});

Deno.test("bash completion of 'vio4wd <TAB>' offers the subcommands", async () => {
  const out = await sh("bash", [
    "-c",
    `source ${root}completions/vio4wd.bash; COMP_WORDS=(vio4wd ""); COMP_CWORD=1; COMP_LINE="vio4wd "; COMP_POINT=7; _vio4wd; printf '%s\\n' "\${COMPREPLY[@]}"`,
  ]);
  assertOffers(out, "bash");
});

Deno.test("fish completion of 'vio4wd <TAB>' offers the subcommands", async () => {
  const out = await sh("fish", ["-c", `source ${root}completions/vio4wd.fish; complete -C 'vio4wd '`]);
  assertOffers(out, "fish");
});

Deno.test("zsh loads the completion script and its function offers the subcommands", async () => {
  const out = await sh("zsh", [
    "-c",
    `autoload -U compinit; compinit -u 2>/dev/null; source ${root}completions/vio4wd.zsh; whence -w _vio4wd; vio4wd completions zsh ''`,
  ]);
  if (!out.includes("_vio4wd: function")) throw new Error(`zsh did not define _vio4wd:\n${out}`);
  assertOffers(out.replaceAll("\0", "\n"), "zsh");
});

Deno.test("bash completion of 'vio4wd daemon --config <TAB>' and 'vio4wd config check <TAB>' offers file names", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/virtioforwarder.test`, "");
    for (const words of [["daemon", "--config"], ["config", "check"]]) {
      const out = await bashComplete(words, `${dir}/virtio`);
      if (!out.includes(`${dir}/virtioforwarder.test`)) {
        throw new Error(`'${words.join(" ")} <TAB>' does not offer the file:\n${out}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("'vio4wd completions <TAB>' offers the shells (bash and fish)", async () => {
  const shells = ["bash", "fish", "nu", "pwsh", "zsh"];
  const bash = (await bashComplete(["completions"], "")).trim().split("\n");
  assertJsonEq(bash.sort(), shells, "bash: vio4wd completions <TAB>");
  assertJsonEq((await bashComplete(["completions"], "z")).trim(), "zsh", "bash: vio4wd completions z<TAB>");
  const fish = (await sh("fish", ["-c", `source ${root}completions/vio4wd.fish; complete -C 'vio4wd completions '`]))
    .trim().split("\n").map((l) => l.split("\t")[0]);
  assertJsonEq(fish.sort(), shells, "fish: vio4wd completions <TAB>");
});

Deno.test("'--virtio-id <TAB>' offers the relays of the daemon the command line's --config names, with their VF; nothing without a daemon", async () => {
  await using world = await World.create("compl");
  const d = await world.daemon(["VIRTIOFWD_STATIC_VFS=(net_null0=3)"]);
  const ids = async (words: string[], current = "") =>
    (await bashComplete(words, current)).trim().split("\n").filter(Boolean);
  const all = await ids(["port", "add", "--config", d.config, "--virtio-id"]);
  assertEq(all.length, 64, `every relay offered: ${all}`);
  assertJsonEq(await ids(["stats", "--config", d.config, "--relay"], "6"), ["6", "60", "61", "62", "63"], "6<TAB>");
  // the descriptions name each relay's VF (fish shows them)
  const fish = await sh("fish", [
    "-c",
    `source ${root}completions/vio4wd.fish; complete -C 'vio4wd port remove --config ${d.config} --virtio-id 3'`,
  ]);
  assert(/^3\tnet_null0/m.test(fish), `relay 3's VF in the description: ${fish}`);
  await d.stop();
  assertJsonEq(await ids(["port", "add", "--config", d.config, "--virtio-id"]), [], "no daemon: nothing offered");
});
