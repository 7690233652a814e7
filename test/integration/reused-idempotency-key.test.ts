/**
 * A reused idempotency key (issue #9, part 1). A keyed execution is named `<tenant>_<key>`, and Step Functions
 * forgets a name 90 days after the execution closed: a client that reuses a stable key then starts a run with the
 * same name. Its marks must still be its own (name and start time), so when it fails its compensators undo only
 * what it did, and the environment the first run built is left standing. Within the key's year, though, the registry
 * still remembers it (start-provisioning.ts keyedRun): a repeat answers with the forgotten run and starts nothing.
 */
import { describe, expect, it } from "vitest";
import { DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { EnvironmentRegistry, idempotencyKeyKey } from "../../functions/lib/workflow/environment-registry.js";
import { REGISTRY_TABLE_NAME, type Sandbox } from "../../local/sandbox.js";
import {
  ACCOUNT_ID,
  CLUSTER,
  clusterState,
  FAST,
  finish,
  iamRole,
  kubeObject,
  kubeObjects,
  postProvision,
  provision,
  pvcRequest,
  settled,
  stepResult,
  useSandbox,
} from "../support/sandbox-runs.js";

describe("a reused idempotency key after Step Functions forgot the first run (API_AND_CONFIG_MAP)", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode: "API_AND_CONFIG_MAP" }, (started) => (sandbox = started.sandbox));

  it("a second run under the same name fails at LaunchHeadJob and leaves the first run's roles, access entry and namespace", async () => {
    // Prepare: a first run with key K succeeds
    const tenant = "nightly";
    const request = pvcRequest(tenant, { namespace: tenant, headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });
    const key = { "Idempotency-Key": "onboarding-7" };
    const first = await provision(sandbox, request, key);
    expect(first.execution.status).toBe("SUCCEEDED");
    const launcherArn = `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-${tenant}.research-launcher`;
    const firstJob = stepResult(first, "LaunchHeadJob").jobName as string;
    // ...the runner forgets it, as Step Functions does after 90 days, and the registry's record of the key expires
    expect(sandbox.stepFunctions.forgetClosedExecutions()).toBeGreaterThan(0);
    await expireIdempotencyKey(sandbox, tenant, "onboarding-7");
    await settled(sandbox);
    const before = sandbox.snapshot();
    sandbox.faults.inject({ operation: "kube:POST jobs", kind: "permanent", times: 1 });

    // Act: the same key and body again
    const second = await provision(sandbox, request, key);

    // Assess: a new execution under the very same name, failed at LaunchHeadJob and compensated...
    expect(second.started.executionName).toBe(first.started.executionName);
    expect(second.started.executionName).toBe(`${tenant}_onboarding-7`);
    expect(second.execution.status).toBe("FAILED");
    expect(sandbox.faults.fired).toEqual([{ operation: "kube:POST jobs", kind: "permanent" }]);
    expect(stepResult(second, "CreateIamResources")).toMatchObject({ launcherCreated: false, created: [] });
    // ...and the first run's environment is all still there
    expect(iamRole(sandbox, `nfeks-${tenant}.research-launcher`)?.arn).toBe(launcherArn);
    expect(clusterState(sandbox).accessEntries.has(launcherArn)).toBe(true);
    expect(kubeObject(sandbox, "Namespace", undefined, tenant)).toBeDefined();
    expect(kubeObject(sandbox, "Role", tenant, "tower-launcher-role")).toBeDefined();
    expect(kubeObject(sandbox, "PersistentVolumeClaim", tenant, "tower-scratch")).toBeDefined();
    expect(kubeObjects(sandbox, "Job", tenant).map((job) => job.metadata.name)).toEqual([firstJob]);
    await settled(sandbox);
    expect(sandbox.snapshot()).toStrictEqual(before);
  });
});

describe("a repeated idempotency key after Step Functions forgot the run, while the registry still remembers the key", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => (sandbox = started.sandbox));

  it("answers the same key and body with the same execution (202, nothing started), and another body under it with 422", async () => {
    // Prepare: a first run under key K, then forgotten by Step Functions (90 days on), its key still within its year
    const tenant = "remembered";
    const request = pvcRequest(tenant, { namespace: tenant });
    const key = { "Idempotency-Key": "onboarding-8" };
    const first = await postProvision(sandbox, request, key);
    expect((await finish(sandbox, first.body)).execution.status).toBe("SUCCEEDED");
    expect(sandbox.stepFunctions.forgetClosedExecutions()).toBeGreaterThan(0);
    const recordBefore = await new EnvironmentRegistry().getEnvironment({ tenant, region: CLUSTER.region, cluster: CLUSTER.name });

    // Act: the same key and body; then the same key with another body (a head job: the same spec)
    const repeat = await postProvision(sandbox, request, key);
    const other = await postProvision(sandbox, { ...request, headJob: { pipeline: "nextflow-io/hello" } }, key);

    // Assess: the first run's answer again, no run started under its name, the record untouched; the other body refused
    expect(repeat).toEqual({ status: 202, body: first.body });
    await expect(sandbox.stepFunctions.describeExecution({ executionArn: first.body.executionArn })).rejects.toThrow(/does not exist/i);
    expect(await new EnvironmentRegistry().getEnvironment({ tenant, region: CLUSTER.region, cluster: CLUSTER.name })).toStrictEqual(
      recordBefore,
    );
    expect(other).toMatchObject({ status: 422, body: { error: "IdempotencyKeyReused" } });
  });
});

/** The registry's record of the key, past its expiry (as it is a year on; the registry treats it as absent). */
async function expireIdempotencyKey(sandbox: Sandbox, tenant: string, key: string): Promise<void> {
  const client = new DynamoDBClient({ region: "eu-west-1", endpoint: sandbox.dynamoDbUrl });
  await client.send(
    new UpdateItemCommand({
      TableName: REGISTRY_TABLE_NAME,
      Key: { pk: { S: idempotencyKeyKey(tenant, key) } },
      ConditionExpression: "attribute_exists(pk)",
      UpdateExpression: "SET expiresAt = :past",
      ExpressionAttributeValues: { ":past": { N: "1" } },
    }),
  );
  client.destroy();
}
