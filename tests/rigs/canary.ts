/**
 * A file whose content must survive every attack: tests point links planted by an attacker at
 * it, then check it after each attempt.
 *
 * @module
 */

import { assertEq } from "./assert.ts";

/** The canary: a root-only file with known content, removed when the test module unloads. */
export class Canary {
  static readonly CONTENT = "vio4wd canary: must never change\n";

  private constructor(readonly path: string) {}

  /** Plants a canary in a fresh temporary directory. */
  static plant(): Canary {
    const dir = Deno.makeTempDirSync({ prefix: "v4t-canary-" });
    const c = new Canary(`${dir}/canary`);
    Deno.writeTextFileSync(c.path, Canary.CONTENT, { mode: 0o600 });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return c;
  }

  /** Fails unless the canary is still the same regular file with the same content. */
  check(after: string): void {
    const st = Deno.lstatSync(this.path);
    assertEq(st.isFile && (st.mode! & 0o777) === 0o600, true, `after ${after}: the canary is a root-only file`);
    assertEq(Deno.readTextFileSync(this.path), Canary.CONTENT, `after ${after}: the canary's content`);
  }
}
