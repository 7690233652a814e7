/**
 * A role's documents (permissions boundary, trust policy, inline policy): reading them, bringing an adopted
 * role to the desired ones while recording what each write replaces and what it wrote, and putting the recorded
 * ones back (only while the role still has what this run wrote), either before the step rethrows (its output,
 * and so the record, would be lost) or in compensation.
 */
import {
  DeleteRolePolicyCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  type IAMClient,
  PutRolePermissionsBoundaryCommand,
  PutRolePolicyCommand,
  type Role,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { tenantRoleBoundary } from "../../lib/domain/deploy-config.js";
import type { PolicyDocument } from "../../lib/domain/policies.js";
import { isOwnedBy, tagsToRecord } from "../../lib/domain/naming.js";
import { logger } from "../../lib/workflow/middleware.js";
import { ifExists, ignoreMissing } from "../../lib/workflow/normalise-error.js";
import type { IamRoleChange } from "../../lib/workflow/workflow-state.js";
import type { IamStepContext, Restored } from "./iam-step-context.js";
import { policyText, sameAsRecorded, samePolicy } from "./policy-comparison.js";

/** What one role should look like. */
export interface DesiredRole {
  roleName: string;
  description: string;
  trustPolicy: PolicyDocument;
  inlinePolicyName: string;
  inlinePolicy: PolicyDocument;
}

export async function getRole(iam: IAMClient, roleName: string): Promise<Role | undefined> {
  return (await ifExists(iam.send(new GetRoleCommand({ RoleName: roleName })), "NoSuchEntity"))?.Role;
}

async function inlinePolicyDocument(iam: IAMClient, roleName: string, policyName: string): Promise<string | undefined> {
  const read = iam.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
  return (await ifExists(read, "NoSuchEntity"))?.PolicyDocument;
}

export function putInlinePolicy(iam: IAMClient, desired: DesiredRole): Promise<unknown> {
  return iam.send(
    new PutRolePolicyCommand({
      RoleName: desired.roleName,
      PolicyName: desired.inlinePolicyName,
      PolicyDocument: JSON.stringify(desired.inlinePolicy),
    }),
  );
}

/**
 * Bring an adopted role to the desired boundary, trust and inline policy; writes only what differs.
 * Each previous value goes into `change` before its write, so a write that fails (or half-succeeds)
 * is still put back. The boundary goes first: the product's own IAM permissions allow PutRolePolicy only
 * on roles that carry it.
 */
export async function reconcileRole(ctx: IamStepContext, role: Role, desired: DesiredRole, change: IamRoleChange): Promise<void> {
  const boundary = tenantRoleBoundary(ctx.config);
  const currentBoundary = role.PermissionsBoundary?.PermissionsBoundaryArn;
  if (currentBoundary !== boundary) {
    change.previousBoundary = currentBoundary ? { arn: currentBoundary } : {};
    await ctx.iam.send(new PutRolePermissionsBoundaryCommand({ RoleName: desired.roleName, PermissionsBoundary: boundary }));
  }
  if (!samePolicy(role.AssumeRolePolicyDocument, desired.trustPolicy)) {
    if (role.AssumeRolePolicyDocument) change.previousTrustPolicy = policyText(role.AssumeRolePolicyDocument);
    change.writtenTrustPolicy = JSON.stringify(desired.trustPolicy);
    await ctx.iam.send(
      new UpdateAssumeRolePolicyCommand({ RoleName: desired.roleName, PolicyDocument: JSON.stringify(desired.trustPolicy) }),
    );
  }
  const current = await inlinePolicyDocument(ctx.iam, desired.roleName, desired.inlinePolicyName);
  if (!samePolicy(current, desired.inlinePolicy)) {
    change.previousInlinePolicy = { name: desired.inlinePolicyName, ...(current !== undefined ? { document: policyText(current) } : {}) };
    change.writtenInlinePolicy = JSON.stringify(desired.inlinePolicy);
    await putInlinePolicy(ctx.iam, desired);
  }
}

/** What a change record says was replaced, for logs and the compensation report. */
export function describeChange(change: IamRoleChange): string[] {
  return [
    ...(change.previousBoundary ? ["permissions boundary"] : []),
    ...(change.previousTrustPolicy !== undefined ? ["trust policy"] : []),
    ...(change.previousInlinePolicy ? [`inline policy ${change.previousInlinePolicy.name}`] : []),
  ];
}

/** The adopted roles this run wrote to (a role found already as desired has an empty record). */
export function rolesChanged(changes: IamRoleChange[]): IamRoleChange[] {
  return changes.filter((change) => describeChange(change).length > 0);
}

/** What putting back one document did: restored (with how), or found changed since this run wrote it. */
interface DocumentRestore {
  restored: string[];
  changedSince: string[];
}

/**
 * Changed since this run wrote it (compared as parsed JSON, as IAM returns documents re-encoded): someone else's now.
 * A record without what was written (an earlier version's) cannot tell, and is put back as before.
 */
function changedSinceWritten(current: string | undefined, written: string | undefined): boolean {
  return written !== undefined && !sameAsRecorded(current, written);
}

/** The inline policy as recorded: removed when the role had none, rewritten when it differs; left when changed since. */
async function restoreInlinePolicy(iam: IAMClient, roleName: string, change: IamRoleChange): Promise<DocumentRestore> {
  const inline = change.previousInlinePolicy!;
  const what = `inline policy ${inline.name}`;
  const current = await inlinePolicyDocument(iam, roleName, inline.name);
  const inPlace = inline.document === undefined ? current === undefined : sameAsRecorded(current, inline.document);
  if (inPlace) return { restored: [], changedSince: [] };
  if (changedSinceWritten(current, change.writtenInlinePolicy)) return { restored: [], changedSince: [what] };
  if (inline.document === undefined) {
    await ignoreMissing(iam.send(new DeleteRolePolicyCommand({ RoleName: roleName, PolicyName: inline.name })), "NoSuchEntity");
    return { restored: [`${what} removed`], changedSince: [] };
  }
  await iam.send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: inline.name, PolicyDocument: inline.document }));
  return { restored: [`${what} restored`], changedSince: [] };
}

