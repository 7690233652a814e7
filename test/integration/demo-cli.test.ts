/**
 * `npm run demo` without a running sandbox starts one in its own process, so the step handlers log there
 * too: their Powertools lines must not land as raw JSON in the middle of the narration.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const TSX = new URL("../../node_modules/.bin/tsx", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;

/** A port nothing listens on: the demo finds no sandbox there and starts its own. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The demo's stdout, with the environment the user has minus whatever the test runner set for Powertools. */
async function demo(env: Record<string, string>, extra: string[] = []): Promise<string> {
  const { POWERTOOLS_LOG_LEVEL: _runnerLevel, ...inherited } = process.env;
  const stateDir = await mkdtemp(join(tmpdir(), "nf-eks-demo-"));
  try {
    const { stdout } = await run(
      TSX,
      ["local/cli.ts", "demo", "--api", `http://127.0.0.1:${await closedPort()}`, "--state-dir", stateDir, ...extra],
      {
        cwd: ROOT,
        env: { ...inherited, ...env },
        timeout: 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    return stdout;
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}

const jsonLines = (out: string) => out.split("\n").filter((line) => line.startsWith("{"));

describe("npm run demo with its own in-process sandbox", () => {
  let quiet: string;
  let chosen: string;

  beforeAll(async () => {
    [quiet, chosen] = await Promise.all([demo({}), demo({ POWERTOOLS_LOG_LEVEL: "INFO" })]);
  }, 120_000);

  it("narrates the run without the handlers' JSON log lines", () => {
    // Assess
    expect(quiet).toContain("starting one in this process");
    expect(quiet).toMatch(/^SUCCEEDED/m);
    expect(jsonLines(quiet)).toEqual([]);
  });

  it("keeps a log level the user chose", () => {
    // Assess: INFO lines of the steps, as asked
    expect(chosen).toMatch(/^SUCCEEDED/m);
    expect(jsonLines(chosen).some((line) => JSON.parse(line).level === "INFO")).toBe(true);
  });
});

describe("npm run demo -- --drift", () => {
  it("shows a RoleBinding deleted by hand as drift, reconciles it, and the scheduled check then finds nothing", async () => {
    // Act
    const out = await demo({}, ["--drift"]);
    // Assess
    const drifts = [...out.matchAll(/^ {2}drift: (\S+),/gm)].map((m) => m[1]);
    expect(drifts).toEqual(["in-sync", "drifted", "in-sync"]);
    expect(out).toMatch(/missing +RoleBinding tower-nf\/tower-launcher-user-genomics-binding/);
    expect(out).toMatch(/reconcile\n {2}202:/);
    expect(out).toContain("1 checked, 0 drifted, 0 EnvironmentDrifted events");
  }, 120_000);
});

/** The step names the narration marks succeeded (✓) after `header`, in order, each once. */
function succeededStepsAfter(out: string, header: RegExp): string[] {
  const from = out.search(header);
  expect(from).toBeGreaterThanOrEqual(0);
  const narrated = out.slice(from).split(/^(?:SUCCEEDED|FAILED)$/m)[0]!;
  return [...new Set([...narrated.matchAll(/^ {2}✓ (\w+)/gm)].map((m) => m[1]))];
}

/** The narration from the last "What now exists" on: what the account and the cluster hold at the end. */
const finalSummary = (out: string) => out.slice(out.lastIndexOf("What now exists for tenant"));

describe("npm run demo -- --teardown", () => {
  it("creates the environment, then narrates its teardown step by step, and nothing of the tenant's is left", async () => {
    // Act
    const out = await demo({}, ["--teardown"]);
    // Assess
    expect([...out.matchAll(/^(SUCCEEDED|FAILED)$/gm)].map((m) => m[1])).toEqual(["SUCCEEDED", "SUCCEEDED"]);
    expect(out).toMatch(
      /^DELETE http:\/\/127\.0\.0\.1:\d+\/environments\/genomics\/eu-west-1\/research\n {2}202 Accepted: arn:aws:states:[^:]+:\d+:execution:deprovision:/m,
    );
    expect(succeededStepsAfter(out, /^Teardown /m)).toEqual([
      "ResolveCluster",
      "RemoveHeadJobs",
      "RemoveStorage",
      "RemoveNamespaceAndRbac",
      "WaitForNamespaceRemoval",
      "RemoveClusterAccess",
      "RemoveIamResources",
      "RecordRemoval",
    ]);
    expect(out).toMatch(/RemoveIamResources .* removed: IAM role nfeks-genomics\.research-launcher$/m);
    expect(out).toContain("the registry says: removed (owned {})");
    const summary = finalSummary(out);
    expect(summary).toMatch(/Namespace +\(none\)/);
    expect(summary).toMatch(/IAM roles +\(none\)/);
    expect(summary).toMatch(/cluster access +\(none\)/);
  }, 120_000);
});

describe("npm run demo -- --update", () => {
  it("creates the environment, PUTs a spec with a compute service account, narrates the update run and shows generation 2", async () => {
    // Act
    const out = await demo({}, ["--update"]);
    // Assess
    expect([...out.matchAll(/^(SUCCEEDED|FAILED)$/gm)].map((m) => m[1])).toEqual(["SUCCEEDED", "SUCCEEDED"]);
    expect(out).toMatch(/^PUT http:\/\/127\.0\.0\.1:\d+\/environments\/genomics\/eu-west-1\/research {2}\(generation 1, ready; /m);
    expect(out).toMatch(/^ {2}202 Accepted: arn:aws:states:[^:]+:\d+:execution:provision:\S+ \(generation 2\)$/m);
    const updateSteps = succeededStepsAfter(out, /^Update /m);
    expect(updateSteps).toEqual(expect.arrayContaining(["CreateNamespaceAndRbac", "RemoveUnwantedResources", "Report"]));
    expect(out).toMatch(/CreateNamespaceAndRbac .* namespace tower-nf: ServiceAccount\/genomics-compute$/m);
    expect(out).toContain("the registry says: ready, generation 1 → 2 (computeServiceAccount genomics-compute)");
    const summary = finalSummary(out);
    expect(summary).toMatch(/ServiceAccounts +genomics-compute, tower-launcher-sa/);
    expect(summary).toContain("serviceAccount = 'genomics-compute'");
  }, 120_000);
});
