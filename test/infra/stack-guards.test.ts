/**
 * What keeps the stack right without a synth: which IAM prefixes could reach the stack's own or the account's
 * bootstrap roles, how a bad setting is named, and the guards that keep the state machine definition, the step
 * catalog and the step permissions in step. (The synthesized stack: stack-wiring.test.ts, stack-iam-scope.test.ts,
 * stack-config-validation.test.ts.)
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import { describeConfigPath, iamPrefixClash } from "../../stacks/config.js";
import { stepStatements } from "../../stacks/permissions.js";
import { DEFINITION_FILE, readProvisionDefinition } from "../../stacks/Provisioner.js";
import { ACCOUNT, PREFIX } from "../support/stack-template.js";

describe("an IAM prefix that would reach the stack's own roles", () => {
  it("tells apart prefixes that can and cannot reach the stack's or the account's bootstrap roles", () => {
    const stack = "prod-nf-eks-provisioner-Provisioner";
    // CloudFormation names the roles <stack name, maybe shortened>-<logical id>-<suffix>
    for (const prefix of ["prod", "PROD", "prod-nf", "pro", "prod-other", "prod-nf-eks-provisioner-Provisioner"]) {
      expect(iamPrefixClash(prefix, stack), prefix).toMatch(/this stack's own roles/);
    }
    for (const prefix of ["cdk", "CDK-hnb659fds", "aws", "SSTBootstrap"])
      expect(iamPrefixClash(prefix, stack), prefix).toMatch(/would cover/);
    for (const prefix of ["nfeks", "nf-eks", "production", "tenant-roles", "awsome", "cdkx"])
      expect(iamPrefixClash(prefix, stack), prefix).toBeUndefined();
  });
});

describe("synth-time validation of the deploy-time configuration", () => {
  it("names settings by the variable that holds them", () => {
    expect(describeConfigPath("allowedClusters.0.region")).toBe("ALLOWED_CLUSTERS[0].region");
    expect(describeConfigPath("permissionsBoundaryArn")).toBe("PERMISSIONS_BOUNDARY_ARN");
  });
});

describe("guards that keep the stack and the workflow in step", () => {
  function tempRootWith(definition: unknown): string {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "nf-eks-asl-"));
    fs.mkdirSync(path.join(root, "statemachines"));
    fs.writeFileSync(path.join(root, DEFINITION_FILE), JSON.stringify(definition));
    return root;
  }

  it("refuses a definition whose placeholders do not match the step catalog", () => {
    // Prepare
    const resources = STEP_FUNCTIONS.slice(1).map((e) => `\${${e.placeholder}}`);
    const states = Object.fromEntries(
      [...resources, "${NoSuchFunctionArn}"].map((r, i) => [`S${i}`, { Type: "Task", Resource: r, End: true }]),
    );
    const root = tempRootWith({ StartAt: "S0", States: states });
    // Act
    const read = () => readProvisionDefinition(root);
    // Assess
    expect(read).toThrow(/placeholders with no step function: NoSuchFunctionArn/);
    expect(read).toThrow(new RegExp(`never calls: ${STEP_FUNCTIONS[0].placeholder}`));
  });

  it("refuses to give a step it does not know any permissions", () => {
    // Prepare
    const unknown = { state: "Mystery", placeholder: "MysteryFunctionArn", module: "mystery", handler: "apply", description: "?" };
    const scope = {
      partition: "aws",
      account: ACCOUNT,
      config: { allowedClusters: [{ name: "a", region: "eu-west-1" }], allowedAccountIds: [], iamPrefix: PREFIX, eventBusName: "b" },
    };
    // Act + Assess
    expect(() => stepStatements(unknown, scope, "arn:aws:events:eu-west-1:123456789012:event-bus/b")).toThrow(
      /no permissions for step mystery\.apply/,
    );
  });
});
