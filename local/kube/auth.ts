/**
 * EKS authentication for the emulated API server: the bearer token is `k8s-aws-v1.` + base64url of an
 * STS GetCallerIdentity URL presigned with the signed header `x-k8s-aws-id: <cluster>`. The token is first
 * checked as aws-iam-authenticator checks it (checkEksToken: size, https, a host among the partition's STS
 * endpoints, path, allowed parameters, time window); the AWS emulator then checks the signature for that
 * host (the request the authenticator would send to STS) and says who signed it; the caller is then mapped to a Kubernetes
 * identity the way EKS does:
 *  - an assumed-role ARN is canonicalised to its role ARN (the session name feeds `{{SessionName}}`);
 *  - authenticationMode API / API_AND_CONFIG_MAP: the cluster's access entry for the principal
 *    (username template, kubernetesGroups; an AmazonEKSClusterAdminPolicy association → system:masters,
 *    which stands in for EKS's access-policy authorizer); in API_AND_CONFIG_MAP an access entry wins
 *    over aws-auth, as on EKS. An entry belongs to the role (or user) instance it was made for: when the
 *    caller's unique id (the RoleId in an assumed role's `userId`, `AROA…:session`) is not the one the
 *    entry recorded, the role was deleted and recreated since and the entry is not honoured;
 *  - CONFIG_MAP / API_AND_CONFIG_MAP: kube-system/aws-auth `mapRoles` (rolearn), `mapUsers` (userarn) and
 *    `mapAccounts`, each ARN compared case-insensitively and exactly with the caller's canonical ARN, as
 *    aws-iam-authenticator's ConfigMap mapper does (it keys the entries by the lower-cased ARN). An assumed-role
 *    session's ARN carries no role path, so its canonical ARN has none either: a `rolearn` written with the
 *    role's path never matches (kubernetes-sigs/aws-iam-authenticator#268; EKS: "The role ARN can't include a
 *    path"), only the path-less one does;
 *  - CONFIG_MAP: the cluster creator (default: the sandbox-admin user) is implicitly
 *    `kubernetes-admin` in system:masters, as EKS does outside the access-entry modes (in the API modes
 *    the creator's admin access entry, which the AWS emulator seeds, does the same);
 *  - templates `{{AccountID}}`, `{{SessionName}}` (`@` → `-`), `{{SessionNameRaw}}`, `{{AccessKeyID}}`,
 *    `{{EC2PrivateDNSName}}` (the sandbox node's name) are substituted.
 * Anything else is undefined: the API server answers 401.
 */
import { parse as parseYaml } from "yaml";
import { CLUSTER_ID_HEADER, decodeEksToken, TOKEN_PREFIX } from "../../functions/lib/aws/eks-token.js";
import { CLUSTER_ADMIN_POLICY_ARN } from "../aws/eks-emulator.js";
import { SANDBOX_ADMIN } from "../aws/aws-emulator-server.js";
import { clusterKey } from "../aws/account-state.js";
import { NODE_NAME } from "./kubelet.js";
import type { KubeUser } from "./rbac-authorizer.js";
import { CONFIG_MAPS } from "./resources.js";
import type { KubeStore } from "./store.js";

/** The caller behind a presigned GetCallerIdentity URL, as the AWS emulator reports it. */
export interface PresignedCallerIdentity {
  arn: string;
  accountId: string;
  userId: string;
  accessKeyId?: string;
  /** the x-k8s-aws-id value the URL was signed with */
  clusterName?: string;
}

export interface EksAccessEntryView {
  principalArn: string;
  username: string;
  kubernetesGroups: string[];
  type?: string;
  /** the principal's unique id (RoleId / UserId) when the entry was made; another instance of the ARN is not honoured */
  principalId?: string;
  accessPolicies: Map<string, { policyArn: string; accessScope?: { type: string; namespaces: string[] } }>;
}

export interface EksClusterView {
  name: string;
  region?: string;
  authenticationMode: "API" | "API_AND_CONFIG_MAP" | "CONFIG_MAP";
  accessEntries: Map<string, EksAccessEntryView>;
}

/** What the authenticator needs from the AWS emulator (local/aws/aws-emulator-server.ts's AwsEmulator satisfies it). */
export interface EksAuthAws {
  verifyPresignedCallerIdentity(url: string, opts?: { clusterName?: string }): Promise<PresignedCallerIdentity | undefined>;
  state: { accountId: string; eks: { clusters: Map<string, EksClusterView> } };
}

