/**
 * The configuration: every variable of `/etc/default/virtioforwarder` (and vio4wd's own), typed,
 * defaulted and validated, with where each effective value came from.
 *
 * One table ({@link VARIABLES}) describes each variable once: its name, the original daemon's
 * command-line option, its default, its parser. The daemon's options, `config check`,
 * `config show` and the shipped default file are all derived from it.
 *
 * @module
 */

import { parseDriverList, parsePciList } from "./client_devices.ts";
import { EnvFileSyntaxError, type EnvValue, parseEnvFile } from "./envfile.ts";
import {
  type CpuPin,
  MAX_CPUS,
  MAX_RELAYS,
  parseAbsolutePath,
  parseAccountName,
  parseBindList,
  parseCpuPins,
  parseCpuSet,
  parseDirList,
  parseFilePrefix,
  parseInteger,
  parseLcoreMap,
  parseListen,
  parseNumber,
  parseSocketPattern,
  parseStaticVf,
  parseVfioToken,
  parseZmqEndpoint,
  type StaticVf,
  ValueError,
} from "./values.ts";
import { errorText } from "../common/log.ts";

/** The packaged location of the config file. */
export const DEFAULT_CONFIG_PATH = "/etc/default/virtioforwarder";

/** The effective configuration. Empty strings mean "off" for endpoints and tokens. */
export interface Config {
  cpus: number[];
  logLevel: number;
  masterLcore: number;
  pidDir: string;
  hugeDir: string;
  ovsdbSock: string;
  ipcPortControl: boolean;
  zmqConfigEp: string;
  zmqPortControlEp: string;
  zmqStatsEp: string;
  zmqCoreSchedEp: string;
  socketOwner: string;
  socketGroup: string;
  zmqGroup: string;
  ipcCmdFile: string;
  zmqAllowRemote: boolean;
  ealLcores: Map<number, number> | null;
  metricsListen: string;
  idleSleepUs: number;
  txRetries: string;
  socketDir: string;
  socketPattern: string;
  cpuPins: CpuPin[];
  jumbo: boolean;
  mrgbuf: boolean;
  tso: boolean;
  zeroCopy: boolean;
  vhostClient: boolean;
  dynamicSockets: boolean;
  sameNuma: boolean;
  staticVfs: StaticVf[];
  vfioVfToken: string;
  bindVfioPci: string[];
  devargsAllow: string[];
  pciAllow: string[];
  socketDirsAllow: string[];
  stateDir: string;
  nice: number;
  binary: string;
  coreSchedEnable: boolean;
  coreSchedSensitivity: number;
  coreSchedLogLevel: number;
  coreSchedPollInterval: number;
  coreSchedGlobalNumaOpt: boolean;
  ealFilePrefix: string;
  ealMemoryMb: number;
}

/** How a variable appears on the daemon's command line. */
export type OptionKind = "value" | "flag" | "repeat";

/** One configuration variable. */
export interface Variable<K extends keyof Config = keyof Config> {
  name: string;
  key: K;
  description: string;
  /** Value when the variable is absent or blank. */
  default: Config[K];
  /** The original daemon's option (and vio4wd's), if the variable has one. */
  option?: { short?: string; long: string; kind: OptionKind; metavar?: string };
  /** Parses one non-blank scalar (or, for repeatable variables, one element). */
  parse: (raw: string) => Config[K];
  /** Array variables: elements parsed one by one and concatenated. */
  repeat?: boolean;
  /** Known but not used by vio4wd: why (said by `config show`). */
  ignored?: string;
  /** Read by an earlier vio4wd, no longer: setting it gets a warning that says why it is ignored. */
  retired?: boolean;
}

const ZMQ_DIR = "ipc:///var/run/virtio-forwarder";
/** A flag variable: any non-empty value enables it, as the original's start script (`${VAR:+...}`). */
const flag = (raw: string) => raw !== "";
/** Flag values that read as "off" but enable the feature all the same: each gets a warning. */
const NEGATIVE_LOOKING = /^(n|no|0|false|off|disabled?|none)$/i;

/**
 * A log level as the original reads it: C's atoi (leading digits, else 0), above 7 taken as 7
 * (debug), below 0 as 0. quirkWarnings says when the value was not a plain 0-7.
 */
function parseLogLevel(raw: string): number {
  const m = /^\s*([+-]?\d+)/.exec(raw);
  return Math.max(0, Math.min(7, m ? Number(m[1]) : 0));
}

