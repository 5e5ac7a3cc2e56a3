/**
 * The port-control service: PortControlRequest in, PortControlResponse out, with the original's
 * validation, operations and error codes (error_code = the failing function's return value,
 * error_code_source = its name, from port_codes.ts), applied through the relay table's port view.
 *
 * @module
 */

import { ERRNO } from "../../ffi/errno.ts";
import { ClientDeviceRefused } from "../relays/client_ports.ts";
import { create, isFieldSet, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "../common/log.ts";
import { VF_ATTACH_STAGE } from "../dataplane/dataplane.ts";
import { attempt, normalizeDevice, RelayError, type RelayFailure, type RelayPorts } from "../relays/table.ts";
import { ADD_BOND, ADD_SOCK, ADD_VF, QUERY_PCI, REMOVE_SOCK, REMOVE_VF } from "./port_codes.ts";
import {
  type PortControlRequest,
  PortControlRequest_Op as Op,
  type PortControlRequest_PciAddress,
  PortControlRequestSchema,
  PortControlResponse_Status as Status,
  PortControlResponseSchema,
} from "./gen/virtioforwarder_pb.ts";
import { decodeRequest } from "./proto_check.ts";
import type { Service } from "./server.ts";
import { socketPathRefusal, type SocketPlaces } from "../host/trusted_dir.ts";
import type { Pairing } from "../relays/pairings.ts";

/** The original's request buffer: 256 B + 8 PCI addresses of 16 B. */
export const PORT_CONTROL_MAX_REQUEST = 384;

/** One operation's outcome: the function return value (0 = OK) and its name. */
interface Outcome {
  code: number;
  source: string;
  query?: string;
}

/** `%04X:%02X:%02X.%X`, as the original formats addresses it receives. */
export function formatPciAddress(a: PortControlRequest_PciAddress): string {
  const h = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, "0");
  return `${h(a.domain, 4)}:${h(a.bus, 2)}:${h(a.slot, 2)}.${h(a.function, 1)}`;
}

/** proto2 presence: protobuf-es reads an absent optional field as its default, not undefined. */
const F = PortControlRequestSchema.field;
const virtioIdOf = (req: PortControlRequest) => isFieldSet(req, F.virtioId) ? req.virtioId : undefined;
const nameOf = (req: PortControlRequest) => isFieldSet(req, F.name) ? req.name : undefined;
const vhostPathOf = (req: PortControlRequest) => isFieldSet(req, F.vhostPath) ? req.vhostPath : undefined;
/** Bond mode: as sent, else 1 (active-backup), as the original. */
const modeOf = (req: PortControlRequest) => isFieldSet(req, F.mode) ? req.mode : 1;

/** Devices of a request: PCI addresses (as the original formats them), then our devargs field. */
function devicesOf(req: PortControlRequest): string[] {
  return [...req.pciAddrs.map(formatPciAddress), ...req.devargs];
}

/** Device strings compare as the relay table stores them (PCI addresses case-insensitively). */
const sameDevice = (a: string | null, b: string) => a !== null && a === normalizeDevice(b);

/** The op's name (the original printed only ADD and REMOVE by name, the others as `...Op(N)`). */
const opName = (op: number) => typeof Op[op] === "string" ? Op[op] : `Op(${op})`;

/** Human-readable reason for a validation failure, or null when the request is valid. */
export function validatePortControl(req: PortControlRequest, maxBondMembers: number): string | null {
  const n = req.pciAddrs.length + req.devargs.length;
  const named = nameOf(req) !== undefined;
  if (named && (req.op === Op.ADD || req.op === Op.ADD_SOCK) && n < 2) {
    return "Bond add operations require multiple PCI devices.";
  }
  if (!named && n > 1) return "Bond port operations require an interface name.";
  if (n > maxBondMembers) return `at most ${maxBondMembers} devices per bond`;
  if ((req.op === Op.ADD || req.op === Op.REMOVE) && virtioIdOf(req) === undefined) {
    return `${opName(req.op)} requires virtio_id`;
  }
  if (req.op === Op.QUERY_PCI && vhostPathOf(req) === undefined) return "QUERY_PCI requires vhost_path";
  if (!(req.op in Op) || typeof Op[req.op] !== "string") return `unknown op ${req.op}`;
  return null;
}

