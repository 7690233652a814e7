/**
 * What the CreateNamespaceAndRbac / UndoNamespaceAndRbac tests share (functions/steps/rbac.ts): the state the step
 * receives on the resolved cluster, everything it creates for tenant `genomics`, and its handlers built through the
 * step's factory on a fresh in-memory cluster for each test.
 */
import { createNamespaceAndRbacStep } from "../../functions/steps/rbac.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { NS, RUN, resolvedCluster, stepState, useFakeKube } from "./fixtures.js";

export const RBAC = "rbac.authorization.k8s.io/v1";

export function stateFor(request: Record<string, unknown> = {}, executionName = RUN, extra: Partial<WorkflowState> = {}): WorkflowState {
  return stepState(request, executionName, { cluster: resolvedCluster(), ...extra });
}

/** The inventory of the cluster after the step created everything (no quota, no compute service account). */
export const EVERYTHING = [
  `LimitRange/${NS}/tenant-defaults`,
  `Namespace/${NS}`,
  `NetworkPolicy/${NS}/deny-from-other-namespaces`,
  `Role/${NS}/tower-launcher-role`,
  `RoleBinding/${NS}/tower-launcher-sa-binding`,
  `RoleBinding/${NS}/tower-launcher-user-genomics-binding`,
  `ServiceAccount/${NS}/tower-launcher-sa`,
];

/** The test's fake cluster (one that requires the namespace to exist), and the step's handlers handed it through the factory. */
export function useRbacStep() {
  const kube = useFakeKube({ requireNamespace: true });
  return {
    kube,
    apply: (state: WorkflowState) => createNamespaceAndRbacStep({ kube: kube() }).apply(state),
    compensate: (state: WorkflowState) => createNamespaceAndRbacStep({ kube: kube() }).compensate(state),
  };
}
