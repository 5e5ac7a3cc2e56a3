/**
 * `vio4wd port add|remove|add-sock|remove-sock|query-pci`: the original port-control tool's
 * operations and options over the port-control endpoint, plus `--device DEVARGS`.
 *
 * @module
 */

import { configOption, examples } from "./help.ts";
import { isFieldSet, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { object, or } from "@optique/core/constructs";
import { message, text } from "@optique/core/message";
import { multiple, optional } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import { integer, string } from "@optique/core/valueparser";
import { allRelays, request, resolveEndpoint } from "../control/client.ts";
import { meaningOf } from "../control/port_codes.ts";
import { isPciAddress } from "../config/values.ts";
import {
  PortControlRequest_Op as Op,
  PortControlRequestSchema,
  PortControlResponse_Status as Status,
  PortControlResponseSchema,
} from "../control/gen/virtioforwarder_pb.ts";

const OPS = {
  add: Op.ADD,
  remove: Op.REMOVE,
  "add-sock": Op.ADD_SOCK,
  "remove-sock": Op.REMOVE_SOCK,
  "query-pci": Op.QUERY_PCI,
} as const;
type OpName = keyof typeof OPS;

const BRIEF: Record<OpName, string> = {
  add: "Attach a VF (or a bond of several) to relay --virtio-id.",
  remove: "Detach the VF (or bond) of relay --virtio-id (the one it holds when no device is given).",
  "add-sock": "Register --vhost-path with a VF on the first free relay (dynamic sockets).",
  "remove-sock": "Unregister a socket and its VF (by --vhost-path or device).",
  "query-pci": "Print the device paired with --vhost-path.",
};

const EXAMPLES: Record<OpName, string[]> = {
  add: [
    "vio4wd port add --virtio-id 1 --pci-addr 0000:05:08.1",
    "vio4wd port add --virtio-id 2 --device net_tap0,iface=vf2",
  ],
  remove: [
    "vio4wd port remove --virtio-id 1 --pci-addr 0000:05:08.1 --conditional",
    "vio4wd port remove --virtio-id 1",
  ],
  "add-sock": ["vio4wd port add-sock --vhost-path /tmp/vm7.sock --pci-addr 05:08.2"],
  "remove-sock": ["vio4wd port remove-sock --vhost-path /tmp/vm7.sock"],
  "query-pci": ["vio4wd port query-pci --vhost-path /tmp/virtio-forwarder1.sock"],
};

function opCommand<N extends OpName>(name: N) {
  return command(
    name,
    object({
      action: constant("port" as const),
      op: constant(name),
      virtioId: optional(
        option("--virtio-id", integer({ min: 0, max: 2 ** 32 - 1, metavar: "N" }), {
          description: message`Relay id (from 0; the daemon refuses ids beyond its relays).`,
        }),
      ),
      pciAddr: multiple(
        option("--pci-addr", string({ metavar: "ADDR" }), {
          description: message`PCI address dddd:bb:ss.f or bb:ss.f (repeat for a bond).`,
        }),
      ),
      device: multiple(
        option("--device", string({ metavar: "DEVARGS" }), {
          description: message`A non-PCI device as DPDK devargs, e.g. net_tap0,iface=vf0 (repeatable).`,
        }),
      ),
      name: optional(
        option("--name", string({ metavar: "NAME" }), { description: message`Bond name (net_bonding...).` }),
      ),
      mode: optional(
        option("--mode", integer({ min: 0, max: 6 }), { description: message`Bond mode 0-6 (default 1).` }),
      ),
      vhostPath: optional(
        option("--vhost-path", string({ metavar: "PATH" }), { description: message`vhost-user socket path.` }),
      ),
      conditional: optional(
        flag("--conditional", { description: message`Succeed when nothing needs to change (the tool's default: no).` }),
      ),
      zmqEp: optional(
        option("--zmq-ep", "--zmq_ep", string({ metavar: "EP" }), {
          description:
            message`Port-control endpoint (default: the config's, else ipc:///var/run/virtio-forwarder/port_control).`,
        }),
      ),
      statsEp: optional(
        option("--stats-ep", string({ metavar: "EP" }), {
          description:
            message`Stats endpoint, where remove without a device learns the relay's (default: the config's).`,
        }),
      ),
      config: configOption(),
      timeout: optional(
        option("--timeout", integer({ min: 1, max: 600_000, metavar: "MS" }), {
          description: message`How long to wait for the daemon (default 2000 ms).`,
        }),
      ),
      json: optional(flag("--json", { description: message`Print the reply as JSON.` })),
    }),
    {
      brief: [text(BRIEF[name])],
      description: [text(BRIEF[name])],
      footer: examples(...EXAMPLES[name]),
    },
  );
}

const listCommand = command(
  "list",
  object({
    action: constant("port-list" as const),
    all: optional(flag("--all", { description: message`Also relays with a socket and nothing else.` })),
    zmqEp: optional(
      option("--zmq-ep", "--stats-ep", string({ metavar: "EP" }), {
        description: message`Stats endpoint (default: the config's).`,
      }),
    ),
    config: configOption(),
    json: optional(flag("--json", { description: message`One JSON array of relays.` })),
  }),
  {
    brief: message`List the relays' pairings: socket, device, whether the VM is connected.`,
    description:
      message`List each relay that has a device or a connected VM: its socket, its device (PCI address, devargs or bond) and whether its VM is connected. With dynamic sockets these are the pairings port control made (ADD_SOCK), which the daemon restores after a restart.`,
    footer: examples("vio4wd port list", "vio4wd port list --json | jq '.[] | select(.vm_connected | not)'"),
  },
);

/** The `port` command's parser. */
export const portCommand = command(
  "port",
  or(
    opCommand("add"),
    opCommand("remove"),
    opCommand("add-sock"),
    opCommand("remove-sock"),
    opCommand("query-pci"),
    listCommand,
  ),
  {
    brief: message`Add or remove VFs and sockets on the running daemon (ZeroMQ port control).`,
    description:
      message`Add or remove VFs and sockets on the running daemon through its port-control endpoint. Exit 0 on OK, 1 when the daemon answers ERROR, 2 on bad arguments or no answer.`,
  },
);

/** Parsed `port` arguments. */
export interface PortArgs {
  op: OpName;
  virtioId?: number;
  pciAddr: readonly string[];
  device: readonly string[];
  name?: string;
  mode?: number;
  vhostPath?: string;
  conditional?: boolean;
  zmqEp?: string;
  statsEp?: string;
  config?: string;
  timeout?: number;
  json?: boolean;
}

/** `dddd:bb:ss.f` or `bb:ss.f` (hex) -> the wire's PciAddress; throws on anything else. */
export function parsePciAddress(s: string): { domain: number; bus: number; slot: number; function: number } {
  const m = /^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/.exec(s);
  if (!m) throw new Error(`--pci-addr '${s}': expected dddd:bb:ss.f or bb:ss.f (hex), e.g. 0000:05:08.1`);
  return {
    domain: parseInt(m[1] ?? "0", 16),
    bus: parseInt(m[2], 16),
    slot: parseInt(m[3], 16),
    function: Number(m[4]),
  };
}

/** The device relay `id` holds (PCI address, devargs or bond name) as stats reports it, or null. */
async function heldDevice(
  id: number,
  statsEp: string | undefined,
  config: string | undefined,
  timeout: number | undefined,
): Promise<string | null> {
  const endpoint = await resolveEndpoint("stats", statsEp, config);
  return (await allRelays(endpoint, timeout)).find((r) => r.id === id)?.vf?.pciAddrStr || null;
}

/** Parsed `port list` arguments. */
export interface PortListArgs {
  all?: boolean;
  zmqEp?: string;
  config?: string;
  json?: boolean;
}

/** Runs `vio4wd port list`: the relays' pairings from the stats endpoint. */
export async function runPortList(a: PortListArgs): Promise<number> {
  const endpoint = await resolveEndpoint("stats", a.zmqEp, a.config);
  const rows = (await allRelays(endpoint)).map((r) => ({
    relay: r.id,
    socket: r.vhost?.vhostSocketName || null,
    device: r.vf?.pciAddrStr || null,
    vm_connected: r.vmToVf?.internalState === "VIRTIO_READY",
  })).filter((r) => r.device !== null || r.vm_connected || (a.all && r.socket !== null));
  if (a.json) {
    console.log(JSON.stringify(rows));
    return 0;
  }
  const table = [
    ["relay", "socket", "device", "VM"],
    ...rows.map((r) => [
      String(r.relay),
      r.socket ?? "-",
      r.device ?? "-",
      r.vm_connected ? "connected" : "-",
    ]),
  ];
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) console.log(row.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
  return 0;
}

/**
 * A PortControlRequest as the original's tool builds it: `conditional` always sent (false unless
 * asked), a bond's mode only with its name (1 unless given), the other fields when given.
 */
export function portControlRequest(
  op: Op,
  pciAddrs: ReturnType<typeof parsePciAddress>[],
  a: Pick<PortArgs, "virtioId" | "conditional" | "name" | "mode" | "vhostPath"> & { device?: readonly string[] },
): MessageInitShape<typeof PortControlRequestSchema> {
  return {
    op,
    pciAddrs,
    devargs: [...(a.device ?? [])],
    ...(a.virtioId !== undefined ? { virtioId: a.virtioId } : {}),
    conditional: a.conditional === true,
    ...(a.name !== undefined ? { name: a.name, mode: a.mode ?? 1 } : {}),
    ...(a.vhostPath !== undefined ? { vhostPath: a.vhostPath } : {}),
  };
}

/** Runs `vio4wd port ...`; returns the exit status. */
export async function runPort(a: PortArgs): Promise<number> {
  if ((a.op === "add" || a.op === "remove") && a.virtioId === undefined) {
    console.error(`vio4wd port ${a.op}: --virtio-id N is required (the relay); see 'vio4wd port ${a.op} --help'`);
    return 2;
  }
  let pciAddrs;
  try {
    pciAddrs = a.pciAddr.map(parsePciAddress);
  } catch (e) {
    console.error(`vio4wd port: ${(e as Error).message}`);
    return 2;
  }
  let args: PortArgs = a;
  if (a.op === "remove" && pciAddrs.length === 0 && a.device.length === 0 && a.name === undefined) {
    // "detach the relay's VF": the request names a device, so name the one the relay holds
    const held = await heldDevice(a.virtioId!, a.statsEp, a.config, a.timeout);
    if (held !== null && isPciAddress(held)) pciAddrs = [parsePciAddress(held)];
    else if (held !== null && held.startsWith("net_bonding")) args = { ...a, name: held };
    else if (held !== null) args = { ...a, device: [held] };
  }
  const endpoint = await resolveEndpoint("portControl", a.zmqEp, a.config);
  const res = await request(
    endpoint,
    PortControlRequestSchema,
    portControlRequest(OPS[a.op], pciAddrs, args),
    PortControlResponseSchema,
    a.timeout,
  );
  if (a.json) {
    console.log(JSON.stringify(toJson(PortControlResponseSchema, res, { useProtoFieldName: true })));
    return res.status === Status.OK ? 0 : 1;
  }
  if (res.status === Status.OK) {
    if (res.queryString) console.log(res.queryString);
    return 0;
  }
  const F = PortControlResponseSchema.field;
  const hasCode = isFieldSet(res, F.errorCode), hasSource = isFieldSet(res, F.errorCodeSource);
  const lines = ["status: ERROR"];
  if (hasCode) lines.push(`error_code: ${res.errorCode}`);
  if (hasSource) lines.push(`error_code_source: "${res.errorCodeSource}"`);
  console.log(lines.join("\n"));
  // the daemon's own words when it sent them (a vio4wd daemon), else what the code means
  const meaning = isFieldSet(res, F.reason)
    ? res.reason
    : hasCode && hasSource
    ? meaningOf(res.errorCodeSource, res.errorCode)
    : "the request was refused as invalid (see the daemon's log for why)";
  if (meaning) console.error(`vio4wd port ${a.op}: ${meaning}`);
  return 1;
}
