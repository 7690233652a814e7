/**
 * Everything the emulated account holds. Plain data in Maps (insertion order = creation order, as AWS
 * lists them), so tests can read it directly; `snapshotOf` turns it into a deterministic deep copy.
 */
import type { OidcIssuerKeys } from "./oidc-issuer.js";
import type { KnownCredentials } from "./sigv4.js";

export interface Tag {
  Key: string;
  Value: string;
}

export interface IamRole {
  roleName: string;
  roleId: string;
  arn: string;
  path: string;
  createDate: Date;
  /** ms epoch from which STS/EKS accept it as a principal (IAM propagation delay) */
  visibleAt: number;
  /** the trust policy as given (JSON text) */
  assumeRolePolicyDocument: string;
  description?: string;
  maxSessionDuration: number;
  permissionsBoundaryArn?: string;
  tags: Tag[];
  /** inline policies: name → JSON text */
  inlinePolicies: Map<string, string>;
  attachedPolicyArns: string[];
}

export interface IamUser {
  userName: string;
  userId: string;
  arn: string;
  path: string;
  createDate: Date;
  visibleAt: number;
  permissionsBoundaryArn?: string;
  tags: Tag[];
  /** inline policies: name → JSON text */
  inlinePolicies: Map<string, string>;
  attachedPolicyArns: string[];
}

export interface ManagedPolicy {
  policyName: string;
  policyId: string;
  arn: string;
  path: string;
  document: string;
  description?: string;
  createDate: Date;
  updateDate: Date;
  tags: Tag[];
}

export interface OidcProvider {
  arn: string;
  /** as given, `https://oidc.eks.<region>.amazonaws.com/id/<ID>` */
  url: string;
  clientIds: string[];
  thumbprints: string[];
  createDate: Date;
  tags: Tag[];
}

export interface AccessScope {
  type: "cluster" | "namespace";
  namespaces: string[];
}

export interface AssociatedAccessPolicy {
  policyArn: string;
  accessScope: AccessScope;
  associatedAt: Date;
  modifiedAt: Date;
}

export interface AccessEntry {
  clusterName: string;
  principalArn: string;
  kubernetesGroups: string[];
  accessEntryArn: string;
  createdAt: Date;
  modifiedAt: Date;
  tags: Record<string, string>;
  username: string;
  type: string;
  /** policyArn → association */
  accessPolicies: Map<string, AssociatedAccessPolicy>;
  /**
   * The unique id (RoleId / UserId) of the principal when the entry was made: EKS binds an entry to that
   * instance, so a role deleted and recreated under the same ARN is no longer honoured by it. Undefined for
   * a principal this emulator does not hold (another account's).
   */
  principalId?: string;
}

export interface PodIdentityAssociation {
  clusterName: string;
  namespace: string;
  serviceAccount: string;
  roleArn: string;
  associationArn: string;
  associationId: string;
  tags: Record<string, string>;
  createdAt: Date;
  modifiedAt: Date;
  ownerArn?: string;
  disableSessionTags: boolean;
  targetRoleArn?: string;
}

export type AuthenticationMode = "API" | "API_AND_CONFIG_MAP" | "CONFIG_MAP";

export interface EksCluster {
  name: string;
  region: string;
  arn: string;
  endpoint: string;
  /** base64 PEM */
  certificateAuthority: string;
  authenticationMode: AuthenticationMode;
  oidcIssuer?: string;
  version: string;
  status: string;
  createdAt: Date;
  /** the cluster's IAM role */
  roleArn: string;
  nodeRoleArn?: string;
  platformVersion: string;
  tags: Record<string, string>;
  /** principalArn → entry */
  accessEntries: Map<string, AccessEntry>;
  /** associationId → association */
  podIdentityAssociations: Map<string, PodIdentityAssociation>;
}

/** One PutEvents entry as EventBridge accepted it. */
export interface RecordedEvent {
  eventId: string;
  eventBusName: string;
  source: string;
  detailType: string;
  /** the parsed Detail JSON */
  detail: unknown;
  resources: string[];
  time: Date;
  region: string;
  account: string;
}

export interface AwsState {
  accountId: string;
  /** how long a new IAM role/user stays invisible to EKS (and to trust policies naming it) */
  propagationDelayMs: number;
  iam: {
    /** by role name */
    roles: Map<string, IamRole>;
    /** by user name */
    users: Map<string, IamUser>;
    /** by policy ARN */
    policies: Map<string, ManagedPolicy>;
    /** by provider ARN */
    oidcProviders: Map<string, OidcProvider>;
  };
  eks: {
    /** by `<region>/<name>` */
    clusters: Map<string, EksCluster>;
  };
  /** every event PutEvents accepted, in order */
  events: RecordedEvent[];
  /** who hears of each accepted event (the sandbox's bus rules) */
  eventListeners: Set<(event: RecordedEvent) => void>;
  /** access key id → credentials and principal */
  credentials: Map<string, KnownCredentials>;
  /** the clusters' OIDC issuers (issuer URL → signing keys): who signs service-account tokens STS accepts */
  oidcIssuers: Map<string, OidcIssuerKeys>;
  /** EKS creates by `clientRequestToken` (`<region>/<cluster>/<operation>/<token>`) → the id of what they created */
  requestTokens: Map<string, string>;
}

export function createState(accountId: string, propagationDelayMs: number): AwsState {
  return {
    accountId,
    propagationDelayMs,
    iam: { roles: new Map(), users: new Map(), policies: new Map(), oidcProviders: new Map() },
    eks: { clusters: new Map() },
    events: [],
    eventListeners: new Set(),
    credentials: new Map(),
    oidcIssuers: new Map(),
    requestTokens: new Map(),
  };
}

export function clusterKey(region: string, name: string): string {
  return `${region}/${name}`;
}

/** A deep, JSON-like copy with sorted keys: Maps become objects, Dates ISO strings. */
function toPlain(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Map) return toPlain(Object.fromEntries(value));
  if (Array.isArray(value)) return value.map(toPlain);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
        .map((key) => [key, toPlain((value as Record<string, unknown>)[key])]),
    );
  }
  return value;
}

/**
 * What compensation must put back: IAM and EKS resources. The event log is append-only (a failed run
 * reports its failure there), so it is left out unless asked for.
 */
export function snapshotOf(state: AwsState, opts: { includeEvents?: boolean } = {}): unknown {
  return toPlain({
    accountId: state.accountId,
    iam: state.iam,
    eks: state.eks,
    ...(opts.includeEvents ? { events: state.events } : {}),
  });
}
