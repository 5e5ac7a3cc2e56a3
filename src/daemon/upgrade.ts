/**
 * Hot upgrade (docs/hot-upgrade.md): a new daemon takes the running relays over without the VMs
 * noticing. The old daemon's side ({@link UpgradeServer}: `vio4wd upgrade` asks it on its
 * root-only upgrade socket; it starts the new program and hands it one relay after another) and
 * the new daemon's ({@link takeRelaysOver}).
 *
 * The shim moves the vhost-user sockets (QEMU's connections, the listening socket, the replay
 * record and the rings' positions) over a second, root-only socket of the new daemon's; this
 * channel carries what TypeScript owns: the relays' pairings and counters, and the steps.
 *
 * @module
 */

import type { Config } from "../config/config.ts";
import type { Dataplane, RelayCounters } from "../dataplane/dataplane.ts";
import type { RelayTable } from "../relays/table.ts";
import { errorText, type Logger } from "../common/log.ts";
import { Channel, field, type Message, upgradeSocketPath } from "./upgrade_channel.ts";

export { upgradeSocketPath };

/** The environment variable that tells a new daemon where to take over from: `<socket> <token>`. */
export const TAKE_OVER_ENV = "VIO4WD_TAKE_OVER";
/** The replay record's format; both daemons must speak the same (the shim checks it again). */
export const HANDOVER_FORMAT = "V4WDHO01";
/** How long a relay's steps may wait for the other daemon's answer. */
const STEP_MS = 10_000;
/** rte_vhost (22.11) takes in sockets registered meanwhile only at its next poll round, 1 s apart. */
const VHOST_ROUND_MS = 1100;

/** A relay as it is handed over: its pairing. */
export interface RelayPairing {
  id: number;
  socket: string | null;
  vf: string | null;
  bond: { mode: number; members: string[] } | null;
}

/** What one relay's handover took. */
export interface RelayGap {
  relay: number;
  /** From its rings stopped in the old daemon to their running in the new, the VF's move included. */
  gapMs: number;
  /** The VF closed by the old daemon and opened by the new (a real VF's reset is most of it). */
  vfMs: number;
  /** Of which closing it in the old daemon. */
  vfCloseMs: number;
}

/** The answer `vio4wd upgrade` gets. */
export interface UpgradeResult {
  ok: boolean;
  /** Why not, when not ok. */
  error?: string;
  pid?: number;
  version?: string;
  filePrefix?: string;
  relays?: RelayGap[];
  totalMs?: number;
}

/** What the old daemon lends the upgrade. */
export interface UpgradeHost {
  config: Config;
  table: RelayTable;
  dp: Dataplane;
  log: Logger;
  /** Closes the endpoints clients talk to, so that the new daemon can open them. */
  releaseEndpoints(): Promise<void>;
  /** Opens them again: the upgrade failed after they were released. */
  reopenEndpoints(): void;
  /** The upgrade is done: the daemon exits 0, leaving what it handed over alone. */
  handedOver(newPid: number): void;
}

/** The DPDK file prefix the next daemon uses: the configured one and `<it>-next` alternate. */
export function nextFilePrefix(current: string): string {
  return current.endsWith("-next") ? current.slice(0, -"-next".length) : `${current}-next`;
}

const ms = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;

/**
 * Whether two processes can hold the relay's VF at once, so that the new daemon opens it before
 * the old one lets go: an AF_PACKET socket on an interface (each gets a copy of what arrives; the
 * old daemon's stopped copy drops it) and net_null. A PCI VF, a tap (its interface goes with its
 * owner), memif (one peer per socket) and bonds are closed by the old daemon first.
 */
export function shareableVf(r: RelayPairing): boolean {
  return r.vf !== null && r.bond === null && /^net_(af_packet|null)\w*(,|$)/.test(r.vf);
}

/**
 * The old daemon's side: listens on the upgrade socket (0600, root) for `vio4wd upgrade` and, while
 * an upgrade runs, for the new daemon it started.
 */
export class UpgradeServer {
  readonly #host: UpgradeHost;
  readonly #listener: Deno.Listener;
  readonly path: string;
  /** What the running upgrade waits for: the new daemon's connection, with its token. */
  #waiting: { token: string; arrive: (c: Channel) => void } | null = null;
  #running = false;

  private constructor(host: UpgradeHost, listener: Deno.Listener, path: string) {
    this.#host = host;
    this.#listener = listener;
    this.path = path;
    this.#accept();
  }

