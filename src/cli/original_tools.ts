/**
 * The original's five Python clients, as vio4wd runs them: `vio4wd original-tool NAME ARGS...`,
 * which the launchers at the original's paths (`/usr/lib/virtio-forwarder/` and
 * `/usr/lib64/virtio-forwarder/virtioforwarder_*.py`, the latter hard-coded by OpenStack's os-vif)
 * exec. Each takes the tool's command line as Python's argparse reads it (`--opt=value` and
 * `--opt value`, unique prefixes, `-h`), prints what the tool prints and exits with its status:
 * 2 for bad arguments (argparse), 1 for a refusal or no answer (the tool's traceback), else 0.
 *
 * @module
 */

import { RATE_WINDOW_MS } from "../control/stats.ts";
import {
  create,
  type DescField,
  type DescMessage,
  fromBinary,
  isFieldSet,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { request, requestRaw, resolveEndpoint } from "../control/client.ts";
import { meaningOf } from "../control/port_codes.ts";
import {
  CoreSchedRequest_Op,
  CoreSchedRequestSchema,
  CoreSchedResponseSchema,
  PortControlRequest_Op as Op,
  PortControlRequestSchema,
  PortControlResponse_Status,
  PortControlResponseSchema,
  StatsRequestSchema,
  StatsResponse_Status,
  StatsResponseSchema,
} from "../control/gen/virtioforwarder_pb.ts";
import { statsFlat } from "./stats.ts";
import { parseVirtioCpu, runPin } from "./pin.ts";
import { portControlRequest } from "./port.ts";
import { runSched } from "./sched.ts";
import { relayRates } from "../sched/scheduler.ts";
import { vfToVmLoad, vmToVfLoad } from "../sched/plan.ts";

/** One argparse option: its long name, how it is given, its type and choices. */
interface Opt {
  name: `--${string}`;
  short?: `-${string}`;
  kind: "flag" | "value" | "append";
  type?: "int" | "float";
  choices?: readonly string[];
  metavar?: string;
}

/** A tool: its options, its positional argument (port control's OP) and what it runs. */
interface Tool {
  opts: Opt[];
  positional?: { metavar: string; choices: readonly string[] };
  run(a: Parsed): Promise<number>;
}

type Parsed = Record<string, string | number | boolean | string[] | undefined>;

class ArgError extends Error {}

const dest = (o: Opt) => o.name.slice(2).replaceAll("-", "_");

function usage(prog: string, t: Tool): string {
  const parts = t.opts.map((o) => {
    const flag = o.short ?? o.name;
    if (o.kind === "flag") return `[${flag}]`;
    const meta = o.choices ? `{${o.choices.join(",")}}` : o.metavar ?? dest(o).toUpperCase();
    return `[${flag} ${meta}]`;
  });
  const pos = t.positional ? ` ${t.positional.metavar}` : "";
  return `usage: ${prog} [-h] ${parts.join(" ")}${pos}`;
}

/** argparse's reading of `argv` (options anywhere, `--` ends them, prefixes allowed). */
function argparse(t: Tool, argv: readonly string[]): Parsed {
  const out: Parsed = {};
  for (const o of t.opts) out[dest(o)] = o.kind === "append" ? [] : o.kind === "flag" ? false : undefined;
  const convert = (o: Opt, v: string): string | number => {
    if (o.choices && !o.choices.includes(v)) {
      throw new ArgError(
        `argument ${o.short ? `${o.short}/` : ""}${o.name}: invalid choice: '${v}' (choose from ${
          o.choices.map((c) => o.type ? c : `'${c}'`).join(", ")
        })`,
      );
    }
    if (o.type === "int") {
      if (!/^\s*[+-]?\d+\s*$/.test(v)) throw new ArgError(`argument ${o.name}: invalid int value: '${v}'`);
      return Number(v);
    }
    if (o.type === "float") {
      const n = Number(v);
      if (v.trim() === "" || Number.isNaN(n)) throw new ArgError(`argument ${o.name}: invalid float value: '${v}'`);
      return n;
    }
    return v;
  };
  const positionals: string[] = [];
  let onlyPositional = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (onlyPositional || !a.startsWith("-") || a === "-") {
      positionals.push(a);
      continue;
    }
    if (a === "--") {
      onlyPositional = true;
      continue;
    }
    if (a === "-h" || a === "--help" || (a.startsWith("--h") && "--help".startsWith(a.split("=")[0]))) {
      throw new HelpRequested();
    }
    const [name, attached] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a];
    let o: Opt | undefined;
    if (name.startsWith("--")) {
      o = t.opts.find((x) => x.name === name);
      if (!o) {
        const matches = t.opts.filter((x) => x.name.startsWith(name));
        if (matches.length > 1) {
          throw new ArgError(`ambiguous option: ${name} could match ${matches.map((x) => x.name).join(", ")}`);
        }
        o = matches[0];
      }
    } else o = t.opts.find((x) => x.short !== undefined && a.startsWith(x.short));
    if (!o) throw new ArgError(`unrecognized arguments: ${a}`);
    if (o.kind === "flag") {
      if (attached !== undefined) throw new ArgError(`argument ${o.name}: ignored explicit argument '${attached}'`);
      out[dest(o)] = true;
      continue;
    }
    let value = attached;
    if (value === undefined && !name.startsWith("--") && a.length > 2) value = a.slice(2);
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("-") && next.length > 1 && !/^-\d/.test(next))) {
        throw new ArgError(`argument ${o.short ? `${o.short}/` : ""}${o.name}: expected one argument`);
      }
      value = next;
      i++;
    }
    const v = convert(o, value);
    if (o.kind === "append") (out[dest(o)] as (string | number)[]).push(v);
    else out[dest(o)] = v;
  }
  if (t.positional) {
    if (positionals.length === 0) throw new ArgError(`the following arguments are required: ${t.positional.metavar}`);
    const [op, ...rest] = positionals;
    if (!t.positional.choices.includes(op)) {
      throw new ArgError(
        `argument ${t.positional.metavar}: invalid choice: '${op}' (choose from ${
          t.positional.choices.map((c) => `'${c}'`).join(", ")
        })`,
      );
    }
    out.op = op;
    if (rest.length) throw new ArgError(`unrecognized arguments: ${rest.join(" ")}`);
  } else if (positionals.length) throw new ArgError(`unrecognized arguments: ${positionals.join(" ")}`);
  return out;
}

