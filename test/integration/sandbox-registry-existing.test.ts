/**
 * An environment that exists, in the sandbox (#14 point 3): every way in that creates (POST /environments, POST /provision,
 * the onboarding event) refuses another spec with EnvironmentExists, pointing at the update route, and leaves the record
 * and what it owns as they were; the same spec still starts a run; a failed create that owns nothing may be made again
 * with a corrected spec.
 */
import { describe, expect, it } from "vitest";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { ListExecutionsCommand, type SFNClient } from "@aws-sdk/client-sfn";
import { checkEnvironments } from "../../functions/events/drift-check.js";
import { EnvironmentRegistry } from "../../functions/lib/workflow/environment-registry.js";
import type { Sandbox } from "../../local/sandbox.js";
import {
  CLUSTER,
  FAST,
  finish,
  kubeObject,
  postProvision,
  provision,
  pvcRequest,
  settled,
  until,
  useSandbox,
} from "../support/sandbox-runs.js";
import { callApi } from "../support/teardown-runs.js";

const recordOf = (tenant: string) => new EnvironmentRegistry().getEnvironment({ tenant, region: CLUSTER.region, cluster: CLUSTER.name });
const environmentUrl = (tenant: string) => `/environments/${tenant}/${CLUSTER.region}/${CLUSTER.name}`;

describe("an environment that exists", () => {
  let sandbox: Sandbox;
  let sfn: SFNClient;
  useSandbox({ ...FAST }, (started) => ({ sandbox, sfn } = started));

  const call = (method: string, path: string, body?: unknown) => callApi(sandbox, method, path, body);
  const executionsOf = async (tenant: string) =>
    ((await sfn.send(new ListExecutionsCommand({ stateMachineArn: sandbox.stateMachineArn, maxResults: 1000 }))).executions ?? []).filter(
      (e) => e.name?.startsWith(`${tenant}_`),
    );

  it("refuses POST /provision with another namespace (409 EnvironmentExists, naming PUT): the record and the first namespace stay, and DELETE removes them", async () => {
    // Prepare: environment mv in namespace mv-one
    const created = await call("POST", "/environments", pvcRequest("mv", { namespace: "mv-one" }));
    expect((await finish(sandbox, created.body)).execution.status).toBe("SUCCEEDED");
    await settled(sandbox);
    const recordBefore = await recordOf("mv");
    const before = sandbox.snapshot();
    const runsBefore = await executionsOf("mv");

    // Act
    const moved = await postProvision(sandbox, pvcRequest("mv", { namespace: "mv-two" }));

    // Assess: refused, pointing at the update route; nothing started, nothing written
    expect(moved.status).toBe(409);
    expect(moved.body).toMatchObject({ error: "EnvironmentExists", environmentUrl: environmentUrl("mv"), updateUrl: environmentUrl("mv") });
    expect(moved.body.message).toContain(`PUT ${environmentUrl("mv")}`);
    expect(await executionsOf("mv")).toEqual(runsBefore);
    expect(await recordOf("mv")).toStrictEqual(recordBefore);
    await settled(sandbox);
    expect(sandbox.snapshot()).toStrictEqual(before);

    // And a DELETE still removes mv-one, which the record kept
    const removal = await call("DELETE", environmentUrl("mv"));
    expect(removal.status).toBe(202);
    await sandbox.stepFunctions.waitFor(removal.body.executionArn, { timeoutMs: 20_000 });
    await settled(sandbox);
    expect(await recordOf("mv")).toMatchObject({ status: "removed" });
    expect(kubeObject(sandbox, "Namespace", undefined, "mv-one")).toBeUndefined();
  });

  it("still starts a run for POST /provision with the same spec (a head job belongs to the run)", async () => {
    // Prepare
    const request = pvcRequest("same", { namespace: "same" });
    await provision(sandbox, request);
    const recordBefore = (await recordOf("same"))!;

    // Act
    const run = await provision(sandbox, { ...request, headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });

    // Assess
    expect(run.execution.status).toBe("SUCCEEDED");
    expect(await recordOf("same")).toMatchObject({
      status: "ready",
      spec: recordBefore.spec,
      generation: recordBefore.generation + 1,
      lastExecution: { arn: run.started.executionArn },
    });
  });

  it("refuses POST /environments with another spec the same way", async () => {
    // Prepare
    await provision(sandbox, pvcRequest("twice", { namespace: "twice" }));
    const recordBefore = await recordOf("twice");

    // Act
    const changed = await call("POST", "/environments", pvcRequest("twice", { namespace: "elsewhere" }));

    // Assess
    expect(changed).toMatchObject({ status: 409, body: { error: "EnvironmentExists", updateUrl: environmentUrl("twice") } });
    expect(await recordOf("twice")).toStrictEqual(recordBefore);
  });

  it("refuses an onboarding event with another spec with the named error EnvironmentExists, and starts nothing", async () => {
    // Prepare
    await provision(sandbox, pvcRequest("onboarded", { namespace: "onboarded-one" }));
    await settled(sandbox);
    const recordBefore = await recordOf("onboarded");
    const runsBefore = await executionsOf("onboarded");
    const events = new EventBridgeClient({ region: CLUSTER.region, endpoint: sandbox.awsUrl });

    // Act: the same tenant again, in another namespace, as the onboarding system sends it
    const put = await events.send(
      new PutEventsCommand({
        Entries: [
          {
            Source: "com.example.onboarding",
            DetailType: "ComputeEnvironmentRequested",
            EventBusName: "nf-eks-provisioner",
            Detail: JSON.stringify(pvcRequest("onboarded", { namespace: "onboarded-two" })),
          },
        ],
      }),
    );
    events.destroy();
    const eventId = put.Entries![0]!.EventId!;
    const refused = await until("the event's refusal", () => sandbox.deadLetters.find((letter) => letter.eventId === eventId));

    // Assess: refused for good (the dead-letter queue keeps it), nothing started, the record as it was
    expect(refused.error.name).toBe("EnvironmentExists");
    expect(refused.error.message).toContain(`PUT ${environmentUrl("onboarded")}`);
    expect(await executionsOf("onboarded")).toEqual(runsBefore);
    expect(await recordOf("onboarded")).toStrictEqual(recordBefore);
    expect(kubeObject(sandbox, "Namespace", undefined, "onboarded-two")).toBeUndefined();
  });

  it("creates a failed environment that owns nothing again with a corrected spec", async () => {
    // Prepare: the first create fails and is compensated: the record is failed and owns nothing
    sandbox.faults.inject({ operation: "kube:POST rolebindings", kind: "permanent", times: 1 });
    const failed = await call("POST", "/environments", pvcRequest("retried", { namespace: "retried-one" }));
    expect((await finish(sandbox, failed.body)).execution.status).toBe("FAILED");
    expect(await recordOf("retried")).toMatchObject({ status: "failed", owned: {} });

    // Act
    const corrected = await call("POST", "/environments", pvcRequest("retried", { namespace: "retried-two" }));

    // Assess
    expect(corrected.status, JSON.stringify(corrected.body)).toBe(202);
    expect((await finish(sandbox, corrected.body)).execution.status).toBe("SUCCEEDED");
    expect(await recordOf("retried")).toMatchObject({ status: "ready", spec: { namespace: "retried-two" } });
  });
});

