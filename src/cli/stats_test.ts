import { create } from "@bufbuild/protobuf";
import { RelayStateSchema } from "../control/gen/virtioforwarder_pb.ts";
import { assert } from "../../tests/rigs/assert.ts";
import { statsTable } from "./stats.ts";

Deno.test("stats table: a relay on no particular NUMA node shows '-', not the wire's 4294967295; a node shows its number", () => {
  const relay = (socketId: number) =>
    create(RelayStateSchema, {
      id: 0,
      active: true,
      socketId,
      vfToVm: {},
      vmToVf: {},
      vhost: { vhostSocketName: "/s" },
    });
  const any = statsTable([relay(4294967295)]);
  assert(any.includes("NUMA -") && !any.includes("4294967295"), any);
  assert(statsTable([relay(1)]).includes("NUMA 1"), "node 1");
});

Deno.test("stats table: the legend of '*' only when a row has one; the VF's losses shown when the relay has a VF", () => {
  const relay = (active: boolean, vf: boolean) =>
    create(RelayStateSchema, {
      id: 0,
      active,
      socketId: 0,
      vfToVm: {},
      vmToVf: {},
      vhost: { vhostSocketName: "/s" },
      ...(vf ? { vf: { pciAddrStr: "0000:05:08.1" }, vfRxMissed: 7n, vfRxNombuf: 0n } : {}),
    });
  assert(!statsTable([relay(false, false)]).includes("* = active"), "no active row: no legend");
  const on = statsTable([relay(true, true)]);
  assert(on.includes("* = active") && on.includes("VF missed 7 no-mbuf 0"), on);
});