class HelpRequested extends Error {}

/** protobuf's text format of a message, as Python's `print(message)` shows it. */
/** Field numbers from here up are vio4wd's extensions of the original's protocol. */
const EXTENSION_FIELDS = 100;

export function textFormat(schema: DescMessage, message: Message, indent = ""): string {
  const r = reflect(schema, message);
  let s = "";
  const scalar = (f: DescField, v: unknown): string => {
    if (f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum")) {
      const e = f.enum!;
      return e.values.find((x) => x.number === v)?.name ?? String(v);
    }
    if (typeof v === "string") return JSON.stringify(v);
    if (typeof v === "boolean") return v ? "true" : "false";
    return String(v);
  };
  for (const f of r.fields) {
    // vio4wd's extension fields (100 and up): the original's tools do not know them, and Python's
    // print() of a message leaves unknown fields out
    if (!r.isSet(f) || f.number >= EXTENSION_FIELDS) continue;
    if (f.fieldKind === "message") {
      const m = r.get(f) as ReflectMessage;
      s += `${indent}${f.name} {\n${textFormat(m.desc, m.message, indent + "  ")}${indent}}\n`;
    } else if (f.fieldKind === "list") {
      for (const item of r.get(f) as Iterable<unknown>) {
        if (f.listKind === "message") {
          const m = item as ReflectMessage;
          s += `${indent}${f.name} {\n${textFormat(m.desc, m.message, indent + "  ")}${indent}}\n`;
        } else s += `${indent}${f.name}: ${scalar(f, item)}\n`;
      }
    } else if (f.fieldKind === "scalar" || f.fieldKind === "enum") {
      s += `${indent}${f.name}: ${scalar(f, r.get(f))}\n`;
    }
  }
  return s;
}

/** The tool's own parsing of a PCI address (`dddd:bb:ss.f` or `bb:ss.f`, hex), or null. */
function toolPciAddress(addr: string) {
  if (/[^.:0-9a-fA-F]/.test(addr)) return null;
  const parts = addr.split(/[:.]/).map((x) => x === "" ? NaN : parseInt(x, 16));
  if (parts.some(Number.isNaN) || (parts.length !== 4 && parts.length !== 3)) return null;
  const [domain, bus, slot, fn] = parts.length === 4 ? parts : [0, ...parts];
  return { domain, bus, slot, function: fn };
}

const fail1 = (prog: string, why: string) => {
  console.error(`${prog}: ${why}`);
  return 1;
};

const STATS_EP = "--stats-ep", SCHED_EP = "--sched-ep";

