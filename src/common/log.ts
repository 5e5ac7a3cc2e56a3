/**
 * Logging at syslog levels 0-7 to stderr. Under systemd (JOURNAL_STREAM set) lines carry the
 * `<N>` priority prefix the journal understands; otherwise a timestamp and the level name.
 *
 * @module
 */

/** syslog level names, 0 (emerg) to 7 (debug). */
export const LEVEL_NAMES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"] as const;

/** `text` with C0 control characters (but tab) and DEL as `\xNN`. */
export function escapeControls(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** A logger with a threshold: messages above it are dropped. */
/** What a caught value says: an Error's message, anything else as text. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Logger {
  #journal = Deno.env.get("JOURNAL_STREAM") !== undefined;
  #enc = new TextEncoder();
  constructor(public threshold: number, readonly tag = "vio4wd") {}

  #captured: string[] | null = null;

  /**
   * Runs `fn` (synchronous) and returns, with its value, the warnings and errors it logged, whatever
   * the threshold: what a service tells its client about why a request failed.
   */
  capture<T>(fn: () => T): { value: T; problems: string[] } {
    const outer = this.#captured;
    const problems: string[] = [];
    this.#captured = problems;
    try {
      return { value: fn(), problems };
    } finally {
      this.#captured = outer;
      outer?.push(...problems);
    }
  }

  /**
   * Logs `msg` at `level` (0-7) as one line: control characters in it (from a client's string, a
   * file's name...) are escaped, so nothing it carries can start a forged line (`\n<0>...`).
   */
  log(level: number, msg: string): void {
    if (level <= 4) this.#captured?.push(escapeControls(msg));
    if (level > this.threshold) return;
    const safe = escapeControls(msg);
    const line = this.#journal
      ? `<${level}>${safe}\n`
      : `${new Date().toISOString()} ${this.tag} ${LEVEL_NAMES[level]}: ${safe}\n`;
    Deno.stderr.writeSync(this.#enc.encode(line));
  }

  crit(msg: string): void {
    this.log(2, msg);
  }
  error(msg: string): void {
    this.log(3, msg);
  }
  warn(msg: string): void {
    this.log(4, msg);
  }
  notice(msg: string): void {
    this.log(5, msg);
  }
  info(msg: string): void {
    this.log(6, msg);
  }
  debug(msg: string): void {
    this.log(7, msg);
  }
}
