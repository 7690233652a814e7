/**
 * What the Kubernetes steps (RBAC, storage, head job) share: the validated request, the cluster client,
 * the manifest context carrying this execution's marks, and the label selector that finds every object
 * this execution created — which is how a compensator works after a step failed half-way (the
 * created-by mark of workflow/compensation.ts, for Kubernetes objects).
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { deleteIfCreatedBy, describeRef, kubeClientFor, type KubeApi, type ObjectRef } from "../kube/kube-client.js";
import type { NamespaceSettings } from "../domain/deploy-config.js";
import type { ManifestContext } from "../domain/manifests.js";
import {
  type Claim,
  isTenantClaim,
  LABEL_CREATED_BY,
  LABEL_MANAGED_BY,
  LABEL_TENANT,
  PRODUCT,
  type RunMark,
  runMark,
} from "../domain/naming.js";
import { safeParseRequest, type ProvisionRequest } from "../domain/request.js";
import { claimOf, undoEach } from "./compensation.js";
import { requireCluster } from "./require-cluster.js";
import type { CompensationResult, ResolvedCluster, WorkflowState } from "./workflow-state.js";

export interface KubeStepDeps {
  /** The cluster client; by default kubeClientFor($.cluster), built on each call (tests hand theirs to the step's factory). */
  kube?: KubeApi;
  /** How the namespaces the product creates are guarded; by default the deployment's (loadNamespaceSettings). */
  namespaceSettings?: NamespaceSettings;
}

export interface KubeStepContext {
  request: ProvisionRequest;
  cluster: ResolvedCluster;
  api: KubeApi;
  /** This run's mark (execution name and start time): what its objects carry and its compensator finds them by */
  run: RunMark;
  /** Whose objects an undo removes: this run's (its mark), or in a teardown every run's of the tenant (claimOf) */
  claim: Claim;
  manifest: ManifestContext;
}

function contextOf(request: ProvisionRequest, state: WorkflowState, cluster: ResolvedCluster, api: KubeApi): KubeStepContext {
  const run = runMark(state.execution);
  return {
    request,
    cluster,
    api,
    run,
    claim: claimOf(state, request.tenant),
    manifest: { tenant: request.tenant, namespace: request.namespace, executionName: state.execution.name, run, labels: request.labels },
  };
}

/** For apply: the request must be valid and ResolveCluster must have run. */
export async function kubeStepContext(state: WorkflowState, deps: KubeStepDeps = {}): Promise<KubeStepContext> {
  const { request, cluster } = requireCluster(state);
  return contextOf(request, state, cluster, deps.kube ?? (await kubeClientFor(cluster)));
}

/**
 * For compensate: undefined when the step cannot have touched the cluster (the request never validated,
 * or the cluster was never resolved), so there is nothing to undo.
 */
export async function compensationContext(state: WorkflowState, deps: KubeStepDeps = {}): Promise<KubeStepContext | undefined> {
  const parsed = safeParseRequest(state.request);
  if (!parsed.ok || !state.cluster) return undefined;
  return contextOf(parsed.request, state, state.cluster, deps.kube ?? (await kubeClientFor(state.cluster)));
}

/** Selects what this run created for this tenant (the created-by label is its run mark); a teardown's claim: all the tenant's. */
export function createdBySelector(tenant: string, claim: Claim): string {
  if (isTenantClaim(claim)) return `${LABEL_MANAGED_BY}=${PRODUCT},${LABEL_TENANT}=${claim.tenant}`;
  return `${LABEL_TENANT}=${tenant},${LABEL_CREATED_BY}=${claim}`;
}

/** Objects of one kind in the namespace that this execution created (or, for a teardown, the tenant's), found by their marks. */
export async function listCreatedBy(api: KubeApi, ref: Omit<ObjectRef, "name">, tenant: string, claim: Claim): Promise<ObjectRef[]> {
  const list = await api.list<KubernetesObject>(
    ref.apiVersion,
    ref.kind,
    ref.namespace,
    undefined,
    undefined,
    undefined,
    undefined,
    createdBySelector(tenant, claim),
  );
  return list.items.map((item) => ({
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    ...(ref.namespace ? { namespace: ref.namespace } : {}),
    name: item.metadata?.name ?? "",
  }));
}

/** Unique refs, first occurrence wins. */
export function uniqueRefs(refs: ObjectRef[]): ObjectRef[] {
  const seen = new Set<string>();
  return refs.filter((ref) => {
    const key = `${ref.apiVersion}|${ref.kind}|${ref.namespace ?? ""}|${ref.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** An object the caller already read, with the ref it was read at (list items need not carry apiVersion/kind). */
export interface ReadObject {
  ref: ObjectRef;
  object: KubernetesObject;
}

/**
 * Delete each ref this execution created, in the order given, and note what was undone and what was left
 * alone (and why). An object already read is not read again: its uid is the delete's precondition.
 */
export async function deleteEachCreatedBy(
  api: KubeApi,
  targets: Array<ObjectRef | ReadObject>,
  claim: Claim,
  result: CompensationResult,
): Promise<void> {
  const withObjects = targets.map((target): { ref: ObjectRef; object?: KubernetesObject } => ("ref" in target ? target : { ref: target }));
  await undoEach(
    result,
    withObjects,
    ({ ref }) => describeRef(ref),
    ({ ref, object }) => deleteIfCreatedBy(api, ref, claim, object),
    claim,
  );
}
