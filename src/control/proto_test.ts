import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  CoreSchedResponseSchema,
  PortControlRequest_Op,
  PortControlRequestSchema,
  StatsRequestSchema,
} from "./gen/virtioforwarder_pb.ts";
import { missingRequired } from "./proto_check.ts";
import { assertEq } from "../../tests/rigs/assert.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("the generated code is what `deno task proto` makes from virtioforwarder.proto (not stale)", async () => {
  const out = await Deno.makeTempDir();
  try {
    const dir = new URL(".", import.meta.url).pathname;
    const root = new URL("../../", import.meta.url).pathname;
    const r = await new Deno.Command("protoc", {
      args: [
        `--plugin=protoc-gen-es=${root}node_modules/.bin/protoc-gen-es`,
        `--es_out=${out}`,
        "--es_opt=target=ts,import_extension=ts",
        `--proto_path=${dir}`,
        "virtioforwarder.proto",
      ],
      stderr: "piped",
    }).output();
    if (!r.success) throw new Error(`protoc failed: ${new TextDecoder().decode(r.stderr)}`);
    const fresh = await Deno.readTextFile(`${out}/virtioforwarder_pb.ts`);
    const committed = await Deno.readTextFile(`${dir}gen/virtioforwarder_pb.ts`);
    if (fresh !== committed) throw new Error("src/control/gen/virtioforwarder_pb.ts is stale: run `deno task proto`");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("messages encode byte for byte as the original's protobuf-c/Python peers do", () => {
  // What the original's tool sends for: add --virtio-id 1 --pci-addr 0000:05:08.1 (conditional false).
  const add = create(PortControlRequestSchema, {
    op: PortControlRequest_Op.ADD,
    pciAddrs: [{ domain: 0, bus: 5, slot: 8, function: 1 }],
    virtioId: 1,
    conditional: false,
  });
  assertEq(hex(toBinary(PortControlRequestSchema, add)), "08 00 12 08 08 00 10 05 18 08 20 01 18 01 20 00", "ADD");
  // relay is packed; eal_cores is not.
  assertEq(
    hex(toBinary(StatsRequestSchema, create(StatsRequestSchema, { relay: [1, 2], delay: 200 }))),
    "0a 02 01 02 18 c8 01",
    "stats",
  );
  const cores = create(CoreSchedResponseSchema, { status: 1, ealCores: [1, 2] });
  assertEq(hex(toBinary(CoreSchedResponseSchema, cores)), "20 01 38 01 38 02", "eal_cores");
  // Defaults of absent fields.
  const empty = fromBinary(PortControlRequestSchema, new Uint8Array([0x08, 0x04]));
  assertEq(empty.conditional, true, "conditional defaults to true");
  assertEq(
    fromBinary(StatsRequestSchema, new Uint8Array(0)).includeInactive,
    true,
    "include_inactive defaults to true",
  );
});

Deno.test("a missing required field is found, also inside repeated messages", () => {
  assertEq(
    missingRequired(PortControlRequestSchema, fromBinary(PortControlRequestSchema, new Uint8Array([0x18, 1]))),
    "op",
    "op",
  );
  const noFunction = new Uint8Array([0x08, 0x00, 0x12, 0x06, 0x08, 0x00, 0x10, 0x05, 0x18, 0x08]);
  assertEq(
    missingRequired(PortControlRequestSchema, fromBinary(PortControlRequestSchema, noFunction)),
    "pci_addrs[0].function",
    "PciAddress.function",
  );
  assertEq(
    missingRequired(PortControlRequestSchema, fromBinary(PortControlRequestSchema, new Uint8Array([8, 0]))),
    null,
    "valid",
  );
});
