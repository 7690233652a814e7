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
