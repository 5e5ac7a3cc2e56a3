/**
 * The port-control service: PortControlRequest in, PortControlResponse out, with the original's
 * validation, operations and error codes (error_code = the failing function's return value,
 * error_code_source = its name), applied to the relay table.
 *
 * @module
 */

import { create, fromBinary, isFieldSet, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { isPciAddress, MAX_RELAYS, normalizePci } from "../config/values.ts";
import { DataplaneError, VF_ATTACH_STAGE } from "../dataplane/dataplane.ts";
import { RelayError, type RelayTable } from "../daemon/relays.ts";
import {
  type PortControlRequest,
  PortControlRequest_Op as Op,
  type PortControlRequest_PciAddress,
  PortControlRequestSchema,
  PortControlResponse_Status as Status,
  PortControlResponseSchema,
} from "./gen/virtioforwarder_pb.ts";
import { missingRequired } from "./proto_check.ts";
import type { Service } from "./server.ts";

/** The original's request buffer: 256 B + 8 PCI addresses of 16 B. */
export const PORT_CONTROL_MAX_REQUEST = 384;
/** Bond members the original accepts. */
const MAX_BOND_MEMBERS = 8;

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
const sameDevice = (a: string | null, b: string) => a !== null && (isPciAddress(b) ? a === normalizePci(b) : a === b);

const opName = (op: number) =>
  op === Op.ADD ? "ADD" : op === Op.REMOVE ? "REMOVE" : `Virtioforwarder__PortControlRequest__Op(${op})`;

/** Human-readable reason for a validation failure, or null when the request is valid. */
export function validatePortControl(req: PortControlRequest): string | null {
  const n = req.pciAddrs.length + req.devargs.length;
  const named = nameOf(req) !== undefined;
  if (named && (req.op === Op.ADD || req.op === Op.ADD_SOCK) && n < 2) {
    return "Bond add operations require multiple PCI devices.";
  }
  if (!named && n > 1) return "Bond port operations require an interface name.";
  if (n > MAX_BOND_MEMBERS) return `at most ${MAX_BOND_MEMBERS} devices per bond`;
  if ((req.op === Op.ADD || req.op === Op.REMOVE) && virtioIdOf(req) === undefined) {
    return `${opName(req.op)} requires virtio_id`;
  }
  if (req.op === Op.QUERY_PCI && vhostPathOf(req) === undefined) return "QUERY_PCI requires vhost_path";
  if (!(req.op in Op) || typeof Op[req.op] !== "string") return `unknown op ${req.op}`;
  return null;
}

/** The port-control operations over a relay table. */
export class PortControl {
  constructor(readonly table: RelayTable) {}

  /** Applies a validated request. */
  apply(req: PortControlRequest): Outcome | null {
    const devices = devicesOf(req);
    const name = nameOf(req);
    const device = devices.length === 1 ? devices[0] : name ?? "";
    switch (req.op) {
      case Op.ADD:
        if (devices.length === 0) {
          this.table.log.warn("PortControlRequest ADD: Invalid number of VFs");
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
        const r = this.table.relays.find((x) => x.socket === vhostPathOf(req));
        return r
          ? { code: 0, source: "virtio_query_pci()", query: r.vf ?? "" }
          : { code: 2, source: "virtio_query_pci()" };
      }
    }
    return null;
  }

  /** virtio_forwarder_bond_add(): 0, 1 bad id, 8 busy, 2 create, 3 member in use, 4 configure, 5 member, 6 start. */
  #addBond(id: number, name: string, mode: number, devices: string[]): Outcome {
    const source = "virtio_forwarder_bond_add()";
    if (id >= MAX_RELAYS) return { code: 1, source };
    if (this.table.relays[id].vf !== null) return { code: 8, source };
    const code = this.#attempt(
      `relay ${id}: add bond ${name}`,
      () => this.table.addBond(id, name, mode, devices),
      bondCode,
    );
    return { code, source };
  }

  /** virtio_forwarder_add_vf2(): 0, 1 bad id, 8 busy, 2 probe, 4 configure, 5 RX, 6 TX, -1 pool. */
  #addVf(id: number, device: string, conditional: boolean): Outcome {
    const source = "virtio_forwarder_add_vf2()";
    if (id >= MAX_RELAYS) return { code: 1, source };
    const r = this.table.relays[id];
    if (sameDevice(r.vf, device) && conditional) {
      this.table.log.info(`relay ${id}: VF ${device} already there, no action required`);
      return { code: 0, source };
    }
    if (r.vf !== null) return { code: 8, source };
    return { code: this.#attempt(`relay ${id}: add VF ${device}`, () => this.table.addVf(id, device)), source };
  }

  /** virtio_forwarder_remove_vf2(): 0, 1 bad id, 3 other device, 4 none (unconditional), 2 detach. */
  #removeVf(id: number, device: string, conditional: boolean): Outcome {
    const source = "virtio_forwarder_remove_vf2()";
    if (id >= MAX_RELAYS) return { code: 1, source };
    const r = this.table.relays[id];
    if (r.vf === null) return { code: conditional ? 0 : 4, source };
    if (!sameDevice(r.vf, device)) return { code: 3, source };
    const code = this.#attempt(`relay ${id}: remove VF ${device}`, () => this.table.removeVf(id));
    return { code: code === 0 ? 0 : 2, source };
  }

  /** virtio_add_sock_dev_pair(): -1 no path, -17 device in use, 1 path in use, 2 no free relay, 3 VF, 5 socket. */
  #addSock(req: PortControlRequest, devices: string[]): Outcome {
    const source = "virtio_add_sock_dev_pair()";
    const path = vhostPathOf(req);
    if (virtioIdOf(req) !== undefined) {
      this.table.log.warn("ADD_SOCK: virtio_id is ignored (the first free relay is used)");
    }
    if (path === undefined) return { code: -1, source };
    const name = nameOf(req);
    const device = devices.length === 1 ? devices[0] : name ?? "";
    if (this.table.relays.some((r) => sameDevice(r.vf, device))) return { code: -17, source };
    if (this.table.relays.some((r) => r.socket === path)) return { code: 1, source };
    const dir = this.table.config.socketDir.replace(/\/+$/, "");
    if (!path.startsWith(dir + "/") || path.slice(dir.length + 1).includes("/") || path.includes("\0")) {
      this.table.log.error(`ADD_SOCK: ${path} is not a file directly inside the socket directory ${dir}`);
      return { code: 5, source };
    }
    const r = this.table.relays.find((x) => x.socket === null && x.vf === null && !x.vm);
    if (!r) return { code: 2, source };
    if (devices.length === 1) {
      if (this.#attempt(`relay ${r.id}: add VF ${device}`, () => this.table.addVf(r.id, device)) !== 0) {
        return { code: 3, source };
      }
    } else if (
      name === undefined ||
      this.#attempt(`relay ${r.id}: add bond ${name}`, () => this.table.addBond(r.id, name, modeOf(req), devices)) !== 0
    ) {
      return { code: 4, source };
    }
    if (this.#attempt(`relay ${r.id}: add socket ${path}`, () => this.table.addSocket(r.id, path)) !== 0) {
      this.#attempt(`relay ${r.id}: undo VF ${device}`, () => this.table.removeVf(r.id));
      return { code: 5, source };
    }
    this.table.log.info(`relay ${r.id}: socket ${path} paired with ${device}`);
    return { code: 0, source };
  }

  /** virtio_remove_sock_dev_pair(): -1 nothing given, 1 not found, 2 other device, 3 socket, 4 VF. */
  #removeSock(path: string | undefined, device: string, conditional: boolean): Outcome {
    const source = "virtio_remove_sock_dev_pair()";
    if (path === undefined && device === "") return { code: -1, source };
    const r = path !== undefined
      ? this.table.relays.find((x) => x.socket === path)
      : this.table.relays.find((x) => x.socket !== null && sameDevice(x.vf, device));
    if (!r) return { code: 1, source };
    if (device !== "" && !sameDevice(r.vf, device)) return { code: 2, source };
    if (this.#attempt(`relay ${r.id}: remove socket`, () => this.table.removeSocket(r.id)) !== 0) {
      return { code: 3, source };
    }
    if (r.vf === null) return { code: conditional ? 0 : 4, source };
    return { code: this.#attempt(`relay ${r.id}: remove VF`, () => this.table.removeVf(r.id)) === 0 ? 0 : 4, source };
  }

  /** Runs a table operation; returns 0 or the original's code for the failure, logging why. */
  #attempt(what: string, fn: () => void, code: (e: DataplaneError | RelayError) => number = vfCode): number {
    try {
      fn();
      return 0;
    } catch (e) {
      if (e instanceof DataplaneError || e instanceof RelayError) {
        this.table.log.error(`${what}: ${e.message}`);
        return code(e);
      }
      throw e;
    }
  }
}

