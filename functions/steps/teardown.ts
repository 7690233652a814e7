/**
 * The teardown's own steps (statemachines/deprovision.asl.json). Its removals are the provisioning workflow's
 * compensators (`Undo*`, run as RemoveHeadJobs, RemoveStorage, RemoveNamespaceAndRbac, RemoveClusterAccess,
 * RemoveIamResources) under the tenant's claim (`$.removal`, workflow/compensation.ts claimOf): everything marked as
 * the product's for the tenant goes, whichever run made it; nothing without those marks is touched. Two steps are
 * the teardown's alone:
 *  - WaitForNamespaceRemoval (`namespaceRemoved`): a deleted namespace stays Terminating while the cluster empties it.
 *    Gone (or kept on purpose, see RemoveNamespaceAndRbac's result): done. Still Terminating: NamespaceTerminating,
 *    naming its finalizers and the conditions the namespace controller reports, which the state retries with backoff
 *    up to its timeout; its last message is then what the teardown reports as remaining.
 *  - RecordRemoval (`recordRemoval`): `removed` when nothing remains (what was kept on purpose, such as a namespace
 *    holding someone else's objects, is listed under `owned.kept`), else `failed` with `owned.remaining`: exactly
 *    what could not be removed and why (each removal notes a permanent failure and goes on, compensation.ts undoOne).
 *    One conditional write, which also releases the lease. Returns `{status, ...}`; a failed teardown's
 *    `{error, cause}` is the execution's.
 */
import type { V1Namespace } from "@kubernetes/client-node";
import { NamespaceTerminating } from "../lib/domain/errors.js";
import { readObject } from "../lib/kube/kube-client.js";
import { compensationOutcome } from "../lib/workflow/compensation.js";
import { recordRunOutcome, type OutcomeDeps } from "../lib/workflow/environment-outcome.js";
import { readableCause } from "../lib/workflow/execution-summary.js";
import { compensationContext, type KubeStepDeps } from "../lib/workflow/kube-step.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import type { KubeRef, NamespaceRemoval, RemovalOutcome, WorkflowState } from "../lib/workflow/workflow-state.js";

export const TEARDOWN_INCOMPLETE = "TeardownIncomplete";


/** What holds a Terminating namespace: its finalizers, its objects' finalizers, the controller's conditions. */
export function namespaceHolders(namespace: V1Namespace): string[] {
  const finalizers = [...(namespace.spec?.finalizers ?? []), ...(namespace.metadata?.finalizers ?? [])];
  const conditions = (namespace.status?.conditions ?? [])
    .filter((condition) => condition.status === "True")
    .map((condition) => `${condition.type}${condition.reason ? ` (${condition.reason})` : ""}${condition.message ? `: ${condition.message}` : ""}`);
  return [...(finalizers.length ? [`finalizers ${finalizers.join(", ")}`] : []), ...conditions.map((condition) => `condition ${condition}`)];
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
  throw new NamespaceTerminating(`Namespace ${namespace} is still Terminating (deleted at ${at})${holders.length ? `, held by ${holders.join("; ")}` : ""}`);
}


function describeOwned(owned: Record<string, unknown>): string[] {
  const roles = (owned.roles as string[] | undefined) ?? [];
  const associations = (owned.podIdentityAssociations as string[] | undefined) ?? [];
  const access = owned.clusterAccess as { method: string; principalArn: string } | undefined;
  const objects = (owned.kubernetes as KubeRef[] | undefined) ?? [];
  return [
    ...objects.map((ref) => `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`),
    ...(access ? [`${access.method === "aws-auth" ? "aws-auth mapping" : "EKS access entry"} for ${access.principalArn}`] : []),
    ...associations.map((id) => `Pod Identity association ${id}`),
    ...roles.map((arn) => `IAM role ${arn.slice(arn.lastIndexOf("/") + 1)}`),
  ];
}

/** `<Kind> <namespace>/<name>: ...`: a line about an object in the namespace. */
function isInNamespace(line: string, namespace: string): boolean {
  return /^[A-Za-z]+ ([^/\s]+)\//.exec(line)?.[1] === namespace;
}

export function removalOutcome(state: WorkflowState): RemovalOutcome {
  const outcome = compensationOutcome(state);
  const { undone, kept } = outcome;
  // A namespace that is gone took whatever of ours a removal could not delete in it.
  const gone = state.namespaceRemoval?.gone ? state.namespaceRemoval.namespace : undefined;
  const couldNotUndo = gone ? outcome.couldNotUndo.filter((line) => !isInNamespace(line, gone)) : outcome.couldNotUndo;
  // ResolveCluster failed: nothing was removed, everything the record names remains.
  const unresolved = state.error
    ? describeOwned(state.removal?.owned ?? {}).map((what) => `${what}: ResolveCluster failed (${state.error!.Error}: ${readableCause(state.error!.Cause) ?? "no cause given"})`)
    : [];
  const remaining = [...unresolved, ...couldNotUndo];
  if (state.error && unresolved.length === 0) remaining.push(`ResolveCluster (${state.error.Error}: ${readableCause(state.error.Cause) ?? "no cause given"})`);
  if (remaining.length === 0) return { status: "removed", undone, kept, remaining };
  const cause = [
    `Could not remove: ${remaining.join("; ")}.`,
    undone.length ? `Removed: ${undone.join(", ")}.` : "Removed: nothing.",
    ...(kept.length ? [`Left in place: ${kept.join(", ")}.`] : []),
    "A repeated DELETE tries again.",
  ].join(" ");
  return { status: "failed", undone, kept, remaining, error: TEARDOWN_INCOMPLETE, cause };
}

export async function recordRemoval(state: WorkflowState, deps: OutcomeDeps = {}): Promise<RemovalOutcome> {
  const outcome = removalOutcome(state);
  const keptPart = outcome.kept.length ? { kept: outcome.kept } : {};
  // Failed: what the record named stays (a repeated teardown needs its access entry), with what remains.
  const owned = outcome.status === "removed" ? keptPart : { ...(state.removal?.owned ?? {}), remaining: outcome.remaining, ...keptPart };
  await recordRunOutcome(state, outcome.status, owned, deps);
  logger.info("teardown recorded", { status: outcome.status, remaining: outcome.remaining.length });
  return outcome;
}

/** The step's handlers, with the cluster client and registry given (tests) or made per call. */
export function createTeardownSteps(deps: KubeStepDeps & OutcomeDeps = {}) {
  return {
    namespaceRemoved: stepHandler<WorkflowState, NamespaceRemoval>("WaitForNamespaceRemoval", (state) => namespaceRemoved(state, deps)),
    recordRemoval: stepHandler<WorkflowState, RemovalOutcome>("RecordRemoval", (state) => recordRemoval(state, deps)),
  };
}

export const { namespaceRemoved: namespaceRemovedHandler, recordRemoval: recordRemovalHandler } = createTeardownSteps();
