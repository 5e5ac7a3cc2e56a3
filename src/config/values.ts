/**
 * Parsers for the value types of the configuration: CPU sets, relay pins, static VF entries,
 * endpoints, socket name patterns. Each throws {@link ValueError} saying what is allowed.
 *
 * @module
 */

import { SHIM_CONSTANTS } from "../../ffi/layout.ts";

/**
 * Relays are numbered 0..MAX_RELAYS-1: the original's 64, the relay ids its clients and files use.
 * From the shim's header through ffi/layout.ts (constants only: reading a configuration loads no
 * library); the loader refuses a library built for other numbers.
 */
export const MAX_RELAYS = SHIM_CONSTANTS.MAX_RELAYS;
/** Queue pairs per relay: the original's 32, from the same header. */
export const MAX_QUEUE_PAIRS = SHIM_CONSTANTS.MAX_QUEUE_PAIRS;
/** CPUs are numbered 0..MAX_CPUS-1 (the original's limit). */
export const MAX_CPUS = 64;
/** The UUID the original passes for `--vfio-vf-token=0`. */
export const DEFAULT_VFIO_VF_TOKEN = "14d63f20-8445-11ea-8900-1f9ce7d5650d";

/** A value that does not parse; `allowed` says what would. */
export class ValueError extends Error {
  constructor(readonly allowed: string, detail?: string) {
    super(detail ? `${detail}; allowed: ${allowed}` : `allowed: ${allowed}`);
    this.name = "ValueError";
  }
}

/** A relay's CPUs: one per direction. */
export interface CpuPin {
  relay: number;
  /** CPU serving VF -> VM. */
  vfToVm: number;
  /** CPU serving VM -> VF. */
  vmToVf: number;
}

/** A VF given in the config: a PCI address or DPDK devargs, and its relay id. */
export interface StaticVf {
  device: string;
  relay: number;
}

const CPUSET_ALLOWED = "a comma-separated list of CPUs 0-63 (e.g. 1,2) or a hex mask starting with 0x (e.g. 0x6)";

/** `1,2,5` or `0x6` -> sorted CPU numbers. */
export function parseCpuSet(raw: string): number[] {
  const s = raw.trim();
  let cpus: number[];
  if (s.startsWith("0x")) {
    const hex = s.slice(2);
    if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) throw new ValueError(CPUSET_ALLOWED, `'${raw}' is not a hex mask`);
    const mask = BigInt("0x" + hex);
    cpus = [];
    for (let c = 0; c < MAX_CPUS; c++) if ((mask >> BigInt(c)) & 1n) cpus.push(c);
  } else {
    if (!/^[0-9,]+$/.test(s)) throw new ValueError(CPUSET_ALLOWED, `'${raw}' is not a CPU list`);
    cpus = s.split(",").filter((x) => x !== "").map(Number);
    const bad = cpus.find((c) => c >= MAX_CPUS);
    if (bad !== undefined) throw new ValueError(CPUSET_ALLOWED, `CPU ${bad} is out of range`);
  }
  if (cpus.length === 0) throw new ValueError(CPUSET_ALLOWED, "the set is empty");
  return [...new Set(cpus)].sort((a, b) => a - b);
}

/** A CPU set back in list form: `[1, 2]` -> `1,2`. */
export function formatCpuSet(cpus: readonly number[]): string {
  return cpus.join(",");
}

/** An integer in [min, max], written in decimal. */
export function parseInteger(raw: string, min: number, max: number): number {
  const allowed = `an integer from ${min} to ${max}`;
  if (!/^-?\d+$/.test(raw.trim())) throw new ValueError(allowed, `'${raw}' is not an integer`);
  const v = Number(raw.trim());
  if (v < min || v > max) throw new ValueError(allowed, `${v} is out of range`);
  return v;
}

/** A decimal number >= min (e.g. seconds, a sensitivity). */
export function parseNumber(raw: string, min: number, exclusive = false): number {
  const allowed = `a number ${exclusive ? ">" : ">="} ${min}`;
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(raw.trim())) throw new ValueError(allowed, `'${raw}' is not a number`);
  const v = Number(raw.trim());
  if (v < min || (exclusive && v === min)) throw new ValueError(allowed, `${v} is out of range`);
  return v;
}

/** An absolute filesystem path. */
export function parseAbsolutePath(raw: string): string {
  if (!raw.startsWith("/")) throw new ValueError("an absolute path (starting with /)", `'${raw}' is relative`);
  if (raw.includes("\0")) throw new ValueError("an absolute path", "it contains a NUL byte");
  return raw;
}

/** A comma-separated list of absolute directory paths (trailing slashes dropped). */
export function parseDirList(raw: string): string[] {
  return raw.split(",").map((s) => s.trim()).filter((s) => s !== "").map((d) => {
    try {
      return parseAbsolutePath(d).replace(/\/+$/, "") || "/";
    } catch {
      throw new ValueError("a comma-separated list of absolute directories", `'${d}' is not absolute`);
    }
  });
}

