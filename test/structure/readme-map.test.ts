/** The README's "Where things are" table names files that exist: a move that forgets the map fails here. */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");

/** Every `path` in backticks, in the rows of the table under "## Where things are". */
function pathsInMap(readme: string): string[] {
  const section = readme.split(/^## Where things are\s*$/m)[1]?.split(/^## /m)[0] ?? "";
  const rows = section.split("\n").filter((line) => line.startsWith("|"));
  return rows.flatMap((row) => [...row.matchAll(/`([^`]+\.(?:ts|json))`/g)].map((m) => m[1]));
}

describe("README: where things are", () => {
  it("names only files that exist", () => {
    // Prepare
    const paths = pathsInMap(readFileSync(join(ROOT, "README.md"), "utf8"));
    // Act
    const missing = paths.filter((path) => !existsSync(join(ROOT, path)));
    // Assess
    expect(paths.length).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });

  it("the check reads the table's paths", () => {
    // Prepare
    const readme = "## Where things are\n| a | `functions/x.ts` |\n\n## Next\n| b | `functions/y.ts` |\n";
    // Assess
    expect(pathsInMap(readme)).toEqual(["functions/x.ts"]);
  });
});
