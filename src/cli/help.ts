/** Help-text pieces and options shared by the subcommands. */

import { lineBreak, type Message, message, text } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { option } from "@optique/core/primitives";
import { path } from "@optique/run/valueparser";

/** A file the shell completes by name (`--config <TAB>`). */
export const fileValue = () => path({ metavar: "FILE" });

/** `--config FILE`, as every subcommand that reads the configuration takes it. */
export const configOption = (description = message`Configuration file.`) =>
  optional(option("--config", fileValue(), { description }));

/** An "Examples:" footer: one command per line (a `message` template would join them into one). */
export function examples(...commands: string[]): Message {
  return [
    text(commands.length > 1 ? "Examples:" : "Example:"),
    ...commands.flatMap((c) => [lineBreak(), text(`  ${c}`)]),
  ];
}
