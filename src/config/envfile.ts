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
  const out = new Map<string, EnvEntry>();
  let i = 0;
  let line = 1;
  const n = text.length;
  const fail = (reason: string): never => {
    throw new EnvFileSyntaxError(reason, line);
  };
  const get = (name: string): EnvValue | undefined => out.get(name)?.value ?? env[name];
  const scalarOf = (v: EnvValue | undefined): string => Array.isArray(v) ? (v[0] ?? "") : (v ?? "");
  const skipBlanks = () => {
    for (;;) {
      if (text[i] === " " || text[i] === "\t" || text[i] === "\r") i++;
      else if (text[i] === "\\" && text[i + 1] === "\n") {
        i += 2;
        line++;
      } else return;
    }
  };
  const skipComment = () => {
    if (text[i] === "#") { while (i < n && text[i] !== "\n") i++; }
  };
  const atWordEnd = (inArray: boolean) => {
    const c = text[i];
    return i >= n || c === " " || c === "\t" || c === "\r" || c === "\n" || c === ";" || (inArray && c === ")");
  };
  const refuseOperator = () => {
    for (const [op, what] of OPERATORS) if (text.startsWith(op, i)) fail(`${what} is not allowed: ${NEVER_RUN}`);
  };

  /** `${...}` after the `$`: the expansion's value (an array for `[@]`/`[*]`). */
  const braced = (): EnvValue => {
    const end = text.indexOf("}", i);
    if (end < 0) fail("unterminated ${");
    const body = text.slice(i + 1, end);
    i = end + 1;
    if (body.startsWith("#") && NAME_ONLY.test(body.slice(1))) {
      const v = get(body.slice(1));
      return String(scalarOf(v).length);
    }
    const idx = /^([A-Za-z_][A-Za-z0-9_]*)\[(@|\*|\d+)\]$/.exec(body);
    if (idx) {
      const v = get(idx[1]);
      const arr = Array.isArray(v) ? v : v === undefined ? [] : [v];
      return idx[2] === "@" || idx[2] === "*" ? arr : (arr[Number(idx[2])] ?? "");
    }
    const op = /^([A-Za-z_][A-Za-z0-9_]*)(:?[-+=])(.*)$/s.exec(body);
    if (op) {
      const v = get(op[1]);
      const set = v !== undefined && !(op[2].startsWith(":") && scalarOf(v) === "");
      const word = expandText(op[3]);
      if (op[2].endsWith("+")) return set ? word : "";
      if (set) return scalarOf(v);
      if (op[2].endsWith("=")) out.set(op[1], { value: word, line });
      return word;
    }
    if (!NAME_ONLY.test(body)) fail(`unsupported expansion \${${body}}: ${NEVER_RUN}`);
    return scalarOf(get(body));
  };
  /** A `${...}` operator's word as bash reads it (quotes removed, `$NAME` expanded; no nesting). */
  const expandText = (word: string): string => {
    const vars = { ...env, ...Object.fromEntries([...out].map(([k, e]) => [k, scalarOf(e.value)])) };
    const source = /['"\\]/.test(word) ? `X=${word}` : `X="${word}"`;
    try {
      return scalarOf(parseEnvFile(source, vars).get("X")?.value);
    } catch (e) {
      if (e instanceof EnvFileSyntaxError) fail(`in \${...}: ${e.reason}`);
      throw e;
    }
  };
  /** `$...` at the cursor; quoted: inside double quotes. */
  const dollar = (quoted: boolean): Piece[] => {
    i++; // the '$'
    const c = text[i];
    if (text.startsWith("((", i)) fail(`arithmetic $((...)) is not allowed: ${NEVER_RUN}`);
    if (c === "(") fail(`command substitution $(...) is not allowed: ${NEVER_RUN}`);
    if (c === "{") {
      const v = braced();
      if (Array.isArray(v)) {
        // "${A[@]}" inside double quotes is taken as one word (bash makes one per element)
        return [{ text: v.join(" "), split: !quoted }];
      }
      return [{ text: v, split: !quoted }];
    }
    if (!quoted && c === "'") return [{ text: ansiC(), split: false }];
    if (!quoted && c === '"') return [{ text: doubleQuoted(), split: false }];
    NAME_AT.lastIndex = i;
    const m = NAME_AT.exec(text);
    if (!m) {
      if (c !== undefined && "0123456789#?$!@*-".includes(c)) fail(`special parameter $${c} is not allowed`);
      return [{ text: "$", split: false }];
    }
    i += m[0].length;
    return [{ text: scalarOf(get(m[0])), split: !quoted }];
  };
  /** `$'...'` (the cursor on the quote): ANSI-C escapes. */
  const ansiC = (): string => {
    let s = "";
    i++;
    for (;;) {
      if (i >= n) fail("unterminated $'...'");
      const c = text[i];
      if (c === "'") {
        i++;
        return s;
      }
      if (c === "\n") line++;
      if (c !== "\\") {
        s += c;
        i++;
        continue;
      }
      const e = text[i + 1] ?? "";
      const hex = /^x([0-9a-fA-F]{1,2})/.exec(text.slice(i + 1, i + 4));
      const oct = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4));
      const uni = /^[uU]([0-9a-fA-F]{1,8})/.exec(text.slice(i + 1, i + 11));
      if (e in ANSI_C) {
        s += ANSI_C[e];
        i += 2;
      } else if (hex) {
        s += String.fromCharCode(parseInt(hex[1], 16));
        i += 1 + hex[0].length;
      } else if (oct) {
        s += String.fromCharCode(parseInt(oct[0], 8) & 0xff);
        i += 1 + oct[0].length;
      } else if (uni) {
        s += String.fromCodePoint(Math.min(parseInt(uni[1], 16), 0x10ffff));
        i += 1 + uni[0].length;
      } else {
        s += "\\" + e;
        i += 2;
      }
    }
  };
  const doubleQuoted = (): string => {
    let s = "";
    i++; // the opening quote
    for (;;) {
      if (i >= n) fail("unterminated double quote");
      const c = text[i];
      if (c === '"') {
        i++;
        return s;
      }
      if (c === "`") fail(`command substitution \`...\` is not allowed: ${NEVER_RUN}`);
      if (c === "$") {
        s += dollar(true).map((p) => p.text).join("");
        continue;
      }
      if (c === "\\" && i + 1 < n && '"\\$`\n'.includes(text[i + 1])) {
        if (text[i + 1] === "\n") line++;
        else s += text[i + 1];
        i += 2;
        continue;
      }
      if (c === "\n") line++;
      s += c;
      i++;
    }
  };
  /** One shell word as pieces; null when there is none at the cursor. */
  const word = (inArray: boolean): Piece[] | null => {
    const pieces: Piece[] = [];
    const lit = (t: string) => pieces.push({ text: t, split: false });
    let seen = false;
    while (!atWordEnd(inArray)) {
      const c = text[i];
      if (c === "`") fail(`command substitution \`...\` is not allowed: ${NEVER_RUN}`);
      if (!(inArray && c === "(")) refuseOperator();
      seen = true;
      if (c === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) fail("unterminated single quote");
        const quoted = text.slice(i + 1, end);
        line += quoted.split("\n").length - 1;
        lit(quoted);
        i = end + 1;
      } else if (c === '"') {
        lit(doubleQuoted());
      } else if (c === "\\") {
        if (text[i + 1] === "\n") line++;
        else lit(text[i + 1] ?? "");
        i += 2;
      } else if (c === "$") {
        pieces.push(...dollar(false));
      } else {
        lit(c);
        i++;
      }
    }
    return seen ? pieces : null;
  };
  const joined = (p: Piece[]) => p.map((x) => x.text).join("");
  /** Bash's field splitting of a word in an array: unquoted expansions split on blanks. */
  const fields = (p: Piece[]): string[] => {
    const res: string[] = [];
    let cur = "", has = false;
    for (const x of p) {
      if (!x.split) {
        cur += x.text;
        has = true;
        continue;
      }
      const parts = x.text.split(/[ \t\n]+/);
      parts.forEach((part, k) => {
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
  };
  const arrayItems = (name: string): string[] => {
    i++; // '('
    const items: string[] = [];
    for (;;) {
      skipBlanks();
      skipComment();
      if (i >= n) fail(`unterminated array ${name}=( (missing ')')`);
      if (text[i] === "\n") {
        line++;
        i++;
        continue;
      }
      if (text[i] === ")") {
        i++;
        return items;
      }
      const w = word(true);
      if (w !== null) items.push(...fields(w));
      else if (text[i] === ";") fail(`';' inside the array ${name}=(...)`);
    }
  };
  const assign = (name: string, value: EnvValue, startLine: number) => out.set(name, { value, line: startLine });

  /** One `NAME...=...` at the cursor (after a declare builtin: `NAME` alone too). */
  const assignment = (declared: boolean, flags: string): void => {
    const startLine = line;
    NAME_AT.lastIndex = i;
    const m = NAME_AT.exec(text);
    const name = m?.[0];
    if (name === undefined) {
      const w = word(false);
      fail(`expected NAME=value, got '${w ? joined(w) : text[i]}'`);
    }
    i += name!.length;
    let index: number | null = null;
    if (text[i] === "[") {
      const close = text.indexOf("]", i);
      const idx = close < 0 ? "" : text.slice(i + 1, close);
      if (!/^\d+$/.test(idx)) fail(`array index ${name}[${idx}] must be a number`);
      index = Number(idx);
      i = close + 1;
    }
    const append = text.startsWith("+=", i);
    if (!append && text[i] !== "=") {
      if (declared && index === null && atWordEnd(false)) {
        // `declare -a NAME` / `export NAME`: declares; an array flag makes it an empty array
        if (!out.has(name!) && flags.includes("a")) assign(name!, [], startLine);
        return;
      }
      const rest = word(false);
      const cmd = name! + (rest ? joined(rest) : "");
      fail(
        name! in REFUSED_WORDS
          ? `${REFUSED_WORDS[name!]} is not allowed: ${NEVER_RUN}`
          : `'${cmd}' is a command, not NAME=value: ${NEVER_RUN}`,
      );
    }
    i += append ? 2 : 1;
    const old = get(name!);
    if (text[i] === "(" && index === null) {
      const items = arrayItems(name!);
      const before = append ? (Array.isArray(old) ? old : old === undefined ? [] : [old]) : [];
      assign(name!, [...before, ...items], startLine);
    } else {
      const w = word(false);
      let v = w ? joined(w) : "";
      if (index !== null) {
        const arr = Array.isArray(old) ? [...old] : old === undefined ? [] : [old];
        if (append) v = (arr[index] ?? "") + v;
        while (arr.length < index) arr.push("");
        arr[index] = v;
        assign(name!, arr, startLine);
      } else if (Array.isArray(old)) {
        // `ARR=x` and `ARR+=x` set element 0, as bash
        const arr = [...old];
        arr[0] = append ? (arr[0] ?? "") + v : v;
        assign(name!, arr, startLine);
      } else {
        if (flags.includes("a") && !append) assign(name!, [v], startLine);
        else assign(name!, append ? (old ?? "") + v : v, startLine);
      }
    }
  };

  while (i < n) {
    skipBlanks();
    skipComment();
    if (i >= n) break;
    if (text[i] === "\n" || text[i] === ";") {
      if (text[i] === "\n") line++;
      i++;
      continue;
    }
    refuseOperator();
    if (text[i] === "{" && /[\s]/.test(text[i + 1] ?? "")) {
      fail(`a command group ({ ... }) is not allowed: ${NEVER_RUN}`);
    }
    const first = /^[^\s;=]+/.exec(text.slice(i, i + 64))?.[0] ?? "";
    if (first in REFUSED_WORDS && !/^[A-Za-z_][A-Za-z0-9_]*(\+?=|\[)/.test(text.slice(i, i + 64))) {
      fail(`${REFUSED_WORDS[first]} is not allowed: ${NEVER_RUN}`);
    }
    if (first === "unset") {
      i += 5;
      for (;;) {
        skipBlanks();
        if (atWordEnd(false) || text[i] === "#") break;
        const w = word(false)!;
        const name = joined(w);
        if (name === "-v") continue;
        if (!NAME_ONLY.test(name)) fail(`unset ${name}: only unset NAME is allowed`);
        out.delete(name);
      }
    } else if (DECLARE.has(first) && /[ \t]/.test(text[i + first.length] ?? "")) {
      i += first.length;
      let flags = "";
      for (;;) {
        skipBlanks();
        if (atWordEnd(false) || text[i] === "#") break;
        if (text[i] === "-" || text[i] === "+") {
          const w = joined(word(false)!);
          if (/[AfF]/.test(w)) fail(`${first} ${w}: associative arrays and functions are not allowed`);
          if (w[0] === "-") flags += w.slice(1);
          continue;
        }
        assignment(true, flags);
      }
    } else {
      // NAME=value, possibly several on one line
      for (;;) {
        assignment(false, "");
        skipBlanks();
        if (atWordEnd(false) || text[i] === "#") break;
      }
    }
    skipBlanks();
    skipComment();
    if (i < n && text[i] !== "\n" && text[i] !== ";") fail(`unexpected text '${text.slice(i, i + 20).split("\n")[0]}'`);
  }
  return out;
}
