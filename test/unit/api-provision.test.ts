import "aws-sdk-client-mock-vitest/extend";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { InvalidExecutionInput, ListExecutionsCommand, SFNClient, SFNServiceException, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { createProvisionHandler, handler } from "../../functions/api/provision.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { logger } from "../../functions/lib/workflow/middleware.js";
import { loadDeploymentConfig } from "../../functions/lib/domain/deploy-config.js";
import { DEPLOYMENT_ENV, REQUEST, useEnv } from "../support/fixtures.js";
import { fakeStepFunctions, STATE_MACHINE_ARN } from "../support/sfn-fake.js";

let fake: ReturnType<typeof fakeStepFunctions>;

function httpEvent(body: unknown, headers: Record<string, string> = {}, raw = false): APIGatewayProxyEventV2 {
  return {
    version: "2.0",
    routeKey: "POST /provision",
    rawPath: "/provision",
    rawQueryString: "",
    headers: { "content-type": "application/json", ...headers },
    requestContext: { requestId: "req-1", http: { method: "POST", path: "/provision" } },
    body: raw ? (body as string) : JSON.stringify(body),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
}

async function post(body: unknown, headers: Record<string, string> = {}, raw = false) {
  const response = (await handler(httpEvent(body, headers, raw))) as APIGatewayProxyStructuredResultV2;
  return {
    status: response.statusCode,
    headers: response.headers ?? {},
    body: JSON.parse(String(response.body)) as Record<string, unknown>,
  };
}

function problemPaths(body: Record<string, unknown>): string[] {
  return (body.problems as Array<{ path: string }>).map((p) => p.path);
}

useEnv({ ...DEPLOYMENT_ENV, STATE_MACHINE_ARN });

beforeEach(() => {
  resetClients();
  fake = fakeStepFunctions();
});

afterEach(() => {
  fake.sfn.restore();
});

describe("POST /provision", () => {
  it("starts the workflow and answers 202 with the execution ARN and a status URL", async () => {
    // Act
    const response = await post(REQUEST, { "Idempotency-Key": "onboard-42" });
    // Assess
    expect(response.status).toBe(202);
    expect(response.body).toEqual({
      executionArn: "arn:aws:states:eu-west-1:111122223333:execution:nf-eks-provision:genomics_onboard-42",
      executionName: "genomics_onboard-42",
      statusUrl: "/executions/genomics_onboard-42",
    });
    expect(response.headers.location).toBe("/executions/genomics_onboard-42");
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
    const started = fake.startInputs()[0];
    expect(started).toMatchObject({ stateMachineArn: STATE_MACHINE_ARN, name: "genomics_onboard-42" });
    // The workflow gets the validated request, defaults filled in.
    expect(JSON.parse(started.input!)).toEqual({
      request: expect.objectContaining({
        ...REQUEST,
        namespace: "tower-nf",
        idempotencyKey: "onboard-42",
        storage: expect.objectContaining({ claimName: "tower-scratch" }),
      }),
    });
  });

  it("names the execution <tenant>-<timestamp>-<random> when there is no idempotency key", async () => {
    // Act
    const first = await post(REQUEST);
    const second = await post(REQUEST);
    // Assess
    expect(first.status).toBe(202);
    expect(first.body.executionName).toMatch(/^genomics-\d{8}T\d{6}Z-[0-9a-f]{8}$/);
    expect(second.body.executionName).not.toBe(first.body.executionName);
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 2);
  });

  it("answers a repeat with the same key and body with the same execution, starting nothing new", async () => {
    // Prepare
    const first = await post(REQUEST, { "idempotency-key": "onboard-42" });
    // Act
    const repeat = await post(REQUEST, { "idempotency-key": "onboard-42" });
    // Assess
    expect(repeat.status).toBe(202);
    expect(repeat.body.executionArn).toBe(first.body.executionArn);
    expect(repeat.body.statusUrl).toBe(first.body.statusUrl);
    expect(fake.executions.size).toBe(1);
  });

  it("treats the body's idempotencyKey like the header", async () => {
    // Prepare
    const first = await post({ ...REQUEST, idempotencyKey: "onboard-7" });
    // Act
    const repeat = await post(REQUEST, { "Idempotency-Key": "onboard-7" });
    // Assess
    expect(first.body.executionName).toBe("genomics_onboard-7");
    expect(repeat.body.executionArn).toBe(first.body.executionArn);
    expect(fake.executions.size).toBe(1);
  });

  it("refuses a different body under a used key with 422 IdempotencyKeyReused", async () => {
    // Prepare
    await post(REQUEST, { "Idempotency-Key": "onboard-42" });
    // Act
    const response = await post({ ...REQUEST, namespace: "genomics-nf" }, { "Idempotency-Key": "onboard-42" });
    // Assess
    expect(response.status).toBe(422);
    expect(response.body.error).toBe("IdempotencyKeyReused");
    expect(response.body).not.toHaveProperty("executionArn");
    expect(fake.executions.size).toBe(1);
  });

  it("lets the header override the body's key", async () => {
    // Act
    const response = await post({ ...REQUEST, idempotencyKey: "from-body" }, { "Idempotency-Key": "from-header" });
    // Assess
    expect(response.body.executionName).toBe("genomics_from-header");
  });

  it("validates the Idempotency-Key header like the body field", async () => {
    // Act
    const response = await post(REQUEST, { "Idempotency-Key": "no spaces/or slashes" });
    // Assess
    expect(response.status).toBe(400);
    expect(problemPaths(response.body)).toEqual(["idempotencyKey"]);
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("answers 400 listing every problem by path, and starts nothing", async () => {
    // Prepare
    const bad = {
      tenant: "Bad_Tenant",
      cluster: { name: "research", region: "moon-1" },
      namespace: "kube-system",
      storage: { type: "pvc", size: "lots" },
      headJob: { pipeline: "-oops" },
    };
    // Act
    const response = await post(bad);
    // Assess
    expect(response.status).toBe(400);
    expect(response.body.error).toBe("InvalidRequest");
    expect(problemPaths(response.body)).toEqual(
      expect.arrayContaining(["tenant", "cluster.region", "namespace", "storage.size", "headJob.pipeline"]),
    );
    for (const problem of response.body.problems as Array<{ message: unknown }>) expect(typeof problem.message).toBe("string");
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it.each([
    ["a system: label key", { labels: { "system:masters": "x" } }, "labels.system:masters"],
    ["a system: service account", { serviceAccount: "system:node" }, "serviceAccount"],
    ["a protected namespace", { namespace: "kube-system" }, "namespace"],
    ["the default namespace", { namespace: "default" }, "namespace"],
    ["a launcher ARN that is not IAM", { launcher: { mode: "existing", principalArn: "arn:aws:s3:::my-bucket" } }, "launcher.principalArn"],
    ["a launcher that is not an ARN", { launcher: { mode: "existing", principalArn: "launcher-role" } }, "launcher.principalArn"],
    ["an unknown field", { surprise: true }, ""],
  ])("refuses %s with a problem at its path", async (_what, change, path) => {
    // Act
    const response = await post({ ...REQUEST, ...change });
    // Assess
    expect(response.status).toBe(400);
    expect(problemPaths(response.body)).toContain(path);
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("answers 400 InvalidJson for a body that is not JSON, and for no body", async () => {
    // Act
    const broken = await post('{"tenant": "genomics",', {}, true);
    const empty = await post("", {}, true);
    // Assess
    expect(broken.status).toBe(400);
    expect(broken.body.error).toBe("InvalidJson");
    expect(broken.body.message).toMatch(/not valid JSON/);
    expect(empty.status).toBe(400);
    expect(empty.body.error).toBe("InvalidJson");
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("reads a base64-encoded body", async () => {
    // Prepare
    const event = { ...httpEvent(null), body: Buffer.from(JSON.stringify(REQUEST)).toString("base64"), isBase64Encoded: true };
    // Act
    const response = (await handler(event)) as APIGatewayProxyStructuredResultV2;
    // Assess
    expect(response.statusCode).toBe(202);
  });

  it("answers 403 NotAllowed for a cluster off the deployment's allowlist", async () => {
    // Act
    const response = await post({ ...REQUEST, cluster: { name: "production", region: "eu-west-1" } });
    // Assess
    expect(response.status).toBe(403);
    expect(response.body.error).toBe("NotAllowed");
    expect(problemPaths(response.body)).toEqual(["cluster"]);
    expect(JSON.stringify(response.body)).toContain("production");
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("answers 400 when the namespace quota cannot hold the head pod: the request's own, or the deployment's NAMESPACE_QUOTA", async () => {
    // Prepare
    const headJob = { pipeline: "nf-core/rnaseq", cpu: "2", memory: "4Gi" };
    const deploymentQuota = createProvisionHandler({ config: { ...loadDeploymentConfig(), namespaceQuota: { memory: "2Gi" } } });
    // Act
    const own = await post({ ...REQUEST, headJob, quota: { cpu: "1" } });
    const deployments = (await deploymentQuota(httpEvent({ ...REQUEST, headJob }))) as APIGatewayProxyStructuredResultV2;
    const raised = (await deploymentQuota(
      httpEvent({ ...REQUEST, headJob, quota: { memory: "8Gi" } }),
    )) as APIGatewayProxyStructuredResultV2;
    // Assess
    expect(own.status).toBe(400);
    expect(own.body.problems).toEqual([{ path: "quota.cpu", message: "the quota's cpu (1) cannot hold the head pod's 2" }]);
    expect(deployments.statusCode).toBe(400);
    expect(JSON.parse(String(deployments.body))).toEqual({
      error: "InvalidRequest",
      problems: [{ path: "headJob.memory", message: "the head pod's 4Gi does not fit this deployment's namespace quota (memory 2Gi)" }],
    });
    expect(raised.statusCode).toBe(202);
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
  });

  it("answers 503 with Retry-After when Step Functions throttles", async () => {
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
    const response = await post(REQUEST);
    // Assess
    expect(response.status).toBe(503);
    expect(response.body.error).toBe("Throttled");
    expect(response.headers["retry-after"]).toBeDefined();
  });

  it("answers 500 without internals when something unexpected fails", async () => {
    // Prepare
    fake.sfn.on(StartExecutionCommand).rejects(
      new SFNServiceException({
        name: "StateMachineDoesNotExist",
        $fault: "client",
        message: `State Machine Does Not Exist: '${STATE_MACHINE_ARN}'`,
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const response = await post(REQUEST);
    // Assess
    expect(response.status).toBe(500);
    expect(response.body).toEqual({ error: "InternalError", message: "could not start the provisioning workflow", requestId: "req-1" });
  });

  it("answers 500 when the deployment has no state machine configured", async () => {
    // Prepare
    delete process.env.STATE_MACHINE_ARN;
    // Act
    const response = await post(REQUEST);
    // Assess
    expect(response.status).toBe(500);
    expect(JSON.stringify(response.body)).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it("uses an injected client, state machine and configuration", async () => {
    // Prepare
    const injected = createProvisionHandler({
      sfn: new SFNClient({ region: "us-east-1" }),
      stateMachineArn: "arn:aws:states:us-east-1:999988887777:stateMachine:other",
      config: { allowedClusters: [{ name: "lab", region: "us-east-1" }], allowedAccountIds: [], iamPrefix: "x", eventBusName: "default" },
    });
    // Act
    const response = (await injected(
      httpEvent({ ...REQUEST, cluster: { name: "lab", region: "us-east-1" }, idempotencyKey: "k1" }),
    )) as APIGatewayProxyStructuredResultV2;
    // Assess
    expect(response.statusCode).toBe(202);
    expect(JSON.parse(String(response.body)).executionArn).toBe("arn:aws:states:us-east-1:999988887777:execution:other:genomics_k1");
  });
});

describe("POST /provision: one run per tenant at a time", () => {
  const RUNNING_RUN = "genomics-20250131T110000Z-0a1b2c3d";
  const executionArnOf = (name: string) => `${STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:")}:${name}`;

  it("answers 409 RunInProgress, naming the run under way, while another run of the tenant is RUNNING, and starts nothing", async () => {
    // Prepare
    fake.seed(RUNNING_RUN);
    // Act
    const response = await post(REQUEST, { "Idempotency-Key": "onboard-42" });
    // Assess
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({
      error: "RunInProgress",
      executionArn: executionArnOf(RUNNING_RUN),
      statusUrl: `/executions/${RUNNING_RUN}`,
    });
    expect(fake.sfn).toHaveReceivedCommandWith(ListExecutionsCommand, { stateMachineArn: STATE_MACHINE_ARN, statusFilter: "RUNNING" });
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("starts beside runs of other tenants (one whose name starts like this tenant's too), finished runs, and foreign executions", async () => {
    // Prepare
    fake.seed("genomics-lab_onboard-1");
    fake.seed("genomics-lab-20250131T110000Z-0a1b2c3d");
    fake.seed("6a7e8feb-b491-4cf7-a9f1-bf3703467718");
    fake.seed("genomics_earlier", "SUCCEEDED");
    fake.seed("genomics-20250130T110000Z-0a1b2c3d", "FAILED");
    // Act
    const response = await post(REQUEST);
    // Assess
    expect(response.status).toBe(202);
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
  });

  it("answers a repeat of the run under way (same key, same body) with that run, not 409", async () => {
    // Prepare: executions stay RUNNING
    fake.sfn.restore();
    fake = fakeStepFunctions({ startAs: "RUNNING" });
    const first = await post(REQUEST, { "Idempotency-Key": "onboard-42" });
    // Act
    const repeat = await post(REQUEST, { "Idempotency-Key": "onboard-42" });
    const other = await post(REQUEST, { "Idempotency-Key": "onboard-43" });
    fake.setStatus("genomics_onboard-42", "SUCCEEDED");
    const afterwards = await post(REQUEST, { "Idempotency-Key": "onboard-43" });
    // Assess
    expect(first.status).toBe(202);
    expect(repeat).toMatchObject({ status: 202, body: first.body });
    expect(other).toMatchObject({ status: 409, body: { error: "RunInProgress", executionArn: first.body.executionArn } });
    expect(afterwards).toMatchObject({ status: 202, body: { executionName: "genomics_onboard-43" } });
    expect([...fake.executions.keys()]).toEqual(["genomics_onboard-42", "genomics_onboard-43"]);
  });

  it("still answers a repeat of a finished keyed run with that run while another run of the tenant is under way", async () => {
    // Prepare
    const first = await post(REQUEST, { "Idempotency-Key": "onboard-42" });
    fake.seed(RUNNING_RUN);
    // Act
    const repeat = await post(REQUEST, { "Idempotency-Key": "onboard-42" });
    const reused = await post({ ...REQUEST, namespace: "genomics-nf" }, { "Idempotency-Key": "onboard-42" });
    // Assess
    expect(repeat).toMatchObject({ status: 202, body: first.body });
    expect(reused.status).toBe(422);
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
  });

  it("reads every page of RUNNING executions", async () => {
    // Prepare: two per page; the tenant's run, started first, is listed last
    fake.sfn.restore();
    fake = fakeStepFunctions({ listPageSize: 2 });
    fake.seed(RUNNING_RUN);
    for (const tenant of ["a", "b", "c", "d", "e"]) fake.seed(`${tenant}_k`);
    // Act
    const response = await post(REQUEST);
    // Assess
    expect(response.status).toBe(409);
    expect(fake.sfn).toHaveReceivedCommandTimes(ListExecutionsCommand, 3);
    expect(fake.sfn).toHaveReceivedNthCommandWith(ListExecutionsCommand, 3, { statusFilter: "RUNNING", nextToken: "4" });
  });

  it("answers 503 with Retry-After when listing the runs is throttled", async () => {
    // Prepare
    fake.sfn.on(ListExecutionsCommand).rejects(
      new SFNServiceException({
        name: "ThrottlingException",
        $fault: "client",
        message: "Rate exceeded",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const response = await post(REQUEST);
    // Assess
    expect(response.status).toBe(503);
    expect(response.body.error).toBe("Throttled");
    expect(fake.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });
});

describe("POST /provision: request size", () => {
  it("answers 400 for a ~160 KB request, with the size as a problem, and asks Step Functions nothing", async () => {
    // Prepare: every label valid on its own
    const labels = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`team-${i}.example.com/owner-${i}`, "v".repeat(63)]));
    // Act
    const response = await post({ ...REQUEST, labels, headJob: { pipeline: "nf-core/rnaseq", params: { blob: "x".repeat(20_000) } } });
    // Assess
    expect(response.status).toBe(400);
    expect(response.body.error).toBe("InvalidRequest");
    expect(problemPaths(response.body).sort()).toEqual(["", "headJob.params"]);
    expect(fake.sfn.calls()).toHaveLength(0);
  });

  it.each([
    [
      "InvalidExecutionInput",
      new InvalidExecutionInput({
        message: "Invalid State Machine Execution Input: input exceeds 262144 bytes",
        $metadata: { httpStatusCode: 400 },
      }),
    ],
    [
      "ValidationException on the input",
      new SFNServiceException({
        name: "ValidationException",
        $fault: "client",
        message:
          "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have length less than or equal to 262144",
        $metadata: { httpStatusCode: 400 },
      }),
    ],
    [
      "ValidationException: exceeds",
      new SFNServiceException({
        name: "ValidationException",
        $fault: "client",
        message: "The input exceeds the maximum size",
        $metadata: { httpStatusCode: 400 },
      }),
    ],
  ])("answers 400 InvalidRequest, not 500, when Step Functions refuses the input as too large (%s)", async (_what, refusal) => {
    // Prepare
    fake.sfn.on(StartExecutionCommand).rejects(refusal);
    // Act
    const response = await post(REQUEST);
    // Assess
    expect(response.status).toBe(400);
    expect(response.body.error).toBe("InvalidRequest");
    expect(response.body.problems).toEqual([{ path: "", message: expect.stringMatching(/too large/) }]);
  });
});

describe("POST /provision: the middleware around it", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("puts API Gateway's request id and the route on the invocation's log lines", async () => {
    // Prepare
    const appendKeys = vi.spyOn(logger, "appendKeys");
    // Act
    await post(REQUEST, { "Idempotency-Key": "onboard-42" });
    // Assess
    expect(appendKeys).toHaveBeenCalledWith({ route: "POST /provision", requestId: "req-1" });
  });

  it("answers 500 JSON without a stack when the code itself breaks, and logs the error once", async () => {
    // Prepare: a programming error, not an AWS one
    const sfn = new SFNClient({ region: "eu-west-1" });
    sfn.send = () => Promise.reject(new TypeError("Cannot read properties of undefined (reading 'executions')"));
    const broken = createProvisionHandler({ sfn, stateMachineArn: STATE_MACHINE_ARN });
    const logError = vi.spyOn(logger, "error");
    // Act
    const response = (await broken(httpEvent(REQUEST))) as APIGatewayProxyStructuredResultV2;
    // Assess
    expect(response.statusCode).toBe(500);
    expect(response.headers).toEqual({ "content-type": "application/json" });
    expect(JSON.parse(String(response.body))).toEqual({
      error: "InternalError",
      message: "could not start the provisioning workflow",
      requestId: "req-1",
    });
    expect(String(response.body)).not.toMatch(/\bat .+:\d+:\d+|TypeError/);
    expect(logError).toHaveBeenCalledTimes(1);
    expect(logError).toHaveBeenCalledWith(
      "POST /provision failed with TypeError",
      expect.objectContaining({ errorName: "TypeError", statusCode: 500 }),
    );
  });
});
