/**
 * A fake sysfs tree for the netdev -> VF mapping (VIO4WD_SYSFS_ROOT): an SR-IOV PF with VFs and
 * their network interfaces and bus/pci/devices links, laid out as the kernel does.
 *
 * @module
 */

/**
 * A fake sysfs tree: PF 0000:05:00.0 (netdev `pf0`) with VF n at 0000:05:08.n, netdev `vf<n>` for
 * each.
 */
export function fakeSysfs(root: string, vfs: number[]): void {
  const devices = `${root}/devices/pci0000:00`;
  Deno.mkdirSync(`${devices}/0000:05:00.0`, { recursive: true });
  Deno.mkdirSync(`${root}/class/net`, { recursive: true });
  Deno.mkdirSync(`${root}/bus/pci/devices`, { recursive: true });
  for (const n of vfs) {
    const vf = `0000:05:08.${n}`;
    Deno.mkdirSync(`${devices}/${vf}`, { recursive: true });
    Deno.symlinkSync(`../0000:05:00.0`, `${devices}/${vf}/physfn`);
    Deno.symlinkSync(`../${vf}`, `${devices}/0000:05:00.0/virtfn${n}`);
    Deno.symlinkSync(`${devices}/${vf}`, `${root}/bus/pci/devices/${vf}`);
    Deno.mkdirSync(`${root}/class/net/vf${n}`);
    Deno.symlinkSync(`${devices}/${vf}`, `${root}/class/net/vf${n}/device`);
  }
  Deno.symlinkSync(`${devices}/0000:05:00.0`, `${root}/bus/pci/devices/0000:05:00.0`);
  Deno.mkdirSync(`${root}/class/net/pf0`);
  Deno.symlinkSync(`${devices}/0000:05:00.0`, `${root}/class/net/pf0/device`);
  Deno.mkdirSync(`${root}/class/net/lo`);
}

/** A fake sysfs tree (VIO4WD_SYSFS_ROOT) of a host whose CPUs `online` are online (kernel list, e.g. 0-3). */
export function fakeCpus(root: string, online: string): string {
  Deno.mkdirSync(`${root}/devices/system/cpu`, { recursive: true });
  Deno.writeTextFileSync(`${root}/devices/system/cpu/online`, `${online}\n`);
  return root;
}

/**
 * Makes DPDK device `devargs` stand in for fake VF `pci` (laid out by fakeSysfs): the daemon,
 * run with VIO4WD_SYSFS_ROOT=root, attaches `devargs` wherever a client names `pci`.
 */
export function standInForVf(root: string, pci: string, devargs: string): void {
  Deno.writeTextFileSync(`${root}/bus/pci/devices/${pci}/vio4wd_standin`, devargs);
}
