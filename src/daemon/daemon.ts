/**
 * The daemon: brings up DPDK, the relays of the configuration, and runs until SIGTERM/SIGINT.
 *
 * @module
 */

import packageJson from "../../package.json" with { type: "json" };
import {
  type Config,
  coreSchedEndpoint,
  type LoadedConfig,
  mbufDataSize,
  ORIGINAL_ENDPOINTS,
  pidFilePath,
  portControlMode,
  portControlSource,
} from "../config/config.ts";
import { serveMetrics } from "../metrics/metrics.ts";
import { IpcMonitor } from "../monitors/ipc.ts";
import { OvsdbMonitor } from "../monitors/ovsdb.ts";
import { configService } from "../control/config_service.ts";
import { coreSchedService } from "../control/core_sched.ts";
import { PortControl, portControlService } from "../control/port_control.ts";
import { loadPairings, PAIRINGS_FILE, pairingsOf, savePairings } from "../relays/pairings.ts";
import { ControlServer, type Service } from "../control/server.ts";
import { StatsAnswerer, statsService } from "../control/stats.ts";
import { accountId, endpointReach, formatLcoreMap } from "../config/values.ts";
import { qemuAccount, type SocketAccounts, socketAccounts } from "../config/accounts.ts";
import {
  makeDirs,
  sharedSocketDir,
  socketDirTrust,
  trustedOnlyAsShared,
  untrustedDir,
  untrustedDirectories,
} from "../host/trusted_dir.ts";
import { sysfsRoot } from "../common/sysfs.ts";
import { bindVfio, expandBindList, VFIO_DRIVER } from "../host/vfio_bind.ts";
import { cpuNodes, offlineCpus } from "../host/topology.ts";
import { errorText, Logger } from "../common/log.ts";
import { readNoFollow, setThreadNice } from "../../ffi/libc.ts";
import { notifyServiceManager } from "../host/systemd_notify.ts";
import { CAP_SYS_ADMIN, lacksCapability } from "../host/capabilities.ts";
import { Dataplane, DataplaneError } from "../dataplane/dataplane.ts";
import { attempt, type RelayPorts, type RelayReader, RelayTable } from "../relays/table.ts";
import { clientPorts, isSriovVf, untrustedPeerSocket } from "../relays/client_ports.ts";
import { greet, takeOverRequest, takeRelaysOver, UpgradeServer, upgradeSocketPath } from "./upgrade.ts";

/** vio4wd's version: package.json's, its one owner (the package build reads it there too). */
export const VERSION: string = packageJson.version;
/** How often the relays' VMs are read from the data plane and its events picked up. */
const EVENT_POLL_MS = 20;
/**
 * Tests only: the shim's event queue capacity, made tiny so that it overflows (the relays must
 * work without a single event). Unset: the shim's default.
 */
const EVENT_QUEUE_CAP_ENV = "VIO4WD_TEST_EVENT_QUEUE_CAP";

/** The EAL argv the daemon initialises DPDK with. */
export function ealArgs(c: Config): string[] {
  const args = [
    "vio4wd",
    ...(c.ealLcores ? ["--lcores", formatLcoreMap(c.ealLcores)] : ["-l", [c.masterLcore, ...c.cpus].join(",")]),
    "--main-lcore",
    String(c.masterLcore),
    // DPDK counts 1 (emerg) to 8 (debug); its info chatter only at our debug level.
    `--log-level=${c.logLevel >= 7 ? 8 : Math.min(c.logLevel + 1, 6)}`,
    "--huge-dir",
    c.hugeDir,
    "--file-prefix",
    c.ealFilePrefix,
    "--huge-unlink",
    "-m",
    String(c.ealMemoryMb),
    "-a",
    "ffff:ff:ff.f", // an allow-list that matches nothing: no PCI device is probed unless asked
    "--no-telemetry",
  ];
  if (c.vfioVfToken !== "") args.push("--vfio-vf-token", c.vfioVfToken);
  return args;
}

