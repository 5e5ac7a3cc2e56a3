/**
 * The layers of docs/architecture.md hold in the code: every module of ffi/ and src/ lies in a
 * layer the page names, imports only from its own layer or below (never from tests/), and the
 * folders of one layer do not import each other in a circle.
 */

import { dirname, join, normalize, relative, resolve } from "node:path";
import { assert, assertJsonEq } from "./rigs/assert.ts";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");

/** The `layer N  folder folder...` lines of the page's "Layers" block. */
export function layersOf(page: string): Map<string, number> {
  const block = /```text layers\n([\s\S]*?)```/.exec(page);
  if (!block) throw new Error("docs/architecture.md has no ```text layers block");
  const out = new Map<string, number>();
  for (const line of block[1].split("\n")) {
    const m = /^layer (\d+)\s+(.+)$/.exec(line.trim());
    if (m) { for (const folder of m[2].trim().split(/\s+/)) out.set(folder, Number(m[1])); }
  }
  return out;
}

/** Relative module specifiers a file imports or re-exports, static and dynamic. */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"/gm,
    /^\s*import\s+"([^"]+)"/gm,
    /\bimport\(\s*"([^"]+)"\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) out.push(m[1]);
  return out.filter((s) => s.startsWith("."));
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...walk(p));
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(p);
  }
  return out;
}

/** The most specific folder of `layers` a repository path lies in. */
function folderOf(path: string, layers: Map<string, number>): string | undefined {
  let best: string | undefined;
  for (const folder of layers.keys()) {
    if ((path === folder || path.startsWith(folder + "/")) && (!best || folder.length > best.length)) best = folder;
  }
  return best;
}

/** A module: its path from the repository root and its text. */
export interface Module {
  path: string;
  source: string;
}

/** The modules of ffi/ and src/ (tests excluded). */
export function productModules(): Module[] {
  return [...walk(join(ROOT, "ffi")), ...walk(join(ROOT, "src"))].map((f) => ({
    path: relative(ROOT, f),
    source: Deno.readTextFileSync(f),
  }));
}

/** Every import edge of `modules` that breaks the layering, as readable lines. */
export function layerViolations(layers: Map<string, number>, modules: Module[]): string[] {
  const bad: string[] = [];
  const folderEdges = new Map<string, Set<string>>();
  for (const { path: from, source } of modules) {
    const fromFolder = folderOf(from, layers);
    if (fromFolder === undefined) {
      bad.push(`${from} lies in no layer of docs/architecture.md`);
      continue;
    }
    for (const spec of importsOf(source)) {
      const to = normalize(join(dirname(from), spec));
      if (to.startsWith("tests/")) {
        bad.push(`${from} imports test code ${to}`);
        continue;
      }
      const toFolder = folderOf(to, layers);
      if (toFolder === undefined) {
        bad.push(`${from} imports ${to}, which lies in no layer`);
      } else if (layers.get(toFolder)! > layers.get(fromFolder)!) {
        bad.push(`${from} (layer ${layers.get(fromFolder)}) imports upward: ${to} (layer ${layers.get(toFolder)})`);
      } else if (toFolder !== fromFolder) {
        const set = folderEdges.get(fromFolder) ?? new Set();
        set.add(toFolder);
        folderEdges.set(fromFolder, set);
      }
    }
  }
  // Folders of one layer may use each other one way only.
  for (const [a, targets] of folderEdges) {
    for (const b of targets) {
      if (a < b && folderEdges.get(b)?.has(a)) bad.push(`${a} and ${b} import each other`);
    }
  }
  return bad;
}

Deno.test("architecture: every module of ffi/ and src/ imports only from its own layer or below, as docs/architecture.md lists them", () => {
  const layers = layersOf(Deno.readTextFileSync(join(ROOT, "docs/architecture.md")));
  assert(layers.size > 5, "the page lists the layers");
  const bad = layerViolations(layers, productModules());
  assertJsonEq(bad, [], "layer violations");
});

Deno.test("architecture: the layer check fails on an upward import, a circle within a layer, test code in src/ and an unplaced folder", () => {
  const layers = new Map([["ffi", 0], ["src/common", 1], ["src/relays", 2], ["src/dataplane", 2], ["src/daemon", 4]]);
  const bad = layerViolations(layers, [
    { path: "src/common/log.ts", source: `import { RelayTable } from "../relays/table.ts";` },
    { path: "src/relays/table.ts", source: `import type { Dataplane } from "../dataplane/dataplane.ts";` },
    {
      path: "src/dataplane/dataplane.ts",
      source: `export { x } from "../relays/table.ts";\nimport "../../ffi/shim.ts";`,
    },
    { path: "src/daemon/daemon.ts", source: `const r = await import("../../tests/rigs/assert.ts");` },
    { path: "src/stray/x.ts", source: "" },
  ]);
  assertJsonEq(bad, [
    "src/common/log.ts (layer 1) imports upward: src/relays/table.ts (layer 2)",
    "src/daemon/daemon.ts imports test code tests/rigs/assert.ts",
    "src/stray/x.ts lies in no layer of docs/architecture.md",
    "src/dataplane and src/relays import each other",
  ], "each kind of violation");
  assertJsonEq(
    importsOf(`import { c } from "@optique/core";\nimport { d } from "node:path";`),
    [],
    "packages are no edges",
  );
});

/** The modules `from` reaches through its imports (transitively), as paths relative to the root. */
function reachable(from: string, modules: Module[]): Set<string> {
  const byPath = new Map(modules.map((m) => [m.path, m]));
  const seen = new Set<string>(), todo = [from];
  while (todo.length > 0) {
    const path = todo.pop()!, m = byPath.get(path);
    for (const spec of m ? importsOf(m.source) : []) {
      const to = normalize(join(dirname(path), spec));
      if (!seen.has(to)) {
        seen.add(to);
        todo.push(to);
      }
    }
  }
  return seen;
}

Deno.test("architecture: reading a configuration loads no library: src/config/ reaches nothing in ffi/ but the generated constants of ffi/layout.ts (so 'vio4wd stats' and 'config check' run where DPDK does not load)", () => {
  const modules = productModules();
  for (const m of modules.filter((m) => m.path.startsWith("src/config/") && !m.path.endsWith("_test.ts"))) {
    const ffi = [...reachable(m.path, modules)].filter((p) => p.startsWith("ffi/") && p !== "ffi/layout.ts");
    assertJsonEq(ffi, [], `${m.path} reaches`);
  }
  const layout = modules.find((m) => m.path === "ffi/layout.ts")!;
  assertJsonEq(importsOf(layout.source), [], "ffi/layout.ts imports nothing");
});
