import { describe, expect, it } from "vitest";
import type { V1ConfigMap, V1PersistentVolumeClaim, V1ServiceAccount } from "@kubernetes/client-node";
import * as storageStep from "../../functions/steps/storage.js";
import { CONFIG_CHANGE_ANNOTATION, createStorageStep, IRSA_CHANGE_ANNOTATION } from "../../functions/steps/storage.js";
import { IRSA_ANNOTATION, NEXTFLOW_CONFIGMAP, ownershipLabels } from "../../functions/lib/domain/naming.js";
import { buildNextflowConfig } from "../../functions/lib/domain/nextflow-config.js";
import { parseRequest } from "../../functions/lib/domain/request.js";
import type { IamResult, StorageResult, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { ACCOUNT, NS, OTHER_RUN, RUN, resolvedCluster, stepState, useFakeKube, markOf } from "../support/fixtures.js";

const WORKLOAD_ROLE = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-workload`;
const OLD_ROLE = `arn:aws:iam::${ACCOUNT}:role/legacy-genomics`;

const CLUSTER = resolvedCluster({ oidcIssuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE" });

const IAM: IamResult = {
  launcherArn: `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-launcher`,
  launcherKind: "role",
  launcherCreated: true,
  workloadRoleArn: WORKLOAD_ROLE,
  created: [],
};

const PVC = { storage: { type: "pvc", storageClass: "efs-sc", size: "500Gi" } };
const FUSION = { storage: { type: "fusion", bucket: "genomics-work" }, computeServiceAccount: "tower-compute-sa" };
const HEAD_JOB = { headJob: { pipeline: "nf-core/rnaseq", params: { input: "s3://genomics-work/samplesheet.csv", genome: "GRCh38" } } };
/** A request whose nextflow.config differs from PVC's (the work directory is elsewhere). */
const PVC_ELSEWHERE = { storage: { ...PVC.storage, mountPath: "/data" } };

function stateFor(request: Record<string, unknown>, executionName = RUN, extra: Partial<WorkflowState> = {}): WorkflowState {
  return stepState(request, executionName, { cluster: CLUSTER, iam: IAM, ...extra });
}

const kube = useFakeKube({ requireNamespace: true });
/** The step's handlers, handed this test's fake cluster through the step's factory. */
const apply = (state: WorkflowState) => createStorageStep({ kube: kube() }).apply(state);
const compensate = (state: WorkflowState) => createStorageStep({ kube: kube() }).compensate(state);

/** What CreateNamespaceAndRbac leaves behind for this tenant. */
function seedNamespaceAndServiceAccounts(
  annotations: Record<string, Record<string, string>> = {},
  labels = ownershipLabels("genomics", markOf(RUN)),
): void {
  kube().seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels } });
  for (const name of ["tower-launcher-sa", "tower-compute-sa"]) {
    kube().seed({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name, namespace: NS, labels, ...(annotations[name] ? { annotations: annotations[name] } : {}) },
    });
  }
}

function serviceAccount(name: string): V1ServiceAccount {
  return kube().get<V1ServiceAccount>("v1", "ServiceAccount", name, NS)!;
}

function configMap(): V1ConfigMap {
  return kube().get<V1ConfigMap>("v1", "ConfigMap", NEXTFLOW_CONFIGMAP, NS)!;
}

describe("createStorageStep", () => {
  it("acts on the cluster client it is given, not on the one built from $.cluster", async () => {
    // Prepare
    const given = new FakeKubeApi({ requireNamespace: true });
    given.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: ownershipLabels("genomics", markOf(RUN)) } });
    const step = createStorageStep({ kube: given });
    // Act
    await step.apply(stateFor(PVC));
    // Assess
    expect(given.inventory()).toEqual([
      `ConfigMap/${NS}/${NEXTFLOW_CONFIGMAP}`,
      `Namespace/${NS}`,
      `PersistentVolumeClaim/${NS}/tower-scratch`,
    ]);
    expect(kube().calls).toEqual([]);
    // Act
    await step.compensate(stateFor(PVC));
    // Assess
    expect(given.inventory()).toEqual([`Namespace/${NS}`]);
    expect(kube().calls).toEqual([]);
  });

  it("exports the catalog's handlers, which build their client from $.cluster on each call", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    // Act
    await storageStep.apply(stateFor(PVC));
    // Assess
    expect(kube().inventory()).toContain(`PersistentVolumeClaim/${NS}/tower-scratch`);
    // Act
    await storageStep.compensate(stateFor(PVC));
    // Assess
    expect(kube().inventory()).not.toContain(`PersistentVolumeClaim/${NS}/tower-scratch`);
  });
});

describe("ConfigureStorage with a PVC", () => {
  it("creates the ReadWriteMany claim and the nextflow ConfigMap with nextflow.config only (a head job's params are its own)", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    const state = stateFor({ ...PVC, ...HEAD_JOB });
    // Act
    const result = await apply(state);
    // Assess
    const expectedConfig = buildNextflowConfig(parseRequest(state.request), { workloadRoleArn: WORKLOAD_ROLE });
    expect(result).toEqual({
      type: "pvc",
      claimName: "tower-scratch",
      mountPath: "/scratch",
      annotated: [],
      configMap: NEXTFLOW_CONFIGMAP,
      nextflowConfig: expectedConfig,
      created: [
        { apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: NS, name: "tower-scratch" },
        { apiVersion: "v1", kind: "ConfigMap", namespace: NS, name: NEXTFLOW_CONFIGMAP },
      ],
    } satisfies StorageResult);
    const claim = kube().get<V1PersistentVolumeClaim>("v1", "PersistentVolumeClaim", "tower-scratch", NS)!;
    expect(claim.spec).toEqual({
      accessModes: ["ReadWriteMany"],
      storageClassName: "efs-sc",
      resources: { requests: { storage: "500Gi" } },
    });
    expect(claim.metadata?.labels).toMatchObject(ownershipLabels("genomics", markOf(RUN)));
    expect(configMap().data).toEqual({ "nextflow.config": expectedConfig });
    expect(serviceAccount("tower-launcher-sa").metadata?.annotations).toBeUndefined();
  });

  it("changes nothing when re-run, by this execution or by another one", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    const first = await apply(stateFor(PVC));
    const mutations = kube().mutations;
    // Act
    const retried = await apply(stateFor(PVC));
    const rerun = await apply(stateFor(PVC, OTHER_RUN));
    // Assess
    expect(kube().mutations).toBe(mutations);
    expect(retried).toEqual(first);
    expect(rerun.created).toEqual([]);
    expect(
      kube()
        .inventory()
        .filter((o) => !o.startsWith("ServiceAccount")),
    ).toEqual([`ConfigMap/${NS}/${NEXTFLOW_CONFIGMAP}`, `Namespace/${NS}`, `PersistentVolumeClaim/${NS}/tower-scratch`]);
  });

  it("refuses a claim that exists without our marks and leaves it alone", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    kube().seed({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "tower-scratch", namespace: NS },
      spec: { accessModes: ["ReadWriteOnce"] },
    });
    // Act
    const outcome = apply(stateFor(PVC));
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: "OwnershipConflict",
      message: expect.stringContaining(`PersistentVolumeClaim ${NS}/tower-scratch`),
    });
    expect(kube().get<V1PersistentVolumeClaim>("v1", "PersistentVolumeClaim", "tower-scratch", NS)?.spec?.accessModes).toEqual([
      "ReadWriteOnce",
    ]);
    expect(kube().mutations).toBe(0);
  });

  it("refuses a nextflow ConfigMap it does not own", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    kube().seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: NEXTFLOW_CONFIGMAP, namespace: NS },
      data: { "nextflow.config": "hand-written" },
    });
    // Act
    const outcome = apply(stateFor(PVC));
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict" });
    expect(configMap().data).toEqual({ "nextflow.config": "hand-written" });
  });

  it("updates our ConfigMap when its content differs, and the compensator restores the content before", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    await apply(stateFor(PVC, OTHER_RUN));
    const before = configMap().data;
    // Act
    const result = await apply(stateFor(PVC_ELSEWHERE));
    const afterUpdate = configMap();
    const undone = await compensate(stateFor(PVC_ELSEWHERE, RUN, { storage: result }));
    // Assess
    expect(result.created).toEqual([]);
    expect(afterUpdate.data?.["nextflow.config"]).toContain("/data");
    expect(afterUpdate.data?.["nextflow.config"]).not.toBe(before?.["nextflow.config"]);
    expect(JSON.parse(afterUpdate.metadata?.annotations?.[CONFIG_CHANGE_ANNOTATION] ?? "").previous).toEqual(before);
    expect(configMap().data).toEqual(before);
    expect(configMap().metadata?.annotations?.[CONFIG_CHANGE_ANNOTATION]).toBeUndefined();
    expect(undone.undone).toEqual([`ConfigMap ${NS}/${NEXTFLOW_CONFIGMAP} (restored the previous content)`]);
    // The claim the earlier run created stays.
    expect(kube().get("v1", "PersistentVolumeClaim", "tower-scratch", NS)).toBeDefined();
  });

  it("leaves a ConfigMap changed after this run's update as it is, and reports it as not undone", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    await apply(stateFor(PVC, OTHER_RUN));
    const result = await apply(stateFor(PVC_ELSEWHERE));
    const updated = configMap();
    kube().seed({ ...updated, data: { ...updated.data, "nextflow.config": `${updated.data?.["nextflow.config"]}\n// tuned by hand` } });
    const tuned = configMap().data;
    // Act
    const undone = await compensate(stateFor(PVC_ELSEWHERE, RUN, { storage: result }));
    // Assess
    expect(configMap().data).toEqual(tuned);
    expect(undone.undone).toEqual([]);
    expect(undone.failed).toEqual([
      `ConfigMap ${NS}/${NEXTFLOW_CONFIGMAP}: changed since this run wrote it, so the content before was not put back`,
    ]);
  });

  it("keeps the content from before this run when a retry of the run rewrites the ConfigMap again", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    await apply(stateFor(PVC, OTHER_RUN));
    const original = configMap().data;
    await apply(stateFor(PVC_ELSEWHERE));
    const edited = configMap();
    kube().seed({ ...edited, data: { ...edited.data, "nextflow.config": "edited by hand in between" } });
    // Act
    await apply(stateFor(PVC_ELSEWHERE));
    // Assess
    expect(configMap().data?.["nextflow.config"]).not.toBe("edited by hand in between");
    expect(JSON.parse(configMap().metadata?.annotations?.[CONFIG_CHANGE_ANNOTATION] ?? "").previous).toEqual(original);
  });
});