/** The port-control operations over the relay table's port view. */
export class PortControl {
  constructor(readonly ports: RelayPorts, readonly log: Logger, readonly places: SocketPlaces) {}

  /** Applies a validated request. */
  apply(req: PortControlRequest): Outcome | null {
    const devices = devicesOf(req);
    const name = nameOf(req);
    const device = devices.length === 1 ? devices[0] : name ?? "";
    switch (req.op) {
      case Op.ADD:
        if (devices.length === 0) {
          this.log.warn("PortControlRequest ADD: Invalid number of VFs");
          return null;
        }
        return devices.length === 1
          ? this.#addVf(req.virtioId, device, req.conditional)
          : this.#addBond(req.virtioId, name!, modeOf(req), devices);
      case Op.REMOVE:
        return this.#removeVf(req.virtioId, device, req.conditional);
      case Op.ADD_SOCK:
        return this.#addSock(req, devices);
      case Op.REMOVE_SOCK:
        return this.#removeSock(vhostPathOf(req), device, req.conditional);
      case Op.QUERY_PCI: {
        const r = this.ports.findBySocket(vhostPathOf(req)!);
        return r
          ? { code: QUERY_PCI.code.ok, source: QUERY_PCI.source, query: r.vf ?? "" }
          : { code: QUERY_PCI.code.notFound, source: QUERY_PCI.source };
      }
    }
    return null;
  }

  /**
   * Pairs `p` (from the state file) again on its own relay by ADD_SOCK's rules: the socket path
   * and device are checked as a client's are. In client mode a socket that is gone means the VM
   * is not running: the pairing is dropped (its VM's next plug adds it again). Returns why the
   * pairing was not restored, or null.
   */
  restore(p: Pairing, clientMode: boolean): string | null {
    const refused = socketPathRefusal(p.socket, this.places);
    if (refused !== null) return refused;
    if (clientMode) {
      try {
        if (!Deno.lstatSync(p.socket).isSocket) return `${p.socket} is not a socket`;
      } catch {
        return `the socket ${p.socket} is gone (its VM is not running)`;
      }
    }
    if (!this.#inRange(p.relay)) return `relay ${p.relay} is beyond the daemon's ${this.ports.limits.maxRelays} relays`;
    const r = this.ports.get(p.relay);
    if (r.socket !== null || r.vf !== null) return `relay ${p.relay} is in use already`;
    if (this.ports.findBySocket(p.socket)) return `${p.socket} is on another relay already`;
    const what = `relay ${p.relay}: restore ${p.bond ? "bond" : "VF"} ${p.device}`;
    const failed = attempt(
      this.log,
      what,
      () =>
        p.bond
          ? this.ports.addBond(p.relay, p.device, p.bond.mode, p.bond.members)
          : this.ports.addVf(p.relay, p.device),
    );
    if (failed) return `the device ${p.device} could not be attached: ${failed.message}`;
    const noSocket = attempt(
      this.log,
      `relay ${p.relay}: restore socket ${p.socket}`,
      () => this.ports.addSocket(p.relay, p.socket),
    );
    if (noSocket) {
      attempt(this.log, `relay ${p.relay}: undo ${p.device}`, () => this.ports.removeVf(p.relay));
      return `the socket could not be registered: ${noSocket.message}`;
    }
    return null;
  }

  #inRange(id: number): boolean {
    return id < this.ports.limits.maxRelays;
  }

