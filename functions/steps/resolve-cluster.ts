/**
 * ResolveCluster: validate the request, refuse clusters and accounts not allowlisted at deploy time,
 * and read what later steps need from DescribeCluster (endpoint, CA, OIDC issuer, authentication mode).
 * Reads only, so there is nothing to compensate.
 */
import { DescribeClusterCommand, type Cluster, type EKSClient } from "@aws-sdk/client-eks";
import { parseArn } from "../lib/domain/arn.js";
import { eksClient } from "../lib/aws/clients.js";
import { loadDeploymentConfig, type DeploymentConfig } from "../lib/domain/deploy-config.js";
import { assertClusterAllowed, assertLauncherAccountAllowed } from "../lib/domain/allowlist.js";
import { ClusterNotFound, ClusterUnreachable, NotAllowed } from "../lib/domain/errors.js";
import { stepHandler } from "../lib/workflow/middleware.js";
import { isAwsError } from "../lib/workflow/normalise-error.js";
import { parseRequest } from "../lib/domain/request.js";
import type { AuthenticationMode, ResolvedCluster, WorkflowState } from "../lib/workflow/workflow-state.js";

/** Cluster states that will become ACTIVE on their own: worth retrying. */
const SETTLING_STATUSES = new Set(["CREATING", "UPDATING", "PENDING"]);
const AUTHENTICATION_MODES: AuthenticationMode[] = ["API", "API_AND_CONFIG_MAP", "CONFIG_MAP"];

export interface ResolveClusterDeps {
  eks?: EKSClient;
  config?: DeploymentConfig;
}

function assertActive(cluster: Cluster, name: string): void {
  const status = cluster.status ?? "UNKNOWN";
  if (status === "ACTIVE") return;
  if (SETTLING_STATUSES.has(status)) throw new ClusterUnreachable(`cluster ${name} is ${status}; waiting for it to become ACTIVE`);
  throw new NotAllowed(`cluster ${name} is ${status} and cannot be prepared`);
}

export function toResolvedCluster(cluster: Cluster, region: string): ResolvedCluster {
  const arn = cluster.arn ?? "";
  const accountId = parseArn(arn)?.accountId;
  if (!accountId) throw new ClusterUnreachable(`DescribeCluster returned no usable ARN for ${cluster.name} ("${arn}")`);
  if (!cluster.endpoint || !cluster.certificateAuthority?.data) {
    throw new ClusterUnreachable(`cluster ${cluster.name} has no API endpoint or CA yet`);
  }
  const mode = cluster.accessConfig?.authenticationMode as AuthenticationMode | undefined;
  return {
    name: cluster.name ?? "",
    region,
    arn,
    accountId,
    endpoint: cluster.endpoint,
    certificateAuthority: cluster.certificateAuthority.data,
    ...(cluster.identity?.oidc?.issuer ? { oidcIssuer: cluster.identity.oidc.issuer } : {}),
    // Clusters created before access entries existed report no accessConfig: they use aws-auth only.
    authenticationMode: mode && AUTHENTICATION_MODES.includes(mode) ? mode : "CONFIG_MAP",
    version: cluster.version ?? "",
  };
}

export async function resolveCluster(state: WorkflowState, deps: ResolveClusterDeps = {}): Promise<ResolvedCluster> {
  const request = parseRequest(state.request);
  const config = deps.config ?? loadDeploymentConfig();
  assertClusterAllowed(request, config);

  const { name, region } = request.cluster;
  const eks = deps.eks ?? eksClient(region);
  let cluster: Cluster | undefined;
  try {
    cluster = (await eks.send(new DescribeClusterCommand({ name }))).cluster;
  } catch (error) {
    if (isAwsError(error, "ResourceNotFoundException")) {
      throw new ClusterNotFound(`cluster ${name} does not exist in ${region}`, { cause: error });
    }
    throw error;
  }
  if (!cluster) throw new ClusterNotFound(`cluster ${name} does not exist in ${region}`);

  assertActive(cluster, name);
  const resolved = toResolvedCluster(cluster, region);
  assertLauncherAccountAllowed(request, resolved.accountId, config);
  return resolved;
}

/** The step's handler, with the EKS client and deployment settings given (tests) or made per call. */
export function createResolveClusterStep(deps: ResolveClusterDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, ResolvedCluster>("ResolveCluster", (state) => resolveCluster(state, deps)),
  };
}

export const { apply } = createResolveClusterStep();
