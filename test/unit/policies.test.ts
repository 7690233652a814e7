import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  accountRootArn,
  fusionS3Policy,
  irsaTrustPolicy,
  issuerHost,
  launcherPermissionsPolicy,
  launcherTrustPolicy,
  oidcProviderArn,
  podIdentityTrustPolicy,
  type PolicyDocument,
  tenantRoleBoundaryPolicy,
} from "../../functions/lib/domain/policies.js";

const ACCOUNT = "111122223333";
const ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const HOST = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const PROVIDER = `arn:aws:iam::${ACCOUNT}:oidc-provider/${HOST}`;

const asList = (value: string | string[] | undefined) => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** Every statement that allows an action not starting with one of the read-only verbs. */
function writeStatements(doc: PolicyDocument) {
  return doc.Statement.filter((s) => asList(s.Action).some((a) => !/:(Get|List|Describe)/.test(a)));
}

describe("OIDC provider and issuer", () => {
  it("derives the IAM OIDC provider ARN the way IAM registers it", () => {
    // Act
    const arn = oidcProviderArn(ACCOUNT, ISSUER);
    // Assess
    expect(arn).toBe(PROVIDER);
    expect(issuerHost(`${ISSUER}/`)).toBe(HOST);
    expect(oidcProviderArn(ACCOUNT, HOST, "aws-cn")).toBe(`arn:aws-cn:iam::${ACCOUNT}:oidc-provider/${HOST}`);
  });
});

describe("IRSA trust policy (Seqera Fusion runbook)", () => {
  it("trusts only the named service accounts, with StringEquals on :sub and :aud", () => {
    // Act
    const policy = irsaTrustPolicy({
      oidcProviderArn: PROVIDER,
      issuer: ISSUER,
      namespace: "tower-nf",
      serviceAccounts: ["tower-launcher-sa", "tower-compute-sa"],
    });
    // Assess
    expect(policy).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "ServiceAccountsOfTheTenant",
          Effect: "Allow",
          Principal: { Federated: PROVIDER },
          Action: "sts:AssumeRoleWithWebIdentity",
          Condition: {
            StringEquals: {
              [`${HOST}:sub`]: ["system:serviceaccount:tower-nf:tower-launcher-sa", "system:serviceaccount:tower-nf:tower-compute-sa"],
              [`${HOST}:aud`]: "sts.amazonaws.com",
            },
          },
        },
      ],
    });
  });

  it("uses a single string for one service account and never a wildcard operator", () => {
    // Act
    const policy = irsaTrustPolicy({ oidcProviderArn: PROVIDER, issuer: HOST, namespace: "lab", serviceAccounts: ["head"] });
    // Assess
    const condition = policy.Statement[0]!.Condition!;
    expect(Object.keys(condition)).toEqual(["StringEquals"]);
    expect(condition.StringEquals![`${HOST}:sub`]).toBe("system:serviceaccount:lab:head");
    expect(JSON.stringify(policy)).not.toContain("*");
    expect(JSON.stringify(policy)).not.toContain("https://");
  });
});

describe("Fusion S3 policy", () => {
  it("lists and reads, writes, tags and deletes only inside the request's work directory", () => {
    // Act
    const policy = fusionS3Policy({ bucket: "genomics-work", workDir: "work" });
    // Assess: issue #9 confined it from the whole bucket to the work directory
    expect(policy.Statement).toEqual([
      {
        Sid: "ListTheWorkDirectory",
        Effect: "Allow",
        Action: "s3:ListBucket",
        Resource: "arn:aws:s3:::genomics-work",
        Condition: { StringLike: { "s3:prefix": ["work/", "work/*"] } },
      },
      {
        Sid: "ReadWriteWorkObjects",
        Effect: "Allow",
        Action: ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"],
        Resource: "arn:aws:s3:::genomics-work/work/*",
      },
    ]);
  });

  it("never allows an action on a '*' resource, on another bucket or outside the work directory, whatever the names", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/),
        fc.stringMatching(/^[a-z0-9_-]{1,10}(\/[a-z0-9_-]{1,10}){0,3}\/?$/),
        fc.constantFrom("aws", "aws-cn", "aws-us-gov"),
        (bucket, workDir, partition) => {
          // Act
          const policy = fusionS3Policy({ bucket, workDir, partition });
          // Assess
          const dir = workDir.replace(/\/$/, "");
          for (const statement of policy.Statement) {
            expect(statement.Effect).toBe("Allow");
            for (const action of asList(statement.Action)) expect(action).toMatch(/^s3:[A-Za-z]+$/);
            for (const resource of asList(statement.Resource)) {
              expect(resource).not.toBe("*");
              expect([`arn:${partition}:s3:::${bucket}`, `arn:${partition}:s3:::${bucket}/${dir}/*`]).toContain(resource);
            }
          }
          const list = policy.Statement.find((s) => s.Action === "s3:ListBucket")!;
          expect(list.Condition).toEqual({ StringLike: { "s3:prefix": [`${dir}/`, `${dir}/*`] } });
          expect(writeStatements(policy).flatMap((s) => asList(s.Resource))).toEqual([`arn:${partition}:s3:::${bucket}/${dir}/*`]);
        },
      ),
    );
  });
});

