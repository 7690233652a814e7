/**
 * RemoveUnwantedResources (update runs only, PUT /environments/...): after every other step of the update has
 * succeeded, delete what the previous generation owned (the registry's `owned`, handed in as `$.update.previous`) and
 * the new generation no longer wants (what this run owns, workflow/environment-outcome.ts `ownedResourcesOf`). Removals
 * come last so a failed update never leaves the tenant without the old generation nor the new one.
 *
 *  - A namespace the new spec no longer uses (a namespace change) is deleted whole, but only when it carries the
 *    tenant's ownership marks and nothing in it belongs to anyone else (every namespaced kind discovery lists is looked
 *    at, kube/namespace-content.ts); otherwise it is kept, the product's own objects in it are deleted one by one, and
 *    the result says why the namespace stayed.
 *  - Other objects (a compute ServiceAccount, a claim under another name, a ResourceQuota no longer asked for) are
 *    deleted one by one, bindings first, each only when it carries the tenant's ownership marks.
 *  - IAM roles, Pod Identity associations and cluster access the new generation no longer wants are left in place and
 *    listed under `kept`: deleting the tenant's identities is the teardown's (DELETE /environments/...).
 *
 * Deletions cannot be undone: a failure here fails the run, whose compensation puts the new generation's changes back,
 * and the failure's cause lists what this step had already removed (`$.removed` is lost with the error, so each
 * removal is logged). Re-running finds nothing left to remove. Nothing to compensate: the step has no Undo state.
 */
import type { V1Namespace } from "@kubernetes/client-node";
import { deleteIfCreatedBy, describeRef, readObject, type KubeApi, type ObjectRef } from "../lib/kube/kube-client.js";
import { contentNotCreatedBy } from "../lib/kube/namespace-content.js";
import { isOwnedBy } from "../lib/domain/naming.js";
import { ownedResourcesOf, type OwnedResources } from "../lib/workflow/environment-outcome.js";
import { kubeStepContext, type KubeStepDeps } from "../lib/workflow/kube-step.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import type { KubeRef, RemovalResult, WorkflowState } from "../lib/workflow/workflow-state.js";

/** Deletion order: what refers to another goes first; the namespace is apart (last). */
const REMOVAL_ORDER = ["RoleBinding", "Role", "ServiceAccount", "PersistentVolumeClaim", "ConfigMap", "NetworkPolicy", "ResourceQuota", "LimitRange"];

const kubeKey = (ref: KubeRef) => `${ref.apiVersion}/${ref.kind}/${ref.namespace ?? ""}/${ref.name}`;

function isKubeRef(value: unknown): value is KubeRef {
  const ref = value as KubeRef;
  return typeof ref === "object" && ref !== null && typeof ref.apiVersion === "string" && typeof ref.kind === "string" && typeof ref.name === "string";
}

/** The previous generation's owned resources as the registry recorded them (anything unreadable counts as nothing). */
export function previousOwned(owned: Record<string, unknown> | undefined): OwnedResources {
  const strings = (value: unknown) => (Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : []);
  const access = owned?.clusterAccess as OwnedResources["clusterAccess"] | undefined;
  return {
    roles: strings(owned?.roles),
    podIdentityAssociations: strings(owned?.podIdentityAssociations),
    ...(access && typeof access.principalArn === "string" ? { clusterAccess: access } : {}),
    kubernetes: Array.isArray(owned?.kubernetes) ? owned.kubernetes.filter(isKubeRef) : [],
  };
}

/** What the previous generation owned and this one does not: Kubernetes objects, and the identities an update leaves. */
export function unwantedOf(previous: OwnedResources, current: OwnedResources): { kubernetes: KubeRef[]; identities: string[] } {
  const wanted = new Set(current.kubernetes.map(kubeKey));
  const kubernetes = previous.kubernetes.filter((ref) => !wanted.has(kubeKey(ref)));
  const identities = [
    ...previous.roles.filter((arn) => !current.roles.includes(arn)).map((arn) => `IAM role ${arn}`),
    ...previous.podIdentityAssociations.filter((id) => !current.podIdentityAssociations.includes(id)).map((id) => `Pod Identity association ${id}`),
    ...(previous.clusterAccess && previous.clusterAccess.principalArn !== current.clusterAccess?.principalArn
      ? [`cluster access (${previous.clusterAccess.method}) for ${previous.clusterAccess.principalArn}`]
      : []),
  ];
  return { kubernetes, identities };
}