  #addBond(id: number, name: string, mode: number, devices: string[]): Outcome {
    const { source, code } = ADD_BOND;
    if (!this.#inRange(id)) return { code: code.badId, source };
    if (this.ports.get(id).vf !== null) return { code: code.busy, source };
    const failed = attempt(
      this.log,
      `relay ${id}: add bond ${name}`,
      () => this.ports.addBond(id, name, mode, devices),
    );
    return { code: failed ? bondCode(failed) : code.ok, source };
  }

  #addVf(id: number, device: string, conditional: boolean): Outcome {
    const { source, code } = ADD_VF;
    if (!this.#inRange(id)) return { code: code.badId, source };
    const r = this.ports.get(id);
    if (sameDevice(r.vf, device) && conditional) {
      this.log.info(`relay ${id}: VF ${device} already there, no action required`);
      return { code: code.ok, source };
    }
    if (r.vf !== null) return { code: code.busy, source };
    const failed = attempt(this.log, `relay ${id}: add VF ${device}`, () => this.ports.addVf(id, device));
    return { code: failed ? vfCode(failed) : code.ok, source };
  }

  #removeVf(id: number, device: string, conditional: boolean): Outcome {
    const { source, code } = REMOVE_VF;
    if (!this.#inRange(id)) return { code: code.badId, source };
    const r = this.ports.get(id);
    if (r.vf === null) return { code: conditional ? code.ok : code.noDevice, source };
    if (!sameDevice(r.vf, device)) return { code: code.otherDevice, source };
    const failed = attempt(this.log, `relay ${id}: remove VF ${device}`, () => this.ports.removeVf(id));
    return { code: failed ? code.detach : code.ok, source };
  }

  #addSock(req: PortControlRequest, devices: string[]): Outcome {
    const { source, code } = ADD_SOCK;
    const path = vhostPathOf(req);
    if (virtioIdOf(req) !== undefined) {
      this.log.warn("ADD_SOCK: virtio_id is ignored (the first free relay is used)");
    }
    if (path === undefined) return { code: code.noPath, source };
    const name = nameOf(req);
    const device = devices.length === 1 ? devices[0] : name ?? "";
    if (device !== "" && this.ports.findByDevice(device)) return { code: code.deviceInUse, source };
    if (this.ports.findBySocket(path)) return { code: code.pathInUse, source };
    const refused = socketPathRefusal(path, this.places);
    if (refused !== null) {
      this.log.error(`ADD_SOCK ${path} refused: ${refused}`);
      return { code: code.socket, source };
    }
    const r = this.ports.list().find((x) => x.socket === null && x.vf === null && !x.vm);
    if (!r) return { code: code.noFreeRelay, source };
    if (devices.length === 1) {
      if (attempt(this.log, `relay ${r.id}: add VF ${device}`, () => this.ports.addVf(r.id, device))) {
        return { code: code.vf, source };
      }
    } else if (
      name === undefined ||
      attempt(this.log, `relay ${r.id}: add bond ${name}`, () => this.ports.addBond(r.id, name, modeOf(req), devices))
    ) {
      return { code: code.bond, source };
    }
    if (attempt(this.log, `relay ${r.id}: add socket ${path}`, () => this.ports.addSocket(r.id, path))) {
      attempt(this.log, `relay ${r.id}: undo VF ${device}`, () => this.ports.removeVf(r.id));
      return { code: code.socket, source };
    }
    this.log.info(`relay ${r.id}: socket ${path} paired with ${device}`);
    return { code: code.ok, source };
  }

  #removeSock(path: string | undefined, device: string, conditional: boolean): Outcome {
    const { source, code } = REMOVE_SOCK;
    if (path === undefined && device === "") return { code: code.nothingGiven, source };
    const r = path !== undefined
      ? this.ports.findBySocket(path)
      : this.ports.list().find((x) => x.socket !== null && sameDevice(x.vf, device));
    if (!r) return { code: code.notFound, source };
    if (device !== "" && !sameDevice(r.vf, device)) return { code: code.otherDevice, source };
    if (attempt(this.log, `relay ${r.id}: remove socket`, () => this.ports.removeSocket(r.id))) {
      return { code: code.socket, source };
    }
    if (r.vf === null) return { code: conditional ? code.ok : code.noDevice, source };
    const failed = attempt(this.log, `relay ${r.id}: remove VF`, () => this.ports.removeVf(r.id));
    return { code: failed ? code.noDevice : code.ok, source };
  }
}