export interface EksAuthenticatorOptions {
  /** the cluster's region, when clusters of the same name exist in several regions */
  region?: string;
  /** the principal that created the cluster (default `arn:aws:iam::<account>:user/sandbox-admin`) */
  creatorArn?: string;
}

/** The API server calls the authenticator with its store, so aws-auth is read from the live cluster. */
export type KubeAuthenticator = (token: string, context?: { store: KubeStore }) => Promise<KubeUser | undefined>;

interface CanonicalPrincipal {
  /** role or user ARN, as access entries and aws-auth name it */
  arn: string;
  kind: "role" | "user" | "other";
  accountId: string;
  /** assumed roles only */
  sessionName?: string;
}

/** `arn:aws:sts::1:assumed-role/R/s` → `arn:aws:iam::1:role/R` (session `s`); users stay as they are. */
function canonicalPrincipal(callerArn: string): CanonicalPrincipal {
  const m = /^arn:(aws[a-z-]*):(iam|sts)::(\d{12}):(.+)$/.exec(callerArn);
  if (!m) return { arn: callerArn, kind: "other", accountId: "" };
  const [, partition, service, accountId, resource] = m as unknown as [string, string, string, string, string];
  if (service === "sts" && resource.startsWith("assumed-role/")) {
    const [, roleName, ...session] = resource.split("/");
    return { arn: `arn:${partition}:iam::${accountId}:role/${roleName}`, kind: "role", accountId, sessionName: session.join("/") };
  }
  if (service === "iam" && resource.startsWith("role/")) {
    // Access entries and aws-auth match roles without their path, as EKS does.
    return { arn: `arn:${partition}:iam::${accountId}:role/${resource.slice(resource.lastIndexOf("/") + 1)}`, kind: "role", accountId };
  }
  if (service === "iam" && resource.startsWith("user/")) return { arn: callerArn, kind: "user", accountId };
  return { arn: callerArn, kind: "other", accountId };
}

/** aws-iam-authenticator's limit on a token's length (pkg/token/token.go: maxTokenLenBytes). */
export const MAX_TOKEN_BYTES = 4 * 1024;
/** The query parameters aws-iam-authenticator lets through to STS (lower-cased): anything else refuses the token. */
const ALLOWED_QUERY_PARAMETERS = new Set([
  "action",
  "version",
  "x-amz-algorithm",
  "x-amz-credential",
  "x-amz-date",
  "x-amz-expires",
  "x-amz-security-token",
  "x-amz-signature",
  "x-amz-signedheaders",
]);
/** An STS presigned URL is good for 15 minutes after X-Amz-Date, whatever X-Amz-Expires says (at most 900). */
const PRESIGNED_URL_LIFETIME_MS = 15 * 60_000;

/** The partition's DNS suffix and the shape of its region names. */
function partitionOf(region: string): { suffix: string; regions: RegExp; global: boolean } {
  if (region.startsWith("cn-")) return { suffix: "amazonaws.com.cn", regions: /^cn-[a-z]+-\d+$/, global: false };
  if (region.startsWith("us-gov-")) return { suffix: "amazonaws.com", regions: /^us-gov-[a-z]+-\d+$/, global: false };
  return { suffix: "amazonaws.com", regions: /^(?!cn-|us-gov-|us-iso)[a-z]{2}-[a-z]+-\d+$/, global: true };
}

/**
 * Whether a host is one of the STS endpoints of the cluster's partition, as aws-iam-authenticator's verifyHost
 * allows: `sts.amazonaws.com` (the commercial partition's global endpoint), `sts.<region>.<suffix>` and
 * `sts-fips.<region>.<suffix>` for the partition's regions. No port, no other host (a VPC endpoint's name is
 * not one: EKS refuses such tokens).
 */
export function isPartitionStsHost(host: string, clusterRegion: string): boolean {
  const { suffix, regions, global } = partitionOf(clusterRegion);
  if (global && host === "sts.amazonaws.com") return true;
  const m = /^(sts|sts-fips)\.([a-z0-9-]+)\.(.+)$/.exec(host);
  return !!m && m[3] === suffix && regions.test(m[2]!);
}

function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : undefined;
}

/**
 * The presigned URL inside an EKS token, checked as aws-iam-authenticator's token verifier does before anything
 * reaches STS (pkg/token/token.go Verify): at most 4 KiB, the `k8s-aws-v1.` prefix and unpadded base64url, https,
 * a host among the partition's STS endpoints, path `/`, only the allowed query parameters and each once, Action
 * GetCallerIdentity, the `x-k8s-aws-id` header signed, X-Amz-Expires within 0..900 and X-Amz-Date less than 15
 * minutes old. Returns the URL, or why the token is refused.
 */
