/**
 * Contract: each step's role may do its own work and not another step's (#13 point 7, stacks/permissions.ts), against
 * the sandbox (default) or a deployed stack (TARGET=aws). CreateIamResources may create a role marked as the
 * product's, under its path and prefix, with the tenant-role boundary; ResolveCluster (which only describes clusters)
 * may not; nor may CreateIamResources create one outside the product's path. In the sandbox the calls are made as the
 * steps' roles (their Lambdas' sessions); on AWS IAM's policy simulator answers for the deployed step roles named by
 * CONTRACT_STEP_ROLE_ARNS, and the contract is skipped with a message without it. In the sandbox the one role
 * created (`<iamPrefix>-<random>-contract`) is deleted afterwards; on AWS nothing is created.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeleteRoleCommand, type CreateRoleCommandInput } from "@aws-sdk/client-iam";
import { IAM_ROLE_PATH, PRODUCT, TAG_MANAGED_BY } from "../../functions/lib/domain/naming.js";
import { cleanUp, openTarget, type ContractTarget } from "./target.js";

let target: ContractTarget;
/** roles a step was allowed to create, deleted afterwards */
const created: string[] = [];

beforeAll(async () => {
  target = await openTarget();
});

afterAll(async () => {
  await cleanUp(...created.map((RoleName) => async () => target.aws.iam.send(new DeleteRoleCommand({ RoleName }))), async () =>
    target?.close(),
  );
});

/** A role as CreateIamResources makes one: the product's path and prefix, its mark, the tenant-role boundary. */
function productRole(path = IAM_ROLE_PATH): CreateRoleCommandInput {
  const iam = target.productIam!;
  // The run's random part, under the deployment's IAM prefix (what the step roles' policies are scoped to).
  const RoleName = `${iam.iamPrefix}-${target.prefix.slice(target.prefix.lastIndexOf("-") + 1)}-contract`;
  return {
    RoleName,
    Path: path,
    AssumeRolePolicyDocument: JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${target.accountId}:root` }, Action: "sts:AssumeRole" }],
    }),
    PermissionsBoundary: iam.permissionsBoundaryArn,
    Tags: [{ Key: TAG_MANAGED_BY, Value: PRODUCT }],
  };
}

async function createRoleAs(step: string, input: CreateRoleCommandInput) {
  const decision = await target.productIam!.createRoleAs(step, input);
  if (decision === "allowed" && target.name === "sandbox") created.push(input.RoleName!);
  return decision;
}

describe("the step roles' IAM permissions", () => {
  it("ResolveCluster's role may not create a product role (another step's action)", async (context) => {
    if (!target.productIam) context.skip(target.productIamMissing);
    // Act
    const decision = await createRoleAs("ResolveCluster", productRole());
    // Assess
    expect(decision).toBe("denied");
  });

  it("CreateIamResources' role may not create one outside the product's path", async (context) => {
    if (!target.productIam) context.skip(target.productIamMissing);
    // Act
    const decision = await createRoleAs("CreateIamResources", productRole("/"));
    // Assess
    expect(decision).toBe("denied");
  });

  it("CreateIamResources' role may create a marked role under the product's path, with the boundary", async (context) => {
    if (!target.productIam) context.skip(target.productIamMissing);
    // Act
    const decision = await createRoleAs("CreateIamResources", productRole());
    // Assess
    expect(decision).toBe("allowed");
  });
});
