/**
 * CreateNamespaceAndRbac (functions/steps/rbac.ts): the factory's seam, what the step creates and marks, its retries,
 * re-runs and ownership refusals, the namespace's quota and its Pod Security level. The undo: rbac-undo.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { V1Namespace, V1ResourceQuota, V1Role, V1RoleBinding, V1ServiceAccount } from "@kubernetes/client-node";
import * as rbacStep from "../../functions/steps/rbac.js";
import { createNamespaceAndRbacStep } from "../../functions/steps/rbac.js";
import { ANNOTATION_CREATED_BY, LABEL_CREATED_BY, ownershipLabels } from "../../functions/lib/domain/naming.js";
import type { NamespaceSettings } from "../../functions/lib/domain/deploy-config.js";
import { podSecurityLabels } from "../../functions/lib/domain/manifests.js";
import type { RbacResult, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { NS, OTHER_RUN, RUN, markOf } from "../support/fixtures.js";
import { EVERYTHING, RBAC, stateFor, useRbacStep } from "../support/rbac-step.js";

const { kube, apply, compensate } = useRbacStep();

describe("createNamespaceAndRbacStep", () => {
  it("acts on the cluster client it is given, not on the one built from $.cluster", async () => {
    // Prepare
    const given = new FakeKubeApi({ requireNamespace: true });
    const step = createNamespaceAndRbacStep({ kube: given });
    // Act
    await step.apply(stateFor());
    // Assess
    expect(given.inventory()).toEqual(EVERYTHING);
    expect(kube().calls).toEqual([]);
    // Act
    await step.compensate(stateFor());
    // Assess
    expect(given.inventory()).toEqual([]);
    expect(kube().calls).toEqual([]);
  });

  it("exports the catalog's handlers, which build their client from $.cluster on each call", async () => {
    // Act
    await rbacStep.apply(stateFor());
    // Assess
    expect(kube().inventory()).toEqual(EVERYTHING);
    // Act
    await rbacStep.compensate(stateFor());
    // Assess
    expect(kube().inventory()).toEqual([]);
  });
});

describe("CreateNamespaceAndRbac", () => {
  it("creates the runbook's namespace, service account, role and bindings, all marked with this run", async () => {
    // Prepare
    const state = stateFor({ labels: { team: "genomics" } });
    // Act
    const result = await apply(state);
    // Assess
    expect(kube().inventory()).toEqual(EVERYTHING);
    expect(result).toEqual({
      namespace: NS,
      serviceAccount: "tower-launcher-sa",
      role: "tower-launcher-role",
      created: [
        { apiVersion: "v1", kind: "Namespace", name: NS },
        { apiVersion: "v1", kind: "LimitRange", namespace: NS, name: "tenant-defaults" },
        { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", namespace: NS, name: "deny-from-other-namespaces" },
        { apiVersion: "v1", kind: "ServiceAccount", namespace: NS, name: "tower-launcher-sa" },
        { apiVersion: RBAC, kind: "Role", namespace: NS, name: "tower-launcher-role" },
        { apiVersion: RBAC, kind: "RoleBinding", namespace: NS, name: "tower-launcher-sa-binding" },
        { apiVersion: RBAC, kind: "RoleBinding", namespace: NS, name: "tower-launcher-user-genomics-binding" },
      ],
      adopted: [],
    } satisfies RbacResult);
    const namespace = kube().get<V1Namespace>("v1", "Namespace", NS)!;
    // The request's labels go on the objects, never on the Namespace (other tenants' NetworkPolicies select namespaces by label).
    expect(namespace.metadata?.labels).toEqual({ ...podSecurityLabels("baseline"), ...ownershipLabels("genomics", markOf(RUN)) });
    expect(kube().get(RBAC, "Role", "tower-launcher-role", NS)?.metadata?.labels?.team).toBe("genomics");
    expect(namespace.metadata?.annotations?.[ANNOTATION_CREATED_BY]).toBe(RUN);
    const userBinding = kube().get<V1RoleBinding>(RBAC, "RoleBinding", "tower-launcher-user-genomics-binding", NS)!;
    // The tenant's own user (TENANT is "genomics"): no other tenant's launcher is bound here.
    expect(userBinding.subjects).toEqual([{ kind: "User", name: "tower-launcher-user-genomics", apiGroup: "rbac.authorization.k8s.io" }]);
    expect(userBinding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tower-launcher-role" });
    const saBinding = kube().get<V1RoleBinding>(RBAC, "RoleBinding", "tower-launcher-sa-binding", NS)!;
    expect(saBinding.subjects).toEqual([{ kind: "ServiceAccount", name: "tower-launcher-sa", namespace: NS }]);
    const role = kube().get<V1Role>(RBAC, "Role", "tower-launcher-role", NS)!;
    expect(role.rules?.flatMap((r) => r.verbs)).not.toContain("*");
    expect(kube().calls.some((c) => c.kind.startsWith("Cluster"))).toBe(false);
  });

  it("creates the compute service account when the request asks for one, bound to nothing (task code makes no pods)", async () => {
    // Prepare
    const state = stateFor({ computeServiceAccount: "tower-compute-sa", namespace: "genomics-nf" });
    // Act
    const result = await apply(state);
    // Assess
    expect(result.computeServiceAccount).toBe("tower-compute-sa");
    expect(
      kube()
        .all<V1ServiceAccount>("ServiceAccount", "genomics-nf")
        .map((sa) => sa.metadata?.name),
    ).toEqual(["tower-compute-sa", "tower-launcher-sa"]);
    expect(kube().get<V1RoleBinding>(RBAC, "RoleBinding", "tower-compute-sa-binding", "genomics-nf")).toBeUndefined();
    const subjects = kube()
      .all<V1RoleBinding>("RoleBinding", "genomics-nf")
      .flatMap((b) => b.subjects ?? []);
    expect(subjects.map((s) => s.name)).not.toContain("tower-compute-sa");
    expect(result.created).toHaveLength(8);
  });

  it("creates the tenant Role without rules, then gives them by an update (the API server checks escalate by name)", async () => {
    // Act
    await apply(stateFor());
    // Assess
    const roleCalls = kube().calls.filter((c) => c.kind === "Role" && (c.verb === "create" || c.verb === "replace"));
    expect(roleCalls.map((c) => c.verb)).toEqual(["create", "replace"]);
    expect((roleCalls[0]!.body as V1Role).rules).toEqual([]);
    expect((roleCalls[1]!.body as V1Role).rules).toEqual(kube().get<V1Role>(RBAC, "Role", "tower-launcher-role", NS)!.rules);
    expect(kube().get<V1Role>(RBAC, "Role", "tower-launcher-role", NS)!.rules).toHaveLength(2);
  });

  it("gives an empty Role of ours its rules on a retry (a run that stopped between the two writes)", async () => {
    // Prepare
    kube().faults.inject({ operation: "kube:PUT roles", kind: "5xx", times: 1 });
    await expect(apply(stateFor())).rejects.toMatchObject({ name: "ClusterUnreachable" });
    expect(kube().get<V1Role>(RBAC, "Role", "tower-launcher-role", NS)!.rules).toEqual([]);
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(kube().get<V1Role>(RBAC, "Role", "tower-launcher-role", NS)!.rules).toHaveLength(2);
    expect(result.created.map((r) => r.kind)).toContain("Role");
  });

  it("changes nothing when this run's step is retried, and still reports the objects as this run's", async () => {
    // Prepare
    const first = await apply(stateFor());
    const before = kube()
      .all("RoleBinding")
      .map((o) => o.metadata?.resourceVersion);
    const mutations = kube().mutations;
    // Act
    const again = await apply(stateFor());
    // Assess
    expect(kube().mutations).toBe(mutations);
    expect(kube().inventory()).toEqual(EVERYTHING);
    expect(
      kube()
        .all("RoleBinding")
        .map((o) => o.metadata?.resourceVersion),
    ).toEqual(before);
    expect(again).toEqual(first);
  });

  it("adopts everything on a re-run by another execution, without writing", async () => {
    // Prepare
    await apply(stateFor({}, OTHER_RUN));
    const mutations = kube().mutations;
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(kube().mutations).toBe(mutations);
    expect(result.created).toEqual([]);
    expect(result.adopted.map((r) => `${r.kind}/${r.name}`)).toEqual([
      `Namespace/${NS}`,
      "LimitRange/tenant-defaults",
      "NetworkPolicy/deny-from-other-namespaces",
      "ServiceAccount/tower-launcher-sa",
      "Role/tower-launcher-role",
      "RoleBinding/tower-launcher-sa-binding",
      "RoleBinding/tower-launcher-user-genomics-binding",
    ]);
    // The marks still name the run that created them.
    expect(kube().get("v1", "ServiceAccount", "tower-launcher-sa", NS)?.metadata?.labels?.[LABEL_CREATED_BY]).toBe(markOf(OTHER_RUN));
  });

  it("refuses a namespace that exists without our marks, and creates nothing", async () => {
    // Prepare
    kube().seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: { owner: "platform" } } });
    // Act
    const outcome = apply(stateFor());
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining(`Namespace ${NS}`) });
    expect(kube().inventory()).toEqual([`Namespace/${NS}`]);
    expect(kube().get("v1", "Namespace", NS)?.metadata?.labels).toEqual({ owner: "platform" });
  });

  it("refuses objects another tenant owns", async () => {
    // Prepare
    kube().seed({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: NS, labels: ownershipLabels("proteomics", markOf("proteomics-run")) },
    });
    // Act
    const outcome = apply(stateFor());
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict" });
    expect(kube().mutations).toBe(0);
  });

  it("stops at a foreign service account, leaving it untouched", async () => {
    // Prepare
    await apply(stateFor({}, OTHER_RUN));
    kube().seed({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "tower-compute-sa", namespace: NS, annotations: { keep: "me" } },
    });
    // Act
    const outcome = apply(stateFor({ computeServiceAccount: "tower-compute-sa" }));
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: "OwnershipConflict",
      message: expect.stringContaining(`ServiceAccount ${NS}/tower-compute-sa`),
    });
    const foreign = kube().get("v1", "ServiceAccount", "tower-compute-sa", NS)!;
    expect(foreign.metadata?.labels).toBeUndefined();
    expect(foreign.metadata?.annotations).toEqual({ keep: "me" });
  });

  it("reads nothing from the IAM result (it runs beside CreateIamResources)", async () => {
    // Prepare
    const state = stateFor();
    expect(state.iam).toBeUndefined();
    // Act
    const result = await apply(state);
    // Assess
    expect(result.created).toHaveLength(7);
  });
});

describe("the namespace's quota", () => {
  const applyWith = (namespaceSettings: NamespaceSettings, state: WorkflowState) =>
    createNamespaceAndRbacStep({ kube: kube(), namespaceSettings }).apply(state);
  const settings = (namespaceQuota?: NamespaceSettings["namespaceQuota"]): NamespaceSettings => ({
    podSecurityLevel: "baseline",
    allowPrivilegedNamespaces: false,
    namespaceQuota,
  });
  const hard = () => kube().get<V1ResourceQuota>("v1", "ResourceQuota", "tenant-quota", NS)?.spec?.hard;

  it("makes none unless the request or the deployment sizes one", async () => {
    // Act
    await applyWith(settings(), stateFor());
    // Assess
    expect(hard()).toBeUndefined();
  });

  it("takes the request's sizes over the deployment's, field by field", async () => {
    // Act
    const result = await applyWith(settings({ cpu: "32", memory: "128Gi", pods: 500 }), stateFor({ quota: { cpu: "8" } }));
    // Assess
    expect(hard()).toEqual({ "requests.cpu": "8", "requests.memory": "128Gi", "limits.memory": "128Gi", pods: "500" });
    expect(result.created.map((r) => r.kind)).toContain("ResourceQuota");
  });

  it("refuses, before creating anything, a quota that cannot hold the head pod", async () => {
    // Act
    const refused = applyWith(settings({ memory: "1Gi" }), stateFor({ headJob: { pipeline: "nf-core/rnaseq", memory: "2Gi" } }));
    // Assess
    await expect(refused).rejects.toMatchObject({
      name: "InvalidRequest",
      message: expect.stringContaining("headJob.memory: the head pod's 2Gi does not fit this deployment's namespace quota (memory 1Gi)"),
    });
    expect(kube().inventory()).toEqual([]);
  });

  it("is undone with the rest", async () => {
    // Prepare
    const state = stateFor({ quota: { pods: 20 } });
    await applyWith(settings(), state);
    // Act
    const result = await compensate(state);
    // Assess
    expect(result.undone).toContain(`ResourceQuota ${NS}/tenant-quota`);
    expect(kube().inventory()).toEqual([]);
  });
});

describe("Pod Security of the namespace", () => {
  const applyWith = (namespaceSettings: NamespaceSettings, state: WorkflowState) =>
    createNamespaceAndRbacStep({ kube: kube(), namespaceSettings }).apply(state);
  const fusion = (privileged?: boolean) => ({
    storage: { type: "fusion", bucket: "genomics-work", ...(privileged === undefined ? {} : { privileged }) },
  });
  const enforced = () => kube().get<V1Namespace>("v1", "Namespace", NS)!.metadata!.labels!["pod-security.kubernetes.io/enforce"];

  it("enforces the deployment's level (baseline unless it chooses another)", async () => {
    // Act
    await applyWith({ podSecurityLevel: "restricted", allowPrivilegedNamespaces: false }, stateFor(fusion()));
    // Assess
    expect(enforced()).toBe("restricted");
  });

  it("refuses privileged Fusion where the deployment does not allow privileged namespaces, before creating anything", async () => {
    // Act
    const refused = applyWith({ podSecurityLevel: "baseline", allowPrivilegedNamespaces: false }, stateFor(fusion(true)));
    // Assess
    await expect(refused).rejects.toMatchObject({
      name: "InvalidRequest",
      message: expect.stringContaining("ALLOW_PRIVILEGED_NAMESPACES"),
    });
    expect(kube().inventory()).toEqual([]);
  });

  it("makes the namespace privileged for privileged Fusion where the deployment allows it", async () => {
    // Act
    await applyWith({ podSecurityLevel: "baseline", allowPrivilegedNamespaces: true }, stateFor(fusion(true)));
    // Assess
    expect(enforced()).toBe("privileged");
  });
});