export function checkEksToken(token: string, clusterRegion: string, now = new Date()): { url: URL } | { problem: string } {
  if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) return { problem: "token is too large" };
  if (!token.startsWith(TOKEN_PREFIX)) return { problem: `token is missing expected ${JSON.stringify(TOKEN_PREFIX)} prefix` };
  if (!/^[A-Za-z0-9_-]+$/.test(token.slice(TOKEN_PREFIX.length))) return { problem: "token is not unpadded base64url" };
  let url: URL;
  try {
    url = new URL(decodeEksToken(token)!);
  } catch {
    return { problem: "malformed pre-signed URL" };
  }
  if (url.protocol !== "https:")
    return { problem: `unexpected scheme ${JSON.stringify(url.protocol.replace(/:$/, ""))} in pre-signed URL` };
  if (url.port !== "" || !isPartitionStsHost(url.hostname, clusterRegion))
    return { problem: `unexpected hostname ${JSON.stringify(url.host)} in pre-signed URL` };
  if (url.pathname !== "/") return { problem: "unexpected path in pre-signed URL" };
  const params = new Map<string, string>();
  for (const key of new Set(url.searchParams.keys())) {
    if (!ALLOWED_QUERY_PARAMETERS.has(key.toLowerCase())) return { problem: `non-whitelisted query parameter ${JSON.stringify(key)}` };
    const values = url.searchParams.getAll(key);
    if (values.length !== 1 || params.has(key.toLowerCase())) return { problem: "query parameter with multiple values not supported" };
    params.set(key.toLowerCase(), values[0]!);
  }
  if (params.get("action") !== "GetCallerIdentity") return { problem: "unexpected action parameter in pre-signed URL" };
  if (!(params.get("x-amz-signedheaders") ?? "").toLowerCase().split(";").includes(CLUSTER_ID_HEADER)) {
    return { problem: `client did not sign the ${CLUSTER_ID_HEADER} header in the pre-signed URL` };
  }
  const expires = Number(params.get("x-amz-expires"));
  if (!/^\d+$/.test(params.get("x-amz-expires") ?? "") || expires > 900)
    return { problem: "invalid X-Amz-Expires parameter in pre-signed URL" };
  const date = parseAmzDate(params.get("x-amz-date") ?? "");
  if (!date) return { problem: "X-Amz-Date parameter must be present in pre-signed URL" };
  if (now.getTime() > date.getTime() + PRESIGNED_URL_LIFETIME_MS)
    return { problem: "X-Amz-Date parameter is expired (15 minute expiration)" };
  return { url };
}

interface TemplateValues {
  accountId: string;
  sessionName?: string;
  accessKeyId?: string;
}

function renderUsername(template: string, values: TemplateValues): string {
  return template
    .replace(/\{\{AccountID\}\}/g, values.accountId)
    .replace(/\{\{SessionNameRaw\}\}/g, values.sessionName ?? "")
    .replace(/\{\{SessionName\}\}/g, (values.sessionName ?? "").replace(/@/g, "-"))
    .replace(/\{\{AccessKeyID\}\}/g, values.accessKeyId ?? "")
    .replace(/\{\{EC2PrivateDNSName\}\}/g, NODE_NAME);
}