/** A ZeroMQ endpoint vio4wd can bind: `ipc:///abs/path`, `tcp://host:port` or `inproc://name`. */
export function parseZmqEndpoint(raw: string): string {
  const allowed = "ipc:///absolute/path, tcp://HOST:PORT or inproc://NAME";
  if (/^ipc:\/\/\/./.test(raw) || /^inproc:\/\/[^\s]+$/.test(raw)) return raw;
  const tcp = /^tcp:\/\/([^\s:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(raw);
  if (tcp && Number(tcp[2]) <= 65535) return raw;
  throw new ValueError(allowed, `'${raw}' is not a ZeroMQ endpoint`);
}

/**
 * Who can reach an endpoint: `local` (ipc:// and inproc://, guarded by the file system), `loopback`
 * (tcp:// on 127.0.0.0/8, ::1 or localhost: any local user), `remote` (any other address).
 */
export function endpointReach(ep: string): "local" | "loopback" | "remote" {
  const tcp = /^tcp:\/\/(.+):\d+$/.exec(ep);
  if (!tcp) return "local";
  const host = tcp[1].replace(/^\[|\]$/g, "");
  return /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::1" || host === "localhost" ? "loopback" : "remote";
}

/** A user or group: a name as `useradd` accepts it, or a numeric id. */
export function parseAccountName(raw: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(raw) || /^\d+$/.test(raw)) return raw;
  throw new ValueError("a user/group name (letters, digits, _ . -; up to 32) or a numeric id", `'${raw}' is not one`);
}

/** The socket file-name pattern: exactly one `%u`, no `/`, no digit right after `%u`. */
export function parseSocketPattern(raw: string): string {
  const allowed = "a file name with exactly one %u (the relay id), no '/', and no digit right after %u";
  const parts = raw.split("%u");
  if (parts.length !== 2) {
    throw new ValueError(allowed, parts.length < 2 ? "'%u' is missing" : "'%u' occurs more than once");
  }
  if (raw.includes("/")) throw new ValueError(allowed, "it contains '/'");
  if (/^\d/.test(parts[1])) throw new ValueError(allowed, "a digit follows %u");
  return raw;
}

/** The socket path of relay `id`: `<dir>/<pattern with %u = id>`. */
export function socketPath(dir: string, pattern: string, id: number): string {
  return `${dir.replace(/\/+$/, "")}/${pattern.replace("%u", String(id))}`;
}

const PCI_FULL = /^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$/;
const PCI_SHORT = /^[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$/;
const DEVARGS = /^net_[a-z_]+[0-9]*(,[A-Za-z0-9_-]+=[^,\s]*)*$/;

/** True for `0000:05:08.1` or `05:08.1`. */
export function isPciAddress(s: string): boolean {
  return PCI_FULL.test(s) || PCI_SHORT.test(s);
}

/** `05:08.1` -> `0000:05:08.1`, lower case. */
export function normalizePci(s: string): string {
  return (PCI_SHORT.test(s) ? `0000:${s}` : s).toLowerCase();
}

const DEVICE_ALLOWED =
  "a PCI address (0000:05:08.1 or 05:08.1) or DPDK vdev devargs (net_<driver><n>[,key=value...], e.g. net_tap0,iface=vf0)";

/** A VF device: a PCI address (normalised) or vdev devargs (kept as written). */
export function parseDevice(raw: string): string {
  if (isPciAddress(raw)) return normalizePci(raw);
  if (DEVARGS.test(raw)) return raw;
  throw new ValueError(DEVICE_ALLOWED, `'${raw}' is neither`);
}

/** `<device>=<relay>`; with devargs holding `=`, the LAST `=` separates the relay id. */
export function parseStaticVf(raw: string): StaticVf {
  const max = MAX_RELAYS;
  const allowed = `<device>=<relay id 0-${max - 1}>, the device ${DEVICE_ALLOWED}`;
  const eq = raw.lastIndexOf("=");
  if (eq <= 0) throw new ValueError(allowed, `'${raw}' has no '=<relay id>'`);
  const idText = raw.slice(eq + 1);
  if (!/^\d+$/.test(idText)) throw new ValueError(allowed, `relay id '${idText}' is not a number`);
  const relay = Number(idText);
  if (relay >= max) throw new ValueError(allowed, `relay id ${relay} is out of range`);
  let device: string;
  try {
    device = parseDevice(raw.slice(0, eq));
  } catch (e) {
    if (e instanceof ValueError) throw new ValueError(allowed, e.message.split(";")[0]);
    throw e;
  }
  return { device, relay };
}

/** `<relay>:<cpu>[,<cpu>]`, several separated by `;` -> pins (first CPU VF->VM, second VM->VF). */
export function parseCpuPins(raw: string): CpuPin[] {
  const max = MAX_RELAYS;
  const allowed = `<relay 0-${max - 1}>:<cpu>[,<cpu>] (first CPU VF->VM, second VM->VF), several separated by ;`;
  const pins: CpuPin[] = [];
  for (const item of raw.split(";").map((s) => s.trim()).filter((s) => s !== "")) {
    const m = /^(\d+):(\d+)(?:,(\d+))?$/.exec(item);
    if (!m) throw new ValueError(allowed, `'${item}' does not match`);
    const relay = Number(m[1]);
    const vfToVm = Number(m[2]);
    const vmToVf = m[3] === undefined ? vfToVm : Number(m[3]);
    if (relay >= max) throw new ValueError(allowed, `relay ${relay} is out of range`);
    for (const c of [vfToVm, vmToVf]) {
      if (c >= MAX_CPUS) throw new ValueError(allowed, `CPU ${c} is out of range 0-${MAX_CPUS - 1}`);
    }
    pins.push({ relay, vfToVm, vmToVf });
  }
  if (pins.length === 0) throw new ValueError(allowed, "no pin given");
  return pins;
}

/** VFIO VF token: `0` means the original's default UUID; otherwise a UUID. */
export function parseVfioToken(raw: string): string {
  if (raw === "0") return DEFAULT_VFIO_VF_TOKEN;
  if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(raw)) return raw;
  throw new ValueError("0 (the default token) or a UUID like 14d63f20-8445-11ea-8900-1f9ce7d5650d", `'${raw}'`);
}

/** Devices to bind to vfio-pci: a comma list of PCI addresses, `netdev` or `netdev:count`. */
export function parseBindList(raw: string): string[] {
  const allowed = "a comma-separated list of PCI addresses, netdev names or netdev:count";
  const items = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const it of items) {
    if (isPciAddress(it)) continue;
    if (/^[A-Za-z0-9_.-]{1,15}(:\d+)?$/.test(it)) continue;
    throw new ValueError(allowed, `'${it}' is neither`);
  }
  if (items.length === 0) throw new ValueError(allowed, "the list is empty");
  return items;
}

