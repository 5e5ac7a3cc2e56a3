/**
 * Host checks for `vio4wd doctor`: each finds one thing that keeps the daemon or VMs from working
 * and names the command that fixes it. Reads /sys, /proc and the configuration; changes nothing.
 *
 * @module
 */

import { type Config, mbufDataSize, pidFilePath } from "../config/config.ts";
import { offlineCpus } from "../host/topology.ts";
import { isPciAddress, MAX_RELAYS, normalizePci, parseKernelCpuList } from "../config/values.ts";
import { shimLimits } from "../../ffi/shim.ts";
import { qemuAccount, qemuCannotReach, socketAccounts } from "../config/accounts.ts";
import { expandBindList, plannedBindings, VFIO_DRIVER } from "../host/vfio_bind.ts";
import { untrustedDirectories } from "../host/trusted_dir.ts";
import { errorText } from "../common/log.ts";

/** One check's verdict. */
export interface Check {
  name: string;
  status: "ok" | "warn" | "fail";
  detail: string;
  /** The command (or edit) that fixes it, when not ok. */
  fix?: string;
}

/** Where the checks read the host (a fake tree in tests). */
export interface HostPaths {
  sys: string;
  proc: string;
  etc: string;
  run: string;
}

export const REAL_HOST: HostPaths = { sys: "/sys", proc: "/proc", etc: "/etc", run: "/var/run" };

const read = (p: string) => {
  try {
    return Deno.readTextFileSync(p);
  } catch {
    return null;
  }
};
const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

/**
 * Hugepage memory the relays' buffer pools take beyond the daemon's start-up reservation: a pool of
 * `mbufs` (the shim's pool size) per VF port, each buffer its data room plus the mbuf, headroom and mempool
 * headers (320 bytes).
 */
export function relayMemory(
  c: Config,
  mbufs: number,
): { mbufs: number; bufferBytes: number; perRelayMb: number; relays: number; fullMb: number } {
  const relays = MAX_RELAYS;
  const bufferBytes = mbufDataSize(c) + 320;
  const perRelay = (mbufs * bufferBytes) / (1 << 20);
  return {
    mbufs,
    bufferBytes,
    perRelayMb: Math.round(perRelay * 10) / 10,
    relays,
    fullMb: Math.round(perRelay * relays),
  };
}

/** Records one check's result. */
type AddCheck = (name: string, status: Check["status"], detail: string, fix?: string) => void;

/** The checks, in the order doctor prints them; each adds one or more results. */
const CHECKS: readonly ((c: Config, h: HostPaths, add: AddCheck) => void)[] = [
  checkHugepages,
  checkHugetlbfs,
  checkCpus,
  checkVfio,
  checkSocketDir,
  checkBindList,
  checkConfinement,
  checkFilePrefix,
];

/** Runs every check against `c`. */
export function runChecks(c: Config, h: HostPaths = REAL_HOST): Check[] {
  const out: Check[] = [];
  const add: AddCheck = (name, status, detail, fix) => out.push({ name, status, detail, ...(fix ? { fix } : {}) });
  for (const check of CHECKS) check(c, h, add);
  return out;
}

/** Hugepages: reserved, free, and what the daemon will take (VIO4WD_EAL_MEMORY_MB). */
function checkHugepages(c: Config, h: HostPaths, add: AddCheck): void {
  const hp = `${h.sys}/kernel/mm/hugepages/hugepages-2048kB`;
  const total = Number(read(`${hp}/nr_hugepages`) ?? 0), free = Number(read(`${hp}/free_hugepages`) ?? 0);
  const need = Math.ceil(c.ealMemoryMb / 2);
  if (total === 0) {
    add(
      "hugepages",
      "fail",
      "no 2 MiB hugepages reserved",
      `echo ${need + 512} > ${hp.replace(h.sys, "/sys")}/nr_hugepages`,
    );
  } else if (free < need) {
    add(
      "hugepages",
      "fail",
      `${free} of ${total} 2 MiB pages free; the daemon needs ${need} (VIO4WD_EAL_MEMORY_MB=${c.ealMemoryMb})`,
      `echo ${total + need - free} > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`,
    );
  } else add("hugepages", "ok", `${free} of ${total} 2 MiB pages free; the daemon needs ${need} at start`);
  let poolMbufs: number;
  try {
    poolMbufs = shimLimits().poolMbufs;
  } catch (e) {
    add("relay memory", "fail", `cannot read the data-plane library's pool size: ${errorText(e)}`, "scripts/setup.sh");
    return;
  }
  const relays = relayMemory(c, poolMbufs);
  add(
    "relay memory",
    "ok",
    `each relay takes about ${relays.perRelayMb} MiB more as it comes (${relays.mbufs} packet buffers of ${relays.bufferBytes} bytes per VF port): ` +
      `about ${relays.fullMb} MiB for ${relays.relays} relays` +
      (c.jumbo || c.tso
        ? " (jumbo frames or TSO: the original's budget is 2750 MiB per node)"
        : " (the original's budget: 768 MiB per node)"),
  );
}

