/** docs/manual.md as the tests read it: its fenced blocks. */

export const MANUAL = new URL("../../docs/manual.md", import.meta.url).pathname;

/** Fenced blocks: info string and body. */
export function blocks(md: string): { info: string; body: string }[] {
  return [...md.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ info: m[1].trim(), body: m[2] }));
}
