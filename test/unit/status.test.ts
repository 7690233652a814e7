import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  SFNClient,
  SFNServiceException,
  type DescribeExecutionOutput,
  type HistoryEvent,
} from "@aws-sdk/client-sfn";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { handler } from "../../functions/api/status.js";
import { summariseHistory } from "../../functions/lib/workflow/execution-summary.js";
import { STEP_RESULT_FIELDS } from "../../functions/lib/workflow/step-result-fields.js";
import type { CompensationResult } from "../../functions/lib/workflow/compensation.js";
import type {
  AccessResult,
  HeadJobResult,
  IamResult,
  RbacResult,
  RemovalResult,
  ResolvedCluster,
  StorageResult,
} from "../../functions/lib/workflow/workflow-state.js";
import { STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { useEnv } from "../support/fixtures.js";

const sfn = mockClient(SFNClient);

const STATE_MACHINE_ARN = "arn:aws:states:eu-west-1:111122223333:stateMachine:nf-eks-provision";
const NAME = "genomics_key-1";
const EXECUTION_ARN = `arn:aws:states:eu-west-1:111122223333:execution:nf-eks-provision:${NAME}`;
const LAMBDA = "arn:aws:lambda:eu-west-1:111122223333:function:nf-eks-";
const T0 = Date.parse("2025-01-31T12:00:00Z");

/** Lambda's Cause for a Node handler error, as Step Functions reports it. */
function lambdaCause(errorType: string, errorMessage: string): string {
  return JSON.stringify({ errorType, errorMessage, trace: [`${errorType}: ${errorMessage}`, "    at handler (/var/task/index.mjs:1:1)"] });
}

/**
 * Writes a history the way Step Functions does for Lambda-ARN Tasks: ids in order, each event's
 * previousEventId pointing at the previous event of its own thread (a Parallel branch is its own thread).
 */
class HistoryWriter {
  readonly events: HistoryEvent[] = [];

  add(type: string, previousEventId: number, details: Partial<HistoryEvent> = {}): number {
    const id = this.events.length + 1;
    this.events.push({ id, previousEventId, type: type as HistoryEvent["type"], timestamp: new Date(T0 + id * 1000), ...details });
    return id;
  }

  started(input: unknown): number {
    return this.add("ExecutionStarted", 0, {
      executionStartedEventDetails: { input: JSON.stringify(input), roleArn: "arn:aws:iam::111122223333:role/sfn" },
    });
  }

  enter(type: string, name: string, prev: number): number {
    return this.add(`${type}StateEntered`, prev, { stateEnteredEventDetails: { name, input: "{}" } });
  }

  exit(type: string, name: string, prev: number, output: unknown = {}): number {
    return this.add(`${type}StateExited`, prev, { stateExitedEventDetails: { name, output: JSON.stringify(output) } });
  }

  /** Scheduled + Started; returns the Started id */
  attempt(name: string, prev: number): number {
    const scheduled = this.add("LambdaFunctionScheduled", prev, {
      lambdaFunctionScheduledEventDetails: { resource: `${LAMBDA}${name}`, input: "{}" },
    });
    return this.add("LambdaFunctionStarted", scheduled);
  }

  fail(prev: number, error: string, message: string): number {
    return this.add("LambdaFunctionFailed", prev, { lambdaFunctionFailedEventDetails: { error, cause: lambdaCause(error, message) } });
  }

  succeed(prev: number, output: unknown): number {
    return this.add("LambdaFunctionSucceeded", prev, { lambdaFunctionSucceededEventDetails: { output: JSON.stringify(output) } });
  }

  /** A Task that succeeds at the first attempt; returns the TaskStateExited id */
  task(name: string, prev: number, output: unknown): number {
    const entered = this.enter("Task", name, prev);
    return this.exit("Task", name, this.succeed(this.attempt(name, entered), output));
  }
}

const CLUSTER = { name: "research", region: "eu-west-1", authenticationMode: "API" };
const IAM = {
  launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher",
  launcherKind: "role",
  launcherCreated: true,
  created: [],
};
const RBAC = { namespace: "tower-nf", serviceAccount: "tower-launcher-sa", role: "tower-launcher-role", created: [], adopted: [] };

/** Start → ResolveCluster → the Parallel with both branches entered; returns ids to continue from. */
function upToParallel(w: HistoryWriter, iamAttempts: Array<"throttle" | "ok">) {
  w.started({ request: { tenant: "genomics" } });
  const start = w.exit("Pass", "Start", w.enter("Pass", "Start", 0));
  const resolved = w.task("ResolveCluster", start, CLUSTER);
  const parallelEntered = w.enter("Parallel", "PrepareIdentityAndNamespace", resolved);
  const parallelStarted = w.add("ParallelStateStarted", parallelEntered);
  const iamEntered = w.enter("Task", "CreateIamResources", parallelStarted);
  const rbacEntered = w.enter("Task", "CreateNamespaceAndRbac", parallelStarted);
  // The branches interleave: only previousEventId tells which Lambda event is whose.
  const rbacStarted = w.attempt("CreateNamespaceAndRbac", rbacEntered);
  let iamLast = iamEntered;
  for (const [i, outcome] of iamAttempts.entries()) {
    const started = w.attempt("CreateIamResources", iamLast);
    iamLast =
      outcome === "throttle"
        ? w.fail(started, "Throttled", `iam:CreateRole failed: Throttling: Rate exceeded (${i + 1})`)
        : w.succeed(started, IAM);
  }
  return { parallelEntered, parallelStarted, iamLast, rbacStarted };
}

function runningAtHeadJobWait(): HistoryEvent[] {
  const w = new HistoryWriter();
  const p = upToParallel(w, ["ok"]);
  const iamExit = w.exit("Task", "CreateIamResources", p.iamLast, IAM);
  const rbacExit = w.exit("Task", "CreateNamespaceAndRbac", w.succeed(p.rbacStarted, RBAC), RBAC);
  const parallelDone = w.add("ParallelStateSucceeded", Math.max(iamExit, rbacExit));
  const parallelExit = w.exit("Parallel", "PrepareIdentityAndNamespace", parallelDone);
  const access = w.task("GrantClusterAccess", parallelExit, { method: "access-entry", created: true });
  const storage = w.task("ConfigureStorage", access, { type: "pvc", claimName: "tower-scratch" });
  const launched = w.task("LaunchHeadJob", storage, { jobName: "nf-head-genomics-1a2b3c4d", phase: "Pending", done: false, checks: 0 });
  w.enter("Wait", "WaitForHeadJob", launched);
  return w.events;
}

function succeeded(): HistoryEvent[] {
  const w = new HistoryWriter();
  const p = upToParallel(w, ["ok"]);
  const iamExit = w.exit("Task", "CreateIamResources", p.iamLast, IAM);
  const rbacExit = w.exit("Task", "CreateNamespaceAndRbac", w.succeed(p.rbacStarted, RBAC), RBAC);
  const parallelExit = w.exit("Parallel", "PrepareIdentityAndNamespace", w.add("ParallelStateSucceeded", Math.max(iamExit, rbacExit)));
  const access = w.task("GrantClusterAccess", parallelExit, { method: "access-entry", created: true });
  const storage = w.task("ConfigureStorage", access, { type: "pvc", claimName: "tower-scratch" });
  const report = w.task("Report", storage, { eventBusName: "nf-eks-bus" });
  const done = w.exit("Succeed", "Done", w.enter("Succeed", "Done", report));
  w.add("ExecutionSucceeded", done, { executionSucceededEventDetails: { output: "{}" } });
  return w.events;
}

/** IAM throttled twice then created; RBAC hits a namespace that is not ours; compensation; Fail. */
function failedWithRetries(): HistoryEvent[] {
  const w = new HistoryWriter();
  const p = upToParallel(w, ["throttle", "throttle", "ok"]);
  const rbacFailed = w.fail(p.rbacStarted, "OwnershipConflict", "Namespace tower-nf exists without our labels");
  const iamExit = w.exit("Task", "CreateIamResources", p.iamLast, IAM);
  const parallelFailed = w.add("ParallelStateFailed", Math.max(rbacFailed, iamExit));
  const caught = w.exit("Parallel", "PrepareIdentityAndNamespace", parallelFailed, { error: { Error: "OwnershipConflict" } });
  const undoRbac = w.task("UndoNamespaceAndRbac", caught, { undone: [], kept: [] });
  const undoIam = w.task("UndoIamResources", undoRbac, { undone: ["role nfeks-genomics-launcher"], kept: [] });
  const report = w.task("ReportFailure", undoIam, { error: "OwnershipConflict", cause: "Step CreateNamespaceAndRbac failed" });
  const fail = w.enter("Fail", "Failed", report);
  w.add("ExecutionFailed", fail, {
    executionFailedEventDetails: { error: "OwnershipConflict", cause: "Step CreateNamespaceAndRbac failed: ..." },
  });
  return w.events;
}

function described(status: DescribeExecutionOutput["status"], extra: Partial<DescribeExecutionOutput> = {}): DescribeExecutionOutput {
  return {
    executionArn: EXECUTION_ARN,
    stateMachineArn: STATE_MACHINE_ARN,
    name: NAME,
    status,
    startDate: new Date(T0),
    ...(status !== "RUNNING" ? { stopDate: new Date(T0 + 120_000) } : {}),
    input: "{}",
    ...extra,
  };
}

function apiEvent(id: string | undefined): APIGatewayProxyEventV2 {
  return {
    pathParameters: id === undefined ? undefined : { id },
    requestContext: { requestId: "req-1" },
  } as unknown as APIGatewayProxyEventV2;
}

async function get(id: string | undefined): Promise<{ statusCode: number; body: any }> {
  const response = await handler(apiEvent(id));
  return { statusCode: response.statusCode!, body: JSON.parse(response.body!) };
}

useEnv({ STATE_MACHINE_ARN });

beforeEach(() => {
  sfn.reset();
  resetClients();
});

describe("GET /executions/{id}", () => {
  it("shows a running execution's current step and the finished steps' results", async () => {
    // Prepare
    sfn.on(DescribeExecutionCommand).resolves(described("RUNNING"));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: runningAtHeadJobWait() });
    // Act
    const { statusCode, body } = await get(NAME);
    // Assess
    expect(statusCode).toBe(200);
    expect(body).toMatchObject({ executionArn: EXECUTION_ARN, name: NAME, status: "RUNNING", currentStep: "WaitForHeadJob", retries: 0 });
    expect(body.startDate).toBe("2025-01-31T12:00:00.000Z");
    expect(body.stopDate).toBeUndefined();
    expect(body.failedStep).toBeUndefined();
    expect(body.error).toBeUndefined();
    expect(body.steps.map((s: { name: string }) => s.name)).toEqual([
      "ResolveCluster",
      "CreateIamResources",
      "CreateNamespaceAndRbac",
      "GrantClusterAccess",
      "ConfigureStorage",
      "LaunchHeadJob",
    ]);
    expect(body.steps[0]).toMatchObject({ name: "ResolveCluster", status: "succeeded", result: CLUSTER, retries: 0 });
    expect(body.steps[0].finishedAt > body.steps[0].startedAt).toBe(true);
    expect(body.steps[1]).toMatchObject({ name: "CreateIamResources", status: "succeeded", result: IAM });
    expect(sfn).toHaveReceivedCommandWith(DescribeExecutionCommand, { executionArn: EXECUTION_ARN });
    expect(sfn).toHaveReceivedCommandWith(GetExecutionHistoryCommand, { executionArn: EXECUTION_ARN, reverseOrder: false });
  });

  it("shows a succeeded execution: every step succeeded, no current or failed step", async () => {
    // Prepare
    sfn.on(DescribeExecutionCommand).resolves(described("SUCCEEDED", { output: "{}" }));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: succeeded() });
    // Act
    const { statusCode, body } = await get(NAME);
    // Assess
    expect(statusCode).toBe(200);
    expect(body).toMatchObject({ status: "SUCCEEDED", stopDate: "2025-01-31T12:02:00.000Z", retries: 0 });
    expect(body.currentStep).toBeUndefined();
    expect(body.failedStep).toBeUndefined();
    expect(body.steps.every((s: { status: string }) => s.status === "succeeded")).toBe(true);
    expect(body.steps.find((s: { name: string }) => s.name === "Report").result).toEqual({ eventBusName: "nf-eks-bus" });
  });

  it("shows a failed execution: the failed step and its error, the retries seen, the execution's error and cause", async () => {
    // Prepare
    sfn.on(DescribeExecutionCommand).resolves(
      described("FAILED", {
        error: "OwnershipConflict",
        cause: "Step CreateNamespaceAndRbac failed: OwnershipConflict: Namespace tower-nf exists without our labels.",
      }),
    );
    sfn.on(GetExecutionHistoryCommand).resolves({ events: failedWithRetries() });
    // Act
    const { statusCode, body } = await get(NAME);
    // Assess
    expect(statusCode).toBe(200);
    expect(body).toMatchObject({
      status: "FAILED",
      failedStep: "CreateNamespaceAndRbac",
      retries: 2,
      error: "OwnershipConflict",
      cause: "Step CreateNamespaceAndRbac failed: OwnershipConflict: Namespace tower-nf exists without our labels.",
    });
    const byName = Object.fromEntries(body.steps.map((s: { name: string }) => [s.name, s]));
    expect(byName.CreateIamResources).toMatchObject({ status: "succeeded", retries: 2, result: IAM });
    expect(byName.CreateIamResources.error).toBeUndefined();
    expect(byName.CreateNamespaceAndRbac).toMatchObject({
      status: "failed",
      retries: 0,
      error: { error: "OwnershipConflict", cause: "Namespace tower-nf exists without our labels" },
    });
    expect(byName.CreateNamespaceAndRbac.result).toBeUndefined();
    expect(byName.UndoIamResources).toMatchObject({ status: "succeeded", result: { undone: ["role nfeks-genomics-launcher"], kept: [] } });
    expect(byName.ReportFailure).toMatchObject({ status: "succeeded" });
  });

  it("reads every page of the history, in ascending order", async () => {
    // Prepare
    const events = succeeded();
    sfn.on(DescribeExecutionCommand).resolves(described("SUCCEEDED"));
    sfn
      .on(GetExecutionHistoryCommand, { executionArn: EXECUTION_ARN, nextToken: undefined })
      .resolves({ events: events.slice(0, 10), nextToken: "page-2" });
    sfn.on(GetExecutionHistoryCommand, { executionArn: EXECUTION_ARN, nextToken: "page-2" }).resolves({ events: events.slice(10) });
    // Act
    const { body } = await get(NAME);
    // Assess
    expect(sfn).toHaveReceivedCommandTimes(GetExecutionHistoryCommand, 2);
    expect(sfn).toHaveReceivedNthCommandWith(GetExecutionHistoryCommand, 2, { nextToken: "page-2", reverseOrder: false });
    // The Report step's events are on page 2 only.
    expect(body.steps.find((s: { name: string }) => s.name === "Report")).toMatchObject({ status: "succeeded" });
  });

  it("accepts the execution ARN, URL-encoded, and refuses ARNs of other state machines without asking", async () => {
    // Prepare
    sfn.on(DescribeExecutionCommand).resolves(described("SUCCEEDED"));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: succeeded() });
    // Act
    const byArn = await get(encodeURIComponent(EXECUTION_ARN));
    const other = await get(EXECUTION_ARN.replace(":nf-eks-provision:", ":someone-elses:"));
    // Assess
    expect(byArn.statusCode).toBe(200);
    expect(sfn).toHaveReceivedCommandWith(DescribeExecutionCommand, { executionArn: EXECUTION_ARN });
    expect(other.statusCode).toBe(404);
    expect(other.body.error).toBe("ExecutionNotFound");
    expect(sfn).toHaveReceivedCommandTimes(DescribeExecutionCommand, 1);
  });

  it("answers 404 ExecutionNotFound for an execution Step Functions does not know", async () => {
    // Prepare
    sfn
      .on(DescribeExecutionCommand)
      .rejects(new ExecutionDoesNotExist({ message: `Execution Does Not Exist: '${EXECUTION_ARN}'`, $metadata: { httpStatusCode: 400 } }));
    // Act
    const { statusCode, body } = await get(NAME);
    // Assess
    expect(statusCode).toBe(404);
    expect(body).toMatchObject({ error: "ExecutionNotFound" });
    expect(sfn).toHaveReceivedCommandTimes(GetExecutionHistoryCommand, 0);
  });

  it.each([
    ["a name with a space", "genomics run"],
    ["a name with a slash", "a/b"],
    ["a name over 80 characters", "x".repeat(81)],
    ["an IAM ARN", "arn:aws:iam::111122223333:role/x"],
    ["a state machine ARN", STATE_MACHINE_ARN],
    ["broken URL encoding", "abc%E0%A4%A"],
    ["nothing", ""],
  ])("answers 400 for %s, without calling Step Functions", async (_what, id) => {
    // Act
    const { statusCode, body } = await get(id);
    // Assess
    expect(statusCode).toBe(400);
    expect(body.error).toBe("InvalidRequest");
    expect(sfn).toHaveReceivedCommandTimes(DescribeExecutionCommand, 0);
  });

  it("answers 503 with Retry-After when Step Functions throttles", async () => {
    // Prepare
    sfn.on(DescribeExecutionCommand).rejects(
      new SFNServiceException({
        name: "ThrottlingException",
        $fault: "client",
        message: "Rate exceeded",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const response = await handler(apiEvent(NAME));
    // Assess
    expect(response.statusCode).toBe(503);
    expect(response.headers).toMatchObject({ "retry-after": "5" });
    expect(JSON.parse(response.body!).error).toBe("Throttled");
  });

  it("answers 400 when Step Functions finds the execution ARN malformed", async () => {
    // Prepare
    sfn.on(DescribeExecutionCommand).rejects(
      new SFNServiceException({
        name: "InvalidArn",
        $fault: "client",
        message: "Invalid Arn: 'Resource type not valid in this context'",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const { statusCode, body } = await get(NAME);
    // Assess
    expect(statusCode).toBe(400);
    expect(body).toEqual({ error: "InvalidRequest", message: "the execution ARN is not valid" });
  });

  it("answers 500 JSON with the request id, and no stack trace, when something unexpected fails", async () => {
    // Prepare
    sfn.on(DescribeExecutionCommand).rejects(new TypeError("Cannot read properties of undefined (reading 'status')"));
    // Act
    const response = await handler(apiEvent(NAME));
    // Assess
    expect(response.statusCode).toBe(500);
    expect(response.headers).toEqual({ "content-type": "application/json" });
    expect(JSON.parse(response.body!)).toEqual({
      error: "InternalError",
      message: "could not read the execution status",
      requestId: "req-1",
    });
    expect(response.body).not.toMatch(/\bat .+:\d+:\d+|TypeError/);
  });
});

describe("GET /executions/{id}: what the response leaves out", () => {
  it("gives the message of a raw Lambda cause, without its stack trace", async () => {
    // Prepare: an error no Catch took, as Step Functions reports it
    sfn.on(DescribeExecutionCommand).resolves(
      described("FAILED", {
        error: "OwnershipConflict",
        cause: lambdaCause("OwnershipConflict", "Namespace tower-nf exists without our labels"),
      }),
    );
    sfn.on(GetExecutionHistoryCommand).resolves({ events: failedWithRetries() });
    // Act
    const { body } = await get(NAME);
    // Assess
    expect(body.cause).toBe("Namespace tower-nf exists without our labels");
  });

  it("gives the message of the cause FailWithoutReport wraps, keeping why the failure was not reported", async () => {
    // Prepare: States.Format('{} (ComputeEnvironmentFailed was not reported: {})', $.error.Cause, ...)
    const cause = `${lambdaCause("OwnershipConflict", "Namespace tower-nf exists without our labels")} (ComputeEnvironmentFailed was not reported: Throttled)`;
    sfn.on(DescribeExecutionCommand).resolves(described("FAILED", { error: "OwnershipConflict", cause }));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: failedWithRetries() });
    // Act
    const { body } = await get(NAME);
    // Assess
    expect(body.cause).toBe("Namespace tower-nf exists without our labels (ComputeEnvironmentFailed was not reported: Throttled)");
    expect(JSON.stringify(body)).not.toContain("index.mjs");
  });

  it("leaves out the copy of the cluster's aws-auth GrantClusterAccess keeps for its undo", async () => {
    // Prepare
    const previousAwsAuth = { mapRoles: "- rolearn: arn:aws:iam::111122223333:role/other-tenant\n  username: other\n" };
    const access = {
      method: "aws-auth",
      principalArn: IAM.launcherArn,
      username: "tower-launcher-user-genomics",
      groups: ["g"],
      created: true,
      previousAwsAuth,
    };
    const w = new HistoryWriter();
    w.started({});
    w.task("GrantClusterAccess", 0, access);
    sfn.on(DescribeExecutionCommand).resolves(described("RUNNING"));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: w.events });
    // Act
    const { body } = await get(NAME);
    // Assess
    const { previousAwsAuth: _left, ...shown } = access;
    expect(body.steps[0]).toMatchObject({ name: "GrantClusterAccess", status: "succeeded" });
    expect(body.steps[0].result).toEqual(shown);
    expect(JSON.stringify(body)).not.toContain("other-tenant");
  });
});

