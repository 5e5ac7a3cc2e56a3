/**
 * Where sysfs is: `/sys`, or the tree VIO4WD_SYSFS_ROOT names (tests lay out fake ones).
 *
 * @module
 */

/** The root of the sysfs tree read and written (`/sys` unless VIO4WD_SYSFS_ROOT is set). */
export function sysfsRoot(): string {
  return Deno.env.get("VIO4WD_SYSFS_ROOT") ?? "/sys";
}
