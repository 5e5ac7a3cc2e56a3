/**
 * Linux errno values the code names (x86-64 and every other Linux architecture DPDK 22.11 runs
 * on agree on these), with their names: one table for libc's errors, the shim's and the relay
 * table's.
 *
 * @module
 */

export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENAMETOOLONG: 36,
  ELOOP: 40,
  ECONNREFUSED: 111,
} as const;

/** The name of errno `n` ("errno N" for one the table lacks). */
export function errnoName(n: number): string {
  return Object.entries(ERRNO).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
}