function tools(prog: string): Record<string, Tool> {
  return {
    port_control: {
      positional: { metavar: "OP", choices: ["add", "remove", "add_sock", "remove_sock", "query_pci"] },
      opts: [
        { name: "--vhost-path", kind: "value" },
        { name: "--virtio-id", kind: "value", type: "int", metavar: "virtio-id" },
        { name: "--crash-after-send", kind: "flag" },
        { name: "--pci-addr", kind: "append" },
        { name: "--name", kind: "value" },
        { name: "--mode", kind: "value", type: "int", choices: ["0", "1", "2", "3", "4", "5", "6"] },
        { name: "--zmq_ep", kind: "value" },
        { name: "--conditional", kind: "flag" },
        { name: "--send-garbage", kind: "flag" },
      ],
      async run(a) {
        const pciAddrs = [];
        for (const addr of a.pci_addr as string[]) {
          const p = toolPciAddress(addr);
          if (!p) return fail1(prog, `AssertionError: Badly formatted PCI address '${addr}'`);
          pciAddrs.push(p);
        }
        const op = { add: Op.ADD, remove: Op.REMOVE, add_sock: Op.ADD_SOCK, remove_sock: Op.REMOVE_SOCK }[
          a.op as string
        ] ?? Op.QUERY_PCI;
        const init = portControlRequest(op, pciAddrs, {
          virtioId: a.virtio_id as number | undefined,
          conditional: a.conditional === true,
          name: a.name as string | undefined,
          mode: a.mode as number | undefined,
          vhostPath: a.vhost_path as string | undefined,
        });
        if (a.crash_after_send) return fail1(prog, "AssertionError: user-initiated crash after send (not sent)");
        const endpoint = await resolveEndpoint("portControl", a.zmq_ep as string | undefined);
        const bytes = a.send_garbage
          ? new TextEncoder().encode("garbagé")
          : toBinary(PortControlRequestSchema, create(PortControlRequestSchema, init));
        const res = fromBinary(PortControlResponseSchema, await requestRaw(endpoint, bytes, 2000));
        if (res.status !== PortControlResponse_Status.OK) {
          console.log(textFormat(PortControlResponseSchema, res));
          const F = PortControlResponseSchema.field;
          if (isFieldSet(res, F.errorCode) && isFieldSet(res, F.errorCodeSource)) {
            const meaning = meaningOf(res.errorCodeSource, res.errorCode);
            if (meaning) console.error(`${prog}: ${meaning}`);
          }
          return 1;
        }
        if (res.queryString !== "") console.log(res.queryString);
        return 0;
      },
    },
    stats: {
      opts: [
        { name: STATS_EP, kind: "value" },
        { name: "--include-inactive", kind: "flag" },
        { name: "--delay", kind: "value", type: "int" },
        { name: "--output-format", kind: "value", choices: ["flat", "protobuf"] },
        { name: "--suppress-zero", short: "-z", kind: "flag" },
      ],
      async run(a) {
        const delay = (a.delay as number | undefined) ?? RATE_WINDOW_MS;
        const endpoint = await resolveEndpoint("stats", a.stats_ep as string | undefined);
        const res = await request(
          endpoint,
          StatsRequestSchema,
          { includeInactive: a.include_inactive === true, delay },
          StatsResponseSchema,
          2000 + delay,
        );
        if (a.output_format === "protobuf") {
          console.log(textFormat(StatsResponseSchema, res));
          return 0;
        }
        if (res.status !== StatsResponse_Status.OK) {
          return fail1("ERROR:root", `StatsResponse: ${StatsResponse_Status[res.status]}`);
        }
        const lines = statsFlat(res.relay).split("\n").filter((l) => l !== "");
        const shown = a.suppress_zero ? lines.filter((l) => !/=0$/.test(l)) : lines;
        if (shown.length) console.log(shown.join("\n"));
        return 0;
      },
    },
    core_pinner: {
      opts: [
        { name: STATS_EP, kind: "value" },
        { name: SCHED_EP, kind: "value" },
        { name: "--virtio-cpu", kind: "append" },
        { name: "--print-core-map", kind: "flag" },
      ],
      async run(a) {
        const pins = a.print_core_map ? [] : a.virtio_cpu as string[];
        if (pins.some((p) => parseVirtioCpu(p) === null)) {
          // the tool's own answer, with its exit status 0
          console.log("Invalid virtio-cpu command line format. Usage: virtio-cpu=n:c1,c2");
          return 0;
        }
        await runPin({
          virtioCpu: pins,
          zmqEp: a.sched_ep as string | undefined,
          statsEp: a.stats_ep as string | undefined,
        });
        return 0; // the tool exits 0 after "Scheduler response: ERROR" too
      },
    },
    monitor_load: {
      opts: [
        { name: STATS_EP, kind: "value" },
        { name: SCHED_EP, kind: "value" },
        { name: "--poll-interval", kind: "value", type: "float" },
      ],
      async run(a) {
        const interval = ((a.poll_interval as number | undefined) || 2) * 1000;
        const statsEp = await resolveEndpoint("stats", a.stats_ep as string | undefined);
        const schedEp = await resolveEndpoint("coreSched", a.sched_ep as string | undefined);
        const cores = await request(
          schedEp,
          CoreSchedRequestSchema,
          { op: CoreSchedRequest_Op.GET_EAL_CORES },
          CoreSchedResponseSchema,
        );
        // the tool's full scale: 15 Mpps and 50 Gb/s each way
        const full = { pkt: 15e6, byte: 50e3 / 8 * 1e6 };
        const max = {
          id: 0,
          socketId: 0,
          vfToVmCpu: 0,
          vmToVfCpu: 0,
          pktRxFromVf: full.pkt,
          byteRxFromVf: full.byte,
          pktTxToVm: full.pkt,
          byteTxToVm: full.byte,
          pktRxFromVm: full.pkt,
          byteRxFromVm: full.byte,
          pktTxToVf: full.pkt,
          byteTxToVf: full.byte,
        };
        const maxLoad = vmToVfLoad(max) + vfToVmLoad(max);
        let stop = false;
        const onSignal = () => stop = true;
        Deno.addSignalListener("SIGINT", onSignal);
        try {
          while (!stop) {
            const res = await request(
              statsEp,
              StatsRequestSchema,
              { includeInactive: false, delay: RATE_WINDOW_MS },
              StatsResponseSchema,
              2200,
            );
            const rates = relayRates(res.relay);
            if (rates.length > 0) {
              const loads = new Map(cores.ealCores.map((c) => [c, 0]));
              for (const r of rates) {
                loads.set(r.vmToVfCpu, (loads.get(r.vmToVfCpu) ?? 0) + vmToVfLoad(r));
                loads.set(r.vfToVmCpu, (loads.get(r.vfToVmCpu) ?? 0) + vfToVmLoad(r));
              }
              if (Deno.stdout.isTerminal()) await Deno.stdout.write(new TextEncoder().encode("\x1b[H\x1b[2J"));
              console.log("CPU loads");
              for (const [cpu, load] of loads) console.log(`CPU${cpu}:`, "-".repeat(Math.round(load / maxLoad * 60)));
            }
            await new Promise((r) => setTimeout(r, interval));
          }
        } finally {
          Deno.removeSignalListener("SIGINT", onSignal);
        }
        return 0;
      },
    },
    core_scheduler: {
      opts: [
        { name: STATS_EP, kind: "value" },
        { name: SCHED_EP, kind: "value" },
        { name: "--poll-interval", kind: "value", type: "float" },
        { name: "--loglevel", kind: "value", type: "int" },
        { name: "--sensitivity", kind: "value", type: "float" },
        { name: "--global-numa-opt", kind: "flag" },
      ],
      run(a) {
        return runSched({
          statsEp: a.stats_ep as string | undefined,
          schedEp: a.sched_ep as string | undefined,
          pollInterval: a.poll_interval as number | undefined,
          loglevel: a.loglevel === undefined ? undefined : Math.max(0, Math.min(7, a.loglevel as number)),
          sensitivity: a.sensitivity as number | undefined,
          globalNumaOpt: a.global_numa_opt === true,
        });
      },
    },
  };
}

