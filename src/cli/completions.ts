/**
 * What the shell completion scripts ask beyond optique's own answers: `vio4wd completions <TAB>`
 * (optique's completion command does not suggest its SHELL argument) and the relays a running
 * daemon has after `--virtio-id` or `--relay` (one stats request with a short timeout: no daemon,
 * no suggestions).
 *
 * The scripts call `vio4wd completions SHELL WORD... CURRENT`; an answer is one line per
 * suggestion in that shell's format.
 *
 * @module
 */

import { allRelays, resolveEndpoint } from "../control/client.ts";

/** The shells optique writes completion scripts for. */
export const SHELLS = ["bash", "fish", "nu", "pwsh", "zsh"] as const;

/** Options whose value is a relay id. */
const RELAY_OPTIONS = new Set(["--virtio-id", "--relay"]);

/** How long a completion waits for the daemon. */
const RELAY_QUERY_TIMEOUT_MS = 300;

/** One suggestion line in `shell`'s format (as optique's own answers are written). */
export function suggestionLine(shell: string, value: string, description: string): string {
  switch (shell) {
    case "zsh":
      return `${value}\0${description}\0`;
    case "fish":
    case "nu":
      return `${value}\t${description}`;
    case "pwsh":
      return `${value}\t${value}\t${description}`;
    default:
      return value;
  }
}

/** The shells completing `vio4wd completions <current>`, or null when `args` ask something else. */
export function shellSuggestions(args: readonly string[]): string[] | null {
  if (args.length !== 4 || args[0] !== "completions" || args[2] !== "completions") return null;
  const [, shell, , current] = args;
  return SHELLS.filter((s) => s.startsWith(current)).map((s) => suggestionLine(shell, s, `completion script for ${s}`));
}

/** The value of `--config FILE` or `--config=FILE` among `words`, if any. */
function configOf(words: readonly string[]): string | undefined {
  for (let i = 0; i < words.length; i++) {
    if (words[i] === "--config" && i + 1 < words.length) return words[i + 1];
    if (words[i].startsWith("--config=")) return words[i].slice("--config=".length);
  }
  return undefined;
}

/**
 * The relays completing a relay-id option's value (`--virtio-id <current>`), from the daemon the
 * command line's --config (or the default configuration) names; null when `args` ask something
 * else; empty when no daemon answers in time.
 */
export async function relaySuggestions(args: readonly string[]): Promise<string[] | null> {
  if (args.length < 4 || args[0] !== "completions") return null;
  const shell = args[1], words = args.slice(2, -1), current = args[args.length - 1];
  if (!RELAY_OPTIONS.has(words[words.length - 1])) return null;
  try {
    const endpoint = await resolveEndpoint("stats", undefined, configOf(words));
    return (await allRelays(endpoint, RELAY_QUERY_TIMEOUT_MS))
      .filter((r) => String(r.id).startsWith(current))
      .map((r) => {
        const vf = r.vf?.pciAddrStr || "no VF", vm = r.vhost?.vhostSocketName || "";
        return suggestionLine(shell, String(r.id), `${vf}${vm ? ` <-> ${vm}` : ""}`);
      });
  } catch {
    return []; // no daemon, or not allowed to ask it: nothing to suggest
  }
}

/** The answer to a completion request this module handles, or null for optique's own. */
export async function extraCompletions(args: readonly string[]): Promise<string | null> {
  const lines = shellSuggestions(args) ?? await relaySuggestions(args);
  return lines === null ? null : lines.map((l) => `${l}\n`).join("");
}
