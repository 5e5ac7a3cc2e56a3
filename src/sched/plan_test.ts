import { coefficientOfVariation, decide, proposeMapping, type RelayRates, vfToVmLoad, vmToVfLoad } from "./plan.ts";
import { assert, assertEq } from "../../tests/rigs/assert.ts";

/** A relay moving `mpps` of 64-byte packets each way, on CPUs [vfToVm, vmToVf], pool on `node`. */
function relay(id: number, mpps: number, cpus: [number, number], node = 0): RelayRates {
  const p = mpps * 1e6, b = p * 64;
  return {
    id,
    socketId: node,
    vfToVmCpu: cpus[0],
    vmToVfCpu: cpus[1],
    pktRxFromVf: p,
    byteRxFromVf: b,
    pktTxToVm: p,
    byteTxToVm: b,
    pktRxFromVm: p,
    byteRxFromVm: b,
    pktTxToVf: p,
    byteTxToVf: b,
  };
}
const node0 = () => 0;

Deno.test("the load model is the original's: 0.082/0.0795 per Mpps plus 9.3e-5/8.2e-5 per MB/s", () => {
  const r = relay(0, 1, [1, 1]);
  assertEq(vmToVfLoad(r).toFixed(6), (0.082 + 9.3e-5 * 64).toFixed(6), "VM->VF at 1 Mpps of 64 B");
  assertEq(vfToVmLoad(r).toFixed(6), (0.0795 + 8.2e-5 * 64).toFixed(6), "VF->VM at 1 Mpps of 64 B");
  assertEq(coefficientOfVariation([0, 0]), -1, "no load");
  assertEq(coefficientOfVariation([1, 1]), 0, "even load");
});

Deno.test("balanced snapshot: nothing moves", () => {
  const relays = [relay(0, 2, [1, 1]), relay(1, 2, [2, 2])];
  const { decisions } = decide([1, 2], relays, node0, 0.25);
  assertEq(decisions[0].apply, null, "no UPDATE");
});

Deno.test("two hot relays on one CPU: one moves to the idle CPU", () => {
  const relays = [relay(0, 3, [1, 1]), relay(1, 3, [1, 1]), relay(2, 0.1, [2, 2])];
  const d = decide([1, 2], relays, node0, 0.25).decisions[0];
  if (!d.apply) throw new Error(`expected a move: ${d.reason}`);
  const cpusOf = (id: number) => d.apply!.find((m) => m.relay === id)!;
  const onCpu1 = [0, 1].filter((id) => cpusOf(id).vfToVm === 1 || cpusOf(id).vmToVf === 1).length;
  if (
    onCpu1 === 2 && cpusOf(0).vfToVm === 1 && cpusOf(1).vfToVm === 1 && cpusOf(0).vmToVf === 1 && cpusOf(1).vmToVf === 1
  ) {
    throw new Error(`both hot relays stay on CPU 1: ${JSON.stringify(d.apply)}`);
  }
  if (!(d.planCv < d.currentCv)) throw new Error(`plan CV ${d.planCv} not below ${d.currentCv}`);
});

Deno.test("one hot relay: its two directions go to different CPUs", () => {
  const plan = proposeMapping([1, 2], [relay(0, 5, [1, 1])]);
  if (plan[0].vfToVm === plan[0].vmToVf) throw new Error(`directions share a CPU: ${JSON.stringify(plan)}`);
  const d = decide([1, 2], [relay(0, 5, [1, 1])], node0, 0.25).decisions[0];
  if (!d.apply) throw new Error("expected the relay to be split over the two CPUs");
});

Deno.test("NUMA split: relays are balanced within their node; an 'any node' relay is left out", () => {
  const nodeOf = (cpu: number) => cpu >= 3 ? 1 : 0;
  const relays = [
    relay(0, 3, [1, 1], 0),
    relay(1, 3, [1, 1], 0),
    relay(2, 3, [3, 3], 1),
    relay(3, 1, [1, 1], 4294967295),
  ];
  const { decisions, skipped } = decide([1, 2, 3, 4], relays, nodeOf, 0.25);
  assertEq(skipped.join(","), "3", "skipped relays");
  // node 0 has two hot relays on CPU 1 and CPU 2 idle: it must move (else "balanced" proves nothing)
  const node0Decision = decisions.find((d) => d.workers.includes(1));
  assert(node0Decision?.apply != null, `node 0 moves something: ${node0Decision?.reason}`);
  const cpus0 = node0Decision!.apply!.filter((m) => m.relay <= 1).flatMap((m) => [m.vfToVm, m.vmToVf]);
  assert(cpus0.includes(1) && cpus0.includes(2), `node 0's relays use both of its CPUs: ${JSON.stringify(cpus0)}`);
  for (const d of decisions) {
    for (const m of d.apply ?? []) {
      if (!d.workers.includes(m.vfToVm) || !d.workers.includes(m.vmToVf)) {
        throw new Error(`node ${d.group}: relay ${m.relay} placed outside the node: ${JSON.stringify(m)}`);
      }
    }
  }
  const global = decide([1, 2, 3, 4], relays, nodeOf, 0.25, true);
  assertEq(global.decisions.length, 1, "one global group");
});

Deno.test("flapping input: small differences within the sensitivity never trigger a move", () => {
  // Loads jitter by +-10% around an even split: the plan is never 0.25 better.
  for (let i = 0; i < 20; i++) {
    const j = 1 + (i % 2 ? 0.1 : -0.1);
    const relays = [relay(0, 2 * j, [1, 1]), relay(1, 2 / j, [2, 2])];
    const d = decide([1, 2], relays, node0, 0.25).decisions[0];
    assertEq(d.apply, null, `round ${i}`);
  }
});
