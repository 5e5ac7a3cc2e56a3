import { assert, assertEq, assertJsonEq } from "../tests/rigs/assert.ts";
import { HEADER, LAYOUT_MODULE, layoutModule, parseHeader } from "./gen_layout.ts";
import { DIR_COUNTERS, WORKER_COUNTERS, WORKER_STEPS } from "../ffi/shim.ts";
import { SHIM_ENUMS, SHIM_STRUCTS } from "../ffi/layout.ts";

const camel = (snake: string) => snake.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

Deno.test("ffi/layout.ts is what shim/vio4wd_shim.h generates (run 'deno task layout')", async () => {
  const want = layoutModule(await Deno.readTextFile(HEADER));
  if (await Deno.readTextFile(LAYOUT_MODULE) !== want) {
    throw new Error("ffi/layout.ts is stale: run 'deno task layout'");
  }
});

Deno.test("the generated layout is the compiler's: every struct's size and every field's offset and size, checked by _Static_assert", async () => {
  const lines = ["#include <stddef.h>", '#include "vio4wd_shim.h"'];
  for (const [name, st] of Object.entries(SHIM_STRUCTS)) {
    lines.push(`_Static_assert(sizeof(struct ${name}) == ${st.size}, "${name} size");`);
    for (const [f, x] of Object.entries(st.fields)) {
      lines.push(`_Static_assert(offsetof(struct ${name}, ${f}) == ${x.offset}, "${name}.${f}");`);
      lines.push(`_Static_assert(sizeof(((struct ${name} *)0)->${f}) == ${x.size * x.count}, "${name}.${f} size");`);
    }
  }
  const shim = new URL("../shim", import.meta.url).pathname;
  const cc = new Deno.Command("cc", {
    args: ["-std=gnu11", "-fsyntax-only", "-I", shim, "-x", "c", "-"],
    stdin: "piped",
    stderr: "piped",
  }).spawn();
  const w = cc.stdin.getWriter();
  await w.write(new TextEncoder().encode(lines.join("\n") + "\n"));
  await w.close();
  const out = await cc.output();
  assertEq(out.code, 0, `the compiler disagrees:\n${new TextDecoder().decode(out.stderr)}`);
  assert(lines.length > 60, `${lines.length} checks`);
});

Deno.test("the binding's counter and step names follow the header's order", () => {
  const dir = Object.keys(SHIM_STRUCTS.vio4wd_dir_stats.fields).map(camel);
  assertJsonEq([...DIR_COUNTERS], dir, "struct vio4wd_dir_stats");
  const worker = Object.keys(SHIM_STRUCTS.vio4wd_worker_stats.fields).map(camel);
  assertJsonEq([...WORKER_COUNTERS, "stepCycles"], worker, "struct vio4wd_worker_stats");
  const steps = Object.entries(SHIM_ENUMS.vio4wd_step).filter(([k]) => k !== "VIO4WD_STEPS")
    .sort((a, b) => a[1] - b[1]).map(([k]) => camel(k.slice("VIO4WD_STEP_".length)));
  assertJsonEq([...WORKER_STEPS], steps, "enum vio4wd_step");
  assert(SHIM_STRUCTS.vio4wd_worker_stats.fields.step_cycles.count >= WORKER_STEPS.length, "room per step");
});

Deno.test("the layout parser lays out padding and arrays as C does and refuses what it cannot lay out, naming it", () => {
  let msg = "";
  try {
    parseHeader("struct x { float f; };");
  } catch (e) {
    msg = String(e);
  }
  assert(msg.includes("unknown type 'float' of f"), msg);
  const l = parseHeader("#define VIO4WD_N 3\nstruct a { uint8_t b; uint64_t c[VIO4WD_N]; uint16_t d; };");
  assertJsonEq(l.structs.a, {
    size: 40,
    align: 8,
    fields: {
      b: { type: "uint8_t", offset: 0, size: 1, count: 1 },
      c: { type: "uint64_t", offset: 8, size: 8, count: 3 },
      d: { type: "uint16_t", offset: 32, size: 2, count: 1 },
    },
  }, "padding and alignment");
});
