import { assert, assertEq, assertJsonEq } from "../../tests/rigs/assert.ts";
import { cpuNodes } from "../host/topology.ts";
import { loadConfig } from "../config/config.ts";
import { Logger } from "../common/log.ts";
import { DataplaneError } from "../dataplane/dataplane.ts";
import { FakeDataPath } from "../../tests/rigs/fake_data_path.ts";
import { leastBusyCpu, placementCandidates, RelayError, type RelaySnapshot, RelayTable } from "./table.ts";

/** Two NUMA nodes: CPUs 0-3 on node 0, 4-7 on node 1, as sysfs lays them out. */
function twoNodes(): string {
  const root = Deno.makeTempDirSync();
  for (const [node, list] of [[0, "0-3"], [1, "4-7"]] as const) {
    Deno.mkdirSync(`${root}/devices/system/node/node${node}`, { recursive: true });
    Deno.writeTextFileSync(`${root}/devices/system/node/node${node}/cpulist`, `${list}\n`);
  }
  Deno.mkdirSync(`${root}/devices/system/node/possible`, { recursive: true }); // not a node directory
  return root;
}

const relay = (id: number, vf: number, vm: number): RelaySnapshot => ({
  id,
  socket: null,
  vf: vf >= 0 ? `net_null${id}` : null,
  bond: null,
  vm: vm >= 0,
  queuePairs: vm >= 0 ? 1 : 0,
  cpus: [vf, vm],
  pin: null,
});