function v<K extends keyof Config>(spec: Variable<K>): Variable<K> {
  return spec;
}

/** Every variable, in the order of the packaged file. */
export const VARIABLES = [
  v({
    name: "VIRTIOFWD_CPU_MASK",
    key: "cpus",
    description: "Worker CPUs: a comma-separated list (1,2) or a hex mask (0x6).",
    default: [1, 2],
    option: { short: "-C", long: "--cpus", kind: "value", metavar: "CPUS" },
    parse: parseCpuSet,
  }),
  v({
    name: "VIRTIOFWD_LOG_LEVEL",
    key: "logLevel",
    description: "Log level, 0 (emergencies only) to 7 (debug).",
    default: 6,
    option: { short: "-l", long: "--loglevel", kind: "value", metavar: "LEVEL" },
    parse: parseLogLevel,
  }),
  v({
    name: "VIRTIOFWD_IPC_PORT_CONTROL",
    key: "ipcPortControl",
    description: "Non-empty: add/remove ports through the IPC file monitor.",
    default: false,
    option: { short: "-I", long: "--ipc", kind: "flag" },
    parse: flag,
  }),
  v({
    name: "VIRTIOFWD_OVSDB_SOCK_PATH",
    key: "ovsdbSock",
    description: "OVSDB server unix socket; setting it selects the OVSDB monitor for port control.",
    default: "/usr/local/var/run/openvswitch/db.sock",
    option: { short: "-O", long: "--ovsdb-sock", kind: "value", metavar: "PATH" },
    parse: parseAbsolutePath,
  }),
  v({
    name: "VIRTIOFWD_ZMQ_PORT_CONTROL_EP",
    key: "zmqPortControlEp",
    description: "ZeroMQ port-control endpoint; blank turns ZeroMQ port control off.",
    default: "",
    option: { short: "-Z", long: "--zmq-port-control-ep", kind: "value", metavar: "EP" },
    parse: parseZmqEndpoint,
  }),
  v({
    name: "VIRTIOFWD_JUMBO",
    key: "jumbo",
    description: "Non-empty: jumbo frames (VF MTU 9000, larger mbufs).",
    default: false,
    option: { short: "-J", long: "--enable-jumbo", kind: "flag" },
    parse: flag,
  }),
  v({
    name: "VIRTIOFWD_MRGBUF",
    key: "mrgbuf",
    description: "Non-empty: offer virtio mergeable RX buffers to the guest.",
    default: false,
    option: { short: "-R", long: "--enable-mrgbuf", kind: "flag" },
    parse: flag,
  }),
  v({
    name: "VIRTIOFWD_TSO",
    key: "tso",
    description: "Non-empty: TCP segmentation offload (guest TSO4/6, VF TSO, larger mbufs).",
    default: false,
    option: { short: "-T", long: "--enable-tso", kind: "flag" },
    parse: flag,
  }),
  v({
    name: "VIRTIOFWD_ZERO_COPY",
    key: "zeroCopy",
    description: "Non-empty: dequeue zero-copy; unsupported by DPDK >= 20.11 (accepted with a warning).",
    default: false,
    option: { short: "-0", long: "--zero-copy", kind: "flag" },
    parse: flag,
  }),
  v({
    name: "VIRTIOFWD_SOCKET_OWNER",
    key: "socketOwner",
    description: "Owner of the vhost-user sockets; blank means libvirt-qemu (the original's default) where it exists.",
    default: "",
    option: { short: "-u", long: "--vhost-username", kind: "value", metavar: "USER" },
    parse: parseAccountName,
  }),
  v({
    name: "VIRTIOFWD_SOCKET_GROUP",
    key: "socketGroup",
    description: "Group of the vhost-user sockets; blank means kvm (the original's default) where it exists.",
    default: "",
    option: { short: "-g", long: "--vhost-groupname", kind: "value", metavar: "GROUP" },
    parse: parseAccountName,
  }),
  v({
    name: "VIRTIOFWD_HUGETLBFS_MOUNT_POINT",
    key: "hugeDir",
    description: "hugetlbfs mount point DPDK allocates from.",
    default: "/dev/hugepages",
    option: { short: "-H", long: "--huge-dir", kind: "value", metavar: "DIR" },
    parse: parseAbsolutePath,
  }),
  v({
    name: "VIRTIOFWD_STATIC_VFS",
    key: "staticVfs",
    description: "VFs added at start: <PCI address or devargs>=<relay id>; one value or a bash array.",
    default: [],
    option: { short: "-P", long: "--add-pci-vf", kind: "repeat", metavar: "DEV=ID" },
    parse: (r) => [parseStaticVf(r)],
    repeat: true,
  }),
  v({
    name: "VIRTIOFWD_DYNAMIC_SOCKETS",
    key: "dynamicSockets",
    description: "Non-empty: create no sockets at start; they are added at run time (ADD_SOCK).",
    default: false,
    option: { short: "-d", long: "--dynamic-sockets", kind: "flag" },
    parse: flag,
  }),
  v({
    name: "VIRTIOFWD_CPU_NIC_SAME_NUMA",
    key: "sameNuma",
    description:
      "The original reserved hugepages only on the NUMA nodes of its workers with it. vio4wd always does (DPDK reserves its start-up memory on the nodes of the daemon's CPUs), and always places each relay on workers of its pool's node (the VF's, then the guest memory's), as the original did.",
    default: false,
    option: { short: "-a", long: "--same-numa", kind: "flag" },
    parse: flag,
    ignored:
      "hugepages are reserved only on the nodes of the daemon's CPUs, and relays placed by NUMA node, whether or not it is set",
  }),
  v({
    name: "VIRTIOFWD_VFIO_VF_TOKEN",
    key: "vfioVfToken",
    description: "VFIO VF token (a UUID); 0 = the default token; blank = none.",
    default: "",
    option: { short: "-t", long: "--vfio-vf-token", kind: "value", metavar: "UUID" },
    parse: parseVfioToken,
  }),
  v({
    name: "VIO4WD_CORE_SCHED_ENABLE",
    key: "coreSchedEnable",
    description:
      "Exactly true: run the core scheduler and its endpoint; anything else: off (-s on the command line enables the endpoint too).",
    default: false,
    // As the original's start script: only the exact string enables (anything else is a warning).
    parse: (r) => r === "true",
  }),
  v({
    name: "VIO4WD_CORE_SCHED_SENSITIVITY",
    key: "coreSchedSensitivity",
    description: "Core scheduler: minimum improvement of the load spread before it migrates (>= 0).",
    default: 0.25,
    parse: (r) => parseNumber(r, 0),
  }),
  v({
    name: "VIO4WD_CORE_SCHED_LOG_LEVEL",
    key: "coreSchedLogLevel",
    description: "Core scheduler log level, 0-7.",
    default: 6,
    parse: parseLogLevel,
  }),
  v({
    name: "VIO4WD_CORE_SCHED_POLL_INTERVAL",
    key: "coreSchedPollInterval",
    description: "Core scheduler poll interval in seconds (> 0).",
    default: 5,
    parse: (r) => parseNumber(r, 0, true),
  }),
  v({
    name: "VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT",
    key: "coreSchedGlobalNumaOpt",
    description: "Non-empty: balance across NUMA nodes instead of within each.",
    default: false,
    parse: flag,
  }),
  v({
    name: "VIRTIOFWD_CPU_PINS",
    key: "cpuPins",
    description: "Relay CPU pins <relay>:<cpu>[,<cpu>] (VF->VM, VM->VF); one value (; separated) or a bash array.",
    default: [],
    option: { short: "-c", long: "--virtio-cpu", kind: "repeat", metavar: "PIN" },
    parse: parseCpuPins,
    repeat: true,
  }),
  v({
    name: "VIRTIOFWD_PID_DIR",
    key: "pidDir",
    description: "Directory of virtio-forwarder.pid.",
    default: "/var/run",
    option: { short: "-p", long: "--pid-path", kind: "value", metavar: "DIR" },
    parse: parseAbsolutePath,
  }),
  v({
    name: "VIRTIOFWD_ZMQ_CONFIG_EP",
    key: "zmqConfigEp",
    description: "ZeroMQ config-query endpoint; blank turns it off.",
    default: "",
    option: { short: "-Y", long: "--zmq-config-ep", kind: "value", metavar: "EP" },
    parse: parseZmqEndpoint,
  }),
  v({
    name: "VIRTIOFWD_ZMQ_STATS_EP",
    key: "zmqStatsEp",
    description: "ZeroMQ stats endpoint; blank turns it off.",
    default: "",
    option: { short: "-z", long: "--zmq-stats-ep", kind: "value", metavar: "EP" },
    parse: parseZmqEndpoint,
  }),
  v({
    name: "VIRTIOFWD_ZMQ_CORE_SCHED_EP",
    key: "zmqCoreSchedEp",
    description: "ZeroMQ core-scheduling endpoint; used only when VIO4WD_CORE_SCHED_ENABLE=true.",
    default: "",
    option: { short: "-s", long: "--zmq-core-sched-ep", kind: "value", metavar: "EP" },
    parse: parseZmqEndpoint,
  }),
  v({
    name: "VIRTIOFWD_SOCKET_DIR",
    key: "socketDir",
    description: "Directory of the vhost-user sockets.",
    default: "/tmp",
    option: { short: "-V", long: "--vhost-path", kind: "value", metavar: "DIR" },
    parse: parseAbsolutePath,
  }),
  v({
    name: "VIRTIOFWD_SOCKET_FNAME_PATTERN",
    key: "socketPattern",
    description: "Socket file name with exactly one %u for the relay id.",
    default: "virtio-forwarder%u.sock",
    option: { short: "-S", long: "--vhost-socket", kind: "value", metavar: "PATTERN" },
    parse: parseSocketPattern,
  }),
  v({
    name: "VIRTIOFWD_BINARY",
    key: "binary",
    description: "The original's start script ran this executable; vio4wd is its own, so the value is not used.",
    default: "/usr/bin/vio4wd",
    // Any text, the package's template line `@BINDIR@/virtio-forwarder` too.
    parse: (r) => r,
    ignored: "vio4wd is the daemon itself (the original's start script executed this path)",
  }),
  v({
    name: "VIRTIOFWD_MASTER_LCORE",
    key: "masterLcore",
    description: "DPDK main lcore (the control thread's CPU); must not be a worker CPU.",
    default: 0,
    option: { short: "-M", long: "--master-lcore", kind: "value", metavar: "CPU" },
    parse: (r) => parseInteger(r, 0, MAX_CPUS - 1),
  }),
  v({
    name: "VIRTIOFWD_VHOST_CLIENT",
    key: "vhostClient",
    description: "Non-empty: vhost-user client mode (connect to QEMU's sockets, reconnect).",
    default: false,
    option: { short: "-i", long: "--vhostuser-client", kind: "flag" },
    parse: flag,
  }),
  v({
    name: "VIRTIOFWD_BIND_VFIO_PCI",
    key: "bindVfioPci",
    description: "Devices to bind to vfio-pci before start: PCI addresses, netdev or netdev:count.",
    default: [],
    parse: parseBindList,
  }),
  v({
    name: "VIO4WD_EAL_FILE_PREFIX",
    key: "ealFilePrefix",
    description:
      "DPDK file prefix (/var/run/dpdk/<prefix>), so that several DPDK processes can share a machine; the original's virtio-forwarder_ by default.",
    default: "virtio-forwarder_",
    option: { long: "--file-prefix", kind: "value", metavar: "PREFIX" },
    parse: parseFilePrefix,
  }),
  v({
    name: "VIO4WD_EAL_MEMORY_MB",
    key: "ealMemoryMb",
    description: "Hugepage memory DPDK reserves, in MiB.",
    default: 512,
    option: { long: "--memory", kind: "value", metavar: "MB" },
    parse: (r) => parseInteger(r, 64, 1 << 20),
  }),
  v({
    name: "VIO4WD_ZMQ_GROUP",
    key: "zmqGroup",
    description:
      "Group that may use the ipc:// ZeroMQ endpoints (directory 0750, sockets 0660); blank keeps the daemon's group.",
    default: "",
    option: { long: "--zmq-group", kind: "value", metavar: "GROUP" },
    parse: parseAccountName,
  }),
  v({
    name: "VIO4WD_EAL_LCORES",
    key: "ealLcores",
    description:
      "DPDK lcore-to-CPU map (LCORE@CPU,...): VIRTIOFWD_CPU_MASK and VIRTIOFWD_MASTER_LCORE then name lcores, which may share a CPU (small test machines).",
    default: null,
    option: { long: "--lcores", kind: "value", metavar: "MAP" },
    parse: parseLcoreMap,
  }),
  v({
    name: "VIO4WD_METRICS_LISTEN",
    key: "metricsListen",
    description:
      "HOST:PORT serving Prometheus metrics at /metrics (e.g. 127.0.0.1:9464; port 0 takes a free one, which the log line 'metrics: http://HOST:PORT/metrics' gives); blank turns it off.",
    default: "",
    option: { long: "--metrics-listen", kind: "value", metavar: "HOST:PORT" },
    parse: parseListen,
  }),
  v({
    name: "VIO4WD_IDLE_SLEEP_US",
    key: "idleSleepUs",
    description:
      "Idle mode: a worker that found no packet for a few milliseconds sleeps this many microseconds between polls (0: always poll, as the original). Saves an idle CPU; the first packets after a pause wait up to this long.",
    default: 0,
    option: { long: "--idle-sleep-us", kind: "value", metavar: "US" },
    parse: (r) => parseInteger(r, 0, 100_000),
  }),
  v({
    name: "VIO4WD_TX_RETRIES",
    key: "txRetries",
    description:
      "Not used since vio4wd 0.4 (earlier: retries before a full guest ring or VF queue dropped the rest of a burst). A relay now holds what a full queue refuses for its next pass, as the original, and drops nothing while both ends are there.",
    default: "",
    option: { long: "--tx-retries", kind: "value", metavar: "N" },
    parse: (r) => r,
    ignored:
      "a relay holds what a full queue refuses until the queue takes it (as the original); nothing is retried or dropped",
    retired: true,
  }),
  v({
    name: "VIO4WD_ZMQ_ALLOW_REMOTE",
    key: "zmqAllowRemote",
    description:
      "Non-empty: open tcp:// endpoints on addresses other than loopback. They have no authentication: anyone who reaches them controls the relays.",
    default: false,
    parse: flag,
  }),
  v({
    name: "VIO4WD_DEVARGS_ALLOW",
    key: "devargsAllow",
    description:
      "Drivers whose device strings clients (ZeroMQ, OVSDB, IPC) may use, comma-separated: net_null, net_memif, net_tap, net_virtio_user, net_vhost. Each takes only its safe keys, and paths must lie in the socket directory. Empty: clients may name SR-IOV VFs only.",
    default: [],
    parse: parseDriverList,
  }),
  v({
    name: "VIO4WD_PCI_ALLOW",
    key: "pciAllow",
    description: "PCI addresses clients may use although they are not SR-IOV VFs, comma-separated.",
    default: [],
    parse: parsePciList,
  }),
  v({
    name: "VIO4WD_SOCKET_DIRS_ALLOW",
    key: "socketDirsAllow",
    description:
      "Directories besides VIRTIOFWD_SOCKET_DIR where ADD_SOCK may put or find vhost-user sockets (Neutron's vhostuser_socket_dir, e.g. /var/run/openvswitch), comma-separated. Empty: any directory that passes the trust check (owned by root, the daemon, the socket owner or QEMU's account; writable only by those groups).",
    default: [],
    parse: parseDirList,
  }),
  v({
    name: "VIO4WD_STATE_DIR",
    key: "stateDir",
    description:
      "Directory of the daemon's state (pairings.json: the sockets port control paired with devices, restored at start with dynamic sockets); root's, created 0700.",
    default: "/var/lib/vio4wd",
    option: { long: "--state-dir", kind: "value", metavar: "DIR" },
    parse: parseAbsolutePath,
  }),
  v({
    name: "VIO4WD_NICE",
    key: "nice",
    description:
      "Nice value of the daemon and its workers: -20 (the default) as the original's nice(-20), so that nothing else on a worker's CPU runs before it; 0 leaves the priority alone (a machine where other programs must share the workers' CPUs, e.g. test stand-ins).",
    default: -20,
    option: { long: "--nice", kind: "value", metavar: "N" },
    parse: (r) => parseInteger(r, -20, 19),
  }),
  v({
    name: "VIO4WD_IPC_CMD_FILE",
    key: "ipcCmdFile",
    description: "Command file of the IPC port control (VIRTIOFWD_IPC_PORT_CONTROL): add_port/del_port <netdev>.",
    default: "/tmp/vio_cmd",
    option: { long: "--ipc-cmd-file", kind: "value", metavar: "PATH" },
    parse: parseAbsolutePath,
  }),
] as const satisfies readonly Variable<keyof Config>[];

