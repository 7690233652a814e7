/**
 * No two source files share a basename under functions/, stacks/ and local/ (index.ts excepted): "where is
 * the IAM step" must have one answer, not a step, an emulator and a stack all called iam.ts.
 */
import { readdirSync, statSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const SOURCE_DIRS = ["functions", "stacks", "local"];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js)$/.test(name) ? [path] : [];
  });
}

/** Basenames used by more than one file, with the files. */
function repeatedBasenames(files: string[]): Record<string, string[]> {
  const byName = new Map<string, string[]>();
  for (const file of files) {
    const name = basename(file);
    if (name === "index.ts") continue;
    byName.set(name, [...(byName.get(name) ?? []), relative(ROOT, file)]);
  }
  return Object.fromEntries([...byName].filter(([, paths]) => paths.length > 1));
}

describe("test file names", () => {
  it("are unique across test/ (a failure names its file by basename first)", () => {
    // Prepare
    const files = sourceFiles(join(ROOT, "test"));
    // Act
    const repeated = repeatedBasenames(files);
    // Assess
    expect(files.length).toBeGreaterThan(50);
    expect(repeated).toEqual({});
  });
});

describe("source file names", () => {
  it("are unique across functions/, stacks/ and local/ (index.ts excepted)", () => {
    // Prepare
    const files = SOURCE_DIRS.flatMap((dir) => sourceFiles(join(ROOT, dir)));
    // Act
    const repeated = repeatedBasenames(files);
    // Assess
    expect(files.length).toBeGreaterThan(50);
    expect(repeated).toEqual({});
  });

  it("the check finds a repeat", () => {
    // Prepare
    const files = ["/r/functions/steps/iam.ts", "/r/local/aws/iam.ts", "/r/functions/a/index.ts", "/r/local/index.ts"];
    // Act
    const repeated = repeatedBasenames(files);
    // Assess
    expect(Object.keys(repeated)).toEqual(["iam.ts"]);
  });
});