describe("GET /executions/{id}: each step's result is an allowlist of fields", () => {
  const ROLE = "arn:aws:iam::111122223333:role/nfeks-genomics-launcher";
  /** A result of every step with every field of its type (a field added to a type without one here does not compile). */
  const SAMPLES: Record<string, object> = {
    ResolveCluster: {
      name: "research",
      region: "eu-west-1",
      arn: "arn:aws:eks:eu-west-1:111122223333:cluster/research",
      accountId: "111122223333",
      endpoint: "https://x",
      certificateAuthority: "LS0t",
      oidcIssuer: "https://oidc",
      authenticationMode: "API",
      version: "1.31",
    } satisfies Required<ResolvedCluster>,
    CreateIamResources: {
      launcherArn: ROLE,
      launcherKind: "role",
      launcherCreated: false,
      launcherCreateDate: "2026-01-01T00:00:00.000Z",
      workloadRoleArn: ROLE,
      podIdentityAssociationIds: ["a-1"],
      created: [],
      changed: [{ roleName: "nfeks-genomics-launcher", previousTrustPolicy: '{"Statement":"secret-trust"}' }],
      changedAssociations: [{ associationId: "a-1", previousRoleArn: ROLE }],
    } satisfies Required<IamResult>,
    CreateNamespaceAndRbac: {
      namespace: "tower-nf",
      serviceAccount: "sa",
      computeServiceAccount: "csa",
      role: "r",
      created: [],
      adopted: [],
    } satisfies Required<RbacResult>,
    GrantClusterAccess: {
      method: "aws-auth",
      principalArn: ROLE,
      username: "u",
      groups: ["g"],
      created: true,
      previousAwsAuth: { mapRoles: "other-tenant" },
      previousIdentity: { username: "old", groups: ["old"] },
      replacedStaleEntry: { createdAt: "2025-12-31T00:00:00.000Z" },
    } satisfies Required<AccessResult>,
    ConfigureStorage: {
      type: "pvc",
      claimName: "c",
      mountPath: "/scratch",
      annotated: [],
      configMap: "nextflow-config",
      nextflowConfig: "process {}",
      created: [],
      adopted: [],
      grown: [{ claim: "c", namespace: "tower-nf", from: "1Gi", to: "2Gi" }],
    } satisfies Required<StorageResult>,
    RemoveUnwantedResources: { removed: ["Namespace old"], kept: [] } satisfies Required<RemovalResult>,
    LaunchHeadJob: {
      jobName: "j",
      namespace: "tower-nf",
      phase: "Pending",
      done: false,
      podName: "p",
      checks: 0,
      launchedAt: "2026-01-01T00:00:00Z",
      nextCheckSeconds: 5,
      imagePullFailingSince: "2026-01-01T00:00:00Z",
      unschedulableSince: "2026-01-01T00:00:00Z",
      paramsConfigMap: "params",
    } satisfies Required<HeadJobResult>,
    UndoClusterAccess: { undone: ["x"], kept: ["y"], failed: ["z"] } satisfies Required<CompensationResult>,
    Report: { eventBusName: "bus", detail: { namespace: "tower-nf" } },
    ReportFailure: { error: "OwnershipConflict", cause: "why" },
  };

  it("has a decision for every field of every step's result, and a table for every step", () => {
    // Assess
    for (const [step, sample] of Object.entries(SAMPLES)) {
      const undecided = Object.keys(sample).filter((field) => STEP_RESULT_FIELDS[step]?.[field] === undefined);
      expect(undecided, `${step}: fields nobody allowed or withheld`).toEqual([]);
    }
    expect(STEP_FUNCTIONS.map((entry) => entry.state).filter((state) => !STEP_RESULT_FIELDS[state])).toEqual([]);
  });

  it("shows the IAM step's result without the adopted roles' previous documents, and nothing it does not know", async () => {
    // Prepare
    const w = new HistoryWriter();
    w.started({});
    w.task("CreateIamResources", 0, { ...SAMPLES.CreateIamResources, surprise: "a field nobody allowed" });
    sfn.on(DescribeExecutionCommand).resolves(described("RUNNING"));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: w.events });
    // Act
    const { body } = await get(NAME);
    // Assess
    const { changed: _withheld, ...shown } = SAMPLES.CreateIamResources as IamResult;
    expect(body.steps[0].result).toEqual(shown);
    expect(JSON.stringify(body)).not.toContain("secret-trust");
    expect(JSON.stringify(body)).not.toContain("surprise");
  });

  it("shows no result for a step it has no table for", async () => {
    // Prepare
    const w = new HistoryWriter();
    w.started({});
    w.task("SomeNewStep", 0, { anything: "at all" });
    sfn.on(DescribeExecutionCommand).resolves(described("RUNNING"));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: w.events });
    // Act
    const { body } = await get(NAME);
    // Assess
    expect(body.steps[0]).toMatchObject({ name: "SomeNewStep", status: "succeeded" });
    expect(body.steps[0]).not.toHaveProperty("result");
  });
});

