/**
 * The original's five Python clients against vio4wd, request for request: each test sends the
 * bytes the tool sends (its fields and its defaults, checked against the encoding) and checks
 * what the tool would print from the reply (its text or flat format, its core map).
 */

import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { requestRaw } from "../src/control/client.ts";
import {
  CoreSchedRequest_Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status,
  CoreSchedResponseSchema,
  PortControlRequest_Op as Op,
  PortControlRequestSchema,
  type PortControlResponse,
  PortControlResponse_Status,
  PortControlResponseSchema,
  StatsRequestSchema,
  StatsResponseSchema,
} from "../src/control/gen/virtioforwarder_pb.ts";
import { statsFlat } from "../src/cli/stats.ts";
import { formatCoreMap } from "../src/cli/pin.ts";
import { vfToVmLoad, vmToVfLoad } from "../src/sched/plan.ts";
import { relayRates } from "../src/sched/scheduler.ts";
import { World } from "./rigs/world.ts";
import { virtioUser } from "./rigs/devices.ts";
import { assert, assertEq, assertJsonEq } from "./rigs/assert.ts";
import { until } from "./rigs/daemon_process.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

/** Encodes `init` and checks the bytes are the tool's (`wire`, hex). */
function toolRequest<S extends DescMessage>(schema: S, init: MessageInitShape<S>, wire: string): Uint8Array {
  const bytes = toBinary(schema, create(schema, init));
  assertEq(hex(bytes), wire, `${schema.name} as the tool encodes it`);
  return bytes;
}

/** What virtioforwarder_port_control.py prints: the text format unless OK, else the query string. */
function portControlPrints(r: PortControlResponse): string {
  if (r.status !== PortControlResponse_Status.OK) {
    return `status: ERROR\nerror_code: ${r.errorCode}\nerror_code_source: "${r.errorCodeSource}"\n`;
  }
  return r.queryString ? `${r.queryString}\n` : "";
}

/** A daemon with every endpoint, two worker lcores on CPU 1, relay 0 with a VF and a VM sending. */
async function setup(w: World) {
  const ep = (name: string) => `ipc://${w.dir}/zmq/${name}`;
  const d = await w.daemon([
    "VIO4WD_EAL_LCORES=0@0,1@1,2@1",
    "VIRTIOFWD_CPU_MASK=1,2",
    `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=${ep("port_control")}`,
    `VIRTIOFWD_ZMQ_STATS_EP=${ep("stats")}`,
    `VIRTIOFWD_ZMQ_CORE_SCHED_EP=${ep("core_sched")}`,
    "VIO4WD_CORE_SCHED_ENABLE=true",
    "VIRTIOFWD_STATIC_VFS=net_null0=0",
  ]);
  const vm = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  // io: reads what the VF sends and sends it back (a VM that reads nothing is sent nothing)
  await vm.send("set fwd io");
  await vm.send("start");
  await d.untilVm(0);
  await until("relay 0 active", async () => (await d.status()).some((r) => r.id === 0 && r.active));
  return { d, ep };
}

async function ask<S extends DescMessage>(endpoint: string, bytes: Uint8Array, schema: S) {
  return fromBinary(schema, await requestRaw(endpoint, bytes, 5000));
}

