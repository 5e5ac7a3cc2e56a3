/**
 * The assertions the tests share (no @std/assert: JSR is not reachable here).
 *
 * @module
 */

/** Throws `what: expected E, got A` unless `actual === expected`. */
export function assertEq<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) throw new Error(`${what}: expected ${expected}, got ${actual}`);
}

/** Throws `what` unless `cond` holds. */
export function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

/** Throws `what: expected E, got A` unless both have the same JSON form (arrays, plain objects). */
export function assertJsonEq(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual, null, 1), e = JSON.stringify(expected, null, 1);
  if (a !== e) throw new Error(`${what}:\nexpected ${e}\ngot      ${a}`);
}