/** hugetlbfs mounted where the configuration says. */
function checkHugetlbfs(c: Config, h: HostPaths, add: AddCheck): void {
  const mounts = (read(`${h.proc}/mounts`) ?? "").split("\n").map((l) => l.split(" "));
  if (mounts.some((m) => m[1] === c.hugeDir && m[2] === "hugetlbfs")) add("hugetlbfs", "ok", `mounted at ${c.hugeDir}`);
  else {
    add(
      "hugetlbfs",
      "fail",
      `no hugetlbfs mounted at ${c.hugeDir} (VIRTIOFWD_HUGETLBFS_MOUNT_POINT)`,
      `mkdir -p ${c.hugeDir} && mount -t hugetlbfs -o pagesize=2M nodev ${c.hugeDir}`,
    );
  }
}

/** Worker CPUs online, main lcore apart, ideally isolated from the scheduler. */
function checkCpus(c: Config, h: HostPaths, add: AddCheck): void {
  const off = offlineCpus(c, h.sys);
  if (off) {
    add(
      "cpus",
      "fail",
      `CPU ${off.missing.join(",")} not online (online: ${off.online.join(",")})`,
      `${off.fix} in the configuration file`,
    );
  } else add("cpus", "ok", `workers ${c.cpus.join(",")}, main lcore ${c.masterLcore}`);
  const isolated = new Set(parseKernelCpuList(read(`${h.sys}/devices/system/cpu/isolated`) ?? ""));
  const shared = c.ealLcores ? [] : c.cpus.filter((x) => !isolated.has(x));
  if (shared.length) {
    add(
      "cpu isolation",
      "warn",
      `worker CPU ${shared.join(",")} also runs other tasks (not in isolcpus): rates will vary`,
      `add isolcpus=${c.cpus.join(",")} to the kernel command line`,
    );
  } else add("cpu isolation", "ok", "worker CPUs are isolated");
}

/** IOMMU / VFIO, and the driver of each configured PCI VF. */
function checkVfio(c: Config, h: HostPaths, add: AddCheck): void {
  const groups = exists(`${h.sys}/kernel/iommu_groups`)
    ? [...Deno.readDirSync(`${h.sys}/kernel/iommu_groups`)].length
    : 0;
  const vfio = exists(`${h.sys}/bus/pci/drivers/vfio-pci`), uio = exists(`${h.sys}/bus/pci/drivers/igb_uio`);
  if (groups > 0 && vfio) add("vfio", "ok", `IOMMU on (${groups} groups), vfio-pci loaded`);
  else if (uio) {
    add(
      "vfio",
      "warn",
      "no IOMMU/vfio-pci; igb_uio is loaded (no DMA isolation)",
      "enable intel_iommu=on / amd_iommu=on",
    );
  } else {
    add(
      "vfio",
      "fail",
      `${groups === 0 ? "no IOMMU groups (IOMMU off?)" : "IOMMU on"}; vfio-pci ${vfio ? "loaded" : "not loaded"}`,
      groups === 0
        ? "add intel_iommu=on iommu=pt (or amd_iommu=on) to the kernel command line, reboot; modprobe vfio-pci"
        : "modprobe vfio-pci",
    );
  }
  for (const s of c.staticVfs.filter((s) => isPciAddress(s.device))) {
    const pci = normalizePci(s.device);
    const dev = `${h.sys}/bus/pci/devices/${pci}`;
    if (!exists(dev)) {
      add(
        `VF ${pci}`,
        "fail",
        `static VF of relay ${s.relay} does not exist`,
        "list only existing VFs in VIRTIOFWD_STATIC_VFS (lspci -D shows them)",
      );
      continue;
    }
    let driver = "none";
    try {
      driver = Deno.realPathSync(`${dev}/driver`).split("/").pop()!;
    } catch { /* unbound */ }
    if (driver === "vfio-pci" || driver === "igb_uio" || driver === "uio_pci_generic") {
      add(`VF ${pci}`, "ok", `bound to ${driver}`);
    } else {
      add(
        `VF ${pci}`,
        "fail",
        `bound to ${driver}: DPDK cannot use it`,
        `dpdk-devbind.py -b vfio-pci ${pci}   (or VIRTIOFWD_BIND_VFIO_PCI=${pci})`,
      );
    }
  }
}

