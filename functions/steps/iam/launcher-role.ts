/**
 * The launcher identity Seqera and Nextflow act as: the principal the request names (checked to exist),
 * or a role of our own (`<prefix>-<tenant>.<cluster>-launcher`) allowed to describe this cluster.
 */
import { GetRoleCommand, GetUserCommand } from "@aws-sdk/client-iam";
import { parseArn } from "../../lib/domain/arn.js";
import { InvalidRequest } from "../../lib/domain/errors.js";
import { iamPolicyName, iamRoleName } from "../../lib/domain/naming.js";
import { accountRootArn, launcherPermissionsPolicy, launcherTrustPolicy, type PolicyDocument } from "../../lib/domain/policies.js";
import { LAUNCHER_TRUST_REQUIRED, type ProvisionRequest } from "../../lib/domain/request.js";
import { isAwsError } from "../../lib/workflow/normalise-error.js";
import type { IamStepContext } from "./iam-step-context.js";
import type { DesiredRole } from "./role-documents.js";
import { ensureRole } from "./tagged-role.js";

export interface LauncherIdentity {
  arn: string;
  kind: "role" | "user";
  /** By this execution: the compensator deletes it. */
  created: boolean;
  /** A role of the cluster's account: IAM's CreateDate of the instance found (access entries made before it are stale) */
  createDate?: Date;
}

/** The last path segment of `role/path/name` or `user/name`. */
function principalName(resource: string): { kind: "role" | "user"; name: string } {
  const [kind, ...rest] = resource.split("/");
  return { kind: kind === "user" ? "user" : "role", name: rest[rest.length - 1] };
}

async function verifyExistingPrincipal(ctx: IamStepContext, principalArn: string): Promise<{ kind: "role" | "user"; createDate?: Date }> {
  const arn = parseArn(principalArn)!;
  const { kind, name } = principalName(arn.resource);
  // IAM answers only for its own account: a principal in another allowlisted account is checked by EKS later.
  if (arn.accountId !== ctx.cluster.accountId) return { kind };
  try {
    if (kind === "role") {
      const { Role: role } = await ctx.iam.send(new GetRoleCommand({ RoleName: name }));
      return { kind, ...(role?.CreateDate ? { createDate: role.CreateDate } : {}) };
    }
    await ctx.iam.send(new GetUserCommand({ UserName: name }));
  } catch (error) {
    if (isAwsError(error, "NoSuchEntity")) {
      throw new InvalidRequest([{ path: "launcher.principalArn", message: `principal does not exist: ${principalArn}` }], { cause: error });
    }
    throw error;
  }
  return { kind };
}

type CreatedLauncher = Extract<ProvisionRequest["launcher"], { mode: "create" }>;

/** Exactly whom the request names (the schema requires `trust` or `trustAccount: true`); the account root only when asked for. */
function launcherTrust(ctx: IamStepContext, launcher: CreatedLauncher): PolicyDocument {
  if (launcher.trust) return launcherTrustPolicy(launcher.trust.principals, launcher.trust.externalId);
  if (launcher.trustAccount) return launcherTrustPolicy([accountRootArn(ctx.cluster.accountId, ctx.partition)]);
  throw new InvalidRequest([{ path: "launcher", message: LAUNCHER_TRUST_REQUIRED }]);
}

function launcherRole(ctx: IamStepContext, launcher: CreatedLauncher): DesiredRole {
  const { iamPrefix } = ctx.config;
  const tenant = ctx.request.tenant;
  return {
    roleName: iamRoleName(iamPrefix, tenant, ctx.cluster.name, "launcher"),
    description: `nf-eks-provisioner: Seqera/Nextflow launcher for tenant ${tenant} on ${ctx.cluster.name}`,
    trustPolicy: launcherTrust(ctx, launcher),
    inlinePolicyName: iamPolicyName(iamPrefix, tenant, ctx.cluster.name, "launcher"),
    inlinePolicy: launcherPermissionsPolicy([ctx.cluster.arn]),
  };
}

export async function ensureLauncherIdentity(ctx: IamStepContext): Promise<LauncherIdentity> {
  const { launcher } = ctx.request;
  if (launcher.mode === "existing") {
    return { arn: launcher.principalArn, ...(await verifyExistingPrincipal(ctx, launcher.principalArn)), created: false };
  }
  return { ...(await ensureRole(ctx, launcherRole(ctx, launcher))), kind: "role" };
}
