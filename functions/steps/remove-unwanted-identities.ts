/**
 * RemoveUnwantedIdentities (update runs only, PUT /environments/...): right after RemoveUnwantedResources (which has
 * removed the former launcher's cluster access), delete the identities the previous generation owned and the new one
 * no longer uses (remove-unwanted.ts `unwantedOf`): its Pod Identity associations first (they name the workload role),
 * then its roles (a workload role after Fusion → PVC, or Pod Identity turned off; a created launcher role after the
 * request named an existing launcher instead). Each only when it is the product's: an association tagged as the
 * tenant's, a role on the product's path tagged as the tenant's (the teardown's rule); anything else is kept and said.
 *
 * Its own Lambda and role (stacks/permissions.ts removeUnwantedIdentitiesStatements: reads and deletes of the product's
 * owned roles and associations only), so the shared KubeStepsRole gains no IAM write power.
 *
 * Like every removal it cannot be undone. A permanent failure on one identity is noted under `kept` (with its error) and
 * the rest go on, so an update that has already taken the former launcher's access away is not compensated for an
 * identity it could not delete (the teardown's rule, workflow/compensation.ts undoOne); a transient error is retried by
 * the state machine, and a retry finds what is already gone.
 */
import { eksClient, iamClient } from "../lib/aws/clients.js";
import { compensationResult, undoOne } from "../lib/workflow/compensation.js";
import { ownedResourcesOf } from "../lib/workflow/environment-outcome.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import { requireCluster } from "../lib/workflow/require-cluster.js";
import type { RemovalResult, WorkflowState } from "../lib/workflow/workflow-state.js";
import type { IamDeps } from "./iam/iam-step-context.js";
import { removeTenantAssociation } from "./iam/pod-identity.js";
import { removeTenantRole } from "./iam/tagged-role.js";
import { previousOwned, unwantedOf } from "./remove-unwanted.js";

/** The role name of a role ARN (after its path). */
function roleNameOf(arn: string): string {
  return arn.slice(arn.lastIndexOf("/") + 1);
}

export async function removeUnwantedIdentities(state: WorkflowState, deps: IamDeps = {}): Promise<RemovalResult> {
  const result: RemovalResult = { removed: [], kept: [] };
  if (!state.update) return result;
  const { request, cluster } = requireCluster(state);
  const { roles, podIdentityAssociations } = unwantedOf(previousOwned(state.update.previous.owned), ownedResourcesOf(state));
  const claim = { tenant: request.tenant };
  const outcome = compensationResult();
  if (podIdentityAssociations.length > 0) {
    const eks = deps.eks ?? eksClient(cluster.region);
    for (const id of podIdentityAssociations) {
      await undoOne(outcome, `Pod Identity association ${id}`, claim, () =>
        removeTenantAssociation(eks, cluster.name, id, request.tenant, outcome),
      );
    }
  }
  if (roles.length > 0) {
    const iam = deps.iam ?? iamClient();
    for (const arn of roles) {
      const roleName = roleNameOf(arn);
      await undoOne(outcome, `IAM role ${roleName}`, claim, () => removeTenantRole(iam, roleName, request.tenant, outcome));
    }
  }
  result.removed.push(...outcome.undone);
  result.kept.push(...outcome.kept, ...(outcome.failed ?? []).map((line) => `${line} (not removed; DELETE the environment to try again)`));
  for (const line of outcome.undone) logger.info("removed an identity the new generation no longer uses", { identity: line });
  return result;
}

/** The step's handler, with the clients given (tests) or made per call. */
export function createRemoveUnwantedIdentitiesStep(deps: IamDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, RemovalResult>("RemoveUnwantedIdentities", (state) => removeUnwantedIdentities(state, deps)),
  };
}

export const { apply } = createRemoveUnwantedIdentitiesStep();