Deno.test("original virtioforwarder_port_control.py: conditional always sent (false unless asked), PCI addresses as it parses them; replies print as the tool prints them", async () => {
  await using w = await World.create("pyport");
  const { ep } = await setup(w);
  const pc = ep("port_control");
  // `add --virtio-id 1 --pci-addr 05:08.1`: domain 0, conditional=false sent explicitly
  const add = toolRequest(PortControlRequestSchema, {
    op: Op.ADD,
    virtioId: 1,
    pciAddrs: [{ domain: 0, bus: 5, slot: 8, function: 1 }],
    conditional: false,
  }, "08 00 12 08 08 00 10 05 18 08 20 01 18 01 20 00");
  assertEq(
    portControlPrints(await ask(pc, add, PortControlResponseSchema)),
    'status: ERROR\nerror_code: 2\nerror_code_source: "virtio_forwarder_add_vf2()"\n',
    "no such device: the add error the tool prints",
  );
  // `add --virtio-id 0 ...` onto the relay that has a VF: busy
  const busy = toolRequest(PortControlRequestSchema, {
    op: Op.ADD,
    virtioId: 0,
    pciAddrs: [{ domain: 0, bus: 5, slot: 8, function: 2 }],
    conditional: false,
  }, "08 00 12 08 08 00 10 05 18 08 20 02 18 00 20 00");
  assert(portControlPrints(await ask(pc, busy, PortControlResponseSchema)).includes("error_code: 8"), "busy");
  // `remove --virtio-id 3 --pci-addr 05:08.3`: unconditional, the relay has nothing
  const remove = toolRequest(PortControlRequestSchema, {
    op: Op.REMOVE,
    virtioId: 3,
    pciAddrs: [{ domain: 0, bus: 5, slot: 8, function: 3 }],
    conditional: false,
  }, "08 01 12 08 08 00 10 05 18 08 20 03 18 03 20 00");
  assert(portControlPrints(await ask(pc, remove, PortControlResponseSchema)).includes("error_code: 4"), "nothing");
  // `query_pci --vhost-path <relay 0's socket>`: prints the device
  const path = new TextEncoder().encode(w.vmSocket(0));
  const query = toolRequest(
    PortControlRequestSchema,
    { op: Op.QUERY_PCI, vhostPath: w.vmSocket(0), conditional: false },
    `08 04 20 00 3a ${path.length.toString(16).padStart(2, "0")} ${hex(path)}`,
  );
  assertEq(portControlPrints(await ask(pc, query, PortControlResponseSchema)), "net_null0\n", "query_pci prints");
});

Deno.test("original virtioforwarder_stats.py: include_inactive=false and delay=200 by default; the flat output of active relays carries cpu_<C> prefixes and rates, inactive ones no counters", async () => {
  await using w = await World.create("pystats");
  const { ep } = await setup(w);
  const req = toolRequest(StatsRequestSchema, { includeInactive: false, delay: 200 }, "10 00 18 c8 01");
  const t0 = performance.now();
  const res = await ask(ep("stats"), req, StatsResponseSchema);
  assert(performance.now() - t0 >= 200, "the rates are measured over the 200 ms the tool asks");
  assertJsonEq(res.relay.map((r) => r.id), [0], "only the active relay");
  const flat = statsFlat(res.relay).split("\n");
  const vfCpu = res.relay[0].cpu!.vfToVm, vmCpu = res.relay[0].cpu!.vmToVf;
  for (
    const line of [
      "relay_0.active=True",
      `relay_0.cpu.vf_to_vm=${vfCpu}`,
      `relay_0.cpu.vm_to_vf=${vmCpu}`,
      "relay_0.vf.pci_addr_str=net_null0",
      "relay_0.vf_to_vm.internal_state=DPDK_READY",
      "relay_0.vm_to_vf.internal_state=VIRTIO_READY",
    ]
  ) assert(flat.includes(line), `no '${line}' in:\n${flat.join("\n")}`);
  const rate = flat.find((l) => l.startsWith(`relay_0.vm_to_vf.cpu_${vmCpu}.pkt_rate_rx_from_vm=`));
  assert(rate && Number(rate.split("=")[1]) > 0, `a VM->VF rate over the window: ${rate}`);
  assert(flat.some((l) => l.startsWith(`relay_0.vf_to_vm.cpu_${vfCpu}.pkts_rx_from_vf=`)), "counters under cpu_<C>");
  // `--include-inactive`: every relay; an idle one has no cpu, no counters, its socket and states
  const all = await ask(
    ep("stats"),
    toolRequest(StatsRequestSchema, { includeInactive: true, delay: 200 }, "10 01 18 c8 01"),
    StatsResponseSchema,
  );
  assertEq(all.relay.length, 64, "every relay");
  const idle = statsFlat([all.relay[5]]).split("\n").filter((l) => l !== "");
  assertJsonEq(idle.slice(0, 5), [
    "relay_5.active=False",
    `relay_5.vhost.vhost_socket_name=${w.vmSocket(5)}`,
    "relay_5.vf_to_vm.active=False",
    "relay_5.vf_to_vm.internal_state=DPDK_UNINIT",
    "relay_5.vf_to_vm.pkt_rate_rx_from_vf=0.0",
  ], "an inactive relay");
  assert(!idle.some((l) => l.includes("pkts_")), "no counters for an inactive relay");
});