async function removeObjects(api: KubeApi, refs: KubeRef[], tenant: string, result: RemovalResult): Promise<void> {
  const ordered = [...refs].sort((a, b) => REMOVAL_ORDER.indexOf(a.kind) - REMOVAL_ORDER.indexOf(b.kind));
  for (const ref of ordered) {
    const outcome = await deleteIfCreatedBy(api, ref, { tenant });
    if (outcome === "deleted") {
      result.removed.push(describeRef(ref));
      logger.info("removed what the new generation no longer wants", { object: describeRef(ref) });
    } else if (outcome === "kept") result.kept.push(`${describeRef(ref)}: no longer carries the ownership marks for tenant ${tenant}`);
  }
}

/** Delete a namespace the new generation no longer uses, when it is the tenant's and holds nothing else; true when deleted (or gone). */
async function removeNamespace(api: KubeApi, namespace: string, tenant: string, result: RemovalResult): Promise<boolean> {
  const ref: ObjectRef = { apiVersion: "v1", kind: "Namespace", name: namespace };
  const existing = await readObject<V1Namespace>(api, ref);
  if (!existing) return true;
  if (!isOwnedBy(existing.metadata?.labels, tenant)) {
    result.kept.push(`${describeRef(ref)}: does not carry the ownership marks for tenant ${tenant}`);
    return false;
  }
  if (existing.metadata?.deletionTimestamp) {
    result.removed.push(`${describeRef(ref)} (terminating)`);
    return true;
  }
  const content = await contentNotCreatedBy(api, namespace, { tenant });
  if (content.foreign.length || content.unlisted.length) {
    const reasons = [
      ...(content.foreign.length ? [`holds objects that are not the product's (${content.foreign.slice(0, 5).join(", ")}${content.foreign.length > 5 ? ", ..." : ""})`] : []),
      ...(content.unlisted.length ? [`the provisioner may not list ${content.unlisted.slice(0, 5).join(", ")} there`] : []),
    ];
    result.kept.push(`${describeRef(ref)}: no longer used, but kept: ${reasons.join("; and ")}`);
    return false;
  }
  const outcome = await deleteIfCreatedBy(api, ref, { tenant });
  if (outcome === "deleted") {
    result.removed.push(describeRef(ref));
    logger.info("removed the namespace the new generation no longer uses", { namespace });
  }
  return true;
}

export async function removeUnwantedResources(state: WorkflowState, deps: KubeStepDeps = {}): Promise<RemovalResult> {
  const result: RemovalResult = { removed: [], kept: [] };
  if (!state.update) return result;
  const { request, api } = await kubeStepContext(state, deps);
  const tenant = request.tenant;
  const unwanted = unwantedOf(previousOwned(state.update.previous.owned), ownedResourcesOf(state));

  const namespaces = [...new Set(unwanted.kubernetes.filter((ref) => ref.kind === "Namespace").map((ref) => ref.name))].filter((ns) => ns !== request.namespace);
  const gone = new Set<string>();
  for (const namespace of namespaces) if (await removeNamespace(api, namespace, tenant, result)) gone.add(namespace);
  // Objects of a namespace deleted whole go with it; elsewhere (a namespace that stays, or one kept) one by one.
  const objects = unwanted.kubernetes.filter((ref) => ref.kind !== "Namespace" && !gone.has(ref.namespace ?? ""));
  await removeObjects(api, objects, tenant, result);

  for (const identity of unwanted.identities) {
    result.kept.push(`${identity}: no longer wanted; an update leaves identities in place (DELETE the environment to remove them)`);
  }
  logger.info("previous generation's leftovers removed", { ...result });
  return result;
}

/** The step's handler, with the cluster client given (tests) or built per call from `$.cluster`. */
export function createRemoveUnwantedStep(deps: KubeStepDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, RemovalResult>("RemoveUnwantedResources", (state) => removeUnwantedResources(state, deps)),
  };
}

export const { apply } = createRemoveUnwantedStep();
