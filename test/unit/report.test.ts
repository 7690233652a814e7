import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput } from "@aws-sdk/client-eventbridge";
import * as reportStep from "../../functions/steps/report.js";
import { createReportStep } from "../../functions/steps/report.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { resolvedCluster, stepState, useEnv } from "../support/fixtures.js";

/** The EventBridge client handed to the step through its factory, its calls mocked. */
const eventBridge = new EventBridgeClient({ region: "eu-west-1" });
const events = mockClient(eventBridge);
const { ready, failed } = createReportStep({ events: eventBridge });
const CLUSTER = resolvedCluster({ oidcIssuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE" });

function completedState(): WorkflowState {
  return stepState({}, "genomics-run-1", {
    cluster: CLUSTER,
    iam: {
      launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher",
      launcherKind: "role",
      launcherCreated: true,
      created: [],
    },
    rbac: {
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      computeServiceAccount: "tower-compute-sa",
      role: "tower-launcher-role",
      created: [],
      adopted: [],
    },
    access: {
      method: "access-entry",
      principalArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher",
      username: "tower-launcher-user",
      groups: ["tower-launcher-role"],
      created: true,
    },
    storage: {
      type: "pvc",
      claimName: "tower-scratch",
      mountPath: "/scratch",
      annotated: [],
      configMap: "nextflow-config",
      nextflowConfig: "process.executor = 'k8s'\n",
      created: [],
    },
  });
}

/** A state as the compensation chain leaves it: the error caught, some compensators done, one failed. */
function failedState(): WorkflowState {
  const { request, execution, cluster, iam, rbac } = completedState();
  return {
    request,
    execution,
    cluster,
    iam,
    rbac,
    error: {
      Error: "OwnershipConflict",
      Cause: JSON.stringify({
        errorType: "OwnershipConflict",
        errorMessage: "aws-auth entry for the launcher exists without our marks",
        trace: [],
      }),
    },
    compensation: {
      rbac: { undone: ["Namespace tower-nf", "ServiceAccount tower-nf/tower-launcher-sa"], kept: [] },
      iam: { Error: "Throttled", Cause: "iam:DeleteRole failed: Throttling: Rate exceeded" },
    },
  };
}

function sentEntry(): NonNullable<PutEventsCommandInput["Entries"]>[number] {
  const input = events.commandCalls(PutEventsCommand)[0].args[0].input as PutEventsCommandInput;
  return input.Entries![0];
}

useEnv({ EVENT_BUS_NAME: "nf-eks-provisioner-bus" });

beforeEach(() => {
  events.reset();
  resetClients();
});

describe("createReportStep", () => {
  it("sends through the EventBridge client it is given", async () => {
    // Prepare
    const given = new EventBridgeClient({ region: "eu-west-1" });
    const givenEvents = mockClient(given);
    givenEvents.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    // Act
    await createReportStep({ events: given, eventBusName: "given-bus" }).ready(completedState());
    // Assess
    expect(givenEvents).toHaveReceivedCommandWith(PutEventsCommand, { Entries: [expect.objectContaining({ EventBusName: "given-bus" })] });
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it("exports the catalog's handlers, which make their client when called", async () => {
    // Prepare: every EventBridgeClient's calls mocked (the handler makes its own)
    const anyClient = mockClient(EventBridgeClient);
    anyClient.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    try {
      // Act
      const result = await reportStep.ready(completedState());
      // Assess
      expect(result.eventBusName).toBe("nf-eks-provisioner-bus");
      expect(anyClient).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    } finally {
      anyClient.restore();
    }
  });
});

describe("Report ready", () => {
  it("emits ComputeEnvironmentReady with the outputs a compute environment needs", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    // Act
    await ready(completedState());
    // Assess
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    const entry = sentEntry();
    expect(entry).toMatchObject({
      EventBusName: "nf-eks-provisioner-bus",
      Source: "nf-eks-provisioner",
      DetailType: "ComputeEnvironmentReady",
    });
    expect(JSON.parse(entry.Detail!)).toMatchObject({
      tenant: "genomics",
      cluster: { name: "research", region: "eu-west-1", arn: CLUSTER.arn },
      namespace: "tower-nf",
      serviceAccounts: { head: "tower-launcher-sa", compute: "tower-compute-sa" },
      roleArns: { launcher: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher" },
      claim: "tower-scratch",
      nextflowConfig: "process.executor = 'k8s'\n",
      execution: { name: "genomics-run-1" },
    });
  });

  it("includes the Fusion workload role when there is one", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const state = completedState();
    state.iam!.workloadRoleArn = "arn:aws:iam::111122223333:role/nfeks-genomics-workload";
    // Act
    await ready(state);
    // Assess
    expect(JSON.parse(sentEntry().Detail!).roleArns.workload).toBe("arn:aws:iam::111122223333:role/nfeks-genomics-workload");
  });

  it("throws Throttled when EventBridge throttles the entry (the state machine retries)", async () => {
    // Prepare
    events
      .on(PutEventsCommand)
      .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded" }] });
    // Act
    const error = await ready(completedState()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "Throttled", message: expect.stringContaining("ThrottlingException") });
  });

  it("throws when EventBridge rejects the entry for another reason", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: "MalformedDetail", ErrorMessage: "bad detail" }] });
    // Act
    const error = await ready(completedState()).catch((e: unknown) => e);
    // Assess
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain("MalformedDetail");
  });
});