/** A start-up failure with a message that says what to fix; exit status 1. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

function checkCpusOnline(c: Config): void {
  const off = offlineCpus(c, sysfsRoot());
  if (off) {
    throw new StartupError(`CPU ${off.missing.join(",")} is not online (online: ${off.online.join(",")}); ${off.fix}`);
  }
}

/**
 * Creates the socket directory if missing (0755) and hands it to the socket owner and group at
 * every start, as the original's pre-start did (`mkdir -p`, chown, chgrp): after a reboot empties
 * /tmp, QEMU (in client mode, as libvirt-qemu) must be able to create its socket there again.
 * A sticky world-writable directory (/tmp itself) or / is never handed over.
 */
function prepareSocketDir(c: Config, accounts: SocketAccounts, log: Logger): void {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(c.socketDir);
    if (!st.isDirectory) throw new StartupError(`socket directory ${c.socketDir} is not a directory`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    log.notice(`socket directory ${c.socketDir} does not exist: creating it`);
    try {
      makeDirs(c.socketDir, 0o755);
    } catch (err) {
      throw new StartupError(`cannot create socket directory ${c.socketDir}: ${(err as Error).message}`);
    }
    st = Deno.statSync(c.socketDir);
  }
  const uid = accounts.owner ? accountId("passwd", accounts.owner) : null;
  const gid = accounts.group ? accountId("group", accounts.group) : null;
  if ((uid === null || uid === st.uid) && (gid === null || gid === st.gid)) return;
  if (c.socketDir.replace(/\/+$/, "") === "" || ((st.mode ?? 0) & 0o1002) === 0o1002) {
    log.warn(
      `socket directory ${c.socketDir} is shared by every user: not handing it to ${accounts.owner}:${accounts.group}; ` +
        `set VIRTIOFWD_SOCKET_DIR to a directory of its own (the original's /tmp/virtio-forwarder)`,
    );
    return;
  }
  try {
    Deno.chownSync(c.socketDir, uid, gid);
    log.info(`socket directory ${c.socketDir} handed to ${accounts.owner || "-"}:${accounts.group || "-"}`);
  } catch (e) {
    log.warn(
      `cannot hand socket directory ${c.socketDir} to ${accounts.owner}:${accounts.group}: ${(e as Error).message}`,
    );
  }
}

/** VIRTIOFWD_BIND_VFIO_PCI, before DPDK starts: each device logged; failures do not stop the daemon. */
function bindListedVfs(list: readonly string[], log: Logger): void {
  const root = sysfsRoot();
  let pcis: string[];
  try {
    pcis = expandBindList(list, root);
  } catch (e) {
    log.error(`VIRTIOFWD_BIND_VFIO_PCI: ${errorText(e)}; nothing bound`);
    return;
  }
  for (const b of bindVfio(pcis, root)) {
    if (b.result === "bound") {
      log.notice(`VIRTIOFWD_BIND_VFIO_PCI: ${b.pci} bound to ${VFIO_DRIVER} (was ${b.from || "unbound"})`);
    } else if (b.result === "already") log.info(`VIRTIOFWD_BIND_VFIO_PCI: ${b.pci} is on ${VFIO_DRIVER} already`);
    else log.error(`VIRTIOFWD_BIND_VFIO_PCI: ${b.pci}: ${b.error}`);
  }
}

/**
 * Writes the PID file, refusing to start while another forwarder's PID is in it. What is found
 * there is read without following a link or blocking on a FIFO (only 32 bytes of a regular
 * file); the new file is written under a fresh name (O_EXCL: never through a link) and renamed
 * over whatever was there.
 */
function writePidFile(c: Config, takingOver = false): string {
  const path = pidFilePath(c);
  const old = pidInFile(path);
  // taking over: the PID there is the daemon this one takes over from
  if (!takingOver && old > 0 && old !== Deno.pid) {
    let cmd = "";
    try {
      cmd = Deno.readTextFileSync(`/proc/${old}/cmdline`);
    } catch { /* not running */ }
    if (cmd.includes("vio4wd") || cmd.includes("virtio-forwarder")) {
      throw new StartupError(`another forwarder (PID ${old}) runs with PID file ${path}; stop it first`);
    }
  }
  const fresh = `${path}.${Deno.pid}.new`;
  try {
    Deno.writeTextFileSync(fresh, `${Deno.pid}\n`, { createNew: true, mode: 0o644 });
    Deno.renameSync(fresh, path);
  } catch (e) {
    try {
      Deno.removeSync(fresh);
    } catch { /* not created */ }
    throw new StartupError(`cannot write PID file ${path}: ${(e as Error).message} (check VIRTIOFWD_PID_DIR)`);
  }
  return path;
}

