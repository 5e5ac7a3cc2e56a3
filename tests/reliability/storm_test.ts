/**
 * Port storm: random port-control operations (ADD, REMOVE, ADD_SOCK, REMOVE_SOCK; valid and
 * invalid) against a daemon with dynamic sockets while relay 0 carries traffic. Every operation is
 * answered; the relay table `vio4wd stats --json` shows is the one a model built from the replies
 * alone says it must be (TableModel); the Prometheus metrics and the socket directory agree
 * throughout; relay 0 keeps forwarding; once everything is removed again no socket file is left and
 * hugepage use is back to where it was.
 */

import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  PortControlRequest_Op as Op,
  PortControlRequestSchema,
  PortControlResponse_Status as Status,
  PortControlResponseSchema,
} from "../../src/control/gen/virtioforwarder_pb.ts";
import { ZmqContext } from "../../ffi/zmq.ts";
import { hugepageFiles } from "../rigs/testpmd.ts";
import { num, type RelayState, runVio4wd } from "../rigs/daemon_process.ts";
import { memifPair, virtioUser } from "../rigs/devices.ts";
import { World } from "../rigs/world.ts";
import { Rng, SEED, sized, summary } from "./common.ts";
import { Requester } from "../../src/control/client.ts";

const OPS = sized(1_000, 10_000);
const CHECK_EVERY = sized(250, 1_000);

type Req = MessageInitShape<typeof PortControlRequestSchema>;

/** A random operation: mostly on net_null VFs and sockets in the socket directory, some invalid. */
function randomOp(rng: Rng, dir: string): Req {
  const dev = () => rng.next() < 0.1 ? `net_bogus${rng.int(4)}` : `net_null${1 + rng.int(40)}`;
  const path = () => rng.next() < 0.1 ? `${dir}/elsewhere/s${rng.int(4)}.sock` : `${dir}/sock/s${rng.int(80)}.sock`;
  const id = 1 + rng.int(70); // relay 0 carries the traffic and is never touched; 64-70 are invalid
  const conditional = rng.next() < 0.5;
  switch (rng.int(4)) {
    case 0:
      return { op: Op.ADD, virtioId: id, devargs: [dev()], conditional };
    case 1:
      return { op: Op.REMOVE, virtioId: id, devargs: [dev()], conditional };
    case 2:
      return { op: Op.ADD_SOCK, vhostPath: path(), devargs: [dev()], conditional };
    default:
      return rng.next() < 0.7
        ? { op: Op.REMOVE_SOCK, vhostPath: path(), conditional }
        : { op: Op.REMOVE_SOCK, devargs: [dev()], conditional };
  }
}

interface StatsRelay {
  id: number;
  vhost?: { vhost_socket_name?: string };
  vf?: { pci_addr_str?: string };
}