/** Where an effective value came from. */
export type Source = { kind: "default" } | { kind: "environment" } | { kind: "file"; file: string; line: number } | {
  kind: "option";
  option: string;
};

/** Renders a source as `default`, `environment`, `FILE:LINE` or `option --cpus`. */
export function describeSource(s: Source): string {
  if (s.kind === "default") return "default";
  if (s.kind === "environment") return "environment";
  if (s.kind === "file") return `${s.file}:${s.line}`;
  return `option ${s.option}`;
}

/** A bad value: names where, which variable, the value and what is allowed. Exit status 2. */
export class ConfigError extends Error {
  constructor(
    readonly where: string,
    readonly variable: string,
    readonly value: string,
    readonly reason: string,
  ) {
    super(`${where}: ${variable}${value === "" ? "" : `='${value}'`}: ${reason}`);
    this.name = "ConfigError";
  }
}

/** The result of loading: the values, their sources, and warnings (unknown variables...). */
export interface LoadedConfig {
  config: Config;
  sources: Record<keyof Config, Source>;
  warnings: string[];
  file: string | null;
}

/** Raw command-line values keyed by variable name (flags as "y"; repeatable options as arrays). */
export type OptionValues = Record<string, { value: EnvValue; option: string }>;

function defaults(): Config {
  const out: Record<string, unknown> = {};
  for (const v of VARIABLES) out[v.key] = structuredClone(v.default);
  return out as unknown as Config;
}

