/**
 * `deno task layout`: writes ffi/layout.ts from shim/vio4wd_shim.h, so that the memory the shim
 * shares and the structs it fills are described once, in C. The header's numeric `#define
 * VIO4WD_*` constants, its enums and its structs (offset and size of every field, by the x86-64
 * System V rules the compiler follows; shim/eal.c checks the sizes with _Static_assert) become
 * TypeScript constants. A test fails when the committed file is stale.
 *
 * The parser reads what the header uses, no more: fixed-width integer fields, arrays of them or of
 * structs declared before, with sizes given as numbers or constants, and
 * `__attribute__((aligned(N)))` after a struct.
 *
 * @module
 */

/** One field of a struct: its C type, byte offset, element size, element count (1 unless an array). */
export interface FieldLayout {
  type: string;
  offset: number;
  size: number;
  count: number;
}

/** A struct: size, alignment and fields in declaration order. */
export interface StructLayout {
  size: number;
  align: number;
  fields: Record<string, FieldLayout>;
}

/** What the header declares. */
export interface HeaderLayout {
  constants: Record<string, number>;
  enums: Record<string, Record<string, number>>;
  structs: Record<string, StructLayout>;
}

const INTEGERS: Record<string, number> = {
  uint8_t: 1,
  int8_t: 1,
  uint16_t: 2,
  int16_t: 2,
  uint32_t: 4,
  int32_t: 4,
  uint64_t: 8,
  int64_t: 8,
};

const stripComments = (s: string) => s.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/.*$/gm, " ");
const roundUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** A constant expression of the header: a number (`64`, `0x10`, `5u`), `(1u << N)` or a constant's name. */
function evaluate(expr: string, constants: Record<string, number>): number | null {
  const e = expr.trim().replace(/^\((.*)\)$/, "$1").trim();
  const num = /^(0x[0-9a-fA-F]+|\d+)[uUlL]*$/.exec(e);
  if (num) return Number(num[1]);
  const shift = /^(\d+)[uU]?\s*<<\s*(\d+)$/.exec(e);
  if (shift) return Number(shift[1]) * 2 ** Number(shift[2]);
  if (/^VIO4WD_\w+$/.test(e) && e.slice("VIO4WD_".length) in constants) return constants[e.slice("VIO4WD_".length)];
  return null;
}

/** Parses `header` (the text of vio4wd_shim.h). Throws naming a declaration it cannot lay out. */
export function parseHeader(header: string): HeaderLayout {
  const text = stripComments(header);
  const constants: Record<string, number> = {};
  for (const m of text.matchAll(/^#define\s+VIO4WD_(\w+)\s+(.+)$/gm)) {
    const v = evaluate(m[2], constants);
    if (v !== null) constants[m[1]] = v;
  }
  const enums: Record<string, Record<string, number>> = {};
  for (const m of text.matchAll(/\benum\s+(\w+)\s*\{([^}]*)\}/g)) {
    const members: Record<string, number> = {};
    let next = 0;
    for (const item of m[2].split(",").map((s) => s.trim()).filter(Boolean)) {
      const [name, value] = item.split("=").map((s) => s.trim());
      const v = value === undefined ? next : evaluate(value, constants);
      if (v === null) throw new Error(`enum ${m[1]}: cannot evaluate ${item}`);
      members[name] = v;
      next = v + 1;
    }
    enums[m[1]] = members;
  }
  const structs: Record<string, StructLayout> = {};
  for (const m of text.matchAll(/\bstruct\s+(\w+)\s*\{([^}]*)\}\s*(?:__attribute__\(\(aligned\((\d+)\)\)\))?\s*;/g)) {
    const [, name, body, alignedTo] = m;
    const fields: Record<string, FieldLayout> = {};
    let offset = 0, align = 1;
    for (const decl of body.split(";").map((s) => s.trim().replace(/\s+/g, " ")).filter(Boolean)) {
      const d = /^(struct \w+|\w+) (\w+)(?:\[(\w+)\])?$/.exec(decl);
      if (!d) throw new Error(`struct ${name}: cannot lay out '${decl}'`);
      const [, type, field, dim] = d;
      const inner = type.startsWith("struct ") ? structs[type.slice("struct ".length)] : undefined;
      const size = inner?.size ?? INTEGERS[type];
      if (size === undefined) throw new Error(`struct ${name}: unknown type '${type}' of ${field}`);
      const fieldAlign = inner?.align ?? size;
      const count = dim === undefined ? 1 : dim in constants ? constants[dim] : evaluate(dim, constants);
      if (count === null) throw new Error(`struct ${name}: cannot evaluate the size of ${field}[${dim}]`);
      offset = roundUp(offset, fieldAlign);
      fields[field] = { type, offset, size, count };
      offset += size * count;
      align = Math.max(align, fieldAlign);
    }
    if (alignedTo) align = Math.max(align, Number(alignedTo));
    structs[name] = { size: roundUp(offset, align), align, fields };
  }
  return { constants, enums, structs };
}

/** The text of ffi/layout.ts for `header`. */
export function layoutModule(header: string): string {
  const l = parseHeader(header);
  // written as dprint formats it (unquoted keys, trailing commas)
  const json = (v: unknown) =>
    JSON.stringify(v, null, 2).replace(/"(\w+)":/g, "$1:").replace(/([^{\s])(?=\n\s*})/g, "$1,");
  return [
    "// Generated from shim/vio4wd_shim.h by scripts/gen_layout.ts (`deno task layout`): do not edit.",
    "",
    "/** The header's numeric `#define VIO4WD_*` constants, without the prefix. */",
    `export const SHIM_CONSTANTS = ${json(l.constants)} as const;`,
    "",
    "/** The header's enums. */",
    `export const SHIM_ENUMS = ${json(l.enums)} as const;`,
    "",
    "/** The header's structs: size, alignment, and each field's C type, byte offset, element size and count. */",
    `export const SHIM_STRUCTS = {`,
    ...Object.entries(l.structs).flatMap(([name, st]) => [
      `  ${name}: {`,
      `    size: ${st.size},`,
      `    align: ${st.align},`,
      `    fields: {`,
      ...Object.entries(st.fields).map(([f, x]) =>
        `      ${f}: { type: "${x.type}", offset: ${x.offset}, size: ${x.size}, count: ${x.count} },`
      ),
      `    },`,
      `  },`,
    ]),
    `} as const;`,
    "",
  ].join("\n");
}

export const HEADER = new URL("../shim/vio4wd_shim.h", import.meta.url);
export const LAYOUT_MODULE = new URL("../ffi/layout.ts", import.meta.url);

if (import.meta.main) {
  await Deno.writeTextFile(LAYOUT_MODULE, layoutModule(await Deno.readTextFile(HEADER)));
  console.log(`wrote ${LAYOUT_MODULE.pathname}`);
}