/** The PID in PID file `path` (read without following a link, 32 bytes at most), or 0. */
function pidInFile(path: string): number {
  try {
    const pid = Number(new TextDecoder().decode(readNoFollow(path, 32).data).trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : 0;
  } catch {
    return 0; // none, or not a regular file
  }
}

/** Removes PID file `path` if it is still this process's (after a hot upgrade it is the new daemon's). */
function removeOwnPidFile(path: string): void {
  if (pidInFile(path) === Deno.pid) removeQuietly(path);
}

/**
 * The pairings port control made, restored on their relays (dynamic sockets): each by ADD_SOCK's
 * rules; one that cannot be (its socket or device gone) is dropped with a log line.
 */
function restorePairings(c: Config, pc: PortControl, log: Logger): void {
  const { pairings, problems } = loadPairings(c.stateDir);
  for (const p of problems) log.warn(`pairings: ${p}`);
  for (const p of pairings) {
    const why = pc.restore(p, c.vhostClient);
    if (why === null) {
      log.notice(`relay ${p.relay}: socket ${p.socket} paired with ${p.device} again (kept from the last run)`);
    } else log.warn(`relay ${p.relay}: pairing of ${p.socket} with ${p.device} dropped: ${why}`);
  }
}

/**
 * What keeps the pairings file in step with the relay table: called after every port-control
 * operation; writes only when the pairings changed. The state directory is created (0700) or
 * must pass the trust check; a failure is logged, never fatal (the relays keep running).
 */
function pairingKeeper(c: Config, table: RelayTable, log: Logger): () => void {
  let last: string | null = null;
  return () => {
    const pairings = pairingsOf(table.list());
    const text = JSON.stringify(pairings);
    if (text === last) return;
    try {
      const why = untrustedDir(c.stateDir);
      if (why) throw new Error(`VIO4WD_STATE_DIR=${c.stateDir}: ${why}`);
      makeDirs(c.stateDir, 0o700);
      savePairings(c.stateDir, pairings);
      last = text;
    } catch (e) {
      log.error(
        `cannot keep the pairings in ${c.stateDir}/${PAIRINGS_FILE}: ${(e as Error).message}; ` +
          "they will not be restored after a restart",
      );
    }
  };
}

/** A started daemon: its relay table, and how to stop it. */
export interface RunningDaemon {
  table: RelayTable;
  dataplane: Dataplane;
  /**
   * Stops the control endpoints, workers, sockets and VFs, removes the PID file; returns the exit
   * status. After a hot upgrade (`handedOver`) what went to the new daemon is left alone.
   */
  stop(handedOver?: boolean): Promise<number>;
  /** Resolves with the new daemon's PID once a hot upgrade handed everything to it. */
  readonly handedOver: Promise<number>;
}

/**
 * Starts the data plane and the relays of the configuration: sockets (unless dynamic), static
 * VFs, and the vhost event loop. Throws {@link StartupError} with what to fix, having undone what
 * it had started (one unwind stack: PID file, DPDK, its run directory).
 */
export function startDaemon(loaded: LoadedConfig, log: Logger): RunningDaemon {
  const c = loaded.config;
  const accounts = checkBeforeStart(loaded, log);
  using started = new DisposableStack(); // what a failed start undoes, last first
  const pidFile = writePidFile(c);
  started.defer(() => removeOwnPidFile(pidFile));
  const { dp, shutdown } = bringUpDataplane(c, log, started);
  const table = relayTable(c, accounts, dp, log);
  addConfiguredRelays(c, table, log);
  const endpoints = new DaemonEndpoints(c, accounts, table, dp, log);
  endpoints.open(true); // the last step that can fail
  announceReady(c, table, dp, log);
  const poll = setInterval(eventPoller(dp, table, log), EVENT_POLL_MS);
  return running(table, dp, endpoints, poll, started.move(), shutdown, log);
}

/**
 * Starts a daemon that takes the relays of a running one over (hot upgrade, docs/hot-upgrade.md):
 * DPDK up under its own file prefix first, then each relay as the old daemon hands it over, then
 * the endpoints and the PID file once the old daemon released them. Until then a failure undoes
 * everything here; the old daemon takes its relays back.
 */
export async function startTakingOver(
  loaded: LoadedConfig,
  log: Logger,
  req: { path: string; token: string; prefix: string },
): Promise<RunningDaemon> {
  const c: Config = { ...loaded.config, ealFilePrefix: req.prefix };
  const accounts = checkBeforeStart({ ...loaded, config: c }, log);
  using started = new DisposableStack();
  const { ch, relays } = await greet(req, VERSION).catch((e) => {
    throw new StartupError(`cannot take over from the running daemon (${req.path}): ${errorText(e)}`);
  });
  started.defer(() => ch.close());
  log.notice(`taking over ${relays.length} relay(s) from the running daemon (${req.path})`);
  const { dp, shutdown } = bringUpDataplane(c, log, started);
  const table = relayTable(c, accounts, dp, log);
  const poll = setInterval(eventPoller(dp, table, log), EVENT_POLL_MS);
  started.defer(() => clearInterval(poll));
  const endpoints = new DaemonEndpoints(c, accounts, table, dp, log);
  started.defer(() => endpoints.close());
  await takeRelaysOver(
    {
      table,
      dp,
      log,
      openEndpoints: () => {
        const pidFile = writePidFile(c, true);
        started.defer(() => removeOwnPidFile(pidFile));
        endpoints.open(false);
        return Promise.resolve(VERSION);
      },
    },
    ch,
    relays,
    `/var/run/dpdk/${c.ealFilePrefix}/handover.sock`,
    VERSION,
  ).catch((e) => {
    // the relays taken so far close with this process: their VMs reconnect to the old daemon
    throw new StartupError(`the take-over stopped: ${errorText(e)}`);
  });
  announceReady(c, table, dp, log, false);
  return running(table, dp, endpoints, poll, started.move(), shutdown, log);
}

function relayTable(c: Config, accounts: SocketAccounts, dp: Dataplane, log: Logger): RelayTable {
  return new RelayTable(
    { ...c, socketOwner: accounts.owner, socketGroup: accounts.group },
    dp,
    log,
    cpuNodes(sysfsRoot()),
  );
}

/** The daemon once started: stop() undoes `unwind` (DPDK, its run directory, the PID file). */
function running(
  table: RelayTable,
  dp: Dataplane,
  endpoints: DaemonEndpoints,
  poll: ReturnType<typeof setInterval>,
  unwind: DisposableStack,
  shutdown: { status: number },
  log: Logger,
): RunningDaemon {
  return {
    table,
    dataplane: dp,
    handedOver: endpoints.handedOver,
    async stop(handedOver = false): Promise<number> {
      if (!handedOver) notifyServiceManager("STOPPING=1"); // after a handover systemd follows the new PID
      await endpoints.close();
      clearInterval(poll);
      table.tick();
      for (const ev of dp.events()) table.handle(ev);
      logStatus(log, table);
      unwind.dispose(); // DPDK shut down, its run directory and the PID file (if still ours) removed
      log.notice("Stopping virtio-forwarder: stopped");
      return shutdown.status;
    },
  };
}

/** What must hold before anything is started: the CPUs, VFIO binds, accounts, trusted directories. */
function checkBeforeStart(loaded: LoadedConfig, log: Logger): SocketAccounts {
  const c = loaded.config;
  for (const w of loaded.warnings) log.warn(w);
  if (c.zeroCopy) log.warn("VIRTIOFWD_ZERO_COPY: dequeue zero-copy is not supported by DPDK >= 20.11; ignored");
  checkCpusOnline(c);
  if (c.bindVfioPci.length > 0) bindListedVfs(c.bindVfioPci, log);
  const accounts = socketAccounts(c);
  if (accounts.error) throw new StartupError(accounts.error);
  for (const w of accounts.warnings) log.warn(w);
  const [untrusted] = untrustedDirectories(c, accounts);
  if (untrusted) throw new StartupError(`${untrusted.variable}=${untrusted.dir}: ${untrusted.why}`);
  if (trustedOnlyAsShared(c.pidDir, { shared: sharedSocketDir(c.socketDir, accounts) })) {
    log.warn(
      `VIRTIOFWD_PID_DIR=${c.pidDir} lies in or under VIRTIOFWD_SOCKET_DIR, which belongs to the socket owner or ` +
        "group: a process of theirs (QEMU) could meddle with the PID file; choose a directory of root's (e.g. /var/run)",
    );
  }
  prepareSocketDir(c, accounts, log); // dynamic sockets too: QEMU creates its sockets there in client mode
  return accounts;
}

/**
 * Loads the shim, initialises DPDK (at the configured nice value, so that its workers inherit it)
 * and keeps the other threads off the workers' CPUs. Once DPDK is up, `started` shuts it down and
 * removes its run directory if the start fails later (not before: a failed init may have met
 * another process's directory of the same prefix).
 */
function bringUpDataplane(
  c: Config,
  log: Logger,
  started: DisposableStack,
): { dp: Dataplane; shutdown: { status: number } } {
  const dp = Dataplane.open();
  // The original's words first: operators grep for "Starting virtio-forwarder" / "Stopping virtio-forwarder".
  log.notice(
    `Starting virtio-forwarder: starting vio4wd ${VERSION} (${dp.dpdkVersion}), workers on CPU ${c.cpus.join(",")}`,
  );
  const args = ealArgs(c);
  args.forEach((a, i) => log.debug(`dpdk eal param ${i}: ${a}`));
  const cap = Deno.env.get(EVENT_QUEUE_CAP_ENV);
  try {
    // as the original: nice -20 before DPDK starts, so that the workers it creates inherit it
    if (c.nice !== 0) setThreadNice(c.nice);
  } catch (e) {
    log.warn(
      `Could not set process nice value to ${c.nice}! (${(e as Error).message}; needs CAP_SYS_NICE; VIO4WD_NICE=0 ` +
        "leaves the priority alone)",
    );
  }
  try {
    dp.init(args, { mbufDataSize: mbufDataSize(c), tso: c.tso, eventQueueCap: cap ? Number(cap) : undefined });
  } catch (e) {
    if (e instanceof DataplaneError) {
      const sysAdmin = lacksCapability(CAP_SYS_ADMIN)
        ? "; this process lacks CAP_SYS_ADMIN, which DPDK needs for physical addresses (UIO, or VFIO without an " +
          "IOMMU): `systemctl edit virtio-forwarder`, then CapabilityBoundingSet=CAP_SYS_ADMIN under [Service]"
        : "";
      throw new StartupError(
        `${e.message} (hugepages reserved and mounted at ${c.hugeDir}? another process using file prefix '${c.ealFilePrefix}'?` +
          `${sysAdmin})`,
      );
    }
    throw e;
  }
  const shutdown = { status: 0 }; // 1 when DPDK reported an error shutting down (the exit status)
  started.defer(() => removeQuietly(`/var/run/dpdk/${c.ealFilePrefix}`));
  started.defer(() => shutdown.status = shutDown(dp, log));
  dp.setIdleSleep(c.idleSleepUs);
  try {
    const moved = dp.placeThreads();
    log.info(`${moved} threads (Deno, libzmq, DPDK control) kept on the main lcore's CPUs, off the workers'`);
  } catch (e) {
    log.warn(`the daemon's threads may preempt the workers: ${errorText(e)}`);
  }
  return { dp, shutdown };
}

/** Shuts DPDK down; 0, or 1 (logged) when it reported an error. */
function shutDown(dp: Dataplane, log: Logger): number {
  try {
    dp.shutdown();
    return 0;
  } catch (e) {
    log.error(`shutdown: ${errorText(e)}`);
    return 1;
  }
}

/** The relays the configuration names: a socket each (unless dynamic), the static VFs. */
function addConfiguredRelays(c: Config, table: RelayTable, log: Logger): void {
  if (!c.dynamicSockets) {
    let failed = 0;
    const n = table.limits.maxRelays;
    for (let id = 0; id < n; id++) {
      if (attempt(log, `relay ${id}`, () => table.addSocket(id))) failed++;
    }
    if (failed === n) {
      throw new StartupError(`no vhost-user socket could be created in ${c.socketDir} (see the errors above)`);
    }
  }
  for (const s of c.staticVfs) {
    attempt(log, `static VF ${s.device}=${s.relay}`, () => table.addVf(s.relay, s.device));
  }
}

/**
 * What clients talk to: the ZeroMQ services (a failure is a StartupError), the OVSDB or IPC monitor
 * when port control comes from one, the metrics (a failure is logged), and the upgrade socket.
 * A hot upgrade closes them in the old daemon and opens them in the new one.
 */
class DaemonEndpoints {
  readonly #c: Config;
  readonly #accounts: SocketAccounts;
  readonly #table: RelayTable;
  readonly #dp: Dataplane;
  readonly #log: Logger;
  /** Closes what open() opened; null when closed. */
  #closer: (() => Promise<void>) | null = null;
  #upgrade: UpgradeServer | null = null;
  readonly #handedOver = Promise.withResolvers<number>();

  constructor(c: Config, accounts: SocketAccounts, table: RelayTable, dp: Dataplane, log: Logger) {
    this.#c = c;
    this.#accounts = accounts;
    this.#table = table;
    this.#dp = dp;
    this.#log = log;
  }

  /** Resolves with the new daemon's PID once a hot upgrade handed everything to it. */
  get handedOver(): Promise<number> {
    return this.#handedOver.promise;
  }

  /** Opens them; `restore`: the pairings kept from the last run are restored first. */
  open(restore: boolean): void {
    const c = this.#c, table = this.#table, log = this.#log;
    const places = {
      socketDir: c.socketDir,
      allow: c.socketDirsAllow,
      trust: socketDirTrust(this.#accounts, qemuAccount()),
    };
    const view = clientView(c, table, () => this.#upgrade?.busy ?? null);
    const portControl = new PortControl(view, log, places);
    const statsAnswerer = new StatsAnswerer(table, log);
    const keepPairings = c.dynamicSockets ? pairingKeeper(c, table, log) : () => {};
    if (c.dynamicSockets && restore) restorePairings(c, portControl, log);
    keepPairings();
    let control: ControlServer;
    try {
      control = new ControlServer(
        controlServices(c, table, log, portControl, keepPairings, statsAnswerer),
        log,
        c.zmqGroup,
        sharedSocketDir(c.socketDir, this.#accounts),
      );
    } catch (e) {
      throw new StartupError(`${errorText(e)} (does the endpoint's directory exist and is it writable?)`);
    }
    // Port control at run time: ZeroMQ (a service above), or one of the monitors.
    const mode = portControlMode(c);
    const monitor = mode === "ovsdb"
      ? new OvsdbMonitor(view, log, c.ovsdbSock)
      : mode === "ipc"
      ? new IpcMonitor(view, log, c.ipcCmdFile, c.zmqGroup === "" ? null : accountId("group", c.zmqGroup))
      : null;
    monitor?.start();
    const metrics = this.#metrics(statsAnswerer);
    const upgrade = this.#upgradeServer();
    this.#closer = async () => {
      upgrade?.close();
      await metrics?.shutdown();
      await monitor?.stop();
      await control.stop();
    };
  }

  #metrics(statsAnswerer: StatsAnswerer): Deno.HttpServer | null {
    const c = this.#c, log = this.#log;
    if (!c.metricsListen) return null;
    if (endpointReach(`tcp://${c.metricsListen}`) === "remote") {
      log.warn(
        `metrics: ${c.metricsListen} is reachable from the network (VIO4WD_METRICS_LISTEN); 127.0.0.1 keeps it local`,
      );
    }
    try {
      return serveMetrics(
        c.metricsListen,
        this.#table,
        log,
        { version: VERSION, dpdk: this.#dp.dpdkVersion },
        { statsWaiting: () => statsAnswerer.waiting, heapBytes: () => this.#dp.hugepageBytesUsed() },
      );
    } catch (e) {
      log.error(`metrics: cannot listen on ${c.metricsListen}: ${errorText(e)}; metrics are off`);
      return null;
    }
  }

  /** The upgrade socket (root only, beside the PID file); a failure is logged: no hot upgrade. */
  #upgradeServer(): UpgradeServer | null {
    const path = upgradeSocketPath(pidFilePath(this.#c));
    try {
      this.#upgrade = UpgradeServer.listen({
        config: this.#c,
        table: this.#table,
        dp: this.#dp,
        log: this.#log,
        releaseEndpoints: () => this.close(),
        reopenEndpoints: () => this.open(false),
        handedOver: (pid) => {
          const why = notifyServiceManager(`MAINPID=${pid}`);
          if (why) this.#log.warn(`cannot tell systemd the new daemon's PID ${pid}: ${why}`);
          this.#handedOver.resolve(pid);
        },
      }, path);
      return this.#upgrade;
    } catch (e) {
      this.#log.error(`upgrade socket ${path}: ${errorText(e)}; 'vio4wd upgrade' will not reach this daemon`);
      return null;
    }
  }

  /** Closes them all (upgrade socket, metrics, monitor, ZeroMQ); again is nothing. */
  async close(): Promise<void> {
    const close = this.#closer;
    this.#closer = null;
    await close?.();
  }
}

/** Tells systemd and the log that the daemon is ready, with what it serves. */
function announceReady(c: Config, table: RelayTable, dp: Dataplane, log: Logger, notify = true): void {
  const relays = table.list();
  const sockets = relays.filter((r) => r.socket !== null).length;
  const vfs = relays.filter((r) => r.vf !== null).length;
  const mib = (dp.hugepageBytesUsed() / 2 ** 20).toFixed(1);
  // taken over: the old daemon tells systemd this one's PID (only the main PID may notify)
  const notified = notify ? notifyServiceManager(`READY=1\nSTATUS=relaying: ${sockets} socket(s), ${vfs} VF(s)`) : null;
  if (notified) log.warn(`cannot tell systemd the daemon is ready: ${notified}`);
  const pc = portControlSource(c);
  const from = { zmq: pc.from, ipc: `IPC file ${pc.from}`, ovsdb: `OVSDB ${pc.from}` }[pc.mode];
  log.notice(
    `ready: ${sockets} vhost-user socket(s) in ${c.socketDir}, ${vfs} VF(s), ${mib} MiB of hugepages in use, ` +
      `port control: ${from}`,
  );
}

/**
 * One tick of the daemon's loop (every EVENT_POLL_MS): bond supervision, the relays' VMs read from
 * the data path (RelayTable.tick), then the shim's events, logged (and a VF's reset or removal
 * acted on). A full event queue loses log lines only: no state comes from events.
 */
function eventPoller(dp: Dataplane, table: RelayTable, log: Logger): () => void {
  let overflows = 0n;
  return () => {
    dp.superviseBonds();
    try {
      table.tick();
    } catch (e) { // a relay the data plane would not place: logged, the loop and the other relays go on
      log.error(`relay placement: ${errorText(e)}`);
    }
    for (const ev of dp.events()) table.handle(ev);
    const dropped = dp.eventOverflows();
    if (dropped !== overflows) {
      log.warn(
        `the data plane's event queue overflowed: ${dropped - overflows} event(s) dropped, their log lines lost ` +
          "(relay state is read from the data plane, not from events)",
      );
      overflows = dropped;
    }
  };
}

/** Removes a file or directory if it is there. */
function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } catch { /* already gone */ }
}

/**
 * The ZeroMQ services the configuration enables, in the original's start order; the core
 * scheduler needs stats, so enabling it starts stats on the default endpoint if none is set.
 */
/** The relay table as clients reach it: their device strings checked (see clientPorts). */
function clientView(c: Config, table: RelayTable, busy: () => string | null): RelayPorts {
  return clientPorts(table, {
    drivers: c.devargsAllow,
    pci: c.pciAllow,
    socketDir: c.socketDir,
    isVf: isSriovVf,
    untrustedPeerSocket,
  }, busy);
}

export function controlServices(
  c: Config,
  table: RelayTable,
  log: Logger,
  portControl: PortControl,
  pairingsChanged: () => void,
  statsAnswerer: StatsAnswerer,
): Service[] {
  const coreSched = coreSchedEndpoint(c);
  const stats = c.zmqStatsEp || (coreSched ? ORIGINAL_ENDPOINTS.stats : "");
  const services = [
    ...(c.zmqConfigEp ? [configService(c.zmqConfigEp, c, log)] : []),
    ...(stats ? [statsService(stats, table, log, statsAnswerer)] : []),
    ...(c.zmqPortControlEp ? [portControlService(c.zmqPortControlEp, portControl, pairingsChanged)] : []),
    ...(coreSched ? [coreSchedService(coreSched, table, log)] : []),
  ];
  return services.filter((s) => endpointAllowed(s.name, s.endpoint, c.zmqAllowRemote, log));
}

/**
 * Whether a service may listen on `endpoint`: ipc:// always; tcp:// on loopback with a warning
 * (any local user can connect, unauthenticated); any other address only with
 * VIO4WD_ZMQ_ALLOW_REMOTE, and then with a warning at every start.
 */
function endpointAllowed(service: string, endpoint: string, allowRemote: boolean, log: Logger): boolean {
  const reach = endpointReach(endpoint);
  if (reach === "loopback") {
    log.warn(`${service}: ${endpoint} is unauthenticated: every local user can use it (ipc:// limits it to a group)`);
  } else if (reach === "remote" && !allowRemote) {
    log.error(
      `${service}: ${endpoint} not opened: it would let anyone who reaches this address use it, unauthenticated; ` +
        `use ipc:// or loopback, or set VIO4WD_ZMQ_ALLOW_REMOTE=y to accept that`,
    );
    return false;
  } else if (reach === "remote") {
    log.warn(`${service}: ${endpoint} is reachable from the network and unauthenticated (VIO4WD_ZMQ_ALLOW_REMOTE)`);
  }
  return true;
}

/** Every relay with a VF or VM, with its counters, as the SIGUSR1 status line shows them. */
export function relayStatus(relays: RelayReader): Record<string, unknown>[] {
  const counters = relays.counters();
  return relays.list().filter((r) => r.vf !== null || r.vm).map((r) => {
    const s = relays.report(r.id);
    return {
      id: r.id,
      socket: r.socket,
      vf: r.vf,
      vm: r.vm,
      vf_link: s.vfLink,
      cpus: { vf_to_vm: r.cpus[0], vm_to_vf: r.cpus[1] },
      mbufs_in_use: s.mbufsInUse,
      vf_rx_missed: s.vfRxMissed,
      vf_rx_nombuf: s.vfRxNombuf,
      vf_to_vm: counters[r.id].vfToVm,
      vm_to_vf: counters[r.id].vmToVf,
    };
  });
}

/** Logs every relay with a VF or VM, with its counters, as one JSON line. */
export function logStatus(log: Logger, relays: RelayReader): void {
  log.notice(`relay-status ${JSON.stringify(relayStatus(relays), (_k, v) => typeof v === "bigint" ? Number(v) : v)}`);
}

/**
 * Runs the daemon in the foreground until SIGTERM or SIGINT. Returns the exit status.
 */
export async function runDaemon(loaded: LoadedConfig, log = new Logger(loaded.config.logLevel)): Promise<number> {
  // Listeners go in before start-up so that a signal sent as soon as "ready" shows is handled.
  let daemon: RunningDaemon | null = null;
  const { promise: stopped, resolve: stop } = Promise.withResolvers<string>();
  const handlers = [
    ["SIGTERM", () => stop("SIGTERM")],
    ["SIGINT", () => stop("SIGINT")],
    ["SIGHUP", () => log.notice("SIGHUP: logs go to stderr; nothing to reopen")],
    // The original dies on SIGUSR2 without cleaning up; here it is only said.
    ["SIGUSR2", () => log.notice("SIGUSR2: ignored")],
    ["SIGUSR1", () => daemon && logStatus(log, daemon.table)],
  ] as const;
  for (const [sig, fn] of handlers) Deno.addSignalListener(sig, fn);
  try {
    const takeOver = takeOverRequest();
    daemon = takeOver ? await startTakingOver(loaded, log, takeOver) : startDaemon(loaded, log);
    const end = await Promise.race([
      stopped.then((signal) => ({ why: signal, handedOver: false })),
      daemon.handedOver.then((pid) => ({ why: `handed over to PID ${pid}`, handedOver: true })),
    ]);
    log.notice(`${end.why}: stopping`);
    return await daemon.stop(end.handedOver);
  } finally {
    for (const [sig, fn] of handlers) Deno.removeSignalListener(sig, fn);
  }
}
