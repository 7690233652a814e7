/**
 * Contract: an EKS access entry belongs to the role instance it was made for, not to its ARN (#13 points 1 and 7),
 * against the sandbox (default) or a real account and cluster (TARGET=aws). A session of the role authenticates with
 * the entry's username; once the role is deleted and recreated under the same name (same ARN, new role id), a session
 * of the new role is refused (401) although the entry is still there. Creates the IAM role `<prefix>-entry` (trusting
 * the account) and an access entry for it; deletes both afterwards, even when a step fails. Needs a cluster in API or
 * API_AND_CONFIG_MAP mode (skipped otherwise).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateAccessEntryCommand, DeleteAccessEntryCommand, DescribeAccessEntryCommand } from "@aws-sdk/client-eks";
import { CreateRoleCommand, DeleteRoleCommand, GetRoleCommand } from "@aws-sdk/client-iam";
import { AssumeRoleCommand } from "@aws-sdk/client-sts";
import type { AwsCredentialIdentity } from "@smithy/types";
import { cleanUp, clusterMs, eventually, openTarget, TARGET, testTimeout, whoAmI, type ContractTarget } from "./target.js";

let target: ContractTarget;
let roleName: string;
let roleArn: string | undefined;
let entryMade = false;

beforeAll(async () => {
  target = await openTarget();
  roleName = `${target.prefix}-entry`;
});

afterAll(async () => {
  await cleanUp(
    async () => {
      if (entryMade) await target.aws.eks.send(new DeleteAccessEntryCommand({ clusterName: target.cluster.name, principalArn: roleArn }));
    },
    async () => {
      if (roleArn)
        await deleteRole().catch((error) => ((error as Error).name === "NoSuchEntityException" ? undefined : Promise.reject(error)));
    },
    async () => target?.close(),
  );
});

const trustTheAccount = () =>
  JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${target.accountId}:root` }, Action: "sts:AssumeRole" }],
  });

async function createRole(): Promise<{ arn: string; roleId: string }> {
  const { Role } = await target.aws.iam.send(
    new CreateRoleCommand({
      RoleName: roleName,
      AssumeRolePolicyDocument: trustTheAccount(),
      Description: "nf-eks-provisioner contract test; deleted when the test ends",
    }),
  );
  return { arn: Role!.Arn!, roleId: Role!.RoleId! };
}

async function deleteRole(): Promise<void> {
  await target.aws.iam.send(new DeleteRoleCommand({ RoleName: roleName }));
}

/** A session of the role (IAM may take a few seconds to let a new role be assumed on AWS). */
async function assume(arn: string): Promise<AwsCredentialIdentity> {
  const { Credentials } = await eventually(
    `a session of ${arn}`,
    () => target.aws.sts.send(new AssumeRoleCommand({ RoleArn: arn, RoleSessionName: target.prefix, DurationSeconds: 900 })),
    TARGET === "aws" ? 60_000 : 3_000,
  );
  return {
    accessKeyId: Credentials!.AccessKeyId!,
    secretAccessKey: Credentials!.SecretAccessKey!,
    sessionToken: Credentials!.SessionToken!,
  };
}

describe("an access entry on a role deleted and recreated under the same name", () => {
  it(
    "authenticates the first role's sessions with its username, and refuses the new role's (401)",
    async (context) => {
      if (target.cluster.authenticationMode === "CONFIG_MAP") {
        context.skip(`cluster ${target.cluster.name} is in CONFIG_MAP mode: access entries need API or API_AND_CONFIG_MAP`);
      }
      // Prepare: the role, its entry, and a session that authenticates through it
      const username = `${target.prefix}-user`;
      const first = await createRole();
      roleArn = first.arn;
      await target.aws.eks.send(
        new CreateAccessEntryCommand({ clusterName: target.cluster.name, principalArn: first.arn, username, type: "STANDARD" }),
      );
      entryMade = true;
      const before = await eventually(
        "the first role's session authenticated",
        async () => {
          const answer = await whoAmI(await target.kubeConfigAs(await assume(first.arn)));
          return answer.status === 201 && answer;
        },
        clusterMs(60),
      );

      // Act: the role deleted and recreated (same name, same ARN), and a session of the new one
      await deleteRole();
      const second = await createRole();
      const after = await eventually(
        "the new role's session refused",
        async () => {
          const answer = await whoAmI(await target.kubeConfigAs(await assume(second.arn)));
          return answer.status !== 201 && answer;
        },
        clusterMs(60),
      );

      // Assess
      expect(before).toEqual({ status: 201, username });
      expect(second.arn).toBe(first.arn);
      expect(second.roleId).not.toBe(first.roleId);
      expect((await target.aws.iam.send(new GetRoleCommand({ RoleName: roleName }))).Role?.RoleId).toBe(second.roleId);
      expect(after).toEqual({ status: 401 });
      const { accessEntry } = await target.aws.eks.send(
        new DescribeAccessEntryCommand({ clusterName: target.cluster.name, principalArn: first.arn }),
      );
      expect(accessEntry?.username).toBe(username); // the entry itself is still there
    },
    testTimeout(240),
  );
});
