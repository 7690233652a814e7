import "aws-sdk-client-mock-vitest/extend";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { APIGatewayProxyEventV2, EventBridgeEvent } from "aws-lambda";
import { InvalidExecutionInput, SFNClient, SFNServiceException, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { createComputeEnvironmentRequestedHandler, handler } from "../../functions/events/compute-environment-requested.js";
import { COMPUTE_ENVIRONMENT_REQUESTED } from "../../functions/lib/domain/deploy-config.js";
import { handler as httpHandler } from "../../functions/api/provision.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { InvalidRequest, NotAllowed, type ProvisionerError, RunInProgress, Throttled } from "../../functions/lib/domain/errors.js";
import { logger } from "../../functions/lib/workflow/middleware.js";
import { DEPLOYMENT_ENV, REQUEST, rejection, useEnv } from "../support/fixtures.js";
import { fakeStepFunctions, STATE_MACHINE_ARN } from "../support/sfn-fake.js";

let fake: ReturnType<typeof fakeStepFunctions>;

const EVENT_ID = "6a7e8feb-b491-4cf7-a9f1-bf3703467718";

function requested(detail: unknown, overrides: Partial<EventBridgeEvent<string, unknown>> = {}): EventBridgeEvent<string, unknown> {
  return {
    version: "0",
    id: EVENT_ID,
    "detail-type": COMPUTE_ENVIRONMENT_REQUESTED,
    source: "acme.onboarding",
    account: "111122223333",
    time: "2025-01-31T12:00:00Z",
    region: "eu-west-1",
    resources: [],
    detail,
    ...overrides,
  };
}

useEnv({ ...DEPLOYMENT_ENV, ALLOWED_ACCOUNT_IDS: "", STATE_MACHINE_ARN });

beforeEach(() => {
  resetClients();
  fake = fakeStepFunctions();
});

afterEach(() => {
  fake.sfn.restore();
});

describe("ComputeEnvironmentRequested", () => {
  it("starts the workflow with the validated request, keyed by the event id", async () => {
    // Act
    const outcome = await handler(requested(REQUEST));
    // Assess
    expect(outcome).toEqual({
      outcome: "started",
      executionName: `genomics_event-${EVENT_ID}`,
      executionArn: `arn:aws:states:eu-west-1:111122223333:execution:nf-eks-provision:genomics_event-${EVENT_ID}`,
    });
    const input = JSON.parse(fake.startInputs()[0].input!);
    expect(input.request).toMatchObject({ ...REQUEST, namespace: "tower-nf", idempotencyKey: `event-${EVENT_ID}` });
  });

  it("does not start a second run when the same event is delivered again", async () => {
    // Prepare
    const first = await handler(requested(REQUEST));
    // Act
    const again = await handler(requested(REQUEST));
    // Assess
    expect(again).toMatchObject({ outcome: "existing", executionArn: first.executionArn });
    expect(fake.executions.size).toBe(1);
  });

  it("uses the detail's own idempotency key, and refuses it for a different request", async () => {
    // Prepare
    const first = await handler(requested({ ...REQUEST, idempotencyKey: "onboard-1" }));
    // Act
    const other = await rejection(
      handler(requested({ ...REQUEST, namespace: "other-nf", idempotencyKey: "onboard-1" }, { id: "another-event" })),
    );
    // Assess
    expect(first.executionName).toBe("genomics_onboard-1");
    expect(other).toBeInstanceOf(InvalidRequest);
    expect((other as InvalidRequest).problems.map((p) => p.path)).toEqual(["idempotencyKey"]);
    expect(fake.executions.size).toBe(1);
  });

  it("starts the same execution as POST /provision for the same request and key (one start path)", async () => {
    // Prepare
    const viaEvent = await handler(requested({ ...REQUEST, idempotencyKey: "shared-1" }));
    const httpEvent = {
      headers: { "idempotency-key": "shared-1" },
      body: JSON.stringify(REQUEST),
      isBase64Encoded: false,
      requestContext: { requestId: "r" },
    } as unknown as APIGatewayProxyEventV2;
    // Act
    const viaHttp = await httpHandler(httpEvent);
    // Assess
    expect(typeof viaHttp === "object" && viaHttp.statusCode).toBe(202);
    expect(JSON.parse(String(typeof viaHttp === "object" && viaHttp.body)).executionArn).toBe(viaEvent.executionArn);
    expect(fake.executions.size).toBe(1);
  });

  it("throws InvalidRequest listing every problem, and starts nothing", async () => {
    // Prepare
    const detail = {
      tenant: "Bad_Tenant",
      cluster: { name: "research", region: "moon-1" },
      namespace: "kube-system",
      storage: { type: "nfs" },
    };
    // Act
    const error = await rejection(handler(requested(detail)));
    // Assess
    expect(error).toBeInstanceOf(InvalidRequest);
    expect(error.name).toBe("InvalidRequest");
    expect((error as InvalidRequest).problems.map((p) => p.path)).toEqual(
      expect.arrayContaining(["tenant", "cluster.region", "namespace", "storage.type"]),
    );
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it.each([
    ["a system: label key", { labels: { "system:masters": "x" } }, "labels.system:masters"],
    ["a protected namespace", { namespace: "kube-public" }, "namespace"],
    [
      "a launcher ARN that is not IAM",
      { launcher: { mode: "existing", principalArn: "arn:aws:sts::111122223333:assumed-role/x/y" } },
      "launcher.principalArn",
    ],
  ])("refuses %s by path", async (_what, change, path) => {
    // Act
    const error = await rejection(handler(requested({ ...REQUEST, ...change })));
    // Assess
    expect(error).toBeInstanceOf(InvalidRequest);
    expect((error as InvalidRequest).problems.map((p) => p.path)).toContain(path);
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("throws NotAllowed for a cluster off the allowlist", async () => {
    // Act
    const error = await rejection(handler(requested({ ...REQUEST, cluster: { name: "production", region: "eu-west-1" } })));
    // Assess
    expect(error).toBeInstanceOf(NotAllowed);
    expect(error.message).toContain("production");
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("refuses an event of another detail-type", async () => {
    // Act
    const error = await rejection(handler(requested(REQUEST, { "detail-type": "ComputeEnvironmentReady" })));
    // Assess
    expect(error).toBeInstanceOf(InvalidRequest);
    expect((error as InvalidRequest).problems[0].path).toBe("detail-type");
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("lets a transient Step Functions error escape as Throttled, so the event is retried", async () => {
    // Prepare
    fake.sfn.on(StartExecutionCommand).rejects(
      new SFNServiceException({
        name: "ThrottlingException",
        $fault: "client",
        message: "Rate exceeded",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const error = await rejection(handler(requested(REQUEST)));
    // Assess
    expect(error).toBeInstanceOf(Throttled);
  });

  it("throws the transient RunInProgress while another run of the tenant is under way, so Lambda retries the event later", async () => {
    // Prepare
    const running = fake.seed("genomics_onboard-1");
    // Act
    const error = await rejection(handler(requested(REQUEST)));
    // Assess
    expect(error).toBeInstanceOf(RunInProgress);
    expect(error.name).toBe("RunInProgress");
    expect((error as ProvisionerError).transient).toBe(true);
    expect((error as RunInProgress).executionArn).toBe(running.executionArn);
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("starts the event's run on a retry once the other run has ended, and a redelivery of that run's own event is not refused", async () => {
    // Prepare
    fake.seed("genomics_onboard-1");
    await rejection(handler(requested(REQUEST)));
    fake.setStatus("genomics_onboard-1", "SUCCEEDED");
    // Act
    const retried = await handler(requested(REQUEST));
    fake.setStatus(retried.executionName, "RUNNING");
    const redelivered = await handler(requested(REQUEST));
    // Assess
    expect(retried).toMatchObject({ outcome: "started", executionName: `genomics_event-${EVENT_ID}` });
    expect(redelivered).toMatchObject({ outcome: "existing", executionArn: retried.executionArn });
  });

  it("refuses a request too large for the workflow as InvalidRequest, asking Step Functions nothing", async () => {
    // Prepare
    const labels = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`team-${i}.example.com/owner-${i}`, "v".repeat(63)]));
    // Act
    const error = await rejection(handler(requested({ ...REQUEST, labels })));
    // Assess
    expect(error).toBeInstanceOf(InvalidRequest);
    expect((error as InvalidRequest).problems.map((p) => p.path)).toEqual([""]);
    expect(fake.sfn.calls()).toHaveLength(0);
  });

  it("turns Step Functions refusing the input as too large into InvalidRequest, not an error worth retrying", async () => {
    // Prepare
    fake.sfn
      .on(StartExecutionCommand)
      .rejects(new InvalidExecutionInput({ message: "input exceeds 262144 bytes", $metadata: { httpStatusCode: 400 } }));
    // Act
    const error = await rejection(handler(requested(REQUEST)));
    // Assess
    expect(error).toBeInstanceOf(InvalidRequest);
  });
});

describe("ComputeEnvironmentRequested: the middleware around it", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("uses an injected client, state machine and configuration", async () => {
    // Prepare
    const injected = createComputeEnvironmentRequestedHandler({
      sfn: new SFNClient({ region: "us-east-1" }),
      stateMachineArn: "arn:aws:states:us-east-1:999988887777:stateMachine:other",
      config: { allowedClusters: [{ name: "lab", region: "us-east-1" }], allowedAccountIds: [], iamPrefix: "x", eventBusName: "default" },
    });
    // Act
    const outcome = await injected(requested({ ...REQUEST, cluster: { name: "lab", region: "us-east-1" }, idempotencyKey: "k1" }));
    // Assess
    expect(outcome).toMatchObject({
      outcome: "started",
      executionArn: "arn:aws:states:us-east-1:999988887777:execution:other:genomics_k1",
    });
  });

  it("puts the event id and source on the invocation's log lines", async () => {
    // Prepare
    const appendKeys = vi.spyOn(logger, "appendKeys");
    // Act
    await handler(requested(REQUEST));
    // Assess
    expect(appendKeys).toHaveBeenCalledWith({ eventId: EVENT_ID, source: "acme.onboarding" });
  });

  it("logs a refusal once, at error level, and a deferral once, as a warning", async () => {
    // Prepare
    const logError = vi.spyOn(logger, "error");
    const logWarn = vi.spyOn(logger, "warn");
    fake.seed("genomics-20250131T110000Z-0a1b2c3d");
    // Act
    await rejection(handler(requested({ ...REQUEST, tenant: "Not A Tenant" })));
    await rejection(handler(requested(REQUEST)));
    // Assess
    expect(logError.mock.calls.map((c) => c[0])).toEqual(["ComputeEnvironmentRequested: event refused with InvalidRequest"]);
    expect(logWarn.mock.calls.map((c) => c[0])).toEqual([
      "ComputeEnvironmentRequested: event deferred with RunInProgress; Lambda retries it",
    ]);
  });
});
