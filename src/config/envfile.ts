/**
 * A parser for `/etc/default`-style files: the subset of bash that such files use, without ever
 * executing anything.
 *
 * Supported: `NAME=value`, `export NAME=value`, `#` comments at the start of a word, single and
 * double quotes (concatenated with bare text), backslash escapes, `$NAME` / `${NAME}` expansion of
 * variables set earlier in the file (or of the environment given), and indexed arrays
 * `NAME=(a "b c")` that may span several lines and hold comments. Command substitution (`$(...)`,
 * backticks), pipes and redirections are errors.
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
const FORBIDDEN = "(`|&<>";

/**
 * Parses the text of an env file into its assignments, in file order. A later assignment to the
 * same name replaces the earlier one (and its line), as in bash.
 *
 * @example
 * ```ts
 * const vars = parseEnvFile("A=1\nB=(x \"y z\")\n");
 * // vars.get("B") -> { value: ["x", "y z"], line: 2 }
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
  const lookup = (name: string): string => {
    const v = out.get(name)?.value ?? env[name] ?? "";
    return Array.isArray(v) ? (v[0] ?? "") : v;
  };
  const skipBlanks = () => {
    while (i < n && (text[i] === " " || text[i] === "\t" || text[i] === "\r")) i++;
  };
  const skipComment = () => {
    if (text[i] === "#") { while (i < n && text[i] !== "\n") i++; }
  };
  const expandDollar = (): string => {
    i++; // the '$'
    if (text[i] === "(") fail("command substitution $(...) is not allowed: the file is never executed");
    if (text[i] === "{") {
      const end = text.indexOf("}", i);
      if (end < 0) fail("unterminated ${");
      const name = text.slice(i + 1, end);
      if (!NAME_ONLY.test(name)) fail(`unsupported expansion \${${name}}: only \${NAME} is allowed`);
      i = end + 1;
      return lookup(name);
    }
    NAME_AT.lastIndex = i;
    const m = NAME_AT.exec(text);
    if (!m) return "$";
    i += m[0].length;
    return lookup(m[0]);
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
      if (c === "`") fail("command substitution `...` is not allowed: the file is never executed");
      if (c === "$") {
        s += expandDollar();
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
  /** One shell word; null when there is none at the cursor. */
  const word = (inArray: boolean): string | null => {
    let s = "";
    let seen = false;
    while (i < n) {
      const c = text[i];
      if (c === " " || c === "\t" || c === "\r" || c === "\n" || c === ";") break;
      if (inArray && c === ")") break;
      if (c === "`") fail("command substitution `...` is not allowed: the file is never executed");
      if (FORBIDDEN.includes(c)) fail(`unsupported shell syntax '${c}': only NAME=value and NAME=(...) are allowed`);
      seen = true;
      if (c === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) fail("unterminated single quote");
        const quoted = text.slice(i + 1, end);
        line += quoted.split("\n").length - 1;
        s += quoted;
        i = end + 1;
      } else if (c === '"') {
        s += doubleQuoted();
      } else if (c === "\\") {
        if (text[i + 1] === "\n") line++;
        else s += text[i + 1] ?? "";
        i += 2;
      } else if (c === "$") {
        s += expandDollar();
      } else {
        s += c;
        i++;
      }
    }
    return seen ? s : null;
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
    if (text.startsWith("export", i) && /[ \t]/.test(text[i + 6] ?? "")) {
      i += 6;
      skipBlanks();
    }
    NAME_AT.lastIndex = i;
    const m = NAME_AT.exec(text);
    if (!m || text[i + m[0].length] !== "=") {
      const got = text.slice(i, text.indexOf("\n", i) < 0 ? n : text.indexOf("\n", i)).trim();
      fail(`expected NAME=value, got '${got}'`);
    }
    const name = m![0];
    const startLine = line;
    i += name.length + 1;
    if (text[i] === "(") {
      i++;
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
          break;
        }
        const w = word(true);
        if (w !== null) items.push(w);
      }
      out.set(name, { value: items, line: startLine });
    } else {
      out.set(name, { value: word(false) ?? "", line: startLine });
    }
    skipBlanks();
    skipComment();
    if (i < n && text[i] !== "\n" && text[i] !== ";") fail(`unexpected text after ${name}=...`);
  }
  return out;
}
