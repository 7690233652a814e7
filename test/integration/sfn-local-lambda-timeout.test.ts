/**
 * A Lambda past its timeout in the local Step Functions runner (#13 point 5): the invocation fails with Lambda's
 * Sandbox.Timedout (retried as the definition says), and the handler, which the runner cannot freeze, is cut off:
 * the product's AWS clients make no further call for it, so it no longer changes the emulators' state. A catalog
 * handler's timeout is its module's, from STEP_SIZING as the stack deploys it.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Context } from "aws-lambda";
import { CreateRoleCommand } from "@aws-sdk/client-iam";
import { iamClient, resetClients } from "../../functions/lib/aws/clients.js";
import { LocalStepFunctions, type LambdaHandler } from "../../local/sfn/runner.js";
import { startAwsEmulator, type AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import { STEP_SIZING } from "../../functions/steps/step-sizing.js";
import { STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import { kubeApiFrom, kubeConfigFor } from "../../functions/lib/kube/kube-client.js";
import { resolvedCluster } from "../support/fixtures.js";
import { ADMIN_TOKEN, configMap, useKubeEmulator, type RunningKubeEmulator } from "../support/kube-emulator-clients.js";

/** What a catalog handler reports instead of doing its step: how long its context says it has. */
const reportRemainingTime = async (_event: unknown, context: Context) => ({ remainingMs: context.getRemainingTimeInMillis() });

// The catalog's modules for Report (30 s) and CheckHeadJob (120 s), replaced so the runner's own binding is observed.
vi.mock("../../functions/steps/report.js", () => ({ ready: reportRemainingTime }));
vi.mock("../../functions/steps/head-job.js", () => ({ check: reportRemainingTime }));

const REGION = "eu-west-1";
const ACCOUNT = "111122223333";
const TRUST = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "sts:AssumeRole" }],
});

let aws: AwsEmulator;
const savedEnv = { ...process.env };

beforeAll(async () => {
  aws = await startAwsEmulator({ accountId: ACCOUNT });
  process.env.AWS_ENDPOINT_URL_IAM = aws.url;
  resetClients();
});

afterEach(() => resetClients());

afterAll(async () => {
  process.env = { ...savedEnv };
  resetClients();
  await aws.close();
});

function machine(handler: LambdaHandler, retry: object[] = []) {
  return new LocalStepFunctions({
    region: REGION,
    accountId: ACCOUNT,
    functions: { Slow: handler },
    lambdaTimeoutSeconds: 0.2,
    stateMachines: {
      slow: { StartAt: "SlowTask", States: { SlowTask: { Type: "Task", Resource: "${SlowFunctionArn}", Retry: retry, End: true } } },
    },
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a handler past its Lambda timeout", () => {
  it("fails the invocation with Sandbox.Timedout, which the Task's retrier retries", async () => {
    // Prepare
    let calls = 0;
    const local = machine(async () => {
      calls += 1;
      await sleep(600);
      return { late: true };
    }, [{ ErrorEquals: ["Sandbox.Timedout"], IntervalSeconds: 1, MaxAttempts: 1 }]);

    // Act
    const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("slow"), input: "{}" });
    const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });
    const events = (await local.getExecutionHistory({ executionArn, maxResults: 1000 })).events!;

    // Assess
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("Sandbox.Timedout");
    const failures = events.filter((e) => e.type === "LambdaFunctionFailed").map((e) => e.lambdaFunctionFailedEventDetails!);
    expect(failures).toHaveLength(2);
    expect(failures[0]!.error).toBe("Sandbox.Timedout");
    expect(JSON.parse(failures[0]!.cause!).errorMessage).toMatch(/Task timed out after 0\.20 seconds/);
    expect(calls).toBe(2);
  });

  it("is cut off: its AWS calls after the timeout are refused (InvocationCutOff) and change nothing", async () => {
    // Prepare
    let lateCall: Promise<unknown> | undefined;
    const local = machine(async () => {
      await sleep(400); // past the 200 ms timeout
      lateCall = iamClient().send(new CreateRoleCommand({ RoleName: "created-too-late", AssumeRolePolicyDocument: TRUST }));
      await lateCall;
      return { created: true };
    });

    // Act
    const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("slow"), input: "{}" });
    const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });
    await sleep(400);

    // Assess
    expect(described.error).toBe("Sandbox.Timedout");
    await expect(lateCall).rejects.toMatchObject({ name: "InvocationCutOff" });
    expect(aws.state.iam.roles.has("created-too-late")).toBe(false);
  });

  it("is cut off between attempts: the SDK's retry of a call that started in time is not sent after the timeout", async () => {
    // Prepare: an IAM endpoint that answers every request late (past the 200 ms timeout) with a retryable 500
    const requests: string[] = [];
    const slowFailing = createServer((req, res) => {
      requests.push(req.url ?? "");
      setTimeout(() => {
        res.writeHead(500, { "content-type": "text/xml" });
        res.end("<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>slow</Message></Error></ErrorResponse>");
      }, 400);
    });
    await new Promise<void>((resolve) => slowFailing.listen(0, "127.0.0.1", resolve));
    process.env.AWS_ENDPOINT_URL_IAM = `http://127.0.0.1:${(slowFailing.address() as AddressInfo).port}`;
    resetClients();
    let call: Promise<unknown> | undefined;
    const local = machine(async () => {
      call = iamClient().send(new CreateRoleCommand({ RoleName: "retried-too-late", AssumeRolePolicyDocument: TRUST }));
      await call;
      return { created: true };
    });

    try {
      // Act
      const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("slow"), input: "{}" });
      const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });
      await call?.catch(() => undefined); // the first answer (500) and the SDK's backoff, then its retry or not

      // Assess: the one attempt sent in time, no second one
      expect(described.error).toBe("Sandbox.Timedout");
      await expect(call).rejects.toMatchObject({ name: "InvocationCutOff" });
      expect(requests).toHaveLength(1);
    } finally {
      process.env.AWS_ENDPOINT_URL_IAM = aws.url;
      await new Promise((resolve) => slowFailing.close(resolve));
    }
  });

  it("a handler within its timeout calls AWS as usual (the same client, outside any cut-off)", async () => {
    // Prepare
    const local = machine(async () => {
      await iamClient().send(new CreateRoleCommand({ RoleName: "created-in-time", AssumeRolePolicyDocument: TRUST }));
      return { created: true };
    });

    // Act
    const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("slow"), input: "{}" });
    const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });

    // Assess
    expect(described.status).toBe("SUCCEEDED");
    expect(aws.state.iam.roles.has("created-in-time")).toBe(true);
  });
});