describe("ConfigureStorage with Fusion", () => {
  it("annotates the head and compute service accounts with the workload role (IRSA) by merge patch", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    // Act
    const result = await apply(stateFor(FUSION));
    // Assess
    expect(result.annotated).toEqual([{ serviceAccount: "tower-launcher-sa" }, { serviceAccount: "tower-compute-sa" }]);
    expect(result.type).toBe("fusion");
    expect(result.created).toEqual([{ apiVersion: "v1", kind: "ConfigMap", namespace: NS, name: NEXTFLOW_CONFIGMAP }]);
    for (const name of ["tower-launcher-sa", "tower-compute-sa"]) {
      expect(serviceAccount(name).metadata?.annotations?.[IRSA_ANNOTATION]).toBe(WORKLOAD_ROLE);
      expect(serviceAccount(name).metadata?.labels).toEqual(ownershipLabels("genomics", markOf(RUN)));
    }
    expect(
      kube()
        .callsOf("patch")
        .map((c) => c.patchStrategy),
    ).toEqual(["application/merge-patch+json", "application/merge-patch+json"]);
    expect(configMap().data?.["nextflow.config"]).toContain("fusion {");
  });

  it("does not patch again on a re-run", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    await apply(stateFor(FUSION));
    const mutations = kube().mutations;
    // Act
    const again = await apply(stateFor(FUSION, OTHER_RUN));
    // Assess
    expect(kube().mutations).toBe(mutations);
    expect(again.annotated).toEqual([]);
  });

  it("remembers the previous value across a retry of the same run", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts({ "tower-launcher-sa": { [IRSA_ANNOTATION]: OLD_ROLE } });
    kube().faults.inject({ operation: "kube:POST configmaps", kind: "throttle", times: 1 });
    await expect(apply(stateFor(FUSION))).rejects.toMatchObject({ name: "Throttled" });
    // Act
    const retried = await apply(stateFor(FUSION));
    // Assess
    expect(retried.annotated).toEqual([
      { serviceAccount: "tower-launcher-sa", previous: OLD_ROLE },
      { serviceAccount: "tower-compute-sa" },
    ]);
  });

  it("refuses to overwrite a different role on a service account it does not own", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts({ "tower-launcher-sa": { [IRSA_ANNOTATION]: OLD_ROLE } }, { team: "someone-else" });
    // Act
    const outcome = apply(stateFor(FUSION));
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining(OLD_ROLE) });
    expect(serviceAccount("tower-launcher-sa").metadata?.annotations).toEqual({ [IRSA_ANNOTATION]: OLD_ROLE });
    expect(kube().mutations).toBe(0);
  });

  it("needs the workload role from CreateIamResources", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    const state = stateFor(FUSION, RUN, { iam: { ...IAM, workloadRoleArn: undefined } });
    // Act
    const outcome = apply(state);
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "InvalidRequest", message: expect.stringContaining("workloadRoleArn") });
  });

  it("with Pod Identity, annotates nothing and only writes the ConfigMap", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    // Act
    const result = await apply(stateFor({ ...FUSION, storage: { type: "fusion", bucket: "genomics-work", podIdentity: true } }));
    // Assess
    expect(result.annotated).toEqual([]);
    expect(kube().callsOf("patch")).toEqual([]);
    expect(serviceAccount("tower-launcher-sa").metadata?.annotations).toBeUndefined();
    expect(configMap()).toBeDefined();
  });
});