describe("a failed run of an environment that exists (not an update)", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => ({ sandbox } = started));

  const call = (method: string, path: string, body?: unknown) => callApi(sandbox, method, path, body);

  it("a reconcile that fails for good puts the record back (ready, the same owned list), naming the failed run", async () => {
    // Prepare: a ready environment, then DescribeCluster refused for good
    const request = pvcRequest("kept", { namespace: "kept" });
    await provision(sandbox, request);
    await settled(sandbox);
    const before = (await recordOf("kept"))!;
    sandbox.faults.inject({ operation: "eks:DescribeCluster", kind: "permanent" });

    // Act
    const reconciled = await call("POST", `${environmentUrl("kept")}/reconcile`);
    const run = await finish(sandbox, reconciled.body);
    sandbox.faults.clear();
    await settled(sandbox);

    // Assess: the record as it was, with the failed run as its last execution and its error
    expect(run.execution.status).toBe("FAILED");
    const after = (await recordOf("kept"))!;
    expect(after).toMatchObject({
      status: "ready",
      spec: before.spec,
      generation: before.generation,
      owned: before.owned,
      lastExecution: { arn: reconciled.body.executionArn },
      lastFailure: { error: "NotAllowed" },
    });
    expect(after.lease).toBeUndefined();
    // ...so it is still checked for drift (in sync: nothing was touched), and a create of its spec answers with it
    const read = await call("GET", environmentUrl("kept"));
    expect(read.body.drift, JSON.stringify(read.body.drift)).toMatchObject({ status: "in-sync" });
    expect(await checkEnvironments()).toMatchObject({ checked: 1, drifted: 0 });
    const again = await call("POST", "/environments", request);
    expect(again).toMatchObject({ status: 200, body: { environment: { status: "ready", generation: before.generation } } });
  });

  it("a re-run through POST /provision with the same spec that fails at its head job puts the record back the same way", async () => {
    // Prepare
    const request = pvcRequest("rerun", { namespace: "rerun" });
    await provision(sandbox, request);
    await settled(sandbox);
    const before = (await recordOf("rerun"))!;
    sandbox.faults.inject({ operation: "kube:POST jobs", kind: "permanent", times: 1 });

    // Act
    const run = await provision(sandbox, { ...request, headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });
    await settled(sandbox);

    // Assess: only the run's own work was undone; the environment and its record are as they were
    expect(run.execution.status).toBe("FAILED");
    expect(await recordOf("rerun")).toMatchObject({
      status: "ready",
      generation: before.generation,
      owned: before.owned,
      lastExecution: { arn: run.started.executionArn },
      lastFailure: { error: "NotAllowed" },
    });
    expect(kubeObject(sandbox, "Namespace", undefined, "rerun")).toBeDefined();
  });
});
