/**
 * functions/lib/ is layered, and each folder imports only the folders below it:
 *   entry/ (starting executions)  →  workflow/ (state, middleware, errors naming, compensation)
 *   →  kube/ (Kubernetes client, aws-auth)  →  aws/ (SDK clients, EKS token)  →  domain/ (pure: schema, naming, builders)
 * functions/{api,events,steps} sit above all of lib/. A file that imports upward (or a new folder nobody placed) fails here.
 * Nor may any file under functions/, stacks/ or local/ (the sandbox) import itself round a cycle, not even through `import type`: a cycle
 * means two files are one concept split in two, or a shared type sits in the wrong one.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const LIB = join(ROOT, "functions/lib");
/** Lowest first: a folder may import its own folder and those before it. */
const LAYERS = ["domain", "aws", "kube", "workflow", "entry"] as const;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

/** The relative specifiers a source names: `import`, `import type`, `export … from` and `import()` alike. */
function relativeSpecifiers(text: string): string[] {
  return [...text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]);
}

function relativeImports(file: string): string[] {
  return relativeSpecifiers(readFileSync(file, "utf8")).map((s) => resolve(dirname(file), s));
}

/** file → the source files it imports (`./x.js` in an import is `./x.ts` on disk). */
function importGraph(files: string[]): Map<string, string[]> {
  return new Map(files.map((file) => [file, relativeImports(file).map((target) => target.replace(/\.js$/, ".ts"))]));
}

/**
 * The import cycles a depth-first walk meets, each as the files round it with the first repeated at the end.
 * Empty exactly when the graph has none (every cycle holds a back edge the walk finds).
 */
function importCycles(graph: Map<string, string[]>): string[][] {
  const finished = new Set<string>();
  const path: string[] = [];
  const cycles: string[][] = [];
  const visit = (file: string) => {
    path.push(file);
    for (const target of graph.get(file) ?? []) {
      if (path.includes(target)) cycles.push([...path.slice(path.indexOf(target)), target]);
      else if (!finished.has(target) && graph.has(target)) visit(target);
    }
    path.pop();
    finished.add(file);
  };
  for (const file of graph.keys()) if (!finished.has(file)) visit(file);
  return cycles;
}

function layerOf(path: string): number {
  const folder = relative(LIB, path).split("/")[0];
  return LAYERS.indexOf(folder as (typeof LAYERS)[number]);
}

describe("functions/lib layers", () => {
  it("has only the named layer folders (no loose files)", () => {
    // Prepare
    const entries = readdirSync(LIB);
    // Assess
    expect(entries.sort()).toEqual([...LAYERS].sort());
  });

  it("imports only downward (or within a folder)", () => {
    // Prepare
    const upward: string[] = [];
    // Act
    for (const file of sourceFiles(LIB)) {
      const own = layerOf(file);
      for (const target of relativeImports(file)) {
        if (!target.startsWith(LIB)) {
          upward.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)} (outside functions/lib)`);
          continue;
        }
        if (layerOf(target) > own) upward.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)}`);
      }
    }
    // Assess
    expect(upward).toEqual([]);
  });

  it("the layer check itself catches an upward import", () => {
    // Prepare: a domain file pretending to import the workflow state
    const fake = join(LIB, "domain/x.ts");
    const target = resolve(dirname(fake), "../workflow/workflow-state.js");
    // Assess
    expect(layerOf(target)).toBeGreaterThan(layerOf(fake));
  });
});

describe("import cycles", () => {
  it("none under functions/, stacks/ and local/, type-only imports included", () => {
    // Prepare
    const graph = importGraph(["functions", "stacks", "local"].flatMap((dir) => sourceFiles(join(ROOT, dir))));
    // Act
    const cycles = importCycles(graph).map((cycle) => cycle.map((file) => relative(ROOT, file)).join(" → "));
    // Assess
    expect(graph.size).toBeGreaterThan(50);
    expect(cycles).toEqual([]);
  });

  it("the check reads type-only imports and re-exports", () => {
    // Prepare
    const text = 'import type { A } from "./a.js";\nexport type { B } from "../b.js";\nimport { c } from "./c.js";';
    // Act
    const specifiers = relativeSpecifiers(text);
    // Assess
    expect(specifiers).toEqual(["./a.js", "../b.js", "./c.js"]);
  });

  it("the check finds a cycle, and none in a chain", () => {
    // Prepare
    const cyclic = new Map([
      ["index.ts", ["access-entry.ts"]],
      ["access-entry.ts", ["index.ts"]],
    ]);
    const chain = new Map([
      ["index.ts", ["access-entry.ts", "context.ts"]],
      ["access-entry.ts", ["context.ts"]],
      ["context.ts", []],
    ]);
    // Assess
    expect(importCycles(cyclic)).toEqual([["index.ts", "access-entry.ts", "index.ts"]]);
    expect(importCycles(chain)).toEqual([]);
  });
});
