/**
 * What the synthesized stack's IAM allows and requires, offline (SST app synthesized as `sst deploy` does it, without
 * bundling: the IAM resources are the same as the bundled synth's): no write on "*" nor wildcard actions, writes
 * scoped to the product's path, prefix and allowlisted clusters, the boundary each role write must carry (the stack's
 * own, or the operator's) and the ownership mark IAM and EKS writes need. Each Lambda's actions against its code:
 * stack-wiring.test.ts. The synth and the template readers: test/support/stack-template.ts.
 */
import type { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { OWNERSHIP_TAG_KEYS, PRODUCT } from "../../functions/lib/domain/naming.js";
import { tenantRoleBoundaryPolicy } from "../../functions/lib/domain/policies.js";
import { REQUEST_MARK_KEY as REQUEST_MARK, RESOURCE_MARK_KEY as RESOURCE_MARK } from "../../stacks/permissions.js";
import {
  ACCOUNT,
  ALLOWED,
  allStatements,
  asList,
  BASE_ENV,
  BOUNDARY,
  flatten,
  isReadOnly,
  type Json,
  PREFIX,
  resourcesOf,
  synthesize,
  useSstTestProject,
} from "../support/stack-template.js";

/**
 * Actions AWS only accepts with `Resource: "*"` (no resource-level permissions): X-Ray segments from
 * the traced Lambdas and state machine, and the CloudWatch Logs vended-delivery calls Step Functions
 * logging needs. Nothing the product does to IAM, EKS, Step Functions or EventBridge is among them.
 */
const TELEMETRY_ONLY_ON_STAR = new Set([
  "xray:PutTraceSegments",
  "xray:PutTelemetryRecords",
  "logs:CreateLogDelivery",
  "logs:UpdateLogDelivery",
  "logs:DeleteLogDelivery",
  "logs:PutResourcePolicy",
]);

/**
 * The writes that can change what a product role may do require the role to carry the one tenant-role boundary
 * (IAM's `iam:PermissionsBoundary` key; CreateRole / PutRolePermissionsBoundary: the boundary set): the operator's,
 * or the stack's own when the operator names none.
 */
const BOUNDARY_GUARDED = [
  "iam:CreateRole",
  "iam:PutRolePermissionsBoundary",
  "iam:PutRolePolicy",
  "iam:DeleteRolePolicy",
  "iam:DetachRolePolicy",
];

/** IAM does not supply `iam:PermissionsBoundary` for these: a boundary condition on them would deny every call. */
const BOUNDARY_KEY_UNSUPPORTED = ["iam:UpdateAssumeRolePolicy", "iam:DeleteRole", "iam:PassRole", "iam:TagRole"];

/** Where every role the product creates lives: its own IAM path, its prefix. */
const PRODUCT_ROLES = `arn:aws:iam::${ACCOUNT}:role/nf-eks-provisioner/${PREFIX}-*`;

useSstTestProject();

/** Allow statements (the stack's one Deny, on removing a boundary, is checked on its own). */
const allows = ({ statement }: { statement: { Effect: string } }) => statement.Effect === "Allow";

/**
 * The boundary-bearing writes (BOUNDARY_GUARDED) each require the one boundary (`expectBoundary` checks its value)
 * and the product's mark, on apply and compensate alike; nothing else asks for a boundary; the role writes IAM gives
 * no boundary key for are granted on the product's path and mark (PassRole: path and service), TagRole only with the
 * product's tag keys.
 */
function expectBoundaryGuards(template: Template, expectBoundary: (value: Json) => void): void {
  const statements = allStatements(template)
    .filter(allows)
    .map(({ statement }) => statement);
  const guarded = statements.filter((s) => asList(s.Action).some((a) => BOUNDARY_GUARDED.includes(a)));
  expect(new Set(guarded.flatMap((s) => asList(s.Action)))).toEqual(new Set(BOUNDARY_GUARDED));
  for (const statement of guarded) {
    expect(
      asList(statement.Action).every((a) => BOUNDARY_GUARDED.includes(a)),
      asList(statement.Action).join(","),
    ).toBe(true);
    expectBoundary(statement.Condition?.StringEquals?.["iam:PermissionsBoundary"]);
    const mark = asList(statement.Action).includes("iam:CreateRole") ? REQUEST_MARK : RESOURCE_MARK;
    expect(statement.Condition?.StringEquals?.[mark]).toBe(PRODUCT);
    expect(asList(statement.Resource).map(flatten)).toEqual([PRODUCT_ROLES]);
  }
  // ...and nothing else asks for it (TagRole, DeleteRole, reads and EKS calls have no such key).
  const others = statements.filter((s) => !guarded.includes(s));
  for (const statement of others) expect(statement.Condition?.StringEquals?.["iam:PermissionsBoundary"]).toBeUndefined();
  // The actions IAM supplies no boundary key for: the product's path guards them, with the mark (PassRole: the service).
  for (const action of BOUNDARY_KEY_UNSUPPORTED) {
    const granting = others.filter((s) => asList(s.Action).includes(action));
    expect(granting.length, action).toBeGreaterThan(0);
    for (const statement of granting) {
      expect(asList(statement.Resource).map(flatten), action).toEqual([PRODUCT_ROLES]);
      if (action === "iam:PassRole") continue;
      const mark = action === "iam:TagRole" ? REQUEST_MARK : RESOURCE_MARK;
      expect(statement.Condition?.StringEquals?.[mark], action).toBe(PRODUCT);
      if (action === "iam:TagRole")
        expect(statement.Condition?.["ForAllValues:StringEquals"]).toEqual({ "aws:TagKeys": [...OWNERSHIP_TAG_KEYS] });
    }
  }
}

// ---------------------------------------------------------------- the stack as deployed

describe("the Provisioner stack (allowlist of two clusters, no permissions boundary)", () => {
  let template: Template;

  beforeAll(async () => {
    template = await synthesize(BASE_ENV, { bundle: false });
  }, 120_000);

  it("grants no write action on Resource '*' and no wildcard actions; denies removing a boundary", () => {
    // Prepare
    const statements = allStatements(template);
    const denials = statements.filter((found) => !allows(found));
    // Assess: the one Deny (issue #9), on both IAM Lambdas
    expect(denials.map(({ statement }) => [statement.Action, statement.Resource])).toEqual([
      ["iam:DeleteRolePermissionsBoundary", "*"],
      ["iam:DeleteRolePermissionsBoundary", "*"],
    ]);
    expect(denials.map(({ policy }) => policy.replace(/ServiceRoleDefaultPolicy.*$/, "")).sort()).toEqual([
      "CreateIamResourcesFunction",
      "UndoIamResourcesFunction",
    ]);
    expect(statements.length).toBeGreaterThan(10);
    for (const { policy, statement } of statements.filter(allows)) {
      expect(statement.Effect).toBe("Allow");
      for (const action of asList(statement.Action)) {
        expect(action, `${policy}: wildcard action`).not.toContain("*");
        const onStar = asList(statement.Resource).some((r) => r === "*");
        if (onStar && !isReadOnly(action)) expect(TELEMETRY_ONLY_ON_STAR.has(action), `${policy}: ${action} on "*"`).toBe(true);
      }
    }
  });

  it("scopes IAM writes to the product's path and prefix, PassRole to Pod Identity, EKS to the allowlisted clusters", () => {
    // Prepare
    const statements = allStatements(template).filter(allows);
    // Issue #9: under the product's own IAM path (before: role/<prefix>-*, which a pre-existing role could match)
    const prefixedRoles = PRODUCT_ROLES;
    const eksResource = new RegExp(
      `^arn:aws:eks:(${ALLOWED.map((c) => `${c.region}:${ACCOUNT}:(cluster/${c.name}|access-entry/${c.name}/\\*|podidentityassociation/${c.name}/\\*)`).join("|")})$`,
    );
    // Assess
    for (const { policy, statement } of statements) {
      const actions = asList(statement.Action);
      const resources = asList(statement.Resource).map(flatten);
      if (actions.some((a) => a.startsWith("iam:") && !isReadOnly(a))) expect(resources, policy).toEqual([prefixedRoles]);
      if (actions.includes("iam:PassRole")) {
        // IAM does not evaluate aws:ResourceTag for PassRole: only the service may be conditioned.
        expect(statement.Condition).toEqual({ StringEquals: { "iam:PassedToService": "pods.eks.amazonaws.com" } });
        expect(policy).toMatch(/^(CreateIamResourcesFunction|UndoIamResourcesFunction)/);
      }
      if (actions.some((a) => a.startsWith("eks:"))) for (const r of resources) expect(r, policy).toMatch(eksResource);
      if (actions.includes("states:ListExecutions")) expect(resources).toEqual([expect.stringMatching(/^<ProvisionStateMachine/)]);
      if (actions.includes("states:StartExecution")) {
        // The stopped-run handler starts the compensation state machine only; the teardown's entries the deprovision one (#15); every other entry, the provision one.
        const machine = policy.startsWith("ExecutionStoppedFunction")
          ? /^<CompensateStoppedStateMachine/
          : /^<(Provision|Deprovision)StateMachine/;
        expect(resources, policy).toEqual([expect.stringMatching(machine)]);
      }
      if (actions.some((a) => a.startsWith("states:Describe") || a.startsWith("states:GetExecution"))) {
        const executions = (machine: string) => `arn:aws:states:eu-west-1:${ACCOUNT}:execution:test-nf-eks-provisioner-${machine}:*`;
        expect([[executions("provision")], [executions("provision"), executions("deprovision")]]).toContainEqual(resources);
      }
      if (actions.includes("events:PutEvents")) expect(resources).toEqual([expect.stringMatching(/^<BusEventBus.*\.Arn>$/)]);
    }
    // No operator boundary: every statement that asks for one asks for the stack's own.
    const boundaries = statements.flatMap(({ statement }) => {
      const value = statement.Condition?.StringEquals?.["iam:PermissionsBoundary"];
      return value === undefined ? [] : [flatten(value)];
    });
    expect(boundaries.length).toBeGreaterThan(2);
    for (const boundary of boundaries) expect(boundary).toMatch(/^<TenantRoleBoundary[A-Z0-9]+>$/);
  });

  it("creates the tenant-role boundary: describe the allowed clusters, list them, S3 list and object actions; nothing else", () => {
    // Prepare
    const policies = resourcesOf(template, "AWS::IAM::ManagedPolicy");
    const outputs = template.toJSON().Outputs as Record<string, { Value: Json }>;
    // Assess
    expect(policies).toHaveLength(1);
    const [[id, props]] = policies;
    expect(id).toMatch(/^TenantRoleBoundary/);
    const clusters = ALLOWED.map((c) => `arn:aws:eks:${c.region}:${ACCOUNT}:cluster/${c.name}`);
    const document = JSON.parse(JSON.stringify(props.PolicyDocument, (_key, value) => (value?.["Fn::Join"] ? flatten(value) : value)));
    expect(document).toEqual(tenantRoleBoundaryPolicy(clusters));
    expect(props.Roles ?? props.Users ?? props.Groups).toBeUndefined();
    expect(flatten(outputs.TenantRoleBoundaryArn.Value)).toBe(`<${id}>`);
  });

  it("guards every boundary-bearing write with the stack's boundary, and the other role writes with the path", () => {
    // Assess
    expectBoundaryGuards(template, (value) => expect(flatten(value)).toMatch(/^<TenantRoleBoundary[A-Z0-9]+>$/));
  });

  it("marks every IAM and EKS write as the product's: creates and tagging carry the mark, the rest need it on the resource", () => {
    // Prepare
    // PassRole aside: IAM evaluates no resource tags for it, so it is scoped by name and service instead.
    const writes = allStatements(template)
      .filter(allows)
      .filter(
        ({ statement }) =>
          asList(statement.Action).some((a) => /^(iam|eks):/.test(a) && !isReadOnly(a)) &&
          !asList(statement.Action).includes("iam:PassRole"),
      );
    // Assess
    expect(writes.length).toBeGreaterThan(5);
    for (const { policy, statement } of writes) {
      const actions = asList(statement.Action);
      const equals = statement.Condition?.StringEquals ?? {};
      const creating = actions.every((a) => /:(Create|Tag)/.test(a));
      const label = `${policy} ${actions.join(",")}`;
      // One statement never mixes creates with writes to existing objects: their conditions differ.
      expect(creating || actions.every((a) => !/:(Create|Tag)/.test(a)), label).toBe(true);
      expect(equals[creating ? REQUEST_MARK : RESOURCE_MARK], label).toBe(PRODUCT);
      expect(equals[creating ? RESOURCE_MARK : REQUEST_MARK], label).toBeUndefined();
      if (actions.some((a) => /:Tag/.test(a))) {
        // Tagging at creation may write the ownership tags and nothing else.
        expect(statement.Condition?.["ForAllValues:StringEquals"], label).toEqual({ "aws:TagKeys": [...OWNERSHIP_TAG_KEYS] });
      }
    }
    // Reads stay unconditioned: a step must see what is not its own to report an OwnershipConflict.
    const reads = allStatements(template).filter(({ statement }) =>
      asList(statement.Action).every((a) => /^(iam|eks):/.test(a) && isReadOnly(a)),
    );
    expect(reads.length).toBeGreaterThan(0);
    for (const { statement } of reads) expect(statement.Condition).toBeUndefined();
  });
});

// ---------------------------------------------------------------- configuration variants

describe("the Provisioner stack with a permissions boundary", () => {
  let template: Template;

  beforeAll(async () => {
    template = await synthesize({ ...BASE_ENV, PERMISSIONS_BOUNDARY_ARN: BOUNDARY }, { bundle: false });
  }, 120_000);

  it("lets the IAM steps create, re-scope or empty a role only when it carries the operator's boundary, and creates no boundary of its own", () => {
    // Assess: the operator's boundary replaces the stack's (never both allowed, or a role could be switched to the weaker one)
    expectBoundaryGuards(template, (value) => expect(value).toBe(BOUNDARY));
    expect(resourcesOf(template, "AWS::IAM::ManagedPolicy")).toEqual([]);
    expect(JSON.stringify(template.toJSON())).not.toMatch(/"Ref":"TenantRoleBoundary/);
    expect((template.toJSON().Outputs as Record<string, { Value: Json }>).TenantRoleBoundaryArn.Value).toBe(BOUNDARY);
    const iamStep = (
      template.findResources("AWS::Lambda::Function")[
        resourcesOf(template, "AWS::Lambda::Function").find(([id]) => id.startsWith("CreateIamResourcesFunction"))![0]
      ] as Json
    ).Properties;
    expect(iamStep.Environment.Variables.PERMISSIONS_BOUNDARY_ARN).toBe(BOUNDARY);
  });
});
