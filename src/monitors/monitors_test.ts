import { JsonFramer, JsonStreamError, MAX_DEPTH, MAX_MESSAGE_CHARS, ovsdbMap, rowMapping, tagNumber } from "./ovsdb.ts";
import { parseIpcCommand } from "./ipc.ts";
import { mapNetdev } from "./netdev.ts";
import { fakeSysfs } from "../../tests/rigs/sysfs.ts";
import { assertEq } from "../../tests/rigs/assert.ts";

Deno.test("sysfs maps a VF netdev to its PCI address and VF number; other interfaces are clear errors", () => {
  const root = Deno.makeTempDirSync();
  try {
    fakeSysfs(root, [3, 7]);
    const m = mapNetdev("vf7", root);
    assertEq(`${m.device} ${m.relay}`, "0000:05:08.7 7", "vf7");
    for (
      const [dev, text] of [["lo", "not a PCI network interface"], ["nope0", "does not exist"], [
        "a/b",
        "not a network",
      ]]
    ) {
      try {
        mapNetdev(dev, root);
        throw new Error(`${dev}: no error`);
      } catch (e) {
        if (!(e as Error).message.includes(text)) throw new Error(`${dev}: ${(e as Error).message}`);
      }
    }
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("OVSDB tags: any number enables (0, hex, octal as strtol), anything else does not", () => {
  for (
    const [v, n] of [["1", 1], ["0", 0], ["0x10", 16], ["010", 8], ["yes", null], ["", null], ["1x", null]] as const
  ) {
    assertEq(tagNumber(v), n, `tag '${v}'`);
  }
  const map = (name: string) => ({ device: `pci-of-${name}`, relay: 5 });
  assertEq(rowMapping({ name: "eth1", externalIds: { virtio_forwarder: "0" } }, map)?.relay, 5, "sysfs relay id");
  assertEq(
    rowMapping({ name: "eth1", externalIds: { virtio_relay: "1" } }, map)?.device,
    "pci-of-eth1",
    "virtio_relay",
  );
  assertEq(rowMapping({ name: "eth1", externalIds: { virtio_forwarder: "yes" } }, map), null, "not a number");
  assertEq(rowMapping({ name: "eth1", externalIds: {} }, map), null, "untagged");
  const direct = rowMapping({ name: "x", externalIds: { virtio_forwarder: "9", vio4wd_device: "net_null0" } }, map);
  assertEq(`${direct?.device} ${direct?.relay}`, "net_null0 9", "vio4wd_device with the tag as relay id");
  assertEq(JSON.stringify(ovsdbMap(["map", [["a", "1"], ["b", "x"]]])), '{"a":"1","b":"x"}', "OVSDB map");
});

Deno.test("JSON-RPC framing: messages split across reads and packed into one read come out whole", () => {
  const f = new JsonFramer();
  const enc = new TextEncoder();
  const text = '{"id":1,"result":{"s":"a}\\"{"}}{"method":"echo","params":[]}';
  const out = [
    ...f.push(enc.encode(text.slice(0, 9))),
    ...f.push(enc.encode(text.slice(9, 30))),
    ...f.push(enc.encode(text.slice(30))),
  ];
  assertEq(out.length, 2, "messages");
  assertEq((out[0] as { result: { s: string } }).result.s, 'a}"{', "string with braces and quotes");
  assertEq((out[1] as { method: string }).method, "echo", "second message");
});

Deno.test("IPC commands: add_port/del_port <netdev>; everything else is refused with the reason", () => {
  assertEq(JSON.stringify(parseIpcCommand("add_port vf3\n")), '{"op":"add","netdev":"vf3"}', "add");
  assertEq(JSON.stringify(parseIpcCommand("del_port vf3")), '{"op":"del","netdev":"vf3"}', "del");
  for (const bad of ["a_whatever vf3", "add_port", "add_port a b", "add_port a/b", "x".repeat(200)]) {
    if (!("error" in parseIpcCommand(bad))) throw new Error(`'${bad.slice(0, 20)}' accepted`);
  }
});

Deno.test("JSON-RPC framing against a hostile server: garbage, a message above 4 MiB and deep nesting end the stream at once; a big message cut in pieces is scanned once", () => {
  const enc = new TextEncoder();
  const fails = (f: JsonFramer, chunks: Uint8Array[]) => {
    try {
      for (const c of chunks) f.push(c);
    } catch (e) {
      if (e instanceof JsonStreamError) return e.message;
      throw e;
    }
    return null;
  };
  const garbage = new JsonFramer();
  assertEq(fails(garbage, [new Uint8Array(8 << 20).fill(0x61)]), "'a' between JSON-RPC messages", "8 MiB of garbage");
  assertEq(garbage.scanned, 1, "refused at the first byte");
  const huge = new JsonFramer();
  const piece = enc.encode("x".repeat(64 * 1024));
  const why = fails(huge, [enc.encode('{"s":"'), ...Array.from({ length: 80 }, () => piece)]);
  assertEq(why, "a message above 4 MiB", "5 MiB in one string");
  if (huge.scanned > MAX_MESSAGE_CHARS + 2 * piece.length) throw new Error(`scanned ${huge.scanned}`);
  assertEq(
    fails(new JsonFramer(), [enc.encode("[".repeat(MAX_DEPTH + 1))]),
    `a message nested deeper than ${MAX_DEPTH}`,
    "deep",
  );
  assertEq(
    fails(new JsonFramer(), [enc.encode('{"a":1,}')]),
    "a message that is not JSON (Expected double-quoted property name in JSON at position 7 (line 1 column 8))",
    "not JSON",
  );
  // 3 MiB of real message in 64 KiB pieces: parsed once, every character scanned once
  const big = enc.encode(JSON.stringify({ id: 1, result: { s: "y".repeat(3 << 20) } }) + "\n");
  const f = new JsonFramer();
  const got: unknown[] = [];
  for (let i = 0; i < big.length; i += 64 * 1024) got.push(...f.push(big.subarray(i, i + 64 * 1024)));
  assertEq(got.length, 1, "one message");
  assertEq(f.scanned, big.length, "each character scanned once");
});
