import { basename } from "node:path";
import { fakeSysfs } from "../../tests/rigs/sysfs.ts";
import { assertEq, assertJsonEq } from "../../tests/rigs/assert.ts";
import { bindVfio, expandBindList, plannedBindings } from "./vfio_bind.ts";

/** A fake tree with PF netdev pf0 owning VFs 0000:05:08.0-3 on ixgbevf, and the drivers' directories. */
function host(): string {
  const root = Deno.makeTempDirSync();
  fakeSysfs(root, [3, 1, 0, 2]);
  for (const d of ["ixgbevf", "vfio-pci"]) Deno.mkdirSync(`${root}/bus/pci/drivers/${d}`, { recursive: true });
  Deno.mkdirSync(`${root}/bus/pci/devices`, { recursive: true });
  for (const n of [0, 1, 2, 3]) {
    const vf = `0000:05:08.${n}`;
    Deno.writeTextFileSync(`${root}/devices/pci0000:00/${vf}/driver_override`, "(null)\n");
    Deno.symlinkSync(`${root}/bus/pci/drivers/ixgbevf`, `${root}/devices/pci0000:00/${vf}/driver`);
  }
  return root;
}

/** The kernel's part on the fake tree: a probe moves the device to the driver its override names. */
function fakeKernel(log: string[]) {
  return (pci: string, root: string) => {
    const dev = `${root}/bus/pci/devices/${pci}`;
    const want = Deno.readTextFileSync(`${dev}/driver_override`).trim();
    log.push(`probe ${pci} -> ${want}; unbound from ${Deno.readTextFileSync(`${dev}/driver/unbind`)}`);
    Deno.removeSync(`${dev}/driver`);
    Deno.symlinkSync(`${root}/bus/pci/drivers/${want}`, `${dev}/driver`);
  };
}

Deno.test("VIRTIOFWD_BIND_VFIO_PCI lists: PCI addresses (bb:dd.f too), a PF's netdev (all VFs), netdev:count (the first by address), de-duplicated and sorted", () => {
  const root = host();
  try {
    assertJsonEq(expandBindList(["05:08.2", "0000:05:08.1"], root), ["0000:05:08.1", "0000:05:08.2"], "PCI");
    assertJsonEq(
      expandBindList(["pf0"], root),
      ["0000:05:08.0", "0000:05:08.1", "0000:05:08.2", "0000:05:08.3"],
      "all VFs",
    );
    assertJsonEq(expandBindList(["pf0:2", "05:08.1"], root), ["0000:05:08.0", "0000:05:08.1"], "first 2, deduplicated");
    let msg = "";
    try {
      expandBindList(["nope0"], root);
    } catch (e) {
      msg = (e as Error).message;
    }
    if (!msg.startsWith("nope0: ")) throw new Error(msg);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("binding to vfio-pci: driver_override, unbind, drivers_probe, override cleared; devices already there are left alone; a device the probe did not move is a failure naming the fix", () => {
  const root = host();
  try {
    const dev = (n: number) => `${root}/bus/pci/devices/0000:05:08.${n}`;
    Deno.removeSync(`${dev(3)}/driver`);
    Deno.symlinkSync(`${root}/bus/pci/drivers/vfio-pci`, `${dev(3)}/driver`);
    const pcis = ["0000:05:08.1", "0000:05:08.3"];
    assertJsonEq(plannedBindings(pcis, root).map((b) => b.result), ["pending", "already"], "plan");
    const log: string[] = [];
    const out = bindVfio(pcis, root, fakeKernel(log));
    assertJsonEq(out.map((b) => `${b.pci} ${b.from} ${b.result}`), [
      "0000:05:08.1 ixgbevf bound",
      "0000:05:08.3 vfio-pci already",
    ], "results");
    assertJsonEq(log, ["probe 0000:05:08.1 -> vfio-pci; unbound from 0000:05:08.1"], "the kernel saw one probe");
    assertEq(basename(Deno.realPathSync(`${dev(1)}/driver`)), "vfio-pci", "now on vfio-pci");
    assertEq(Deno.readTextFileSync(`${dev(1)}/driver_override`), "\0", "override cleared");
    // a probe that leaves the device where it was (no vfio-pci module)
    const stuck = bindVfio(["0000:05:08.2"], root, () => {});
    assertEq(stuck[0].result, "failed", "not moved");
    if (!stuck[0].error?.includes("modprobe vfio-pci")) throw new Error(stuck[0].error);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