describe("launcher policies", () => {
  it("describes only the given clusters; ListClusters (read-only, no resource-level permission) is the only '*'", () => {
    // Act
    const policy = launcherPermissionsPolicy([`arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`]);
    // Assess
    expect(policy.Statement).toEqual([
      {
        Sid: "DescribeTheCluster",
        Effect: "Allow",
        Action: "eks:DescribeCluster",
        Resource: [`arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`],
      },
      { Sid: "ListClusters", Effect: "Allow", Action: "eks:ListClusters", Resource: "*" },
    ]);
    expect(writeStatements(policy)).toEqual([]);
  });

  it("lets only the named principals assume the launcher role, with the external ID when given", () => {
    // Act
    const one = launcherTrustPolicy([`arn:aws:iam::${ACCOUNT}:role/seqera`]);
    const two = launcherTrustPolicy([`arn:aws:iam::${ACCOUNT}:role/seqera`, "arn:aws:iam::444455556666:user/ci"], "tenant-x");
    // Assess
    expect(one.Statement).toEqual([
      {
        Sid: "AssumeByTheNamedPrincipals",
        Effect: "Allow",
        Principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/seqera` },
        Action: "sts:AssumeRole",
      },
    ]);
    expect(two.Statement[0]).toMatchObject({
      Principal: { AWS: [`arn:aws:iam::${ACCOUNT}:role/seqera`, "arn:aws:iam::444455556666:user/ci"] },
      Condition: { StringEquals: { "sts:ExternalId": "tenant-x" } },
    });
  });

  it("trusts the account root only when the caller asks for it (trustAccount)", () => {
    // Act
    const trust = launcherTrustPolicy([accountRootArn(ACCOUNT, "aws-us-gov")]);
    // Assess
    expect(trust.Statement[0]!.Principal).toEqual({ AWS: `arn:aws-us-gov:iam::${ACCOUNT}:root` });
  });

  it("lets the EKS Pod Identity agent assume and tag the workload role only for the tenant's service accounts, namespace and cluster", () => {
    // Act
    const cluster = `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`;
    const trust = podIdentityTrustPolicy({
      clusterArn: cluster,
      namespace: "tower-nf",
      serviceAccounts: ["tower-launcher-sa", "tower-compute-sa"],
    });
    const single = podIdentityTrustPolicy({ clusterArn: cluster, namespace: "lab", serviceAccounts: ["head"] });
    // Assess: issue #9 conditioned it on the session tags EKS sets, in the statement that allows sts:TagSession
    expect(trust.Statement).toEqual([
      {
        Sid: "EksPodIdentityForTheTenant",
        Effect: "Allow",
        Principal: { Service: "pods.eks.amazonaws.com" },
        Action: ["sts:AssumeRole", "sts:TagSession"],
        Condition: {
          StringEquals: {
            "aws:RequestTag/eks-cluster-arn": cluster,
            "aws:RequestTag/kubernetes-namespace": "tower-nf",
            "aws:RequestTag/kubernetes-service-account": ["tower-launcher-sa", "tower-compute-sa"],
          },
        },
      },
    ]);
    expect(single.Statement[0]!.Condition!.StringEquals!["aws:RequestTag/kubernetes-service-account"]).toBe("head");
  });
});

describe("the tenant-role permissions boundary (the stack's own)", () => {
  it("allows at most what a launcher or workload role can need: describe the allowed clusters, list them, S3 list and object actions", () => {
    // Act
    const clusters = [`arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`, `arn:aws:eks:us-east-1:${ACCOUNT}:cluster/genomics`];
    const boundary = tenantRoleBoundaryPolicy(clusters);
    // Assess
    const actions = boundary.Statement.flatMap((s) => asList(s.Action)).sort();
    expect(actions).toEqual([
      "eks:DescribeCluster",
      "eks:ListClusters",
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:ListBucket",
      "s3:PutObject",
      "s3:PutObjectTagging",
    ]);
    expect(boundary.Statement.every((s) => s.Effect === "Allow")).toBe(true);
    expect(boundary.Statement.find((s) => s.Action === "eks:DescribeCluster")!.Resource).toEqual(clusters);
    // Every action of the tenant roles' own policies is within it.
    for (const policy of [launcherPermissionsPolicy(clusters), fusionS3Policy({ bucket: "b", workDir: "w" })]) {
      for (const action of policy.Statement.flatMap((s) => asList(s.Action))) expect(actions).toContain(action);
    }
  });
});
