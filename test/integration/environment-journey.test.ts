/**
 * One environment's life in the sandbox (#16 point 6), through the HTTP API as a client drives it: create (a claim on
 * a class that can grow, a head job) → update (claim grown, a compute service account added, another namespace and
 * work directory) → a RoleBinding deleted by hand in the new namespace → GET reports exactly that drift (so drift is
 * computed against generation 2) → reconcile repairs it → the scheduled check finds nothing → DELETE removes
 * everything, the old namespace and the new. Beside it: a fault during an update puts generation 1 back (and drift
 * is in sync against it), and an update that would shrink the claim is refused with 400 naming the claim.
 */
import { describe, expect, it } from "vitest";
import { RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { CreateRoleCommand } from "@aws-sdk/client-iam";
import { iamClient } from "../../functions/lib/aws/clients.js";
import { DRIFTED_DETAIL_TYPE, EVENT_SOURCE, REMOVED_DETAIL_TYPE } from "../../functions/lib/domain/product-events.js";
import type { Sandbox } from "../../local/sandbox.js";
import { ADMIN_ARN } from "../support/aws-emulator-clients.js";
import { schemaProblems } from "../support/event-schemas.js";
import {
  ACCOUNT_ID,
  awsAuth,
  clusterState,
  FAST,
  finish,
  fusionRequest,
  iamRole,
  kubeConfigAs,
  mappedRoleArns,
  kubeObject,
  kubeObjects,
  pvcRequest,
  settled,
  until,
  useSandbox,
  type Started,
} from "../support/sandbox-runs.js";
import { createEnvironment, postReconcile, putEnvironment, readEnvironment, specOf, teardown } from "../support/teardown-runs.js";

/** A class that allows volume expansion in the sandbox (as on EKS: FSx for Lustre; EFS does not). */
const FSX = { type: "pvc", storageClass: "fsx-sc", size: "100Gi" } as const;

/** The resources a drift report does not find as built, as `kind name state`. */
function notPresent(drift: { resources: Array<{ kind: string; name: string; state: string }> }): string[] {
  return drift.resources.filter((r) => r.state !== "present").map((r) => `${r.kind} ${r.name} ${r.state}`);
}

/** The namespaces a drift report checked Kubernetes objects in. */
function namespacesChecked(drift: { resources: Array<{ kind: string; name: string }> }): string[] {
  const kinds = new Set(["IAMRole", "PodIdentityAssociation", "AccessEntry", "AwsAuthMapping", "Namespace"]);
  return [...new Set(drift.resources.filter((r) => !kinds.has(r.kind)).map((r) => r.name.split("/")[0]!))].sort();
}

/** Two launcher roles the platform team made (a request may name an existing principal). */
const LAUNCHER_A = `arn:aws:iam::${ACCOUNT_ID}:role/jrn-seqera-a`;
const LAUNCHER_B = `arn:aws:iam::${ACCOUNT_ID}:role/jrn-seqera-b`;

async function createLauncherRoles(sandbox: Sandbox): Promise<void> {
  const trust = {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT_ID}:root` }, Action: "sts:AssumeRole" }],
  };
  for (const arn of [LAUNCHER_A, LAUNCHER_B]) {
    const name = arn.slice(arn.lastIndexOf("/") + 1);
    if (!iamRole(sandbox, name))
      await iamClient().send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: JSON.stringify(trust) }));
  }
}

/**
 * An environment whose update names another launcher (A, then B), torn down: what is left of the emulators compared
 * with before the create (the launcher roles are the platform team's, made before).
 */
async function launcherChangedThenRemoved(
  sandbox: Sandbox,
  tenant: string,
): Promise<{ before: ReturnType<Sandbox["snapshot"]>; after: ReturnType<Sandbox["snapshot"]> }> {
  await createLauncherRoles(sandbox);
  await settled(sandbox);
  const before = sandbox.snapshot();
  const first = pvcRequest(tenant, { namespace: tenant, launcher: { mode: "existing", principalArn: LAUNCHER_A } });
  const created = await createEnvironment(sandbox, first);
  expect(created.execution.status, created.execution.cause).toBe("SUCCEEDED");
  const updating = await putEnvironment(sandbox, tenant, { ...specOf(first), launcher: { mode: "existing", principalArn: LAUNCHER_B } });
  const update = await finish(sandbox, updating.body as Started);
  expect(update.execution.status, update.execution.cause).toBe("SUCCEEDED");
  await settled(sandbox);
  const removed = await teardown(sandbox, tenant);
  expect(removed.execution.status, removed.execution.cause).toBe("SUCCEEDED");
  await settled(sandbox);
  return { before, after: sandbox.snapshot() };
}

describe("an environment's journey: create, update, drift, reconcile, scheduled check, delete", () => {
  let sandbox: Sandbox;
  useSandbox(FAST, (started) => ({ sandbox } = started));

  it("keeps generation 2 as the truth from the update to the teardown, and the teardown leaves nothing of either generation", async () => {
    // Prepare: generation 1, with a head job, in namespace jrn-one
    const tenant = "jrn";
    const userBinding = `tower-launcher-user-${tenant}-binding`;
    await settled(sandbox);
    const before = sandbox.snapshot();
    const first = pvcRequest(tenant, { storage: FSX, namespace: "jrn-one", headJob: { pipeline: "nextflow-io/hello" } });
    const created = await createEnvironment(sandbox, first);
    expect(created.execution.status, created.execution.cause).toBe("SUCCEEDED");
    await settled(sandbox);
    expect(kubeObjects(sandbox, "Job", "jrn-one")).toHaveLength(1);
    const { headJob: _runOnly, ...firstSpec } = specOf(first);
    const second = {
      ...firstSpec,
      namespace: "jrn-two",
      computeServiceAccount: "jrn-compute",
      storage: { type: "pvc", storageClass: "fsx-sc", size: "200Gi", mountPath: "/data" },
    };

    // Act 1: the update (generation 2)
    const updating = await putEnvironment(sandbox, tenant, second);
    expect(updating.status, JSON.stringify(updating.body)).toBe(202);
    const update = await finish(sandbox, updating.body as Started);
    await settled(sandbox);

    // Assess 1: converged to generation 2, the old namespace gone
    expect(update.execution.status, update.execution.cause).toBe("SUCCEEDED");
    expect(updating.body).toMatchObject({ generation: 2 });
    await until("the old namespace to be gone", () => !kubeObject(sandbox, "Namespace", undefined, "jrn-one"));
    expect(kubeObject(sandbox, "PersistentVolumeClaim", "jrn-two", "tower-scratch")?.spec.resources.requests.storage).toBe("200Gi");
    expect(kubeObject(sandbox, "ServiceAccount", "jrn-two", "jrn-compute")).toBeDefined();
    expect(kubeObject(sandbox, "ConfigMap", "jrn-two", "nextflow-config")?.data["nextflow.config"]).toContain("workDir = '/data/work'");
    const updated = await readEnvironment(sandbox, tenant);
    expect(updated.body).toMatchObject({
      generation: 2,
      status: "ready",
      spec: { namespace: "jrn-two", computeServiceAccount: "jrn-compute" },
    });
    expect(updated.body.drift, JSON.stringify(updated.body.drift, null, 2)).toMatchObject({ status: "in-sync" });

    // Act 2: the launcher user's RoleBinding deleted by hand, in the new namespace
    const rbac = (await kubeConfigAs(sandbox, ADMIN_ARN)).makeApiClient(RbacAuthorizationV1Api);
    await rbac.deleteNamespacedRoleBinding({ name: userBinding, namespace: "jrn-two" });
    const drifted = await readEnvironment(sandbox, tenant);

    // Assess 2: exactly that RoleBinding is missing; everything else is as generation 2 built it
    expect(drifted.status).toBe(200);
    expect(drifted.body.drift.status).toBe("drifted");
    expect(notPresent(drifted.body.drift)).toEqual([`RoleBinding jrn-two/${userBinding} missing`]);
    expect(namespacesChecked(drifted.body.drift)).toEqual(["jrn-two"]);
    expect(drifted.body.drift.resources).toContainEqual(
      expect.objectContaining({ kind: "ServiceAccount", name: "jrn-two/jrn-compute", state: "present" }),
    );
    expect(drifted.body.drift.resources).toContainEqual(
      expect.objectContaining({ kind: "PersistentVolumeClaim", name: "jrn-two/tower-scratch", state: "present" }),
    );

    // Act 3: reconcile
    const reconciling = await postReconcile(sandbox, tenant);
    expect(reconciling.status, JSON.stringify(reconciling.body)).toBe(202);
    const reconcile = await finish(sandbox, reconciling.body as Started);
    await settled(sandbox);
    const repaired = await readEnvironment(sandbox, tenant);

    // Assess 3: repaired in the new namespace; the old one is not built again
    expect(reconcile.execution.status, reconcile.execution.cause).toBe("SUCCEEDED");
    expect(kubeObject(sandbox, "RoleBinding", "jrn-two", userBinding)).toBeDefined();
    expect(kubeObject(sandbox, "Namespace", undefined, "jrn-one")).toBeUndefined();
    // Every run adds one to the generation (the registry's rule, a reconcile too); the spec stays generation 2's.
    expect(repaired.body).toMatchObject({ generation: 3, status: "ready", lastExecution: { arn: reconciling.body.executionArn } });
    expect(repaired.body.spec).toEqual(updated.body.spec);
    expect(repaired.body.drift, JSON.stringify(repaired.body.drift, null, 2)).toMatchObject({ status: "in-sync" });

    // Act 4: the scheduled check, as the sandbox runs it now
    const swept = await fetch(`${sandbox.apiUrl}/sandbox/drift-check`, { method: "POST" });
    const sweep = (await swept.json()) as any;

    // Assess 4: nothing drifted, no event
    expect(swept.status).toBe(200);
    expect(sweep).toMatchObject({ drifted: 0, unknown: 0, events: [] });
    expect(sweep.checked).toBeGreaterThanOrEqual(1);
    expect(sandbox.aws.events({ detailType: DRIFTED_DETAIL_TYPE })).toEqual([]);

    // Act 5: delete
    const removed = await teardown(sandbox, tenant);
    await settled(sandbox);

    // Assess 5: the record says removed, both namespaces and every role of the tenant are gone, one removal event
    expect(removed.execution.status, removed.execution.cause).toBe("SUCCEEDED");
    const record = await readEnvironment(sandbox, tenant);
    expect(record.body).toMatchObject({ status: "removed", owned: {} });
    expect(kubeObject(sandbox, "Namespace", undefined, "jrn-one")).toBeUndefined();
    expect(kubeObject(sandbox, "Namespace", undefined, "jrn-two")).toBeUndefined();
    expect([...sandbox.aws.state.iam.roles.keys()].filter((name) => name.includes(`-${tenant}.`))).toEqual([]);
    const after = sandbox.snapshot();
    expect(after.aws).toStrictEqual(before.aws);
    expect(after.kube).toStrictEqual(before.kube);
    const removedEvents = sandbox.aws
      .events({ source: EVENT_SOURCE })
      .filter((e) => e.detailType === REMOVED_DETAIL_TYPE && (e.detail as { tenant: string }).tenant === tenant);
    expect(removedEvents).toHaveLength(1);
    expect(schemaProblems(REMOVED_DETAIL_TYPE, removedEvents[0]!.detail)).toEqual([]);
  });

  it("a permanent fault during an update (the old namespace's removal refused) puts generation 1 back: GET shows its spec, in sync", async () => {
    // Prepare
    const tenant = "jrn-fault";
    const first = pvcRequest(tenant, { storage: FSX, namespace: "jrn-fault-one" });
    const created = await createEnvironment(sandbox, first);
    expect(created.execution.status, created.execution.cause).toBe("SUCCEEDED");
    await settled(sandbox);
    const second = {
      ...specOf(first),
      namespace: "jrn-fault-two",
      computeServiceAccount: "jrn-fault-compute",
      storage: { type: "pvc", storageClass: "fsx-sc", size: "200Gi", mountPath: "/data" },
    };
    // The update's last step (RemoveUnwantedResources) cannot delete the old namespace: after everything new was built.
    sandbox.faults.inject({ operation: "kube:DELETE namespaces", kind: "permanent", times: 1 });

    // Act
    const updating = await putEnvironment(sandbox, tenant, second);
    const update = await finish(sandbox, updating.body as Started);
    const fired = [...sandbox.faults.fired];
    sandbox.faults.clear();
    await settled(sandbox);
    const read = await readEnvironment(sandbox, tenant);

    // Assess
    expect(updating.status).toBe(202);
    expect(update.execution.status).toBe("FAILED");
    expect(fired).toEqual([{ operation: "kube:DELETE namespaces", kind: "permanent" }]);
    expect(update.execution.cause).toContain("Step RemoveUnwantedResources failed");
    expect(update.execution.cause).toContain("generation 1 is the desired spec again (status ready)");
    expect(kubeObject(sandbox, "Namespace", undefined, "jrn-fault-two")).toBeUndefined();
    expect(kubeObject(sandbox, "ConfigMap", "jrn-fault-one", "nextflow-config")?.data["nextflow.config"]).toContain(
      "workDir = '/scratch/work'",
    );
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({
      generation: 1,
      status: "ready",
      spec: { namespace: "jrn-fault-one", storage: { size: "100Gi", mountPath: "/scratch" } },
      lastFailure: { generation: 2 },
    });
    expect(read.body.spec.computeServiceAccount).toBeUndefined();
    expect(read.body.drift, JSON.stringify(read.body.drift, null, 2)).toMatchObject({ status: "in-sync" });
    expect(namespacesChecked(read.body.drift)).toEqual(["jrn-fault-one"]);
  });

  it("a Pod Identity environment moved to another namespace: the update removes the old namespace's associations, the teardown the rest", async () => {
    // Prepare: generation 1's associations in jrn-pod-one, generation 2's in jrn-pod-two (the update removes the old ones, RemoveUnwantedIdentities)
    const tenant = "jrn-pod";
    await settled(sandbox);
    const before = sandbox.snapshot();
    const first = fusionRequest(tenant, { namespace: "jrn-pod-one", podIdentity: true });
    const created = await createEnvironment(sandbox, first);
    expect(created.execution.status, created.execution.cause).toBe("SUCCEEDED");
    const updating = await putEnvironment(sandbox, tenant, { ...specOf(first), namespace: "jrn-pod-two" });
    const update = await finish(sandbox, updating.body as Started);
    expect(update.execution.status, update.execution.cause).toBe("SUCCEEDED");
    await settled(sandbox);
    const associationsIn = (namespace: string) =>
      [...clusterState(sandbox).podIdentityAssociations.values()].filter((a) => a.namespace === namespace);
    expect(associationsIn("jrn-pod-one")).toEqual([]);
    expect(associationsIn("jrn-pod-two")).toHaveLength(2);

    // Act
    const removed = await teardown(sandbox, tenant);
    await settled(sandbox);

    // Assess
    expect(removed.execution.status, removed.execution.cause).toBe("SUCCEEDED");
    expect(associationsIn("jrn-pod-one")).toEqual([]);
    expect(associationsIn("jrn-pod-two")).toEqual([]);
    expect(sandbox.snapshot().aws).toStrictEqual(before.aws);
  });

  it("an environment whose update named another launcher is torn down whole: the earlier launcher's access entry too", async () => {
    // Prepare // Act
    const { before, after } = await launcherChangedThenRemoved(sandbox, "jrn-who");

    // Assess
    expect([...clusterState(sandbox).accessEntries.keys()].filter((arn) => arn === LAUNCHER_A || arn === LAUNCHER_B)).toEqual([]);
    expect(after.aws).toStrictEqual(before.aws);
  });

  it("refuses an update that would shrink the claim with 400 naming the claim, and starts nothing", async () => {
    // Prepare
    const tenant = "jrn-shrink";
    const first = pvcRequest(tenant, { storage: FSX, namespace: "jrn-shrink" });
    const created = await createEnvironment(sandbox, first);
    expect(created.execution.status, created.execution.cause).toBe("SUCCEEDED");
    await settled(sandbox);
    const smaller = { ...specOf(first), computeServiceAccount: "jrn-shrink-compute", storage: { ...FSX, size: "50Gi" } };

    // Act
    const answer = await putEnvironment(sandbox, tenant, smaller);
    const read = await readEnvironment(sandbox, tenant);

    // Assess
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: "InvalidRequest" });
    expect(answer.body.problems).toEqual([expect.objectContaining({ path: "storage.size" })]);
    expect(answer.body.problems[0].message).toContain("PersistentVolumeClaim jrn-shrink/tower-scratch holds 100Gi");
    expect(read.body).toMatchObject({ generation: 1, status: "ready", spec: { storage: { size: "100Gi" } } });
    expect(read.body.lastExecution.arn).toBe(created.answer.body.executionArn);
    expect(kubeObject(sandbox, "ServiceAccount", "jrn-shrink", "jrn-shrink-compute")).toBeUndefined();
  });
});

describe("an environment's journey on a CONFIG_MAP cluster", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode: "CONFIG_MAP" }, (started) => ({ sandbox } = started));

  it("an environment whose update named another launcher is torn down whole: the earlier launcher's aws-auth mapping too", async () => {
    // Prepare // Act
    const { before, after } = await launcherChangedThenRemoved(sandbox, "jrn-map");

    // Assess
    expect(mappedRoleArns(sandbox)).not.toContain(LAUNCHER_A);
    expect(mappedRoleArns(sandbox)).not.toContain(LAUNCHER_B);
    expect(awsAuth(sandbox).data).toStrictEqual(before.kube.find((o) => o.kind === "ConfigMap" && o.metadata.name === "aws-auth")!.data);
    expect(after.aws).toStrictEqual(before.aws);
  });
});
