/**
 * The roles the product makes for a tenant, decided by the IAM policy simulator: who may assume them (the launcher's
 * trust, the Pod Identity trust and its session tags), how far their S3 policy reaches (the work directory), and
 * that the tenant-role boundary caps whatever policy a role is given. The documents are the product's own builders'.
 */
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { describe, expect, it } from "vitest";
import {
  accountRootArn,
  fusionS3Policy,
  launcherTrustPolicy,
  podIdentityTrustPolicy,
  type PolicyDocument,
  tenantRoleBoundaryPolicy,
} from "../../functions/lib/domain/policies.js";
import { productRoleArn } from "../../functions/lib/domain/naming.js";
import type { Context, Decision } from "./authorization.js";

const ACCOUNT = "111122223333";
const CLUSTER_ARN = `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`;
const LAUNCHER = productRoleArn("aws", ACCOUNT, "nfeks-genomics.research-launcher");
const WORKLOAD = productRoleArn("aws", ACCOUNT, "nfeks-genomics.research-workload");
const SEQERA = `arn:aws:iam::${ACCOUNT}:role/seqera-platform`;

interface Ask {
  principal: string;
  action: string;
  resource: string;
  context?: Context;
  /** the resource's own policy: a role's trust policy */
  trust?: PolicyDocument;
  identity?: PolicyDocument[];
  boundary?: PolicyDocument;
}

