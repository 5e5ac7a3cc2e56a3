/**
 * A real Linux guest under QEMU (TCG) with one virtio-net device over vhost-user: the VM side of
 * the end-to-end tests. The guest is a Debian cloud kernel (fetched by scripts/setup.sh) with a
 * busybox initramfs whose /init (guest/init.sh) runs one shell script given on the kernel command
 * line and prints `E2E-RESULT: PASS|FAIL` on the serial console, then powers off.
 *
 * @module
 */

import { stopChild } from "./testpmd.ts";

const GUEST_DIR = new URL("./guest/", import.meta.url).pathname;

/** Where scripts/setup.sh extracts the guest kernel package. */
export function guestCacheDir(): string {
  const env = Deno.env.toObject();
  return env.VIO4WD_GUEST_CACHE ?? `${env.XDG_CACHE_HOME ?? `${env.HOME ?? "/root"}/.cache`}/vio4wd-guest`;
}

/** The guest kernel tree (extracted .deb) and its vmlinuz; a clear error when setup has not fetched it. */
export function guestKernel(): { tree: string; vmlinuz: string } {
  const tree = `${guestCacheDir()}/kernel`;
  try {
    for (const e of Deno.readDirSync(`${tree}/boot`)) {
      if (e.name.startsWith("vmlinuz-")) return { tree, vmlinuz: `${tree}/boot/${e.name}` };
    }
  } catch { /* missing */ }
  throw new Error(`no guest kernel under ${tree}/boot: run scripts/setup.sh (it fetches linux-image-cloud-amd64)`);
}

/** Builds the guest initramfs into `out` (busybox, virtio-net modules, ethtool, guest/init.sh). */
export async function buildInitramfs(out: string): Promise<void> {
  const { tree } = guestKernel();
  const res = await new Deno.Command(`${GUEST_DIR}/mkinitramfs.sh`, { args: [tree, out], stderr: "piped" }).output();
  if (!res.success) throw new Error(`mkinitramfs.sh failed: ${new TextDecoder().decode(res.stderr)}`);
}

/** How to start a guest. */
export interface GuestOptions {
  /** Run directory: serial log and QEMU output go here. */
  dir: string;
  /** The initramfs built by buildInitramfs. */
  initrd: string;
  /** vhost-user socket path. */
  socket: string;
  /** QEMU as the vhost-user server (the backend connects: vio4wd client mode); default client. */
  server?: boolean;
  /** Queue pairs (mq=on when more than one). */
  queues?: number;
  /** eth0's address in CIDR form. */
  ip: string;
  /** More virtio-net-pci properties, e.g. "disable-legacy=on" or "packed=on". */
  device?: string;
  /** Guest RAM on this hugetlbfs mount (as deployments and `vio4wd vm-config` do); default memfd. */
  hugetlbfs?: string;
  /**
   * The guest's memory, NUMA and network arguments as `vio4wd vm-config --qemu` printed them, used
   * instead of this rig's; only what TCG needs is changed (MSI-X off: vectors=0).
   */
  vmConfig?: string;
  /** More QEMU arguments (a monitor, `-incoming`). */
  extraArgs?: string[];
  /** The case: a shell script the guest runs once eth0 is up; its exit status is the result. */
  script: string;
}

/** The MAC address of the rig's guests (not of those started from `vm-config` output). */
export const GUEST_MAC = "52:54:00:12:34:56";

/** A running QEMU guest. */
export class QemuGuest {
  #child: Deno.ChildProcess;
  #output = "";
  #pump: Promise<void>;
  #exited = false;

