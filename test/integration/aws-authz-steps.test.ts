/**
 * The steps call AWS as their own roles in the sandbox (#12 points 1 and 5): a permission taken from one role's
 * policy (stacks/permissions.ts, as deployed) makes the run fail at the step that needs it, with the emulator's
 * AccessDenied named NotAllowed, and compensation puts everything back; the same request with the role whole
 * succeeds. A role the product created is held to its permissions boundary whatever its identity policy allows.
 */
import { EKSClient, DescribeClusterCommand } from "@aws-sdk/client-eks";
import { IAMClient, ListRolesCommand, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { describe, expect, it } from "vitest";
import { iamClient } from "../../functions/lib/aws/clients.js";
import { defineProductRole, KUBE_STEPS_ROLE_KEY, withoutAction, type RemovedPermission } from "../../local/aws/product-roles.js";
import type { Sandbox } from "../../local/sandbox.js";
import { FAST, iamRole, provision, pvcRequest, settled, stepResult, useSandbox, type Run } from "../support/sandbox-runs.js";

interface RemovalCase extends RemovedPermission {
  /** the state that fails for want of it */
  step: string;
  /** what the run's cause must say was refused */
  refused: RegExp;
}

const CASES: RemovalCase[] = [
  // Tag-on-create: CreateRole carries the ownership tags, so it needs iam:TagRole on the new role too.
  { role: "CreateIamResources", action: "iam:TagRole", step: "CreateIamResources", refused: /not authorized to perform: iam:TagRole on resource: arn:aws:iam::111122223333:role\/nf-eks-provisioner\/nfeks-/ },
  { role: "ResolveCluster", action: "eks:DescribeCluster", step: "ResolveCluster", refused: /not authorized to perform: eks:DescribeCluster on resource: arn:aws:eks:eu-west-1:111122223333:cluster\/research/ },
  // The shared KubeSteps role: its access-entry permission (API_AND_CONFIG_MAP cluster).
  { role: KUBE_STEPS_ROLE_KEY, action: "eks:CreateAccessEntry", step: "GrantClusterAccess", refused: /not authorized to perform: eks:CreateAccessEntry/ },
  { role: "Report", action: "events:PutEvents", step: "Report", refused: /not authorized to perform: events:PutEvents on resource: arn:aws:events:eu-west-1:111122223333:event-bus\/nf-eks-provisioner/ },
];

/** Gives a product role its statements again, minus `action` when given (the role's sessions see it at once). */
function redefine(sandbox: Sandbox, key: string, action?: string): void {
  const role = sandbox.productRoles.find((r) => r.key === key)!;
  defineProductRole(sandbox.aws, role, action ? withoutAction(role.statements, action) : role.statements);
}

function expectFailedAt(run: Run, step: string, refused: RegExp): void {
  expect(run.execution.status).toBe("FAILED");
  expect(run.view).toMatchObject({ status: "FAILED", failedStep: step, error: "NotAllowed" });
  expect(run.execution.cause).toMatch(/AccessDenied/);
  expect(run.execution.cause).toMatch(refused);
}

describe("a permission missing from one step's role", () => {
  let sandbox: Sandbox;

  useSandbox({ ...FAST }, (started) => (sandbox = started.sandbox));

  it.each(CASES.map((c, i) => ({ ...c, tenant: `denied-${i}` })))(
    "without $action, $role's step $step is denied: the run fails there and is undone; with it, the same request succeeds",
    async ({ role, action, step, refused, tenant }) => {
      // Prepare
      await settled(sandbox);
      const before = sandbox.snapshot();
      redefine(sandbox, role, action);

      // Act
      let denied: Run;
      try {
        denied = await provision(sandbox, pvcRequest(tenant, { namespace: tenant }));
      } finally {
        redefine(sandbox, role);
      }
      await settled(sandbox);
      const after = sandbox.snapshot();
      const control = await provision(sandbox, pvcRequest(`${tenant}-control`, { namespace: `${tenant}-control` }));

      // Assess
      expectFailedAt(denied, step, refused);
      expect(denied.view.steps.find((s) => s.name === step)).toMatchObject({ status: "failed", error: { error: "NotAllowed" } });
      expect(after).toStrictEqual(before);
      expect(control.execution.status).toBe("SUCCEEDED");
    },
  );

  it("the SandboxOptions.removePermissions of another sandbox takes the permission away from its start", async () => {
    // Prepare: a second sandbox whose CreateIamResources role lacks iam:CreateRole
    const { startSandbox } = await import("../../local/sandbox.js");
    await sandbox.close(); // one sandbox per process at a time (the handlers read process.env)
    const other = await startSandbox({ ...FAST, removePermissions: [{ role: "CreateIamResources", action: "iam:CreateRole" }] });
    try {
      const before = other.snapshot();
      // Act
      const run = await provision(other, pvcRequest("no-create", { namespace: "no-create" }));
      // Assess
      expectFailedAt(run, "CreateIamResources", /not authorized to perform: iam:CreateRole/);
      expect(stepResult<{ undone: string[] }>(run, "UndoNamespaceAndRbac").undone).toContain("Namespace no-create");
      await settled(other);
      expect(other.snapshot()).toStrictEqual(before);
      const role = other.productRoles.find((r) => r.key === "CreateIamResources")!;
      const held = JSON.parse([...iamRole(other, role.roleName)!.inlinePolicies.values()][0]);
      expect(JSON.stringify(held)).not.toContain('"iam:CreateRole"');
      expect(JSON.stringify(held)).toContain('"iam:TagRole"');
    } finally {
      await other.close();
    }
  });
});

describe("a role the product created is held to its permissions boundary", () => {
  let sandbox: Sandbox;

  useSandbox({ ...FAST }, (started) => (sandbox = started.sandbox));

  it("cannot do what its identity policy allows when the boundary does not; can do what both allow", async () => {
    // Prepare: a launcher created by a run (boundary: the tenant-role boundary), then given iam:* by the admin
    const run = await provision(sandbox, pvcRequest("bounded", { namespace: "bounded" }));
    expect(run.execution.status).toBe("SUCCEEDED");
    const launcher = iamRole(sandbox, "nfeks-bounded.research-launcher")!;
    expect(launcher.permissionsBoundaryArn).toBe(sandbox.env.PERMISSIONS_BOUNDARY_ARN);
    await iamClient().send(
      new PutRolePolicyCommand({
        RoleName: launcher.roleName,
        PolicyName: "everything-iam",
        PolicyDocument: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["iam:*", "eks:*"], Resource: "*" }] }),
      }),
    );
    const session = await sandbox.aws.assumeRole(launcher.arn, { sessionName: "tenant" });
    const credentials = session.credentials;
    const iam = new IAMClient({ region: sandbox.cluster.region, endpoint: sandbox.awsUrl, credentials });
    const eks = new EKSClient({ region: sandbox.cluster.region, endpoint: sandbox.awsUrl, credentials });

    try {
      // Act
      const listed = await iam.send(new ListRolesCommand({})).then(
        () => undefined,
        (error: Error) => error,
      );
      const described = await eks.send(new DescribeClusterCommand({ name: sandbox.cluster.name }));

      // Assess
      expect(listed?.name).toBe("AccessDenied");
      expect(listed?.message).toMatch(/not authorized to perform: iam:ListRoles .*because no permissions boundary allows the iam:ListRoles action/);
      expect(described.cluster?.name).toBe(sandbox.cluster.name);
    } finally {
      iam.destroy();
      eks.destroy();
    }
  });
});
