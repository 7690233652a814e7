import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  fusionS3Policy,
  irsaTrustPolicy,
  issuerHost,
  launcherPermissionsPolicy,
  launcherTrustPolicy,
  oidcProviderArn,
  podIdentityTrustPolicy,
  type PolicyDocument,
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
    const policy = irsaTrustPolicy({ oidcProviderArn: PROVIDER, issuer: ISSUER, namespace: "tower-nf", serviceAccounts: ["tower-launcher-sa", "tower-compute-sa"] });
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
  it("lists the bucket and reads, writes, tags and deletes only its objects", () => {
    // Act
    const policy = fusionS3Policy({ bucket: "genomics-work" });
    // Assess
    expect(policy.Statement).toEqual([
      { Sid: "ListTheWorkBucket", Effect: "Allow", Action: "s3:ListBucket", Resource: "arn:aws:s3:::genomics-work" },
      {
        Sid: "ReadWriteWorkObjects",
        Effect: "Allow",
        Action: ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"],
        Resource: "arn:aws:s3:::genomics-work/*",
      },
    ]);
  });

  it("never allows a write action on a '*' resource or on another bucket, whatever the bucket name", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/), fc.constantFrom("aws", "aws-cn", "aws-us-gov"), (bucket, partition) => {
        // Act
        const policy = fusionS3Policy({ bucket, partition });
        // Assess
        for (const statement of policy.Statement) {
          expect(statement.Effect).toBe("Allow");
          for (const action of asList(statement.Action)) expect(action).toMatch(/^s3:[A-Za-z]+$/);
          for (const resource of asList(statement.Resource)) {
            expect(resource).not.toBe("*");
            expect([`arn:${partition}:s3:::${bucket}`, `arn:${partition}:s3:::${bucket}/*`]).toContain(resource);
          }
        }
        const writes = writeStatements(policy);
        expect(writes.flatMap((s) => asList(s.Resource))).toEqual([`arn:${partition}:s3:::${bucket}/*`]);
      }),
    );
  });
});

describe("launcher policies", () => {
  it("describes only the given clusters; ListClusters (read-only, no resource-level permission) is the only '*'", () => {
    // Act
    const policy = launcherPermissionsPolicy([`arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`]);
    // Assess
    expect(policy.Statement).toEqual([
      { Sid: "DescribeTheCluster", Effect: "Allow", Action: "eks:DescribeCluster", Resource: [`arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`] },
      { Sid: "ListClusters", Effect: "Allow", Action: "eks:ListClusters", Resource: "*" },
    ]);
    expect(writeStatements(policy)).toEqual([]);
  });

  it("lets only the cluster's own account assume the launcher role", () => {
    // Act
    const trust = launcherTrustPolicy(ACCOUNT, "aws-us-gov");
    // Assess
    expect(trust.Statement).toEqual([
      { Sid: "AssumeFromThisAccount", Effect: "Allow", Principal: { AWS: `arn:aws-us-gov:iam::${ACCOUNT}:root` }, Action: "sts:AssumeRole" },
    ]);
  });

  it("lets the EKS Pod Identity agent assume and tag the workload role", () => {
    // Act
    const trust = podIdentityTrustPolicy();
    // Assess
    expect(trust.Statement).toEqual([
      { Sid: "EksPodIdentity", Effect: "Allow", Principal: { Service: "pods.eks.amazonaws.com" }, Action: ["sts:AssumeRole", "sts:TagSession"] },
    ]);
  });
});