  private constructor(child: Deno.ChildProcess, readonly serialPath: string) {
    this.#child = child;
    child.status.then(() => this.#exited = true);
    const pump = async (s: ReadableStream<Uint8Array>) => {
      const dec = new TextDecoder();
      for await (const c of s) this.#output += dec.decode(c, { stream: true });
    };
    this.#pump = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {});
  }

  /** PID of the QEMU process. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether QEMU has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** Starts QEMU. In client mode it blocks until the backend's socket accepts it. */
  static start(o: GuestOptions): QemuGuest {
    const queues = o.queues ?? 1;
    const { vmlinuz } = guestKernel();
    const serial = `${o.dir}/serial.log`;
    const script = btoa(o.script);
    // kernel command lines stop at 2048 bytes on x86
    if (script.length > 1800) throw new Error(`guest script too long for the kernel command line (${script.length} B)`);
    const chardev = `socket,id=chr0,path=${o.socket}` + (o.server ? ",server=on,wait=off" : ",reconnect=1");
    // vectors=0 (INTx): QEMU 7.2 under TCG crashes on vhost-user with MSI-X
    const device = `virtio-net-pci,netdev=net0,mac=${GUEST_MAC},romfile=,vectors=0` +
      (queues > 1 ? ",mq=on" : "") +
      (o.device ? `,${o.device}` : "");
    const memory = o.hugetlbfs
      ? `memory-backend-file,id=mem0,size=256M,mem-path=${o.hugetlbfs},share=on`
      : "memory-backend-memfd,id=mem0,size=256M,share=on";
    const vmArgs = o.vmConfig ? vmConfigArgs(o.vmConfig) : [
      "-m",
      "256",
      // guest RAM must be shared with the backend
      ...["-object", memory, "-numa", "node,memdev=mem0"],
      ...["-chardev", chardev, "-netdev", `vhost-user,id=net0,chardev=chr0,queues=${queues}`, "-device", device],
    ];
    const args = [
      ...["-machine", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "1"],
      ...vmArgs,
      ...["-display", "none", "-nodefaults", "-no-reboot", "-serial", `file:${serial}`],
      ...["-kernel", vmlinuz, "-initrd", o.initrd],
      ...["-append", `console=ttyS0 quiet panic=-1 e2e.ip=${o.ip} e2e.script=${script}`],
      ...(o.extraArgs ?? []),
    ];
    const child = new Deno.Command("qemu-system-x86_64", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new QemuGuest(child, serial);
  }

  /** The guest's serial console so far. */
  serial(): string {
    try {
      return Deno.readTextFileSync(this.serialPath);
    } catch {
      return "";
    }
  }

  /** What QEMU itself printed. */
  get output(): string {
    return this.#output;
  }

  /** Waits until the serial console matches `re`. */
  async waitSerial(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.serial().match(re);
      if (m) return m;
      if (this.#exited) throw new Error(`QEMU exited before ${re}; ${this.describe()}`);
      if (Date.now() > end) throw new Error(`guest: no ${re} after ${timeoutMs} ms; ${this.describe()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Waits for the guest's verdict; throws with its console unless it is PASS. */
  async expectPass(timeoutMs: number): Promise<void> {
    const m = await this.waitSerial(/E2E-RESULT: (PASS|FAIL)/, timeoutMs);
    if (m[1] !== "PASS") throw new Error(`guest: FAIL; ${this.describe()}`);
  }

  /** The guest's E2E lines and QEMU's own output, for failure messages. */
  describe(): string {
    const lines = this.serial().split("\n").filter((l) => l.includes("E2E") || l.includes("virtio"));
    return `serial:\n${lines.join("\n")}\nqemu:\n${this.#output.slice(-1500)}`;
  }

  /** Stops QEMU (SIGTERM, SIGKILL after 5 s). */
  async stop(): Promise<void> {
    await stopChild(this.#child, 5000);
    await this.#pump;
  }
}

/**
 * `vio4wd vm-config --qemu` output as QEMU arguments (comments and line continuations dropped),
 * with the one change TCG needs: MSI-X off on the virtio-net device (QEMU 7.2 under TCG crashes
 * with vhost-user and MSI-X).
 */
export function vmConfigArgs(text: string): string[] {
  const args = text.split("\n").filter((l) => !l.trim().startsWith("#")).join(" ").replaceAll("\\", " ")
    .split(/\s+/).filter(Boolean);
  return args.map((a, i) => {
    if (args[i - 1] !== "-device" || !a.startsWith("virtio-net-pci")) return a;
    return /,vectors=\d+/.test(a) ? a.replace(/,vectors=\d+/, ",vectors=0") : `${a},vectors=0`;
  });
}

/**
 * Sends one command to a QEMU human monitor on a unix socket (`-monitor unix:PATH,server=on,wait=off`)
 * and returns what it printed up to the next prompt.
 */
export async function monitorCommand(path: string, command: string, timeoutMs = 10_000): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  const dec = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const buf = new Uint8Array(65536);
    const until = async (re: RegExp, from = 0) => {
      while (!re.test(text.slice(from))) {
        const n = await conn.read(buf);
        if (n === null) throw new Error(`QEMU monitor ${path}: closed; got: ${text.slice(-500)}`);
        text += dec.decode(buf.subarray(0, n));
      }
    };
    await until(/\(qemu\) $/);
    const from = text.length;
    await conn.write(new TextEncoder().encode(`${command}\n`));
    await until(/\n[^\n]*\(qemu\) $/, from);
    return text.slice(from);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}