/** The tool names `vio4wd original-tool` takes (virtioforwarder_<name>.py). */
export const ORIGINAL_TOOLS = ["port_control", "stats", "core_pinner", "monitor_load", "core_scheduler"] as const;

/** Runs `vio4wd original-tool NAME ARGS...`; returns the tool's exit status. */
export async function runOriginalTool(args: readonly string[]): Promise<number> {
  const [name, ...argv] = args;
  const prog = `virtioforwarder_${name}.py`;
  const tool = tools(prog)[name ?? ""];
  if (!tool) {
    console.error(`vio4wd original-tool: the original's tools are ${ORIGINAL_TOOLS.join(", ")}`);
    return 2;
  }
  let parsed: Parsed;
  try {
    parsed = argparse(tool, argv);
  } catch (e) {
    if (e instanceof HelpRequested) {
      console.log(`${usage(prog, tool)}\n\nvio4wd's launcher of the original ${prog}; see 'vio4wd --help'.`);
      return 0;
    }
    if (e instanceof ArgError) {
      console.error(`${usage(prog, tool)}\n${prog}: error: ${e.message}`);
      return 2;
    }
    throw e;
  }
  try {
    return await tool.run(parsed);
  } catch (e) {
    // the tool's traceback exits 1: no answer within its timeout, a reply it cannot parse
    if (e instanceof Error) return fail1(prog, e.message);
    throw e;
  }
}
