import type { Cluster } from "@aws-sdk/client-eks";
import { parseArn } from "./arn.js";
import { ClusterUnreachable } from "./errors.js";

/** The cluster a run works on, as ResolveCluster found it (`$.cluster` in the workflow state). */
export type AuthenticationMode = "API" | "API_AND_CONFIG_MAP" | "CONFIG_MAP";

/** ResolveCluster → `$.cluster` */
export interface ResolvedCluster {
  name: string;
  region: string;
  arn: string;
  accountId: string;
  endpoint: string;
  /** base64 PEM, as DescribeCluster returns it */
  certificateAuthority: string;
  /** e.g. https://oidc.eks.eu-west-1.amazonaws.com/id/ABC (absent when the cluster has no OIDC issuer) */
  oidcIssuer?: string;
  authenticationMode: AuthenticationMode;
  version: string;
}

const AUTHENTICATION_MODES: AuthenticationMode[] = ["API", "API_AND_CONFIG_MAP", "CONFIG_MAP"];

/** DescribeCluster's answer as a run (and the drift check) uses it. */
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
