/**
 * The local Step Functions (runner + JSON 1.0 service) through the real SFNClient with its endpoint
 * overridden, running test/fixtures/mini-workflow.asl.json with stub handlers (the real steps need the
 * emulators; the provisioning workflow has its own integration tests). Also: the status route reading a
 * local run. Task timeouts and Tasks bound to functions/steps: sfn-local-tasks.test.ts.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  InvalidArn,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
  StateMachineDoesNotExist,
  StopExecutionCommand,
  type HistoryEvent,
} from "@aws-sdk/client-sfn";
import type { APIGatewayProxyEventV2, Context } from "aws-lambda";
import { fileURLToPath } from "node:url";
import { LocalStepFunctions, type ExecutionEventNotice } from "../../local/sfn/runner.js";
import { startSfnService, type SfnService } from "../../local/sfn/service.js";
import { OwnershipConflict, Throttled } from "../../functions/lib/domain/errors.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { createStatusHandler, handler as statusHandler } from "../../functions/api/status.js";
import { summariseHistory } from "../../functions/lib/workflow/execution-summary.js";
import { until } from "../support/sandbox-runs.js";

const FIXTURE = fileURLToPath(new URL("../fixtures/mini-workflow.asl.json", import.meta.url));
const REGION = "eu-west-1";
const ACCOUNT = "111122223333";

/** What each stub handler was called with. */
interface Call {
  state: string;
  event: any;
  context: { functionName: string; invokedFunctionArn: string; awsRequestId: string; remainingMs: number };
}

/** The request in the execution input steers the stubs: throttle CreateThing n times, fail a step, hold Check. */
interface StubRequest {
  tenant: string;
  throttle?: number;
  fail?: "CreateOther" | "Finish";
  checksUntilDone?: number;
  hold?: boolean;
}

const calls: Call[] = [];
const attempts = new Map<string, number>();
/** Check waits on this while `hold` is set, so a test can see a RUNNING execution. */
let releaseHeld: () => void = () => undefined;
let held = new Promise<void>((resolve) => (releaseHeld = resolve));

function stub(state: string, body: (event: any, request: StubRequest) => unknown | Promise<unknown>) {
  return async (event: any, context: Context) => {
    calls.push({
      state,
      event: structuredClone(event),
      context: {
        functionName: context.functionName,
        invokedFunctionArn: context.invokedFunctionArn,
        awsRequestId: context.awsRequestId,
        remainingMs: context.getRemainingTimeInMillis(),
      },
    });
    return body(event, event.request as StubRequest);
  };
}

function attempt(event: any, state: string): number {
  const key = `${event.execution.name}/${state}`;
  const n = (attempts.get(key) ?? 0) + 1;
  attempts.set(key, n);
  return n;
}

const functions = {
  CreateThing: stub("CreateThing", (event, request) => {
    const n = attempt(event, "CreateThing");
    if (n <= (request.throttle ?? 0)) throw new Throttled(`iam:CreateRole failed: Throttling: Rate exceeded (attempt ${n})`);
    const result = { thing: `thing-${request.tenant}`, attempt: n };
    // A handler may scribble on its event: Lambda hands it a copy, so the state does not change.
    event.request.tenant = "mutated";
    return result;
  }),
  CreateOther: stub("CreateOther", (_event, request) => {
    if (request.fail === "CreateOther") throw new OwnershipConflict("Namespace tower-nf exists without our labels");
    return { other: true };
  }),
  Check: stub("Check", async (event, request) => {
    if (request.hold) await held;
    const n = attempt(event, "Check");
    return { done: n >= (request.checksUntilDone ?? 1), checks: n };
  }),
  Finish: stub("Finish", (_event, request) => {
    if (request.fail === "Finish") throw new OwnershipConflict("the finish line belongs to someone else");
    return { finished: true };
  }),
  Undo: stub("Undo", (event) => ({
    error: event.error.Error,
    cause: `Undone after ${event.error.Error}: ${JSON.parse(event.error.Cause).errorMessage}`,
  })),
};

let runner: LocalStepFunctions;
let service: SfnService;
let sfn: SFNClient;
let stateMachineArn: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  runner = new LocalStepFunctions({
    region: REGION,
    accountId: ACCOUNT,
    stateMachines: { "mini-workflow": FIXTURE },
    functions,
    waitMs: 20,
    retryIntervalMs: 10,
  });
  stateMachineArn = runner.stateMachineArn("mini-workflow");
  service = await startSfnService({ runner });
  sfn = new SFNClient({ region: REGION, endpoint: service.url });
});