describe("summariseHistory", () => {
  it("tells a step waiting for its retry as running, with the error that is being retried", () => {
    // Prepare
    const w = new HistoryWriter();
    upToParallel(w, ["throttle"]);
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    const iam = summary.steps.find((s) => s.name === "CreateIamResources")!;
    expect(iam).toMatchObject({
      status: "running",
      retries: 0,
      error: { error: "Throttled", cause: "iam:CreateRole failed: Throttling: Rate exceeded (1)" },
    });
    expect(iam.finishedAt).toBeUndefined();
    expect(summary.steps.find((s) => s.name === "CreateNamespaceAndRbac")).toMatchObject({ status: "running" });
    expect(summary.currentStep).toBe("CreateNamespaceAndRbac");
    expect(summary.failedStep).toBeUndefined();
  });

  it("counts a retry once the failed attempt is scheduled again", () => {
    // Prepare
    const w = new HistoryWriter();
    const p = upToParallel(w, ["throttle", "throttle"]);
    w.attempt("CreateIamResources", p.iamLast);
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    expect(summary.steps.find((s) => s.name === "CreateIamResources")).toMatchObject({ status: "running", retries: 2 });
    expect(summary.steps.find((s) => s.name === "CreateIamResources")!.error).toBeUndefined();
    expect(summary.retries).toBe(2);
  });

  it("marks a branch still running when its sibling failed as aborted, and the failing branch's Task as failed", () => {
    // Prepare
    const w = new HistoryWriter();
    const p = upToParallel(w, []);
    const rbacFailed = w.fail(p.rbacStarted, "NotAllowed", "kube:POST namespaces failed (HTTP 403): forbidden");
    const aborted = w.add("TaskStateAborted", p.iamLast);
    const parallelFailed = w.add("ParallelStateFailed", Math.max(rbacFailed, aborted));
    w.add("ExecutionFailed", parallelFailed, {
      executionFailedEventDetails: { error: "NotAllowed", cause: lambdaCause("NotAllowed", "forbidden") },
    });
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    expect(summary.steps.find((s) => s.name === "CreateIamResources")).toMatchObject({ status: "aborted" });
    expect(summary.steps.find((s) => s.name === "CreateNamespaceAndRbac")).toMatchObject({
      status: "failed",
      error: { error: "NotAllowed" },
    });
    expect(summary.failedStep).toBe("CreateNamespaceAndRbac");
    expect(summary.currentStep).toBeUndefined();
  });

  it("follows a wait loop: one entry for the check step, its result the latest", () => {
    // Prepare
    const w = new HistoryWriter();
    w.started({});
    let last = 0;
    for (const phase of ["Pending", "Running"]) {
      last = w.exit("Wait", "WaitForHeadJob", w.enter("Wait", "WaitForHeadJob", last));
      last = w.task("CheckHeadJob", last, { phase, done: false });
      last = w.exit("Choice", "IsHeadJobDone", w.enter("Choice", "IsHeadJobDone", last));
    }
    w.enter("Wait", "WaitForHeadJob", last);
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    expect(summary.steps).toHaveLength(1);
    expect(summary.steps[0]).toMatchObject({
      name: "CheckHeadJob",
      status: "succeeded",
      result: { phase: "Running", done: false },
      retries: 0,
    });
    // First entered at event 4 (after the first wait), last exited at event 17 (the second round).
    expect(summary.steps[0]!.startedAt).toBe(new Date(T0 + 4_000).toISOString());
    expect(summary.steps[0]!.finishedAt).toBe(new Date(T0 + 17_000).toISOString());
    expect(summary.currentStep).toBe("WaitForHeadJob");
  });

  it("names the last state entered as the failed step when no Task failed (a Fail state reached by a Choice)", () => {
    // Prepare
    const w = new HistoryWriter();
    w.started({});
    const choice = w.exit("Choice", "IsHeadJobDone", w.enter("Choice", "IsHeadJobDone", 0));
    const fail = w.enter("Fail", "HeadJobNeverRan", choice);
    w.add("ExecutionFailed", fail, { executionFailedEventDetails: { error: "HeadJobFailed", cause: "gone" } });
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    expect(summary.failedStep).toBe("HeadJobNeverRan");
    expect(summary.steps).toEqual([]);
  });
});
