/**
 * The one assertion the tests share (no @std/assert: JSR is not reachable here).
 *
 * @module
 */

/** Throws `what: expected E, got A` unless `actual === expected`. */
export function assertEq<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) throw new Error(`${what}: expected ${expected}, got ${actual}`);
}