afterAll(async () => {
  releaseHeld();
  await runner.shutdown();
  sfn.destroy();
  await service.close();
});

beforeEach(() => {
  calls.length = 0;
  held = new Promise<void>((resolve) => (releaseHeld = resolve));
});

afterEach(() => {
  releaseHeld();
  process.env = { ...savedEnv };
  resetClients();
});

async function start(name: string, request: StubRequest): Promise<string> {
  const out = await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify({ request }) }));
  return out.executionArn!;
}

async function historyOf(executionArn: string, maxResults = 1000): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults, nextToken }));
    events.push(...(page.events ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return events;
}

/** The events that belong to a state: those whose previousEventId chain leads to its StateEntered. */
function eventsOfState(events: HistoryEvent[], stateName: string): HistoryEvent[] {
  const owner = new Map<number, string>();
  for (const e of events) {
    const own = e.stateEnteredEventDetails?.name ?? e.stateExitedEventDetails?.name ?? owner.get(e.previousEventId!);
    if (own) owner.set(e.id!, own);
  }
  return events.filter((e) => owner.get(e.id!) === stateName && !/^(Parallel|Execution)/.test(e.type!));
}

function apiEvent(id: string): APIGatewayProxyEventV2 {
  return { pathParameters: { id }, requestContext: { requestId: "req-1" } } as unknown as APIGatewayProxyEventV2;
}

describe("local Step Functions through the SDK", () => {
  it("runs the workflow to SUCCEEDED, with the Wait and retry intervals shortened by overrides", async () => {
    // Prepare
    const started = Date.now();
    // Act
    const executionArn = await start("ok-run", { tenant: "genomics", throttle: 2, checksUntilDone: 2 });
    await runner.waitFor(executionArn);
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    // Assess
    expect(described.status).toBe("SUCCEEDED");
    expect(described.executionArn).toBe(`arn:aws:states:${REGION}:${ACCOUNT}:execution:mini-workflow:ok-run`);
    expect(described.stopDate).toBeInstanceOf(Date);
    expect(described.stopDate!.getTime()).toBeGreaterThanOrEqual(described.startDate!.getTime());
    const output = JSON.parse(described.output!);
    expect(output.execution).toEqual({ name: "ok-run", id: executionArn });
    expect(output.prepared).toEqual({ thing: { thing: "thing-genomics", attempt: 3 }, other: { other: true } });
    expect(output.check).toEqual({ done: true, checks: 2 });
    expect(output.request.tenant).toBe("genomics");
    // Two 30 s waits and 2 s + 4 s of backoff in the definition: the overrides make it quick.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("calls each Task's handler as Lambda does: a JSON copy of the state and a Lambda-like context", async () => {
    // Prepare
    const executionArn = await start("context-run", { tenant: "ctx", throttle: 1 });
    // Act
    await runner.waitFor(executionArn);
    // Assess
    const createThing = calls.filter((c) => c.state === "CreateThing");
    expect(createThing).toHaveLength(2);
    expect(createThing[0]!.context.functionName).toBe("nf-eks-CreateThing");
    expect(createThing[0]!.context.invokedFunctionArn).toBe(`arn:aws:lambda:${REGION}:${ACCOUNT}:function:nf-eks-CreateThing`);
    expect(createThing[0]!.context.awsRequestId).not.toBe(createThing[1]!.context.awsRequestId);
    expect(createThing[0]!.context.remainingMs).toBeGreaterThan(50_000);
    expect(createThing[0]!.context.remainingMs).toBeLessThanOrEqual(60_000);
    expect(createThing[0]!.event).toEqual({
      request: { tenant: "ctx", throttle: 1 },
      execution: { name: "context-run", id: executionArn },
    });
    // The retried attempt got the same, unmutated state.
    expect(createThing[1]!.event.request.tenant).toBe("ctx");
  });

  it("records the history in GetExecutionHistory's shape, retries as LambdaFunctionFailed then a new LambdaFunctionScheduled", async () => {
    // Prepare
    const executionArn = await start("history-run", { tenant: "hist", throttle: 2, checksUntilDone: 2 });
    await runner.waitFor(executionArn);
    // Act
    const events = await historyOf(executionArn, 7);
    const reversed = (await sfn.send(new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 1000 }))).events!;
    // Assess
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    expect(reversed.map((e) => e.id)).toEqual(events.map((e) => e.id).reverse());
    expect(events.every((e) => e.timestamp instanceof Date)).toBe(true);
    expect(events[0]).toMatchObject({ type: "ExecutionStarted", previousEventId: 0 });
    expect(JSON.parse(events[0]!.executionStartedEventDetails!.input!)).toEqual({
      request: { tenant: "hist", throttle: 2, checksUntilDone: 2 },
    });
    expect(events.at(-1)!.type).toBe("ExecutionSucceeded");
    const types = events.map((e) => e.type);
    for (const type of [
      "PassStateEntered",
      "ParallelStateEntered",
      "ParallelStateStarted",
      "ParallelStateSucceeded",
      "ParallelStateExited",
      "WaitStateEntered",
      "WaitStateExited",
      "ChoiceStateEntered",
      "SucceedStateEntered",
    ]) {
      expect(types).toContain(type);
    }
    expect(types.filter((t) => t === "WaitStateEntered")).toHaveLength(2);

    // Each branch's first state points back at ParallelStateStarted.
    const parallelStarted = events.find((e) => e.type === "ParallelStateStarted")!;
    for (const name of ["CreateThing", "CreateOther"]) {
      const entered = events.find((e) => e.stateEnteredEventDetails?.name === name)!;
      expect(entered.type).toBe("TaskStateEntered");
      expect(entered.previousEventId).toBe(parallelStarted.id);
    }

    const createThing = eventsOfState(events, "CreateThing").map((e) => e.type);
    expect(createThing).toEqual([
      "TaskStateEntered",
      "LambdaFunctionScheduled",
      "LambdaFunctionStarted",
      "LambdaFunctionFailed",
      "LambdaFunctionScheduled",
      "LambdaFunctionStarted",
      "LambdaFunctionFailed",
      "LambdaFunctionScheduled",
      "LambdaFunctionStarted",
      "LambdaFunctionSucceeded",
      "TaskStateExited",
    ]);
    const failed = eventsOfState(events, "CreateThing").filter((e) => e.type === "LambdaFunctionFailed");
    expect(failed[0]!.lambdaFunctionFailedEventDetails!.error).toBe("Throttled");
    expect(JSON.parse(failed[0]!.lambdaFunctionFailedEventDetails!.cause!)).toMatchObject({
      errorType: "Throttled",
      errorMessage: "iam:CreateRole failed: Throttling: Rate exceeded (attempt 1)",
    });
    const scheduled = events.find((e) => e.type === "LambdaFunctionScheduled" && e.previousEventId === failed[0]!.id)!;
    expect(scheduled.lambdaFunctionScheduledEventDetails!.resource).toBe(`arn:aws:lambda:${REGION}:${ACCOUNT}:function:nf-eks-CreateThing`);
    const succeeded = eventsOfState(events, "CreateThing").find((e) => e.type === "LambdaFunctionSucceeded")!;
    expect(JSON.parse(succeeded.lambdaFunctionSucceededEventDetails!.output!)).toEqual({ thing: "thing-hist", attempt: 3 });
  });

  it("refuses a reused name with a different input; the same input returns the running execution, not a closed one", async () => {
    // Prepare
    const request: StubRequest = { tenant: "idem", hold: true };
    const first = await sfn.send(new StartExecutionCommand({ stateMachineArn, name: "idem-run", input: JSON.stringify({ request }) }));
    // Act
    const again = await sfn.send(new StartExecutionCommand({ stateMachineArn, name: "idem-run", input: JSON.stringify({ request }) }));
    const different = sfn.send(
      new StartExecutionCommand({ stateMachineArn, name: "idem-run", input: JSON.stringify({ request: { ...request, tenant: "other" } }) }),
    );
    // Assess
    expect(again.executionArn).toBe(first.executionArn);
    expect(again.startDate).toEqual(first.startDate);
    await expect(different).rejects.toBeInstanceOf(ExecutionAlreadyExists);
    await expect(different).rejects.toMatchObject({ name: "ExecutionAlreadyExists", $metadata: { httpStatusCode: 400 } });
    releaseHeld();
    await runner.waitFor(first.executionArn!);
    // Standard workflows: a closed execution's name cannot be reused, even with the same input.
    await expect(
      sfn.send(new StartExecutionCommand({ stateMachineArn, name: "idem-run", input: JSON.stringify({ request }) })),
    ).rejects.toBeInstanceOf(ExecutionAlreadyExists);
    expect((await runner.listExecutions({ stateMachineArn })).executions!.filter((e) => e.name === "idem-run")).toHaveLength(1);
  });

  it("fails with the Fail state's error and cause after compensation, the failed Task not retried", async () => {
    // Prepare
    const executionArn = await start("failing-run", { tenant: "bad", fail: "CreateOther" });
    // Act
    await runner.waitFor(executionArn);
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    const events = await historyOf(executionArn);
    // Assess
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("OwnershipConflict");
    expect(described.cause).toBe("Undone after OwnershipConflict: Namespace tower-nf exists without our labels");
    expect(described.output).toBeUndefined();
    const createOther = eventsOfState(events, "CreateOther");
    expect(createOther.filter((e) => e.type === "LambdaFunctionScheduled")).toHaveLength(1);
    expect(createOther.find((e) => e.type === "LambdaFunctionFailed")!.lambdaFunctionFailedEventDetails!.error).toBe("OwnershipConflict");
    const types = events.map((e) => e.type);
    expect(types).toContain("ParallelStateFailed");
    expect(types.indexOf("ParallelStateFailed")).toBeLessThan(types.indexOf("FailStateEntered"));
    expect(events.find((e) => e.stateEnteredEventDetails?.name === "Undo")).toBeDefined();
    expect(events.at(-1)).toMatchObject({
      type: "ExecutionFailed",
      executionFailedEventDetails: {
        error: "OwnershipConflict",
        cause: "Undone after OwnershipConflict: Namespace tower-nf exists without our labels",
      },
    });
  });

  it("answers unknown executions, bad ARNs and unknown state machines with Step Functions' exceptions", async () => {
    // Act
    const unknown = sfn.send(new DescribeExecutionCommand({ executionArn: runner.executionArn("mini-workflow", "never-started") }));
    const badArn = sfn.send(new DescribeExecutionCommand({ executionArn: "not-an-arn" }));
    const noMachine = sfn.send(new StartExecutionCommand({ stateMachineArn: runner.stateMachineArn("nope"), input: "{}" }));
    const badName = sfn.send(new StartExecutionCommand({ stateMachineArn, name: "has space", input: "{}" }));
    // Assess
    await expect(unknown).rejects.toBeInstanceOf(ExecutionDoesNotExist);
    await expect(badArn).rejects.toBeInstanceOf(InvalidArn);
    await expect(noMachine).rejects.toBeInstanceOf(StateMachineDoesNotExist);
    await expect(badName).rejects.toMatchObject({ name: "InvalidName" });
  });

  it("stops a running execution: ABORTED with StopExecution's error and cause, the running Task aborted", async () => {
    // Prepare
    const executionArn = await start("stopped-run", { tenant: "stop", hold: true });
    await until("Check to run", () => calls.some((c) => c.state === "Check" && c.event.execution.name === "stopped-run"), 5_000);
    // Act
    await sfn.send(new StopExecutionCommand({ executionArn, error: "Operator", cause: "stopped by hand" }));
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    const events = await historyOf(executionArn);
    // Assess
    expect(described).toMatchObject({ status: "ABORTED", error: "Operator", cause: "stopped by hand" });
    expect(events.at(-1)).toMatchObject({
      type: "ExecutionAborted",
      executionAbortedEventDetails: { error: "Operator", cause: "stopped by hand" },
    });
    expect(
      eventsOfState(events, "Check")
        .map((e) => e.type)
        .at(-1),
    ).toBe("TaskStateAborted");
  });

  it("lists executions newest first, filtered by status", async () => {
    // Prepare
    const a = await start("list-a", { tenant: "la" });
    await runner.waitFor(a);
    const b = await start("list-b", { tenant: "lb", fail: "Finish" });
    await runner.waitFor(b);
    // Act
    const all = await sfn.send(new ListExecutionsCommand({ stateMachineArn }));
    const failed = await sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: "FAILED" }));
    // Assess
    const names = all.executions!.map((e) => e.name);
    expect(names.indexOf("list-b")).toBeLessThan(names.indexOf("list-a"));
    expect(failed.executions!.map((e) => e.name)).toContain("list-b");
    expect(failed.executions!.map((e) => e.name)).not.toContain("list-a");
    expect(failed.executions!.every((e) => e.status === "FAILED" && e.stopDate instanceof Date)).toBe(true);
  });

  it("tells listeners every event as it is appended, with the execution's status", async () => {
    // Prepare
    const seen: ExecutionEventNotice[] = [];
    const unsubscribe = runner.onEvent((notice) => seen.push(notice));
    // Act
    const executionArn = await start("watched-run", { tenant: "watch" });
    await runner.waitFor(executionArn);
    unsubscribe();
    // Assess
    const mine = seen.filter((n) => n.executionArn === executionArn);
    expect(mine.map((n) => n.event)).toEqual(await historyOf(executionArn));
    expect(mine.at(-1)!.status).toBe("SUCCEEDED");
    expect(mine[0]!.status).toBe("RUNNING");
  });
});

