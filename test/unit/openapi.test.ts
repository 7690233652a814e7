/**
 * openapi.json: generated from the zod schemas (functions/api/openapi.ts), committed, linted by Redocly, and
 * describing exactly the routes the stack deploys.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openApiDocument } from "../../functions/api/openapi-document.js";
import { OPENAPI_FILE, openApiText } from "../../local/write-openapi.js";

const run = promisify(execFile);

describe("openapi.json", () => {
  it("is what the schemas generate (regenerate with `npx tsx local/write-openapi.ts`)", () => {
    // Prepare
    const committed = readFileSync(OPENAPI_FILE, "utf8");
    // Act
    const generated = openApiText();
    // Assess
    expect(committed).toBe(generated);
  });

  it("describes every route the stack deploys, and no other", () => {
    // Prepare
    const stack = readFileSync("stacks/Provisioner.ts", "utf8");
    const deployed = [...stack.matchAll(/"(GET|POST|PUT|DELETE) (\/[^"]*)": "functions\//g)].map((m) => `${m[1]} ${m[2]}`).sort();
    // Act
    const documented = Object.entries(openApiDocument().paths as Record<string, Record<string, unknown>>)
      .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    // Assess
    expect(deployed.length).toBeGreaterThan(0);
    expect(documented).toEqual(deployed);
  });

  it("passes Redocly's lint", async () => {
    // Prepare // Act
    const { stdout, stderr } = await run("npx", ["redocly", "lint", OPENAPI_FILE, "--format", "stylish"], {
      env: { ...process.env, REDOCLY_TELEMETRY: "off" },
      timeout: 60_000,
    });
    // Assess (a lint error exits non-zero, which rejects)
    expect(`${stdout}${stderr}`).toMatch(/valid/i);
  }, 90_000);
});
