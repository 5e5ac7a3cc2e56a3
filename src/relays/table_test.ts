import { assert, assertEq, assertJsonEq } from "../../tests/rigs/assert.ts";
import { cpuNodes } from "../host/topology.ts";
import { loadConfig } from "../config/config.ts";
import { Logger } from "../common/log.ts";
import type { Dataplane } from "../dataplane/dataplane.ts";
import { leastBusyCpu, placementCandidates, type RelaySnapshot, RelayTable } from "./table.ts";

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
function fakeDataplane(node: { value: number }) {
  const assigned = new Map<number, [number, number]>();
  const dp = {
    limits: { maxRelays: 4, maxQueuePairs: 32, maxBondMembers: 8, maxPorts: 32 },
    attachVf: () => {},
    detachVf: () => {},
    registerSocket: () => {},
    setCpus: (id: number, a: number, b: number) => assigned.set(id, [a, b]),
    report: () => ({ numaNode: node.value }),
  };
  return { dp: dp as unknown as Dataplane, assigned };
}

Deno.test("NUMA placement as the original, by default: a relay's VF->VM on the least busy worker of its VF's node, both directions on the guest memory's node once the VM connects", () => {
  const root = twoNodes();
  try {
    const node = { value: 1 }; // the VF (and so the pool) on node 1
    const { dp, assigned } = fakeDataplane(node);
    const config = loadConfig("VIRTIOFWD_CPU_MASK=1,2,5,6\n", "f").config;
    const table = new RelayTable(config, dp, new Logger(0), cpuNodes(root));
    table.addVf(0, "net_null0");
    assertJsonEq(assigned.get(0), [5, -1], "VF->VM on node 1's first worker");
    table.addVf(1, "net_null1");
    assertJsonEq(assigned.get(1), [6, -1], "the next relay's on node 1's other worker");
    node.value = 0; // the guest's memory is on node 0: the shim moved the pool there
    table.handle({ type: "vm-connected", relay: 0, queuePairs: 1, numaNode: 0 });
    assertJsonEq(assigned.get(0), [2, 1], "VM->VF on node 0's least busy worker, VF->VM placed again beside it");
    node.value = 3; // a node without workers: all workers are candidates
    table.handle({ type: "vm-connected", relay: 1, queuePairs: 1, numaNode: 3 });
    const [up, down] = assigned.get(1)!;
    assert(config.cpus.includes(up) && config.cpus.includes(down), `placed on workers: ${up}, ${down}`);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