describe("GET /executions/{id} against the local Step Functions", () => {
  it("summarises a succeeded run: each step's result and retries", async () => {
    // Prepare
    const executionArn = await start("status-ok", { tenant: "sok", throttle: 2 });
    await runner.waitFor(executionArn);
    // The deployed way: the SDK finds the endpoint in AWS_ENDPOINT_URL_SFN.
    process.env.AWS_ENDPOINT_URL_SFN = service.url;
    process.env.STATE_MACHINE_ARN = stateMachineArn;
    resetClients();
    // Act
    const response = await statusHandler(apiEvent("status-ok"));
    // Assess
    expect(response.statusCode).toBe(200);
    const body = JSON.parse(response.body!);
    expect(body).toMatchObject({ executionArn, name: "status-ok", status: "SUCCEEDED", retries: 2 });
    expect(body.currentStep).toBeUndefined();
    expect(body.failedStep).toBeUndefined();
    expect(body.steps.map((s: { name: string }) => s.name)).toEqual(
      expect.arrayContaining(["CreateThing", "CreateOther", "Check", "Finish"]),
    );
    expect(body.steps.find((s: { name: string }) => s.name === "CreateThing")).toMatchObject({
      status: "succeeded",
      retries: 2,
    });
    // The summary holds each step's result; the route shows a result only through the step's allowlist of fields,
    // and this fixture's steps are none of the product's.
    expect(summariseHistory(await historyOf(executionArn)).steps.find((s) => s.name === "CreateThing")).toMatchObject({
      result: { thing: "thing-sok", attempt: 3 },
    });
    expect(body.steps.find((s: { name: string }) => s.name === "CreateThing")).not.toHaveProperty("result");
    expect(body.steps.every((s: { status: string }) => s.status === "succeeded")).toBe(true);
  });

  it("summarises a failed run: the failed step, its error, and the execution's error and cause", async () => {
    // Prepare
    const executionArn = await start("status-bad", { tenant: "sbad", fail: "CreateOther" });
    await runner.waitFor(executionArn);
    const status = createStatusHandler({ sfn, stateMachineArn });
    // Act
    const response = await status(apiEvent(encodeURIComponent(executionArn)));
    // Assess
    expect(response.statusCode).toBe(200);
    const body = JSON.parse(response.body!);
    expect(body).toMatchObject({
      status: "FAILED",
      failedStep: "CreateOther",
      error: "OwnershipConflict",
      cause: "Undone after OwnershipConflict: Namespace tower-nf exists without our labels",
    });
    expect(body.steps.find((s: { name: string }) => s.name === "CreateOther")).toMatchObject({
      status: "failed",
      error: { error: "OwnershipConflict", cause: "Namespace tower-nf exists without our labels" },
    });
    expect(body.steps.find((s: { name: string }) => s.name === "Undo")).toMatchObject({ status: "succeeded" });
  });

  it("shows the current step of a running execution, and 404 for an unknown one", async () => {
    // Prepare
    await start("status-running", { tenant: "srun", hold: true });
    await until("Check to run", () => calls.some((c) => c.state === "Check" && c.event.execution.name === "status-running"), 5_000);
    const status = createStatusHandler({ sfn, stateMachineArn });
    // Act
    const running = await status(apiEvent("status-running"));
    const unknown = await status(apiEvent("never-ran"));
    // Assess
    expect(JSON.parse(running.body!)).toMatchObject({ status: "RUNNING", currentStep: "Check" });
    expect(JSON.parse(running.body!).steps.find((s: { name: string }) => s.name === "Check")).toMatchObject({ status: "running" });
    expect(unknown.statusCode).toBe(404);
    expect(JSON.parse(unknown.body!)).toMatchObject({ error: "ExecutionNotFound" });
  });
});