/** virtio_forwarder_add_vf2()'s code for a failure. */
function vfCode(e: DataplaneError | RelayError): number {
  if (e instanceof RelayError) return 2;
  switch (e.stage) {
    case VF_ATTACH_STAGE.probe:
      return 2;
    case VF_ATTACH_STAGE.info:
      return -e.errno;
    case VF_ATTACH_STAGE.pool:
      return -1;
    case VF_ATTACH_STAGE.configure:
      return 4;
    case VF_ATTACH_STAGE.rxq:
      return 5;
    case VF_ATTACH_STAGE.txq:
      return 6;
    default:
      return 1;
  }
}

/** virtio_forwarder_bond_add()'s code for a failure. */
function bondCode(e: DataplaneError | RelayError): number {
  if (e instanceof RelayError) return 3; // a member is in another bond
  switch (e.stage) {
    case VF_ATTACH_STAGE.bond:
      return 2;
    case VF_ATTACH_STAGE.member:
      return e.errno === 17 ? 3 : 5;
    case VF_ATTACH_STAGE.configure:
    case VF_ATTACH_STAGE.rxq:
    case VF_ATTACH_STAGE.txq:
      return 4;
    case VF_ATTACH_STAGE.pool:
      return -1;
    default:
      return 6;
  }
}

