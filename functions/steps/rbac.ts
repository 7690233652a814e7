/**
 * CreateNamespaceAndRbac: the runbook's namespace, `tower-launcher-sa` (and the compute SA when asked, bound to
 * nothing), Role `tower-launcher-role`, a RoleBinding to `tower-launcher-sa` and one to User `tower-launcher-user-<tenant>` (the
 * tenant's launcher IAM principal maps to it; see launcherUsername). Runs in the Parallel beside CreateIamResources, so it reads nothing
 * from `$.iam`.
 *
 * Idempotent: each object is created, or adopted when it carries our marks for this tenant; one without
 * them is an OwnershipConflict and is left untouched. Adopted objects are not rewritten.
 *
 * UndoNamespaceAndRbac deletes, in reverse order, only what this execution created. It finds that by the
 * created-by marks (the request's names and a label-selector list), not only from `$.rbac`, so it also
 * cleans up after a half-way failure, and it can run twice. A namespace this run created is deleted only
 * when nothing in it belongs to anyone else (a namespace delete takes its whole content with it): every namespaced
 * kind the cluster's discovery lists is looked at, and one this identity may not list keeps the namespace (kube/namespace-content.ts).
 */
import type { KubernetesObject, V1Namespace, V1Role } from "@kubernetes/client-node";
import { describeRef, ensureObject, readObject, refOf, replaceObject, type KubeApi, type ObjectRef } from "../lib/kube/kube-client.js";
import { contentNotCreatedBy, type NamespaceContent } from "../lib/kube/namespace-content.js";
import { compensationResult, recordUndo, undoOne } from "../lib/workflow/compensation.js";
import {
  compensationContext,
  deleteEachCreatedBy,
  kubeStepContext,
  listCreatedBy,
  uniqueRefs,
  type KubeStepDeps,
} from "../lib/workflow/kube-step.js";
import {
  launcherRoleManifest,
  launcherUserRoleBinding,
  limitRangeManifest,
  namespaceManifest,
  networkPolicyManifest,
  resourceQuotaManifest,
  serviceAccountManifest,
  serviceAccountRoleBinding,
  type ManifestContext,
} from "../lib/domain/manifests.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import { type Claim, isTenantClaim, LAUNCHER_ROLE, wasCreatedBy } from "../lib/domain/naming.js";
import { loadNamespaceSettings, type NamespaceSettings, type PodSecurityLevel } from "../lib/domain/deploy-config.js";
import { InvalidRequest } from "../lib/domain/errors.js";
import {
  effectiveNamespaceQuota,
  headPodQuotaProblems,
  serviceAccountsOf,
  type NamespaceQuota,
  type ProvisionRequest,
} from "../lib/domain/request.js";
import type { CompensationResult, KubeRef, RbacResult, WorkflowState } from "../lib/workflow/workflow-state.js";

const RBAC_API = "rbac.authorization.k8s.io/v1";

/** How the namespace is guarded: its Pod Security level and its quota (none: no ResourceQuota). */
interface NamespaceGuards {
  podSecurity?: PodSecurityLevel;
  quota?: NamespaceQuota;
}

/**
 * Everything this step applies, in creation order: the namespace and what guards it (LimitRange, ResourceQuota,
 * NetworkPolicy) first, the bindings last. Only the head's ServiceAccount is bound to the launcher Role: the compute
 * ServiceAccount runs the pipeline's task containers (third-party code), which need nothing from the Kubernetes API,
 * so it is bound to nothing at all.
 */
function rbacManifests(request: ProvisionRequest, ctx: ManifestContext, guards: NamespaceGuards = {}): KubernetesObject[] {
  return [
    namespaceManifest(ctx, guards.podSecurity),
    limitRangeManifest(ctx),
    ...(guards.quota ? [resourceQuotaManifest(ctx, guards.quota)] : []),
    networkPolicyManifest(ctx),
    ...serviceAccountsOf(request).map((sa) => serviceAccountManifest(ctx, sa)),
    launcherRoleManifest(ctx),
    serviceAccountRoleBinding(ctx, request.serviceAccount),
    launcherUserRoleBinding(ctx),
  ];
}

