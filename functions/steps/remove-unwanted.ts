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
 *  - The cluster access of a launcher the new spec no longer names (`launcher` changed) is removed last, so that a
 *    launcher the tenant no longer uses keeps no way into the tenant's namespace: exactly that principal's EKS access
 *    entry (only when tagged as the tenant's) or aws-auth mapping (only as runs of this product recorded it), with the
 *    teardown's code (cluster-access/index.ts removeFormerLauncherAccess). The new launcher's access is not touched.
 *  - IAM roles and Pod Identity associations the new generation no longer wants are not this step's: it runs as the
 *    shared KubeStepsRole, which has no IAM write permission. RemoveUnwantedIdentities (remove-unwanted-identities.ts,
 *    its own Lambda and role) removes them right after.
 *
 * Deletions cannot be undone: a failure here fails the run, whose compensation puts the new generation's changes back,
 * and the failure's cause lists what this step had already removed (`$.removed` is lost with the error, so each
 * removal is logged). Re-running finds nothing left to remove. Nothing to compensate: the step has no Undo state.
 */
import type { EKSClient } from "@aws-sdk/client-eks";
import type { V1Namespace } from "@kubernetes/client-node";
import { deleteIfCreatedBy, describeRef, readObject, type KubeApi, type ObjectRef } from "../lib/kube/kube-client.js";
import { contentNotCreatedBy } from "../lib/kube/namespace-content.js";
import { isOwnedBy } from "../lib/domain/naming.js";
import { ownedResourcesOf, type OwnedResources } from "../lib/workflow/environment-outcome.js";
import { kubeStepContext, type KubeStepDeps } from "../lib/workflow/kube-step.js";
import { deadlineOf, removeFormerLauncherAccess } from "./cluster-access/index.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import type { KubeRef, RemovalResult, WorkflowState } from "../lib/workflow/workflow-state.js";

/** Deletion order: what refers to another goes first; the namespace is apart (last). */
const REMOVAL_ORDER = [
  "RoleBinding",
  "Role",
  "ServiceAccount",
  "PersistentVolumeClaim",
  "ConfigMap",
  "NetworkPolicy",
  "ResourceQuota",
  "LimitRange",
];

const kubeKey = (ref: KubeRef) => `${ref.apiVersion}/${ref.kind}/${ref.namespace ?? ""}/${ref.name}`;

function isKubeRef(value: unknown): value is KubeRef {
  const ref = value as KubeRef;
  return (
    typeof ref === "object" &&
    ref !== null &&
    typeof ref.apiVersion === "string" &&
    typeof ref.kind === "string" &&
    typeof ref.name === "string"
  );
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

/** What the previous generation owned and this one does not. */
export interface Unwanted {
  kubernetes: KubeRef[];
  /** The cluster access of the previous launcher, when the new generation's launcher is another principal */
  clusterAccess?: { method: string; principalArn: string };
  /** ARNs of the roles the product created that the new generation no longer uses (RemoveUnwantedIdentities deletes them) */
  roles: string[];
  /** Ids of the Pod Identity associations the new generation no longer wants (RemoveUnwantedIdentities deletes them) */
  podIdentityAssociations: string[];
}

/** What the previous generation owned and this one does not: Kubernetes objects, a former launcher's access, roles and Pod Identity associations. */
export function unwantedOf(previous: OwnedResources, current: OwnedResources): Unwanted {
  const wanted = new Set(current.kubernetes.map(kubeKey));
  const kubernetes = previous.kubernetes.filter((ref) => !wanted.has(kubeKey(ref)));
  // A role the new generation uses (an existing launcher that was the product's role before) is never unwanted.
  const inUse = new Set([...current.roles, ...(current.clusterAccess ? [current.clusterAccess.principalArn] : [])]);
  const roles = previous.roles.filter((arn) => !inUse.has(arn));
  const podIdentityAssociations = previous.podIdentityAssociations.filter((id) => !current.podIdentityAssociations.includes(id));
  // No current access (a run that granted none) says nothing about the launcher: nothing is removed then.
  const formerLauncher =
    previous.clusterAccess && current.clusterAccess && previous.clusterAccess.principalArn !== current.clusterAccess.principalArn;
  return { kubernetes, ...(formerLauncher ? { clusterAccess: previous.clusterAccess } : {}), roles, podIdentityAssociations };
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
      ...(content.foreign.length
        ? [
            `holds objects that are not the product's (${content.foreign.slice(0, 5).join(", ")}${content.foreign.length > 5 ? ", ..." : ""})`,
          ]
        : []),
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

/** The cluster client, and the EKS client for a former launcher's access entry (tests hand theirs in). */
export interface RemoveUnwantedDeps extends KubeStepDeps {
  eks?: EKSClient;
}

export async function removeUnwantedResources(
  state: WorkflowState,
  deps: RemoveUnwantedDeps = {},
  deadline?: number,
): Promise<RemovalResult> {
  const result: RemovalResult = { removed: [], kept: [] };
  if (!state.update) return result;
  const { request, api } = await kubeStepContext(state, deps);
  const tenant = request.tenant;
  const unwanted = unwantedOf(previousOwned(state.update.previous.owned), ownedResourcesOf(state));

  const namespaces = [...new Set(unwanted.kubernetes.filter((ref) => ref.kind === "Namespace").map((ref) => ref.name))].filter(
    (ns) => ns !== request.namespace,
  );
  const gone = new Set<string>();
  for (const namespace of namespaces) if (await removeNamespace(api, namespace, tenant, result)) gone.add(namespace);
  // Objects of a namespace deleted whole go with it; elsewhere (a namespace that stays, or one kept) one by one.
  const objects = unwanted.kubernetes.filter((ref) => ref.kind !== "Namespace" && !gone.has(ref.namespace ?? ""));
  await removeObjects(api, objects, tenant, result);

  // Last: while anything above could still fail the run (whose compensation takes the new launcher's access away),
  // the former launcher keeps its way in.
  if (unwanted.clusterAccess) {
    const access = await removeFormerLauncherAccess(
      state,
      unwanted.clusterAccess,
      { kube: api, ...(deps.eks ? { eks: deps.eks } : {}) },
      deadline,
    );
    for (const line of access.undone) {
      result.removed.push(line);
      logger.info("removed the cluster access of a launcher the new generation no longer names", { access: line });
    }
    result.kept.push(...access.kept, ...(access.failed ?? []));
  }
  logger.info("previous generation's leftovers removed", { ...result });
  return result;
}

/** The step's handler, with the cluster client given (tests) or built per call from `$.cluster`. */
export function createRemoveUnwantedStep(deps: RemoveUnwantedDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, RemovalResult>("RemoveUnwantedResources", (state, context) =>
      removeUnwantedResources(state, deps, deadlineOf(context)),
    ),
  };
}

export const { apply } = createRemoveUnwantedStep();
