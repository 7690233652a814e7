/**
 * `API` / `API_AND_CONFIG_MAP` clusters: the launcher gets an EKS access entry (STANDARD, tagged with our marks).
 * An existing entry is adopted only when its tags mark it ours for this tenant; otherwise OwnershipConflict.
 * In `API_AND_CONFIG_MAP` EKS prefers an access entry to an aws-auth mapping of the same principal, so before
 * creating one the step checks aws-auth (read only, aws-auth-mapping.ts). The undo deletes the entry only when
 * its tags say this run created it; a teardown deletes every entry tagged as the tenant's (accessEntryTargets).
 *
 * An entry belongs to the role instance it was made for: EKS stops honouring it once the role is deleted and
 * recreated under the same ARN. EKS does not show the role's unique id, but an entry created before the role's
 * IAM CreateDate (`$.iam.launcherCreateDate`) was made for an earlier instance: ours, it is deleted and made again
 * (`replacedStaleEntry`), never adopted. IAM's CreateDate has whole seconds, so a role deleted and recreated in
 * the same second as its entry was made is not recognised (a known limit).
 */
import {
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  paginateListAccessEntries,
  UpdateAccessEntryCommand,
  type AccessEntry,
  type EKSClient,
} from "@aws-sdk/client-eks";
import { parseArn } from "../../lib/domain/arn.js";
import { IamNotYetConsistent, InvalidRequest, OwnershipConflict } from "../../lib/domain/errors.js";
import { isOwnedBy, isTenantClaim, ownershipTags, tagsToRecord, wasCreatedBy } from "../../lib/domain/naming.js";
import { claimOf, compensationResult, notClaimed, recordUndo, undoOne } from "../../lib/workflow/compensation.js";
import { logger } from "../../lib/workflow/middleware.js";
import { ifExists, ignoreMissing, isAwsError, normaliseError } from "../../lib/workflow/normalise-error.js";
import type { AccessResult, CompensationResult, ResolvedCluster, WorkflowState } from "../../lib/workflow/workflow-state.js";
import { refuseShadowingAwsAuthMapping } from "./aws-auth-mapping.js";
import type { ClusterClients, LauncherAccess } from "./cluster-access-context.js";

async function describeAccessEntry(eks: EKSClient, clusterName: string, principalArn: string): Promise<AccessEntry | undefined> {
  return (await ifExists(eks.send(new DescribeAccessEntryCommand({ clusterName, principalArn })), "ResourceNotFoundException"))
    ?.accessEntry;
}

/**
 * Made for an earlier instance of the launcher role: created before the role's CreateDate (whole seconds, so an
 * entry made in the role's first second counts as current, never falsely as stale).
 */
export function isStaleEntry(entry: AccessEntry, launcherCreateDate: string | undefined): boolean {
  if (!launcherCreateDate || !entry.createdAt) return false;
  const roleCreated = Date.parse(launcherCreateDate);
  return Number.isFinite(roleCreated) && new Date(entry.createdAt).getTime() < roleCreated;
}

function accessResult(access: LauncherAccess, created: boolean, previousIdentity?: AccessResult["previousIdentity"]): AccessResult {
  return {
    method: "access-entry",
    principalArn: access.principalArn,
    username: access.identity.username,
    groups: [...access.identity.groups],
    created,
    ...(previousIdentity ? { previousIdentity } : {}),
  };
}

function sameGroups(current: string[] | undefined, desired: string[]): boolean {
  return JSON.stringify([...(current ?? [])].sort()) === JSON.stringify([...desired].sort());
}

/**
 * Ours for this tenant: keep it, bringing username and groups to the tenant's if they differ (changed by
 * hand, or the shared `tower-launcher-user` an earlier version mapped every tenant to). The identity before
 * the change is returned (`previousIdentity`) for the undo to put back.
 */
async function adoptAccessEntry(access: LauncherAccess, entry: AccessEntry): Promise<AccessResult> {
  if (!isOwnedBy(entry.tags, access.tenant)) {
    throw new OwnershipConflict(
      `an EKS access entry for ${access.principalArn} already exists on cluster ${access.cluster.name} without the ownership tags for tenant ${access.tenant}; ` +
        `it is left untouched (username ${JSON.stringify(entry.username)}, groups ${JSON.stringify(entry.kubernetesGroups ?? [])})`,
    );
  }
  const { username, groups } = access.identity;
  let previousIdentity: AccessResult["previousIdentity"];
  if (entry.username !== username || !sameGroups(entry.kubernetesGroups, groups)) {
    previousIdentity = {
      ...(entry.username !== undefined ? { username: entry.username } : {}),
      groups: [...(entry.kubernetesGroups ?? [])],
    };
    await access.clients.eks().send(
      new UpdateAccessEntryCommand({
        clusterName: access.cluster.name,
        principalArn: access.principalArn,
        username,
        kubernetesGroups: [...groups],
      }),
    );
    logger.info("updated our EKS access entry to the tenant's launcher username and groups", {
      principalArn: access.principalArn,
      from: entry.username,
      to: username,
    });
  }
  // Created by an earlier attempt of this same run: still this run's creation.
  return accessResult(access, wasCreatedBy(entry.tags, access.run), previousIdentity);
}

