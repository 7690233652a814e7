/**
 * WaitForNamespaceRemoval (steps/namespace-removal.ts), built by createNamespaceRemovalStep around a fake cluster:
 * a namespace that is gone is done, one kept on purpose (not being deleted) is done and said not gone, and one still
 * Terminating is NamespaceTerminating (transient: the state retries it), naming what holds it.
 */
import { describe, expect, it } from "vitest";
import type { V1Namespace } from "@kubernetes/client-node";
import { NamespaceTerminating, type ProvisionerError } from "../../functions/lib/domain/errors.js";
import { ownershipLabels } from "../../functions/lib/domain/naming.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { createNamespaceRemovalStep } from "../../functions/steps/namespace-removal.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { NS, RUN, TENANT, markOf, resolvedCluster, stepState, useFakeKube } from "../support/fixtures.js";

/** The cluster client every handler would build from `$.cluster` when none is given. */
const kube = useFakeKube();
/** The step's handler, handed this test's fake cluster through the step's factory. */
const check = (state: WorkflowState) => createNamespaceRemovalStep({ kube: kube() }).check(state);

/** A teardown's state once RemoveNamespaceAndRbac has run. */
function teardownState(results: Partial<WorkflowState> = {}): WorkflowState {
  return stepState({}, RUN, {
    cluster: resolvedCluster(),
    removal: { environment: { tenant: TENANT, region: "eu-west-1", cluster: "research" }, owned: {} },
    ...results,
  });
}

/** The tenant's namespace as the cluster shows it while it empties: deleted, held by finalizers and a condition. */
function terminatingNamespace(): V1Namespace {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: NS,
      labels: ownershipLabels(TENANT, markOf(RUN)),
      deletionTimestamp: new Date("2025-03-03T09:30:00.000Z"),
      finalizers: ["example.com/backup"],
    },
    spec: { finalizers: ["kubernetes"] },
    status: {
      phase: "Terminating",
      conditions: [
        {
          type: "NamespaceContentRemaining",
          status: "True",
          reason: "SomeResourcesRemain",
          message: "Some resources are remaining: persistentvolumeclaims. has 1 resource instances",
        },
        { type: "NamespaceDeletionDiscoveryFailure", status: "False", reason: "ResourcesDiscovered" },
      ],
    },
  };
}

describe("createNamespaceRemovalStep", () => {
  it("reads through the cluster client it is given, not one built from $.cluster", async () => {
    // Prepare
    const given = new FakeKubeApi();
    given.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
    kube().seed(terminatingNamespace());

    // Act
    const result = await createNamespaceRemovalStep({ kube: given }).check(teardownState());

    // Assess
    expect(result).toEqual({ namespace: NS, gone: false });
    expect(given.callsOf("read", "Namespace")).toHaveLength(1);
    expect(kube().calls).toEqual([]);
  });
});

describe("WaitForNamespaceRemoval", () => {
  it("is done when the namespace is gone, and says so again on a repeat", async () => {
    // Prepare: the cluster holds no namespace of the tenant's

    // Act
    const first = await check(teardownState());
    const second = await check(teardownState());

    // Assess
    expect(first).toEqual({ namespace: NS, gone: true });
    expect(second).toEqual(first);
    expect(kube().mutations).toBe(0);
  });

  it("is done, and says the namespace is not gone, when it was kept on purpose (not being deleted)", async () => {
    // Prepare: RemoveNamespaceAndRbac kept it (it holds someone else's objects), so nothing deletes it
    kube().seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: ownershipLabels(TENANT, markOf(RUN)) } });
    kube().seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "their-data", namespace: NS } });

    // Act
    const result = await check(teardownState());

    // Assess
    expect(result).toEqual({ namespace: NS, gone: false });
    expect(kube().inventory()).toEqual([`ConfigMap/${NS}/their-data`, `Namespace/${NS}`]);
  });

  it("throws NamespaceTerminating (transient) naming the deletion time, the finalizers and the true conditions that hold it", async () => {
    // Prepare
    kube().seed(terminatingNamespace());

    // Act
    const failure = await check(teardownState()).catch((error: unknown) => error);

    // Assess
    expect(failure).toBeInstanceOf(NamespaceTerminating);
    expect((failure as ProvisionerError).transient).toBe(true);
    expect((failure as Error).name).toBe("NamespaceTerminating");
    expect((failure as Error).message).toBe(
      `Namespace ${NS} is still Terminating (deleted at 2025-03-03T09:30:00.000Z), held by finalizers kubernetes, example.com/backup; ` +
        "condition NamespaceContentRemaining (SomeResourcesRemain): Some resources are remaining: persistentvolumeclaims. has 1 resource instances",
    );
    expect((failure as Error).message).not.toContain("NamespaceDeletionDiscoveryFailure");
  });

  it("is done once the Terminating namespace has gone between two checks", async () => {
    // Prepare
    kube().seed(terminatingNamespace());
    await expect(check(teardownState())).rejects.toThrow(NamespaceTerminating);
    await kube().delete({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });

    // Act
    const result = await check(teardownState());

    // Assess
    expect(result).toEqual({ namespace: NS, gone: true });
  });

  it("names an unreachable API server ClusterUnreachable (transient), never a namespace that is gone", async () => {
    // Prepare
    kube().seed(terminatingNamespace());
    kube().faults.inject({ operation: "kube:GET namespaces", kind: "5xx", times: 1 });

    // Act
    const failure = await check(teardownState()).catch((error: unknown) => error);

    // Assess
    expect((failure as Error).name).toBe("ClusterUnreachable");
    expect((failure as ProvisionerError).transient).toBe(true);
  });

  it("names a refused read NotAllowed (permanent)", async () => {
    // Prepare
    kube().faults.inject({ operation: "kube:GET namespaces", kind: "permanent" });

    // Act
    const failure = await check(teardownState()).catch((error: unknown) => error);

    // Assess
    expect((failure as Error).name).toBe("NotAllowed");
    expect((failure as ProvisionerError).transient).toBe(false);
  });

  it("waits for nothing when the cluster was never resolved: not gone, and no call to any cluster", async () => {
    // Prepare: ResolveCluster failed, so `$.cluster` is absent
    const state = teardownState();
    delete state.cluster;

    // Act
    const result = await check(state);

    // Assess
    expect(result.gone).toBe(false);
    expect(kube().calls).toEqual([]);
  });
});
