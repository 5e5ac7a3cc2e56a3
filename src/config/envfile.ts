/**
 * A parser for `/etc/default`-style files: what bash reads from such a file when it sources it
 * (the original's start script did), without ever executing anything.
 *
 * Supported, as bash reads them: `NAME=value` (several on one line too), `NAME+=value`,
 * `NAME=(a "b c")` and `NAME+=(...)` arrays over several lines with comments, `NAME[N]=value`,
 * `export`, `declare`/`typeset`/`readonly`/`local` with their flags (`-a`, `-x`, `-r`, `-g`, `-i`,
 * ...), `unset NAME`, `#` comments at the start of a word, every quoting form (`'...'`, `"..."`,
 * `$'...'` with its escapes, `$"..."`, backslashes), line continuations, `;` between statements,
 * and expansions of variables set earlier in the file (or in the environment given): `$NAME`,
 * `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`, `${NAME[N]}`,
 * `${NAME[@]}`, `${#NAME}`, with word splitting of unquoted expansions inside arrays.
 *
 * Anything that would run something is an error naming the line and the construct: command
 * substitution, arithmetic, conditionals and loops, functions, commands, pipes and redirections.
 *
 * @module
 */

/** A value as bash would hold it: a scalar or an indexed array. */
export type EnvValue = string | string[];

/** One assignment: its value and the 1-based line where it starts. */
export interface EnvEntry {
  value: EnvValue;
  line: number;
}

/** Thrown for text bash would reject or that would need executing; carries the line. */
export class EnvFileSyntaxError extends Error {
  constructor(readonly reason: string, readonly line: number) {
    super(`line ${line}: ${reason}`);
    this.name = "EnvFileSyntaxError";
  }
}

const NAME_AT = /[A-Za-z_][A-Za-z0-9_]*/y;
const NAME_ONLY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Builtins that only declare or set variables; their flags are read and ignored. */
const DECLARE = new Set(["export", "declare", "typeset", "readonly", "local"]);
/** What each refused word would do, for the error message. */
const REFUSED_WORDS: Record<string, string> = {
  if: "a conditional (if)",
  then: "a conditional (then)",
  elif: "a conditional (elif)",
  else: "a conditional (else)",
  fi: "a conditional (fi)",
  case: "a conditional (case)",
  esac: "a conditional (esac)",
  "[": "a test ([ ... ])",
  "[[": "a conditional ([[ ... ]])",
  test: "a test (test)",
  for: "a loop (for)",
  while: "a loop (while)",
  until: "a loop (until)",
  select: "a loop (select)",
  do: "a loop (do)",
  done: "a loop (done)",
  function: "a function definition",
  source: "reading another file (source)",
  ".": "reading another file (.)",
  eval: "eval",
  exec: "exec",
};
const OPERATORS: [string, string][] = [
  ["&&", "a conditional (&&)"],
  ["||", "a conditional (||)"],
  ["|", "a pipe (|)"],
  ["&", "running in the background (&)"],
  [">", "a redirection (>)"],
  ["<", "a redirection (<)"],
  ["(", "a subshell or function definition ('(')"],
];
const ANSI_C: Record<string, string> = {
  n: "\n",
  t: "\t",
  r: "\r",
  a: "\x07",
  b: "\b",
  e: "\x1b",
  E: "\x1b",
  f: "\f",
  v: "\v",
  "\\": "\\",
  "'": "'",
  '"': '"',
  "?": "?",
};
const NEVER_RUN = "the file is never executed";

/** A piece of a word: text, and whether it came from an unquoted expansion (split in arrays). */
type Piece = { text: string; split: boolean };

/** A variable's value where a scalar is wanted: an array's first element, as bash. */
const scalarOf = (v: EnvValue | undefined): string => Array.isArray(v) ? (v[0] ?? "") : (v ?? "");
/** The value of `v` as an array: `[v]` for a scalar, `[]` when unset. */
const arrayOf = (v: EnvValue | undefined): string[] => Array.isArray(v) ? v : v === undefined ? [] : [v];
const joined = (p: Piece[]) => p.map((x) => x.text).join("");