/** relay id -> VF, from the metrics' vio4wd_relay_info series. */
async function metricsVfs(url: string): Promise<Map<number, string>> {
  const text = await (await fetch(url)).text();
  const out = new Map<number, string>();
  for (const m of text.matchAll(/^vio4wd_relay_info\{relay="(\d+)",socket="[^"]*",vf="([^"]*)"/gm)) {
    if (m[2] !== "") out.set(Number(m[1]), m[2]);
  }
  return out;
}

/** Stats, metrics and the socket directory agree; returns the sockets and VFs (id -> name) stats reports. */
async function checkConsistent(metricsUrl: string, dir: string, when: string) {
  const out = await runVio4wd(["stats", "--json", "--include-inactive", "--zmq-ep", `ipc://${dir}/zmq/stats`]);
  if (out.code !== 0) throw new Error(`${when}: vio4wd stats --json: ${out.stderr}`);
  const relays: StatsRelay[] = JSON.parse(out.stdout).relay;
  const sockets = new Map<number, string>(), vfs = new Map<number, string>();
  const named = (s: string | undefined) => s !== undefined && s !== "" && s !== "NONE"; // the original's "none"
  for (const r of relays) {
    if (named(r.vhost?.vhost_socket_name)) sockets.set(r.id, r.vhost!.vhost_socket_name!);
    if (named(r.vf?.pci_addr_str)) vfs.set(r.id, r.vf!.pci_addr_str!);
  }
  const problems: string[] = [];
  const fromMetrics = await metricsVfs(metricsUrl);
  for (const id of new Set([...vfs.keys(), ...fromMetrics.keys()])) {
    if (fromMetrics.get(id) !== vfs.get(id)) {
      problems.push(`relay ${id}: metrics VF ${fromMetrics.get(id)}, stats VF ${vfs.get(id)}`);
    }
  }
  const files = [...Deno.readDirSync(`${dir}/sock`)].filter((e) => !e.name.startsWith(WIRE_PREFIX))
    .map((e) => `${dir}/sock/${e.name}`).sort();
  const listed = [...sockets.values()].sort();
  if (files.join() !== listed.join()) problems.push(`socket files [${files}] but stats lists [${listed}]`);
  if (problems.length) throw new Error(`${when}: ${problems.join("; ")}`);
  return { sockets, vfs };
}

/**
 * The relay table as the replies say it must be, from the port-control rules alone: ADD and
 * REMOVE set or clear a relay's VF; ADD_SOCK pairs its socket and device on the first relay with
 * neither; REMOVE_SOCK frees the relay with that socket (or device), socket and VF, and answers
 * "no device" (4) when it removed a socket that had none. A refusal changes nothing.
 */
class TableModel {
  readonly relays = new Map<number, { socket?: string; vf?: string }>();

  constructor(fixed: number[]) {
    for (const id of fixed) this.relays.set(id, { socket: "(fixed)", vf: "(fixed)" });
  }

  #at(id: number) {
    let r = this.relays.get(id);
    if (!r) this.relays.set(id, r = {});
    return r;
  }

  apply(req: Req, ok: boolean, code: number | undefined): void {
    const dev = req.devargs?.[0];
    if (req.op === Op.ADD && ok) this.#at(req.virtioId!).vf = dev;
    else if (req.op === Op.REMOVE && ok) delete this.#at(req.virtioId!).vf;
    else if (req.op === Op.ADD_SOCK && ok) {
      let id = 0;
      while (this.relays.get(id)?.socket !== undefined || this.relays.get(id)?.vf !== undefined) id++;
      Object.assign(this.#at(id), { socket: req.vhostPath, vf: dev });
    } else if (req.op === Op.REMOVE_SOCK && (ok || code === 4)) {
      const hit = [...this.relays.values()].find((r) =>
        r.socket !== undefined && (req.vhostPath !== undefined ? r.socket === req.vhostPath : r.vf === dev)
      );
      if (hit) {
        delete hit.socket;
        delete hit.vf;
      }
    }
  }

  /** What the model and the daemon's stats disagree on (relays other than the fixed ones). */
  differences(sockets: Map<number, string>, vfs: Map<number, string>): string[] {
    const out: string[] = [];
    for (const id of new Set([...this.relays.keys(), ...sockets.keys(), ...vfs.keys()])) {
      const m = this.relays.get(id) ?? {};
      if (m.socket === "(fixed)") continue;
      if ((m.socket ?? "") !== (sockets.get(id) ?? "") || (m.vf ?? "") !== (vfs.get(id) ?? "")) {
        out.push(
          `relay ${id}: replies say ${JSON.stringify(m)}, stats say socket ${sockets.get(id)} VF ${vfs.get(id)}`,
        );
      }
    }
    return out;
  }
}

/** VF->VM packets received but neither sent nor counted as dropped. */
const unaccountedUp = (r: RelayState) =>
  num(r.vfToVm.pktsRxFromVf) - num(r.vfToVm.pktsTxToVm) - num(r.vfToVm.pktsDroppedVmQueueFull) -
  num(r.vfToVm.pktsDroppedVmNotConnected);
/** VM->VF packets received but neither sent nor counted as dropped. */
const unaccountedDown = (r: RelayState) =>
  num(r.vmToVf.pktsRxFromVm) - num(r.vmToVf.pktsTxToVf) - num(r.vmToVf.pktsDroppedVfQueueFull) -
  num(r.vmToVf.pktsDroppedVfNotConnected);

/** The memif VF's socket shares the socket directory (clients' paths must lie there): not a vhost socket. */
const WIRE_PREFIX = "wire-";

Deno.test(`port storm: ${OPS} random add/remove/add_sock/remove_sock ops under traffic, the table = what the replies said = stats = metrics, no leaks`, async () => {
  await using w = await World.create("storm");
  const dir = w.dir;
  const d = await w.daemon([
    "VIRTIOFWD_DYNAMIC_SOCKETS=y",
    `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${dir}/zmq/port_control`,
    `VIRTIOFWD_ZMQ_STATS_EP=ipc://${dir}/zmq/stats`,
    "VIO4WD_METRICS_LISTEN=127.0.0.1:0",
  ]);
  const metrics = await d.metricsUrl();
  const ctx = new ZmqContext();
  w.defer(() => ctx.close());
  const pc = new Requester(ctx, `ipc://${dir}/zmq/port_control`, 10_000);
  const ask = async (req: Req) => {
    const reply = await pc.ask(toBinary(PortControlRequestSchema, create(PortControlRequestSchema, req)));
    return reply === null ? null : fromBinary(PortControlResponseSchema, reply);
  };
  // relay 0: a socket paired with a memif VF, looped through one testpmd (VM and VF peer)
  const sock0 = w.vmSocket(0);
  const wire = memifPair(`${w.sockDir}/${WIRE_PREFIX}vf0.sock`); // clients' paths lie in the socket directory
  const first = await ask({ op: Op.ADD_SOCK, vhostPath: sock0, devargs: [`${wire.vf},socket-abstract=no`] });
  if (first?.status !== Status.OK) throw new Error(`relay 0 ADD_SOCK: ${JSON.stringify(first)}`);
  const pmd = await w.testpmd({ vdevs: [virtioUser(sock0), `${wire.peer},socket-abstract=no`] });
  await pmd.waitLinksUp();
  await pmd.send("start tx_first");
  await checkConsistent(metrics, dir, "before the storm");
  const hugeBaseline = hugepageFiles(d.prefix).length;
  const before = (await d.status()).find((r) => r.id === 0)!;

  const rng = new Rng(SEED);
  const model = new TableModel([0]);
  const agrees = async (when: string) => {
    const { sockets, vfs } = await checkConsistent(metrics, dir, when);
    const diff = model.differences(sockets, vfs);
    if (diff.length) {
      throw new Error(`${when}: the table is not what the replies said (seed ${SEED}): ${diff.join("; ")}`);
    }
  };
  let ok = 0, refused = 0, unanswered = 0, checks = 0;
  const t0 = performance.now();
  for (let i = 1; i <= OPS; i++) {
    const req = randomOp(rng, dir);
    const r = await ask(req);
    if (r === null) unanswered++;
    else if (r.status === Status.OK) ok++;
    else refused++;
    if (r !== null) model.apply(req, r.status === Status.OK, r.errorCode);
    if (i % CHECK_EVERY === 0) {
      await agrees(`after op ${i}`);
      checks++;
    }
  }
  const stormSecs = (performance.now() - t0) / 1000;
  const during = (await d.status()).find((r) => r.id === 0)!;

  // remove everything but relay 0, then look for leftovers
  const { sockets, vfs } = await checkConsistent(metrics, dir, "after the storm");
  for (const [id, path] of sockets) if (id !== 0) await ask({ op: Op.REMOVE_SOCK, vhostPath: path });
  for (const [id, vf] of vfs) if (id !== 0) await ask({ op: Op.REMOVE, virtioId: id, devargs: [vf] });
  const left = await checkConsistent(metrics, dir, "after removing everything");
  const leakedSockets = [...left.sockets.keys()].filter((id) => id !== 0).length;
  const leakedVfs = [...left.vfs.keys()].filter((id) => id !== 0).length;
  const leakedHugepageFiles = hugepageFiles(d.prefix).length - hugeBaseline;
  const ports = await pmd.stop();
  const after = (await d.status()).find((r) => r.id === 0)!;
  const unaccounted = [unaccountedUp(after), unaccountedDown(after)];
  summary("storm", {
    ops: OPS,
    ok,
    refused,
    unanswered,
    consistency_checks: checks,
    relay0_pkts_during: num(during.vmToVf.pktsTxToVf) - num(before.vmToVf.pktsTxToVf),
    relay0_unaccounted: unaccounted.join("/"),
    leaked_sockets: leakedSockets,
    leaked_vfs: leakedVfs,
    leaked_hugepage_files: leakedHugepageFiles,
    crashes: d.log.includes("Uncaught") ? 1 : 0,
    ops_per_sec: (OPS / stormSecs).toFixed(0),
  });
  if (unanswered) throw new Error(`${unanswered} operations unanswered`);
  if (ok < OPS / 20 || refused < OPS / 20) {
    throw new Error(`a storm of ${ok} OK / ${refused} refused is too one-sided`);
  }
  if (
    !(num(during.vmToVf.pktsTxToVf) > num(before.vmToVf.pktsTxToVf) &&
      num(during.vfToVm.pktsTxToVm) > num(before.vfToVm.pktsTxToVm))
  ) {
    throw new Error(`relay 0 stopped forwarding during the storm: ${JSON.stringify({ before, during })}`);
  }
  if (unaccounted.some((n) => n !== 0)) throw new Error(`relay 0 packets unaccounted: ${unaccounted}`);
  if (ports[0].rxPackets === 0) throw new Error("the VM stand-in received nothing");
  if (leakedSockets || leakedVfs || leakedHugepageFiles > 0) {
    throw new Error(`leaks: ${leakedSockets} sockets, ${leakedVfs} VFs, ${leakedHugepageFiles} hugepage files`);
  }
});
