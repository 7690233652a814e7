/**
 * Faults injected into the AWS emulator (local/faults.ts): throttles, 5xx, conflicts, permanent errors and latency,
 * answered with the exception and status AWS would send, which the product then names as it would on AWS.
 */
import { describe, expect, it } from "vitest";
import { type IAMClient, ServiceFailureException } from "@aws-sdk/client-iam";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import {
  AccessDeniedException,
  DescribeClusterCommand,
  type EKSClient,
  ResourceInUseException,
  ServerException,
  ThrottlingException,
} from "@aws-sdk/client-eks";
import { type EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { ClusterUnreachable, NotAllowed, Throttled } from "../../functions/lib/domain/errors.js";
import { normaliseError } from "../../functions/lib/workflow/normalise-error.js";
import { FaultInjector } from "../../local/faults.js";
import { startAwsEmulator, type AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import { ACCOUNT, ADMIN_ARN, clients, createLauncherRole, rejection, useAwsEmulator } from "../support/aws-emulator-clients.js";

let aws: AwsEmulator;
let iam: IAMClient;
let eks: EKSClient;
let events: EventBridgeClient;
useAwsEmulator((started) => ({ aws, iam, eks, events } = started));

describe("faults", () => {
  it("throttles IAM with Throttling (400) for the given number of calls, which the product names Throttled", async () => {
    // Prepare
    aws.faults.inject({ operation: "iam:CreateRole", kind: "throttle", times: 1 });
    // Act
    const error = await rejection(createLauncherRole(iam));
    const afterwards = await createLauncherRole(iam);
    // Assess
    expect(error.name).toBe("Throttling");
    expect(error.$metadata?.httpStatusCode).toBe(400);
    expect(normaliseError(error)).toBeInstanceOf(Throttled);
    expect(afterwards).toBe(`arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-launcher`);
    expect(aws.faults.fired).toEqual([{ operation: "iam:CreateRole", kind: "throttle" }]);
  });

  it.each([
    ["throttle", ThrottlingException, 429, Throttled],
    ["5xx", ServerException, 500, ClusterUnreachable],
    ["conflict", ResourceInUseException, 409, Throttled],
    ["permanent", AccessDeniedException, 403, NotAllowed],
  ] as const)(
    "answers an EKS %s fault with the modelled exception and status, which the product names as it would on AWS",
    async (kind, exceptionClass, status, named) => {
      // Prepare
      aws.faults.inject({ operation: "eks:Describe*", kind, times: 1 });
      // Act
      const error = await rejection(eks.send(new DescribeClusterCommand({ name: "research" })));
      const afterwards = await eks.send(new DescribeClusterCommand({ name: "research" }));
      // Assess
      expect(error).toBeInstanceOf(exceptionClass);
      expect(error.$metadata?.httpStatusCode).toBe(status);
      expect(normaliseError(error)).toBeInstanceOf(named);
      expect(afterwards.cluster?.name).toBe("research");
      expect(aws.faults.fired).toEqual([{ operation: "eks:DescribeCluster", kind }]);
    },
  );

  it("answers IAM 5xx as ServiceFailureException and leaves state untouched by a failed call", async () => {
    // Prepare
    aws.faults.inject({ operation: "iam:CreateRole", kind: "5xx" });
    // Act
    const error = await rejection(createLauncherRole(iam));
    // Assess
    expect(error).toBeInstanceOf(ServiceFailureException);
    expect(error.$metadata?.httpStatusCode).toBe(500);
    expect(aws.state.iam.roles.has("nfeks-genomics-launcher")).toBe(false);
  });

  it("lets the SDK's own retry ride over a single throttle", async () => {
    // Prepare
    const retrying = clients(aws.url, 3);
    aws.faults.inject({ operation: "sts:GetCallerIdentity", kind: "throttle", times: 1 });
    // Act
    const result = await retrying.sts.send(new GetCallerIdentityCommand({}));
    for (const client of Object.values(retrying)) client.destroy();
    // Assess
    expect(result.Arn).toBe(ADMIN_ARN);
    expect(result.$metadata.attempts).toBe(2);
  });

  it("delays an answer by the latency asked for, then answers normally", async () => {
    // Prepare
    aws.faults.inject({ operation: "events:PutEvents", kind: "latency", ms: 300 });
    const started = Date.now();
    // Act
    const result = await events.send(new PutEventsCommand({ Entries: [{ Source: "s", DetailType: "d", Detail: "{}" }] }));
    // Assess
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(result.FailedEntryCount).toBe(0);
  });

  it("uses a shared FaultInjector given at start", async () => {
    // Prepare
    const faults = new FaultInjector().inject({ operation: "sts:*", kind: "permanent" });
    const other = await startAwsEmulator({ faults });
    const c = clients(other.url);
    // Act
    const error = await rejection(c.sts.send(new GetCallerIdentityCommand({})));
    for (const client of Object.values(c)) client.destroy();
    await other.close();
    // Assess
    expect(error.name).toBe("AccessDenied");
    expect(error.$metadata?.httpStatusCode).toBe(403);
    expect(faults.fired).toEqual([{ operation: "sts:GetCallerIdentity", kind: "permanent" }]);
  });
});
