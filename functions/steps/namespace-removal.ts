/**
 * WaitForNamespaceRemoval (statemachines/deprovision.asl.json): a namespace the teardown deleted stays Terminating
 * while the cluster empties it. Gone, or kept on purpose (RemoveNamespaceAndRbac's result says why): done. Still
 * Terminating: NamespaceTerminating, naming its finalizers and the conditions the namespace controller reports, which
 * the state retries with backoff up to its timeout; its last message is then what the teardown reports as remaining.
 * Runs as the KubeStepsRole, like the other Kubernetes steps.
 */
import type { V1Namespace } from "@kubernetes/client-node";
import { NamespaceTerminating } from "../lib/domain/errors.js";
import { readObject } from "../lib/kube/kube-client.js";
import { compensationContext, type KubeStepDeps } from "../lib/workflow/kube-step.js";
import { stepHandler } from "../lib/workflow/middleware.js";
import type { NamespaceRemoval, WorkflowState } from "../lib/workflow/workflow-state.js";

/** What holds a Terminating namespace: its finalizers, its objects' finalizers, the controller's conditions. */
export function namespaceHolders(namespace: V1Namespace): string[] {
  const finalizers = [...(namespace.spec?.finalizers ?? []), ...(namespace.metadata?.finalizers ?? [])];
  const conditions = (namespace.status?.conditions ?? [])
    .filter((condition) => condition.status === "True")
    .map(
      (condition) =>
        `${condition.type}${condition.reason ? ` (${condition.reason})` : ""}${condition.message ? `: ${condition.message}` : ""}`,
    );
  return [
    ...(finalizers.length ? [`finalizers ${finalizers.join(", ")}`] : []),
    ...conditions.map((condition) => `condition ${condition}`),
  ];
}

export async function namespaceRemoved(state: WorkflowState, deps: KubeStepDeps = {}): Promise<NamespaceRemoval> {
  const ctx = await compensationContext(state, deps);
  const namespace = ctx?.request.namespace ?? "";
  if (!ctx) return { namespace, gone: false };
  const found = await readObject<V1Namespace>(ctx.api, { apiVersion: "v1", kind: "Namespace", name: namespace });
  if (!found) return { namespace, gone: true };
  const since = found.metadata?.deletionTimestamp;
  if (!since) return { namespace, gone: false };
  const holders = namespaceHolders(found);
  const at = since instanceof Date ? since.toISOString() : String(since);
  throw new NamespaceTerminating(
    `Namespace ${namespace} is still Terminating (deleted at ${at})${holders.length ? `, held by ${holders.join("; ")}` : ""}`,
  );
}

/** The step's handler, with the cluster client given (tests) or built per call from `$.cluster`. */
export function createNamespaceRemovalStep(deps: KubeStepDeps = {}) {
  return { check: stepHandler<WorkflowState, NamespaceRemoval>("WaitForNamespaceRemoval", (state) => namespaceRemoved(state, deps)) };
}

export const { check } = createNamespaceRemovalStep();
