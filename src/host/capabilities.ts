/**
 * The process's effective capabilities (CapEff in /proc/self/status), to explain failures the
 * unit's capability bounding set can cause.
 *
 * @module
 */

/** Capability numbers the daemon names. */
export const CAP_SYS_ADMIN = 21;

/** The effective capability mask in a /proc/<pid>/status text, or null when it has none. */
export function effectiveCapabilities(status: string): bigint | null {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : null;
}

/** Whether this process lacks capability `cap` (false when that cannot be read). */
export function lacksCapability(cap: number, status?: string): boolean {
  let text = status;
  try {
    text ??= Deno.readTextFileSync("/proc/self/status");
  } catch {
    return false;
  }
  const eff = effectiveCapabilities(text);
  return eff !== null && (eff & (1n << BigInt(cap))) === 0n;
}
