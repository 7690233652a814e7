/**
 * A role the product owns, found by its tags: created with this tenant's ownership marks and this
 * execution's, adopted only when it carries this tenant's marks (an OwnershipConflict otherwise), and in
 * compensation deleted when this execution created it, or put back as it was when it was adopted.
 */
import {
  CreateRoleCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  type IAMClient,
  paginateListAttachedRolePolicies,
  paginateListRolePolicies,
  type Role,
} from "@aws-sdk/client-iam";
import { tenantRoleBoundary } from "../../lib/domain/deploy-config.js";
import { IamNotYetConsistent, OwnershipConflict } from "../../lib/domain/errors.js";
import {
  type Claim,
  IAM_ROLE_PATH,
  isOwnedBy,
  ownershipTags,
  productRoleArn,
  tagsToRecord,
  wasCreatedBy,
} from "../../lib/domain/naming.js";
import { notClaimed, undoOne } from "../../lib/workflow/compensation.js";
import { logger } from "../../lib/workflow/middleware.js";
import { ignoreMissing, isAwsError } from "../../lib/workflow/normalise-error.js";
import type { CompensationResult, IamRoleChange } from "../../lib/workflow/workflow-state.js";
import { type IamStepContext, noteRestored } from "./iam-step-context.js";
import { type DesiredRole, describeChange, getRole, putInlinePolicy, reconcileRole, restoreRole } from "./role-documents.js";

export interface EnsuredRole {
  arn: string;
  /** By this execution (now or in an earlier attempt): the compensator deletes it whole. */
  created: boolean;
  /** IAM's CreateDate of this instance of the role */
  createDate?: Date;
}

/**
 * Create the role, or adopt it when it is ours for this tenant. Returns its ARN and whether this run
 * created it. CreateRole carries the execution tag, so a failure right after it leaves a role the
 * compensator can find.
 */
export async function ensureRole(ctx: IamStepContext, desired: DesiredRole, attempt = 1): Promise<EnsuredRole> {
  const existing = await getRole(ctx.iam, desired.roleName);
  if (existing) return adoptRole(ctx, existing, desired);
  let role: Role | undefined;
  try {
    role = await createRole(ctx, desired);
  } catch (error) {
    if (!isAwsError(error, "EntityAlreadyExists")) throw error;
    // Created by someone (a concurrent retry of this run) between our GetRole and CreateRole: decide again once.
    // If IAM still shows no role, its reads lag its writes; the state machine retries later instead of this Lambda spinning.
    if (attempt >= 2) {
      throw new IamNotYetConsistent(`IAM role ${desired.roleName} already exists (EntityAlreadyExists) but GetRole does not show it yet`, {
        cause: error,
      });
    }
    return ensureRole(ctx, desired, attempt + 1);
  }
  await putInlinePolicy(ctx.iam, desired);
  logger.info("created IAM role", { roleName: desired.roleName });
  return {
    arn: role?.Arn ?? productRoleArn(ctx.partition, ctx.cluster.accountId, desired.roleName),
    created: true,
    ...(role?.CreateDate ? { createDate: role.CreateDate } : {}),
  };
}

/** Role names are unique in an account whatever the path: a same-named role elsewhere is not one of ours, however tagged. */
function outsideProductPath(role: Role): string | undefined {
  if (role.Path === IAM_ROLE_PATH) return undefined;
  return (
    `IAM role ${role.RoleName} already exists at path ${role.Path}, not under the product's path ${IAM_ROLE_PATH} ` +
    "(role names are unique across paths); it is left untouched. Delete or rename it, or choose another IAM prefix."
  );
}

async function adoptRole(ctx: IamStepContext, existing: Role, desired: DesiredRole): Promise<EnsuredRole> {
  const tenant = ctx.request.tenant;
  const elsewhere = outsideProductPath(existing);
  if (elsewhere) throw new OwnershipConflict(elsewhere);
  if (!isOwnedBy(tagsToRecord(existing.Tags), tenant)) {
    throw new OwnershipConflict(
      `IAM role ${desired.roleName} already exists without the ownership tags for tenant ${tenant}; it is left untouched. Delete or rename it, or choose another IAM prefix.`,
    );
  }
  // Created by an earlier attempt of this same run (a retry): still this run's creation, which the
  // compensator deletes whole; only another run's role needs its previous documents kept.
  const created = wasCreatedBy(tagsToRecord(existing.Tags), ctx.run);
  const change: IamRoleChange = { roleName: desired.roleName };
  if (!created) ctx.changes.push(change);
  await reconcileRole(ctx, existing, desired, change);
  logger.info(created ? "found IAM role this run created" : "adopted IAM role", {
    roleName: desired.roleName,
    changed: describeChange(change),
  });
  return { arn: existing.Arn!, created, ...(existing.CreateDate ? { createDate: existing.CreateDate } : {}) };
}

