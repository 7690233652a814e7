/**
 * The environment registry in the sandbox: dynalite started with the other emulators, its endpoint and the table in
 * `.sandbox/env`, and the registry's behaviour through the product's own entry points.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { ListExecutionsCommand, type SFNClient } from "@aws-sdk/client-sfn";
import { sfnClient } from "../../functions/lib/aws/clients.js";
import { EnvironmentRegistry } from "../../functions/lib/workflow/environment-registry.js";
import { readSandboxEnv } from "../../local/sandbox-env.js";
import { OPENAPI_FILE } from "../../local/write-openapi.js";
import type { Sandbox } from "../../local/sandbox.js";
import {
  CLUSTER,
  FAST,
  finish,
  iamRole,
  kubeObject,
  postProvision,
  provision,
  pvcRequest,
  settled,
  useSandbox,
} from "../support/sandbox-runs.js";
import { callApi } from "../support/teardown-runs.js";

/** Make the product's ListExecutions see no run at all (a listing that lags behind StartExecution). Returns the undo. */
function lagListExecutions(): () => void {
  const stack = sfnClient().middlewareStack as unknown as {
    add(
      m: (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => (args: unknown) => Promise<unknown>,
      o: { step: "initialize"; name: string },
    ): void;
    remove(name: string): boolean;
  };
  stack.add(
    (next, context) => async (args) =>
      context.commandName === "ListExecutionsCommand" ? { output: { executions: [], $metadata: {} } } : next(args),
    { step: "initialize", name: "test-lagging-list" },
  );
  return () => void stack.remove("test-lagging-list");
}

const environmentOf = (tenant: string) =>
  new EnvironmentRegistry().getEnvironment({ tenant, region: CLUSTER.region, cluster: CLUSTER.name });

describe("the sandbox's DynamoDB", () => {
  let sandbox: Sandbox;
  let stateDir: string;
  useSandbox(
    () => {
      stateDir = mkdtempSync(join(tmpdir(), "nf-eks-registry-"));
      return { ...FAST, stateDir };
    },
    (started) => ({ sandbox } = started),
  );
  afterAll(() => {
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it("is named in .sandbox/env with the table, beside AWS_DEFAULT_REGION, and holds the registry's table", async () => {
    // Prepare
    const env = readSandboxEnv(sandbox.files.env!);

    // Act
    const client = new DynamoDBClient({ region: env.AWS_DEFAULT_REGION!, endpoint: env.AWS_ENDPOINT_URL_DYNAMODB! });
    const table = await client.send(new DescribeTableCommand({ TableName: env.REGISTRY_TABLE_NAME! }));
    client.destroy();

    // Assess
    expect(env.AWS_ENDPOINT_URL_DYNAMODB).toBe(sandbox.dynamoDbUrl);
    expect(env.AWS_DEFAULT_REGION).toBe(CLUSTER.region);
    expect(table.Table?.TableStatus).toBe("ACTIVE");
    expect(table.Table?.KeySchema).toEqual([{ AttributeName: "pk", KeyType: "HASH" }]);
  });
});

describe("the environment lease", () => {
  let sandbox: Sandbox;
  let sfn: SFNClient;
  useSandbox({ ...FAST }, (started) => ({ sandbox, sfn } = started));

  it("lets exactly one of two concurrent starts for one tenant run, though the listing of runs lags", async () => {
    // Prepare: the ListExecutions look sees nothing
    const undo = lagListExecutions();
    const request = pvcRequest("racer", { namespace: "racer" });

    // Act: two starts at once, under different keys
    let answers: Array<{ status: number; body: any }>;
    try {
      answers = await Promise.all([
        postProvision(sandbox, request, { "Idempotency-Key": "race-a" }),
        postProvision(sandbox, request, { "Idempotency-Key": "race-b" }),
      ]);
    } finally {
      undo();
    }

    // Assess: one 202, one 409 naming the run under way, and one execution of the tenant in Step Functions
    const started = answers.find((a) => a.status === 202);
    const refused = answers.find((a) => a.status === 409);
    expect(answers.map((a) => a.status).sort()).toEqual([202, 409]);
    expect(refused!.body).toMatchObject({ error: "RunInProgress", executionArn: started!.body.executionArn });
    const run = await finish(sandbox, started!.body);
    expect(run.execution.status).toBe("SUCCEEDED");
    const executions = (await sfn.send(new ListExecutionsCommand({ stateMachineArn: sandbox.stateMachineArn }))).executions ?? [];
    expect(executions.filter((e) => e.name?.startsWith("racer_"))).toHaveLength(1);
  });

  it("is released when the run ends: the record says ready and lists what the product owns, which all exists", async () => {
    // Prepare // Act
    const run = await provision(sandbox, pvcRequest("owner", { namespace: "owner" }));
    await settled(sandbox);

    // Assess
    expect(run.execution.status).toBe("SUCCEEDED");
    const record = await environmentOf("owner");
    expect(record).toMatchObject({
      status: "ready",
      generation: 1,
      lastExecution: { name: run.started.executionName, arn: run.started.executionArn },
    });
    expect(record?.lease).toBeUndefined();
    const owned = record!.owned as {
      roles: string[];
      kubernetes: Array<{ kind: string; namespace?: string; name: string }>;
      clusterAccess?: unknown;
    };
    expect(owned.roles).toHaveLength(1);
    for (const arn of owned.roles) expect(iamRole(sandbox, arn.slice(arn.lastIndexOf("/") + 1))).toBeDefined();
    expect(owned.kubernetes.map((o) => o.kind)).toEqual(
      expect.arrayContaining(["Namespace", "ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "ConfigMap"]),
    );
    for (const o of owned.kubernetes) expect(kubeObject(sandbox, o.kind, o.namespace, o.name), `${o.kind} ${o.name}`).toBeDefined();
    expect(owned.clusterAccess).toBeDefined();

    // And a second run may start now
    const again = await provision(sandbox, pvcRequest("owner", { namespace: "owner" }));
    expect(again.execution.status).toBe("SUCCEEDED");
    expect(await environmentOf("owner")).toMatchObject({ status: "ready", generation: 2 });
  });

  it("is released after a compensated failure, and the record owns nothing", async () => {
    // Prepare
    sandbox.faults.inject({ operation: "kube:POST rolebindings", kind: "permanent", times: 1 });

    // Act
    const run = await provision(sandbox, pvcRequest("failing", { namespace: "failing" }));
    await settled(sandbox);

    // Assess
    expect(run.execution.status).toBe("FAILED");
    const record = await environmentOf("failing");
    expect(record).toMatchObject({ status: "failed", owned: {} });
    expect(record?.lease).toBeUndefined();
    expect(kubeObject(sandbox, "Namespace", undefined, "failing")).toBeUndefined();
  });
});

describe("environments over HTTP", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => ({ sandbox } = started));

  const call = (method: string, path: string, body?: unknown) => callApi(sandbox, method, path, body);

  it("creates with POST /environments, reads it back, answers the same spec with it and another with 409 EnvironmentExists", async () => {
    // Prepare
    const request = pvcRequest("created", { namespace: "created" });

    // Act
    const created = await call("POST", "/environments", request);
    await finish(sandbox, created.body);
    const again = await call("POST", "/environments", request);
    const changed = await call("POST", "/environments", { ...request, namespace: "elsewhere" });
    const read = await call("GET", "/environments/created/eu-west-1/research");
    const missing = await call("GET", "/environments/nobody/eu-west-1/research");

    // Assess
    expect(created.status).toBe(202);
    expect(created.body.environmentUrl).toBe("/environments/created/eu-west-1/research");
    expect(again.status).toBe(200);
    expect(again.body.environment).toMatchObject({ tenant: "created", status: "ready", generation: 1 });
    expect(again.body.lastExecution).toMatchObject({ arn: created.body.executionArn, statusUrl: created.body.statusUrl });
    expect(changed.status).toBe(409);
    expect(changed.body).toMatchObject({ error: "EnvironmentExists", updateUrl: "/environments/created/eu-west-1/research" });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({
      tenant: "created",
      region: "eu-west-1",
      cluster: "research",
      status: "ready",
      spec: { namespace: "created" },
    });
    expect(missing).toMatchObject({ status: 404, body: { error: "EnvironmentNotFound" } });
  });

  it("serves the API's OpenAPI document at GET /openapi.json, as committed", async () => {
    // Prepare
    const committed = JSON.parse(readFileSync(OPENAPI_FILE, "utf8"));
    // Act
    const served = await call("GET", "/openapi.json");
    // Assess
    expect(served.status).toBe(200);
    expect(served.body).toEqual(committed);
    expect(served.body.openapi).toBe("3.1.0");
  });

  it("lists environments a page at a time, filtered by status", async () => {
    // Prepare
    for (const tenant of ["list-a", "list-b"]) await provision(sandbox, pvcRequest(tenant, { namespace: tenant }));

    // Act
    const first = await call("GET", "/environments?limit=1&status=ready");
    const second = await call("GET", `/environments?limit=100&status=ready&cursor=${first.body.next}`);
    const failed = await call("GET", "/environments?status=failed");
    const bad = await call("GET", "/environments?limit=0");

    // Assess
    expect(first.body.items).toHaveLength(1);
    const tenants = [...first.body.items, ...second.body.items].map((e: { tenant: string }) => e.tenant);
    expect(tenants).toEqual(expect.arrayContaining(["list-a", "list-b"]));
    expect(new Set(tenants).size).toBe(tenants.length);
    expect(failed.body.items).toEqual([]);
    expect(bad).toMatchObject({ status: 400, body: { error: "InvalidRequest" } });
  });

  it("lists environments filtered by cluster, by region, and by both", async () => {
    // Prepare: a run on the sandbox's cluster, and the same tenant's records on another cluster and in another region
    // (written to the registry directly: the sandbox has one cluster)
    await provision(sandbox, pvcRequest("where", { namespace: "where" }));
    const registry = new EnvironmentRegistry();
    await registry.createEnvironment({ tenant: "where", region: CLUSTER.region, cluster: "imaging" }, { namespace: "where" });
    await registry.createEnvironment({ tenant: "where", region: "us-east-1", cluster: CLUSTER.name }, { namespace: "where" });
    const placesOf = (page: { body: { items: Array<{ tenant: string; region: string; cluster: string }> } }) =>
      page.body.items.map((e) => `${e.tenant}@${e.cluster}.${e.region}`);

    // Act
    const byCluster = await call("GET", "/environments?cluster=imaging&limit=100");
    const byRegion = await call("GET", "/environments?region=us-east-1&limit=100");
    const byBoth = await call("GET", `/environments?cluster=${CLUSTER.name}&region=${CLUSTER.region}&limit=100`);

    // Assess
    expect(placesOf(byCluster)).toEqual(["where@imaging.eu-west-1"]);
    expect(placesOf(byRegion)).toEqual(["where@research.us-east-1"]);
    expect(placesOf(byBoth)).toContain("where@research.eu-west-1");
    expect(placesOf(byBoth).every((place) => place.endsWith("@research.eu-west-1"))).toBe(true);
    expect(byBoth.body.next).toBeUndefined();
  });
});