function parseValue(v: Variable, raw: EnvValue, where: string): Config[keyof Config] | undefined {
  // A scalar variable given a bash array: its first element, which is what `$VAR` is in the
  // original's start script (quirkWarnings says so).
  const items = Array.isArray(raw) ? (v.repeat ? raw : raw.slice(0, 1)) : [raw];
  const nonBlank = items.filter((x) => x !== "");
  if (nonBlank.length === 0) return undefined;
  try {
    if (!v.repeat) return v.parse(nonBlank[0]);
    return nonBlank.flatMap((x) => v.parse(x) as unknown[]) as Config[keyof Config];
  } catch (e) {
    if (e instanceof ValueError) throw new ConfigError(where, v.name, nonBlank.join(" "), e.message);
    throw e;
  }
}

/**
 * Loads the configuration: defaults, then the file (if any), then command-line options.
 * Throws {@link ConfigError} for the first bad value, with its file:line.
 *
 * @example
 * ```ts
 * const { config } = loadConfig("VIRTIOFWD_CPU_MASK=0x6\n", "/etc/default/virtioforwarder");
 * // config.cpus -> [1, 2]
 * ```
 */
export function loadConfig(
  text: string | null,
  file: string | null,
  options: OptionValues = {},
  env: Readonly<Record<string, string>> = {},
): LoadedConfig {
  const config = defaults() as unknown as Record<string, unknown>;
  const sources = {} as Record<string, Source>;
  const warnings: string[] = [];
  const byName = new Map<string, Variable>(VARIABLES.map((v) => [v.name, v as Variable]));
  for (const v of VARIABLES) sources[v.key] = { kind: "default" };
  /** Takes `raw` (from `where`) as `v`'s value, with the warnings its spelling earns. */
  const take = (v: Variable, raw: EnvValue, where: string, source: Source) => {
    const value = parseValue(v, raw, where);
    if (value === undefined) return;
    warnings.push(...quirkWarnings(v, raw, where));
    config[v.key] = value;
    sources[v.key] = source;
  };
  // As the original's start script, which sourced the file over its environment: a variable the
  // file does not assign keeps the environment's value (a systemd drop-in's Environment=, a shell).
  for (const v of VARIABLES) {
    const raw = env[v.name];
    if (raw !== undefined) take(v as Variable, raw, `environment ${v.name}`, { kind: "environment" });
  }

  if (text !== null) {
    let entries;
    try {
      entries = parseEnvFile(text);
    } catch (e) {
      if (e instanceof EnvFileSyntaxError) {
        throw new ConfigError(`${file}:${e.line}`, "syntax", "", e.reason);
      }
      throw e;
    }
    for (const [name, entry] of entries) {
      const v = byName.get(name);
      const where = `${file}:${entry.line}`;
      if (!v) {
        warnings.push(`${where}: unknown variable ${name} ignored`);
        continue;
      }
      take(v, entry.value, where, { kind: "file", file: file ?? "-", line: entry.line });
    }
  }
  for (const [name, o] of Object.entries(options)) {
    const v = byName.get(name);
    if (!v) continue;
    const value = parseValue(v, o.value, `option ${o.option}`);
    if (value === undefined) continue;
    warnings.push(...(v.retired ? quirkWarnings(v, o.value, `option ${o.option}`) : []));
    config[v.key] = value;
    sources[v.key] = { kind: "option", option: o.option };
    // The original's -s turns the core-scheduling endpoint on; the file's variable only gates
    // whether its start script passes -s.
    if (v.key === "zmqCoreSchedEp") {
      config.coreSchedEnable = true;
      sources.coreSchedEnable = { kind: "option", option: o.option };
    }
  }
  const result: LoadedConfig = {
    config: config as unknown as Config,
    sources: sources as Record<keyof Config, Source>,
    warnings,
    file,
  };
  crossCheck(result);
  return result;
}

