import { workerLoad } from "./worker_load.ts";
import { assertEq } from "../../tests/rigs/assert.ts";

const c = (busyCycles: bigint, idleCycles: bigint, rxPkts: bigint, longPasses = 0n) => ({
  busyCycles,
  idleCycles,
  rxPkts,
  longPasses,
});

Deno.test("workerLoad: busy share and cycles per packet of a window, since start, and none without cycles or packets", () => {
  const a = workerLoad(c(3000n, 1000n, 100n, 1n));
  assertEq(a.busyShare, 0.75, "busy share since start");
  assertEq(a.cyclesPerPkt, 30, "cycles per packet since start");
  const b = workerLoad(c(5000n, 4000n, 150n, 3n), c(3000n, 1000n, 100n, 1n));
  assertEq(b.busyShare, 0.4, "window busy share: 2000 of 5000");
  assertEq(b.cyclesPerPkt, 40, "window: 2000 cycles for 50 packets");
  assertEq(b.longPasses, 2n, "long passes in the window");
  const idle = workerLoad(c(0n, 500n, 0n));
  assertEq(idle.busyShare, 0, "idle worker");
  assertEq(idle.cyclesPerPkt, null, "no packets: no figure");
  assertEq(workerLoad(c(0n, 0n, 0n)).busyShare, null, "no cycles: no figure");
});
