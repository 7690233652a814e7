/**
 * The README's SigV4 table ("### Calling the API (SigV4)") lists every route the stack declares (stacks/Provisioner.ts,
 * read as text: no synth), each with the `execute-api:Invoke` resource that route has: a route added to the API without
 * its line in the README, or a line for a route that is gone, fails here.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");

/** `METHOD /path` → the resource a caller needs `execute-api:Invoke` on (any stage; `*` for each path parameter). */
function invokeResourceOf(route: string): string {
  const [method, path] = route.split(" ") as [string, string];
  return `arn:aws:execute-api:<region>:<account>:<api-id>/*/${method}${path.replace(/\{[^}]+\}/g, "*")}`;
}

/** The routes of the HTTP API in stacks/Provisioner.ts: the keys of its `routes: { ... }` block. */
function stackRoutes(source: string): string[] {
  const block = /\broutes: \{([\s\S]*?)\n\s*\},/.exec(source)?.[1] ?? "";
  return [...block.matchAll(/"((?:GET|POST|PUT|PATCH|DELETE) \/[^"]*)":/g)].map((m) => m[1]!);
}

/** Route → resource, from the rows of the table under "### Calling the API (SigV4)". */
function readmeRows(readme: string): Record<string, string> {
  const section = readme.split(/^### Calling the API \(SigV4\)\s*$/m)[1]?.split(/^#{2,3} /m)[0] ?? "";
  const rows = [...section.matchAll(/^\| `((?:GET|POST|PUT|PATCH|DELETE) \/[^`]*)` \| `([^`]+)` \|$/gm)];
  return Object.fromEntries(rows.map((m) => [m[1]!, m[2]!]));
}

describe("README: calling the API with SigV4", () => {
  it("lists every route the stack declares, each with its execute-api:Invoke resource, and no other", () => {
    // Prepare
    const routes = stackRoutes(readFileSync(join(ROOT, "stacks/Provisioner.ts"), "utf8"));
    // Act
    const listed = readmeRows(readFileSync(join(ROOT, "README.md"), "utf8"));
    // Assess
    expect(routes.length).toBeGreaterThan(5);
    expect(listed).toEqual(Object.fromEntries(routes.map((route) => [route, invokeResourceOf(route)])));
  });

  it("the checks read the stack's routes and the README's table", () => {
    // Prepare
    const stack = `new Api(stack, "Api", {\n  routes: {\n    "GET /a/{id}": "functions/a.handler",\n  },\n});`;
    const readme =
      "### Calling the API (SigV4)\n| route | resource |\n|---|---|\n| `GET /a/{id}` | `x` |\n\n### Next\n| `GET /b` | `y` |\n";
    // Assess
    expect(stackRoutes(stack)).toEqual(["GET /a/{id}"]);
    expect(readmeRows(readme)).toEqual({ "GET /a/{id}": "x" });
  });
});
