import { loadConfig } from "../config/config.ts";
import { type HostPaths, runChecks } from "./doctor.ts";
import { assertEq } from "../../tests/rigs/assert.ts";

/** A fake host: 4 CPUs (2,3 isolated), hugepages, IOMMU + vfio-pci, VF 0000:05:08.1 bound to `driver`. */
function fakeHost(
  root: string,
  o: { pages: number; free: number; mounted: boolean; driver: string; apparmor: boolean },
): HostPaths {
  const h: HostPaths = { sys: `${root}/sys`, proc: `${root}/proc`, etc: `${root}/etc`, run: `${root}/run` };
  const w = (p: string, text: string) => {
    Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(p, text);
  };
  w(`${h.sys}/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`, `${o.pages}\n`);
  w(`${h.sys}/kernel/mm/hugepages/hugepages-2048kB/free_hugepages`, `${o.free}\n`);
  w(`${h.proc}/mounts`, o.mounted ? "nodev /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n" : "proc /proc proc rw 0 0\n");
  w(`${h.sys}/devices/system/cpu/online`, "0-3\n");
  w(`${h.sys}/devices/system/cpu/isolated`, "2-3\n");
  Deno.mkdirSync(`${h.sys}/kernel/iommu_groups/7`, { recursive: true });
  Deno.mkdirSync(`${h.sys}/bus/pci/drivers/vfio-pci`, { recursive: true });
  Deno.mkdirSync(`${h.sys}/bus/pci/drivers/${o.driver}`, { recursive: true });
  Deno.mkdirSync(`${h.sys}/bus/pci/devices/0000:05:08.1`, { recursive: true });
  Deno.symlinkSync(`${h.sys}/bus/pci/drivers/${o.driver}`, `${h.sys}/bus/pci/devices/0000:05:08.1/driver`);
  w(`${h.etc}/passwd`, "root:x:0:0::/root:/bin/sh\nlibvirt-qemu:x:64055:108::/var/lib/libvirt:/usr/sbin/nologin\n");
  w(`${h.etc}/group`, "root:x:0:\nkvm:x:108:\n");
  if (o.apparmor) w(`${h.sys}/module/apparmor/parameters/enabled`, "Y\n");
  return h;
}

const config = (extra = "") =>
  loadConfig(
    `VIRTIOFWD_CPU_MASK=2,3\nVIRTIOFWD_SOCKET_DIR=/tmp\nVIRTIOFWD_SOCKET_OWNER=libvirt-qemu\nVIRTIOFWD_SOCKET_GROUP=kvm\nVIRTIOFWD_STATIC_VFS=0000:05:08.1=1\nVIO4WD_EAL_FILE_PREFIX=doctor-test-${Deno.pid}\n${extra}`,
    "t.conf",
  ).config;

