/**
 * Contract: each step's role may do its own work and not another step's (#13 point 7, stacks/permissions.ts), against
 * the sandbox (default) or a deployed stack (TARGET=aws). CreateIamResources may create a role marked as the
 * product's, under its path and prefix, with the tenant-role boundary; ResolveCluster (which only describes clusters)
 * may not; nor may CreateIamResources create one outside the product's path. A create that carries tags is also
 * authorized as iam:TagRole (tag-on-create), which allows only the product's tag keys. The shared KubeSteps role may
 * read the allowlisted cluster's access entries, and neither create a role nor describe the cluster (ResolveCluster's
 * call: the Kubernetes steps take the cluster from `$.cluster`). Report may put events on the product's bus and no
 * other. In the sandbox the calls are made as the steps' roles (their Lambdas' sessions); on AWS IAM's policy
 * simulator answers for the deployed step roles named by CONTRACT_STEP_ROLE_ARNS (keys CreateIamResources,
 * ResolveCluster, KubeSteps, Report), and a contract is skipped with a message without its role. In the sandbox the
 * roles created (`<iamPrefix>-<random>-contract…`) are deleted afterwards and the probe events stay on the emulated
 * bus; on AWS nothing is created.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeleteRoleCommand, type CreateRoleCommandInput } from "@aws-sdk/client-iam";
import { IAM_ROLE_PATH, PRODUCT, TAG_MANAGED_BY } from "../../functions/lib/domain/naming.js";
import { DescribeClusterCommand, ListAccessEntriesCommand } from "@aws-sdk/client-eks";
import { PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { cleanUp, EVENT_BUS_NAME_ENV, openTarget, type ContractTarget, type StepCall } from "./target.js";

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
function productRole(path = IAM_ROLE_PATH, nameSuffix = ""): CreateRoleCommandInput {
  const iam = target.productIam!;
  // The run's random part, under the deployment's IAM prefix (what the step roles' policies are scoped to).
  const RoleName = `${iam.iamPrefix}-${target.prefix.slice(target.prefix.lastIndexOf("-") + 1)}-contract${nameSuffix}`;
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

/** Why a contract about `step`'s role cannot run on this target (no role to ask about), else undefined. */
function missing(step: string): string | undefined {
  return target.productIam ? target.productIam.stepRoleMissing(step) : target.productIamMissing;
}

const clusterArn = () => `arn:aws:eks:${target.cluster.region}:${target.accountId}:cluster/${target.cluster.name}`;
const busArn = (name: string) => `arn:aws:events:${target.cluster.region}:${target.accountId}:event-bus/${name}`;

/** One probe event on `bus` (a detail type no rule of the product listens to). */
function putProbeEvent(bus: string): StepCall {
  return {
    authorizes: [{ action: "events:PutEvents", resource: busArn(bus) }],
    make: async ({ events }) => {
      const entry = { EventBusName: bus, Source: "nf-eks-provisioner.contract", DetailType: "ContractProbe", Detail: "{}" };
      const answer = await events.send(new PutEventsCommand({ Entries: [entry] }));
      const failed = answer.Entries?.find((e) => e.ErrorCode);
      if (failed) throw Object.assign(new Error(failed.ErrorMessage ?? failed.ErrorCode), { name: failed.ErrorCode });
    },
  };
}

describe("tag-on-create: a CreateRole with tags is also authorized as iam:TagRole", () => {
  it("CreateIamResources' role may not create a marked role that carries a tag key other than the product's", async (context) => {
    const skip = missing("CreateIamResources");
    if (skip) context.skip(skip);
    // Prepare: CreateRole's own conditions (the mark, the boundary, the path) hold; only TagRole's tag keys do not
    const input = productRole(IAM_ROLE_PATH, "-tags");
    input.Tags = [...(input.Tags ?? []), { Key: "cost-centre", Value: "42" }];
    // Act
    const decision = await createRoleAs("CreateIamResources", input);
    // Assess
    expect(decision).toBe("denied");
  });

  it("without iam:TagRole, CreateIamResources' role may not create the marked role it may create with it (sandbox)", async (context) => {
    const skip = missing("CreateIamResources") ?? (target.productIam?.withoutAction ? undefined : "changes a step role: sandbox only");
    if (skip) context.skip(skip);
    // Act
    const decision = await target.productIam!.withoutAction!("CreateIamResources", "iam:TagRole", () =>
      createRoleAs("CreateIamResources", productRole(IAM_ROLE_PATH, "-untagrole")),
    );
    // Assess
    expect(decision).toBe("denied");
  });
});

describe("the shared KubeSteps role", () => {
  it("may read the access entries of an allowlisted cluster (the cluster-access steps' read)", async (context) => {
    const skip = missing("KubeSteps");
    if (skip) context.skip(skip);
    // Act
    const decision = await target.productIam!.callAs("KubeSteps", {
      authorizes: [{ action: "eks:ListAccessEntries", resource: clusterArn() }],
      make: ({ eks }) => eks.send(new ListAccessEntriesCommand({ clusterName: target.cluster.name })),
    });
    // Assess
    expect(decision).toBe("allowed");
  });

  it("may not create a product role (CreateIamResources' action)", async (context) => {
    const skip = missing("KubeSteps");
    if (skip) context.skip(skip);
    // Act
    const decision = await createRoleAs("KubeSteps", productRole(IAM_ROLE_PATH, "-kube"));
    // Assess
    expect(decision).toBe("denied");
  });

  it("may not describe the cluster, which ResolveCluster's role may (the Kubernetes steps take it from $.cluster)", async (context) => {
    const skip = missing("KubeSteps") ?? missing("ResolveCluster");
    if (skip) context.skip(skip);
    // Prepare
    const describe: StepCall = {
      authorizes: [{ action: "eks:DescribeCluster", resource: clusterArn() }],
      make: ({ eks }) => eks.send(new DescribeClusterCommand({ name: target.cluster.name })),
    };
    // Act
    const decisions = [await target.productIam!.callAs("KubeSteps", describe), await target.productIam!.callAs("ResolveCluster", describe)];
    // Assess
    expect(decisions).toEqual(["denied", "allowed"]);
  });
});

describe("Report's role", () => {
  it("may put events on the product's bus", async (context) => {
    const skip = missing("Report") ?? (target.productIam?.eventBusName ? undefined : `needs ${EVENT_BUS_NAME_ENV} (output EventBusName)`);
    if (skip) context.skip(skip);
    // Act
    const decision = await target.productIam!.callAs("Report", putProbeEvent(target.productIam!.eventBusName));
    // Assess
    expect(decision).toBe("allowed");
  });

  it("may not put events on another bus", async (context) => {
    const skip = missing("Report");
    if (skip) context.skip(skip);
    // Act
    const decision = await target.productIam!.callAs("Report", putProbeEvent(`${target.prefix}-other-bus`));
    // Assess
    expect(decision).toBe("denied");
  });
});
