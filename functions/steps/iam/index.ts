/**
 * CreateIamResources: the launcher identity and, for Fusion, the workload role the head and compute
 * service accounts assume (IRSA through the cluster's OIDC provider, or EKS Pod Identity).
 *
 * Roles are per tenant and cluster (`<prefix>-<tenant>.<cluster>-launcher|workload`), so provisioning a
 * tenant on a second cluster never rewrites the policies its first environment relies on.
 *
 * Idempotent: a role that already exists is adopted only when its tags mark it as ours for this tenant
 * (its boundary, trust and inline policy are brought to the desired ones); one without our marks is an
 * OwnershipConflict. Everything created is tagged with this execution, so the compensator finds it even
 * when this step failed half-way, and deletes only what this execution created. What this run changed on
 * an adopted role or Pod Identity association is returned with the previous value (`changed`,
 * `changedAssociations`), and the compensator puts it back; when this step itself fails, it puts back
 * its own changes before rethrowing (the compensator then gets no `$.iam`).
 *
 * The units: launcher-role.ts, workload-role.ts, pod-identity.ts; tagged-role.ts (create, adopt, delete a
 * role of ours) and role-documents.ts (what an adopted role had, and putting it back).
 */
import { eksClient, iamClient } from "../../lib/aws/clients.js";
import { loadDeploymentConfig } from "../../lib/domain/deploy-config.js";
import { iamRoleName } from "../../lib/domain/naming.js";
import { safeParseRequest } from "../../lib/domain/request.js";
import { claimOf, compensationResult } from "../../lib/workflow/compensation.js";
import { stepHandler } from "../../lib/workflow/middleware.js";
import type { CompensationResult, IamResult, WorkflowState } from "../../lib/workflow/workflow-state.js";
import { type IamDeps, type IamStepContext, iamStepContext } from "./iam-step-context.js";
import { ensureLauncherIdentity } from "./launcher-role.js";
import { ensurePodIdentityAssociations, putBackAssociations, undoPodIdentityAssociations } from "./pod-identity.js";
import { putBackRoles, rolesChanged } from "./role-documents.js";
import { undoTaggedRoles } from "./tagged-role.js";
import { ensureWorkloadRole } from "./workload-role.js";

export type { IamDeps, IamStepContext } from "./iam-step-context.js";

export async function createIamResources(state: WorkflowState, deps: IamDeps = {}): Promise<IamResult> {
  const ctx = iamStepContext(state, deps);
  try {
    const result = await ensureIamResources(ctx);
    const changed = rolesChanged(ctx.changes);
    if (changed.length) result.changed = changed;
    if (ctx.changedAssociations.length) result.changedAssociations = ctx.changedAssociations;
    return result;
  } catch (error) {
    // A failed step returns nothing, so the compensator would never learn the previous values: put them back now.
    await putBackAssociations(ctx);
    await putBackRoles(ctx);
    throw error;
  }
}

async function ensureIamResources(ctx: IamStepContext): Promise<IamResult> {
  const { request } = ctx;
  const launcher = await ensureLauncherIdentity(ctx);
  const created = launcher.created ? [launcher.arn] : [];
  const result: IamResult = {
    launcherArn: launcher.arn,
    launcherKind: launcher.kind,
    launcherCreated: launcher.created,
    ...(launcher.createDate ? { launcherCreateDate: launcher.createDate.toISOString() } : {}),
    created,
  };
  if (request.storage.type === "fusion") {
    const workload = await ensureWorkloadRole(ctx, request.storage);
    result.workloadRoleArn = workload.arn;
    if (workload.created) created.push(workload.arn);
    if (request.storage.podIdentity) {
      const associations = await ensurePodIdentityAssociations(ctx, workload.arn);
      result.podIdentityAssociationIds = associations.map((association) => association.id);
      for (const association of associations) if (association.created) created.push(association.arn || association.id);
    }
  }
  return result;
}

export async function undoIamResources(state: WorkflowState, deps: IamDeps = {}): Promise<CompensationResult> {
  const result = compensationResult();
  const parsed = safeParseRequest(state.request);
  if (!parsed.ok) return result; // the step never ran with this request
  const { request } = parsed;
  const { iamPrefix } = deps.config ?? loadDeploymentConfig();
  const iam = deps.iam ?? iamClient();
  const run = claimOf(state, request.tenant);
  // What this run changed on adopted objects is only in `$.iam`, i.e. when the step succeeded (a failed step put its changes back itself).
  // Pod Identity associations first: they reference the workload role. A teardown looks whatever the recorded spec
  // says: an earlier generation may have made some (pod-identity.ts associationSearches).
  if (state.cluster && (state.removal || (request.storage.type === "fusion" && request.storage.podIdentity))) {
    const eks = deps.eks ?? eksClient(state.cluster.region);
    const changes = state.iam?.changedAssociations ?? [];
    await undoPodIdentityAssociations({ eks, clusterName: state.cluster.name, request, run, changes }, result);
  }
  const clusterName = state.cluster?.name ?? request.cluster.name;
  const roleNames = (["workload", "launcher"] as const).map((purpose) => iamRoleName(iamPrefix, request.tenant, clusterName, purpose));
  await undoTaggedRoles({ iam, tenant: request.tenant, run, roleNames, changes: state.iam?.changed ?? [] }, result);
  return result;
}

/** The step's two Lambda handlers; tests pass their clients here, the deployed handlers resolve them on each call. */
export function createIamStep(deps: IamDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, IamResult>("CreateIamResources", (state) => createIamResources(state, deps)),
    compensate: stepHandler<WorkflowState, CompensationResult>("UndoIamResources", (state) => undoIamResources(state, deps)),
  };
}

export const { apply, compensate } = createIamStep();
