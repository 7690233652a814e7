/**
 * The synth stops on a deploy-time configuration the stack must not be built with: an IAM prefix that would reach
 * the stack's own roles, and every bad variable, named (the SST app synthesized offline, without bundling).
 */
import { describe, expect, it } from "vitest";
import { BASE_ENV, synthesize, useSstTestProject } from "../support/stack-template.js";

useSstTestProject();

describe("an IAM prefix that would reach the stack's own roles", () => {
  it("stops the synth when the prefix begins the stack name", async () => {
    // Act + Assess (stage "test": the stack is test-nf-eks-provisioner-Provisioner)
    await expect(synthesize({ ...BASE_ENV, IAM_PREFIX: "test" }, { bundle: false })).rejects.toThrow(
      /IAM_PREFIX "test": the product may write to role\/test-\*, and this stack's own roles are named test-nf-eks-provisioner-Provisioner-/,
    );
    await expect(synthesize({ ...BASE_ENV, IAM_PREFIX: "Test-nf-eks" }, { bundle: false })).rejects.toThrow(/IAM_PREFIX "Test-nf-eks"/);
    await expect(synthesize({ ...BASE_ENV, IAM_PREFIX: "cdk" }, { bundle: false })).rejects.toThrow(/would cover the cdk-\.\.\. roles/);
  });
});

describe("synth-time validation of the deploy-time configuration", () => {
  it("stops the synth naming every bad variable", async () => {
    // Act
    const synth = synthesize(
      {
        ALLOWED_CLUSTERS: "research,lab*@eu-west-1",
        ALLOWED_ACCOUNT_IDS: "12",
        IAM_PREFIX: "bad prefix!",
        PERMISSIONS_BOUNDARY_ARN: "arn:aws:s3:::boundary",
      },
      { bundle: false },
    );
    // Assess
    await expect(synth).rejects.toThrow(/stage "test" is invalid/);
    await expect(synth).rejects.toThrow(/ALLOWED_CLUSTERS\[0\]\.region/);
    await expect(synth).rejects.toThrow(/ALLOWED_CLUSTERS\[1\]\.name: an EKS cluster name/);
    await expect(synth).rejects.toThrow(/ALLOWED_ACCOUNT_IDS\[0\]: account IDs are 12 digits/);
    await expect(synth).rejects.toThrow(/IAM_PREFIX: iamPrefix is 1-20 characters/);
    await expect(synth).rejects.toThrow(/PERMISSIONS_BOUNDARY_ARN: an IAM policy ARN is needed/);
  });

  it("refuses an empty allowlist and malformed JSON", async () => {
    await expect(synthesize({ ...BASE_ENV, ALLOWED_CLUSTERS: "" }, { bundle: false })).rejects.toThrow(
      /ALLOWED_CLUSTERS: Array must contain at least 1/,
    );
    await expect(synthesize({ ...BASE_ENV, ALLOWED_CLUSTERS: "[{oops" }, { bundle: false })).rejects.toThrow(
      /ALLOWED_CLUSTERS: not a valid list/,
    );
    await expect(synthesize({ ...BASE_ENV, ALLOWED_CLUSTERS: "research@eu-west-1@x" }, { bundle: false })).rejects.toThrow(
      /more than one "@"/,
    );
  });
});
