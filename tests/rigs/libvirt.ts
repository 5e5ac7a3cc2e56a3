/**
 * Debian's libvirt for the tests: libvirtd started when none runs (and stopped by its PID only
 * then), transient domains created and destroyed with virsh, so nothing stays defined.
 *
 * @module
 */

const PID_FILE = "/run/libvirtd.pid", LOGD_PID_FILE = "/run/virtlogd.pid";
const LOGD_SOCKET = "/run/libvirt/virtlogd-sock";
/** Where libvirtd keeps its guests' hugepage files. */
const HUGE_DIR = "/dev/hugepages/libvirt";

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** virsh against the system instance; throws with its message when it fails. */
export async function virsh(...args: string[]): Promise<string> {
  const r = await run("virsh", ["-c", "qemu:///system", ...args]);
  if (r.code !== 0) throw new Error(`virsh ${args.join(" ")}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** A libvirtd (and the virtlogd it writes QEMU's output through) to talk to: the running ones, or
 * ones started here and stopped by their PIDs at disposal. */
export class Libvirt implements AsyncDisposable {
  private constructor(readonly startedPids: number[]) {}

  static async ensure(): Promise<Libvirt> {
    const started: number[] = [];
    await Deno.mkdir("/var/log/libvirt", { recursive: true });
    if (!(await Deno.stat(LOGD_SOCKET).then(() => true, () => false))) {
      const r = await run("virtlogd", ["-d", "-p", LOGD_PID_FILE]);
      if (r.code !== 0) throw new Error(`virtlogd -d: ${r.stderr.trim()}`);
      started.push(Number((await Deno.readTextFile(LOGD_PID_FILE)).trim()));
    }
    if ((await run("virsh", ["-c", "qemu:///system", "version"])).code === 0) return new Libvirt(started);
    const r = await run("libvirtd", ["-d", "-p", PID_FILE]);
    if (r.code !== 0) throw new Error(`libvirtd -d: ${r.stderr.trim()} (apt-get install libvirt-daemon-driver-qemu)`);
    started.push(Number((await Deno.readTextFile(PID_FILE)).trim()));
    const lv = new Libvirt(started);
    const end = Date.now() + 10_000;
    while ((await run("virsh", ["-c", "qemu:///system", "version"])).code !== 0) {
      if (Date.now() > end) {
        await lv[Symbol.asyncDispose]();
        throw new Error("libvirtd started but virsh cannot reach it after 10 s (see /var/log/libvirt/libvirtd.log)");
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    return lv;
  }

  /**
   * Destroys transient domain `name` if it still runs (nothing to undefine); if libvirtd cannot,
   * kills its QEMU by the PID libvirt recorded, and waits until it is gone (its hugepages free).
   */
  async destroy(name: string): Promise<void> {
    if ((await run("virsh", ["-c", "qemu:///system", "destroy", name])).code === 0) return;
    const pidFile = `/run/libvirt/qemu/${name}.pid`;
    const pid = Number(await Deno.readTextFile(pidFile).then((t) => t.trim(), () => "0"));
    if (!(pid > 0)) return;
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
    for (let i = 0; i < 100; i++) {
      try {
        Deno.kill(pid, "SIGCONT");
      } catch {
        break;
      }
      await new Promise((res) => setTimeout(res, 50));
    }
    await Deno.remove(pidFile).catch(() => {});
    await Deno.remove(`/run/libvirt/qemu/${name}.xml`).catch(() => {});
  }

  /** Stops what was started here, libvirtd first, each by its PID; then the directories libvirtd
   * made on hugetlbfs, if they hold no file. */
  async [Symbol.asyncDispose](): Promise<void> {
    const libvirtd = this.startedPids.length > 0 && (await Deno.stat(PID_FILE).then(() => true, () => false));
    for (const pid of [...this.startedPids].reverse()) {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* gone */ }
      const end = Date.now() + 10_000;
      while (Date.now() < end) {
        try {
          Deno.kill(pid, "SIGCONT"); // still there?
        } catch {
          break;
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    if (libvirtd) {
      const files = await run("find", [HUGE_DIR, "-type", "f"]);
      if (files.code === 0 && files.stdout.trim() === "") {
        await Deno.remove(HUGE_DIR, { recursive: true }).catch(() => {});
      }
    }
  }
}
