/**
 * The product's lifecycle events keep their JSON Schemas (events/*.schema.json): the events the workflow really
 * puts on the sandbox's bus (a ready run, a Fusion run with a head job, a compensated failure) and the teardown's
 * ComputeEnvironmentRemoved validate; a field a schema does not name fails validation; and the onboarding rule can
 * never match one of them.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput } from "@aws-sdk/client-eventbridge";
import {
  EVENT_SOURCE,
  FAILED_DETAIL_TYPE,
  PRODUCT_EVENTS,
  READY_DETAIL_TYPE,
  REMOVED_DETAIL_TYPE,
  type RemovedDetail,
} from "../../functions/lib/domain/product-events.js";
import { loadDeploymentConfig, onboardingEventPattern } from "../../functions/lib/domain/deploy-config.js";
import { emitComputeEnvironmentRemoved } from "../../functions/lib/workflow/event-bus.js";
import { matchesPattern } from "../../local/aws/event-pattern.js";
import type { Sandbox } from "../../local/sandbox.js";
import { loadSchema, newAjv, schemaProblems } from "../support/event-schemas.js";
import { DEPLOYMENT_ENV } from "../support/fixtures.js";
import { FAST, fusionRequest, provision, pvcRequest, settled, useSandbox } from "../support/sandbox-runs.js";

const ROOT = resolve(import.meta.dirname, "../..");

const REMOVED: RemovedDetail = {
  tenant: "genomics",
  cluster: { name: "research", region: "eu-west-1", arn: "arn:aws:eks:eu-west-1:111122223333:cluster/research" },
  namespace: "tower-nf",
  removed: ["Namespace tower-nf", "IAM role nfeks-genomics.research-launcher"],
  kept: [],
  execution: {
    name: "genomics-remove-1",
    id: "arn:aws:states:eu-west-1:111122223333:execution:deprovision:genomics-remove-1",
    startTime: "2026-12-05T08:00:00.000Z",
  },
};

describe("the event schemas", () => {
  it.each(PRODUCT_EVENTS.map((e) => e))("$detailType: a draft 2020-12 schema that forbids unnamed fields", ({ detailType, schemaFile }) => {
    // Prepare
    const schema = JSON.parse(readFileSync(join(ROOT, schemaFile), "utf8"));
    // Act
    const compiled = newAjv().compile(schema);
    // Assess
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.title).toBe(detailType);
    expect(schema.additionalProperties).toBe(false);
    expect(typeof compiled).toBe("function");
  });

  it("lists the three lifecycle events and the drift check's, one schema file each", () => {
    // Assess
    expect(PRODUCT_EVENTS.map((e) => e.detailType)).toEqual([
      READY_DETAIL_TYPE,
      FAILED_DETAIL_TYPE,
      REMOVED_DETAIL_TYPE,
      "EnvironmentDrifted",
    ]);
    expect(new Set(PRODUCT_EVENTS.map((e) => e.schemaFile)).size).toBe(4);
  });

  it("a field the schema does not name fails validation, at the top and inside", () => {
    // Prepare
    const extraTop = { ...REMOVED, owner: "someone" };
    const extraInside = { ...REMOVED, cluster: { ...REMOVED.cluster, vpc: "vpc-1" } };
    // Act
    const problems = [schemaProblems(REMOVED_DETAIL_TYPE, extraTop), schemaProblems(REMOVED_DETAIL_TYPE, extraInside)];
    // Assess
    expect(schemaProblems(REMOVED_DETAIL_TYPE, REMOVED)).toEqual([]);
    expect(problems).toEqual([["/ must NOT have additional properties: owner"], ["/cluster must NOT have additional properties: vpc"]]);
  });

  it("a missing required field or a wrong type fails validation", () => {
    // Prepare
    const { kept: _kept, ...withoutKept } = REMOVED;
    // Act
    const problems = [
      ...schemaProblems(REMOVED_DETAIL_TYPE, withoutKept),
      ...schemaProblems(REMOVED_DETAIL_TYPE, { ...REMOVED, removed: "all" }),
    ];
    // Assess
    expect(problems).toEqual(["/ must have required property 'kept'", "/removed must be array"]);
  });

  it("every schema's top-level properties are what loadSchema reads (the files are the source)", () => {
    // Assess
    expect(Object.keys(loadSchema(READY_DETAIL_TYPE).properties as object)).toContain("roleArns");
    expect(Object.keys(loadSchema(FAILED_DETAIL_TYPE).properties as object)).toContain("couldNotUndo");
  });
});

describe("ComputeEnvironmentRemoved (for the teardown's last state)", () => {
  it("puts the detail on the product's bus, from the product's source, the cluster as its resource", async () => {
    // Prepare
    const client = new EventBridgeClient({ region: "eu-west-1" });
    const mock = mockClient(client);
    mock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    // Act
    const bus = await emitComputeEnvironmentRemoved(REMOVED, { events: client, eventBusName: "the-bus" });
    // Assess
    const entry = (mock.commandCalls(PutEventsCommand)[0].args[0].input as PutEventsCommandInput).Entries![0];
    expect(bus).toBe("the-bus");
    expect(entry).toMatchObject({
      EventBusName: "the-bus",
      Source: EVENT_SOURCE,
      DetailType: REMOVED_DETAIL_TYPE,
      Resources: [REMOVED.cluster.arn],
    });
    expect(schemaProblems(REMOVED_DETAIL_TYPE, JSON.parse(entry.Detail!))).toEqual([]);
  });

  it("a rejected entry is a named error", async () => {
    // Prepare
    const client = new EventBridgeClient({ region: "eu-west-1" });
    mockClient(client)
      .on(PutEventsCommand)
      .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: "ThrottlingException", ErrorMessage: "slow down" }] });
    // Act
    const sent = emitComputeEnvironmentRemoved(REMOVED, { events: client, eventBusName: "the-bus" });
    // Assess
    await expect(sent).rejects.toMatchObject({ name: "Throttled" });
  });
});

describe("the onboarding rule never matches the product's own events", () => {
  it.each(PRODUCT_EVENTS.map((e) => e.detailType))("%s from nf-eks-provisioner", (detailType) => {
    // Prepare
    const pattern = onboardingEventPattern(
      loadDeploymentConfig({ ...DEPLOYMENT_ENV, ONBOARDING_EVENT_SOURCES: "com.example.onboarding" }),
    )!;
    const rule = { source: pattern.source, "detail-type": pattern.detailType };
    // Act
    const own = matchesPattern({ source: EVENT_SOURCE, "detail-type": detailType, detail: {} }, rule);
    const requested = matchesPattern({ source: "com.example.onboarding", "detail-type": "ComputeEnvironmentRequested", detail: {} }, rule);
    const ownRequested = matchesPattern({ source: EVENT_SOURCE, "detail-type": "ComputeEnvironmentRequested", detail: {} }, rule);
    // Assess
    expect(own).toBe(false);
    expect(ownRequested).toBe(false);
    expect(requested).toBe(true);
  });
});

describe("the events the workflow emits keep their schemas (sandbox)", () => {
  let sandbox: Sandbox;
  useSandbox(FAST, (started) => (sandbox = started.sandbox));

  it("a PVC run with a head job, a Fusion run and a compensated failure", async () => {
    // Prepare
    await settled(sandbox);
    sandbox.faults.inject({ operation: "kube:POST persistentvolumeclaims", kind: "permanent", times: 1 });
    // Act
    const failed = await provision(sandbox, pvcRequest("ev-failed", { namespace: "ev-failed" }));
    const pvc = await provision(
      sandbox,
      pvcRequest("ev-pvc", { namespace: "ev-pvc", headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } } as never),
    );
    const fusion = await provision(sandbox, fusionRequest("ev-fusion", { namespace: "ev-fusion" }));
    // Assess
    expect([failed.execution.status, pvc.execution.status, fusion.execution.status]).toEqual(["FAILED", "SUCCEEDED", "SUCCEEDED"]);
    const emitted = sandbox.aws.events({ source: EVENT_SOURCE });
    expect(emitted.map((e) => `${e.detailType} ${(e.detail as { tenant: string }).tenant}`)).toEqual([
      `${FAILED_DETAIL_TYPE} ev-failed`,
      `${READY_DETAIL_TYPE} ev-pvc`,
      `${READY_DETAIL_TYPE} ev-fusion`,
    ]);
    expect(emitted.map((e) => schemaProblems(e.detailType, e.detail))).toEqual([[], [], []]);
  });
});