describe("Report failed", () => {
  it("returns the original error name and a cause saying what failed, what was undone and what was not", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    // Act
    const result = await failed(failedState());
    // Assess
    expect(result.error).toBe("OwnershipConflict");
    expect(result.cause).toBe(
      "Step GrantClusterAccess failed: OwnershipConflict: aws-auth entry for the launcher exists without our marks. " +
        "Undone: Namespace tower-nf, ServiceAccount tower-nf/tower-launcher-sa. " +
        "Could not undo: iam (Throttled: iam:DeleteRole failed: Throttling: Rate exceeded).",
    );
  });

  it("says a failed re-run undid only its own work and left the environment as recorded", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const { compensation: _compensation, ...state } = failedState();
    const rerun = { previous: { spec: {}, generation: 3, status: "ready" as const, owned: { roles: ["arn:aws:iam::1:role/x"] } } };
    // Act
    const result = await failed({ ...state, rerun });
    // Assess
    expect(result.cause).toContain(
      "Only this run's own work was undone: the environment is still generation 3 as recorded (status ready).",
    );
  });

  it("lists what a compensator reports it could not undo (its `failed` lines) under Could not undo", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const state = failedState();
    state.compensation = {
      UndoStorage: {
        undone: ["ConfigMap tower-nf/nextflow-config"],
        kept: [],
        failed: ["eks.amazonaws.com/role-arn on ServiceAccount tower-nf/tower-launcher-sa: refused"],
      },
    };
    // Act
    const result = await failed(state);
    // Assess
    expect(result.cause).toContain("Undone: ConfigMap tower-nf/nextflow-config.");
    expect(result.cause).toContain("Could not undo: eks.amazonaws.com/role-arn on ServiceAccount tower-nf/tower-launcher-sa: refused.");
    expect(JSON.parse(sentEntry().Detail!).couldNotUndo).toEqual([
      "eks.amazonaws.com/role-arn on ServiceAccount tower-nf/tower-launcher-sa: refused",
    ]);
  });

  it("emits ComputeEnvironmentFailed with the error and the compensation results", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const state = failedState();
    // Act
    await failed(state);
    // Assess
    const entry = sentEntry();
    expect(entry).toMatchObject({
      EventBusName: "nf-eks-provisioner-bus",
      Source: "nf-eks-provisioner",
      DetailType: "ComputeEnvironmentFailed",
    });
    expect(JSON.parse(entry.Detail!)).toMatchObject({
      tenant: "genomics",
      failedStep: "GrantClusterAccess",
      error: { name: "OwnershipConflict", message: "aws-auth entry for the launcher exists without our marks" },
      compensation: state.compensation,
      couldNotUndo: [expect.stringContaining("iam (Throttled")],
    });
  });

  it("reads a plain-text cause (the local runner) and says when nothing needed undoing", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const state: WorkflowState = {
      request: { tenant: "genomics", cluster: { name: "prod", region: "eu-west-1" } } as WorkflowState["request"],
      execution: { name: "genomics-run-2", id: "x", startTime: "2025-03-03T09:00:00.000Z" },
      error: { Error: "NotAllowed", Cause: "cluster prod in eu-west-1 is not on this deployment's allowlist" },
    };
    // Act
    const result = await failed(state);
    // Assess
    expect(result).toEqual({
      error: "NotAllowed",
      cause:
        "Step ResolveCluster failed: NotAllowed: cluster prod in eu-west-1 is not on this deployment's allowlist. Undone: nothing (nothing had been created).",
    });
  });

  it("still returns the original error when PutEvents fails, and says the event was not sent", async () => {
    // Prepare
    events.on(PutEventsCommand).rejects(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }));
    // Act
    const result = await failed(failedState());
    // Assess
    expect(result.error).toBe("OwnershipConflict");
    expect(result.cause).toMatch(/^Step GrantClusterAccess failed: OwnershipConflict: /);
    expect(result.cause).toContain("Could not undo: iam (Throttled");
    expect(result.cause).toContain("ComputeEnvironmentFailed event could not be sent");
    expect(result.cause).toContain("ECONNREFUSED");
  });

  it("still returns the original error when EventBridge rejects the entry", async () => {
    // Prepare
    events
      .on(PutEventsCommand)
      .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded" }] });
    // Act
    const result = await failed(failedState());
    // Assess
    expect(result.error).toBe("OwnershipConflict");
    expect(result.cause).toContain("Throttled");
  });

  it("names the head job when it was the head job that failed", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const state = { ...completedState(), error: { Error: "HeadJobFailed", Cause: "pod nf-head-abc ended Failed" } };
    state.headJob = {
      jobName: "nf-head",
      namespace: "tower-nf",
      phase: "Failed",
      done: true,
      checks: 3,
      launchedAt: "2025-01-01T00:00:00.000Z",
      nextCheckSeconds: 80,
    };
    // Act
    const result = await failed(state);
    // Assess
    expect(result.cause).toMatch(/^Step LaunchHeadJob failed: HeadJobFailed: pod nf-head-abc ended Failed\./);
  });

  it("names the head job when the wait for it timed out", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    // CheckHeadJob threw it: the Cause is Lambda's error JSON.
    const message =
      "head job tower-nf/nf-head was still Pending after 30 minutes (waiting for it to be running, timeout 30 minutes; see headJob.timeoutMinutes)";
    const cause = JSON.stringify({ errorType: "HeadJobTimedOut", errorMessage: message, trace: [`HeadJobTimedOut: ${message}`] });
    const state = { ...completedState(), error: { Error: "HeadJobTimedOut", Cause: cause } };
    state.headJob = {
      jobName: "nf-head",
      namespace: "tower-nf",
      phase: "Pending",
      done: false,
      checks: 12,
      launchedAt: "2025-01-01T00:00:00.000Z",
      nextCheckSeconds: 300,
    };
    // Act
    const result = await failed(state);
    // Assess
    expect(result.error).toBe("HeadJobTimedOut");
    expect(result.cause).toMatch(
      /^Step LaunchHeadJob failed: HeadJobTimedOut: head job tower-nf\/nf-head was still Pending after 30 minutes/,
    );
  });

  it("names the head job when its pod cannot start (HeadPodCannotStart), not a later step", async () => {
    // Prepare: a create run (no update, so no removals), the head job launched and checked
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const message = "head job tower-nf/nf-head: its pod nf-head-abcde cannot start: InvalidImageName: bad image";
    const cause = JSON.stringify({ errorType: "HeadPodCannotStart", errorMessage: message, trace: [`HeadPodCannotStart: ${message}`] });
    const state = { ...completedState(), error: { Error: "HeadPodCannotStart", Cause: cause } };
    state.headJob = {
      jobName: "nf-head",
      namespace: "tower-nf",
      phase: "Pending",
      done: false,
      checks: 2,
      launchedAt: "2025-01-01T00:00:00.000Z",
      nextCheckSeconds: 20,
    };
    // Act
    const result = await failed(state);
    // Assess
    expect(result.cause).toMatch(/^Step LaunchHeadJob failed: HeadPodCannotStart: head job tower-nf\/nf-head: its pod/);
  });

  it("names Report when a create run failed with every build result in place (the update-only removals are not missing)", async () => {
    // Prepare
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const state = { ...completedState(), error: { Error: "NotAllowed", Cause: "events:PutEvents denied" } };
    // Act
    const result = await failed(state);
    // Assess
    expect(result.cause).toMatch(/^Step Report failed: NotAllowed: /);
  });

  it("names the namespace/RBAC branch when it failed while the IAM branch finished", async () => {
    // Prepare: the state DidIdentityAndNamespaceSucceed hands to compensation
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const { request, execution, cluster, iam } = completedState();
    const state: WorkflowState = {
      request,
      execution,
      cluster,
      iam,
      error: { Error: "NotAllowed", Cause: "kube:POST rolebindings refused: 403 Forbidden" },
      failedStep: "CreateNamespaceAndRbac",
      compensation: {
        UndoNamespaceAndRbac: { undone: ["Namespace tower-nf"], kept: [] },
        UndoIamResources: { undone: ["IAM role nfeks-genomics-launcher"], kept: [] },
      },
    };
    // Act
    const result = await failed(state);
    // Assess
    expect(result.cause).toMatch(/^Step CreateNamespaceAndRbac failed: NotAllowed: kube:POST rolebindings refused: 403 Forbidden\./);
    expect(result.cause).toContain("Undone: Namespace tower-nf, IAM role nfeks-genomics-launcher.");
    expect(JSON.parse(sentEntry().Detail!)).toMatchObject({ failedStep: "CreateNamespaceAndRbac", error: { name: "NotAllowed" } });
  });

  it("trusts the step the state machine recorded over the first missing result", async () => {
    // Prepare: neither branch result is there (the IAM one would be named by the missing-result rule)
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const { request, execution, cluster } = completedState();
    const state: WorkflowState = {
      request,
      execution,
      cluster,
      error: { Error: "OwnershipConflict", Cause: "Namespace tower-nf exists without our marks" },
      failedStep: "CreateNamespaceAndRbac",
    };
    // Act
    const result = await failed(state);
    // Assess
    expect(result.cause).toMatch(/^Step CreateNamespaceAndRbac failed: OwnershipConflict: /);
    expect(JSON.parse(sentEntry().Detail!)).toMatchObject({ failedStep: "CreateNamespaceAndRbac" });
  });

  it("without a recorded step, still names the first step whose result is missing", async () => {
    // Prepare: the Parallel's own Catch (a runtime error) leaves no branch result and no recorded step
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const { request, execution, cluster } = completedState();
    const state: WorkflowState = {
      request,
      execution,
      cluster,
      error: { Error: "States.Runtime", Cause: "an error occurred while executing the state" },
    };
    // Act
    const result = await failed(state);
    // Assess
    expect(result.cause).toMatch(/^Step CreateIamResources failed: States.Runtime: /);
  });
});