/** A DPDK file prefix: letters, digits, `_` and `-`. */
export function parseFilePrefix(raw: string): string {
  if (/^[A-Za-z0-9_-]{1,64}$/.test(raw)) return raw;
  throw new ValueError("letters, digits, _ and - (up to 64)", `'${raw}'`);
}

/** A DPDK `--lcores` map restricted to `lcore@cpu` pairs: lcore id -> physical CPU. */
export function parseLcoreMap(raw: string): Map<number, number> {
  const map = new Map<number, number>();
  for (const part of raw.split(",")) {
    const m = /^(\d{1,3})@(\d{1,4})$/.exec(part.trim());
    if (!m) throw new ValueError("comma-separated LCORE@CPU pairs, e.g. 0@0,1@1,2@1", `'${part}' is not LCORE@CPU`);
    const lcore = Number(m[1]);
    if (lcore >= MAX_CPUS) throw new ValueError(`lcore ids 0-${MAX_CPUS - 1}`, `lcore ${lcore} is out of range`);
    if (map.has(lcore)) throw new ValueError("each lcore once", `lcore ${lcore} is given twice`);
    map.set(lcore, Number(m[2]));
  }
  return map;
}

/** The map as DPDK's --lcores argument. */
export function formatLcoreMap(map: ReadonlyMap<number, number>): string {
  return [...map].map(([l, c]) => `${l}@${c}`).join(",");
}

/** `HOST:PORT` to listen on (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`; port 0: any free one). */
export function parseListen(raw: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(raw);
  if (!m || Number(m[2]) > 65535) {
    throw new ValueError("HOST:PORT, e.g. 127.0.0.1:9464", `'${raw}' is not HOST:PORT`);
  }
  return raw;
}

/** A CPU list as the kernel writes it in sysfs (`0-3,8,10-11`); empty text is an empty list. */
export function parseKernelCpuList(text: string): number[] {
  return text.trim().split(",").filter(Boolean).flatMap((part) => {
    const [a, b] = part.split("-").map(Number);
    return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
  });
}

/**
 * The numeric id of a user (`passwd`) or group (`group`) from `<etc>/<file>`; a number is its own
 * id; null when the name is unknown.
 */
export function accountId(file: "passwd" | "group", name: string, etc = "/etc"): number | null {
  if (/^\d+$/.test(name)) return Number(name);
  let text: string;
  try {
    text = Deno.readTextFileSync(`${etc}/${file}`);
  } catch {
    return null;
  }
  const line = text.split("\n").find((l) => l.split(":")[0] === name);
  return line ? Number(line.split(":")[2]) : null;
}
