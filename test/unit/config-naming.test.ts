import { describe, expect, it } from "vitest";
import { configToEnv, loadDeploymentConfig } from "../../functions/lib/config.js";
import { executionMark, iamRoleName, isOwnedBy, ownershipLabels, wasCreatedBy } from "../../functions/lib/naming.js";
import { parseArn, roleArnOfAssumedRole, validateBucketName } from "../../functions/lib/arn.js";

describe("deployment config", () => {
  it("reads name@region lists and round-trips through the environment", () => {
    // Prepare
    const env = { ALLOWED_CLUSTERS: "research@eu-west-1, prod@us-east-1", ALLOWED_ACCOUNT_IDS: "111122223333", IAM_PREFIX: "nfeks" };
    // Act
    const config = loadDeploymentConfig(env);
    // Assess
    expect(config.allowedClusters).toEqual([
      { name: "research", region: "eu-west-1" },
      { name: "prod", region: "us-east-1" },
    ]);
    expect(loadDeploymentConfig(configToEnv(config))).toEqual(config);
  });

  it("fails loudly, naming the bad settings", () => {
    expect(() => loadDeploymentConfig({ ALLOWED_CLUSTERS: "", ALLOWED_ACCOUNT_IDS: "12", IAM_PREFIX: "bad prefix!" })).toThrow(
      /allowedClusters.*allowedAccountIds.*iamPrefix/,
    );
  });
});

describe("ownership marks", () => {
  it("adopts only objects marked for the same tenant and deletes only those this execution created", () => {
    // Prepare
    const labels = ownershipLabels("genomics", "genomics-run-1");
    // Assess
    expect(isOwnedBy(labels, "genomics")).toBe(true);
    expect(isOwnedBy(labels, "proteomics")).toBe(false);
    expect(isOwnedBy({ "app.kubernetes.io/managed-by": "helm" }, "genomics")).toBe(false);
    expect(wasCreatedBy(labels, "genomics-run-1")).toBe(true);
    expect(wasCreatedBy(labels, "genomics-run-2")).toBe(false);
    expect(executionMark("x".repeat(80))).toMatch(/^[0-9a-f]{16}$/);
  });

  it("keeps IAM role names within 64 characters and distinct per tenant", () => {
    const a = iamRoleName("nfeks-production", "a".repeat(40), "launcher");
    const b = iamRoleName("nfeks-production", "a".repeat(39) + "b", "launcher");
    expect(a.length).toBeLessThanOrEqual(64);
    expect(a).not.toBe(b);
    expect(iamRoleName("nfeks", "genomics", "workload")).toBe("nfeks-genomics-workload");
  });
});

describe("ARNs and bucket names", () => {
  it("parses ARNs with colons and slashes in the resource", () => {
    expect(parseArn("arn:aws:iam::111122223333:role/path/name")).toEqual({
      partition: "aws",
      service: "iam",
      region: "",
      accountId: "111122223333",
      resource: "role/path/name",
    });
    expect(parseArn("arn:aws:eks:eu-west-1:111122223333:cluster/research")?.resource).toBe("cluster/research");
    expect(parseArn("arn:bogus:iam::1:role/x")).toBeUndefined();
    expect(parseArn("arn:aws:iam")).toBeUndefined();
  });

  it("maps an assumed-role session back to its role", () => {
    expect(roleArnOfAssumedRole("arn:aws:sts::111122223333:assumed-role/launcher/session-1")).toBe("arn:aws:iam::111122223333:role/launcher");
    expect(roleArnOfAssumedRole("arn:aws:iam::111122223333:user/alice")).toBe("arn:aws:iam::111122223333:user/alice");
  });

  it("follows the S3 bucket naming rules", () => {
    expect(validateBucketName("nextflow-work.eu")).toBeUndefined();
    expect(validateBucketName("sthree-x")).toMatch(/reserved prefix/);
    expect(validateBucketName("x--ol-s3")).toMatch(/reserved suffix/);
  });
});
