/**
 * GrantClusterAccess: let the launcher principal into the cluster as username `tower-launcher-user-<tenant>`
 * in group `tower-launcher-role-<tenant>` (the RBAC step binds that user to the namespace Role). The
 * identity is the tenant's own, so a launcher reaches only its tenant's namespace. An entry or mapping of
 * ours from an earlier version (the shared `tower-launcher-user`) is moved to the tenant's identity.
 * UndoClusterAccess removes exactly the entry or mapping this run added, and puts back the previous username and
 * groups of one it adopted and changed. An update that names another launcher removes the former one's access last
 * (removeFormerLauncherAccess, run by RemoveUnwantedResources).
 *
 * The cluster's authenticationMode chooses the mechanism:
 * - `API` / `API_AND_CONFIG_MAP`: an EKS access entry (access-entry.ts);
 * - `CONFIG_MAP`: one entry in `kube-system/aws-auth`, which the node groups share (aws-auth-mapping.ts).
 */
import type { EKSClient } from "@aws-sdk/client-eks";
import type { Context } from "aws-lambda";
import { eksClient } from "../../lib/aws/clients.js";
import { InvalidRequest } from "../../lib/domain/errors.js";
import { launcherGroup, launcherUsername, runMark } from "../../lib/domain/naming.js";
import { parseRequest } from "../../lib/domain/request.js";
import { kubeClientFor, type KubeApi } from "../../lib/kube/kube-client.js";
import { compensationResult } from "../../lib/workflow/compensation.js";
import { stepHandler } from "../../lib/workflow/middleware.js";
import { requireCluster } from "../../lib/workflow/require-cluster.js";
import type { AccessResult, CompensationResult, ResolvedCluster, WorkflowState } from "../../lib/workflow/workflow-state.js";
import type { ClusterClients, LauncherAccess, LauncherIdentity } from "./cluster-access-context.js";
import { grantViaAccessEntry, removeFormerLauncherEntry, undoAccessEntry } from "./access-entry.js";
import { grantViaAwsAuth, removeFormerLauncherMapping, undoAwsAuthMapping } from "./aws-auth-mapping.js";

export { AWS_AUTH_MAX_ATTEMPTS, MAX_PREVIOUS_COPY_CHARS } from "../../lib/kube/aws-auth/index.js";

export interface ClusterAccessDeps {
  eks?: EKSClient;
  kube?: KubeApi;
}

/** Left for returning the result (or the error) after the last round of the aws-auth loop. */
export const RETURN_MARGIN_MS = 3_000;

/** When an invocation must be done by, from what Lambda says is left of it. */
export function deadlineOf(context: Pick<Context, "getRemainingTimeInMillis"> | undefined): number | undefined {
  return context?.getRemainingTimeInMillis ? Date.now() + context.getRemainingTimeInMillis() - RETURN_MARGIN_MS : undefined;
}

function launcherIdentity(tenant: string): LauncherIdentity {
  return { username: launcherUsername(tenant), groups: [launcherGroup(tenant)] };
}

function clientsFor(cluster: ResolvedCluster, deps: ClusterAccessDeps, deadline?: number): ClusterClients {
  return { eks: () => deps.eks ?? eksClient(cluster.region), kube: async () => deps.kube ?? kubeClientFor(cluster), deadline };
}

function usesAccessEntries(cluster: ResolvedCluster): boolean {
  return cluster.authenticationMode === "API" || cluster.authenticationMode === "API_AND_CONFIG_MAP";
}

function launcherAccessOf(state: WorkflowState, deps: ClusterAccessDeps, deadline?: number): LauncherAccess {
  const { request, cluster } = requireCluster(state);
  if (!state.iam?.launcherArn)
    throw new InvalidRequest("the launcher principal ($.iam.launcherArn) is missing; CreateIamResources must run first");
  return {
    tenant: request.tenant,
    identity: launcherIdentity(request.tenant),
    run: runMark(state.execution),
    cluster,
    principalArn: state.iam.launcherArn,
    ...(state.iam.launcherCreateDate ? { principalCreateDate: state.iam.launcherCreateDate } : {}),
    clients: clientsFor(cluster, deps, deadline),
  };
}

export async function grantClusterAccess(state: WorkflowState, deps: ClusterAccessDeps = {}, deadline?: number): Promise<AccessResult> {
  const access = launcherAccessOf(state, deps, deadline);
  return usesAccessEntries(access.cluster) ? grantViaAccessEntry(access) : grantViaAwsAuth(access);
}

/**
 * A teardown's state carries no `$.access`: the grant its record names (`owned.clusterAccess`), for the tenant's
 * launcher identity, is what its undo removes (exactly that access entry or aws-auth mapping).
 */
function withRecordedAccess(state: WorkflowState): WorkflowState {
  const recorded = state.removal?.owned.clusterAccess as { method?: string; principalArn?: string } | undefined;
  if (state.access || !recorded?.principalArn) return state;
  const tenant = parseRequest(state.request).tenant;
  const method = recorded.method === "aws-auth" ? "aws-auth" : "access-entry";
  const identity = launcherIdentity(tenant);
  return {
    ...state,
    access: { method, principalArn: recorded.principalArn, username: identity.username, groups: identity.groups, created: true },
  };
}

export async function undoClusterAccess(
  given: WorkflowState,
  deps: ClusterAccessDeps = {},
  deadline?: number,
): Promise<CompensationResult> {
  const cluster = given.cluster;
  if (!cluster) return compensationResult(); // ResolveCluster failed: nothing was granted
  const state = withRecordedAccess(given);
  const clients = clientsFor(cluster, deps, deadline);
  if (usesAccessEntries(cluster)) return undoAccessEntry(state, cluster, clients);
  return undoAwsAuthMapping(state, launcherIdentity(parseRequest(state.request).tenant), clients);
}

/**
 * An update's removal of the cluster access of a launcher the new spec no longer names (remove-unwanted.ts, after every
 * other step succeeded): exactly that principal's access entry (only when tagged as the tenant's) or aws-auth mapping
 * (only as runs of this product recorded it), by the mechanism the previous generation used. The new launcher's access,
 * granted by this run, is never looked at.
 */
export async function removeFormerLauncherAccess(
  state: WorkflowState,
  former: { method: string; principalArn: string },
  deps: ClusterAccessDeps = {},
  deadline?: number,
): Promise<CompensationResult> {
  const { request, cluster } = requireCluster(state);
  const clients = clientsFor(cluster, deps, deadline);
  if (former.method === "aws-auth") return removeFormerLauncherMapping(former.principalArn, launcherIdentity(request.tenant), clients);
  return removeFormerLauncherEntry(cluster, clients, former.principalArn, request.tenant);
}

/** The two Lambda handlers; tests pass fake clients, the deployed ones make them per call. */
export function createClusterAccessStep(deps: ClusterAccessDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, AccessResult>("GrantClusterAccess", (state, context) =>
      grantClusterAccess(state, deps, deadlineOf(context)),
    ),
    compensate: stepHandler<WorkflowState, CompensationResult>("UndoClusterAccess", (state, context) =>
      undoClusterAccess(state, deps, deadlineOf(context)),
    ),
  };
}

export const { apply, compensate } = createClusterAccessStep();