function findCluster(aws: EksAuthAws, name: string, region: string | undefined): EksClusterView | undefined {
  if (region) return aws.state.eks.clusters.get(clusterKey(region, name));
  return [...aws.state.eks.clusters.values()].find((c) => c.name === name);
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function yamlList(text: string | undefined): Array<Record<string, unknown>> {
  if (!text) return [];
  try {
    const parsed = parseYaml(text);
    return Array.isArray(parsed) ? parsed.filter((e): e is Record<string, unknown> => !!e && typeof e === "object") : [];
  } catch {
    return []; // the real authenticator ignores an aws-auth it cannot parse
  }
}

/** aws-iam-authenticator keys aws-auth's entries by the lower-cased ARN and looks the lower-cased canonical ARN up. */
function sameArn(written: string, canonicalArn: string): boolean {
  return written.trim().toLowerCase() === canonicalArn.toLowerCase();
}

/** The mapping aws-auth holds for a principal: `{ username, groups }` or undefined. */
function awsAuthMapping(
  data: Record<string, string> | undefined,
  principal: CanonicalPrincipal,
): { username: string; groups: string[] } | undefined {
  if (!data) return undefined;
  if (principal.kind === "role") {
    for (const entry of yamlList(data.mapRoles)) {
      // Taken as written: a path in it is not dropped (the caller's canonical ARN has none, so it cannot match).
      if (typeof entry.rolearn !== "string" || !sameArn(entry.rolearn, principal.arn)) continue;
      return { username: typeof entry.username === "string" ? entry.username : principal.arn, groups: stringList(entry.groups) };
    }
  }
  if (principal.kind === "user") {
    for (const entry of yamlList(data.mapUsers)) {
      if (typeof entry.userarn !== "string" || !sameArn(entry.userarn, principal.arn)) continue;
      return { username: typeof entry.username === "string" ? entry.username : principal.arn, groups: stringList(entry.groups) };
    }
  }
  try {
    const accounts = data.mapAccounts ? parseYaml(data.mapAccounts) : [];
    if (Array.isArray(accounts) && accounts.map(String).includes(principal.accountId)) return { username: principal.arn, groups: [] };
  } catch {
    // ignored like the real authenticator
  }
  return undefined;
}

/** The groups an access entry grants: its kubernetesGroups, plus system:masters for a cluster-wide AmazonEKSClusterAdminPolicy. */
function accessEntryGroups(entry: EksAccessEntryView): string[] {
  const groups = [...entry.kubernetesGroups];
  const admin = entry.accessPolicies.get(CLUSTER_ADMIN_POLICY_ARN);
  if (admin && (admin.accessScope?.type ?? "cluster") === "cluster" && !groups.includes("system:masters")) groups.push("system:masters");
  return groups;
}

/** Whether the entry was made for the instance of the principal that signed (see the header). */
function honoursInstance(entry: EksAccessEntryView, caller: PresignedCallerIdentity): boolean {
  if (entry.principalId === undefined) return true; // a principal the emulator does not hold (another account's)
  return caller.userId.split(":")[0] === entry.principalId;
}

export function eksAuthenticator(aws: EksAuthAws, clusterName: string, options: EksAuthenticatorOptions = {}): KubeAuthenticator {
  return async (token, context) => {
    const found = findCluster(aws, clusterName, options.region);
    const checked = checkEksToken(token, found?.region ?? options.region ?? "us-east-1");
    if ("problem" in checked) return undefined;
    // What the authenticator's GET to STS does (the signed x-k8s-aws-id header = this cluster), here in process:
    // the AWS emulator's STS checks the signature and the credentials and says who signed.
    const caller = await aws.verifyPresignedCallerIdentity(checked.url.toString(), { clusterName });
    if (!caller) return undefined;
    if (caller.clusterName !== undefined && caller.clusterName !== clusterName) return undefined;
    const cluster = found;
    if (!cluster) return undefined;

    const principal = canonicalPrincipal(caller.arn);
    const values: TemplateValues = { accountId: caller.accountId, sessionName: principal.sessionName, accessKeyId: caller.accessKeyId };
    const identity = (username: string, groups: string[]): KubeUser => ({
      username: renderUsername(username, values),
      groups,
      uid: `aws-iam-authenticator:${caller.accountId}:${caller.userId}`,
      extra: {
        accessKeyId: caller.accessKeyId ? [caller.accessKeyId] : [],
        arn: [caller.arn],
        canonicalArn: [principal.arn],
        principalId: [caller.userId],
        sessionName: principal.sessionName ? [principal.sessionName] : [],
      },
    });

    const mode = cluster.authenticationMode;
    if (mode === "API" || mode === "API_AND_CONFIG_MAP") {
      // An entry may name a role with its path (EKS takes the full ARN); a session maps to its role whatever the path.
      const entry =
        cluster.accessEntries.get(principal.arn) ??
        cluster.accessEntries.get(caller.arn) ??
        [...cluster.accessEntries].find(([arn]) => canonicalPrincipal(arn).arn === principal.arn)?.[1];
      if (entry && honoursInstance(entry, caller)) return identity(entry.username, accessEntryGroups(entry));
    }
    if (mode === "CONFIG_MAP") {
      const creator = canonicalPrincipal(options.creatorArn ?? `arn:aws:iam::${aws.state.accountId}:user/${SANDBOX_ADMIN}`).arn;
      if (principal.arn === creator) return identity("kubernetes-admin", ["system:masters"]);
    }
    if (mode === "CONFIG_MAP" || mode === "API_AND_CONFIG_MAP") {
      const awsAuth = context?.store.get(CONFIG_MAPS, "kube-system", "aws-auth");
      const mapping = awsAuthMapping(awsAuth?.data, principal);
      if (mapping) return identity(mapping.username, mapping.groups);
    }
    return undefined;
  };
}
