/**
 * PUT /environments/{tenant}/{region}/{cluster} in the sandbox: an update converges the cluster to the new generation
 * (what is new created, what changed changed, what is no longer wanted removed last), a failed update puts the previous
 * generation back, and what cannot be updated is refused up front.
 */
import { describe, expect, it } from "vitest";
import { CreateRoleCommand } from "@aws-sdk/client-iam";
import { iamClient } from "../../functions/lib/aws/clients.js";
import { EnvironmentRegistry } from "../../functions/lib/workflow/environment-registry.js";
import type { Sandbox } from "../../local/sandbox.js";
import {
  ACCOUNT_ID,
  CLUSTER,
  clusterState,
  FAST,
  finish,
  fusionRequest,
  iamRole,
  kubeClientAs,
  kubeObject,
  kubeObjects,
  mappedRoleArns,
  pvcRequest,
  sessionArnOf,
  settled,
  statusOf,
  stepResult,
  until,
  useSandbox,
  type Started,
} from "../support/sandbox-runs.js";
import { callApi, specOf } from "../support/teardown-runs.js";

/** A class that allows volume expansion in the sandbox (as on EKS: FSx for Lustre; EFS does not). */
const FSX = { type: "pvc", storageClass: "fsx-sc", size: "100Gi" } as const;
const environmentOf = (tenant: string) =>
  new EnvironmentRegistry().getEnvironment({ tenant, region: CLUSTER.region, cluster: CLUSTER.name });
const pathOf = (tenant: string) => `/environments/${tenant}/${CLUSTER.region}/${CLUSTER.name}`;

