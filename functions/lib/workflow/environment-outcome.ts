/**
 * A run's last word in the environment registry, said by Report (ready) and ReportFailure (failed): the status,
 * what the product owns there after the run, and the lease released, in one conditional write by the lease's
 * owner (the execution). A run that no longer holds the lease (it expired and another run took it) changes nothing.
 */
import { logger } from "../aws/powertools.js";
import { recordOutcome, REGISTRY_TABLE_ENV, type EnvironmentStatus, type RegistryDeps, type RunOutcome } from "./environment-registry.js";
import type { KubeRef, WorkflowState } from "./workflow-state.js";

export interface OutcomeDeps {
  /** The registry's table and client (default: REGISTRY_TABLE_NAME, when set; null: no registry) */
  registry?: RegistryDeps | null;
}

export interface OwnedResources {
  roles: string[];
  podIdentityAssociations: string[];
  clusterAccess?: { method: string; principalArn: string };
  kubernetes: KubeRef[];
}

const kubeKey = (ref: KubeRef) => `${ref.apiVersion}/${ref.kind}/${ref.namespace ?? ""}/${ref.name}`;

/** What a successful run leaves that is the product's: the roles it manages, the access it granted, its Kubernetes objects. */
export function ownedResourcesOf(state: WorkflowState): OwnedResources {
  const launcherIsOurs = state.request?.launcher?.mode !== "existing";
  const roles = [
    ...(launcherIsOurs && state.iam?.launcherArn ? [state.iam.launcherArn] : []),
    ...(state.iam?.workloadRoleArn ? [state.iam.workloadRoleArn] : []),
  ];
  const objects = [
    ...(state.rbac?.created ?? []),
    ...(state.rbac?.adopted ?? []),
    ...(state.storage?.created ?? []),
    ...(state.storage?.adopted ?? []),
  ];
  const kubernetes = [...new Map(objects.map((ref) => [kubeKey(ref), ref])).values()].sort((a, b) => kubeKey(a).localeCompare(kubeKey(b)));
  return {
    roles,
    podIdentityAssociations: state.iam?.podIdentityAssociationIds ?? [],
    ...(state.access ? { clusterAccess: { method: state.access.method, principalArn: state.access.principalArn } } : {}),
    kubernetes,
  };
}

/** Record the run's outcome and release its lease; false when there is no registry or the run no longer holds the lease. */
export async function recordRunOutcome(
  state: WorkflowState,
  status: EnvironmentStatus,
  owned: Record<string, unknown>,
  deps: OutcomeDeps = {},
  restore?: RunOutcome["restore"],
): Promise<boolean> {
  const registry = deps.registry === undefined ? (process.env[REGISTRY_TABLE_ENV] ? {} : undefined) : (deps.registry ?? undefined);
  const request = state.request;
  if (!registry || !request?.tenant || !request.cluster) return false;
  const id = { tenant: String(request.tenant), region: String(request.cluster.region), cluster: String(request.cluster.name) };
  const recorded = await recordOutcome(registry, id, state.execution.id, { status, owned, ...(restore ? { restore } : {}) });
  if (!recorded) logger.warn("the run no longer holds its environment's lease: its outcome is not recorded", { status });
  return recorded;
}
