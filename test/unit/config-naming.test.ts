import { describe, expect, it } from "vitest";
import { configToEnv, loadDeploymentConfig } from "../../functions/lib/domain/deploy-config.js";
import {
  ExecutionStartTimeMissing,
  iamPolicyName,
  iamRoleName,
  isOwnedBy,
  ownershipLabels,
  runMark,
  wasCreatedBy,
} from "../../functions/lib/domain/naming.js";
import { parseArn, roleArnOfAssumedRole, validateBucketName } from "../../functions/lib/domain/arn.js";
import { markOf } from "../support/fixtures.js";

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
    const labels = ownershipLabels("genomics", markOf("genomics-run-1"));
    // Assess
    expect(isOwnedBy(labels, "genomics")).toBe(true);
    expect(isOwnedBy(labels, "proteomics")).toBe(false);
    expect(isOwnedBy({ "app.kubernetes.io/managed-by": "helm" }, "genomics")).toBe(false);
    expect(wasCreatedBy(labels, markOf("genomics-run-1"))).toBe(true);
    expect(wasCreatedBy(labels, markOf("genomics-run-2"))).toBe(false);
    expect(markOf("x".repeat(80))).toMatch(/^[0-9a-f]{16}$/);
  });

  it("marks a run by its name and start time: a name Step Functions has forgotten and a client reuses makes another mark", () => {
    // Prepare: a keyed execution name (`<tenant>_<key>`) run now, and again after Step Functions forgot it
    const name = "genomics_nightly";
    // Act
    const first = runMark({ name, startTime: "2025-01-06T09:00:00.000Z" });
    const again = runMark({ name, startTime: "2025-01-06T09:00:00.000Z" });
    const reused = runMark({ name, startTime: "2025-04-07T09:00:00.000Z" });
    // Assess
    expect(again).toBe(first);
    expect(reused).not.toBe(first);
    expect(first).toMatch(/^[0-9a-f]{16}$/);
    expect(wasCreatedBy(ownershipLabels("genomics", first), reused)).toBe(false);
  });

  it("makes no mark without a start time, rather than one a later run of the same name would share", () => {
    // Act
    const attempt = () => runMark({ name: "genomics_nightly", startTime: undefined as unknown as string });
    // Assess
    expect(attempt).toThrow(ExecutionStartTimeMissing);
    expect(attempt).toThrow(/genomics_nightly.*\$\$\.Execution\.StartTime/);
  });

  it("names IAM roles and inline policies per tenant and cluster", () => {
    expect(iamRoleName("nfeks", "genomics", "research", "workload")).toBe("nfeks-genomics.research-workload");
    expect(iamRoleName("nfeks", "genomics", "research", "launcher")).not.toBe(iamRoleName("nfeks", "genomics", "other", "launcher"));
    expect(iamPolicyName("nfeks", "genomics", "research", "fusion-s3")).toBe("nfeks-genomics.research-fusion-s3");
    // Hyphens are in both tenant and cluster names: the "." keeps these two apart.
    expect(iamRoleName("nfeks", "genomics", "prod-eu", "launcher")).not.toBe(iamRoleName("nfeks", "genomics-prod", "eu", "launcher"));
  });

  it("keeps IAM role names within 64 characters and distinct per tenant and cluster, however long both are", () => {
    // Prepare: the longest prefix (20), tenant (40) and cluster name (100)
    const prefix = "p".repeat(20);
    const tenant = "a".repeat(40);
    const cluster = "c".repeat(100);
    // Act
    const names = [
      iamRoleName(prefix, tenant, cluster, "launcher"),
      iamRoleName(prefix, `${"a".repeat(39)}b`, cluster, "launcher"),
      iamRoleName(prefix, tenant, `${"c".repeat(99)}d`, "launcher"),
      iamRoleName(prefix, tenant, cluster, "workload"),
      iamRoleName("nfeks", "genomics", `research-${"x".repeat(60)}`, "launcher"),
    ];
    // Assess
    for (const name of names) {
      expect(name.length).toBeLessThanOrEqual(64);
      expect(name).toMatch(/^[\w+=,.@-]+-(launcher|workload)$/);
    }
    expect(new Set(names).size).toBe(names.length);
    expect(names[4]).toMatch(/^nfeks-genomics\.research-x+-[0-9a-f]{8}-launcher$/);
    expect(iamPolicyName(prefix, tenant, cluster, "fusion-s3").length).toBeLessThanOrEqual(128);
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
    expect(roleArnOfAssumedRole("arn:aws:sts::111122223333:assumed-role/launcher/session-1")).toBe(
      "arn:aws:iam::111122223333:role/launcher",
    );
    expect(roleArnOfAssumedRole("arn:aws:iam::111122223333:user/alice")).toBe("arn:aws:iam::111122223333:user/alice");
  });

  it("follows the S3 bucket naming rules", () => {
    expect(validateBucketName("nextflow-work.eu")).toBeUndefined();
    expect(validateBucketName("sthree-x")).toMatch(/reserved prefix/);
    expect(validateBucketName("x--ol-s3")).toMatch(/reserved suffix/);
  });
});
