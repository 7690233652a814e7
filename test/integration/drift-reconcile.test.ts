/**
 * Drift and reconcile in the sandbox (#16 points 2-4): an environment is created, then edited by hand (a RoleBinding
 * deleted through the Kubernetes API, a role's inline policy rewritten through IAM); GET on the environment reports
 * each drift, POST .../reconcile re-applies the recorded spec as a run that repairs both, and the scheduled check then
 * finds nothing (and puts no event); with drift it puts one EnvironmentDrifted event, valid against its JSON Schema.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { iamClient } from "../../functions/lib/aws/clients.js";
import { EnvironmentRegistry } from "../../functions/lib/workflow/environment-registry.js";
import { checkEnvironments } from "../../functions/events/drift-check.js";
import type { Sandbox } from "../../local/sandbox.js";
import { ACCOUNT_ID, FAST, finish, fusionRequest, iamRole, kubeConfigAs, kubeObject, policyOf, provision, pvcRequest, settled, useSandbox } from "../support/sandbox-runs.js";

const ROOT = join(import.meta.dirname, "../..");
const ADMIN = `arn:aws:iam::${ACCOUNT_ID}:user/sandbox-admin`;
const ENVIRONMENT = "/environments/drifter/eu-west-1/research";
const LAUNCHER_ROLE = "nfeks-drifter.research-launcher";
const LAUNCHER_POLICY = "nfeks-drifter.research-launcher";
const USER_BINDING = "tower-launcher-user-drifter-binding";

function driftedSchemaValidator() {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  return ajv.compile(JSON.parse(readFileSync(join(ROOT, "events/environment-drifted.schema.json"), "utf8")));
}

describe("drift and reconcile", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => ({ sandbox } = started));

  const call = async (method: string, path: string) => {
    const res = await fetch(`${sandbox.apiUrl}${path}`, { method });
    return { status: res.status, body: (await res.json()) as any };
  };
  const driftedEvents = () => sandbox.aws.events({ detailType: "EnvironmentDrifted" });

  it("reports what was changed by hand, repairs it with a reconcile run, and the scheduled check then finds nothing", async () => {
    // Prepare: a ready environment, in sync
    await provision(sandbox, pvcRequest("drifter", { namespace: "drifter" }));
    await settled(sandbox);
    const fresh = await call("GET", ENVIRONMENT);
    expect(fresh.status).toBe(200);
    expect(fresh.body.drift, JSON.stringify(fresh.body.drift, null, 2)).toMatchObject({ status: "in-sync" });
    expect(fresh.body.drift.resources.map((r: { kind: string }) => r.kind)).toEqual(
      expect.arrayContaining(["IAMRole", "AccessEntry", "Namespace", "Role", "RoleBinding", "ServiceAccount", "PersistentVolumeClaim", "ConfigMap", "LimitRange", "NetworkPolicy"]),
    );
    const quiet = await checkEnvironments();
    expect(quiet).toMatchObject({ checked: 1, drifted: 0 });
    expect(driftedEvents()).toEqual([]);

    // Act 1: a RoleBinding deleted by hand
    const rbac = (await kubeConfigAs(sandbox, ADMIN)).makeApiClient(RbacAuthorizationV1Api);
    await rbac.deleteNamespacedRoleBinding({ name: USER_BINDING, namespace: "drifter" });
    const afterDelete = await call("GET", ENVIRONMENT);

    // Assess 1: missing, with its name
    expect(afterDelete.body.drift.status).toBe("drifted");
    expect(afterDelete.body.drift.resources.filter((r: { state: string }) => r.state !== "present")).toEqual([
      { kind: "RoleBinding", name: `drifter/${USER_BINDING}`, state: "missing", differences: [] },
    ]);

    // Act 2: the launcher role's inline policy rewritten by hand (ListClusters removed)
    const before = policyOf(iamRole(sandbox, LAUNCHER_ROLE)!.inlinePolicies.get(LAUNCHER_POLICY));
    const narrowed = { ...before, Statement: before.Statement.filter((s: { Sid?: string }) => s.Sid !== "ListClusters") };
    await iamClient().send(new PutRolePolicyCommand({ RoleName: LAUNCHER_ROLE, PolicyName: LAUNCHER_POLICY, PolicyDocument: JSON.stringify(narrowed) }));
    const afterEdit = await call("GET", ENVIRONMENT);

    // Assess 2: changed, with the difference
    const role = afterEdit.body.drift.resources.find((r: { kind: string }) => r.kind === "IAMRole");
    expect(role).toMatchObject({ name: LAUNCHER_ROLE, state: "changed" });
    expect(role.differences).toHaveLength(1);
    expect(role.differences[0].path).toBe(`inlinePolicies.${LAUNCHER_POLICY}.Statement`);
    expect(JSON.stringify(role.differences[0].expected)).toContain("eks:ListClusters");
    expect(JSON.stringify(role.differences[0].actual)).not.toContain("eks:ListClusters");

    // Act 3: the scheduled check (as the sandbox's POST /sandbox/drift-check runs it) sees the drift and says so on the bus
    const swept = await call("POST", "/sandbox/drift-check");
    await settled(sandbox);

    // Assess 3: one event, valid against the committed schema
    expect(swept.body).toMatchObject({ checked: 1, drifted: 1, unknown: 0 });
    expect(swept.body.events).toHaveLength(1);
    const events = driftedEvents();
    expect(events).toHaveLength(1);
    const validate = driftedSchemaValidator();
    expect(validate(events[0]!.detail), JSON.stringify(validate.errors)).toBe(true);
    expect(events[0]!.detail).toMatchObject({ tenant: "drifter", region: "eu-west-1", cluster: "research", environmentUrl: ENVIRONMENT });

    // Act 4: reconcile
    const reconciled = await call("POST", `${ENVIRONMENT}/reconcile`);
    expect(reconciled.status, JSON.stringify(reconciled.body)).toBe(202);
    const run = await finish(sandbox, reconciled.body);
    await settled(sandbox);
    const repaired = await call("GET", ENVIRONMENT);
    const after = await checkEnvironments();

    // Assess 4: both repaired, the scheduled check finds nothing and puts nothing
    expect(run.execution.status).toBe("SUCCEEDED");
    expect(kubeObject(sandbox, "RoleBinding", "drifter", USER_BINDING)).toBeDefined();
    expect(repaired.body.drift, JSON.stringify(repaired.body.drift, null, 2)).toMatchObject({ status: "in-sync" });
    expect(repaired.body).toMatchObject({ status: "ready", lastExecution: { arn: reconciled.body.executionArn } });
    expect(after).toMatchObject({ checked: 1, drifted: 0 });
    expect(driftedEvents()).toHaveLength(1);
  });

  it("skips the live check with ?drift=false, and answers reconcile on an unknown environment with 404", async () => {
    // Prepare // Act
    const cheap = await call("GET", `${ENVIRONMENT}?drift=false`);
    const bad = await call("GET", `${ENVIRONMENT}?drift=maybe`);
    const unknown = await call("POST", "/environments/nobody/eu-west-1/research/reconcile");

    // Assess
    expect(cheap.status).toBe(200);
    expect(cheap.body.drift).toBeUndefined();
    expect(cheap.body.tenant).toBe("drifter");
    expect(bad).toMatchObject({ status: 400, body: { error: "InvalidRequest" } });
    expect(unknown).toMatchObject({ status: 404, body: { error: "EnvironmentNotFound" } });
  });

  it("refuses a reconcile while another run holds the lease (409 RunInProgress) and of a removed environment (409 EnvironmentRemoved)", async () => {
    // Prepare: another run holds the lease
    const registry = new EnvironmentRegistry();
    const id = { tenant: "drifter", region: "eu-west-1", cluster: "research" };
    const record = (await registry.getEnvironment(id))!;
    const holder = { name: "drifter-other", arn: `${sandbox.stateMachineArn.replace(":stateMachine:", ":execution:")}:drifter-other` };
    expect(await registry.takeLease(id, { owner: holder, expiresAt: Math.floor(Date.now() / 1000) + 600, spec: record.spec })).toEqual({ taken: true });

    // Act
    const held = await call("POST", `${ENVIRONMENT}/reconcile`);
    await registry.recordOutcome(id, holder.arn, { status: "removed", owned: {} });
    const removed = await call("POST", `${ENVIRONMENT}/reconcile`);
    const readRemoved = await call("GET", ENVIRONMENT);
    await new DynamoDBClient({}).send(
      new UpdateItemCommand({
        TableName: sandbox.env.REGISTRY_TABLE_NAME,
        Key: { pk: { S: "ENV#drifter#eu-west-1#research" } },
        UpdateExpression: "SET #status = :ready",
        ExpressionAttributeNames: { "#status": "status" },
        ExpressionAttributeValues: { ":ready": { S: "ready" } },
      }),
    );

    // Assess
    expect(held).toMatchObject({ status: 409, body: { error: "RunInProgress", executionArn: holder.arn } });
    expect(removed).toMatchObject({ status: 409, body: { error: "EnvironmentRemoved" } });
    expect(readRemoved.status).toBe(200);
    expect(readRemoved.body.drift).toBeUndefined();
  });

  it("reports a check it cannot make as unknown with the reason, never a 500", async () => {
    // Prepare: IAM refuses every GetRole
    sandbox.faults.inject({ operation: "iam:GetRole", kind: "permanent", times: 10 });

    // Act
    const read = await call("GET", ENVIRONMENT);

    // Assess
    expect(read.status).toBe(200);
    expect(read.body.drift).toMatchObject({ status: "unknown", resources: [] });
    expect(read.body.drift.reason).toMatch(/\w+/);
  });
});

describe("drift of every kind of environment, as built", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => ({ sandbox } = started));

  const driftOf = async (tenant: string) => {
    const res = await fetch(`${sandbox.apiUrl}/environments/${tenant}/eu-west-1/research`);
    return ((await res.json()) as any).drift;
  };

  it("finds a Fusion environment (IRSA) in sync: workload role, annotations, config; then a changed annotation", async () => {
    // Prepare
    await provision(sandbox, fusionRequest("fusirsa", { namespace: "fusirsa" }));
    await settled(sandbox);
    const fresh = await driftOf("fusirsa");

    // Act: the compute SA's IRSA annotation pointed elsewhere by hand
    const core = (await kubeConfigAs(sandbox, ADMIN)).makeApiClient(CoreV1Api);
    const sa = await core.readNamespacedServiceAccount({ name: "tower-compute-sa", namespace: "fusirsa" });
    sa.metadata!.annotations = { ...sa.metadata!.annotations, "eks.amazonaws.com/role-arn": `arn:aws:iam::${ACCOUNT_ID}:role/elsewhere` };
    await core.replaceNamespacedServiceAccount({ name: "tower-compute-sa", namespace: "fusirsa", body: sa });
    const changed = await driftOf("fusirsa");

    // Assess
    expect(fresh, JSON.stringify(fresh, null, 2)).toMatchObject({ status: "in-sync" });
    expect(fresh.resources.filter((r: { kind: string }) => r.kind === "IAMRole")).toHaveLength(2);
    expect(changed.status).toBe("drifted");
    expect(changed.resources.filter((r: { state: string }) => r.state !== "present")).toEqual([
      {
        kind: "ServiceAccount",
        name: "fusirsa/tower-compute-sa",
        state: "changed",
        differences: [
          {
            path: "annotations.eks.amazonaws.com/role-arn",
            expected: `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-fusirsa.research-workload`,
            actual: `arn:aws:iam::${ACCOUNT_ID}:role/elsewhere`,
          },
        ],
      },
    ]);
  });

  it("finds a Fusion environment with Pod Identity in sync, its associations included", async () => {
    // Prepare // Act
    await provision(sandbox, fusionRequest("fuspod", { namespace: "fuspod", podIdentity: true }));
    await settled(sandbox);
    const drift = await driftOf("fuspod");

    // Assess
    expect(drift, JSON.stringify(drift, null, 2)).toMatchObject({ status: "in-sync" });
    expect(drift.resources.filter((r: { kind: string }) => r.kind === "PodIdentityAssociation").map((r: { name: string }) => r.name).sort()).toEqual([
      "fuspod/tower-compute-sa",
      "fuspod/tower-launcher-sa",
    ]);
  });
});

describe("drift on a CONFIG_MAP cluster", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode: "CONFIG_MAP" }, (started) => ({ sandbox } = started));

  it("reads the launcher's aws-auth mapping, and reports it missing once removed", async () => {
    // Prepare
    await provision(sandbox, pvcRequest("mapped", { namespace: "mapped" }));
    await settled(sandbox);
    const read = async () => ((await (await fetch(`${sandbox.apiUrl}/environments/mapped/eu-west-1/research`)).json()) as any).drift;
    const fresh = await read();

    // Act: the mapping removed by hand (the launcher's entry cut out of mapRoles)
    const core = (await kubeConfigAs(sandbox, ADMIN)).makeApiClient(CoreV1Api);
    const awsAuth = await core.readNamespacedConfigMap({ name: "aws-auth", namespace: "kube-system" });
    const entries = parseYaml(awsAuth.data!.mapRoles!) as Array<{ rolearn: string }>;
    awsAuth.data!.mapRoles = stringifyYaml(entries.filter((e) => !e.rolearn.includes("nfeks-mapped.research-launcher")));
    await core.replaceNamespacedConfigMap({ name: "aws-auth", namespace: "kube-system", body: awsAuth });
    const after = await read();

    // Assess
    expect(fresh, JSON.stringify(fresh, null, 2)).toMatchObject({ status: "in-sync" });
    expect(fresh.resources.find((r: { kind: string }) => r.kind === "AwsAuthMapping")).toMatchObject({ state: "present" });
    expect(after.resources.filter((r: { state: string }) => r.state !== "present")).toEqual([
      { kind: "AwsAuthMapping", name: `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-mapped.research-launcher`, state: "missing", differences: [] },
    ]);
  });
});

describe("drift read as the read route's own role", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, removePermissions: [{ role: "GET /environments/{tenant}/{region}/{cluster}", action: "iam:GetRolePolicy" }] }, (started) => ({ sandbox } = started));

  it("is unknown, naming the denial, when that role lacks a read it needs (and the answer is still 200)", async () => {
    // Prepare
    await provision(sandbox, pvcRequest("denied", { namespace: "denied" }));
    await settled(sandbox);
    // Act
    const res = await fetch(`${sandbox.apiUrl}/environments/denied/eu-west-1/research`);
    const body = (await res.json()) as any;
    // Assess
    expect(res.status).toBe(200);
    expect(body.drift).toMatchObject({ status: "unknown", resources: [] });
    expect(body.drift.reason).toMatch(/AccessDenied|not authorized/);
    expect(body.drift.reason).toContain("iam:GetRolePolicy");
  });
});