/** POST /environments and wait for the run: the environment's first generation, ready. */
async function create(sandbox: Sandbox, request: Record<string, unknown>): Promise<void> {
  const answer = await callApi(sandbox, "POST", "/environments", request);
  if (answer.status !== 202) throw new Error(`POST /environments answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  const run = await finish(sandbox, answer.body as Started);
  if (run.execution.status !== "SUCCEEDED") throw new Error(`the create run ended ${run.execution.status}: ${run.execution.cause}`);
  await settled(sandbox);
}

/** What the tests compare of an object: kind, name, labels, annotations and content (server-set metadata aside). */
function contentOf(object: any): unknown {
  const {
    resourceVersion: _rv,
    uid: _uid,
    creationTimestamp: _ct,
    managedFields: _mf,
    generation: _g,
    ...metadata
  } = object.metadata ?? {};
  const { status: _status, ...rest } = object;
  return { ...rest, metadata };
}

describe("PUT /environments/{tenant}/{region}/{cluster}", () => {
  let sandbox: Sandbox;
  useSandbox(FAST, (started) => ({ sandbox } = started));

  it("converges to the new generation: a bigger claim, a compute service account, another namespace and work directory; the old namespace is removed last", async () => {
    // Prepare
    const tenant = "upd-conv";
    const first = pvcRequest(tenant, { storage: FSX, namespace: "upd-conv-one" }) as Record<string, unknown>;
    await create(sandbox, first);
    const second = {
      ...specOf(first),
      namespace: "upd-conv-two",
      computeServiceAccount: "upd-conv-compute",
      storage: { type: "pvc", storageClass: "fsx-sc", size: "200Gi", mountPath: "/data" },
    };

    // Act
    const answer = await callApi(sandbox, "PUT", pathOf(tenant), second);
    const updating = await environmentOf(tenant);
    const run = await finish(sandbox, answer.body as Started);
    await settled(sandbox);

    // Assess
    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ generation: 2, environmentUrl: pathOf(tenant) });
    expect(updating).toMatchObject({ generation: 2, status: "updating" });
    expect(run.execution.status).toBe("SUCCEEDED");
    expect(stepResult(run, "RemoveUnwantedResources").removed).toEqual(["Namespace upd-conv-one"]);
    await until("the old namespace to be gone", () => !kubeObject(sandbox, "Namespace", undefined, "upd-conv-one"));
    expect(
      kubeObjects(sandbox, "ServiceAccount", "upd-conv-two")
        .map((sa) => sa.metadata.name)
        .sort(),
    ).toEqual(["default", "tower-launcher-sa", "upd-conv-compute"]);
    expect(kubeObject(sandbox, "PersistentVolumeClaim", "upd-conv-two", "tower-scratch")?.spec.resources.requests.storage).toBe("200Gi");
    expect(kubeObject(sandbox, "ConfigMap", "upd-conv-two", "nextflow-config")?.data["nextflow.config"]).toContain(
      "workDir = '/data/work'",
    );
    expect(kubeObjects(sandbox, "RoleBinding", "upd-conv-two")).toHaveLength(2);
    const record = await environmentOf(tenant);
    expect(record).toMatchObject({
      generation: 2,
      status: "ready",
      spec: { namespace: "upd-conv-two", computeServiceAccount: "upd-conv-compute" },
    });
    expect(record?.lease).toBeUndefined();
    const owned = (record?.owned.kubernetes as Array<{ kind: string; namespace?: string; name: string }>) ?? [];
    expect(owned.filter((ref) => ref.namespace === "upd-conv-one" || ref.name === "upd-conv-one")).toEqual([]);
    expect(owned.map((ref) => `${ref.kind} ${ref.namespace ?? ""}/${ref.name}`)).toEqual(
      expect.arrayContaining([
        "Namespace /upd-conv-two",
        "ServiceAccount upd-conv-two/upd-conv-compute",
        "PersistentVolumeClaim upd-conv-two/tower-scratch",
        "ConfigMap upd-conv-two/nextflow-config",
      ]),
    );
  });

  it("grows a claim in place (a merge patch of its size) where its StorageClass allows expansion, and removes a compute service account no longer wanted", async () => {
    // Prepare
    const tenant = "upd-grow";
    const first = pvcRequest(tenant, { storage: FSX, namespace: "upd-grow", computeServiceAccount: "upd-grow-compute" }) as Record<
      string,
      unknown
    >;
    await create(sandbox, first);
    const { computeServiceAccount: _dropped, ...rest } = specOf(first);
    const second = { ...rest, storage: { type: "pvc", storageClass: "fsx-sc", size: "150Gi" } };

    // Act
    const answer = await callApi(sandbox, "PUT", pathOf(tenant), second);
    const run = await finish(sandbox, answer.body as Started);

    // Assess
    expect(run.execution.status).toBe("SUCCEEDED");
    expect(stepResult(run, "ConfigureStorage").grown).toEqual([
      { claim: "tower-scratch", namespace: "upd-grow", from: "100Gi", to: "150Gi" },
    ]);
    expect(kubeObject(sandbox, "PersistentVolumeClaim", "upd-grow", "tower-scratch")?.spec.resources.requests.storage).toBe("150Gi");
    expect(kubeObject(sandbox, "ServiceAccount", "upd-grow", "upd-grow-compute")).toBeUndefined();
    expect(stepResult(run, "RemoveUnwantedResources").removed).toEqual(["ServiceAccount upd-grow/upd-grow-compute"]);
    expect(await environmentOf(tenant)).toMatchObject({ generation: 2, status: "ready" });
  });

  it("Fusion (Pod Identity) → PVC: the workload role and its Pod Identity associations are removed after the rest, the launcher role stays", async () => {
    // Prepare
    const tenant = "upd-fus";
    const first = fusionRequest(tenant, { namespace: "upd-fus", podIdentity: true }) as Record<string, unknown>;
    await create(sandbox, first);
    const before = await environmentOf(tenant);
    const roleNames = ((before?.owned.roles ?? []) as string[]).map((arn) => arn.slice(arn.lastIndexOf("/") + 1));
    const workload = roleNames.find((name) => name.endsWith("-workload"))!;
    const launcher = roleNames.find((name) => name.endsWith("-launcher"))!;
    const associations = (before?.owned.podIdentityAssociations ?? []) as string[];
    const workloadBefore = iamRole(sandbox, workload);
    const second = { ...specOf(first), storage: { type: "pvc", storageClass: "fsx-sc", size: "100Gi" } };

    // Act
    const answer = await callApi(sandbox, "PUT", pathOf(tenant), second);
    const run = await finish(sandbox, answer.body as Started);
    await settled(sandbox);

    // Assess
    expect(associations.length).toBeGreaterThan(0);
    expect(workloadBefore).toBeDefined();
    expect(run.execution.status, run.execution.cause).toBe("SUCCEEDED");
    const removal = stepResult(run, "RemoveUnwantedIdentities");
    expect(removal.removed).toEqual([
      ...associations.map((id) => expect.stringContaining(`Pod Identity association ${id}`)),
      `IAM role ${workload}`,
    ]);
    expect(removal.kept).toEqual([]);
    expect(iamRole(sandbox, workload)).toBeUndefined();
    expect(iamRole(sandbox, launcher)).toBeDefined();
    for (const id of associations) expect(clusterState(sandbox).podIdentityAssociations.has(id)).toBe(false);
    expect(await environmentOf(tenant)).toMatchObject({ generation: 2, status: "ready", owned: { podIdentityAssociations: [] } });
  });

  it("a permanent fault during an update puts the previous generation back: objects as before (the growth said, not undone), the record at generation 1, the error reported", async () => {
    // Prepare
    const tenant = "upd-fail";
    const first = pvcRequest(tenant, { storage: FSX, namespace: "upd-fail", computeServiceAccount: "upd-fail-compute" }) as Record<
      string,
      unknown
    >;
    await create(sandbox, first);
    const before = kubeObjects(sandbox, "ConfigMap", "upd-fail").concat(
      kubeObjects(sandbox, "ServiceAccount", "upd-fail"),
      kubeObjects(sandbox, "RoleBinding", "upd-fail"),
    );
    const { computeServiceAccount: _dropped, ...rest } = specOf(first);
    const second = { ...rest, storage: { type: "pvc", storageClass: "fsx-sc", size: "120Gi", mountPath: "/data" } };
    // The last step's removal of the compute service account fails for good, after every other change was made.
    sandbox.faults.inject({ operation: "kube:DELETE serviceaccounts", kind: "permanent" });

    // Act
    const answer = await callApi(sandbox, "PUT", pathOf(tenant), second);
    const run = await finish(sandbox, answer.body as Started);
    sandbox.faults.clear();
    await settled(sandbox);

    // Assess
    expect(answer.status).toBe(202);
    expect(run.execution.status).toBe("FAILED");
    expect(run.execution.cause).toContain("Step RemoveUnwantedResources failed");
    expect(run.execution.cause).toContain("grown from 100Gi to 120Gi by this run; a claim cannot shrink, so the growth is not undone");
    expect(run.execution.cause).toContain("generation 1 is the desired spec again (status ready)");
    const after = kubeObjects(sandbox, "ConfigMap", "upd-fail").concat(
      kubeObjects(sandbox, "ServiceAccount", "upd-fail"),
      kubeObjects(sandbox, "RoleBinding", "upd-fail"),
    );
    expect(after.map(contentOf)).toEqual(before.map(contentOf));
    expect(kubeObject(sandbox, "ConfigMap", "upd-fail", "nextflow-config")?.data["nextflow.config"]).toContain("workDir = '/scratch/work'");
    expect(kubeObject(sandbox, "PersistentVolumeClaim", "upd-fail", "tower-scratch")?.spec.resources.requests.storage).toBe("120Gi");
    const record = await environmentOf(tenant);
    expect(record).toMatchObject({
      generation: 1,
      status: "ready",
      spec: { computeServiceAccount: "upd-fail-compute", storage: { size: "100Gi", mountPath: "/scratch" } },
    });
    expect(record?.lastFailure).toMatchObject({ error: run.execution.error, generation: 2 });
    expect(record?.lease).toBeUndefined();
  });

  it("a growth the claim's StorageClass does not allow fails the run with VolumeExpansionNotAllowed and changes nothing", async () => {
    // Prepare
    const tenant = "upd-efs";
    const first = pvcRequest(tenant, { namespace: "upd-efs", storage: { type: "pvc", storageClass: "efs-sc", size: "10Gi" } }) as Record<
      string,
      unknown
    >;
    await create(sandbox, first);
    const second = {
      ...specOf(first),
      computeServiceAccount: "upd-efs-compute",
      storage: { type: "pvc", storageClass: "efs-sc", size: "20Gi" },
    };

    // Act
    const answer = await callApi(sandbox, "PUT", pathOf(tenant), second);
    const run = await finish(sandbox, answer.body as Started);

    // Assess
    expect(run.execution.status).toBe("FAILED");
    expect(run.execution.error).toBe("VolumeExpansionNotAllowed");
    expect(run.execution.cause).toContain("its StorageClass efs-sc does not allow volume expansion");
    expect(kubeObject(sandbox, "PersistentVolumeClaim", "upd-efs", "tower-scratch")?.spec.resources.requests.storage).toBe("10Gi");
    expect(kubeObject(sandbox, "ServiceAccount", "upd-efs", "upd-efs-compute")).toBeUndefined();
    expect(await environmentOf(tenant)).toMatchObject({ generation: 1, status: "ready", spec: { storage: { size: "10Gi" } } });
  });

  it("refuses a claim that would shrink (and every other problem at once) with 400, and starts nothing", async () => {
    // Prepare
    const tenant = "upd-shrink";
    const first = pvcRequest(tenant, { storage: FSX, namespace: "upd-shrink" }) as Record<string, unknown>;
    await create(sandbox, first);
    const bad = {
      ...specOf(first),
      tenant: "someone-else",
      headJob: { pipeline: "nextflow-io/hello" },
      storage: { type: "pvc", storageClass: "fsx-sc", size: "50Gi" },
    };

    // Act
    const answer = await callApi(sandbox, "PUT", pathOf(tenant), bad);

    // Assess
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe("InvalidRequest");
    expect(answer.body.problems.map((p: { path: string }) => p.path).sort()).toEqual(["headJob", "storage.size", "tenant"]);
    expect(answer.body.problems.find((p: { path: string }) => p.path === "storage.size").message).toContain(
      "PersistentVolumeClaim upd-shrink/tower-scratch holds 100Gi: a claim can only grow, not shrink to 50Gi",
    );
    expect(await environmentOf(tenant)).toMatchObject({ generation: 1, status: "ready" });
  });

  it("answers 200 with nothing to do for the recorded spec, 404 for an unknown environment, and 409 RunInProgress while a run holds the lease", async () => {
    // Prepare
    const tenant = "upd-misc";
    const first = pvcRequest(tenant, { storage: FSX, namespace: "upd-misc" }) as Record<string, unknown>;
    await create(sandbox, first);
    const bigger = { ...specOf(first), storage: { type: "pvc", storageClass: "fsx-sc", size: "110Gi" } };

    // Act
    const same = await callApi(sandbox, "PUT", pathOf(tenant), specOf(first));
    const unknown = await callApi(sandbox, "PUT", pathOf("upd-nobody"), specOf(first));
    const started = await callApi(sandbox, "PUT", pathOf(tenant), bigger);
    const concurrent = await callApi(sandbox, "PUT", pathOf(tenant), { ...bigger, computeServiceAccount: "upd-misc-compute" });
    const run = await finish(sandbox, started.body as Started);

    // Assess
    expect(same.status).toBe(200);
    expect(same.body.environment).toMatchObject({ generation: 1, status: "ready" });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe("EnvironmentNotFound");
    expect(started.status).toBe(202);
    expect(concurrent.status).toBe(409);
    expect(concurrent.body).toMatchObject({ error: "RunInProgress", executionArn: started.body.executionArn });
    expect(run.execution.status).toBe("SUCCEEDED");
    expect(await environmentOf(tenant)).toMatchObject({ generation: 2, status: "ready", spec: { storage: { size: "110Gi" } } });
  });
});

/** Two launcher roles the platform team made (a request may name an existing principal). */
const LAUNCHER_OLD = `arn:aws:iam::${ACCOUNT_ID}:role/upd-seqera-old`;
const LAUNCHER_NEW = `arn:aws:iam::${ACCOUNT_ID}:role/upd-seqera-new`;

async function createLauncherRoles(sandbox: Sandbox): Promise<void> {
  const trust = {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT_ID}:root` }, Action: "sts:AssumeRole" }],
  };
  for (const arn of [LAUNCHER_OLD, LAUNCHER_NEW]) {
    const name = arn.slice(arn.lastIndexOf("/") + 1);
    if (!iamRole(sandbox, name))
      await iamClient().send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: JSON.stringify(trust) }));
  }
}

