/**
 * The ZeroMQ control plane against a running daemon: every port-control operation and its
 * original error code, stats, core scheduling and config, malformed input of every kind (each
 * answered, the daemon still serving), and the `port`, `stats`, `pin` commands.
 */

import { create, fromBinary, isFieldSet, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { DaemonUnreachableError, request, requestRaw } from "../src/control/client.ts";
import {
  ConfigRequestSchema,
  ConfigResponse_Status,
  ConfigResponseSchema,
  CoreSchedRequest_Op,
  CoreSchedRequestSchema,
  CoreSchedResponse_Status,
  CoreSchedResponseSchema,
  PortControlRequest_Op as Op,
  PortControlRequestSchema,
  type PortControlResponse,
  PortControlResponse_Status as Status,
  PortControlResponseSchema,
  StatsRequestSchema,
  StatsResponse_Status,
  StatsResponseSchema,
} from "../src/control/gen/virtioforwarder_pb.ts";
import { ZMQ_REQ, ZmqContext } from "../ffi/zmq.ts";
import { FAULTS_SHIM, num, runVio4wd, until } from "./rigs/daemon_process.ts";
import { memifPair, virtioUser } from "./rigs/devices.ts";
import { World } from "./rigs/world.ts";
import { fakeSysfs } from "./rigs/sysfs.ts";
import { assert, assertEq } from "./rigs/assert.ts";

/** Config lines enabling every endpoint under `dir/zmq`. */
const endpoints = (dir: string) => [
  `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${dir}/zmq/port_control`,
  `VIRTIOFWD_ZMQ_STATS_EP=ipc://${dir}/zmq/stats`,
  `VIRTIOFWD_ZMQ_CONFIG_EP=ipc://${dir}/zmq/config`,
  `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${dir}/zmq/core_sched`,
  "VIO4WD_CORE_SCHED_ENABLE=true",
];
const ep = (dir: string, name: string) => `ipc://${dir}/zmq/${name}`;

type PcReq = MessageInitShape<typeof PortControlRequestSchema>;
const portControl = (dir: string, req: PcReq) =>
  request(ep(dir, "port_control"), PortControlRequestSchema, req, PortControlResponseSchema);

/** "OK", or "ERROR" / "ERROR <code> <source>" as the reply carries them. */
function outcome(r: PortControlResponse): string {
  if (r.status === Status.OK) return "OK";
  const F = PortControlResponseSchema.field;
  return isFieldSet(r, F.errorCode) ? `ERROR ${r.errorCode} ${r.errorCodeSource}` : "ERROR";
}

/** A VF stand-in for control-plane tests: net_null needs no peer. */
const vfDev = (_dir: string, n: number) => `net_null${n}`;
/** A memif VF on a file-system socket, for the test that needs a traffic peer. */
const memif = (dir: string, n: number) => memifPair(`${dir}/vf${n}.sock,socket-abstract=no`, n, n).vf;

/** A stats request still works: the daemon is alive and its REP state machine is not wedged. */
async function assertServing(dir: string, after: string): Promise<void> {
  const s = await request(ep(dir, "stats"), StatsRequestSchema, {}, StatsResponseSchema).catch((e) => {
    throw new Error(`after ${after}: ${e.message}`);
  });
  assertEq(s.relay.length, 64, `after ${after}: stats relay count`);
}

Deno.test("port control: ADD/REMOVE/QUERY_PCI answer with the original's codes and change the relay table", async () => {
  await using w = await World.create("pc");
  const dir = w.dir;
  const d = await w.daemon(endpoints(dir));
  const add = (id: number, dev: string, conditional?: boolean) =>
    portControl(dir, {
      op: Op.ADD,
      virtioId: id,
      devargs: [dev],
      ...(conditional === undefined ? {} : { conditional }),
    });
  const add2 = "virtio_forwarder_add_vf2()", rm = "virtio_forwarder_remove_vf2()";
  const cases: [string, () => Promise<PortControlResponse>, string][] = [
    ["ADD a VF to relay 2", () => add(2, vfDev(dir, 1)), "OK"],
    ["ADD the same again (conditional default true)", () => add(2, vfDev(dir, 1)), "OK"],
    ["ADD the same again, unconditional", () => add(2, vfDev(dir, 1), false), `ERROR 8 ${add2}`],
    ["ADD another device to the busy relay", () => add(2, vfDev(dir, 2)), `ERROR 8 ${add2}`],
    ["ADD relay 64", () => add(64, vfDev(dir, 3)), `ERROR 1 ${add2}`],
    [
      "ADD a PCI address that does not exist",
      () =>
        portControl(dir, { op: Op.ADD, virtioId: 3, pciAddrs: [{ domain: 0, bus: 0x0f, slot: 0x1f, function: 7 }] }),
      `ERROR 2 ${add2}`,
    ],
    ["ADD bad devargs", () => add(4, "net_bogus0"), `ERROR 2 ${add2}`],
    [
      "QUERY_PCI of relay 2's socket",
      async () => {
        const r = await portControl(dir, { op: Op.QUERY_PCI, vhostPath: w.vmSocket(2) });
        assertEq(r.queryString, vfDev(dir, 1), "query_string");
        return r;
      },
      "OK",
    ],
    [
      "QUERY_PCI of an unknown path",
      () => portControl(dir, { op: Op.QUERY_PCI, vhostPath: "/nope" }),
      "ERROR 2 virtio_query_pci()",
    ],
    [
      "REMOVE with another device",
      () => portControl(dir, { op: Op.REMOVE, virtioId: 2, devargs: [vfDev(dir, 9)] }),
      `ERROR 3 ${rm}`,
    ],
    ["REMOVE relay 2's VF", () => portControl(dir, { op: Op.REMOVE, virtioId: 2, devargs: [vfDev(dir, 1)] }), "OK"],
    [
      "REMOVE again, unconditional",
      () => portControl(dir, { op: Op.REMOVE, virtioId: 2, devargs: [vfDev(dir, 1)], conditional: false }),
      `ERROR 4 ${rm}`,
    ],
    [
      "REMOVE again, conditional",
      () => portControl(dir, { op: Op.REMOVE, virtioId: 2, devargs: [vfDev(dir, 1)] }),
      "OK",
    ],
    [
      "REMOVE relay 64",
      () => portControl(dir, { op: Op.REMOVE, virtioId: 64, devargs: [vfDev(dir, 1)] }),
      `ERROR 1 ${rm}`,
    ],
    [
      "ADD_SOCK without dynamic sockets",
      () => portControl(dir, { op: Op.ADD_SOCK, vhostPath: `${dir}/sock/x.sock`, devargs: [vfDev(dir, 5)] }),
      "ERROR 2 virtio_add_sock_dev_pair()",
    ],
    [
      "ADD_SOCK on a default socket path",
      () =>
        portControl(dir, {
          op: Op.ADD_SOCK,
          vhostPath: w.vmSocket(7),
          devargs: [vfDev(dir, 5)],
        }),
      "ERROR 1 virtio_add_sock_dev_pair()",
    ],
    [
      "ADD_SOCK without a path",
      () => portControl(dir, { op: Op.ADD_SOCK, devargs: [vfDev(dir, 5)] }),
      "ERROR -1 virtio_add_sock_dev_pair()",
    ],
    // Validation failures: ERROR with no code.
    ["ADD without virtio_id", () => portControl(dir, { op: Op.ADD, devargs: [vfDev(dir, 5)] }), "ERROR"],
    [
      "ADD with two devices and no name",
      () => portControl(dir, { op: Op.ADD, virtioId: 5, devargs: ["net_null0", "net_null1"] }),
      "ERROR",
    ],
    [
      "ADD with a name and one device",
      () => portControl(dir, { op: Op.ADD, virtioId: 5, name: "net_bonding0", devargs: ["net_null0"] }),
      "ERROR",
    ],
    ["ADD with no device", () => portControl(dir, { op: Op.ADD, virtioId: 5 }), "ERROR"],
    ["QUERY_PCI without vhost_path", () => portControl(dir, { op: Op.QUERY_PCI }), "ERROR"],
    ["an unknown op", () => portControl(dir, { op: 9 as Op, virtioId: 1 }), "ERROR"],
  ];
  for (const [what, run, want] of cases) assertEq(outcome(await run()), want, what);
  const s = await d.status();
  assertEq(s.length, 0, "no relay has a VF or VM left");
  await assertServing(dir, "the operations");
});

Deno.test("port control with dynamic sockets: ADD_SOCK/REMOVE_SOCK allocate the first free relay, check paths, 100 rounds", async () => {
  await using w = await World.create("pcdyn");
  const dir = w.dir;
  const d = await w.daemon([...endpoints(dir), "VIRTIOFWD_DYNAMIC_SOCKETS=y"]);
  // no mkdir here: the daemon creates the socket directory with dynamic sockets too (the storm found it did not)
  const src = "virtio_add_sock_dev_pair()", rsrc = "virtio_remove_sock_dev_pair()";
  const addSock = (path: string, dev: string) => portControl(dir, { op: Op.ADD_SOCK, vhostPath: path, devargs: [dev] });
  assertEq(outcome(await addSock(`${dir}/sock/a.sock`, vfDev(dir, 1))), "OK", "ADD_SOCK a");
  assertEq(outcome(await addSock(`${dir}/sock/b.sock`, vfDev(dir, 2))), "OK", "ADD_SOCK b");
  assertEq(outcome(await addSock(`${dir}/sock/a.sock`, vfDev(dir, 3))), `ERROR 1 ${src}`, "same path");
  assertEq(outcome(await addSock(`${dir}/sock/c.sock`, vfDev(dir, 1))), `ERROR -17 ${src}`, "same device");
  assertEq(
    outcome(await addSock(`/tmp/elsewhere-${Deno.pid}.sock`, vfDev(dir, 4))),
    `ERROR 5 ${src}`,
    "path outside",
  );
  assertEq(outcome(await addSock(`${dir}/sock/../x.sock`, vfDev(dir, 4))), `ERROR 5 ${src}`, "path with ..");
  const st = await d.status();
  assertEq(
    st.map((r) => `${r.id}:${r.vf?.pciAddrStr}`).join(" "),
    `0:${vfDev(dir, 1)} 1:${vfDev(dir, 2)}`,
    "relays 0 and 1",
  );
  await Deno.stat(`${dir}/sock/a.sock`); // the socket exists
  const q = await portControl(dir, { op: Op.QUERY_PCI, vhostPath: `${dir}/sock/b.sock` });
  assertEq(q.queryString, vfDev(dir, 2), "QUERY_PCI b");
  const rmSock = (req: PcReq) => portControl(dir, { op: Op.REMOVE_SOCK, ...req });
  assertEq(
    outcome(await rmSock({ vhostPath: `${dir}/sock/a.sock`, devargs: [vfDev(dir, 2)] })),
    `ERROR 2 ${rsrc}`,
    "wrong device",
  );
  assertEq(outcome(await rmSock({ vhostPath: `${dir}/sock/zzz.sock` })), `ERROR 1 ${rsrc}`, "unknown path");
  assertEq(outcome(await rmSock({})), `ERROR -1 ${rsrc}`, "nothing given");
  assertEq(outcome(await rmSock({ vhostPath: `${dir}/sock/a.sock` })), "OK", "REMOVE_SOCK a by path");
  assertEq(outcome(await rmSock({ devargs: [vfDev(dir, 2)] })), "OK", "REMOVE_SOCK b by device");
  assertEq((await d.status()).length, 0, "no relays left");
  for (const f of ["a.sock", "b.sock"]) {
    if (await Deno.stat(`${dir}/sock/${f}`).then(() => true, () => false)) throw new Error(`${f} left behind`);
  }
  assertEq(
    outcome(await addSock(`${dir}/sock/c.sock`, vfDev(dir, 1))),
    "OK",
    `ADD_SOCK reuses relay 0; log: ${d.log.slice(-1500)}`,
  );
  assertEq((await d.status())[0].id, 0, "first free relay is 0 again");
  // 100 more rounds of add and remove: the same relay, the socket file there and gone each time
  for (let i = 0; i < 100; i++) {
    assertEq(outcome(await addSock(`${dir}/sock/d.sock`, vfDev(dir, 2))), "OK", `round ${i}: ADD_SOCK`);
    await Deno.stat(`${dir}/sock/d.sock`);
    assertEq(outcome(await rmSock({ vhostPath: `${dir}/sock/d.sock` })), "OK", `round ${i}: REMOVE_SOCK`);
    if (await Deno.stat(`${dir}/sock/d.sock`).then(() => true, () => false)) {
      throw new Error(`round ${i}: socket left`);
    }
  }
  assertEq(
    (await d.status()).map((r) => `${r.id}:${r.vf?.pciAddrStr}`).join(" "),
    `0:${vfDev(dir, 1)}`,
    "only relay 0 is left",
  );
});

Deno.test("malformed requests on every endpoint are answered with an error and the daemon keeps serving", async () => {
  await using w = await World.create("bad");
  const dir = w.dir;
  await w.daemon(endpoints(dir));
  const garbage = new TextEncoder().encode("@\xff\x00garbage");
  const big = new Uint8Array(4000).fill(0x41); // above every request limit, within the transport's
  const statsReq = toBinary(StatsRequestSchema, create(StatsRequestSchema, { relay: [1, 2] }));
  const missingOp = new Uint8Array([0x18, 0x01]); // virtio_id = 1 and no op
  // A PciAddress without its required function field (field 2 = pci_addrs, inner 1-3 only).
  const truncatedPci = new Uint8Array([0x08, 0x00, 0x12, 0x06, 0x08, 0x00, 0x10, 0x05, 0x18, 0x08, 0x18, 0x01]);
  const pcErr = (b: Uint8Array) => {
    const r = fromBinary(PortControlResponseSchema, b);
    return outcome(r);
  };
  const cases: [string, string, Uint8Array, (b: Uint8Array) => string, string][] = [
    ["port_control", "garbage", garbage, pcErr, "ERROR"],
    ["port_control", "empty frame", new Uint8Array(0), pcErr, "ERROR"],
    ["port_control", "a StatsRequest (wrong type)", statsReq, pcErr, "ERROR"],
    ["port_control", "missing required op", missingOp, pcErr, "ERROR"],
    ["port_control", "PCI address missing a required field", truncatedPci, pcErr, "ERROR"],
    ["port_control", "4000 bytes", big, pcErr, "ERROR"],
    [
      "port_control",
      "a truncated message",
      toBinary(
        PortControlRequestSchema,
        create(PortControlRequestSchema, { op: Op.QUERY_PCI, vhostPath: "/tmp/abcdef" }),
      ).slice(0, 6),
      pcErr,
      "ERROR",
    ],
    ["stats", "garbage", garbage, (b) => StatsResponse_Status[fromBinary(StatsResponseSchema, b).status], "EBADR"],
    [
      "stats",
      "600 bytes (crashed the original)",
      new Uint8Array(600).fill(0x08),
      (b) => StatsResponse_Status[fromBinary(StatsResponseSchema, b).status],
      "EBADR",
    ],
    [
      "stats",
      "65 relay ids",
      toBinary(StatsRequestSchema, create(StatsRequestSchema, { relay: Array.from({ length: 65 }, (_, i) => i) })),
      (b) => StatsResponse_Status[fromBinary(StatsResponseSchema, b).status],
      "E2BIG",
    ],
    [
      "config",
      "garbage",
      new Uint8Array([0x40]),
      (b) => ConfigResponse_Status[fromBinary(ConfigResponseSchema, b).status],
      "EBADR",
    ],
    [
      "config",
      "empty frame",
      new Uint8Array(0),
      (b) => ConfigResponse_Status[fromBinary(ConfigResponseSchema, b).status],
      "OK",
    ],
    [
      "core_sched",
      "garbage",
      garbage,
      (b) => CoreSchedResponse_Status[fromBinary(CoreSchedResponseSchema, b).status],
      "ERROR",
    ],
    [
      "core_sched",
      "missing op",
      new Uint8Array(0),
      (b) => CoreSchedResponse_Status[fromBinary(CoreSchedResponseSchema, b).status],
      "ERROR",
    ],
  ];
  for (const [service, what, bytes, decode, want] of cases) {
    const reply = await requestRaw(ep(dir, service), bytes);
    assertEq(decode(reply), want, `${service}: ${what}`);
    await assertServing(dir, `${service}: ${what}`);
  }
});

Deno.test("stats: every slot by default, filters, E2BIG, delay, and counters that only grow over 10k requests", async () => {
  await using w = await World.create("stats");
  const dir = w.dir;
  const d = await w.daemon([...endpoints(dir), `VIRTIOFWD_STATIC_VFS=${memif(dir, 1)}=0`]);
  const stats = (req: MessageInitShape<typeof StatsRequestSchema>) =>
    request(ep(dir, "stats"), StatsRequestSchema, req, StatsResponseSchema, 5000);
  const all = await stats({});
  assertEq(all.relay.map((r) => r.id).join(","), Array.from({ length: 64 }, (_, i) => i).join(","), "ids 0-63");
  const r5 = all.relay[5];
  assertEq(r5.vfToVm!.internalState, "DPDK_UNINIT", "relay 5 VF state");
  assertEq(r5.vmToVf!.internalState, "VIRTIO_UNINIT", "relay 5 VM state");
  assertEq(r5.socketId, 4294967295, "socket_id of any node");
  assertEq(
    isFieldSet(r5.vfToVm!, StatsResponseSchema.field.relay.message!.field.vfToVm.message!.field.pktsRxFromVf),
    false,
    "no counters while inactive",
  );
  assertEq(all.relay[0].vfToVm!.internalState, "DPDK_ADDED", "relay 0 with a VF and no VM");
  assertEq(all.relay[0].vf!.pciAddrStr, memif(dir, 1), "relay 0 device");
  assertEq((await stats({ relay: [5, 5, 999] })).relay.map((r) => r.id).join(","), "5,5", "relay=[5,5,999]");
  assertEq((await stats({ includeInactive: false })).relay.length, 0, "no active relays yet");
  const t0 = performance.now();
  await stats({ delay: 300 });
  if (performance.now() - t0 < 300) throw new Error("delay=300 answered early");

  // Traffic through relay 0, then 10k stats requests on one REQ socket: counters never go back.
  const pmd = await w.testpmd({
    vdevs: [virtioUser(w.vmSocket(0)), memifPair(`${dir}/vf1.sock,socket-abstract=no`, 1, 1).peer],
  });
  const ctx = new ZmqContext();
  w.defer(() => ctx.close());
  await pmd.waitLinksUp();
  await d.untilVm(0);
  await pmd.send("set fwd io");
  await pmd.send("start tx_first 4");
  const sock = ctx.socket(ZMQ_REQ);
  sock.connect(ep(dir, "stats"));
  const req = toBinary(StatsRequestSchema, create(StatsRequestSchema, { relay: [0], includeInactive: false }));
  let last = [0n, 0n];
  const n = Number(Deno.env.get("VIO4WD_TEST_STATS_REQUESTS") ?? 10_000);
  for (let i = 0; i < n; i++) {
    while (!sock.trySend(req)) await new Promise((r) => setTimeout(r, 1));
    const reply = await sock.receive(5000);
    if (!reply) throw new Error(`no reply to stats request ${i}`);
    const res = fromBinary(StatsResponseSchema, reply[0]);
    assertEq(res.relay.length, 1, `request ${i}: relay 0 active`);
    const now = [res.relay[0].vfToVm!.pktsTxToVm, res.relay[0].vmToVf!.pktsTxToVf];
    if (now[0] < last[0] || now[1] < last[1]) throw new Error(`request ${i}: counters went back: ${last} -> ${now}`);
    last = now;
  }
  if (last[0] === 0n || last[1] === 0n) throw new Error(`no traffic counted: ${last}`);
});

Deno.test("core scheduling and config: worker list, UPDATE validation, start-up pins", async () => {
  await using w = await World.create("sched");
  const dir = w.dir;
  await w.daemon([...endpoints(dir), "VIRTIOFWD_CPU_PINS=(0:1 3:1,1)"]);
  const sched = (req: MessageInitShape<typeof CoreSchedRequestSchema>) =>
    request(ep(dir, "core_sched"), CoreSchedRequestSchema, req, CoreSchedResponseSchema);
  const cores = await sched({ op: CoreSchedRequest_Op.GET_EAL_CORES });
  assertEq(cores.ealCores.join(","), "1", "worker cores");
  const U = CoreSchedRequest_Op.UPDATE;
  const st = (r: { status: number }) => CoreSchedResponse_Status[r.status];
  assertEq(st(await sched({ op: U })), "ERROR", "UPDATE with an empty map");
  assertEq(
    st(await sched({ op: U, relayCpuMap: [{ relayNumber: 64, vf2virtioCpu: 1, virtio2vfCpu: 1 }] })),
    "ERROR",
    "relay 64",
  );
  assertEq(
    st(await sched({ op: U, relayCpuMap: [{ relayNumber: 1, vf2virtioCpu: 0, virtio2vfCpu: 1 }] })),
    "ERROR",
    "main lcore",
  );
  assertEq(
    st(await sched({ op: U, relayCpuMap: [{ relayNumber: 1, vf2virtioCpu: 1, virtio2vfCpu: 1 }] })),
    "OK",
    "valid UPDATE",
  );
  const conf = await request(ep(dir, "config"), ConfigRequestSchema, {}, ConfigResponseSchema);
  assertEq(ConfigResponse_Status[conf.status], "OK", "config status");
  assertEq(
    conf.relayCpuMap.map((m) => `${m.relayNumber}:${m.vf2virtioCpu},${m.virtio2vfCpu}`).join(" "),
    "0:1,1 3:1,1",
    "relay_cpu_map",
  );
});

Deno.test("vio4wd port add-sock and remove-sock end to end: the socket is paired with a VF, a VM connects to it and packets cross both ways, port list shows the pairing, remove-sock frees the relay and the socket", async () => {
  await using w = await World.create("addsock");
  const d = await w.daemon([...endpoints(w.dir), "VIRTIOFWD_DYNAMIC_SOCKETS=y"]);
  const pc = ["--zmq-ep", ep(w.dir, "port_control")];
  const sock = `${w.sockDir}/vhu-7.sock`;
  let r = await runVio4wd(["port", "add-sock", "--vhost-path", sock, "--device", "net_null7", ...pc]);
  assertEq(r.code, 0, `port add-sock: ${r.stdout}${r.stderr}`);
  const relay = async () => (await d.status()).find((x) => x.vhost?.vhostSocketName === sock);
  const id = (await relay())?.id;
  assert(id !== undefined, "a relay has the socket");
  const vm = await w.testpmd({ vdevs: [virtioUser(sock)] });
  await vm.waitLinksUp();
  await vm.send("set fwd io"); // net_null's packets come back out of the VM
  await vm.send("start");
  await until("packets both ways through the paired socket", async () => {
    const x = await relay();
    return num(x?.vfToVm.pktsTxToVm) > 1000 && num(x?.vmToVf.pktsTxToVf) > 1000;
  });
  await vm.stop();
  r = await runVio4wd(["port", "list", "--json", "--zmq-ep", ep(w.dir, "stats")]);
  assertEq(r.code, 0, `port list: ${r.stderr}`);
  assert(r.stdout.includes(sock) && r.stdout.includes("net_null7"), `port list shows the pairing: ${r.stdout}`);
  await vm.close();
  r = await runVio4wd(["port", "remove-sock", "--vhost-path", sock, ...pc]);
  assertEq(r.code, 0, `port remove-sock: ${r.stdout}${r.stderr}`);
  assertEq(await relay(), undefined, "no relay has the socket");
  assertEq((await d.status()).find((x) => x.id === id)?.vf?.pciAddrStr ?? "", "", "the relay's VF went with it");
  assertEq(await Deno.lstat(sock).then(() => "there", () => "gone"), "gone", "the socket file");
});

Deno.test("port, stats and pin commands: output, --json and exit statuses", async () => {
  await using w = await World.create("cli");
  const dir = w.dir;
  await w.daemon(endpoints(dir));
  const pc = ["--zmq-ep", ep(dir, "port_control")];
  let r = await runVio4wd(["port", "add", "--virtio-id", "1", "--device", vfDev(dir, 1), ...pc]);
  assertEq(r.code, 0, `port add: ${r.stderr}`);
  r = await runVio4wd(["port", "add", "--virtio-id", "1", "--device", vfDev(dir, 1), ...pc]);
  assertEq(r.code, 1, "port add again without --conditional");
  if (!r.stdout.includes('error_code: 8\nerror_code_source: "virtio_forwarder_add_vf2()"')) throw new Error(r.stdout);
  if (!r.stderr.includes("already has a VF")) throw new Error(r.stderr);
  r = await runVio4wd(["port", "add", "--virtio-id", "1", "--device", vfDev(dir, 1), "--conditional", ...pc]);
  assertEq(r.code, 0, "port add --conditional");
  r = await runVio4wd(["port", "query-pci", "--vhost-path", w.vmSocket(1), ...pc]);
  assertEq(r.stdout.trim(), vfDev(dir, 1), "query-pci output");
  r = await runVio4wd(["port", "add", "--virtio-id", "2", "--pci-addr", "05:08", ...pc]);
  assertEq(r.code, 2, "malformed PCI address");
  if (!r.stderr.includes("--pci-addr '05:08'")) throw new Error(r.stderr);
  // a refusal carries the daemon's reason (what it logged) to the client: here the allow-list and its variable
  r = await runVio4wd(["port", "add", "--virtio-id", "2", "--device", "net_pcap0,iface=lo", ...pc]);
  assertEq(r.code, 1, "a driver clients may not use");
  assert(
    /^vio4wd port add: relay 2: add VF net_pcap0,iface=lo: refused for a client: .*net_pcap.*VIO4WD_DEVARGS_ALLOW/m
      .test(r.stderr),
    `the daemon's reason and the variable to change: ${r.stderr}`,
  );
  r = await runVio4wd(["port", "remove", "--virtio-id", "1", "--device", vfDev(dir, 1), "--json", ...pc]);
  assertEq(r.stdout.trim(), '{"status":"OK"}', "port remove --json");
  // remove without a device detaches the one the relay holds, as the help says
  r = await runVio4wd(["port", "add", "--virtio-id", "1", "--device", vfDev(dir, 2), ...pc]);
  assertEq(r.code, 0, `port add: ${r.stderr}`);
  r = await runVio4wd(["port", "remove", "--virtio-id", "1", ...pc, "--stats-ep", ep(dir, "stats")]);
  assertEq(r.code, 0, `port remove --virtio-id 1 alone: ${r.stdout}${r.stderr}`);
  r = await runVio4wd(["port", "remove", "--virtio-id", "1", ...pc, "--stats-ep", ep(dir, "stats")]);
  assertEq(r.code, 1, "again: the relay has nothing");
  assert(
    r.stderr.includes("has no device") || r.stdout.includes("error_code: 4"),
    `nothing to remove: ${r.stdout}${r.stderr}`,
  );

  r = await runVio4wd(["stats", "--zmq-ep", ep(dir, "stats"), "--include-inactive", "--relay", "3", "--json"]);
  const j = JSON.parse(r.stdout);
  assertEq(j.relay[0].id, 3, "stats --json relay id");
  assertEq(j.relay[0].vm_to_vf.internal_state, "VIRTIO_UNINIT", "stats --json field names");
  r = await runVio4wd([
    "stats",
    "--zmq-ep",
    ep(dir, "stats"),
    "--include-inactive",
    "--relay",
    "3",
    "--output-format",
    "flat",
  ]);
  if (!r.stdout.startsWith("relay_3.active=False\nrelay_3.vhost.vhost_socket_name=")) throw new Error(r.stdout);
  r = await runVio4wd(["stats", "--zmq-ep", ep(dir, "stats"), "--include-inactive", "--relay", "3"]);
  if (!/^3\s+VF->VM\s+DPDK_UNINIT/m.test(r.stdout)) throw new Error(r.stdout);

  r = await runVio4wd(["pin", "--zmq-ep", ep(dir, "core_sched"), "--stats-ep", ep(dir, "stats")]);
  assertEq(r.stdout, "Worker cores affinities:\n========\n== 01 ==\n========\n", "pin map");
  r = await runVio4wd([
    "pin",
    "--zmq-ep",
    ep(dir, "core_sched"),
    "--stats-ep",
    ep(dir, "stats"),
    "--virtio-cpu=1:0,1",
  ]);
  assertEq(r.code, 1, "pin to the main lcore is refused");
  if (!r.stdout.includes("Scheduler response: ERROR")) throw new Error(r.stdout);
  // relay 1 has a VF but no VM: the daemon answers OK and moves nothing yet; pin says so (exit 1)
  r = await runVio4wd([
    ...["pin", "--zmq-ep", ep(dir, "core_sched"), "--stats-ep", ep(dir, "stats"), "--virtio-cpu=1:1,1"],
  ]);
  assertEq(r.code, 1, `pin of a relay without its VM: ${r.stdout}${r.stderr}`);
  assert(r.stderr.includes("vio4wd pin: relay 1 not moved: its VM is not connected"), r.stderr);
  const none = await runVio4wd(["stats", "--zmq-ep", "ipc:///nonexistent/stats"]);
  assertEq(none.code, 2, "no daemon: exit status");
  if (
    !none.stderr.includes("no answer from ipc:///nonexistent/stats") || !none.stderr.includes("Is the daemon running")
  ) {
    throw new Error(none.stderr);
  }
  await requestRaw("ipc:///nonexistent/x", new Uint8Array(0)).then(
    () => Promise.reject(new Error("expected DaemonUnreachableError")),
    (e) => {
      if (!(e instanceof DaemonUnreachableError)) throw e;
    },
  );
});

Deno.test("bonds: a net_bonding device over two members relays both ways; errors leave nothing behind; REMOVE by name", async () => {
  await using w = await World.create("bond");
  const dir = w.dir;
  const d = await w.daemon(endpoints(dir));
  const src = "virtio_forwarder_bond_add()";
  const bond = (id: number, name: string, devs: string[], mode = 0) =>
    portControl(dir, { op: Op.ADD, virtioId: id, name, mode, devargs: devs });
  assertEq(outcome(await bond(1, "net_foo0", ["net_null1", "net_null2"])), `ERROR 2 ${src}`, "bad bond name");
  assertEq(outcome(await portControl(dir, { op: Op.ADD, virtioId: 3, devargs: ["net_null3"] })), "OK", "plain VF");
  assertEq(outcome(await bond(1, "net_bonding1", ["net_null4", "net_null3"])), `ERROR 3 ${src}`, "member in use");
  assertEq(outcome(await bond(3, "net_bonding1", ["net_null4", "net_null5"])), `ERROR 8 ${src}`, "relay busy");
  // net_vhost cannot take the bond's MAC address: the bond does not start, and its members are released.
  const vhostVf = (n: number) => `net_vhost${n},iface=${w.sockDir}/m${n}.sock`;
  assertEq(outcome(await bond(1, "net_bonding1", [vhostVf(1), vhostVf(2)])), `ERROR 6 ${src}`, "start fails");
  assertEq(
    outcome(await portControl(dir, { op: Op.ADD, virtioId: 1, devargs: [vhostVf(1)] })),
    "OK",
    "member freed",
  );
  // net_null members: they receive an endless stream of 64-byte packets and swallow what is sent.
  assertEq(
    outcome(await bond(0, "net_bonding0", ["net_null1,size=64", "net_null2,size=64"])),
    "OK",
    "bond on relay 0",
  );
  const q = await portControl(dir, { op: Op.QUERY_PCI, vhostPath: w.vmSocket(0) });
  assertEq(q.queryString, "net_bonding0", "QUERY_PCI shows the bond name");
  const pmd = await w.testpmd({ vdevs: [virtioUser(w.vmSocket(0))] });
  await pmd.waitLinksUp();
  await d.untilVm(0);
  await pmd.send("set fwd rxonly");
  await pmd.send("start tx_first 2"); // 64 packets VM->VF
  const relay0 = async () => (await d.status()).find((r) => r.id === 0)!;
  await until("64 packets VM->VF and some VF->VM", async () => {
    const r = await relay0();
    return num(r.vmToVf.pktsTxToVf) >= 64 && num(r.vfToVm.pktsTxToVm) > 0;
  });
  const ports = await pmd.stop();
  if (ports[0].rxPackets === 0) throw new Error("no VF->VM packets from the bond reached the VM");
  const r0 = await relay0();
  assertEq(num(r0.vmToVf.pktsTxToVf), 64, "VM->VF packets sent into the bond");
  await pmd.close();
  assertEq(
    outcome(await portControl(dir, { op: Op.REMOVE, virtioId: 0, name: "net_bonding0" })),
    "OK",
    "REMOVE by name",
  );
  assertEq(
    outcome(await bond(0, "net_bonding0", ["net_null1", "net_null2"])),
    "OK",
    `the same bond again: ${d.log.slice(-1200)}`,
  );
});

Deno.test("bonds: attaching and detaching a bond 20 times leaves DPDK's heap where one cycle left it (the bond closed, not only freed)", async () => {
  await using w = await World.create("bondleak");
  const d = await w.daemon([...endpoints(w.dir), "VIO4WD_METRICS_LISTEN=127.0.0.1:0"]);
  const url = await d.metricsUrl();
  const heap = async () => {
    const text = await (await fetch(url)).text();
    return Number(/^vio4wd_dpdk_heap_bytes (\d+)$/m.exec(text)?.[1]);
  };
  await until("metrics served", () => heap().then((n) => n > 0, () => false));
  const cycle = async (i: number) => {
    const add = { op: Op.ADD, virtioId: 2, name: "net_bonding7", mode: 1, devargs: ["net_null7", "net_null8"] };
    assertEq(outcome(await portControl(w.dir, add)), "OK", `cycle ${i}: bond added`);
    const rm = { op: Op.REMOVE, virtioId: 2, name: "net_bonding7", devargs: [] };
    assertEq(outcome(await portControl(w.dir, rm)), "OK", `cycle ${i}: bond removed`);
  };
  await cycle(0);
  const after1 = await heap();
  for (let i = 1; i < 20; i++) await cycle(i);
  const after20 = await heap();
  assertEq(after20, after1, `DPDK heap bytes after 20 cycles vs after 1 (${after20 - after1} more)`);
  assertEq((await d.status()).length, 0, "no relay left with a device");
});

Deno.test("port control reply codes produced for real: ADD_BOND 1 and 5, ADD_SOCK 3 and 4 and with a bond, REMOVE_SOCK 4; the daemon serves throughout and leaks nothing", async () => {
  await using w = await World.create("codes");
  const sys = `${w.dir}/sys`;
  fakeSysfs(sys, [1, 2]); // SR-IOV VFs with no stand-in: their probe fails as a missing device's does
  const d = await w.daemon([...endpoints(w.dir), "VIRTIOFWD_DYNAMIC_SOCKETS=y"], {
    env: { VIO4WD_SYSFS_ROOT: sys },
  });
  const code = async (req: PcReq) => outcome(await portControl(w.dir, req));
  const sock = (n: string) => `${w.sockDir}/${n}.sock`;
  const [bond, sockSrc, rmSrc] = [
    "virtio_forwarder_bond_add()",
    "virtio_add_sock_dev_pair()",
    "virtio_remove_sock_dev_pair()",
  ];
  const cases: [string, PcReq, string][] = [
    [
      "ADD_BOND on relay 64",
      { op: Op.ADD, virtioId: 64, name: "net_bonding1", devargs: ["net_null1", "net_null2"] },
      `ERROR 1 ${bond}`,
    ],
    ["ADD_BOND with a member that cannot be probed", {
      op: Op.ADD,
      virtioId: 1,
      name: "net_bonding1",
      devargs: ["net_null3"],
      pciAddrs: [{ domain: 0, bus: 5, slot: 8, function: 1 }],
    }, `ERROR 5 ${bond}`],
    ["ADD_SOCK with a VF that cannot be probed", {
      op: Op.ADD_SOCK,
      vhostPath: sock("a"),
      pciAddrs: [{ domain: 0, bus: 5, slot: 8, function: 2 }],
    }, `ERROR 3 ${sockSrc}`],
    ["ADD_SOCK with a bond of a bad name", {
      op: Op.ADD_SOCK,
      vhostPath: sock("b"),
      name: "net_foo1",
      devargs: ["net_null4", "net_null5"],
    }, `ERROR 4 ${sockSrc}`],
    ["ADD_SOCK with a bond", {
      op: Op.ADD_SOCK,
      vhostPath: sock("c"),
      name: "net_bonding2",
      devargs: ["net_null6", "net_null7"],
    }, "OK"],
    ["REMOVE of the bond under that socket", { op: Op.REMOVE, virtioId: 0, name: "net_bonding2" }, "OK"],
    // conditional as the original's tool sends it (the proto's default is true)
    [
      "REMOVE_SOCK of a socket without a device",
      { op: Op.REMOVE_SOCK, vhostPath: sock("c"), conditional: false },
      `ERROR 4 ${rmSrc}`,
    ],
  ];
  for (const [what, req, want] of cases) {
    assertEq(await code(req), want, `${what}; log: ${d.log.slice(-800)}`);
    await assertServing(w.dir, what);
  }
  assertEq((await d.status()).length, 0, "no relay left with a device");
});

Deno.test("port control reply codes of steps no stand-in fails, made to fail in the fault build: ADD_VF 4, 5, 6 (configure, RX and TX queue setup), ADD_BOND 4, REMOVE_VF 2 (the device stays plugged, as said), REMOVE_SOCK 3; the daemon serves throughout and the devices of failed adds are free again", async () => {
  await using w = await World.create("faultcodes");
  const fault = `${w.dir}/fault`;
  const d = await w.daemon([...endpoints(w.dir), "VIRTIOFWD_DYNAMIC_SOCKETS=y"], {
    env: { VIO4WD_SHIM: FAULTS_SHIM, VIO4WD_FAULT_FILE: fault },
  });
  const failing = (stage: string) => Deno.writeTextFileSync(fault, `${stage}\n`);
  const code = async (req: PcReq) => outcome(await portControl(w.dir, req));
  const [addSrc, bondSrc, rmSrc, rmSockSrc] = [
    "virtio_forwarder_add_vf2()",
    "virtio_forwarder_bond_add()",
    "virtio_forwarder_remove_vf2()",
    "virtio_remove_sock_dev_pair()",
  ];
  const addVf = (id: number, dev: string) => code({ op: Op.ADD, virtioId: id, devargs: [dev] });
  const rmVf = (id: number, dev: string) => code({ op: Op.REMOVE, virtioId: id, devargs: [dev] });
  const addBond = (id: number) =>
    code({ op: Op.ADD, virtioId: id, name: "net_bonding1", mode: 1, devargs: ["net_null5", "net_null6"] });
  for (const [stage, want] of [["configure", 4], ["rxq", 5], ["txq", 6]] as const) {
    failing(stage);
    assertEq(await addVf(1, "net_null1"), `ERROR ${want} ${addSrc}`, `ADD_VF with ${stage} failing`);
    await assertServing(w.dir, `ADD_VF with ${stage} failing`);
    failing("");
    assertEq(await addVf(1, "net_null1"), "OK", `the device is free again after ${stage} failed`);
    assertEq(await rmVf(1, "net_null1"), "OK", `removed after ${stage}`);
  }
  failing("configure");
  assertEq(await addBond(2), `ERROR 4 ${bondSrc}`, "ADD_BOND with configure failing");
  failing("");
  assertEq(await addBond(2), "OK", "the bond's name and members are free again");
  assertEq(await code({ op: Op.REMOVE, virtioId: 2, name: "net_bonding1" }), "OK", "bond removed");

  assertEq(await addVf(3, "net_null3"), "OK", "a VF to remove");
  failing("unplug");
  assertEq(await rmVf(3, "net_null3"), `ERROR 2 ${rmSrc}`, "REMOVE_VF with the unplug failing");
  failing("");
  await assertServing(w.dir, "REMOVE_VF with the unplug failing");
  assertEq((await d.status()).find((r) => r.id === 3)?.vf?.pciAddrStr ?? "", "", "relay 3 lost its VF all the same");
  await d.waitLog(
    /relay 3: net_null3 was closed but could not be unplugged: it stays in use until the daemon restarts/,
  );
  assertEq(await addVf(3, "net_null3"), `ERROR 2 ${addSrc}`, "the device that stayed plugged cannot be added");
  assertEq(await addVf(3, "net_null4"), "OK", "relay 3 takes another device");

  const sock = `${w.sockDir}/s.sock`;
  assertEq(await code({ op: Op.ADD_SOCK, vhostPath: sock, devargs: ["net_null7"] }), "OK", "a socket to remove");
  failing("unregister");
  assertEq(await code({ op: Op.REMOVE_SOCK, vhostPath: sock }), `ERROR 3 ${rmSockSrc}`, "REMOVE_SOCK failing");
  failing("");
  await assertServing(w.dir, "REMOVE_SOCK with the unregistration failing");
  assertEq((await d.status()).some((r) => r.vhost?.vhostSocketName === sock), false, "the table let go of the socket");
});

Deno.test("port control: ADD_VF and ADD_BOND answer -1 when the hugepages for a relay's pool run out (a 96 MiB hugetlbfs mount); a freed relay's pool is reusable and the daemon serves throughout", async () => {
  await using w = await World.create("poolcodes");
  const huge = `${w.dir}/huge`;
  Deno.mkdirSync(huge);
  const mount = await new Deno.Command("mount", { args: ["-t", "hugetlbfs", "-o", "size=96M", "none", huge] })
    .output();
  assert(mount.success, `mount hugetlbfs: ${new TextDecoder().decode(mount.stderr)}`);
  w.defer(() => new Deno.Command("umount", { args: [huge] }).output());
  const d = await w.daemon([...endpoints(w.dir), `VIRTIOFWD_HUGETLBFS_MOUNT_POINT=${huge}`, "VIO4WD_EAL_MEMORY_MB=64"]);
  const code = async (req: PcReq) => outcome(await portControl(w.dir, req));
  const addVf = (id: number) => code({ op: Op.ADD, virtioId: id, devargs: [`net_null${id}`] });
  let added = 0;
  for (; added < 16; added++) {
    const got = await addVf(added);
    if (got !== "OK") {
      assertEq(got, "ERROR -1 virtio_forwarder_add_vf2()", `ADD_VF ${added} when the pool does not fit`);
      break;
    }
  }
  assert(added > 0 && added < 16, `some relays fit and then the hugepages ran out (${added} fitted)`);
  await assertServing(w.dir, "ADD_VF -1");
  const bond = { op: Op.ADD, virtioId: 40, name: "net_bonding1", mode: 1, devargs: ["net_null40", "net_null41"] };
  assertEq(await code(bond), "ERROR -1 virtio_forwarder_bond_add()", "ADD_BOND with no room for its pool");
  await assertServing(w.dir, "ADD_BOND -1");
  assertEq(await code({ op: Op.REMOVE, virtioId: 0, devargs: ["net_null0"] }), "OK", "one relay freed");
  assertEq(await addVf(added), "OK", "its pool's memory takes the next relay");
  assertEq((await d.status()).length, added, "relays with a device");
});