Deno.test("doctor: a well-prepared host passes every check", () => {
  const root = Deno.makeTempDirSync();
  try {
    const checks = runChecks(
      config(),
      fakeHost(root, { pages: 1024, free: 1024, mounted: true, driver: "vfio-pci", apparmor: false }),
    );
    const bad = checks.filter((c) => c.status !== "ok");
    assertEq(bad.length, 0, `non-ok checks: ${JSON.stringify(bad)}`);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("doctor: each problem fails or warns with the command that fixes it", () => {
  const root = Deno.makeTempDirSync();
  try {
    const h = fakeHost(root, { pages: 100, free: 10, mounted: false, driver: "ixgbevf", apparmor: true });
    Deno.mkdirSync(`${h.run}/dpdk/doctor-test-${Deno.pid}`, { recursive: true });
    Deno.writeTextFileSync(`${h.run}/dpdk/doctor-test-${Deno.pid}/config`, "");
    const checks = runChecks(config("VIRTIOFWD_SOCKET_GROUP=nogroup\n"), h);
    const by = (name: string) => checks.find((c) => c.name === name)!;
    assertEq(by("hugepages").status, "fail", "hugepages");
    if (!by("hugepages").fix?.includes("nr_hugepages")) throw new Error(JSON.stringify(by("hugepages")));
    assertEq(by("hugetlbfs").status, "fail", "hugetlbfs");
    if (!by("hugetlbfs").fix?.includes("mount -t hugetlbfs")) throw new Error(JSON.stringify(by("hugetlbfs")));
    assertEq(by("VF 0000:05:08.1").status, "fail", "VF driver");
    if (!by("VF 0000:05:08.1").fix?.includes("dpdk-devbind.py -b vfio-pci 0000:05:08.1")) {
      throw new Error("no devbind fix");
    }
    assertEq(by("socket accounts").status, "fail", "missing group");
    if (!by("socket accounts").detail.includes("VIRTIOFWD_SOCKET_GROUP='nogroup': no such group")) {
      throw new Error(JSON.stringify(by("socket accounts")));
    }
    assertEq(by("apparmor").status, "warn", "apparmor");
    const bind = runChecks(config("VIRTIOFWD_BIND_VFIO_PCI=05:08.1\n"), h).find((c) =>
      c.name.startsWith("vfio binding")
    )!;
    assertEq(bind.name, "vfio binding 0000:05:08.1", "the listed VF");
    if (!bind.detail.includes("on ixgbevf: the daemon binds it to vfio-pci at start")) throw new Error(bind.detail);
    assertEq(by("file prefix").status, "warn", "file prefix in use");
    // CPUs the host does not have: the fix names the variable and CPUs that would do
    const cpus = runChecks(config("VIRTIOFWD_CPU_MASK=1,9\n"), h).find((c) => c.name === "cpus")!;
    assertEq(cpus.status, "fail", "an offline CPU");
    assertEq(/^set VIRTIOFWD_CPU_MASK to online CPUs .*\(e\.g\. \d/.test(cpus.fix ?? ""), true, cpus.fix ?? "no fix");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("doctor: blank socket owner/group mean libvirt-qemu/kvm; without them, or with accounts QEMU is not in, it warns", () => {
  const root = Deno.makeTempDirSync();
  try {
    const h = fakeHost(root, { pages: 1024, free: 1024, mounted: true, driver: "vfio-pci", apparmor: false });
    const blank = "VIRTIOFWD_SOCKET_OWNER=\nVIRTIOFWD_SOCKET_GROUP=\n";
    const ok = runChecks(config(blank), h).filter((c) => c.name.startsWith("socket a"));
    assertEq(ok.map((c) => `${c.name}=${c.status}`).join(" "), "socket accounts=ok socket access=ok", "defaults exist");
    if (!ok[0].detail.includes("libvirt-qemu:kvm")) throw new Error(JSON.stringify(ok));
    Deno.writeTextFileSync(`${h.etc}/passwd`, "root:x:0:0::/root:/bin/sh\n");
    Deno.writeTextFileSync(`${h.etc}/group`, "root:x:0:\n");
    const checks = runChecks(config(blank), h);
    const warned = checks.filter((c) => c.name === "socket accounts" && c.status === "warn").map((c) => c.detail);
    assertEq(warned.length, 2, "no libvirt-qemu, no kvm");
    const access = checks.find((c) => c.name === "socket access")!;
    assertEq(access.status, "warn", "QEMU (libvirt-qemu:kvm) cannot reach root:root sockets");
    if (!access.detail.includes("VIRTIOFWD_SOCKET_GROUP=kvm")) throw new Error(access.detail);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("doctor: a socket directory of another user's fails the directories check, naming it", () => {
  const root = Deno.makeTempDirSync();
  try {
    const sock = `${root}/theirs`;
    Deno.mkdirSync(sock);
    Deno.chownSync(sock, 65534, 65534);
    const checks = runChecks(
      config(`VIRTIOFWD_SOCKET_DIR=${sock}\nVIRTIOFWD_PID_DIR=${root}\n`),
      fakeHost(root, { pages: 1024, free: 1024, mounted: true, driver: "vfio-pci", apparmor: false }),
    );
    const dirs = checks.filter((c) => c.name === "directories");
    assertEq(dirs.map((c) => c.status).join(), "fail", "one failed directories check");
    assertEq(
      dirs[0].detail.startsWith(`VIRTIOFWD_SOCKET_DIR=${sock}: ${sock} is owned by uid 65534`),
      true,
      dirs[0].detail,
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("doctor: the running daemon's own DPDK directory is ok, not a stale one to remove; a dead daemon's is", () => {
  const root = Deno.makeTempDirSync();
  try {
    const h = fakeHost(root, { pages: 1024, free: 1024, mounted: true, driver: "vfio-pci", apparmor: false });
    Deno.mkdirSync(`${h.run}/dpdk/doctor-test-${Deno.pid}`, { recursive: true });
    Deno.writeTextFileSync(`${h.run}/dpdk/doctor-test-${Deno.pid}/config`, "");
    const pids = `${root}/pids`;
    Deno.mkdirSync(pids);
    const live = 4242;
    Deno.mkdirSync(`${h.proc}/${live}`, { recursive: true });
    let c = runChecks(config(`VIRTIOFWD_PID_DIR=${pids}\n`), h).find((x) => x.name === "file prefix")!;
    assertEq(c.status, "warn", "no PID file: another process's");
    Deno.writeTextFileSync(`${pids}/virtio-forwarder.pid`, `${live}\n`);
    c = runChecks(config(`VIRTIOFWD_PID_DIR=${pids}\n`), h).find((x) => x.name === "file prefix")!;
    assertEq(`${c.status} ${c.fix ?? ""}`, "ok ", "the running daemon's (its PID alive)");
    Deno.removeSync(`${h.proc}/${live}`);
    c = runChecks(config(`VIRTIOFWD_PID_DIR=${pids}\n`), h).find((x) => x.name === "file prefix")!;
    assertEq(c.status, "warn", "a dead daemon's");
    if (!c.fix?.includes("rm -rf")) throw new Error(`the stale directory's fix: ${JSON.stringify(c)}`);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