/** What the original would do differently from what the value seems to say. */
function quirkWarnings(v: Variable, raw: EnvValue, where: string): string[] {
  if (v.retired) return [`${where}: ${v.name} is no longer used and is ignored: ${v.ignored}`];
  if (!v.repeat && Array.isArray(raw) && raw.length > 1) {
    return [
      `${where}: ${v.name} is a bash array; its first element '${
        raw[0]
      }' is used (as $${v.name} in bash), the rest ignored`,
      ...quirkWarnings(v, raw[0], where),
    ];
  }
  const text = (Array.isArray(raw) ? raw.join(" ") : raw).trim();
  if (v.parse === flag && NEGATIVE_LOOKING.test(text)) {
    return [
      `${where}: ${v.name}=${text} ENABLES it: any non-empty value does, as in virtio-forwarder; leave it blank to disable`,
    ];
  }
  if (v.parse === parseLogLevel && !/^[0-7]$/.test(text)) {
    return [
      `${where}: ${v.name}=${text} is not a level from 0 to 7: ${
        parseLogLevel(text)
      } is used (virtio-forwarder reads it the same way)`,
    ];
  }
  if (v.key === "coreSchedEnable" && text !== "true" && !/^false$/i.test(text)) {
    return [`${where}: ${v.name}=${text} disables the core scheduler: only the exact value true enables it`];
  }
  return [];
}

