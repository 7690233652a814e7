/**
 * UndoNamespaceAndRbac (functions/steps/rbac.ts): deletes what this run created, found by its marks, in order, and
 * keeps a namespace that holds anything else or that it did not create. The create: rbac-create.test.ts.
 */
import { describe, expect, it } from "vitest";
import { LABEL_CREATED_BY, ownershipLabels } from "../../functions/lib/domain/naming.js";
import { NS, OTHER_RUN, RUN, markOf } from "../support/fixtures.js";
import { EVERYTHING, RBAC, stateFor, useRbacStep } from "../support/rbac-step.js";

const { kube, apply, compensate } = useRbacStep();

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
