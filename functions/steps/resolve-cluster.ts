/**
 * ResolveCluster: validate the request, refuse clusters and accounts not allowlisted at deploy time,
 * and read what later steps need from DescribeCluster (endpoint, CA, OIDC issuer, authentication mode).
 * It also checks that the API endpoint can be reached from where the Kubernetes-facing steps run
 * (`resourcesVpcConfig` against the deployment's VPC settings): one that cannot fails the run at once
 * (ClusterEndpointUnreachable, never retried) with what to configure, instead of every later step retrying
 * ClusterUnreachable. Reads only, so there is nothing to compensate.
 */
import { DescribeClusterCommand, type Cluster, type EKSClient } from "@aws-sdk/client-eks";
import { eksClient } from "../lib/aws/clients.js";
import {
  CONFIG_ENV,
  kubeStepsPlacement,
  loadDeploymentConfig,
  type DeploymentConfig,
  type KubeStepsPlacement,
} from "../lib/domain/deploy-config.js";
import { assertClusterAllowed, assertLauncherAccountAllowed } from "../lib/domain/allowlist.js";
import { ClusterEndpointUnreachable, ClusterNotFound, ClusterUnreachable, NotAllowed } from "../lib/domain/errors.js";
import { stepHandler } from "../lib/workflow/middleware.js";
import { isAwsError } from "../lib/workflow/normalise-error.js";
import { parseRequest } from "../lib/domain/request.js";
import { toResolvedCluster } from "../lib/domain/cluster.js";
import type { ResolvedCluster, WorkflowState } from "../lib/workflow/workflow-state.js";

/** Where it lived first: DescribeCluster's answer as a run uses it (the drift check reads clusters too). */
export { toResolvedCluster };

/** Cluster states that will become ACTIVE on their own: worth retrying. */
const SETTLING_STATUSES = new Set(["CREATING", "UPDATING", "PENDING"]);

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

const EVERYWHERE = "0.0.0.0/0";
const VPC_SETTINGS = `${CONFIG_ENV.kubeStepsVpcId}, ${CONFIG_ENV.kubeStepsSubnetIds} and ${CONFIG_ENV.kubeStepsSecurityGroupIds}`;
const IN_THE_VPC =
  `set ${VPC_SETTINGS} to run the Kubernetes-facing Lambdas in the cluster's VPC (subnets with VPC endpoints for EKS, STS and S3, ` +
  `a security group the cluster's security group admits on 443) and redeploy`;

/**
 * Why the cluster's API endpoint cannot be reached from where the Kubernetes-facing Lambdas run, or undefined when it
 * can (or cannot be told: a public endpoint with restricted CIDRs may admit the NAT of the Lambdas' VPC).
 * Outside a VPC the Lambdas call from AWS's public addresses, so only a public endpoint open to 0.0.0.0/0 admits them;
 * in a VPC, the private endpoint admits them when it is that VPC's.
 */
export function endpointUnreachableReason(cluster: Cluster, placement: KubeStepsPlacement): string | undefined {
  const vpc = cluster.resourcesVpcConfig;
  if (!vpc) return undefined;
  const isPublic = vpc.endpointPublicAccess !== false;
  const openToAll = isPublic && (vpc.publicAccessCidrs ?? [EVERYWHERE]).includes(EVERYWHERE);
  const privateHere = vpc.endpointPrivateAccess === true && placement !== undefined && placement.vpcId === vpc.vpcId;
  if (openToAll || privateHere || (placement && isPublic)) return undefined;
  const name = cluster.name ?? "";
  if (placement) {
    return (
      `cluster ${name}'s API endpoint is private to ${vpc.vpcId ?? "its VPC"}, and the Kubernetes-facing Lambdas run in ${placement.vpcId}: ` +
      `set ${CONFIG_ENV.kubeStepsVpcId}=${vpc.vpcId ?? "<the cluster's VPC>"} with subnets and a security group of that VPC and redeploy`
    );
  }
  if (!isPublic)
    return `cluster ${name}'s API endpoint is private (public access is off) and the Kubernetes-facing Lambdas run outside any VPC: ${IN_THE_VPC}`;
  const cidrs = (vpc.publicAccessCidrs ?? []).join(", ");
  return (
    `cluster ${name}'s public API endpoint admits only ${cidrs}, and the Kubernetes-facing Lambdas run outside any VPC, from AWS's public addresses: ` +
    (vpc.endpointPrivateAccess ? IN_THE_VPC : `enable the endpoint's private access and ${IN_THE_VPC}`)
  );
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
  const unreachable = endpointUnreachableReason(cluster, kubeStepsPlacement(config));
  if (unreachable) throw new ClusterEndpointUnreachable(unreachable);
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
