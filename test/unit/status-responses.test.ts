/**
 * GET /executions/{id}: a running, succeeded or failed execution as the API shows it (current and failed step, each
 * step's result and retries, every page of the history), the answers to ids it refuses or cannot read, and what the
 * response leaves out (stack traces, the copy of aws-auth kept for the undo). Which result fields are shown:
 * status-result-fields.test.ts; the history reading itself: execution-summary.test.ts.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  SFNServiceException,
  type HistoryEvent,
} from "@aws-sdk/client-sfn";
import { handler } from "../../functions/api/status.js";
import { CLUSTER, HistoryWriter, IAM, lambdaCause, RBAC, upToParallel } from "../support/execution-history.js";
import { apiEvent, described, EXECUTION_ARN, get, NAME, sfn, STATE_MACHINE_ARN, useStatusApi } from "../support/status-api.js";

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

useStatusApi();

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
