/**
 * What the AWS emulator keeps for tests to read: the EventBridge events it accepted (PutEvents, JSON 1.1) and
 * snapshots of its state, deep copies that come back equal once what a run created is removed.
 */
import { describe, expect, it } from "vitest";
import { DeleteRoleCommand, DeleteRolePolicyCommand, type IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { CreateAccessEntryCommand, DeleteAccessEntryCommand, type EKSClient } from "@aws-sdk/client-eks";
import { type EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import { ACCOUNT, createLauncherRole, describeClustersPolicy, REGION, useAwsEmulator } from "../support/aws-emulator-clients.js";

let aws: AwsEmulator;
let iam: IAMClient;
let eks: EKSClient;
let events: EventBridgeClient;
useAwsEmulator((started) => ({ aws, iam, eks, events } = started));

describe("EventBridge (JSON 1.1)", () => {
  it("records accepted events for tests to read and reports malformed entries per entry", async () => {
    // Act
    const result = await events.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: "nf-eks-provisioner-bus",
            Source: "nf-eks-provisioner",
            DetailType: "ComputeEnvironmentReady",
            Detail: JSON.stringify({ tenant: "genomics" }),
            Resources: ["arn:x"],
          },
          { Source: "nf-eks-provisioner", DetailType: "ComputeEnvironmentReady", Detail: "not json" },
        ],
      }),
    );
    // Assess
    expect(result.FailedEntryCount).toBe(1);
    expect(result.Entries?.[0].EventId).toBeTruthy();
    expect(result.Entries?.[1]).toMatchObject({ ErrorCode: "MalformedDetail" });
    expect(aws.events({ detailType: "ComputeEnvironmentReady" })).toEqual([
      expect.objectContaining({
        eventBusName: "nf-eks-provisioner-bus",
        source: "nf-eks-provisioner",
        detail: { tenant: "genomics" },
        resources: ["arn:x"],
        region: REGION,
        account: ACCOUNT,
      }),
    ]);
  });
});

describe("snapshot", () => {
  it("is a deep copy that comes back equal once what a run created is removed", async () => {
    // Prepare
    const before = aws.snapshot();
    const principalArn = await createLauncherRole(iam);
    await iam.send(
      new PutRolePolicyCommand({ RoleName: "nfeks-genomics-launcher", PolicyName: "p", PolicyDocument: describeClustersPolicy }),
    );
    await eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn }));
    // Act
    const during = aws.snapshot();
    (during as { iam: { roles: Record<string, unknown> } }).iam.roles = {}; // must not reach the emulator
    await eks.send(new DeleteAccessEntryCommand({ clusterName: "research", principalArn }));
    await iam.send(new DeleteRolePolicyCommand({ RoleName: "nfeks-genomics-launcher", PolicyName: "p" }));
    await iam.send(new DeleteRoleCommand({ RoleName: "nfeks-genomics-launcher" }));
    const after = aws.snapshot();
    // Assess
    expect(aws.state.iam.roles.size).toBe(1); // the seeded node role
    expect(during).not.toEqual(before);
    expect(after).toEqual(before);
    expect(JSON.stringify(after)).toBe(JSON.stringify(before));
  });

  it("leaves the event log out unless asked for", async () => {
    // Prepare
    await events.send(new PutEventsCommand({ Entries: [{ Source: "s", DetailType: "d", Detail: "{}" }] }));
    // Act
    const resources = aws.snapshot() as Record<string, unknown>;
    const everything = aws.snapshot({ includeEvents: true }) as { events: unknown[] };
    // Assess
    expect(resources).not.toHaveProperty("events");
    expect(everything.events).toHaveLength(1);
  });
});