async function decide(ask: Ask): Promise<Decision> {
  const result = await runSimulation(
    {
      request: {
        principal: ask.principal,
        action: ask.action,
        resource: { resource: ask.resource, accountId: ACCOUNT },
        contextVariables: ask.context ?? {},
      },
      identityPolicies: (ask.identity ?? []).map((policy, i) => ({ name: `identity-${i}`, policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(ask.trust ? { resourcePolicy: ask.trust } : {}),
      ...(ask.boundary ? { permissionBoundaryPolicies: [{ name: "boundary", policy: ask.boundary }] } : {}),
    },
    {},
  );
  if (result.resultType === "error") throw new Error(JSON.stringify(result.errors));
  return result.overallResult as Decision;
}

describe("the launcher's trust", () => {
  const trust = launcherTrustPolicy([SEQERA], "genomics-seqera");

  it("lets the named principal assume the launcher with the external ID, and nobody else, nor without it", async () => {
    // Prepare
    const assume = (principal: string, context: Context = {}) =>
      decide({ principal, action: "sts:AssumeRole", resource: LAUNCHER, context, trust });
    // Act
    const decisions = {
      named: await assume(SEQERA, { "sts:ExternalId": "genomics-seqera" }),
      withoutExternalId: await assume(SEQERA),
      wrongExternalId: await assume(SEQERA, { "sts:ExternalId": "proteomics-seqera" }),
      otherRoleOfTheAccount: await assume(`arn:aws:iam::${ACCOUNT}:role/ci`, { "sts:ExternalId": "genomics-seqera" }),
      otherAccount: await assume("arn:aws:iam::999988887777:role/seqera-platform", { "sts:ExternalId": "genomics-seqera" }),
    };
    // Assess
    expect(decisions).toEqual({
      named: "Allowed",
      withoutExternalId: "ImplicitlyDenied",
      wrongExternalId: "ImplicitlyDenied",
      otherRoleOfTheAccount: "ImplicitlyDenied",
      otherAccount: "ImplicitlyDenied",
    });
  });

  it("with trustAccount, lets a principal of the account whose own policy allows it, and only such a one", async () => {
    // Prepare
    const accountTrust = launcherTrustPolicy([accountRootArn(ACCOUNT)]);
    const allowsAssume: PolicyDocument = {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Resource: LAUNCHER }],
    };
    const assume = (identity: PolicyDocument[]) =>
      decide({ principal: `arn:aws:iam::${ACCOUNT}:role/ci`, action: "sts:AssumeRole", resource: LAUNCHER, trust: accountTrust, identity });
    // Act + Assess
    expect(await assume([allowsAssume])).toBe("Allowed");
    expect(await assume([])).toBe("ImplicitlyDenied");
  });
});

describe("the Pod Identity trust", () => {
  const trust = podIdentityTrustPolicy({
    clusterArn: CLUSTER_ARN,
    namespace: "tower-nf",
    serviceAccounts: ["tower-launcher-sa", "tower-compute-sa"],
  });
  /** The session tags EKS Pod Identity sets for a pod. */
  const sessionTags = (cluster: string, namespace: string, serviceAccount: string): Context => ({
    "aws:RequestTag/eks-cluster-arn": cluster,
    "aws:RequestTag/kubernetes-namespace": namespace,
    "aws:RequestTag/kubernetes-service-account": serviceAccount,
    "aws:RequestTag/kubernetes-pod-name": "head-abc12",
    "aws:TagKeys": ["eks-cluster-arn", "kubernetes-namespace", "kubernetes-service-account", "kubernetes-pod-name"],
  });

  it.each([
    ["the head service account of the tenant's namespace", sessionTags(CLUSTER_ARN, "tower-nf", "tower-launcher-sa"), "Allowed"],
    ["the compute service account", sessionTags(CLUSTER_ARN, "tower-nf", "tower-compute-sa"), "Allowed"],
    ["another namespace", sessionTags(CLUSTER_ARN, "proteomics", "tower-launcher-sa"), "ImplicitlyDenied"],
    ["another service account", sessionTags(CLUSTER_ARN, "tower-nf", "default"), "ImplicitlyDenied"],
    [
      "another cluster",
      sessionTags(`arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/finance`, "tower-nf", "tower-launcher-sa"),
      "ImplicitlyDenied",
    ],
    ["an association with session tags disabled (no tags)", {}, "ImplicitlyDenied"],
  ])("%s: %s", async (_what, context, expected) => {
    // Act
    const decisions = await Promise.all(
      ["sts:AssumeRole", "sts:TagSession"].map((action) =>
        decide({ principal: "pods.eks.amazonaws.com", action, resource: WORKLOAD, context, trust }),
      ),
    );
    // Assess
    expect(decisions).toEqual([expected, expected]);
  });
});

describe("the workload role's S3 policy", () => {
  const policy = fusionS3Policy({ bucket: "shared-work", workDir: "teams/genomics" });
  const ask = (action: string, resource: string, context: Context = {}) =>
    decide({ principal: WORKLOAD, action, resource, context, identity: [policy] });

  it("reaches the tenant's work directory and nothing else of a shared bucket", async () => {
    // Act
    const decisions = {
      ownObject: await ask("s3:GetObject", "arn:aws:s3:::shared-work/teams/genomics/ab/12/.command.sh"),
      ownDelete: await ask("s3:DeleteObject", "arn:aws:s3:::shared-work/teams/genomics/ab/12/out.bam"),
      neighbourObject: await ask("s3:GetObject", "arn:aws:s3:::shared-work/teams/proteomics/cd/34/out.raw"),
      neighbourDelete: await ask("s3:DeleteObject", "arn:aws:s3:::shared-work/teams/proteomics/cd/34/out.raw"),
      prefixSibling: await ask("s3:GetObject", "arn:aws:s3:::shared-work/teams/genomics-old/x"),
      ownListing: await ask("s3:ListBucket", "arn:aws:s3:::shared-work", { "s3:prefix": "teams/genomics/ab/" }),
      neighbourListing: await ask("s3:ListBucket", "arn:aws:s3:::shared-work", { "s3:prefix": "teams/proteomics/" }),
      wholeBucketListing: await ask("s3:ListBucket", "arn:aws:s3:::shared-work"),
    };
    // Assess
    expect(decisions).toEqual({
      ownObject: "Allowed",
      ownDelete: "Allowed",
      neighbourObject: "ImplicitlyDenied",
      neighbourDelete: "ImplicitlyDenied",
      prefixSibling: "ImplicitlyDenied",
      ownListing: "Allowed",
      neighbourListing: "ImplicitlyDenied",
      wholeBucketListing: "ImplicitlyDenied",
    });
  });
});

describe("the tenant-role boundary (the stack's own)", () => {
  const boundary = tenantRoleBoundaryPolicy([CLUSTER_ARN]);
  const everything: PolicyDocument = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] };

  it.each([
    ["create a user", "iam:CreateUser", `arn:aws:iam::${ACCOUNT}:user/backdoor`, "ImplicitlyDenied"],
    ["rewrite a role's trust", "iam:UpdateAssumeRolePolicy", `arn:aws:iam::${ACCOUNT}:role/admin`, "ImplicitlyDenied"],
    ["describe a cluster off the allowlist", "eks:DescribeCluster", `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/finance`, "ImplicitlyDenied"],
    ["start a state machine", "states:StartExecution", `arn:aws:states:eu-west-1:${ACCOUNT}:stateMachine:payroll`, "ImplicitlyDenied"],
    ["describe the allowed cluster", "eks:DescribeCluster", CLUSTER_ARN, "Allowed"],
    ["read an object", "s3:GetObject", "arn:aws:s3:::shared-work/teams/genomics/x", "Allowed"],
  ])("caps a role given every permission: %s", async (_what, action, resource, expected) => {
    // Act
    const decision = await decide({ principal: LAUNCHER, action, resource, identity: [everything], boundary });
    // Assess
    expect(decision).toBe(expected);
  });
});
