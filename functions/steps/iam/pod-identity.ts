/**
 * EKS Pod Identity associations (when the request asks for them instead of IRSA): one per service account,
 * pointing at the workload role. Ours are adopted, others' refused (and any with session tags disabled: the
 * role's trust needs them), missing ones created with this run's tags; an adopted one re-pointed keeps its
 * previous role on record, so it can be pointed back.
 */
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  type EKSClient,
  type PodIdentityAssociation,
  paginateListPodIdentityAssociations,
  UpdatePodIdentityAssociationCommand,
} from "@aws-sdk/client-eks";
import { NotAllowed, OwnershipConflict } from "../../lib/domain/errors.js";
import { type Claim, isOwnedBy, isTenantClaim, ownershipTags, tagsToRecord, wasCreatedBy } from "../../lib/domain/naming.js";
import { type ProvisionRequest, serviceAccountsOf } from "../../lib/domain/request.js";
import { notClaimed, recordUndo, type UndoOutcome, undoOne } from "../../lib/workflow/compensation.js";
import { logger } from "../../lib/workflow/middleware.js";
import { ifExists, ignoreMissing, isAwsError } from "../../lib/workflow/normalise-error.js";
import type { CompensationResult, PodIdentityAssociationChange } from "../../lib/workflow/workflow-state.js";
import { type IamStepContext, noteRestored, type Restored } from "./iam-step-context.js";

export interface EnsuredAssociation {
  id: string;
  arn: string;
  /** By this execution: the compensator deletes it. */
  created: boolean;
}

async function describeAssociation(
  eks: EKSClient,
  clusterName: string,
  associationId: string,
): Promise<PodIdentityAssociation | undefined> {
  const read = eks.send(new DescribePodIdentityAssociationCommand({ clusterName, associationId }));
  return (await ifExists(read, "ResourceNotFoundException"))?.association;
}

/** The associations in `namespace` (of `serviceAccount`, when given), or in the whole cluster when no namespace is given. */
async function associationsFor(
  eks: EKSClient,
  clusterName: string,
  namespace?: string,
  serviceAccount?: string,
): Promise<PodIdentityAssociation[]> {
  const found: PodIdentityAssociation[] = [];
  for await (const page of paginateListPodIdentityAssociations(
    { client: eks },
    { clusterName, ...(namespace ? { namespace } : {}), ...(serviceAccount ? { serviceAccount } : {}) },
  )) {
    for (const summary of page.associations ?? []) {
      if (serviceAccount && summary.serviceAccount !== serviceAccount) continue;
      const association = summary.associationId ? await describeAssociation(eks, clusterName, summary.associationId) : undefined;
      if (association) found.push(association);
    }
  }
  return found;
}

/** Ours for this tenant: pointed at `roleArn`, another run's previous role recorded before the write. */
async function adoptAssociation(
  ctx: IamStepContext,
  existing: PodIdentityAssociation,
  serviceAccount: string,
  roleArn: string,
): Promise<EnsuredAssociation> {
  const { request, cluster, eks } = ctx;
  if (!isOwnedBy(existing.tags, request.tenant)) {
    throw new OwnershipConflict(
      `a Pod Identity association for ${request.namespace}/${serviceAccount} already exists (${existing.associationId}) without the ownership tags for tenant ${request.tenant}`,
    );
  }
  if (existing.disableSessionTags) {
    const id = existing.associationId;
    const reEnable = `aws eks update-pod-identity-association --cluster-name ${cluster.name} --association-id ${id} --no-disable-session-tags`;
    throw new NotAllowed(
      `the Pod Identity association ${id} for ${request.namespace}/${serviceAccount} has session tags disabled; the workload role ` +
        `trusts only sessions tagged with the tenant's cluster, namespace and service account. Re-enable them (${reEnable}) and run again`,
    );
  }
  const created = wasCreatedBy(existing.tags, ctx.run);
  if (existing.roleArn !== roleArn) {
    // Another run's association: keep its role so the compensator can point it back (recorded before the write).
    if (!created && existing.roleArn)
      ctx.changedAssociations.push({ associationId: existing.associationId!, previousRoleArn: existing.roleArn, roleArn });
    await eks.send(new UpdatePodIdentityAssociationCommand({ clusterName: cluster.name, associationId: existing.associationId!, roleArn }));
  }
  return { id: existing.associationId!, arn: existing.associationArn ?? "", created };
}

