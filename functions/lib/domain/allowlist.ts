/**
 * The deploy-time allowlist: the clusters this deployment may touch and the accounts a launcher principal
 * may come from. Checked at the edge (API, events) and again by ResolveCluster, so one rule serves both.
 */
import { parseArn } from "./arn.js";
import type { DeploymentConfig } from "./deploy-config.js";
import { NotAllowed } from "./errors.js";
import type { ProvisionRequest } from "./request.js";

export function assertClusterAllowed(request: ProvisionRequest, config: DeploymentConfig): void {
  const { name, region } = request.cluster;
  const allowed = config.allowedClusters.some((c) => c.name === name && c.region === region);
  if (!allowed) throw new NotAllowed(`cluster ${name} in ${region} is not on this deployment's allowlist (ALLOWED_CLUSTERS)`);
}

/**
 * The launcher's principals (an existing one, or those a created launcher's trust names) must live in an
 * allowlisted account or the cluster's own account.
 */
export function assertLauncherAccountAllowed(request: ProvisionRequest, clusterAccountId: string, config: DeploymentConfig): void {
  const { launcher } = request;
  const principals = launcher.mode === "existing" ? [launcher.principalArn] : (launcher.trust?.principals ?? []);
  for (const principal of principals) {
    const accountId = parseArn(principal)?.accountId;
    if (accountId === clusterAccountId || (accountId && config.allowedAccountIds.includes(accountId))) continue;
    throw new NotAllowed(
      `launcher principal ${principal} is in account ${accountId}, ` +
        `which is neither the cluster's account (${clusterAccountId}) nor on the allowlist (ALLOWED_ACCOUNT_IDS)`,
    );
  }
}
