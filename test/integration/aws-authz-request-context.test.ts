/**
 * The request context the emulator's policy decisions see comes from the request and the stored resource, as in AWS:
 * tags sent on a create (aws:TagKeys, and the tagging permission it needs), the stored role's tags
 * (aws:ResourceTag), the boundary a CreateRole asks for (iam:PermissionsBoundary), the service a role is passed to
 * (iam:PassedToService). Driven by the real SDK v3 clients.
 */
import { describe, expect, it } from "vitest";
import { CreatePolicyCommand, CreateRoleCommand, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import {
  AccessDeniedException as EksAccessDenied,
  CreateAccessEntryCommand,
  CreatePodIdentityAssociationCommand,
} from "@aws-sdk/client-eks";
import { podIdentityTrustPolicy } from "../../functions/lib/domain/policies.js";
import {
  ACCOUNT,
  admin,
  allow,
  aws,
  CLUSTER_ARN,
  clientsAs,
  MARK,
  policy,
  PRODUCT,
  REGION,
  rejection,
  sessionOf,
  TRUST_ACCOUNT,
  useAuthzEmulator,
} from "../support/aws-authz-sessions.js";

useAuthzEmulator();

// ---------------------------------------------------------------- the request context

describe("the request context comes from the request and the stored resource", () => {
  it("needs iam:TagRole too when CreateRole carries tags, limited by aws:TagKeys", async () => {
    // Prepare
    const roles = `arn:aws:iam::${ACCOUNT}:role/nfeks-*`;
    const createOnly = clientsAs(await sessionOf("create-only", { create: policy(allow("iam:CreateRole", roles)) }));
    const createAndTag = clientsAs(
      await sessionOf("create-and-tag", {
        create: policy(
          allow("iam:CreateRole", roles),
          allow("iam:TagRole", roles, { "ForAllValues:StringEquals": { "aws:TagKeys": [MARK] } }),
        ),
      }),
    );
    const create = (roleName: string, tags?: Array<{ Key: string; Value: string }>) =>
      new CreateRoleCommand({
        RoleName: roleName,
        AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT),
        ...(tags ? { Tags: tags } : {}),
      });
    // Act
    const untagged = await createOnly.iam.send(create("nfeks-untagged"));
    const taggedWithoutTagRole = await rejection(createOnly.iam.send(create("nfeks-tagged", [{ Key: MARK, Value: PRODUCT }])));
    const tagged = await createAndTag.iam.send(create("nfeks-tagged", [{ Key: MARK, Value: PRODUCT }]));
    const otherKey = await rejection(createAndTag.iam.send(create("nfeks-other", [{ Key: "team", Value: "x" }])));
    // Assess
    expect(untagged.Role?.RoleName).toBe("nfeks-untagged");
    expect(taggedWithoutTagRole.message).toContain(
      `is not authorized to perform: iam:TagRole on resource: arn:aws:iam::${ACCOUNT}:role/nfeks-tagged`,
    );
    expect(tagged.Role?.Tags).toEqual([{ Key: MARK, Value: PRODUCT }]);
    expect(otherKey.message).toContain("iam:TagRole");
    expect([...aws.state.iam.roles.keys()].filter((name) => name.startsWith("nfeks-"))).toEqual(["nfeks-untagged", "nfeks-tagged"]);
  });

  it("needs eks:TagResource on the new access entry when CreateAccessEntry carries tags", async () => {
    // Prepare
    const principalArn = aws.defineRole({ roleName: "nfeks-genomics-launcher" });
    const createOnly = clientsAs(await sessionOf("entries", { create: policy(allow("eks:CreateAccessEntry", CLUSTER_ARN)) }));
    const tags = { [MARK]: PRODUCT };
    // Act
    const error = await rejection(createOnly.eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn, tags })));
    // Assess
    expect(error).toBeInstanceOf(EksAccessDenied);
    expect(error.message).toMatch(
      new RegExp(
        `is not authorized to perform: eks:TagResource on resource: ` +
          `arn:aws:eks:${REGION}:${ACCOUNT}:access-entry/research/role/${ACCOUNT}/nfeks-genomics-launcher/[0-9a-f-]{36} `,
      ),
    );
    expect(aws.state.eks.clusters.get(`${REGION}/research`)!.accessEntries.has(principalArn)).toBe(false);
  });

  it("reads aws:ResourceTag from the stored role: writes only to roles carrying the mark", async () => {
    // Prepare
    const document = JSON.stringify(policy(allow("eks:DescribeCluster", CLUSTER_ARN)));
    aws.defineRole({ roleName: "nfeks-marked", tags: { [MARK]: PRODUCT } });
    aws.defineRole({ roleName: "nfeks-unmarked" });
    const { iam } = clientsAs(
      await sessionOf("writer", {
        owned: policy(
          allow("iam:PutRolePolicy", `arn:aws:iam::${ACCOUNT}:role/nfeks-*`, { StringEquals: { [`aws:ResourceTag/${MARK}`]: PRODUCT } }),
        ),
      }),
    );
    // Act
    await iam.send(new PutRolePolicyCommand({ RoleName: "nfeks-marked", PolicyName: "describe", PolicyDocument: document }));
    const error = await rejection(
      iam.send(new PutRolePolicyCommand({ RoleName: "nfeks-unmarked", PolicyName: "describe", PolicyDocument: document })),
    );
    // Assess
    expect(aws.state.iam.roles.get("nfeks-marked")!.inlinePolicies.get("describe")).toBe(document);
    expect(error.name).toBe("AccessDenied");
    expect(aws.state.iam.roles.get("nfeks-unmarked")!.inlinePolicies.size).toBe(0);
  });

  it("reads iam:PermissionsBoundary from CreateRole: a role without the required boundary is refused", async () => {
    // Prepare
    const { Policy } = await admin.iam.send(
      new CreatePolicyCommand({ PolicyName: "tenant-boundary", PolicyDocument: JSON.stringify(policy(allow("s3:*"))) }),
    );
    const required = Policy!.Arn!;
    const { iam } = clientsAs(
      await sessionOf("bounded-creator", {
        create: policy(allow("iam:CreateRole", "*", { StringEquals: { "iam:PermissionsBoundary": required } })),
      }),
    );
    const trust = JSON.stringify(TRUST_ACCOUNT);
    // Act
    const without = await rejection(iam.send(new CreateRoleCommand({ RoleName: "nfeks-free", AssumeRolePolicyDocument: trust })));
    const withIt = await iam.send(
      new CreateRoleCommand({ RoleName: "nfeks-bounded", AssumeRolePolicyDocument: trust, PermissionsBoundary: required }),
    );
    // Assess
    expect(without.name).toBe("AccessDenied");
    expect(withIt.Role?.PermissionsBoundary?.PermissionsBoundaryArn).toBe(required);
  });

  it("passes a role to EKS Pod Identity only under an iam:PassedToService condition naming pods.eks.amazonaws.com", async () => {
    // Prepare
    const workload = aws.defineRole({
      roleName: "nfeks-genomics-workload",
      trustPolicy: podIdentityTrustPolicy({ clusterArn: CLUSTER_ARN, namespace: "tower-nf", serviceAccounts: ["tower-launcher-sa"] }),
    });
    const associate = allow("eks:CreatePodIdentityAssociation", CLUSTER_ARN);
    const passTo = (service: string) => allow("iam:PassRole", workload, { StringEquals: { "iam:PassedToService": service } });
    const right = clientsAs(await sessionOf("pass-to-pods", { p: policy(associate, passTo("pods.eks.amazonaws.com")) }));
    const wrong = clientsAs(await sessionOf("pass-to-ec2", { p: policy(associate, passTo("ec2.amazonaws.com")) }));
    const request = (serviceAccount: string) =>
      new CreatePodIdentityAssociationCommand({ clusterName: "research", namespace: "tower-nf", serviceAccount, roleArn: workload });
    // Act
    const created = await right.eks.send(request("tower-launcher-sa"));
    const error = await rejection(wrong.eks.send(request("tower-compute-sa")));
    // Assess
    expect(created.association?.roleArn).toBe(workload);
    expect(error).toBeInstanceOf(EksAccessDenied);
    expect(error.message).toContain(`is not authorized to perform: iam:PassRole on resource: ${workload}`);
  });
});