/** The trust policy as recorded, unless it is already in place or was changed since this run wrote it. */
async function restoreTrustPolicy(iam: IAMClient, role: Role, change: IamRoleChange): Promise<DocumentRestore> {
  const previous = change.previousTrustPolicy;
  if (previous === undefined || sameAsRecorded(role.AssumeRolePolicyDocument, previous)) return { restored: [], changedSince: [] };
  if (changedSinceWritten(role.AssumeRolePolicyDocument, change.writtenTrustPolicy))
    return { restored: [], changedSince: ["trust policy"] };
  await iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: change.roleName, PolicyDocument: previous }));
  return { restored: ["trust policy restored"], changedSince: [] };
}

/**
 * Put an adopted role's inline policy and trust policy back as this run found them, each only while it is still
 * what this run wrote (changed since: left as it is, reported under `failed`); writes only what still differs, so
 * running twice changes nothing the second time. The inline policy goes first, while the boundary the product's IAM
 * permissions may require is still on the role. The boundary itself stays: the deployment requires it on every
 * product role, and loosening one is not something the product may do.
 */
export async function restoreRole(iam: IAMClient, change: IamRoleChange, tenant: string, read?: Role): Promise<Restored> {
  const label = `IAM role ${change.roleName}`;
  const role = read ?? (await getRole(iam, change.roleName));
  if (!role) return { kept: `${label}: gone, nothing to put back` };
  if (!isOwnedBy(tagsToRecord(role.Tags), tenant)) return { kept: `${label}: no longer carries this tenant's marks, left untouched` };
  const inline = change.previousInlinePolicy ? await restoreInlinePolicy(iam, change.roleName, change) : { restored: [], changedSince: [] };
  const trust = await restoreTrustPolicy(iam, role, change);
  const restored = [...inline.restored, ...trust.restored];
  const changedSince = [...inline.changedSince, ...trust.changedSince];
  const kept = change.previousBoundary
    ? `${label}: permissions boundary left at ${role.PermissionsBoundary?.PermissionsBoundaryArn ?? "none"} (was ${change.previousBoundary.arn ?? "none"}): the deployment requires it`
    : restored.length === 0 && changedSince.length === 0
      ? `${label}: not created by this run; its previous documents are in place`
      : undefined;
  const failed = changedSince.length
    ? `${label}: ${changedSince.join(" and ")} changed since this run wrote it, so the previous document was not put back`
    : undefined;
  return {
    ...(restored.length ? { undone: `${label}: ${restored.join(", ")}` } : {}),
    ...(kept ? { kept } : {}),
    ...(failed ? { failed } : {}),
  };
}

/** Before the step rethrows; best effort, newest first: a write that fails here is logged, and the step's own error is what the run reports. */
export async function putBackRoles(ctx: IamStepContext): Promise<void> {
  for (const change of rolesChanged(ctx.changes).reverse()) {
    try {
      await restoreRole(ctx.iam, change, ctx.request.tenant);
    } catch (error) {
      logger.error("could not put back the previous documents of an adopted IAM role", { change, error });
    }
  }
}
