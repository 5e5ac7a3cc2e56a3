/** Help-text pieces shared by the subcommands. */

import { lineBreak, type Message, text } from "@optique/core/message";

/** An "Examples:" footer: one command per line (a `message` template would join them into one). */
export function examples(...commands: string[]): Message {
  return [
    text(commands.length > 1 ? "Examples:" : "Example:"),
    ...commands.flatMap((c) => [lineBreak(), text(`  ${c}`)]),
  ];
}
