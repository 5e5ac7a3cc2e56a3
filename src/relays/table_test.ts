import { assertEq, assertJsonEq } from "../../tests/rigs/assert.ts";
import { cpuNodes } from "../host/topology.ts";
import { leastBusyCpu, placementCandidates, type RelaySnapshot } from "./table.ts";

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

Deno.test("VIRTIOFWD_CPU_NIC_SAME_NUMA: the least busy worker on the relay's node; without the flag, or with no worker there, all workers", () => {
  const root = twoNodes();
  try {
    const nodes = cpuNodes(root), workers = [1, 2, 5, 6];
    const place = (node: number, sameNuma: boolean, relays: RelaySnapshot[]) =>
      leastBusyCpu(placementCandidates(workers, nodes, node, sameNuma), relays);
    assertEq(place(1, true, []), 5, "a relay on node 1 goes to node 1's first worker");
    assertEq(place(1, true, [relay(0, 5, -1)]), 6, "then to its other worker, not to the idle node-0 CPU 1");
    assertEq(place(1, false, [relay(0, 5, -1)]), 1, "without the flag: the least busy of all");
    assertEq(place(0, true, [relay(0, 1, -1), relay(1, 2, 2)]), 1, "node 0: CPU 1 (12) is less busy than 2 (22)");
    assertEq(place(3, true, []), 1, "no worker on the node: all workers");
    assertEq(place(-1, true, []), 1, "node unknown: all workers");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
