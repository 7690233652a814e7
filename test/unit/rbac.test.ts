import { describe, expect, it } from "vitest";
import type { V1Namespace, V1ResourceQuota, V1Role, V1RoleBinding, V1ServiceAccount } from "@kubernetes/client-node";
import * as rbacStep from "../../functions/steps/rbac.js";
import { createNamespaceAndRbacStep } from "../../functions/steps/rbac.js";
import { ANNOTATION_CREATED_BY, LABEL_CREATED_BY, ownershipLabels } from "../../functions/lib/domain/naming.js";
import type { NamespaceSettings } from "../../functions/lib/domain/deploy-config.js";
import { podSecurityLabels } from "../../functions/lib/domain/manifests.js";
import type { RbacResult, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { NS, OTHER_RUN, RUN, resolvedCluster, stepState, useFakeKube, markOf } from "../support/fixtures.js";

const RBAC = "rbac.authorization.k8s.io/v1";

function stateFor(request: Record<string, unknown> = {}, executionName = RUN, extra: Partial<WorkflowState> = {}): WorkflowState {
  return stepState(request, executionName, { cluster: resolvedCluster(), ...extra });
}

const EVERYTHING = [
  `LimitRange/${NS}/tenant-defaults`,
  `Namespace/${NS}`,
  `NetworkPolicy/${NS}/deny-from-other-namespaces`,
  `Role/${NS}/tower-launcher-role`,
  `RoleBinding/${NS}/tower-launcher-sa-binding`,
  `RoleBinding/${NS}/tower-launcher-user-genomics-binding`,
  `ServiceAccount/${NS}/tower-launcher-sa`,
];

const kube = useFakeKube({ requireNamespace: true });
/** The step's handlers, handed this test's fake cluster through the step's factory. */
const apply = (state: WorkflowState) => createNamespaceAndRbacStep({ kube: kube() }).apply(state);
const compensate = (state: WorkflowState) => createNamespaceAndRbacStep({ kube: kube() }).compensate(state);

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

describe("UndoNamespaceAndRbac", () => {
  it("deletes everything this run created, bindings first and the namespace last", async () => {
    // Prepare
    const rbac = await apply(stateFor({ computeServiceAccount: "tower-compute-sa" }));
    // Act
    const result = await compensate(stateFor({ computeServiceAccount: "tower-compute-sa" }, RUN, { rbac }));
    // Assess
    expect(kube().inventory()).toEqual([]);
    expect(
      kube()
        .callsOf("delete")
        .map((c) => `${c.kind}/${c.name}`),
    ).toEqual([
      "RoleBinding/tower-launcher-user-genomics-binding",
      "RoleBinding/tower-launcher-sa-binding",
      "Role/tower-launcher-role",
      "ServiceAccount/tower-compute-sa",
      "ServiceAccount/tower-launcher-sa",
      "NetworkPolicy/deny-from-other-namespaces",
      "LimitRange/tenant-defaults",
      `Namespace/${NS}`,
    ]);
    expect(result.undone).toHaveLength(8);
    expect(result.kept).toEqual([]);
  });

  it("can run twice: the second time finds nothing left to undo", async () => {
    // Prepare
    const rbac = await apply(stateFor());
    await compensate(stateFor({}, RUN, { rbac }));
    const mutations = kube().mutations;
    // Act
    const again = await compensate(stateFor({}, RUN, { rbac }));
    // Assess
    expect(again).toEqual({ undone: [], kept: [] });
    expect(kube().mutations).toBe(mutations);
  });

  it("removes only this run's objects and keeps what an earlier run created", async () => {
    // Prepare
    await apply(stateFor({}, OTHER_RUN));
    const rbac = await apply(stateFor({ computeServiceAccount: "tower-compute-sa" }));
    expect(rbac.created.map((r) => r.name)).toEqual(["tower-compute-sa"]);
    // Act
    const result = await compensate(stateFor({ computeServiceAccount: "tower-compute-sa" }, RUN, { rbac }));
    // Assess
    expect(kube().inventory()).toEqual(EVERYTHING);
    expect(result.undone).toEqual([`ServiceAccount ${NS}/tower-compute-sa`]);
    expect(result.kept).toEqual([
      `RoleBinding ${NS}/tower-launcher-user-genomics-binding: not created by this run`,
      `RoleBinding ${NS}/tower-launcher-sa-binding: not created by this run`,
      `Role ${NS}/tower-launcher-role: not created by this run`,
      `ServiceAccount ${NS}/tower-launcher-sa: not created by this run`,
      `NetworkPolicy ${NS}/deny-from-other-namespaces: not created by this run`,
      `LimitRange ${NS}/tenant-defaults: not created by this run`,
      `Namespace ${NS}: not created by this run`,
    ]);
  });

  it("cleans up after a half-way failure, finding the objects by their marks ($.rbac is empty)", async () => {
    // Prepare
    kube().faults.inject({ operation: "kube:POST rolebindings", kind: "5xx", times: 1 });
    await expect(apply(stateFor())).rejects.toMatchObject({ name: "ClusterUnreachable" });
    expect(kube().inventory()).toEqual([
      `LimitRange/${NS}/tenant-defaults`,
      `Namespace/${NS}`,
      `NetworkPolicy/${NS}/deny-from-other-namespaces`,
      `Role/${NS}/tower-launcher-role`,
      `ServiceAccount/${NS}/tower-launcher-sa`,
    ]);
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(kube().inventory()).toEqual([]);
    expect(result.undone).toEqual([
      `Role ${NS}/tower-launcher-role`,
      `ServiceAccount ${NS}/tower-launcher-sa`,
      `NetworkPolicy ${NS}/deny-from-other-namespaces`,
      `LimitRange ${NS}/tenant-defaults`,
      `Namespace ${NS}`,
    ]);
  });

  it("finds objects carrying this run's mark by label selector, whatever their names", async () => {
    // Prepare
    await apply(stateFor());
    const marked = { labels: ownershipLabels("genomics", markOf(RUN)) };
    kube().seed({
      apiVersion: RBAC,
      kind: "RoleBinding",
      metadata: { name: "renamed-binding", namespace: NS, ...marked },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tower-launcher-role" },
    });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result.undone).toContain(`RoleBinding ${NS}/renamed-binding`);
    expect(
      kube()
        .callsOf("list", "RoleBinding")
        .some((c) => c.labelSelector?.includes(`${LABEL_CREATED_BY}=${markOf(RUN)}`)),
    ).toBe(true);
    expect(kube().inventory()).toEqual([]);
  });

  it("keeps a namespace it created when something it did not create lives there now", async () => {
    // Prepare
    await apply(stateFor());
    kube().seed({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "someone-elses-data", namespace: NS, labels: ownershipLabels("genomics", markOf(OTHER_RUN)) },
    });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(kube().inventory()).toEqual([`Namespace/${NS}`, `PersistentVolumeClaim/${NS}/someone-elses-data`]);
    expect(result.kept).toEqual([
      expect.stringMatching(
        /^Namespace tower-nf: created by this run but now holds objects it did not create \(PersistentVolumeClaim someone-elses-data\)/,
      ),
    ]);
  });

  it("looks at every namespaced kind discovery lists, not a fixed list: a Deployment or a custom resource keeps the namespace", async () => {
    // Prepare
    await apply(stateFor());
    kube().extraResourceTypes.push({
      apiVersion: "example.com/v1",
      group: "example.com",
      kind: "Widget",
      resource: "widgets",
      verbs: ["get", "list"],
    });
    kube().seed({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "someone-elses-app", namespace: NS } });
    kube().seed({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "someone-elses-widget", namespace: NS } });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(kube().inventory()).toContain(`Namespace/${NS}`);
    expect(result.kept).toEqual([
      `Namespace ${NS}: created by this run but now holds objects it did not create (Deployment someone-elses-app, Widget someone-elses-widget)`,
    ]);
  });

  it("keeps the namespace when it may not list a kind there, and says which (it may hold objects this run did not create)", async () => {
    // Prepare
    await apply(stateFor());
    kube().extraResourceTypes.push({
      apiVersion: "example.com/v1",
      group: "example.com",
      kind: "Widget",
      resource: "widgets",
      verbs: ["get", "list"],
    });
    kube().notListable.add("example.com/widgets");
    kube().notListable.add("/secrets");
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(kube().inventory()).toEqual([`Namespace/${NS}`]);
    expect(result.kept).toEqual([
      `Namespace ${NS}: created by this run but it may not list secrets, widgets.example.com there, which may hold objects it did not create`,
    ]);
    expect(kube().callsOf("list", "Widget")).toEqual([]);
  });

  it("deletes the namespace past the cluster's own content and the events of what happened in it", async () => {
    // Prepare
    await apply(stateFor());
    kube().seed({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: NS } });
    kube().seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "kube-root-ca.crt", namespace: NS } });
    kube().seed({ apiVersion: "v1", kind: "Event", metadata: { name: "head.17f3a", namespace: NS } });
    kube().seed({ apiVersion: "events.k8s.io/v1", kind: "Event", metadata: { name: "head.17f3b", namespace: NS } });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result.kept).toEqual([]);
    expect(result.undone).toContain(`Namespace ${NS}`);
    expect(
      kube()
        .inventory()
        .filter((o) => o.startsWith("Namespace/")),
    ).toEqual([]);
  });

  it("never deletes a namespace it did not create, even one carrying our tenant's marks", async () => {
    // Prepare
    kube().seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: ownershipLabels("genomics", markOf(OTHER_RUN)) } });
    const rbac = await apply(stateFor());
    // Act
    const result = await compensate(stateFor({}, RUN, { rbac }));
    // Assess
    expect(kube().inventory()).toEqual([`Namespace/${NS}`]);
    expect(result.kept).toEqual([`Namespace ${NS}: not created by this run`]);
  });

  it("does nothing when the cluster was never resolved", async () => {
    // Prepare
    const state = stateFor();
    delete state.cluster;
    // Act
    const result = await compensate(state);
    // Assess
    expect(result).toEqual({ undone: [], kept: [] });
    expect(kube().calls).toEqual([]);
  });
});