function whereOf(l: LoadedConfig, key: keyof Config): string {
  return describeSource(l.sources[key]);
}

function nameOf(key: keyof Config): string {
  return VARIABLES.find((v) => v.key === key)!.name;
}

/** Checks between variables: pins inside the worker set, one port-control mode, unique relays. */
function crossCheck(l: LoadedConfig): void {
  const c = l.config;
  const fail = (key: keyof Config, value: string, reason: string): never => {
    throw new ConfigError(whereOf(l, key), nameOf(key), value, reason);
  };
  if (c.ealLcores) {
    const missing = [c.masterLcore, ...c.cpus].filter((l) => !c.ealLcores!.has(l));
    if (missing.length) {
      fail("ealLcores", "", `lcore ${missing.join(",")} (workers and main lcore) must be in the map`);
    }
  }
  if (c.cpus.includes(c.masterLcore)) {
    fail(
      "masterLcore",
      String(c.masterLcore),
      `the main lcore must not be one of the worker CPUs (${c.cpus.join(",")}); pick another CPU`,
    );
  }
  const pinned = new Set<number>();
  for (const p of c.cpuPins) {
    for (const cpu of [p.vfToVm, p.vmToVf]) {
      if (!c.cpus.includes(cpu)) {
        fail(
          "cpuPins",
          `${p.relay}:${p.vfToVm},${p.vmToVf}`,
          `CPU ${cpu} for relay ${p.relay} is not a worker CPU (VIRTIOFWD_CPU_MASK=${c.cpus.join(",")})`,
        );
      }
    }
    if (pinned.has(p.relay)) fail("cpuPins", String(p.relay), `relay ${p.relay} is pinned twice`);
    pinned.add(p.relay);
  }
  const relays = new Set<number>();
  const devices = new Set<string>();
  for (const s of c.staticVfs) {
    if (relays.has(s.relay)) fail("staticVfs", `${s.device}=${s.relay}`, `relay ${s.relay} is given twice`);
    if (devices.has(s.device)) fail("staticVfs", `${s.device}=${s.relay}`, `device ${s.device} is given twice`);
    relays.add(s.relay);
    devices.add(s.device);
  }
  // Port control: ZeroMQ, else IPC, else OVSDB, as the original; a lower source also set is ignored.
  const modes = ([
    ["zmqPortControlEp", c.zmqPortControlEp !== ""],
    ["ipcPortControl", c.ipcPortControl],
    ["ovsdbSock", l.sources.ovsdbSock.kind !== "default"],
  ] as const).filter(([, on]) => on).map(([k]) => k);
  for (const ignored of modes.slice(1)) {
    l.warnings.push(
      `${whereOf(l, ignored)}: ${nameOf(ignored)} is ignored: ${nameOf(modes[0])} (${
        whereOf(l, modes[0])
      }) takes precedence for port control, as in virtio-forwarder (ZeroMQ, then IPC, then OVSDB); blank it to silence this`,
    );
  }
  if (c.staticVfs.length > 0 && c.staticVfs.length > MAX_RELAYS) {
    fail("staticVfs", "", `more than ${MAX_RELAYS} entries`);
  }
}

