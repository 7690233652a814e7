/**
 * What the cluster-access tests share: the launcher of tenant `genomics`, the Kubernetes identity it is
 * mapped to (and the shared one of an earlier version), and the workflow state GrantClusterAccess receives.
 */
import type { AccessResult, AuthenticationMode, IamResult, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { mapRolesOf, type FakeAwsAuthKube } from "./fake-aws-auth-kube.js";
import { ACCOUNT, RUN, TENANT, resolvedCluster, stepState } from "./fixtures.js";

export const LAUNCHER = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-launcher`;
/** The tenant's own Kubernetes identity (TENANT is "genomics"). */
export const USERNAME = "tower-launcher-user-genomics";
export const GROUP = "tower-launcher-role-genomics";
/** The identity an earlier version mapped every tenant's launcher to. */
export const SHARED_USERNAME = "tower-launcher-user";
export const SHARED_GROUP = "tower-launcher-role";

/** The state after CreateIamResources (a launcher role it created) on a cluster with this authentication mode. */
export function stateFor(
  mode: AuthenticationMode,
  opts: { run?: string; tenant?: string; iam?: Partial<IamResult>; access?: AccessResult } = {},
): WorkflowState {
  return stepState({ tenant: opts.tenant ?? TENANT }, opts.run ?? RUN, {
    cluster: resolvedCluster({ authenticationMode: mode }),
    iam: { launcherArn: LAUNCHER, launcherKind: "role", launcherCreated: true, created: [LAUNCHER], ...opts.iam },
    ...(opts.access ? { access: opts.access } : {}),
  });
}

/** The mapRoles entries of one role (the launcher unless given). */
export function launcherEntries(fake: FakeAwsAuthKube, arn = LAUNCHER) {
  return mapRolesOf(fake).filter((e) => e.rolearn === arn);
}