/** Bash's field splitting of a word in an array: unquoted expansions split on blanks. */
function fields(p: Piece[]): string[] {
  const res: string[] = [];
  let cur = "", has = false;
  for (const x of p) {
    if (!x.split) {
      cur += x.text;
      has = true;
      continue;
    }
    x.text.split(/[ \t\n]+/).forEach((part, k) => {
      if (k > 0 && (has || cur !== "")) {
        res.push(cur);
        cur = "";
        has = false;
      }
      if (part !== "") {
        cur += part;
        has = true;
      }
    });
  }
  if (has || cur !== "") res.push(cur);
  return res;
}

/**
 * Parses the text of an env file into its variables, in file order, as bash would hold them
 * after sourcing it. The line of a variable is that of its last assignment.
 *
 * @example
 * ```ts
 * const vars = parseEnvFile("A=1\nB=(x \"y z\")\nB+=(w)\n");
 * // vars.get("B") -> { value: ["x", "y z", "w"], line: 3 }
 * ```
 */
export function parseEnvFile(text: string, env: Record<string, string> = {}): Map<string, EnvEntry> {
  return new EnvFileReader(text, env).statements();
}

/**
 * The reader behind parseEnvFile, in three layers: the cursor (position, line, blanks and
 * comments), words (quoting and expansions, `word()` down to `ansiC()`), and statements
 * (`statements()`: assignments, `unset`, the declare builtins, refusals).
 */
class EnvFileReader {
  /** The variables set so far, in file order. */
  readonly vars = new Map<string, EnvEntry>();
  #i = 0;
  #line = 1;

  constructor(readonly text: string, readonly env: Record<string, string>) {}

  // ---- the cursor ----