/**
 * The tenant Role is created without rules, then given them by an update. Granting rules needs `escalate` (or holding
 * them all), and the API server checks `escalate` against the request's name: a create has none, an update has the
 * Role's, so the provisioner's ClusterRole limits `escalate` to this one name (deploy/provisioner-clusterrole.yaml).
 */
async function ensureRole(api: KubeApi, desired: V1Role, tenant: string): Promise<boolean> {
  const { object, created } = await ensureObject<V1Role>(api, { ...desired, rules: [] }, tenant);
  // An adopted Role keeps its rules; an empty one (ours, a run that stopped between the two writes) gets them now.
  if ((object.rules ?? []).length === 0) await replaceObject<V1Role>(api, { ...object, rules: desired.rules });
  return created;
}

/**
 * The Pod Security level the namespace enforces: the deployment's (baseline by default), or `privileged` for privileged
 * Fusion, which only a deployment that allows privileged namespaces may have.
 */
export function namespacePodSecurity(request: ProvisionRequest, settings: NamespaceSettings): PodSecurityLevel {
  if (request.storage.type !== "fusion" || request.storage.privileged !== true) return settings.podSecurityLevel;
  if (!settings.allowPrivilegedNamespaces) {
    throw new InvalidRequest([
      {
        path: "storage.privileged",
        message: "privileged Fusion needs a privileged namespace, which this deployment does not allow (ALLOW_PRIVILEGED_NAMESPACES)",
      },
    ]);
  }
  return "privileged";
}

async function isCreated(api: KubeApi, desired: KubernetesObject, tenant: string): Promise<boolean> {
  return (await ensureObject(api, desired, tenant)).created;
}

/** The request's quota over the deployment's, field by field; refused (before anything is made) when it cannot hold the head pod. */
export function namespaceQuota(request: ProvisionRequest, settings: NamespaceSettings): NamespaceQuota | undefined {
  const problems = headPodQuotaProblems(request.headJob, request.quota, settings.namespaceQuota);
  if (problems.length) throw new InvalidRequest(problems);
  return effectiveNamespaceQuota(request.quota, settings.namespaceQuota);
}

export async function createNamespaceAndRbac(state: WorkflowState, deps: KubeStepDeps = {}): Promise<RbacResult> {
  const { request, api, manifest } = await kubeStepContext(state, deps);
  const settings = deps.namespaceSettings ?? loadNamespaceSettings();
  const guards = { podSecurity: namespacePodSecurity(request, settings), quota: namespaceQuota(request, settings) };
  const created: KubeRef[] = [];
  const adopted: KubeRef[] = [];
  // One at a time, in order: a failure part-way leaves only marked objects for the compensator to find.
  for (const desired of rbacManifests(request, manifest, guards)) {
    const { tenant } = request;
    const isNew = desired.kind === "Role" ? await ensureRole(api, desired as V1Role, tenant) : await isCreated(api, desired, tenant);
    (isNew ? created : adopted).push(refOf(desired));
  }
  logger.info("namespace and RBAC ready", { created: created.map(describeRef), adopted: adopted.map(describeRef) });
  return {
    namespace: request.namespace,
    serviceAccount: request.serviceAccount,
    ...(request.computeServiceAccount ? { computeServiceAccount: request.computeServiceAccount } : {}),
    role: LAUNCHER_ROLE,
    created,
    adopted,
  };
}

// ---------------------------------------------------------------- compensate

/** Deletion order (the reverse of creation), and each kind's apiVersion. */
const UNDO_ORDER = ["RoleBinding", "Role", "ServiceAccount", "NetworkPolicy", "ResourceQuota", "LimitRange"];
const API_VERSION: Record<string, string> = {
  RoleBinding: RBAC_API,
  Role: RBAC_API,
  ServiceAccount: "v1",
  NetworkPolicy: "networking.k8s.io/v1",
  ResourceQuota: "v1",
  LimitRange: "v1",
};