/** A principal in another account that EKS calls invalid: IAM propagation is not why (we never create it). */
function isForeignPrincipalRefusal(access: LauncherAccess, error: unknown): boolean {
  const account = parseArn(access.principalArn)?.accountId;
  return account !== undefined && account !== access.cluster.accountId && normaliseError(error) instanceof IamNotYetConsistent;
}

/**
 * Ours but made for an earlier instance of the role: delete it so that a new one can be made. Another's stale
 * entry is an OwnershipConflict like any other entry that is not ours.
 */
async function deleteStaleEntry(access: LauncherAccess, entry: AccessEntry): Promise<{ createdAt: string }> {
  if (!isOwnedBy(entry.tags, access.tenant)) {
    throw new OwnershipConflict(
      `an EKS access entry for ${access.principalArn} already exists on cluster ${access.cluster.name} without the ownership tags for tenant ${access.tenant}, ` +
        `made before the launcher role was (re)created (so EKS no longer honours it); it is left untouched`,
    );
  }
  await ignoreMissing(
    access.clients.eks().send(new DeleteAccessEntryCommand({ clusterName: access.cluster.name, principalArn: access.principalArn })),
    "ResourceNotFoundException",
  );
  const createdAt = new Date(entry.createdAt!).toISOString();
  logger.info("deleted our EKS access entry made for an earlier instance of the launcher role", {
    principalArn: access.principalArn,
    entryCreatedAt: createdAt,
    roleCreateDate: access.principalCreateDate,
  });
  return { createdAt };
}

export async function grantViaAccessEntry(access: LauncherAccess): Promise<AccessResult> {
  const eks = access.clients.eks();
  const existing = await describeAccessEntry(eks, access.cluster.name, access.principalArn);
  let replacedStaleEntry: AccessResult["replacedStaleEntry"];
  if (existing && isStaleEntry(existing, access.principalCreateDate)) replacedStaleEntry = await deleteStaleEntry(access, existing);
  else if (existing) return adoptAccessEntry(access, existing);
  if (access.cluster.authenticationMode === "API_AND_CONFIG_MAP") await refuseShadowingAwsAuthMapping(access);
  try {
    await eks.send(
      new CreateAccessEntryCommand({
        clusterName: access.cluster.name,
        principalArn: access.principalArn,
        type: "STANDARD",
        username: access.identity.username,
        kubernetesGroups: [...access.identity.groups],
        tags: tagsToRecord(ownershipTags(access.tenant, access.run)),
      }),
    );
  } catch (error) {
    // Created between our read and our write (a concurrent attempt): decide on what is there now.
    if (isAwsError(error, "ResourceInUseException")) {
      const now = await describeAccessEntry(eks, access.cluster.name, access.principalArn);
      // Still the stale one (its deletion not yet seen): the state machine retries the step.
      if (now && isStaleEntry(now, access.principalCreateDate)) {
        throw new IamNotYetConsistent(`the stale EKS access entry for ${access.principalArn} is still there after its deletion`, {
          cause: error,
        });
      }
      if (now) return adoptAccessEntry(access, now);
    }
    if (isForeignPrincipalRefusal(access, error)) {
      throw new InvalidRequest(
        [
          {
            path: "launcher.principalArn",
            message: `EKS refuses ${access.principalArn} as an access entry principal: it does not exist or cannot be used (${(error as Error).message})`,
          },
        ],
        { cause: error },
      );
    }
    // A role created seconds ago may be refused as an invalid principal: normaliseError names that
    // IamNotYetConsistent and the state machine retries.
    throw error;
  }
  logger.info("created EKS access entry", { principalArn: access.principalArn });
  return { ...accessResult(access, true), ...(replacedStaleEntry ? { replacedStaleEntry } : {}) };
}

/**
 * The principals whose entries an undo looks at: the one the run (a teardown: the record) names, and in a teardown also
 * every other principal whose entry is tagged as the tenant's: the record names only the last launcher, and an update
 * whose removal of an earlier launcher's entry did not happen (a run that failed after the grant) leaves it behind.
 */