  #fail(reason: string): never {
    throw new EnvFileSyntaxError(reason, this.#line);
  }
  #at(k = 0): string | undefined {
    return this.text[this.#i + k];
  }
  #atEnd(): boolean {
    return this.#i >= this.text.length;
  }
  #skipBlanks(): void {
    for (;;) {
      const c = this.#at();
      if (c === " " || c === "\t" || c === "\r") this.#i++;
      else if (c === "\\" && this.#at(1) === "\n") {
        this.#i += 2;
        this.#line++;
      } else return;
    }
  }
  #skipComment(): void {
    if (this.#at() === "#") { while (!this.#atEnd() && this.#at() !== "\n") this.#i++; }
  }
  #atWordEnd(inArray: boolean): boolean {
    const c = this.#at();
    return c === undefined || c === " " || c === "\t" || c === "\r" || c === "\n" || c === ";" ||
      (inArray && c === ")");
  }
  #refuseOperator(): void {
    for (const [op, what] of OPERATORS) {
      if (this.text.startsWith(op, this.#i)) this.#fail(`${what} is not allowed: ${NEVER_RUN}`);
    }
  }
  #get(name: string): EnvValue | undefined {
    return this.vars.get(name)?.value ?? this.env[name];
  }
  #assign(name: string, value: EnvValue, line: number): void {
    this.vars.set(name, { value, line });
  }

  // ---- words ----

  /** One shell word as pieces; null when there is none at the cursor. */
  #word(inArray: boolean): Piece[] | null {
    const pieces: Piece[] = [];
    const lit = (t: string) => pieces.push({ text: t, split: false });
    let seen = false;
    while (!this.#atWordEnd(inArray)) {
      const c = this.#at();
      if (c === "`") this.#fail(`command substitution \`...\` is not allowed: ${NEVER_RUN}`);
      if (!(inArray && c === "(")) this.#refuseOperator();
      seen = true;
      if (c === "'") {
        const end = this.text.indexOf("'", this.#i + 1);
        if (end < 0) this.#fail("unterminated single quote");
        const quoted = this.text.slice(this.#i + 1, end);
        this.#line += quoted.split("\n").length - 1;
        lit(quoted);
        this.#i = end + 1;
      } else if (c === '"') {
        lit(this.#doubleQuoted());
      } else if (c === "\\") {
        if (this.#at(1) === "\n") this.#line++;
        else lit(this.#at(1) ?? "");
        this.#i += 2;
      } else if (c === "$") {
        pieces.push(...this.#dollar(false));
      } else {
        lit(c!);
        this.#i++;
      }
    }
    return seen ? pieces : null;
  }

  /** `$...` at the cursor; quoted: inside double quotes. */
  #dollar(quoted: boolean): Piece[] {
    this.#i++; // the '$'
    const c = this.#at();
    if (this.text.startsWith("((", this.#i)) this.#fail(`arithmetic $((...)) is not allowed: ${NEVER_RUN}`);
    if (c === "(") this.#fail(`command substitution $(...) is not allowed: ${NEVER_RUN}`);
    if (c === "{") {
      // "${A[@]}" inside double quotes is taken as one word (bash makes one per element)
      const v = this.#braced();
      return [{ text: Array.isArray(v) ? v.join(" ") : v, split: !quoted }];
    }
    if (!quoted && c === "'") return [{ text: this.#ansiC(), split: false }];
    if (!quoted && c === '"') return [{ text: this.#doubleQuoted(), split: false }];
    NAME_AT.lastIndex = this.#i;
    const m = NAME_AT.exec(this.text);
    if (!m) {
      if (c !== undefined && "0123456789#?$!@*-".includes(c)) this.#fail(`special parameter $${c} is not allowed`);
      return [{ text: "$", split: false }];
    }
    this.#i += m[0].length;
    return [{ text: scalarOf(this.#get(m[0])), split: !quoted }];
  }

  /** `${...}` after the `$`: the expansion's value (an array for `[@]`/`[*]`). */
  #braced(): EnvValue {
    const end = this.text.indexOf("}", this.#i);
    if (end < 0) this.#fail("unterminated ${");
    const body = this.text.slice(this.#i + 1, end);
    this.#i = end + 1;
    if (body.startsWith("#") && NAME_ONLY.test(body.slice(1))) {
      return String(scalarOf(this.#get(body.slice(1))).length);
    }
    const idx = /^([A-Za-z_][A-Za-z0-9_]*)\[(@|\*|\d+)\]$/.exec(body);
    if (idx) {
      const arr = arrayOf(this.#get(idx[1]));
      return idx[2] === "@" || idx[2] === "*" ? arr : (arr[Number(idx[2])] ?? "");
    }
    const op = /^([A-Za-z_][A-Za-z0-9_]*)(:?[-+=])(.*)$/s.exec(body);
    if (op) {
      const v = this.#get(op[1]);
      const set = v !== undefined && !(op[2].startsWith(":") && scalarOf(v) === "");
      const word = this.#expandText(op[3]);
      if (op[2].endsWith("+")) return set ? word : "";
      if (set) return scalarOf(v);
      if (op[2].endsWith("=")) this.#assign(op[1], word, this.#line);
      return word;
    }
    if (!NAME_ONLY.test(body)) this.#fail(`unsupported expansion \${${body}}: ${NEVER_RUN}`);
    return scalarOf(this.#get(body));
  }

  /** A `${...}` operator's word as bash reads it (quotes removed, `$NAME` expanded; no nesting). */
  #expandText(word: string): string {
    const vars = { ...this.env, ...Object.fromEntries([...this.vars].map(([k, e]) => [k, scalarOf(e.value)])) };
    const source = /['"\\]/.test(word) ? `X=${word}` : `X="${word}"`;
    try {
      return scalarOf(parseEnvFile(source, vars).get("X")?.value);
    } catch (e) {
      if (e instanceof EnvFileSyntaxError) this.#fail(`in \${...}: ${e.reason}`);
      throw e;
    }
  }

  /** `$'...'` (the cursor on the quote): ANSI-C escapes. */
  #ansiC(): string {
    let s = "";
    this.#i++;
    for (;;) {
      if (this.#atEnd()) this.#fail("unterminated $'...'");
      const c = this.#at()!;
      if (c === "'") {
        this.#i++;
        return s;
      }
      if (c === "\n") this.#line++;
      if (c !== "\\") {
        s += c;
        this.#i++;
        continue;
      }
      const [text, used] = ansiEscape(this.text.slice(this.#i + 1, this.#i + 11));
      s += text;
      this.#i += 1 + used;
    }
  }

  /** `"..."` (the cursor on the opening quote). */
  #doubleQuoted(): string {
    let s = "";
    this.#i++;
    for (;;) {
      if (this.#atEnd()) this.#fail("unterminated double quote");
      const c = this.#at()!;
      if (c === '"') {
        this.#i++;
        return s;
      }
      if (c === "`") this.#fail(`command substitution \`...\` is not allowed: ${NEVER_RUN}`);
      if (c === "$") {
        s += joined(this.#dollar(true));
        continue;
      }
      const next = this.#at(1);
      if (c === "\\" && next !== undefined && '"\\$`\n'.includes(next)) {
        if (next === "\n") this.#line++;
        else s += next;
        this.#i += 2;
        continue;
      }
      if (c === "\n") this.#line++;
      s += c;
      this.#i++;
    }
  }

  /** `NAME=(...)` (the cursor on the parenthesis): the items, split as bash splits them. */
  #arrayItems(name: string): string[] {
    this.#i++;
    const items: string[] = [];
    for (;;) {
      this.#skipBlanks();
      this.#skipComment();
      if (this.#atEnd()) this.#fail(`unterminated array ${name}=( (missing ')')`);
      if (this.#at() === "\n") {
        this.#line++;
        this.#i++;
        continue;
      }
      if (this.#at() === ")") {
        this.#i++;
        return items;
      }
      const w = this.#word(true);
      if (w !== null) items.push(...fields(w));
      else if (this.#at() === ";") this.#fail(`';' inside the array ${name}=(...)`);
    }
  }

  // ---- statements ----

  /** The whole file, statement by statement. */
  statements(): Map<string, EnvEntry> {
    while (!this.#atEnd()) {
      this.#skipBlanks();
      this.#skipComment();
      if (this.#atEnd()) break;
      const c = this.#at();
      if (c === "\n" || c === ";") {
        if (c === "\n") this.#line++;
        this.#i++;
        continue;
      }
      this.#statement();
      this.#skipBlanks();
      this.#skipComment();
      if (!this.#atEnd() && this.#at() !== "\n" && this.#at() !== ";") {
        this.#fail(`unexpected text '${this.text.slice(this.#i, this.#i + 20).split("\n")[0]}'`);
      }
    }
    return this.vars;
  }

  /** One statement: `unset`, a declare builtin, or assignments; anything that would run is refused. */
  #statement(): void {
    this.#refuseOperator();
    if (this.#at() === "{" && /[\s]/.test(this.#at(1) ?? "")) {
      this.#fail(`a command group ({ ... }) is not allowed: ${NEVER_RUN}`);
    }
    const ahead = this.text.slice(this.#i, this.#i + 64);
    const first = /^[^\s;=]+/.exec(ahead)?.[0] ?? "";
    if (first in REFUSED_WORDS && !/^[A-Za-z_][A-Za-z0-9_]*(\+?=|\[)/.test(ahead)) {
      this.#fail(`${REFUSED_WORDS[first]} is not allowed: ${NEVER_RUN}`);
    }
    if (first === "unset") {
      this.#i += first.length;
      this.#unset();
    } else if (DECLARE.has(first) && /[ \t]/.test(this.#at(first.length) ?? "")) {
      this.#i += first.length;
      this.#declare(first);
    } else {
      // NAME=value, possibly several on one line
      for (;;) {
        this.#assignment(false, "");
        this.#skipBlanks();
        if (this.#atWordEnd(false) || this.#at() === "#") break;
      }
    }
  }

  /** The names after `unset` (`-v` taken as bash takes it). */
  #unset(): void {
    for (;;) {
      this.#skipBlanks();
      if (this.#atWordEnd(false) || this.#at() === "#") return;
      const name = joined(this.#word(false)!);
      if (name === "-v") continue;
      if (!NAME_ONLY.test(name)) this.#fail(`unset ${name}: only unset NAME is allowed`);
      this.vars.delete(name);
    }
  }

  /** What follows `export`, `declare`, ...: flags, then names with or without values. */
  #declare(builtin: string): void {
    let flags = "";
    for (;;) {
      this.#skipBlanks();
      if (this.#atWordEnd(false) || this.#at() === "#") return;
      if (this.#at() === "-" || this.#at() === "+") {
        const w = joined(this.#word(false)!);
        if (/[AfF]/.test(w)) this.#fail(`${builtin} ${w}: associative arrays and functions are not allowed`);
        if (w[0] === "-") flags += w.slice(1);
        continue;
      }
      this.#assignment(true, flags);
    }
  }

  /** One `NAME...=...` at the cursor (after a declare builtin: `NAME` alone too). */
  #assignment(declared: boolean, flags: string): void {
    const startLine = this.#line;
    NAME_AT.lastIndex = this.#i;
    const name = NAME_AT.exec(this.text)?.[0];
    if (name === undefined) {
      const w = this.#word(false);
      return this.#fail(`expected NAME=value, got '${w ? joined(w) : this.#at()}'`);
    }
    this.#i += name.length;
    const index = this.#index(name);
    const append = this.text.startsWith("+=", this.#i);
    if (!append && this.#at() !== "=") {
      if (declared && index === null && this.#atWordEnd(false)) {
        // `declare -a NAME` / `export NAME`: declares; an array flag makes it an empty array
        if (!this.vars.has(name) && flags.includes("a")) this.#assign(name, [], startLine);
        return;
      }
      const rest = this.#word(false);
      this.#fail(
        name in REFUSED_WORDS
          ? `${REFUSED_WORDS[name]} is not allowed: ${NEVER_RUN}`
          : `'${name + (rest ? joined(rest) : "")}' is a command, not NAME=value: ${NEVER_RUN}`,
      );
    }
    this.#i += append ? 2 : 1;
    const old = this.#get(name);
    if (this.#at() === "(" && index === null) {
      const items = this.#arrayItems(name);
      this.#assign(name, [...(append ? arrayOf(old) : []), ...items], startLine);
      return;
    }
    const w = this.#word(false);
    const v = w ? joined(w) : "";
    if (index !== null) {
      const arr = [...arrayOf(old)];
      const item = append ? (arr[index] ?? "") + v : v;
      while (arr.length < index) arr.push("");
      arr[index] = item;
      this.#assign(name, arr, startLine);
    } else if (Array.isArray(old)) {
      // `ARR=x` and `ARR+=x` set element 0, as bash
      const arr = [...old];
      arr[0] = append ? (arr[0] ?? "") + v : v;
      this.#assign(name, arr, startLine);
    } else if (flags.includes("a") && !append) {
      this.#assign(name, [v], startLine);
    } else {
      this.#assign(name, append ? (old ?? "") + v : v, startLine);
    }
  }

  /** `[N]` after a name (the cursor on it): N; null when there is none. */
  #index(name: string): number | null {
    if (this.#at() !== "[") return null;
    const close = this.text.indexOf("]", this.#i);
    const idx = close < 0 ? "" : this.text.slice(this.#i + 1, close);
    if (!/^\d+$/.test(idx)) this.#fail(`array index ${name}[${idx}] must be a number`);
    this.#i = close + 1;
    return Number(idx);
  }
}

/** One ANSI-C escape: `after` is the text after the backslash; returns its text and how much it used. */
function ansiEscape(after: string): [string, number] {
  const e = after[0] ?? "";
  if (e in ANSI_C) return [ANSI_C[e], 1];
  const hex = /^x([0-9a-fA-F]{1,2})/.exec(after.slice(0, 3));
  if (hex) return [String.fromCharCode(parseInt(hex[1], 16)), hex[0].length];
  const oct = /^[0-7]{1,3}/.exec(after.slice(0, 3));
  if (oct) return [String.fromCharCode(parseInt(oct[0], 8) & 0xff), oct[0].length];
  const uni = /^[uU]([0-9a-fA-F]{1,8})/.exec(after);
  if (uni) return [String.fromCodePoint(Math.min(parseInt(uni[1], 16), 0x10ffff)), uni[0].length];
  return ["\\" + e, 1];
}