/** One association per service account: adopt ours, refuse others', create the missing one (tagged). */
async function ensurePodIdentityAssociation(
  ctx: IamStepContext,
  serviceAccount: string,
  roleArn: string,
  attempt = 1,
): Promise<EnsuredAssociation> {
  const { request, cluster, eks } = ctx;
  const [existing] = await associationsFor(eks, cluster.name, request.namespace, serviceAccount);
  if (existing) return adoptAssociation(ctx, existing, serviceAccount, roleArn);
  try {
    const tags = tagsToRecord(ownershipTags(request.tenant, ctx.run));
    const { association } = await eks.send(
      // Session tags on (the default, said explicitly): the workload role's trust is conditioned on them.
      new CreatePodIdentityAssociationCommand({
        clusterName: cluster.name,
        namespace: request.namespace,
        serviceAccount,
        roleArn,
        tags,
        disableSessionTags: false,
      }),
    );
    // A role created seconds ago may be refused as "cannot be assumed": normaliseError names that
    // IamNotYetConsistent and the state machine retries.
    return { id: association?.associationId ?? "", arn: association?.associationArn ?? "", created: true };
  } catch (error) {
    // Same race as for the role: look again once, then let the state machine retry (named Throttled).
    if (!isAwsError(error, "ResourceInUseException") || attempt >= 2) throw error;
    return ensurePodIdentityAssociation(ctx, serviceAccount, roleArn, attempt + 1);
  }
}

/** The head and compute service accounts, each associated with the workload role. */
export async function ensurePodIdentityAssociations(ctx: IamStepContext, roleArn: string): Promise<EnsuredAssociation[]> {
  const ensured: EnsuredAssociation[] = [];
  for (const serviceAccount of serviceAccountsOf(ctx.request))
    ensured.push(await ensurePodIdentityAssociation(ctx, serviceAccount, roleArn));
  return ensured;
}

/** Point an adopted association back at the role it had, while it still has the one this run set; nothing when it already does or is gone. */
async function restoreAssociation(
  eks: EKSClient,
  clusterName: string,
  change: PodIdentityAssociationChange,
  tenant: string,
  read?: PodIdentityAssociation,
): Promise<Restored> {
  const label = `Pod Identity association ${change.associationId}`;
  const association = read ?? (await describeAssociation(eks, clusterName, change.associationId));
  if (!association) return {};
  if (!isOwnedBy(association.tags, tenant)) return { kept: `${label}: no longer carries this tenant's marks, left untouched` };
  if (association.roleArn === change.previousRoleArn) return { kept: `${label}: not created by this run; its previous role is in place` };
  // Pointed elsewhere since this run set it: someone else's change now (a record without roleArn, from an earlier version, cannot tell).
  if (change.roleArn !== undefined && association.roleArn !== change.roleArn) {
    return { failed: `${label}: its role was changed since this run set it, so ${change.previousRoleArn} was not put back` };
  }
  await eks.send(
    new UpdatePodIdentityAssociationCommand({ clusterName, associationId: change.associationId, roleArn: change.previousRoleArn }),
  );
  return { undone: `${label} (${association.namespace}/${association.serviceAccount}): role restored to ${change.previousRoleArn}` };
}

/** Before the step rethrows; best effort, newest first: a write that fails here is logged, and the step's own error is what the run reports. */
export async function putBackAssociations(ctx: IamStepContext): Promise<void> {
  for (const change of [...ctx.changedAssociations].reverse()) {
    try {
      await restoreAssociation(ctx.eks, ctx.cluster.name, change, ctx.request.tenant);
    } catch (error) {
      logger.error("could not point an adopted Pod Identity association back at its previous role", { change, error });
    }
  }
}