/** First five, then "...": a report line stays readable however much is there. */
function firstFew(items: string[]): string {
  return `${items.slice(0, 5).join(", ")}${items.length > 5 ? ", ..." : ""}`;
}

/** Why a namespace this run created is kept: what is in it that this run did not make, and the kinds it could not look at. */
function whyKept(content: NamespaceContent, claim: Claim): string | undefined {
  const reasons = [
    ...(content.foreign.length ? [`now holds objects it did not create (${firstFew(content.foreign)})`] : []),
    ...(content.unlisted.length ? [`it may not list ${firstFew(content.unlisted)} there, which may hold objects it did not create`] : []),
  ];
  const ours = isTenantClaim(claim) ? `the product's for tenant ${claim.tenant}` : "created by this run";
  return reasons.length ? `${ours} but ${reasons.join("; and ")}` : undefined;
}

async function undoNamespace(api: KubeApi, namespace: string, claim: Claim, result: CompensationResult): Promise<void> {
  const ref: ObjectRef = { apiVersion: "v1", kind: "Namespace", name: namespace };
  await undoOne(result, describeRef(ref), claim, () => undoNamespaceOnce(api, ref, claim, result));
}

async function undoNamespaceOnce(api: KubeApi, ref: ObjectRef, claim: Claim, result: CompensationResult): Promise<void> {
  const namespace = ref.name;
  const existing = await readObject<V1Namespace>(api, ref);
  if (!existing) return;
  if (!wasCreatedBy(existing.metadata?.labels, claim)) {
    recordUndo(result, describeRef(ref), "kept", claim);
    return;
  }
  if (existing.metadata?.deletionTimestamp) {
    // A previous compensation attempt deleted it; the cluster is still emptying it.
    result.undone.push(`${describeRef(ref)} (terminating)`);
    return;
  }
  const kept = whyKept(await contentNotCreatedBy(api, namespace, claim), claim);
  if (kept) {
    result.kept.push(`${describeRef(ref)}: ${kept}`);
    return;
  }
  await deleteEachCreatedBy(api, [{ ref, object: existing }], claim, result);
}

export async function undoNamespaceAndRbac(state: WorkflowState, deps: KubeStepDeps = {}): Promise<CompensationResult> {
  const result = compensationResult();
  const ctx = await compensationContext(state, deps);
  if (!ctx) return result;
  const { request, api, manifest, claim } = ctx;
  const namespace = request.namespace;

  // What the request names, what the step reported, and whatever else carries this execution's mark.
  const candidates: ObjectRef[] = [...rbacManifests(request, manifest).map(refOf).reverse(), ...(state.rbac?.created ?? [])];
  for (const kind of UNDO_ORDER) {
    candidates.push(...(await listCreatedBy(api, { apiVersion: API_VERSION[kind]!, kind, namespace }, request.tenant, claim)));
  }
  const ordered = uniqueRefs(candidates)
    .filter((ref) => ref.namespace === namespace && UNDO_ORDER.includes(ref.kind))
    .sort((a, b) => UNDO_ORDER.indexOf(a.kind) - UNDO_ORDER.indexOf(b.kind));

  await deleteEachCreatedBy(api, ordered, claim, result);
  await undoNamespace(api, namespace, claim, result);
  logger.info("namespace and RBAC compensated", { ...result });
  return result;
}

/** The step's handlers, with the cluster client given (tests) or built per call from `$.cluster`. */
export function createNamespaceAndRbacStep(deps: KubeStepDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, RbacResult>("CreateNamespaceAndRbac", (state) => createNamespaceAndRbac(state, deps)),
    compensate: stepHandler<WorkflowState, CompensationResult>("UndoNamespaceAndRbac", (state) => undoNamespaceAndRbac(state, deps)),
  };
}

export const { apply, compensate } = createNamespaceAndRbacStep();