describe("UndoStorage", () => {
  it("deletes the claim and ConfigMap this run created, and can run twice", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    const storage = await apply(stateFor(PVC));
    // Act
    const first = await compensate(stateFor(PVC, RUN, { storage }));
    const second = await compensate(stateFor(PVC, RUN, { storage }));
    // Assess
    expect(first.undone).toEqual([`ConfigMap ${NS}/${NEXTFLOW_CONFIGMAP}`, `PersistentVolumeClaim ${NS}/tower-scratch`]);
    expect(second).toEqual({ undone: [], kept: [] });
    expect(kube().inventory()).toEqual([
      `Namespace/${NS}`,
      `ServiceAccount/${NS}/tower-compute-sa`,
      `ServiceAccount/${NS}/tower-launcher-sa`,
    ]);
  });

  it("keeps the claim and ConfigMap an earlier run created", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    await apply(stateFor(PVC, OTHER_RUN));
    const storage = await apply(stateFor(PVC));
    const mutations = kube().mutations;
    // Act
    const result = await compensate(stateFor(PVC, RUN, { storage }));
    // Assess
    expect(kube().mutations).toBe(mutations);
    expect(result).toEqual({
      undone: [],
      kept: [
        `ConfigMap ${NS}/${NEXTFLOW_CONFIGMAP}: not created by this run`,
        `PersistentVolumeClaim ${NS}/tower-scratch: not created by this run`,
      ],
    });
  });

  it("restores the previous role annotation, and removes the one it added where there was none", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts({ "tower-launcher-sa": { [IRSA_ANNOTATION]: OLD_ROLE, other: "kept" } });
    const storage = await apply(stateFor(FUSION));
    expect(serviceAccount("tower-launcher-sa").metadata?.annotations?.[IRSA_ANNOTATION]).toBe(WORKLOAD_ROLE);
    // Act
    const result = await compensate(stateFor(FUSION, RUN, { storage }));
    const again = await compensate(stateFor(FUSION, RUN, { storage }));
    // Assess
    expect(serviceAccount("tower-launcher-sa").metadata?.annotations).toEqual({ [IRSA_ANNOTATION]: OLD_ROLE, other: "kept" });
    expect(serviceAccount("tower-compute-sa").metadata?.annotations ?? {}).toEqual({});
    expect(result.undone).toEqual([
      `ConfigMap ${NS}/${NEXTFLOW_CONFIGMAP}`,
      `${IRSA_ANNOTATION} on ServiceAccount ${NS}/tower-launcher-sa (restored ${OLD_ROLE})`,
      `${IRSA_ANNOTATION} on ServiceAccount ${NS}/tower-compute-sa (removed)`,
    ]);
    expect(again).toEqual({ undone: [], kept: [] });
  });

  it("leaves an annotation someone changed after this run set it, reported as not undone", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    const storage = await apply(stateFor(FUSION));
    const sa = serviceAccount("tower-compute-sa");
    kube().seed({ ...sa, metadata: { ...sa.metadata, annotations: { ...sa.metadata?.annotations, [IRSA_ANNOTATION]: OLD_ROLE } } });
    // Act
    const result = await compensate(stateFor(FUSION, RUN, { storage }));
    // Assess
    expect(serviceAccount("tower-compute-sa").metadata?.annotations?.[IRSA_ANNOTATION]).toBe(OLD_ROLE);
    expect(result.failed).toEqual([
      `${IRSA_ANNOTATION} on ServiceAccount ${NS}/tower-compute-sa: changed since this run set it, so the value before was not put back`,
    ]);
    expect(serviceAccount("tower-launcher-sa").metadata?.annotations?.[IRSA_ANNOTATION]).toBeUndefined();
  });

  it("leaves annotations another run set", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    await apply(stateFor(FUSION, OTHER_RUN));
    const mutations = kube().mutations;
    // Act
    const result = await compensate(stateFor(FUSION));
    // Assess
    expect(kube().mutations).toBe(mutations);
    expect(serviceAccount("tower-launcher-sa").metadata?.annotations?.[IRSA_ANNOTATION]).toBe(WORKLOAD_ROLE);
    expect(result.kept).toEqual([`ConfigMap ${NS}/${NEXTFLOW_CONFIGMAP}: not created by this run`]);
  });

  it("after a half-way failure ($.storage empty), still restores annotations and deletes what was created, by marks", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts({ "tower-launcher-sa": { [IRSA_ANNOTATION]: OLD_ROLE } });
    kube().faults.inject({ operation: "kube:POST configmaps", kind: "5xx" });
    await expect(apply(stateFor(FUSION))).rejects.toMatchObject({ name: "ClusterUnreachable" });
    expect(JSON.parse(serviceAccount("tower-launcher-sa").metadata?.annotations?.[IRSA_CHANGE_ANNOTATION] ?? "")).toMatchObject({
      previous: OLD_ROLE,
      value: WORKLOAD_ROLE,
    });
    // Act
    const result = await compensate(stateFor(FUSION));
    // Assess
    expect(serviceAccount("tower-launcher-sa").metadata?.annotations).toEqual({ [IRSA_ANNOTATION]: OLD_ROLE });
    expect(serviceAccount("tower-compute-sa").metadata?.annotations ?? {}).toEqual({});
    expect(result.undone).toHaveLength(2);
  });

  it("after a half-way failure of a PVC run, deletes the claim it created", async () => {
    // Prepare
    seedNamespaceAndServiceAccounts();
    kube().faults.inject({ operation: "kube:POST configmaps", kind: "5xx" });
    await expect(apply(stateFor(PVC))).rejects.toMatchObject({ name: "ClusterUnreachable" });
    // Act
    const result = await compensate(stateFor(PVC));
    // Assess
    expect(result.undone).toEqual([`PersistentVolumeClaim ${NS}/tower-scratch`]);
    expect(kube().get("v1", "PersistentVolumeClaim", "tower-scratch", NS)).toBeUndefined();
  });
});