  /** Listens on `path` (a socket left there is replaced; anything else is refused). */
  static listen(host: UpgradeHost, path: string): UpgradeServer {
    try {
      if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
    } catch { /* none */ }
    const listener = Deno.listen({ transport: "unix", path });
    Deno.chmodSync(path, 0o600);
    return new UpgradeServer(host, listener, path);
  }

  /** Why port control must wait now, or null. */
  get busy(): string | null {
    return this.#running ? "the relays are being handed to a new daemon (vio4wd upgrade); try again in a moment" : null;
  }

  close(): void {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    try {
      Deno.removeSync(this.path);
    } catch { /* gone */ }
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.UnixConn;
      try {
        conn = await this.#listener.accept() as Deno.UnixConn;
      } catch {
        return; // closed
      }
      this.#serve(new Channel(conn)).catch((e) => this.#host.log.error(`upgrade socket: ${errorText(e)}`));
    }
  }

  async #serve(ch: Channel): Promise<void> {
    const m = await ch.receive(5000);
    const takeOver = field(m, "takeOver");
    if (takeOver) {
      if (this.#waiting && takeOver.token === this.#waiting.token) this.#waiting.arrive(ch);
      else {
        await ch.send({ refused: "no upgrade is waiting for this daemon" });
        ch.close();
      }
      return;
    }
    const ask = field(m, "upgrade");
    if (!ask) {
      await ch.send({ result: { ok: false, error: "not an upgrade request" } });
      ch.close();
      return;
    }
    const result = await this.upgrade(
      typeof ask.program === "string" ? ask.program : null,
      typeof ask.timeoutMs === "number" && ask.timeoutMs > 0 ? ask.timeoutMs : 60_000,
      (text) => void ch.send({ progress: text }),
    );
    await ch.send({ result });
    ch.close();
  }

  /**
   * Runs one upgrade: refusals first, then the new program started and every relay handed to it.
   * Whatever fails before the end leaves every relay running here.
   */
  async upgrade(program: string | null, timeoutMs: number, progress: (text: string) => void): Promise<UpgradeResult> {
    const { log } = this.#host;
    if (this.#running) return { ok: false, error: "an upgrade is already running" };
    const refusal = this.#refusal();
    if (refusal) {
      log.warn(`upgrade refused: ${refusal}`);
      return { ok: false, error: refusal };
    }
    // deno-lint-ignore no-control-regex
    if (program !== null && !/^\/[^\x00-\x1f\x7f]*$/.test(program)) {
      return { ok: false, error: "--program must be an absolute path without control characters" };
    }
    const exe = program ?? selfProgram();
    if (exe === null) {
      return { ok: false, error: "which program to start is not known (VIO4WD_SELF unset): give --program" };
    }
    this.#running = true;
    try {
      return await new Handover(this.#host, exe, timeoutMs, progress, this).run();
    } finally {
      this.#running = false;
      this.#waiting = null;
    }
  }

  /** Why no upgrade may start now: a relay that cannot be handed over. */
  #refusal(): string | null {
    for (const r of this.#host.table.list()) {
      if (r.socket === null) continue;
      const why = this.#host.dp.handoverRefusal(r.id);
      if (why) return `relay ${r.id} (${r.socket}): ${why}; try again when it is over (no restart was done)`;
    }
    return null;
  }

  /** Waits for the new daemon's connection bearing `token`. */
  expect(token: string): Promise<Channel> {
    return new Promise((arrive) => this.#waiting = { token, arrive });
  }
}

/** One upgrade in the old daemon. */
class Handover {
  readonly #host: UpgradeHost;
  readonly #exe: string;
  readonly #deadline: number;
  readonly #progress: (text: string) => void;
  readonly #server: UpgradeServer;
  #child: Deno.ChildProcess | null = null;
  #exited: Promise<Deno.CommandStatus> | null = null;
  #ch: Channel | null = null;
  /** Relays the new daemon runs. */
  readonly #handed: RelayPairing[] = [];
  #released = false;
  #prefix = "";
  /** The new daemon's handover socket. */
  #handover = "";

  constructor(host: UpgradeHost, exe: string, timeoutMs: number, progress: (t: string) => void, server: UpgradeServer) {
    this.#host = host;
    this.#exe = exe;
    this.#deadline = performance.now() + timeoutMs;
    this.#progress = (t) => {
      host.log.notice(`upgrade: ${t}`);
      progress(t);
    };
    this.#server = server;
  }

  async run(): Promise<UpgradeResult> {
    const t0 = performance.now();
    try {
      const relays = this.#pairings(); // what the new daemon is told; port control waits meanwhile
      const ch = await this.#start(relays);
      const gaps: RelayGap[] = [];
      for (const r of relays) gaps.push(await this.#handOver(ch, r));
      await this.#host.releaseEndpoints();
      this.#released = true;
      await ch.send({ released: {} });
      const done = field(await this.#answer(ch), "done");
      if (!done) throw new Error("the new daemon did not open its endpoints");
      const pid = this.#child!.pid;
      const result: UpgradeResult = {
        ok: true,
        pid,
        version: String(done.version ?? ""),
        filePrefix: this.#prefix,
        relays: gaps,
        totalMs: ms(t0),
      };
      const worst = gaps.reduce((m, g) => Math.max(m, g.gapMs), 0);
      this.#progress(
        `done in ${result.totalMs} ms: ${gaps.length} relay(s) run in PID ${pid} (longest gap ${worst} ms); ` +
          "this daemon exits",
      );
      this.#host.handedOver(pid);
      return result;
    } catch (e) {
      const why = errorText(e);
      await this.#rollBack(why);
      return { ok: false, error: why };
    }
  }

  /** Starts the new program and waits until it says it is ready to take relays. */
  async #start(relays: RelayPairing[]): Promise<Channel> {
    const c = this.#host.config;
    const token = crypto.randomUUID();
    this.#prefix = nextFilePrefix(c.ealFilePrefix);
    const arrived = this.#server.expect(token);
    this.#progress(`starting ${this.#exe} daemon (DPDK file prefix ${this.#prefix})`);
    this.#child = new Deno.Command(this.#exe, {
      args: Deno.args,
      env: { [TAKE_OVER_ENV]: `${this.#server.path} ${token}`, VIO4WD_TAKE_OVER_PREFIX: this.#prefix },
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    this.#exited = this.#child.status;
    const ch = await this.#race(arrived, "the new daemon did not connect");
    this.#ch = ch;
    await ch.send({ welcome: { relays } });
    const ready = field(await this.#answer(ch), "ready");
    if (!ready) throw new Error("the new daemon did not get ready");
    if (ready.format !== HANDOVER_FORMAT) {
      throw new Error(`the new daemon speaks replay record format ${ready.format}, this one ${HANDOVER_FORMAT}`);
    }
    if (typeof ready.handover !== "string") throw new Error("the new daemon named no handover socket");
    this.#handover = ready.handover;
    this.#progress(`new daemon ${ready.version} (PID ${this.#child.pid}) ready`);
    return ch;
  }

  /** Resolves `p`, unless the deadline passes or the new daemon exits first. */
  async #race<T>(p: Promise<T>, what: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} in time`)), Math.max(0, this.#deadline - performance.now()));
    });
    const died = this.#exited!.then((st) => {
      throw new Error(`${what}: it exited with status ${st.code}${st.signal ? ` (${st.signal})` : ""}`);
    });
    try {
      return await Promise.race([p, late, died]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The new daemon's next message; a refusal or failure it reports is thrown. */
  async #answer(ch: Channel): Promise<Message> {
    const m = await this.#race(
      ch.receive(Math.max(1, Math.min(STEP_MS, this.#deadline - performance.now()))),
      "the new daemon did not answer",
    );
    if (m === null) throw new Error("the new daemon went away");
    const failed = field(m, "failed");
    if (failed) throw new Error(`the new daemon: relay ${failed.id}: ${failed.why}`);
    if (typeof m.refused === "string") throw new Error(`the new daemon refused: ${m.refused}`);
    return m;
  }

  #pairings(): RelayPairing[] {
    return this.#host.table.list().filter((r) => r.socket !== null || r.vf !== null).map((r) => ({
      id: r.id,
      socket: r.socket,
      vf: r.vf,
      bond: r.bond ? { mode: r.bond.mode, members: [...r.bond.members] } : null,
    }));
  }

  /**
   * Steps 3.1-3.6 for one relay. A VF that two processes can hold at once (see
   * {@link shareableVf}) is opened by the new daemon first and closed here only once the relay runs
   * there: its opening is out of the gap. Any other VF is closed here, then opened there, inside it.
   */
  async #handOver(ch: Channel, r: RelayPairing): Promise<RelayGap> {
    const { dp, table } = this.#host;
    const shared = shareableVf(r);
    let vfMs = 0, vfCloseMs = 0;
    if (shared) {
      await ch.send({ open: r });
      const opened = field(await this.#answer(ch), "opened");
      if (!opened || opened.id !== r.id) throw new Error(`relay ${r.id}: the new daemon did not open VF ${r.vf}`);
    }
    const t0 = performance.now();
    if (r.socket !== null) await this.#quiesce(r.id);
    try {
      if (r.vf !== null && !shared) {
        table.removeVf(r.id);
        vfMs = vfCloseMs = ms(t0);
      }
      const counters: RelayCounters = table.counters()[r.id];
      await ch.send({ take: { ...r, counters } });
      const taking = field(await this.#answer(ch), "taking");
      if (!taking || taking.id !== r.id) throw new Error(`relay ${r.id}: the new daemon did not take it`);
      vfMs += typeof taking.vfMs === "number" ? taking.vfMs : 0;
    } catch (e) {
      if (r.socket !== null) dp.handoverResume(r.id);
      this.#reattachVf(r);
      throw e;
    }
    if (r.socket !== null) {
      const why = await dp.handoverSend(r.id, this.#handover);
      if (why) { // the shim took the relay's sockets back
        this.#reattachVf(r);
        const told = field(await ch.receive(1000), "failed"); // the new daemon's reason, if it says it
        throw new Error(`relay ${r.id}: ${why}${told ? ` (the new daemon: ${told.why})` : ""}`);
      }
    }
    this.#handed.push(r);
    const running = field(await this.#answer(ch), "running");
    if (!running || running.id !== r.id) throw new Error(`relay ${r.id}: the new daemon did not say it runs it`);
    const gap = { relay: r.id, gapMs: ms(t0), vfMs: Math.round(vfMs * 10) / 10, vfCloseMs };
    if (r.socket !== null) table.removeSocket(r.id); // its door holds nothing: nothing is closed or removed
    if (shared) table.removeVf(r.id); // stopped since its VM left here; the new daemon's copy relays
    this.#progress(`relay ${r.id} runs in the new daemon (gap ${gap.gapMs} ms, VF ${gap.vfMs} ms)`);
    return gap;
  }

  /** Stops the relay's rings to hand them over; an exchange with the VM in flight is waited for (1 s). */
  async #quiesce(id: number): Promise<void> {
    for (let tries = 0;; tries++) {
      const why = this.#host.dp.handoverQuiesce(id);
      if (why === null) return;
      if (why !== "busy" || tries === 100) throw new Error(`relay ${id}: ${why}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  #reattachVf(r: RelayPairing): void {
    const { table, log } = this.#host;
    if (r.vf === null || table.get(r.id).vf !== null) return;
    const why = openVf(table, r);
    if (why) log.error(`upgrade: relay ${r.id}: cannot take its VF back: ${why}`);
  }

  /**
   * The upgrade failed: the new daemon is ended; relays it already ran come back here as after a
   * restart (QEMU reconnects: the socket served again, the VF opened again); the others never
   * left. The endpoints are opened again if they were released.
   */
  async #rollBack(why: string): Promise<void> {
    const { log, table } = this.#host;
    log.error(`upgrade failed: ${why}; relays stay in this daemon`);
    this.#ch?.close();
    if (this.#child) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited */ }
      await this.#exited;
      try {
        Deno.removeSync(`/var/run/dpdk/${this.#prefix}`, { recursive: true });
      } catch { /* none */ }
    }
    for (const r of this.#handed) {
      try {
        if (r.socket !== null) table.addSocket(r.id, r.socket);
        this.#reattachVf(r);
        log.warn(`upgrade: relay ${r.id} had moved to the new daemon: served here again (its VM reconnects)`);
      } catch (e) {
        log.error(`upgrade: relay ${r.id}: cannot serve ${r.socket} again: ${errorText(e)}`);
      }
    }
    if (this.#released) this.#host.reopenEndpoints();
  }
}

/**
 * The program this daemon was started as, as installed now: what its launcher says (VIO4WD_SELF:
 * ./vio4wd, the package's /usr/bin/vio4wd, the self-extracting dist/vio4wd), or the executable
 * itself when it is a `deno compile` one; null when neither.
 */
function selfProgram(): string | null {
  const self = Deno.env.get("VIO4WD_SELF");
  if (self) return self;
  const exe = Deno.execPath();
  return /\/deno$/.test(exe) ? null : exe;
}

/** What the new daemon lends the take-over. */
export interface Successor {
  table: RelayTable;
  dp: Dataplane;
  log: Logger;
  /** Opens the endpoints, writes the PID file; the daemon's version. */
  openEndpoints(): Promise<string>;
}

/** The take-over the environment asks for: the old daemon's upgrade socket and token, or null. */
export function takeOverRequest(): { path: string; token: string; prefix: string } | null {
  const spec = Deno.env.get(TAKE_OVER_ENV);
  if (!spec) return null;
  const prefix = Deno.env.get("VIO4WD_TAKE_OVER_PREFIX") ?? "";
  Deno.env.delete(TAKE_OVER_ENV); // not for the daemon's own children
  Deno.env.delete("VIO4WD_TAKE_OVER_PREFIX");
  const [path, token] = spec.split(" ");
  return path && token && prefix ? { path, token, prefix } : null;
}

/** The new daemon's first step: connects to the old one; the relays it will hand over. */
export async function greet(
  req: { path: string; token: string },
  version: string,
): Promise<{ ch: Channel; relays: RelayPairing[] }> {
  const ch = await Channel.connect(req.path);
  await ch.send({ takeOver: { token: req.token, pid: Deno.pid, version } });
  const welcome = field(await ch.receive(STEP_MS), "welcome");
  if (!welcome || !Array.isArray(welcome.relays)) throw new Error("the running daemon sent no relay list");
  return { ch, relays: welcome.relays as RelayPairing[] };
}

/**
 * The new daemon's side, DPDK up: registers the relays' sockets to adopt, says it is ready and
 * takes each relay the old daemon hands over; once the old one released its endpoints, opens
 * them. Throws when the old daemon goes away first (this daemon then exits: the relays it took
 * fall back to QEMU's reconnect).
 */
export async function takeRelaysOver(
  s: Successor,
  ch: Channel,
  relays: RelayPairing[],
  handoverPath: string,
  version: string,
): Promise<void> {
  const { table, dp, log } = s;
  dp.handoverListen(handoverPath);
  for (const r of relays) if (r.socket !== null) table.addSocket(r.id, r.socket, true);
  await new Promise((r) => setTimeout(r, VHOST_ROUND_MS));
  await ch.send({ ready: { format: HANDOVER_FORMAT, handover: handoverPath, version, pid: Deno.pid } });
  for (;;) {
    const m = await ch.receive();
    if (m === null) throw new Error("the running daemon went away during the upgrade");
    const open = field(m, "open");
    if (open) {
      const r = open as unknown as RelayPairing;
      const t0 = performance.now();
      const why = openVf(table, r);
      await ch.send(why ? { failed: { id: r.id, why } } : { opened: { id: r.id, ms: ms(t0) } });
      continue;
    }
    const take = field(m, "take");
    if (take) {
      await takeRelay(s, ch, take as unknown as RelayPairing & { counters: RelayCounters });
      continue;
    }
    if (field(m, "released")) {
      const v = await s.openEndpoints();
      await ch.send({ done: { version: v, pid: Deno.pid } });
      ch.close();
      log.notice(`upgrade: took over ${relays.length} relay(s)`);
      return;
    }
  }
}

/** Opens the relay's VF (or bond) in `table`, as paired; why not, or null. Both daemons' one way. */
function openVf(table: RelayTable, r: RelayPairing): string | null {
  try {
    if (r.vf !== null && r.bond) table.addBond(r.id, r.vf, r.bond.mode, r.bond.members);
    else if (r.vf !== null) table.addVf(r.id, r.vf);
    return null;
  } catch (e) {
    return `VF ${r.vf}: ${errorText(e)}`;
  }
}

/** One relay: its VF opened, its counters continued, its sockets adopted; the old daemon told. */
async function takeRelay(
  s: Successor,
  ch: Channel,
  r: RelayPairing & { counters: RelayCounters },
): Promise<void> {
  const { table, dp } = s;
  const t0 = performance.now();
  const failed = r.vf !== null && table.get(r.id).vf === null ? openVf(table, r) : null; // not opened beforehand
  if (failed) {
    await ch.send({ failed: { id: r.id, why: failed } });
    return;
  }
  const vfMs = ms(t0);
  // a VF opened beside the old daemon's got copies of what that one relayed meanwhile
  if (shareableVf(r)) dp.flushVfAtStart(r.id);
  dp.continueCounters(r.id, r.counters);
  const adopted = r.socket !== null ? dp.handoverAdopt(r.id, STEP_MS) : Promise.resolve(null);
  await ch.send({ taking: { id: r.id, vfMs } });
  const why = await adopted;
  if (why !== null) {
    if (r.vf !== null) table.removeVf(r.id); // the old daemon takes it back
    await ch.send({ failed: { id: r.id, why } });
    return;
  }
  await ch.send({ running: { id: r.id } });
}
