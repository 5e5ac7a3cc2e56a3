/**
 * Writes completions/vio4wd.{bash,zsh,fish} from the CLI definitions (`deno task completions`).
 * tests/completions_test.ts fails when the committed files differ from what this generates.
 */
import { bash, fish, zsh } from "@optique/core/completion";

/** Each shell's script, keyed by file name. */
export function completionScripts(): Record<string, string> {
  return {
    "vio4wd.bash": bash.generateScript("vio4wd", ["completions", "bash"]),
    "vio4wd.zsh": zsh.generateScript("vio4wd", ["completions", "zsh"]),
    "vio4wd.fish": fish.generateScript("vio4wd", ["completions", "fish"]),
  };
}

if (import.meta.main) {
  const dir = new URL("../completions/", import.meta.url).pathname;
  const scripts = completionScripts();
  for (const [name, text] of Object.entries(scripts)) await Deno.writeTextFile(dir + name, text);
  console.log(`wrote ${Object.keys(scripts).join(", ")} in ${dir}`);
}