function encode(r: MessageInitShape<typeof PortControlResponseSchema>): Uint8Array {
  return toBinary(PortControlResponseSchema, create(PortControlResponseSchema, { status: Status.ERROR, ...r }));
}

/** The port-control ZeroMQ service. */
export function portControlService(endpoint: string, table: RelayTable): Service {
  const pc = new PortControl(table);
  const log = table.log;
  return {
    name: "zmq_port_control",
    endpoint,
    maxRequestBytes: PORT_CONTROL_MAX_REQUEST,
    errorReply: () => encode({}),
    handle(bytes) {
      let req: PortControlRequest;
      try {
        req = fromBinary(PortControlRequestSchema, bytes);
      } catch (e) {
        log.warn(`zmq_port_control: undecodable request (${bytes.length} B): ${e instanceof Error ? e.message : e}`);
        return encode({});
      }
      const missing = missingRequired(PortControlRequestSchema, req);
      if (missing) {
        log.warn(`zmq_port_control: request without required field ${missing}`);
        return encode({});
      }
      const devs = devicesOf(req);
      log.info(
        `PortControlRequest: [op=${opName(req.op)}, num_VFs=${devs.length}, pci_addrs=<${
          devs.map((d) => d + " ").join("")
        }>, virtio_id=${virtioIdOf(req) ?? "-"}]`,
      );
      const invalid = validatePortControl(req);
      if (invalid) {
        log.warn(`zmq_port_control: ${invalid}`);
        return encode({});
      }
      const out = pc.apply(req);
      if (!out) return encode({});
      if (out.code === 0) {
        return encode({ status: Status.OK, ...(out.query !== undefined ? { queryString: out.query } : {}) });
      }
      return encode({ errorCode: out.code, errorCodeSource: out.source });
    },
  };
}