export interface AssociationsToUndo {
  eks: EKSClient;
  clusterName: string;
  request: ProvisionRequest;
  /** This run's mark, or a teardown's claim on every association of the tenant */
  run: Claim;
  /** What this run changed on adopted associations (`$.iam.changedAssociations`, present only when the step succeeded). */
  changes: PodIdentityAssociationChange[];
}

/**
 * Where an undo looks for associations. A compensation: where its run made them (the spec's namespace, each of its
 * service accounts). A teardown: the whole cluster, because the tenant's associations may sit where an earlier
 * generation put them (a namespace or service account an update changed, Pod Identity since turned off, when that
 * update's RemoveUnwantedIdentities could not delete them), and the record's list of them does not outlive a later run.
 */
export function associationSearches(request: ProvisionRequest, run: Claim): Array<{ namespace?: string; serviceAccount?: string }> {
  if (isTenantClaim(run)) return [{}];
  return serviceAccountsOf(request).map((serviceAccount) => ({ namespace: request.namespace, serviceAccount }));
}

/**
 * Whether an undo deals with an association it found: always where the spec puts one (ours is undone, another's is
 * noted as kept); elsewhere in the cluster (a teardown's search) only when it is within the claim, the others being
 * none of this tenant's business.
 */
export function isUndoTarget(
  association: Pick<PodIdentityAssociation, "namespace" | "serviceAccount" | "tags">,
  request: ProvisionRequest,
  run: Claim,
): boolean {
  const inSpecPlace = association.namespace === request.namespace && serviceAccountsOf(request).includes(association.serviceAccount ?? "");
  return inSpecPlace || wasCreatedBy(association.tags, run);
}

/** Delete the associations this execution (a teardown: the tenant) created; point adopted ones back as recorded; leave the rest. */
export async function undoPodIdentityAssociations(undo: AssociationsToUndo, result: CompensationResult): Promise<void> {
  const { eks, clusterName, request, run } = undo;
  const changeOf = new Map(undo.changes.map((change) => [change.associationId, change]));
  for (const search of associationSearches(request, run)) {
    for (const association of await associationsFor(eks, clusterName, search.namespace, search.serviceAccount)) {
      if (!isUndoTarget(association, request, run)) continue;
      const label = `Pod Identity association ${association.associationId} (${association.namespace}/${association.serviceAccount})`;
      await undoOne(result, label, run, async () => {
        if (!wasCreatedBy(association.tags, run)) {
          const change = changeOf.get(association.associationId!);
          if (change) noteRestored(result, await restoreAssociation(eks, clusterName, change, request.tenant, association));
          else result.kept.push(`${label}: ${notClaimed(run)}`);
          return;
        }
        // Gone already: an earlier attempt deleted it.
        await ignoreMissing(
          eks.send(new DeletePodIdentityAssociationCommand({ clusterName, associationId: association.associationId! })),
          "ResourceNotFoundException",
        );
        result.undone.push(label);
      });
    }
  }
}

/**
 * An update's removal of an association the new generation no longer wants (remove-unwanted-identities.ts): exactly the
 * one with this id, deleted only when its tags mark it the tenant's; anyone else's is kept, a missing one is nothing to do.
 */
export async function removeTenantAssociation(
  eks: EKSClient,
  clusterName: string,
  associationId: string,
  tenant: string,
  result: CompensationResult,
): Promise<void> {
  const claim = { tenant };
  const association = await describeAssociation(eks, clusterName, associationId);
  const label = association
    ? `Pod Identity association ${associationId} (${association.namespace}/${association.serviceAccount})`
    : `Pod Identity association ${associationId}`;
  let outcome: UndoOutcome = "absent";
  if (association && !wasCreatedBy(association.tags, claim)) outcome = "kept";
  else if (association) {
    await ignoreMissing(eks.send(new DeletePodIdentityAssociationCommand({ clusterName, associationId })), "ResourceNotFoundException");
    outcome = "deleted";
  }
  recordUndo(result, label, outcome, claim);
}