/** Under the product's path, with the deployment's boundary and this run's marks: the only way the product's IAM permissions allow. */
async function createRole(ctx: IamStepContext, desired: DesiredRole): Promise<Role | undefined> {
  const { Role: role } = await ctx.iam.send(
    new CreateRoleCommand({
      RoleName: desired.roleName,
      Path: IAM_ROLE_PATH,
      Description: desired.description,
      AssumeRolePolicyDocument: JSON.stringify(desired.trustPolicy),
      Tags: ownershipTags(ctx.request.tenant, ctx.run),
      PermissionsBoundary: tenantRoleBoundary(ctx.config),
    }),
  );
  return role;
}

/** Delete a role this execution created: inline policies, attached policies, then the role. */
async function deleteRole(iam: IAMClient, roleName: string): Promise<void> {
  for await (const page of paginateListRolePolicies({ client: iam }, { RoleName: roleName })) {
    for (const policyName of page.PolicyNames ?? [])
      await iam.send(new DeleteRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
  }
  for await (const page of paginateListAttachedRolePolicies({ client: iam }, { RoleName: roleName })) {
    for (const policy of page.AttachedPolicies ?? [])
      await iam.send(new DetachRolePolicyCommand({ RoleName: roleName, PolicyArn: policy.PolicyArn }));
  }
  await iam.send(new DeleteRoleCommand({ RoleName: roleName }));
}

export interface RolesToUndo {
  iam: IAMClient;
  tenant: string;
  /** This run's mark, or a teardown's claim on every role of the tenant */
  run: Claim;
  /** Every role the step could have created; the execution tag decides, whatever the step returned. */
  roleNames: string[];
  /** What this run changed on adopted roles (`$.iam.changed`, present only when the step succeeded). */
  changes: IamRoleChange[];
}

/** Delete the roles this execution created; put adopted ones back as recorded; leave the rest. */
export async function undoTaggedRoles({ iam, tenant, run, roleNames, changes }: RolesToUndo, result: CompensationResult): Promise<void> {
  const changeOf = new Map(changes.map((change) => [change.roleName, change]));
  for (const roleName of roleNames) {
    await undoOne(result, `IAM role ${roleName}`, run, async () => {
      const role = await getRole(iam, roleName);
      if (!role) return; // never created, or already undone
      const elsewhere = outsideProductPath(role);
      if (elsewhere) {
        result.kept.push(elsewhere);
        return;
      }
      if (!wasCreatedBy(tagsToRecord(role.Tags), run)) {
        const change = changeOf.get(roleName);
        if (change) noteRestored(result, await restoreRole(iam, change, tenant, role));
        else result.kept.push(`IAM role ${roleName}: ${notClaimed(run)}`);
        return;
      }
      // Gone already: a previous compensation attempt got this far.
      await ignoreMissing(deleteRole(iam, roleName), "NoSuchEntity");
      result.undone.push(`IAM role ${roleName}`);
    });
  }
}

/**
 * An update's removal of a role the new generation no longer uses (remove-unwanted-identities.ts): deleted only when it
 * is on the product's path and its tags mark it the tenant's (as a teardown decides); anyone else's is kept.
 */
export async function removeTenantRole(iam: IAMClient, roleName: string, tenant: string, result: CompensationResult): Promise<void> {
  const claim = { tenant };
  const role = await getRole(iam, roleName);
  if (!role) return; // gone already
  const elsewhere = outsideProductPath(role);
  if (elsewhere) {
    result.kept.push(elsewhere);
    return;
  }
  if (!wasCreatedBy(tagsToRecord(role.Tags), claim)) {
    result.kept.push(`IAM role ${roleName}: ${notClaimed(claim)}`);
    return;
  }
  await ignoreMissing(deleteRole(iam, roleName), "NoSuchEntity");
  result.undone.push(`IAM role ${roleName}`);
}
