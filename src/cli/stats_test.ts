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