/** Socket directory and the accounts sockets are given to. */
function checkSocketDir(c: Config, h: HostPaths, add: AddCheck): void {
  const accounts = socketAccounts(c, h.etc);
  for (const u of untrustedDirectories(c, accounts)) {
    add("directories", "fail", `${u.variable}=${u.dir}: ${u.why}`, "see the detail, or choose a directory of root's");
  }
  if (!exists(c.socketDir)) {
    add("socket dir", "warn", `${c.socketDir} does not exist (the daemon creates it)`, `mkdir -p ${c.socketDir}`);
  } else {
    try {
      const probe = Deno.makeTempFileSync({ dir: c.socketDir, prefix: ".vio4wd-doctor-" });
      Deno.removeSync(probe);
      add("socket dir", "ok", `${c.socketDir} is writable`);
    } catch {
      add(
        "socket dir",
        "fail",
        `${c.socketDir} is not writable by this user`,
        `chmod u+w ${c.socketDir} or run as root`,
      );
    }
  }
  if (accounts.error) {
    add("socket accounts", "fail", accounts.error, "apt-get install libvirt-daemon-system, or fix the variable");
  }
  for (const w of accounts.warnings) {
    add(
      "socket accounts",
      "warn",
      w,
      "apt-get install libvirt-daemon-system (it creates libvirt-qemu), or set the variable",
    );
  }
  if (!accounts.error) {
    add(
      "socket accounts",
      "ok",
      `sockets go to ${accounts.owner || "the daemon's user"}:${accounts.group || "the daemon's group"}`,
    );
    const qemu = qemuAccount(h.etc);
    const unreachable = qemuCannotReach(accounts, qemu);
    if (unreachable) add("socket access", "warn", unreachable, `set VIRTIOFWD_SOCKET_GROUP=${qemu.group}`);
    else add("socket access", "ok", `QEMU (${qemu.user}:${qemu.group}) can connect to the sockets`);
  }
}

/** VIRTIOFWD_BIND_VFIO_PCI: what the daemon binds at start. */
function checkBindList(c: Config, h: HostPaths, add: AddCheck): void {
  if (c.bindVfioPci.length > 0) {
    try {
      for (const b of plannedBindings(expandBindList(c.bindVfioPci, h.sys), h.sys)) {
        add(
          `vfio binding ${b.pci}`,
          "ok",
          b.result === "already"
            ? `on ${VFIO_DRIVER}`
            : `on ${b.from || "no driver"}: the daemon binds it to ${VFIO_DRIVER} at start (VIRTIOFWD_BIND_VFIO_PCI)`,
        );
      }
    } catch (e) {
      add(
        "vfio binding",
        "fail",
        `VIRTIOFWD_BIND_VFIO_PCI: ${errorText(e)}`,
        "list PCI addresses of VFs in VIRTIOFWD_BIND_VFIO_PCI",
      );
    }
  }
}

/** Mandatory access control that confines QEMU. */
function checkConfinement(c: Config, h: HostPaths, add: AddCheck): void {
  if ((read(`${h.sys}/module/apparmor/parameters/enabled`) ?? "").trim() === "Y") {
    add(
      "apparmor",
      "warn",
      `AppArmor is on: libvirt's QEMU profile must allow the sockets in ${c.socketDir}`,
      `echo '"${c.socketDir}/" r, "${c.socketDir}/**" rw,' >> /etc/apparmor.d/local/abstractions/libvirt-qemu`,
    );
  }
  if ((read(`${h.sys}/fs/selinux/enforce`) ?? "").trim() === "1") {
    add(
      "selinux",
      "warn",
      `SELinux is enforcing: QEMU needs access to ${c.socketDir}`,
      `semanage fcontext -a -t svirt_image_t '${c.socketDir}(/.*)?' && restorecon -R ${c.socketDir}`,
    );
  }
}

/** Another DPDK process with our file prefix. */
function checkFilePrefix(c: Config, h: HostPaths, add: AddCheck): void {
  const runDir = `${h.run}/dpdk/${c.ealFilePrefix}`;
  const pidFile = pidFilePath(c);
  const daemonPid = Number(read(pidFile)?.trim());
  const daemonRuns = Number.isInteger(daemonPid) && daemonPid > 0 && exists(`${h.proc}/${daemonPid}`);
  const prefixInUse = exists(`${runDir}/config`);
  if (prefixInUse && daemonRuns) {
    add("file prefix", "ok", `the running daemon (PID ${daemonPid}, ${pidFile}) uses prefix '${c.ealFilePrefix}'`);
  } else if (prefixInUse) {
    add(
      "file prefix",
      "warn",
      `${runDir} exists: another DPDK process (or a crashed one) uses prefix '${c.ealFilePrefix}'`,
      `stop it, or set VIO4WD_EAL_FILE_PREFIX to another name (stale: rm -rf ${runDir})`,
    );
  } else add("file prefix", "ok", `no DPDK process uses prefix '${c.ealFilePrefix}'`);
}