export function accessEntryTargets(principalArn: string | undefined, tenantEntries: AccessEntry[], tenant: string | undefined): string[] {
  const others =
    tenant === undefined ? [] : tenantEntries.filter((entry) => isOwnedBy(entry.tags, tenant)).map((entry) => entry.principalArn ?? "");
  return [...new Set([...(principalArn ? [principalArn] : []), ...others.filter(Boolean)])];
}

/** Every access entry of the cluster, described (a teardown's search for the tenant's entries). */
async function accessEntriesOf(eks: EKSClient, clusterName: string): Promise<AccessEntry[]> {
  const found: AccessEntry[] = [];
  for await (const page of paginateListAccessEntries({ client: eks }, { clusterName })) {
    for (const principalArn of page.accessEntries ?? []) {
      const entry = await describeAccessEntry(eks, clusterName, principalArn);
      if (entry) found.push(entry);
    }
  }
  return found;
}

export async function undoAccessEntry(
  state: WorkflowState,
  cluster: ResolvedCluster,
  clients: ClusterClients,
): Promise<CompensationResult> {
  const result = compensationResult();
  const recorded = state.access?.principalArn ?? state.iam?.launcherArn;
  const eks = clients.eks();
  const claim = claimOf(state, String(state.request.tenant));
  const tenantEntries = isTenantClaim(claim) ? await accessEntriesOf(eks, cluster.name) : [];
  const principals = accessEntryTargets(recorded, tenantEntries, isTenantClaim(claim) ? claim.tenant : undefined);
  for (const principalArn of principals) {
    const label = `EKS access entry ${principalArn} on ${cluster.name}`;
    await undoOne(result, label, claim, async () => {
      const entry = await describeAccessEntry(eks, cluster.name, principalArn);
      if (!entry) return;
      if (!wasCreatedBy(entry.tags, claim)) {
        if (principalArn === recorded && state.access?.previousIdentity)
          await putBackIdentity(eks, cluster, entry, state.access, label, result);
        else result.kept.push(`${label}: ${notClaimed(claim)}`);
        return;
      }
      await deleteAccessEntry(eks, cluster.name, principalArn);
      result.undone.push(label);
    });
  }
  return result;
}

/** Delete one principal's entry; gone already (an earlier attempt deleted it) is fine. */
async function deleteAccessEntry(eks: EKSClient, clusterName: string, principalArn: string): Promise<void> {
  await ignoreMissing(eks.send(new DeleteAccessEntryCommand({ clusterName, principalArn })), "ResourceNotFoundException");
}

/**
 * An update's removal of the entry of a launcher the new spec no longer names (remove-unwanted.ts): exactly that
 * principal's entry, and only when its tags mark it the tenant's (as a teardown decides); anyone else's is kept.
 */
export async function removeFormerLauncherEntry(
  cluster: ResolvedCluster,
  clients: ClusterClients,
  principalArn: string,
  tenant: string,
): Promise<CompensationResult> {
  const result = compensationResult();
  const claim = { tenant };
  const eks = clients.eks();
  const label = `EKS access entry ${principalArn} on ${cluster.name}`;
  const entry = await describeAccessEntry(eks, cluster.name, principalArn);
  if (!entry) return result;
  if (!wasCreatedBy(entry.tags, claim)) {
    recordUndo(result, label, "kept", claim);
    return result;
  }
  await deleteAccessEntry(eks, cluster.name, principalArn);
  recordUndo(result, label, "deleted", claim);
  return result;
}

/**
 * An adopted entry this run changed: put its username and groups back, but only while they are still what this
 * run set; changed again since, it is someone else's now and is reported as not undone.
 */
async function putBackIdentity(
  eks: EKSClient,
  cluster: ResolvedCluster,
  entry: AccessEntry,
  access: AccessResult,
  label: string,
  result: CompensationResult,
): Promise<CompensationResult> {
  const previous = access.previousIdentity!;
  // Put back already (an earlier attempt of this undo): nothing left to do.
  if (entry.username === previous.username && sameGroups(entry.kubernetesGroups, previous.groups)) return result;
  if (entry.username !== access.username || !sameGroups(entry.kubernetesGroups, access.groups)) {
    result.failed = [
      ...(result.failed ?? []),
      `${label}: changed since this run changed it, so its earlier username and groups were not put back`,
    ];
    return result;
  }
  await eks.send(
    new UpdateAccessEntryCommand({
      clusterName: cluster.name,
      principalArn: access.principalArn,
      ...(previous.username !== undefined ? { username: previous.username } : {}),
      kubernetesGroups: [...previous.groups],
    }),
  );
  result.undone.push(`${label} (put back username ${JSON.stringify(previous.username)} and groups ${JSON.stringify(previous.groups)})`);
  return result;
}
