/**
 * functions/lib/ is layered, and each folder imports only the folders below it:
 *   entry/ (starting executions)  →  workflow/ (state, middleware, errors naming, compensation)
 *   →  kube/ (Kubernetes client, aws-auth)  →  aws/ (SDK clients, EKS token)  →  domain/ (pure: schema, naming, builders)
 * functions/{api,events,steps} sit above all of lib/. A file that imports upward (or a new folder nobody placed) fails here.
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

function relativeImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]);
  return specifiers.map((s) => resolve(dirname(file), s));
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