Deno.test("original virtioforwarder_core_pinner.py: --virtio-cpu R:C1,C2 sends C1 as virtio2vf (VM->VF) and C2 as vf2virtio, and the new map shows it", async () => {
  await using w = await World.create("pypin");
  const { d, ep } = await setup(w);
  const statsReq = toolRequest(StatsRequestSchema, { includeInactive: false }, "10 00"); // no delay
  await ask(ep("stats"), statsReq, StatsResponseSchema);
  const cores = await ask(
    ep("core_sched"),
    toolRequest(CoreSchedRequestSchema, { op: CoreSchedRequest_Op.GET_EAL_CORES }, "08 01"),
    CoreSchedResponseSchema,
  );
  assertJsonEq(cores.ealCores, [1, 2], "worker cores");
  // `--virtio-cpu 0:2,1`: VM->VF on 2, VF->VM on 1
  const update = toolRequest(CoreSchedRequestSchema, {
    op: CoreSchedRequest_Op.UPDATE,
    relayCpuMap: [{ relayNumber: 0, virtio2vfCpu: 2, vf2virtioCpu: 1 }],
  }, "08 00 12 06 08 00 10 01 18 02");
  const res = await ask(ep("core_sched"), update, CoreSchedResponseSchema);
  assertEq(CoreSchedResponse_Status[res.status], "OK", "Scheduler response");
  const relay0 = (await d.status()).find((r) => r.id === 0)!;
  assertEq(`${relay0.cpu?.vmToVf},${relay0.cpu?.vfToVm}`, "2,1", "VM->VF on C1, VF->VM on C2");
  const after = await ask(ep("stats"), statsReq, StatsResponseSchema);
  assertEq(
    formatCoreMap(cores.ealCores, after.relay),
    "===================\n== 01 ==   == 02 ==\n      00   00\n===================",
    "the tool's map: relay 0's VF->VM column under worker 1, its VM->VF column under worker 2",
  );
});

Deno.test("original virtioforwarder_monitor_load.py and core_scheduler.py: the warm-up requests, the cores, rates and NUMA node their load model needs, and an UPDATE of the whole group (here its one relay)", async () => {
  await using w = await World.create("pysched");
  const { ep } = await setup(w);
  const warm = toolRequest(StatsRequestSchema, { includeInactive: false, delay: 200 }, "10 00 18 c8 01");
  const res = await ask(ep("stats"), warm, StatsResponseSchema);
  const cores = await ask(
    ep("core_sched"),
    toolRequest(CoreSchedRequestSchema, { op: CoreSchedRequest_Op.GET_EAL_CORES }, "08 01"),
    CoreSchedResponseSchema,
  );
  const r = res.relay.find((x) => x.id === 0)!;
  // what the tools read: both CPUs, all eight rates, and a NUMA node the scheduler accepts (not "any")
  assert(cores.ealCores.includes(r.cpu!.vfToVm) && cores.ealCores.includes(r.cpu!.vmToVf), "CPUs among the cores");
  assert(r.socketId !== 4294967295, `socket_id ${r.socketId}: a real node, so the scheduler keeps the relay`);
  const [rates] = relayRates([r]); // what the monitor and the scheduler read from the reply
  assert(vmToVfLoad(rates) > 0, "a VM->VF load from the rates, as the monitor draws it");
  assert(vfToVmLoad(rates) > 0, "a VF->VM load (net_null sends without pause)");
  // the scheduler's move: the complete mapping of the group in one UPDATE
  const moved = await ask(
    ep("core_sched"),
    toolRequest(CoreSchedRequestSchema, {
      op: CoreSchedRequest_Op.UPDATE,
      relayCpuMap: [{ relayNumber: 0, vf2virtioCpu: 2, virtio2vfCpu: 1 }],
    }, "08 00 12 06 08 00 10 02 18 01"),
    CoreSchedResponseSchema,
  );
  assertEq(CoreSchedResponse_Status[moved.status], "OK", "UPDATE");
});