describe("a handler past its Lambda timeout, against Kubernetes", () => {
  let emulator: RunningKubeEmulator;
  useKubeEmulator((started) => (emulator = started));

  /** The product's client for the emulated cluster: kubeConfigFor's, which cuts a stopped invocation off. */
  const productKubeApi = () =>
    kubeApiFrom(kubeConfigFor(resolvedCluster({ endpoint: emulator.kube.url, certificateAuthority: emulator.kube.caData }), ADMIN_TOKEN));
  const configMapNamed = (name: string) =>
    emulator.kube.snapshot().find((o) => o.kind === "ConfigMap" && o.metadata.namespace === "team" && o.metadata.name === name);

  it("is cut off: its Kubernetes create after the timeout is refused (InvocationCutOff) and creates nothing", async () => {
    // Prepare
    let lateCreate: Promise<unknown> | undefined;
    const local = machine(async () => {
      const api = productKubeApi();
      await sleep(400); // past the 200 ms timeout
      lateCreate = api.create(configMap("created-too-late", "team"));
      await lateCreate;
      return { created: true };
    });

    // Act
    const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("slow"), input: "{}" });
    const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });
    await sleep(400);

    // Assess
    expect(described.error).toBe("Sandbox.Timedout");
    await expect(lateCreate).rejects.toMatchObject({ name: "InvocationCutOff" });
    expect(configMapNamed("created-too-late")).toBeUndefined();
  });

  it("aborts its Kubernetes request in flight at the timeout: the handler does not wait out the answer", async () => {
    // Prepare: the API server takes 1.5 s to answer the create, well past the 200 ms timeout
    emulator.faults.inject({ operation: "kube:POST configmaps", kind: "latency", ms: 1_500, times: 1 });
    let settledAfterMs: number | undefined;
    let inFlight: Promise<unknown> | undefined;
    const local = machine(async () => {
      const started = Date.now();
      inFlight = productKubeApi().create(configMap("in-flight", "team"));
      inFlight.catch(() => undefined).finally(() => (settledAfterMs = Date.now() - started));
      await inFlight;
      return { created: true };
    });

    try {
      // Act
      const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("slow"), input: "{}" });
      const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });
      await inFlight?.catch(() => undefined);

      // Assess
      expect(described.error).toBe("Sandbox.Timedout");
      await expect(inFlight).rejects.toThrow();
      expect(settledAfterMs).toBeLessThan(1_000);
    } finally {
      emulator.faults.clear();
    }
  });
});

describe("the steps' Lambda timeouts", () => {
  it("bind each catalog handler to its module's timeout from STEP_SIZING, not the 60 s default nor the overrides' timeout", async () => {
    // Prepare: lambdaTimeoutSeconds is for handlers given in `functions`; these two come from the catalog
    const local = new LocalStepFunctions({
      region: REGION,
      accountId: ACCOUNT,
      lambdaTimeoutSeconds: 0.5,
      stateMachines: {
        sized: {
          StartAt: "Report",
          States: {
            Report: { Type: "Task", Resource: "${ReportFunctionArn}", ResultPath: "$.report", Next: "CheckHeadJob" },
            CheckHeadJob: { Type: "Task", Resource: "${CheckHeadJobFunctionArn}", ResultPath: "$.headJob", End: true },
          },
        },
      },
    });
    const expectedMs = [STEP_SIZING.report!.timeout * 1000, STEP_SIZING["head-job"]!.timeout * 1000];
    expect(expectedMs).not.toContain(60_000); // sizes a runner stuck on the default could not meet

    // Act
    const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("sized"), input: "{}" });
    const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });

    // Assess: each handler starts with (nearly) its whole timeout
    expect(described.status).toBe("SUCCEEDED");
    const { report, headJob } = JSON.parse(described.output!);
    for (const [seen, expected] of [
      [report.remainingMs, expectedMs[0]!],
      [headJob.remainingMs, expectedMs[1]!],
    ]) {
      expect(seen).toBeLessThanOrEqual(expected);
      expect(seen).toBeGreaterThan(expected - 5_000);
    }
  });

  it("come from one table, for every step module the catalog names (the stack deploys them, the runner enforces them)", () => {
    // Assess
    const modules = [...new Set(STEP_FUNCTIONS.map((entry) => entry.module))];
    expect(modules.filter((module) => !STEP_SIZING[module])).toEqual([]);
    for (const module of modules) expect(STEP_SIZING[module]!.timeout).toBeGreaterThan(0);
  });
});