/** Which port source adds and removes VFs at run time. */
export type PortControlMode = "zmq" | "ipc" | "ovsdb";

/** The port-control mode the configuration selects (ZeroMQ, then IPC, else OVSDB). */
export function portControlMode(c: Config): PortControlMode {
  if (c.zmqPortControlEp !== "") return "zmq";
  if (c.ipcPortControl) return "ipc";
  return "ovsdb";
}

/** Where port control comes from at run time: its mode, the endpoint, file or socket, and the variable that chose it. */
export function portControlSource(c: Config): { mode: PortControlMode; from: string; variable: string } {
  const mode = portControlMode(c);
  if (mode === "zmq") return { mode, from: c.zmqPortControlEp, variable: "VIRTIOFWD_ZMQ_PORT_CONTROL_EP" };
  if (mode === "ipc") return { mode, from: c.ipcCmdFile, variable: "VIRTIOFWD_IPC_PORT_CONTROL" };
  return { mode, from: c.ovsdbSock, variable: "neither VIRTIOFWD_ZMQ_PORT_CONTROL_EP nor VIRTIOFWD_IPC_PORT_CONTROL" };
}

/** The physical CPUs the daemon's lcores run on (the lcore map's CPUs, else the main lcore and workers). */
export function physicalCpus(c: Config): number[] {
  return [...new Set(c.ealLcores ? c.ealLcores.values() : [c.masterLcore, ...c.cpus])];
}

