/**
 * Open vSwitch from Debian, started privately in a temp dir (unix sockets only): an
 * `ovsdb-server` with its own database, driven with `ovs-vsctl`/`ovs-ofctl`, and optionally the
 * DPDK datapath (`ovs-vswitchd-dpdk`) in its own network namespace so its bridge ports never
 * appear on the host. Used by the bench (OVS-DPDK as a relay) and the OVSDB monitor tests.
 *
 * @module
 */

import { removeDpdkFiles, stopChild } from "./testpmd.ts";

const SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema";
/** Debian's openvswitch-switch-dpdk installs the DPDK build of ovs-vswitchd here. */
export const OVS_VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: exit ${out.code}: ${dec.decode(out.stderr).trim()}`);
  return dec.decode(out.stdout);
}

async function waitForPath(path: string, what: string, timeoutMs: number, logFile: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      await Deno.stat(path);
      return;
    } catch { /* not yet */ }
    if (Date.now() > end) {
      const log = await Deno.readTextFile(logFile).catch(() => "(no log)");
      throw new Error(`${what}: ${path} did not appear in ${timeoutMs} ms; log:\n${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A private ovsdb-server with a fresh Open_vSwitch database. */
export class OvsDb {
  #child: Deno.ChildProcess | null;

  private constructor(child: Deno.ChildProcess, readonly dir: string) {
    this.#child = child;
  }

  /** Unix socket clients connect to. */
  get socket(): string {
    return `${this.dir}/db.sock`;
  }

  /** PID of ovsdb-server (null once stopped). */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** Creates the database in `dir` (if missing) and starts ovsdb-server on `dir/db.sock`. */
  static async start(dir: string): Promise<OvsDb> {
    const db = `${dir}/conf.db`;
    try {
      await Deno.stat(db);
    } catch {
      await run("ovsdb-tool", ["create", db, SCHEMA]);
    }
    const db0 = new OvsDb(OvsDb.#spawn(dir, db), dir);
    await waitForPath(db0.socket, "ovsdb-server", 10_000, `${dir}/ovsdb-server.log`);
    await db0.vsctl("--no-wait", "init");
    return db0;
  }

  static #spawn(dir: string, db: string): Deno.ChildProcess {
    return new Deno.Command("ovsdb-server", {
      args: [
        db,
        `--remote=punix:${dir}/db.sock`,
        `--unixctl=${dir}/ovsdb-server.ctl`,
        `--pidfile=${dir}/ovsdb-server.pid`,
        `--log-file=${dir}/ovsdb-server.log`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  }

  /** Runs `ovs-vsctl` against this database; returns its stdout. */
  vsctl(...args: string[]): Promise<string> {
    return run("ovs-vsctl", [`--db=unix:${this.socket}`, "--timeout=10", ...args]);
  }

  /** Kills ovsdb-server (SIGKILL: as a crash would) and removes its socket. */
  async kill(): Promise<void> {
    if (!this.#child) return;
    try {
      this.#child.kill("SIGKILL");
    } catch { /* exited */ }
    await this.#child.status;
    this.#child = null;
    await Deno.remove(this.socket).catch(() => {});
  }

  /**
   * Sets the external_ids of the Interface rows named in `ids` in the database file while the
   * server is down (ovsdb-tool transact): changes the monitor meets only when the server is back.
   */
  async setExternalIdsOffline(ids: Record<string, [string, string][]>): Promise<void> {
    if (this.#child) throw new Error("setExternalIdsOffline: ovsdb-server is running (kill() it first)");
    const updates = Object.entries(ids).map(([name, map]) => ({
      op: "update",
      table: "Interface",
      where: [["name", "==", name]],
      row: { external_ids: ["map", map] },
    }));
    await run("ovsdb-tool", ["transact", `${this.dir}/conf.db`, JSON.stringify(["Open_vSwitch", ...updates])]);
  }

  /** Starts ovsdb-server again on the same database and socket. */
  async restart(): Promise<void> {
    await this.kill();
    this.#child = OvsDb.#spawn(this.dir, `${this.dir}/conf.db`);
    await waitForPath(this.socket, "ovsdb-server", 10_000, `${this.dir}/ovsdb-server.log`);
  }

  /** Stops ovsdb-server. */
  async stop(): Promise<void> {
    if (this.#child) await stopChild(this.#child, 5000);
    this.#child = null;
  }
}

/** How OVS-DPDK is set up: CPUs, hugepage memory and DPDK file prefix. */
export interface OvsDpdkOptions {
  /** EAL (non-PMD) lcore mask and the PMD thread mask, as OVS's other_config wants them. */
  lcoreMask: string;
  pmdCpuMask: string;
  memoryMb: number;
  prefix: string;
}

/** ovs-vswitchd with the DPDK datapath, in its own network namespace, on a private OvsDb. */
export class OvsDpdk {
  private constructor(readonly db: OvsDb, readonly options: OvsDpdkOptions, readonly child: Deno.ChildProcess) {}

  /** Starts vswitchd-dpdk with DPDK initialised; vhost-user sockets go into `db.dir`. */
  static async start(db: OvsDb, o: OvsDpdkOptions): Promise<OvsDpdk> {
    await Deno.stat(OVS_VSWITCHD_DPDK).catch(() => {
      throw new Error(`${OVS_VSWITCHD_DPDK} not found: apt-get install openvswitch-switch-dpdk (scripts/setup.sh)`);
    });
    await db.vsctl(
      "--no-wait",
      "set",
      "Open_vSwitch",
      ".",
      "other_config:dpdk-init=true",
      `other_config:dpdk-lcore-mask=${o.lcoreMask}`,
      `other_config:pmd-cpu-mask=${o.pmdCpuMask}`,
      `other_config:dpdk-socket-mem=${o.memoryMb}`,
      `other_config:dpdk-extra=--file-prefix=${o.prefix} --no-pci --no-telemetry`,
    );
    const dir = db.dir;
    // unshare -n: the netdev bridge's internal port is a tap device; keep it off the host.
    const child = new Deno.Command("unshare", {
      args: [
        "--net",
        OVS_VSWITCHD_DPDK,
        `unix:${db.socket}`,
        `--unixctl=${dir}/ovs-vswitchd.ctl`,
        `--pidfile=${dir}/ovs-vswitchd.pid`,
        `--log-file=${dir}/ovs-vswitchd.log`,
      ],
      env: { OVS_RUNDIR: dir, OVS_LOGDIR: dir, OVS_DBDIR: dir },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const ovs = new OvsDpdk(db, o, child);
    try {
      await waitForPath(`${dir}/ovs-vswitchd.ctl`, "ovs-vswitchd-dpdk", 30_000, `${dir}/ovs-vswitchd.log`);
      await ovs.#waitDpdkInitialised();
    } catch (e) {
      await ovs.stop();
      throw e;
    }
    return ovs;
  }

  async #waitDpdkInitialised(): Promise<void> {
    const end = Date.now() + 30_000;
    while ((await this.db.vsctl("get", "Open_vSwitch", ".", "dpdk_initialized")).trim() !== "true") {
      if (Date.now() > end) throw new Error("ovs-vswitchd-dpdk: DPDK not initialised after 30 s");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * A netdev bridge relaying between a dpdkvhostuser port (socket `db.dir/<vhostName>`) and a
   * dpdk port on `devargs`, with two in_port->output flows; returns the vhost-user socket path.
   */
  async addRelay(bridge: string, vhostName: string, dpdkName: string, devargs: string): Promise<string> {
    await this.db.vsctl(
      "add-br",
      bridge,
      "--",
      "set",
      "bridge",
      bridge,
      "datapath_type=netdev",
      "--",
      "add-port",
      bridge,
      vhostName,
      "--",
      "set",
      "Interface",
      vhostName,
      "type=dpdkvhostuser",
      "ofport_request=1",
      "--",
      "add-port",
      bridge,
      dpdkName,
      "--",
      "set",
      "Interface",
      dpdkName,
      "type=dpdk",
      `options:dpdk-devargs=${devargs}`,
      "ofport_request=2",
    );
    const env = { OVS_RUNDIR: this.db.dir };
    await run("ovs-ofctl", ["del-flows", bridge], env);
    await run("ovs-ofctl", ["add-flow", bridge, "in_port=1,actions=output:2"], env);
    await run("ovs-ofctl", ["add-flow", bridge, "in_port=2,actions=output:1"], env);
    const sock = `${this.db.dir}/${vhostName}`;
    await waitForPath(sock, "dpdkvhostuser port", 10_000, `${this.db.dir}/ovs-vswitchd.log`);
    return sock;
  }

  /** Runs `ovs-appctl` against this vswitchd; returns its stdout. */
  appctl(...args: string[]): Promise<string> {
    return run("ovs-appctl", [`--target=${this.db.dir}/ovs-vswitchd.ctl`, ...args]);
  }

  /**
   * The PMD threads' processing cycles and packets received, summed (`dpif-netdev/pmd-stats-show`,
   * cumulative): OVS's own accounting of cycles per packet.
   */
  async pmdCycles(): Promise<{ cycles: number; pkts: number }> {
    const text = await this.appctl("dpif-netdev/pmd-stats-show");
    const sum = (re: RegExp) => [...text.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0);
    return { cycles: sum(/^\s*processing cycles:\s*(\d+)/gm), pkts: sum(/^\s*packets received:\s*(\d+)/gm) };
  }

  /** Stops vswitchd and removes its DPDK files. */
  async stop(): Promise<void> {
    await stopChild(this.child, 5000);
    removeDpdkFiles(this.options.prefix);
  }
}
