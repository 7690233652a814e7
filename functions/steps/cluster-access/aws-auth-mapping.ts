/**
 * The step's use of kube-system/aws-auth (functions/lib/kube/aws-auth/, which reads, edits, replaces and marks it):
 * - `CONFIG_MAP` clusters: map the launcher there for this run, and undo exactly this run's mapping. A principal
 *   maps to one Kubernetes user, so a principal already mapped to another tenant's launcher is refused. The
 *   ConfigMap is never created: a cluster without it is NotAllowed, with what to do instead.
 * - `API_AND_CONFIG_MAP` clusters: before an access entry is created, refuse a principal aws-auth already maps,
 *   unless a run of this product recorded that mapping: the entry would take precedence and silently replace what
 *   the mapping grants (a platform admin role in system:masters, a self-managed node role).
 */
import { InvalidRequest, NotAllowed, OwnershipConflict } from "../../lib/domain/errors.js";
import { isTenantClaim, type RunMark } from "../../lib/domain/naming.js";
import {
  AwsAuthConfigMap,
  awsAuthPrincipal,
  editAwsAuth,
  type AwsAuthMapping,
  type PrincipalMapping,
  type RunMappingsRemoval,
} from "../../lib/kube/aws-auth/index.js";
import { claimOf, compensationResult, undoOne } from "../../lib/workflow/compensation.js";
import { logger } from "../../lib/workflow/middleware.js";
import type { AccessResult, CompensationResult, WorkflowState } from "../../lib/workflow/workflow-state.js";
import type { ClusterClients, LauncherAccess, LauncherIdentity } from "./cluster-access-context.js";

/** Another tenant's launcher user: taking the principal over would lock that tenant out. */
function isOtherTenantsLauncher(mapping: PrincipalMapping, tenant: string): boolean {
  return mapping.launcherTenant !== undefined && mapping.launcherTenant !== tenant;
}

/**
 * API_AND_CONFIG_MAP: read aws-auth (never written here; absent is fine in this mode) and refuse a principal
 * it maps (roles path-insensitively, an assumed-role ARN as its role) unless a run of this product recorded
 * that mapping for this tenant.
 */