/** What a launcher (a session of its role) gets when it lists the pods of the tenant's namespace with an EKS token (200: let in). */
async function listPodsAs(sandbox: Sandbox, roleArn: string, namespace: string): Promise<number> {
  return statusOf((await kubeClientAs(sandbox, sessionArnOf(roleArn))).listNamespacedPod({ namespace }));
}

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("PUT naming another launcher on a %s cluster", (authenticationMode) => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode }, (started) => ({ sandbox } = started));

  it("removes the former launcher's cluster access last, exactly it: the old launcher is no longer let in, the new one is", async () => {
    // Prepare
    const tenant = authenticationMode === "CONFIG_MAP" ? "upd-who-map" : "upd-who";
    await createLauncherRoles(sandbox);
    const first = pvcRequest(tenant, {
      storage: FSX,
      namespace: tenant,
      launcher: { mode: "existing", principalArn: LAUNCHER_OLD },
    }) as Record<string, unknown>;
    await create(sandbox, first);
    const oldLetInBefore = await listPodsAs(sandbox, LAUNCHER_OLD, tenant);
    const second = { ...specOf(first), launcher: { mode: "existing", principalArn: LAUNCHER_NEW } };

    // Act
    const answer = await callApi(sandbox, "PUT", pathOf(tenant), second);
    const run = await finish(sandbox, answer.body as Started);
    await settled(sandbox);

    // Assess
    expect(oldLetInBefore).toBe(200);
    expect(run.execution.status, run.execution.cause).toBe("SUCCEEDED");
    const removal = stepResult(run, "RemoveUnwantedResources");
    expect(await listPodsAs(sandbox, LAUNCHER_OLD, tenant)).toBe(401);
    expect(await listPodsAs(sandbox, LAUNCHER_NEW, tenant)).toBe(200);
    if (authenticationMode === "CONFIG_MAP") {
      expect(removal.removed).toEqual([`aws-auth mapping for ${LAUNCHER_OLD}`]);
      expect(mappedRoleArns(sandbox)).not.toContain(LAUNCHER_OLD);
      expect(mappedRoleArns(sandbox)).toContain(LAUNCHER_NEW);
    } else {
      expect(removal.removed).toEqual([`EKS access entry ${LAUNCHER_OLD} on ${CLUSTER.name}`]);
      expect(clusterState(sandbox).accessEntries.has(LAUNCHER_OLD)).toBe(false);
      expect(clusterState(sandbox).accessEntries.get(LAUNCHER_NEW)).toMatchObject({ username: `tower-launcher-user-${tenant}` });
    }
    expect(removal.kept.filter((line: string) => line.includes(LAUNCHER_OLD))).toEqual([]);
    expect(await environmentOf(tenant)).toMatchObject({
      generation: 2,
      status: "ready",
      owned: { clusterAccess: { principalArn: LAUNCHER_NEW } },
    });
  });
});
