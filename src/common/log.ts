/**
 * Logging at syslog levels 0-7 to stderr. Under systemd (JOURNAL_STREAM set) lines carry the
 * `<N>` priority prefix the journal understands; otherwise a timestamp and the level name.
 *
 * @module
 */

/** syslog level names, 0 (emerg) to 7 (debug). */
export const LEVEL_NAMES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"] as const;

/** A logger with a threshold: messages above it are dropped. */
export class Logger {
  #journal = Deno.env.get("JOURNAL_STREAM") !== undefined;
  #enc = new TextEncoder();
  constructor(public threshold: number, readonly tag = "vio4wd") {}

  /** Logs `msg` at `level` (0-7). */
  log(level: number, msg: string): void {
    if (level > this.threshold) return;
    const line = this.#journal
      ? `<${level}>${msg}\n`
      : `${new Date().toISOString()} ${this.tag} ${LEVEL_NAMES[level]}: ${msg}\n`;
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