export async function refuseShadowingAwsAuthMapping(access: LauncherAccess): Promise<void> {
  const principal = awsAuthPrincipal(access.principalArn);
  if (!principal) return; // not something aws-auth can map
  const awsAuth = await AwsAuthConfigMap.read(await access.clients.kube(), logger);
  if (!awsAuth) return;
  // Content that does not parse throws AwsAuthUnparseable: we cannot tell what the entry would shadow.
  const mapping = awsAuth.mappingOf(principal.arn);
  const { entry, recordedBy, launcherTenant } = mapping;
  if (!entry) return;
  const otherTenants = isOtherTenantsLauncher(mapping, access.tenant);
  if (recordedBy !== undefined && !otherTenants) return;
  throw new OwnershipConflict(
    `kube-system/aws-auth already maps ${access.principalArn} to username ${JSON.stringify(entry.username)} and groups ${JSON.stringify(entry.groups ?? [])}` +
      `${otherTenants ? ` (tenant ${launcherTenant}'s launcher)` : " and it was not added by this product"}; ` +
      `on this API_AND_CONFIG_MAP cluster an access entry for the same principal would take precedence and silently replace that mapping, ` +
      `so none is created. Use another launcher principal, or move the mapping to an access entry yourself.`,
  );
}

function missingAwsAuth(clusterName: string): never {
  throw new NotAllowed(
    `cluster ${clusterName} uses the CONFIG_MAP authentication mode but has no kube-system/aws-auth ConfigMap; ` +
      `this product edits aws-auth but never creates it (EKS creates it when a managed node group joins). ` +
      `Create it, or switch the cluster to the API_AND_CONFIG_MAP authentication mode to use access entries.`,
  );
}

export async function grantViaAwsAuth(access: LauncherAccess): Promise<AccessResult> {
  const principal = awsAuthPrincipal(access.principalArn);
  if (!principal) throw new InvalidRequest(`launcher ${access.principalArn} is not an IAM role or user ARN that aws-auth can map`);
  // aws-auth matches roles without their path: the canonical ARN is the key of our mark as well.
  const { username, groups } = access.identity;
  const mapping: AwsAuthMapping = { kind: principal.kind, arn: principal.arn, username, groups: [...groups] };
  const kube = await access.clients.kube();
  const { created, previousAwsAuth } = await editAwsAuth(
    kube,
    logger,
    (awsAuth) => {
      const existing = awsAuth.mappingOf(principal.arn);
      if (isOtherTenantsLauncher(existing, access.tenant)) {
        throw new OwnershipConflict(
          `aws-auth already maps ${principal.arn} to tenant ${existing.launcherTenant}'s launcher user ${JSON.stringify(existing.entry!.username)}; ` +
            `an IAM principal can be the launcher of one tenant only, so it is left unchanged`,
        );
      }
      return awsAuth.addRunMapping(mapping, access.run);
    },
    () => missingAwsAuth(access.cluster.name),
    { deadline: access.clients.deadline },
  );
  return {
    method: "aws-auth",
    principalArn: principal.arn,
    username,
    groups: [...groups],
    created,
    ...(previousAwsAuth ? { previousAwsAuth } : {}),
  };
}

export async function undoAwsAuthMapping(
  state: WorkflowState,
  identity: LauncherIdentity,
  clients: ClusterClients,
): Promise<CompensationResult> {
  const claim = claimOf(state, String(state.request.tenant));
  const launcher = state.access?.principalArn ?? state.iam?.launcherArn;
  // A teardown undoes every run that mapped the environment's launcher (the principal its record names) or, before an
  // update changed the launcher, an earlier one (any principal our runs mapped as the tenant's launcher identity).
  const runsOf = (awsAuth: AwsAuthConfigMap): RunMark[] => {
    if (!isTenantClaim(claim)) return [claim];
    const principals = new Set([
      ...(launcher ? [awsAuthPrincipal(launcher)?.arn ?? launcher] : []),
      ...awsAuth.launchersOfTenant(claim.tenant),
    ]);
    return [...new Set([...principals].flatMap((arn) => awsAuth.runsThatMapped(arn)))];
  };
  const result = compensationResult();
  let removal: RunMappingsRemoval | undefined;
  await undoOne(result, `aws-auth mapping for ${launcher ?? "the launcher"}`, claim, async () => {
    removal = await editAwsAuth<RunMappingsRemoval | undefined>(
      await clients.kube(),
      logger,
      (awsAuth) => mergedRemovals(runsOf(awsAuth).map((run) => awsAuth.removeRunMappings(run, identity))),
      () => undefined,
      { deadline: clients.deadline },
    );
  });
  if (result.failed?.length) return result;
  if (!removal) {
    result.kept.push("kube-system/aws-auth: absent, nothing to remove");
    return result;
  }
  if (Object.values(removal as RunMappingsRemoval).every((arns) => arns.length === 0)) {
    if (launcher && state.access)
      result.kept.push(`aws-auth mapping for ${launcher}: not added by ${isTenantClaim(claim) ? "a run of this product" : "this run"}`);
    return result;
  }
  return reportRemoval(removal, result);
}

/**
 * An update's removal of the mapping of a launcher the new spec no longer names (remove-unwanted.ts): exactly that
 * principal's entry, as each run of this product that mapped it recorded it (removed while it still maps the tenant's
 * launcher identity; an adopted entry put back as it was), the runs' other edits untouched. A mapping no run of ours
 * recorded is not the product's: it stays.
 */
export async function removeFormerLauncherMapping(
  principalArn: string,
  identity: LauncherIdentity,
  clients: ClusterClients,
): Promise<CompensationResult> {
  const result = compensationResult();
  const arn = awsAuthPrincipal(principalArn)?.arn ?? principalArn;
  const removal = await editAwsAuth<RunMappingsRemoval | undefined>(
    await clients.kube(),
    logger,
    (awsAuth) => mergedRemovals(awsAuth.runsThatMapped(arn).map((run) => awsAuth.removeRunMappings(run, identity, arn))),
    () => undefined,
    { deadline: clients.deadline },
  );
  return removal ? reportRemoval(removal, result) : result;
}

/** The removals of several runs as one. */
function mergedRemovals(removals: RunMappingsRemoval[]): RunMappingsRemoval {
  const merged: RunMappingsRemoval = { removed: [], restored: [], changedSince: [], notRestored: [] };
  for (const removal of removals)
    for (const key of Object.keys(merged) as Array<keyof RunMappingsRemoval>) merged[key].push(...removal[key]);
  return merged;
}

function reportRemoval(removal: RunMappingsRemoval, result: CompensationResult): CompensationResult {
  for (const arn of removal.removed) result.undone.push(`aws-auth mapping for ${arn}`);
  for (const arn of removal.restored) result.undone.push(`aws-auth mapping for ${arn} (put back as it was before this run)`);
  for (const arn of removal.changedSince) result.kept.push(`aws-auth mapping for ${arn}: changed or removed since this run added it`);
  const failed = removal.notRestored.map(
    (arn) => `aws-auth mapping for ${arn}: changed or removed since this run changed it, so its earlier content was not put back`,
  );
  if (failed.length > 0) result.failed = [...(result.failed ?? []), ...failed];
  return result;
}