/** virtio_forwarder_add_vf2()'s code for a failure (the original returns -errno from device info). */
function vfCode(e: RelayFailure): number {
  const c = ADD_VF.code;
  if (e instanceof RelayError) return c.probe;
  switch (e.stage) {
    case VF_ATTACH_STAGE.probe:
      return c.probe;
    case VF_ATTACH_STAGE.info:
      return -e.errno;
    case VF_ATTACH_STAGE.pool:
      return c.pool;
    case VF_ATTACH_STAGE.configure:
      return c.configure;
    case VF_ATTACH_STAGE.rxq:
      return c.rxq;
    case VF_ATTACH_STAGE.txq:
      return c.txq;
    default:
      return c.badId;
  }
}

/** virtio_forwarder_bond_add()'s code for a failure. */
function bondCode(e: RelayFailure): number {
  const c = ADD_BOND.code;
  // refused for a client: what the original answers when that name or member fails in DPDK
  if (e instanceof ClientDeviceRefused) return e.what === "bond name" ? c.create : c.member;
  if (e instanceof RelayError) return c.memberInUse; // a member is in another bond
  switch (e.stage) {
    case VF_ATTACH_STAGE.bond:
      return c.create;
    case VF_ATTACH_STAGE.member:
      return e.errno === ERRNO.EEXIST ? c.memberInUse : c.member;
    case VF_ATTACH_STAGE.configure:
    case VF_ATTACH_STAGE.rxq:
    case VF_ATTACH_STAGE.txq:
      return c.configure;
    case VF_ATTACH_STAGE.pool:
      return c.pool;
    default:
      return c.start;
  }
}

/** The reply's reason: what the daemon logged, at most 1000 characters. */
const boundedReason = (problems: string[]) => {
  const all = problems.join("; ");
  return all.length > 1000 ? `${all.slice(0, 997)}...` : all;
};

function encode(r: MessageInitShape<typeof PortControlResponseSchema>): Uint8Array {
  return toBinary(PortControlResponseSchema, create(PortControlResponseSchema, { status: Status.ERROR, ...r }));
}

/** The port-control ZeroMQ service. */
export function portControlService(
  endpoint: string,
  pc: PortControl,
  /** Called after every operation that changed a relay (the daemon keeps the pairings). */
  changed: () => void = () => {},
): Service {
  const { ports, log } = pc;
  return {
    name: "zmq_port_control",
    endpoint,
    maxRequestBytes: PORT_CONTROL_MAX_REQUEST,
    errorReply: () => encode({}),
    handle(bytes) {
      const req = decodeRequest(PortControlRequestSchema, bytes, "zmq_port_control", log);
      if (!req) return encode({});
      const devs = devicesOf(req);
      log.info(
        `PortControlRequest: [op=${opName(req.op)}, num_VFs=${devs.length}, pci_addrs=<${
          devs.map((d) => d + " ").join("")
        }>, virtio_id=${virtioIdOf(req) ?? "-"}]`,
      );
      const invalid = validatePortControl(req, ports.limits.maxBondMembers);
      if (invalid) {
        log.warn(`zmq_port_control: ${invalid}`);
        return encode({ reason: invalid });
      }
      const { value: out, problems } = log.capture(() => pc.apply(req));
      const reason = problems.length ? { reason: boundedReason(problems) } : {};
      if (!out) return encode(reason);
      if (req.op !== Op.QUERY_PCI) changed(); // a failure may have changed something half-way
      if (out.code === 0) {
        return encode({ status: Status.OK, ...(out.query !== undefined ? { queryString: out.query } : {}) });
      }
      return encode({ errorCode: out.code, errorCodeSource: out.source, ...reason });
    },
  };
}
