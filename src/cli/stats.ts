/** The wire's "any node" (-1 as uint32): shown as "-". */
const ANY_NODE = 4294967295;

/**
 * `vio4wd stats`: relay counters and rates from the stats endpoint, as a table, the original
 * tool's flat lines, or JSON with the .proto's field names.
 *
 * @module
 */

import { configOption, examples } from "./help.ts";
import { type DescMessage, isFieldSet, type Message, toJson } from "@bufbuild/protobuf";
import { object } from "@optique/core/constructs";
import { message, text } from "@optique/core/message";
import { multiple, optional, withDefault } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import { choice, integer, string } from "@optique/core/valueparser";
import { request, resolveEndpoint } from "../control/client.ts";
import { RATE_WINDOW_MS, STATS_MAX_DELAY_MS } from "../control/stats.ts";
import { hasSteps, STEP_LABELS, stepCyclesPerPkt } from "../dataplane/worker_load.ts";
import {
  type RelayState,
  RelayState_CPUSchema,
  RelayState_VFtoVMSchema as Up,
  RelayState_VMtoVFSchema as Down,
  RelayStateSchema,
  StatsRequestSchema,
  type StatsResponse,
  StatsResponse_Status as Status,
  StatsResponseSchema,
  type WorkerState,
} from "../control/gen/virtioforwarder_pb.ts";

/** The `stats` command's parser. */
export const statsCommand = command(
  "stats",
  object({
    action: constant("stats" as const),
    relay: multiple(
      option("--relay", integer({ min: 0, metavar: "N" }), {
        description: message`Only relay N (repeatable; ids the daemon does not have are skipped).`,
      }),
    ),
    delay: withDefault(
      option("--delay", integer({ min: 0, max: STATS_MAX_DELAY_MS, metavar: "MS" }), {
        description: message`Window the rates are measured over (default ${text(String(RATE_WINDOW_MS))} ms).`,
      }),
      RATE_WINDOW_MS,
    ),
    includeInactive: optional(
      flag("--include-inactive", { description: message`Also relays that are not active (VM and VF both up).` }),
    ),
    watch: optional(
      option("--watch", integer({ min: 1, max: 3600, metavar: "SECS" }), {
        description: message`Repeat every SECS seconds until interrupted.`,
      }),
    ),
    format: withDefault(
      option("--output-format", choice(["table", "flat"] as const), {
        description: message`table (default) or flat: the original tool's relay_N.key=value lines.`,
      }),
      "table" as const,
    ),
    json: optional(flag("--json", { description: message`Print the StatsResponse as JSON (.proto field names).` })),
    zmqEp: optional(
      option("--zmq-ep", "--stats-ep", string({ metavar: "EP" }), {
        description: message`Stats endpoint (default: the config's, else ipc:///var/run/virtio-forwarder/stats).`,
      }),
    ),
    config: configOption(),
  }),
  {
    brief: message`Show relay counters and rates.`,
    description:
      message`Show each relay's packet and byte counters, rates over --delay ms and drops, per direction (VF->VM, VM->VF), from the daemon's stats endpoint.`,
    footer: examples(
      "vio4wd stats",
      "vio4wd stats --include-inactive --relay 0 --relay 1",
      "vio4wd stats --watch 1",
      "vio4wd stats --json | jq '.relay[] | {id, active}'",
      "vio4wd stats --json --delay 1000 | jq '.workers[] | {cpu, busy_share, rx_pkts}'",
    ),
  },
);

/** Parsed `stats` arguments. */
export interface StatsArgs {
  relay: readonly number[];
  delay: number;
  includeInactive?: boolean;
  watch?: number;
  format: "table" | "flat";
  json?: boolean;
  zmqEp?: string;
  config?: string;
}

/** 64-bit fields printed as numbers (protobuf's JSON makes them strings). */
const COUNTER = /^(pkts|bytes|vf_rx)_|^(passes|busy_passes|busy_cycles|idle_cycles|rx_pkts|bursts|long_passes|tsc_hz)$/;

/** The response as JSON with .proto field names and 64-bit counters as numbers. */
export function statsJson(res: StatsResponse): unknown {
  const j = JSON.parse(
    JSON.stringify(toJson(StatsResponseSchema, res, { useProtoFieldName: true })),
    (k, v) => COUNTER.test(k) && typeof v === "string" ? Number(v) : v,
  ) as Record<string, unknown>;
  // protobuf's JSON leaves an empty list out: a script's `.relay[]` would fail with no relay active
  for (const f of StatsResponseSchema.fields) if (f.fieldKind === "list") j[f.name] ??= [];
  return j;
}