/** The PID file's name in VIRTIOFWD_PID_DIR (the original's). */
export const PID_FILE = "virtio-forwarder.pid";

/** Where the daemon of this configuration keeps its PID. */
export function pidFilePath(c: Config): string {
  return `${c.pidDir.replace(/\/+$/, "")}/${PID_FILE}`;
}

/** The core-sched endpoint in effect ("" when the scheduler is disabled). */
export function coreSchedEndpoint(c: Config): string {
  return c.coreSchedEnable ? c.zmqCoreSchedEp : "";
}

/** Reads and loads a config file; a missing file at the default path means built-in defaults. */
export async function readConfig(
  path: string | undefined,
  options: OptionValues = {},
): Promise<LoadedConfig> {
  // VIO4WD_CONFIG names another default file (a second daemon, a staging config, the manual's tests).
  const file = path ?? Deno.env.get("VIO4WD_CONFIG") ?? DEFAULT_CONFIG_PATH;
  let text: string | null;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (path === undefined && file === DEFAULT_CONFIG_PATH && e instanceof Deno.errors.NotFound) {
      const loaded = loadConfig(null, null, options, Deno.env.toObject());
      loaded.warnings.push(`${file} not found: using built-in defaults (see 'vio4wd config show')`);
      return loaded;
    }
    const why = errorText(e);
    throw new ConfigError(file, "config file", "", `cannot be read: ${why}; pass --config FILE`);
  }
  return loadConfig(text, file, options, Deno.env.toObject());
}

/** The default endpoints the original uses (for documentation and the shipped file). */
export const ORIGINAL_ENDPOINTS = {
  config: `${ZMQ_DIR}/config`,
  portControl: `${ZMQ_DIR}/port_control`,
  stats: `${ZMQ_DIR}/stats`,
  coreSched: `${ZMQ_DIR}/core_sched`,
} as const;

/** The VF's MTU: the original's DEFAULT_IP_MTU (2100) or, with jumbo frames, JUMBO_IP_MTU (9000). */
export function vfMtu(c: Pick<Config, "jumbo">): number {
  return c.jumbo ? JUMBO_MTU : 2100;
}
const JUMBO_MTU = 9000;

/**
 * Mbuf data room: DPDK's default 2048 bytes (as testpmd and OVS) holds a 1500-byte MTU frame with
 * its VLAN tags; jumbo frames and TSO get the original's jumbo MTU + L2 overhead (Ethernet header,
 * two VLAN tags) + slack. Larger packets are chained by the vhost dequeue either way.
 */
export function mbufDataSize(c: Config): number {
  return c.jumbo || c.tso ? JUMBO_MTU + 22 + 32 : 2048;
}