Deno.test("CPU topology from sysfs: each CPU's NUMA node; no node directories, no preference", () => {
  const root = twoNodes();
  try {
    const nodes = cpuNodes(root);
    assertJsonEq([...nodes].sort((a, b) => a[0] - b[0]), [[0, 0], [1, 0], [2, 0], [3, 0], [4, 1], [5, 1], [6, 1], [
      7,
      1,
    ]], "map");
    assertEq(cpuNodes(`${root}/nowhere`).size, 0, "no sysfs");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("placement candidates: the workers on the relay's node; with no worker there, or the node unknown, all workers", () => {
  const root = twoNodes();
  try {
    const nodes = cpuNodes(root), workers = [1, 2, 5, 6];
    const place = (node: number, relays: RelaySnapshot[]) =>
      leastBusyCpu(placementCandidates(workers, nodes, node), relays);
    assertEq(place(1, []), 5, "a relay on node 1 goes to node 1's first worker");
    assertEq(place(1, [relay(0, 5, -1)]), 6, "then to its other worker, not to the idle node-0 CPU 1");
    assertEq(place(0, [relay(0, 1, -1), relay(1, 2, 2)]), 1, "node 0: CPU 1 (12) is less busy than 2 (22)");
    assertEq(place(3, []), 1, "no worker on the node: all workers");
    assertEq(place(-1, []), 1, "node unknown: all workers");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

/** A data plane that records CPU assignments; its pools are on `node.value` (the shim moves a relay's pool to the guest memory's node when the VM connects). */
Deno.test("NUMA placement as the original, by default: a relay's VF->VM on the least busy worker of its VF's node, both directions on the guest memory's node once the VM connects", () => {
  const root = twoNodes();
  try {
    const dp = new FakeDataPath(1); // every VF (and so its pool) on node 1
    const assigned = (id: number) => dp.relays[id].cpus;
    const config = loadConfig("VIRTIOFWD_CPU_MASK=1,2,5,6\n", "f").config;
    const table = new RelayTable(config, dp, new Logger(0), cpuNodes(root));
    table.addVf(0, "net_null0");
    assertJsonEq(assigned(0), [5, -1], "VF->VM on node 1's first worker");
    table.addVf(1, "net_null1");
    assertJsonEq(assigned(1), [6, -1], "the next relay's on node 1's other worker");
    table.addSocket(0);
    table.addSocket(1);
    // the guest's memory is on node 0: the shim moved the pool there
    dp.connectVm(0, 1, 0);
    table.tick();
    assertJsonEq(assigned(0), [2, 1], "VM->VF on node 0's least busy worker, VF->VM placed again beside it");
    // a node without workers: all workers are candidates
    dp.connectVm(1, 1, 3);
    table.tick();
    const [up, down] = assigned(1);
    assert(config.cpus.includes(up) && config.cpus.includes(down), `placed on workers: ${up}, ${down}`);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

/** A table over the fake data path, workers on CPUs 1 and 2 (one NUMA node). */
function fakeTable(config = "") {
  const dp = new FakeDataPath();
  const table = new RelayTable(loadConfig(`VIRTIOFWD_CPU_MASK=1,2\n${config}`, "f").config, dp, new Logger(0));
  return { dp, table };
}

/** What `fn` throws (it must throw). */
function thrown(fn: () => void): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a refusal, nothing was thrown");
}

Deno.test("relay table on a fake data path: a VF added and removed; the shim gets the device and the MTU, the VF->VM direction a worker while the VF is there", () => {
  const { dp, table } = fakeTable();
  table.addVf(3, "0000:05:08.3");
  assertJsonEq(dp.relays[3].vf, { devargs: "0000:05:08.3", mtu: 2100 }, "the shim has the VF at the original's MTU");
  assertEq(table.get(3).vf, "0000:05:08.3", "the table has it");
  assert(table.get(3).cpus[0] >= 1, `VF->VM placed: ${table.get(3).cpus}`);
  assertEq(table.get(3).cpus[1], -1, "no VM: VM->VF unplaced");
  table.removeVf(3);
  assertEq(dp.relays[3].vf, null, "detached in the shim");
  assertJsonEq(table.get(3).cpus, [-1, -1], "its worker released");
});

Deno.test("relay table on a fake data path: a device the shim cannot probe leaves the relay as it was and the refusal says which device; a second VF and a device on another relay are refused before the shim is asked", () => {
  const { dp, table } = fakeTable();
  dp.refuse.add("net_null7");
  const e = thrown(() => table.addVf(1, "net_null7"));
  assert(e instanceof DataplaneError && e.message.includes("net_null7"), `the shim's refusal: ${e}`);
  assertEq(table.get(1).vf, null, "nothing recorded");
  assertJsonEq(table.get(1).cpus, [-1, -1], "nothing placed");
  table.addVf(1, "net_null1");
  const calls = dp.cpuCalls.length;
  const second = thrown(() => table.addVf(1, "net_null2"));
  assert(second instanceof RelayError && second.code === 17, `a second VF: EEXIST (${second})`);
  const elsewhere = thrown(() => table.addVf(2, "net_null1"));
  assert(elsewhere instanceof RelayError && elsewhere.message.includes("relay 1"), `in use: ${elsewhere}`);
  assertEq(dp.relays[2].vf, null, "the shim was not asked");
  assertEq(dp.cpuCalls.length, calls, "nothing moved");
});

Deno.test("relay table on a fake data path: a bond's members reach the shim; a member already in another bond is refused naming that bond", () => {
  const { dp, table } = fakeTable();
  table.addBond(0, "net_bonding0", 1, ["net_null10", "net_null11"]);
  assertJsonEq(dp.relays[0].bond, { name: "net_bonding0", mode: 1, members: ["net_null10", "net_null11"] }, "bond");
  assertJsonEq(table.get(0).bond, { mode: 1, members: ["net_null10", "net_null11"] }, "the table's bond");
  const e = thrown(() => table.addBond(1, "net_bonding1", 1, ["net_null11", "net_null12"]));
  assert(e instanceof RelayError && e.message.includes("net_bonding0"), `member in use: ${e}`);
  table.removeVf(0);
  assertEq(dp.relays[0].bond, null, "the bond is gone from the shim");
  assertEq(table.get(0).bond, null, "and from the table");
});

Deno.test("relay table on a fake data path: a VM connects and leaves; both directions placed on connect, VM->VF released on leave, the VF's kept", () => {
  const { dp, table } = fakeTable();
  table.addSocket(2);
  table.addVf(2, "net_null2");
  dp.connectVm(2, 4);
  table.tick();
  const s = table.get(2);
  assertEq(s.vm, true, "VM connected");
  assertEq(s.queuePairs, 4, "its queue pairs");
  assert(s.cpus[0] >= 1 && s.cpus[1] >= 1, `both directions placed: ${s.cpus}`);
  assertJsonEq(dp.relays[2].cpus, s.cpus, "the shim has the same CPUs");
  dp.disconnectVm(2);
  table.tick();
  assertEq(table.get(2).vm, false, "VM gone");
  assertEq(table.get(2).cpus[1], -1, "VM->VF released");
  assertEq(table.get(2).cpus[0], s.cpus[0], "VF->VM kept (the VF is still there)");
});

Deno.test("relay table on a fake data path: a pinned relay's directions take their pinned CPUs whenever their side comes up", () => {
  const { dp, table } = fakeTable("VIRTIOFWD_CPU_PINS=5:2,1\n");
  table.addSocket(5);
  table.addVf(5, "net_null5");
  assertJsonEq(table.get(5).cpus, [2, 1], "the pin, as soon as the VF is there (VM->VF held for the VM)");
  dp.connectVm(5);
  table.tick();
  assertJsonEq(dp.relays[5].cpus, [2, 1], "the shim has the pinned CPUs");
  dp.disconnectVm(5);
  table.tick();
  assertJsonEq(table.get(5).cpus, [2, 1], "pinned CPUs kept when the VM leaves");
});

Deno.test("relay table on a fake data path: the VM side follows the data path at each tick, with no event at all (level-triggered); a VM that came and went between ticks leaves nothing placed", () => {
  const { dp, table } = fakeTable();
  table.addSocket(4);
  dp.connectVm(4, 2); // no event reaches the table (as when the queue overflows)
  assertEq(table.get(4).vm, true, "a snapshot reads the VM from the data path at once");
  assertEq(table.get(4).cpus[1], -1, "not placed before the tick");
  table.tick();
  assertEq(table.get(4).queuePairs, 2, "with its queue pairs");
  assert(table.get(4).cpus[1] >= 1, `VM->VF placed: ${table.get(4).cpus}`);
  dp.disconnectVm(4);
  table.tick();
  assertEq(table.get(4).cpus[1], -1, "released at the next tick");
  dp.connectVm(4, 1);
  dp.disconnectVm(4);
  table.tick();
  assertJsonEq(table.get(4).cpus, [-1, -1], "nothing placed for a VM already gone");
});