/** A field's value when present on the wire, else "-". */
function shown<M extends Message>(schema: DescMessage, msg: M | undefined, key: keyof M & string): string {
  const f = schema.fields.find((x) => x.localName === key);
  return msg && f && isFieldSet(msg, f) ? String(msg[key]) : "-";
}

/** The CPU of a direction, when the relay reports one. */
export function cpuOf(r: RelayState, dir: "vfToVm" | "vmToVf"): number | undefined {
  return r.cpu && isFieldSet(r.cpu, RelayState_CPUSchema.field[dir]) ? r.cpu[dir] : undefined;
}

/** A rate or count with an SI suffix (k, M, G), for tables. */
export const si = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(2)}G`
    : n >= 1e6
    ? `${(n / 1e6).toFixed(2)}M`
    : n >= 1e3
    ? `${(n / 1e3).toFixed(1)}k`
    : n.toFixed(0);

/** A readable table: one line per relay and direction. */
export function statsTable(relays: readonly RelayState[]): string {
  const head = [
    "relay",
    "dir",
    "state",
    "cpu",
    "rx pps",
    "tx pps",
    "tx bps",
    "rx pkts",
    "tx pkts",
    "drop full",
    "drop unconn",
  ];
  const rows = [head];
  for (const r of relays) {
    const u = r.vfToVm!, d = r.vmToVf!;
    const directions = [
      {
        label: "VF->VM",
        state: u.internalState,
        cpu: cpuOf(r, "vfToVm"),
        rates: [u.pktRateRxFromVf, u.pktRateTxToVm, u.byteRateTxToVm * 8],
        counters: (["pktsRxFromVf", "pktsTxToVm", "pktsDroppedVmQueueFull", "pktsDroppedVmNotConnected"] as const)
          .map((k) => shown(Up, u, k)),
      },
      {
        label: "VM->VF",
        state: d.internalState,
        cpu: cpuOf(r, "vmToVf"),
        rates: [d.pktRateRxFromVm, d.pktRateTxToVf, d.byteRateTxToVf * 8],
        counters: (["pktsRxFromVm", "pktsTxToVf", "pktsDroppedVfQueueFull", "pktsDroppedVfNotConnected"] as const)
          .map((k) => shown(Down, d, k)),
      },
    ];
    directions.forEach((x, i) =>
      rows.push([
        i === 0 ? `${r.id}${r.active ? "*" : ""}` : "",
        x.label,
        x.state,
        String(x.cpu ?? "-"),
        ...x.rates.map(si),
        ...x.counters,
      ])
    );
    rows.push([
      "",
      "",
      `VF ${r.vf?.pciAddrStr ?? "-"}  socket ${r.vhost?.vhostSocketName}  NUMA ${
        r.socketId === ANY_NODE ? "-" : r.socketId
      }${
        isFieldSet(r, RelayStateSchema.field.vfRxMissed) ? `  VF missed ${r.vfRxMissed} no-mbuf ${r.vfRxNombuf}` : ""
      }`,
    ]);
  }
  if (relays.length === 0) return "no relays to show (none active; --include-inactive shows every relay)";
  const widths = head.map((_, i) => Math.max(...rows.filter((r) => r.length === head.length).map((r) => r[i].length)));
  return rows.map((r) =>
    r.length === head.length
      ? r.map((c, i) => i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ")
      : r.join("  ")
  ).join("\n") + (relays.some((r) => r.active) ? "\n(* = active: VM connected and VF up)" : "");
}

/** The worker CPUs' loop accounting over the request's window: busy share, cycles per packet. */
export function workersTable(workers: readonly WorkerState[]): string {
  if (workers.length === 0) return "";
  const head = ["worker cpu", "busy", "cycles/pkt", "pkts in", "bursts", "long passes"];
  const rows = [
    head,
    ...workers.map((w) => [
      String(w.cpu),
      w.busyShare === undefined ? "-" : `${(w.busyShare * 100).toFixed(1)}%`,
      w.cyclesPerPkt === undefined ? "-" : w.cyclesPerPkt.toFixed(1),
      si(Number(w.rxPkts)),
      si(Number(w.bursts)),
      String(w.longPasses),
    ]),
  ];
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ")).join(
    "\n",
  ) +
    "\n(busy: share of the worker's cycles in passes that moved packets; cycles/pkt: those cycles per packet taken in)" +
    workerSteps(workers);
}

/** Busy cycles per packet by step since start, for workers of a STEPS=1 shim ("" otherwise). */
function workerSteps(workers: readonly WorkerState[]): string {
  const lines = workers.flatMap((w) => {
    const split = w.steps && hasSteps(w.steps) ? stepCyclesPerPkt({ ...w, steps: w.steps }) : null;
    if (!split) return [];
    const { loop, ...steps } = split;
    const parts = Object.entries(steps).map(([k, v]) =>
      `${STEP_LABELS[k as keyof typeof STEP_LABELS]} ${v.toFixed(1)}`
    );
    return [`cpu ${w.cpu}: ${[...parts, `loop ${loop.toFixed(1)}`].join(", ")}`];
  });
  return lines.length ? `\nbusy cycles per packet by step, since start:\n${lines.join("\n")}` : "";
}

/** The original tool's flat format: relay_<id>.<path>=<value>, for fields present. */
export function statsFlat(relays: readonly RelayState[]): string {
  const out: string[] = [];
  const py = (v: unknown) => typeof v === "boolean" ? (v ? "True" : "False") : String(v);
  for (const r of relays) {
    const j = toJson(StatsResponseSchema.field.relay.message!, r, { useProtoFieldName: true }) as Record<
      string,
      Record<string, unknown>
    >;
    const p = `relay_${r.id}`;
    out.push(`${p}.active=${py(r.active)}`);
    const up = cpuOf(r, "vfToVm"), down = cpuOf(r, "vmToVf");
    if (up !== undefined) out.push(`${p}.cpu.vf_to_vm=${up}`);
    if (down !== undefined) out.push(`${p}.cpu.vm_to_vf=${down}`);
    if (r.vf) out.push(`${p}.vf.pci_addr_str=${r.vf.pciAddrStr}`);
    out.push(`${p}.vhost.vhost_socket_name=${r.vhost?.vhostSocketName}`);
    for (
      const [dir, cpu, keys] of [
        ["vf_to_vm", up, [
          "pkts_rx_from_vf",
          "bytes_rx_from_vf",
          "pkts_tx_to_vm",
          "bytes_tx_to_vm",
          "pkt_rate_rx_from_vf",
          "byte_rate_rx_from_vf",
          "pkt_rate_tx_to_vm",
          "byte_rate_tx_to_vm",
          "pkts_dropped_vm_queue_full",
          "bytes_dropped_vm_queue_full",
          "pkts_dropped_vm_not_connected",
          "bytes_dropped_vm_not_connected",
        ]],
        ["vm_to_vf", down, [
          "pkts_rx_from_vm",
          "bytes_rx_from_vm",
          "pkts_tx_to_vf",
          "bytes_tx_to_vf",
          "pkt_rate_rx_from_vm",
          "byte_rate_rx_from_vm",
          "pkt_rate_tx_to_vf",
          "byte_rate_tx_to_vf",
          "pkts_dropped_vf_queue_full",
          "bytes_dropped_vf_queue_full",
          "pkts_dropped_vf_not_connected",
          "bytes_dropped_vf_not_connected",
        ]],
      ] as const
    ) {
      const d = j[dir] ?? {};
      out.push(`${p}.${dir}.active=${py(d.active ?? false)}`, `${p}.${dir}.internal_state=${d.internal_state}`);
      const q = cpu !== undefined ? `${p}.${dir}.cpu_${cpu}.` : `${p}.${dir}.`;
      for (const k of keys) {
        if (!(k in d)) continue;
        const v = d[k];
        out.push(`${q}${k}=${typeof v === "number" && k.includes("rate") && Number.isInteger(v) ? v.toFixed(1) : v}`);
      }
    }
  }
  return out.join("\n");
}

/** Runs `vio4wd stats`; returns the exit status. */
export async function runStats(a: StatsArgs): Promise<number> {
  const endpoint = await resolveEndpoint("stats", a.zmqEp, a.config);
  const flat = !a.json && a.format === "flat";
  for (;;) {
    const res = await request(
      endpoint,
      StatsRequestSchema,
      // the original's flat format gets the original's reply
      { relay: [...a.relay], includeInactive: a.includeInactive === true, delay: a.delay, includeWorkers: !flat },
      StatsResponseSchema,
      2000 + a.delay,
    );
    if (res.status !== Status.OK) {
      console.error(`vio4wd stats: the daemon answered ${Status[res.status] ?? res.status}`);
      return 1;
    }
    if (a.json) console.log(JSON.stringify(statsJson(res)));
    else {
      const text = flat ? statsFlat(res.relay) : [statsTable(res.relay), workersTable(res.workers)].filter(Boolean)
        .join("\n\n");
      if (a.watch && Deno.stdout.isTerminal()) console.log("\x1b[H\x1b[2J" + new Date().toISOString());
      console.log(text);
    }
    if (!a.watch) return 0;
    await new Promise((r) => setTimeout(r, a.watch! * 1000));
  }
}
