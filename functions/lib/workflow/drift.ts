/**
 * Drift, as pure data: what an environment should look like ("as built": what the pure builders of
 * domain/manifests.ts and domain/policies.ts make of its recorded spec) against what is there (read by
 * drift-reader.ts through the clients the steps use), one resource at a time.
 *
 * Compared by meaning, not by bytes: IAM documents as parsed JSON (key order, `"a"` vs `["a"]` aside), Kubernetes
 * objects only in the fields the product sets (labels it sets, Role rules, RoleBinding subjects and roleRef, the IRSA
 * annotation, the claim's spec, ConfigMap data, the guards' specs); what the server sets (uid, resourceVersion,
 * status, defaults, the created-by marks of whichever run made the object) is never a difference.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import type { ResolvedCluster } from "../domain/cluster.js";
import { tenantRoleBoundary, type DeploymentConfig, type NamespaceSettings, type PodSecurityLevel } from "../domain/deploy-config.js";
import {
  launcherRoleManifest,
  launcherUserRoleBinding,
  limitRangeManifest,
  namespaceManifest,
  networkPolicyManifest,
  nextflowConfigMapManifest,
  pvcManifest,
  resourceQuotaManifest,
  serviceAccountManifest,
  serviceAccountRoleBinding,
  type ManifestContext,
} from "../domain/manifests.js";
import {
  IAM_ROLE_PATH,
  IRSA_ANNOTATION,
  LABEL_CREATED_BY,
  iamPolicyName,
  iamRoleName,
  launcherGroup,
  launcherUsername,
  productRoleArn,
  runMark,
} from "../domain/naming.js";
import { buildNextflowConfig } from "../domain/nextflow-config.js";
import {
  accountRootArn,
  canonicalPolicy,
  fusionS3Policy,
  irsaTrustPolicy,
  launcherPermissionsPolicy,
  launcherTrustPolicy,
  oidcProviderArn,
  podIdentityTrustPolicy,
  type PolicyDocument,
} from "../domain/policies.js";
import { effectiveNamespaceQuota, serviceAccountsOf, type ProvisionRequest } from "../domain/request.js";
import { parseArn } from "../domain/arn.js";

export type DriftStatus = "in-sync" | "drifted" | "unknown";
export type ResourceState = "present" | "missing" | "changed";

export interface Difference {
  /** where, in the resource (`inlinePolicy.Statement`, `subjects[0].name`, `data.nextflow.config`) */
  path: string;
  expected: unknown;
  actual: unknown;
}

export interface ResourceDrift {
  /** `IAMRole`, `PodIdentityAssociation`, `AccessEntry`, `AwsAuthMapping`, or the Kubernetes kind */
  kind: string;
  /** the role or policy name, `<namespace>/<name>` for a Kubernetes object, the principal for cluster access */
  name: string;
  arn?: string;
  state: ResourceState;
  differences: Difference[];
}

export interface DriftReport {
  checkedAt: string;
  status: DriftStatus;
  /** why the status is unknown (a read that failed) */
  reason?: string;
  resources: ResourceDrift[];
}

// ---------------------------------------------------------------- desired

export interface DesiredRole {
  name: string;
  arn: string;
  path: string;
  boundaryArn: string;
  trustPolicy: PolicyDocument;
  inlinePolicyName: string;
  inlinePolicy: PolicyDocument;
}

export interface DesiredPodIdentity {
  namespace: string;
  serviceAccount: string;
  roleArn: string;
}

export interface DesiredClusterAccess {
  method: "access-entry" | "aws-auth";
  principalArn: string;
  username: string;
  groups: string[];
}

export interface DesiredEnvironment {
  roles: DesiredRole[];
  podIdentity: DesiredPodIdentity[];
  clusterAccess: DesiredClusterAccess;
  kubernetes: KubernetesObject[];
}

/** The Pod Security level the namespace enforces (as CreateNamespaceAndRbac chooses it; a refused request never got one). */
function podSecurityOf(request: ProvisionRequest, settings: NamespaceSettings): PodSecurityLevel {
  return request.storage.type === "fusion" && request.storage.privileged === true && settings.allowPrivilegedNamespaces
    ? "privileged"
    : settings.podSecurityLevel;
}

/** The launcher role the product made, when the request asks it to make one. */
function launcherRole(
  request: ProvisionRequest,
  cluster: ResolvedCluster,
  config: DeploymentConfig,
  partition: string,
): DesiredRole | undefined {
  const launcher = request.launcher;
  if (launcher.mode !== "create") return undefined;
  const name = iamRoleName(config.iamPrefix, request.tenant, cluster.name, "launcher");
  const trust = launcher.trust
    ? launcherTrustPolicy(launcher.trust.principals, launcher.trust.externalId)
    : launcherTrustPolicy([accountRootArn(cluster.accountId, partition)]);
  return {
    name,
    arn: productRoleArn(partition, cluster.accountId, name),
    path: IAM_ROLE_PATH,
    boundaryArn: tenantRoleBoundary(config),
    trustPolicy: trust,
    inlinePolicyName: iamPolicyName(config.iamPrefix, request.tenant, cluster.name, "launcher"),
    inlinePolicy: launcherPermissionsPolicy([cluster.arn]),
  };
}

function workloadRole(
  request: ProvisionRequest,
  cluster: ResolvedCluster,
  config: DeploymentConfig,
  partition: string,
): DesiredRole | undefined {
  const storage = request.storage;
  if (storage.type !== "fusion") return undefined;
  const name = iamRoleName(config.iamPrefix, request.tenant, cluster.name, "workload");
  const tenantServiceAccounts = { namespace: request.namespace, serviceAccounts: serviceAccountsOf(request) };
  const trustPolicy = storage.podIdentity
    ? podIdentityTrustPolicy({ clusterArn: cluster.arn, ...tenantServiceAccounts })
    : irsaTrustPolicy({
        oidcProviderArn: oidcProviderArn(cluster.accountId, cluster.oidcIssuer ?? "", partition),
        issuer: cluster.oidcIssuer ?? "",
        ...tenantServiceAccounts,
      });
  return {
    name,
    arn: productRoleArn(partition, cluster.accountId, name),
    path: IAM_ROLE_PATH,
    boundaryArn: tenantRoleBoundary(config),
    trustPolicy,
    inlinePolicyName: iamPolicyName(config.iamPrefix, request.tenant, cluster.name, "fusion-s3"),
    inlinePolicy: fusionS3Policy({ bucket: storage.bucket, workDir: storage.workDir, partition }),
  };
}

/** Everything the product builds for this spec on this cluster, as the steps build it. */
export function desiredEnvironment(
  request: ProvisionRequest,
  cluster: ResolvedCluster,
  config: DeploymentConfig,
  settings: NamespaceSettings,
): DesiredEnvironment {
  const partition = parseArn(cluster.arn)?.partition ?? "aws";
  const launcher = launcherRole(request, cluster, config, partition);
  const workload = workloadRole(request, cluster, config, partition);
  const storage = request.storage;
  // The marks of whichever run built the objects are not part of what they should look like (see kubeProjection).
  const ctx: ManifestContext = {
    tenant: request.tenant,
    namespace: request.namespace,
    executionName: "drift-check",
    run: runMark({ name: "drift-check", startTime: "0" }),
    labels: request.labels,
  };
  const quota = effectiveNamespaceQuota(request.quota, settings.namespaceQuota);
  const irsa = storage.type === "fusion" && !storage.podIdentity && workload ? { [IRSA_ANNOTATION]: workload.arn } : undefined;
  const kubernetes: KubernetesObject[] = [
    namespaceManifest(ctx, podSecurityOf(request, settings)),
    limitRangeManifest(ctx),
    ...(quota ? [resourceQuotaManifest(ctx, quota)] : []),
    networkPolicyManifest(ctx),
    ...serviceAccountsOf(request).map((sa) => serviceAccountManifest(ctx, sa, irsa)),
    launcherRoleManifest(ctx),
    serviceAccountRoleBinding(ctx, request.serviceAccount),
    launcherUserRoleBinding(ctx),
    ...(storage.type === "pvc" ? [pvcManifest(ctx, storage)] : []),
    nextflowConfigMapManifest(ctx, buildNextflowConfig(request, { workloadRoleArn: workload?.arn })),
  ];
  const launcherArn = launcher?.arn ?? (request.launcher.mode === "existing" ? request.launcher.principalArn : "");
  return {
    roles: [launcher, workload].filter((role): role is DesiredRole => role !== undefined),
    podIdentity:
      storage.type === "fusion" && storage.podIdentity && workload
        ? serviceAccountsOf(request).map((serviceAccount) => ({ namespace: request.namespace, serviceAccount, roleArn: workload.arn }))
        : [],
    clusterAccess: {
      method: cluster.authenticationMode === "CONFIG_MAP" ? "aws-auth" : "access-entry",
      principalArn: launcherArn,
      username: launcherUsername(request.tenant),
      groups: [launcherGroup(request.tenant)],
    },
    kubernetes,
  };
}

// ---------------------------------------------------------------- live

export interface LiveRole {
  name: string;
  /** absent: GetRole answered NoSuchEntity */
  exists: boolean;
  path?: string;
  boundaryArn?: string;
  /** parsed (IAM returns it URL-encoded) */
  trustPolicy?: unknown;
  /** the desired inline policy's document, parsed; undefined when the role has no policy of that name */
  inlinePolicy?: unknown;
  /** the names of the role's other inline policies */
  otherInlinePolicies: string[];
  attachedPolicyArns: string[];
}

export interface LivePodIdentity {
  namespace: string;
  serviceAccount: string;
  associations: Array<{ associationId: string; roleArn?: string; disableSessionTags?: boolean }>;
}

export interface LiveClusterAccess {
  /** undefined: no entry / mapping for the principal */
  identity?: { username?: string; groups: string[] };
  /** access entries only: the access policies associated with the entry */
  accessPolicies?: string[];
}

export interface LiveEnvironment {
  roles: LiveRole[];
  podIdentity: LivePodIdentity[];
  clusterAccess: LiveClusterAccess;
  /** one per desired object, in the same order; undefined when the API server answered 404 */
  kubernetes: Array<KubernetesObject | undefined>;
}

// ---------------------------------------------------------------- compare

/** Plain JSON: no undefined fields (client-node's models carry every field, set or not), no Dates. */
function plain(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Where `actual` differs from `expected`, down to the smallest part that differs. */
export function differencesOf(path: string, expected: unknown, actual: unknown): Difference[] {
  if (JSON.stringify(expected) === JSON.stringify(actual)) return [];
  if (isRecord(expected) && isRecord(actual)) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
    return keys.flatMap((key) => differencesOf(path ? `${path}.${key}` : key, expected[key], actual[key]));
  }
  if (Array.isArray(expected) && Array.isArray(actual) && expected.length === actual.length) {
    return expected.flatMap((item, i) => differencesOf(`${path}[${i}]`, item, actual[i]));
  }
  return [{ path, expected: expected ?? null, actual: actual ?? null }];
}

function resource(kind: string, name: string, differences: Difference[], arn?: string): ResourceDrift {
  return { kind, name, ...(arn ? { arn } : {}), state: differences.length ? "changed" : "present", differences };
}

function missing(kind: string, name: string, arn?: string): ResourceDrift {
  return { kind, name, ...(arn ? { arn } : {}), state: "missing", differences: [] };
}

function compareRole(desired: DesiredRole, live: LiveRole | undefined): ResourceDrift {
  if (!live?.exists) return missing("IAMRole", desired.name, desired.arn);
  const differences = [
    ...differencesOf("path", desired.path, live.path),
    ...differencesOf("permissionsBoundary", desired.boundaryArn, live.boundaryArn),
    ...differencesOf("trustPolicy", canonicalPolicy(desired.trustPolicy), canonicalPolicy(live.trustPolicy)),
    ...differencesOf(
      `inlinePolicies.${desired.inlinePolicyName}`,
      canonicalPolicy(desired.inlinePolicy),
      canonicalPolicy(live.inlinePolicy),
    ),
    ...differencesOf("otherInlinePolicies", [], [...live.otherInlinePolicies].sort()),
    ...differencesOf("attachedPolicies", [], [...live.attachedPolicyArns].sort()),
  ];
  return resource("IAMRole", desired.name, differences, desired.arn);
}

function comparePodIdentity(desired: DesiredPodIdentity, live: LivePodIdentity | undefined): ResourceDrift {
  const name = `${desired.namespace}/${desired.serviceAccount}`;
  const associations = live?.associations ?? [];
  if (associations.length === 0) return missing("PodIdentityAssociation", name);
  const [first, ...others] = associations;
  const differences = [
    ...differencesOf("roleArn", desired.roleArn, first!.roleArn),
    ...differencesOf("disableSessionTags", false, first!.disableSessionTags ?? false),
    ...differencesOf(
      "otherAssociations",
      [],
      others.map((a) => a.associationId),
    ),
  ];
  return resource("PodIdentityAssociation", name, differences);
}

function compareClusterAccess(desired: DesiredClusterAccess, live: LiveClusterAccess): ResourceDrift {
  const kind = desired.method === "access-entry" ? "AccessEntry" : "AwsAuthMapping";
  if (!live.identity) return missing(kind, desired.principalArn);
  const differences = [
    ...differencesOf("username", desired.username, live.identity.username),
    ...differencesOf("groups", [...desired.groups].sort(), [...live.identity.groups].sort()),
    // The product associates no access policy: what the launcher may do comes from the namespace's Role alone.
    ...(live.accessPolicies ? differencesOf("accessPolicies", [], [...live.accessPolicies].sort()) : []),
  ];
  return resource(kind, desired.principalArn, differences);
}

/** The labels the product sets, without the created-by mark (it names whichever run built the object). */
function labelsOf(desired: KubernetesObject, live: KubernetesObject): { expected: Record<string, string>; actual: Record<string, string> } {
  const wanted = Object.entries(desired.metadata?.labels ?? {}).filter(([key]) => key !== LABEL_CREATED_BY);
  const present = live.metadata?.labels ?? {};
  return {
    expected: Object.fromEntries(wanted),
    actual: Object.fromEntries(wanted.filter(([key]) => key in present).map(([key]) => [key, present[key]!])),
  };
}

/** The fields of an object the product sets, by kind (the rest is the server's or someone else's). */
function kubeProjection(object: KubernetesObject, desired: KubernetesObject): Record<string, unknown> {
  // biome-ignore lint/suspicious/noExplicitAny: each kind's fields are read by name below, as the API server's JSON has them
  const o = object as KubernetesObject & Record<string, any>;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  const d = desired as KubernetesObject & Record<string, any>;
  switch (desired.kind) {
    case "Role":
      return { rules: plain(o.rules) ?? [] };
    case "RoleBinding":
      return { roleRef: plain(o.roleRef), subjects: plain(o.subjects) ?? [] };
    case "ServiceAccount": {
      const annotation = d.metadata?.annotations?.[IRSA_ANNOTATION];
      return annotation === undefined ? {} : { [`annotations.${IRSA_ANNOTATION}`]: o.metadata?.annotations?.[IRSA_ANNOTATION] };
    }
    case "PersistentVolumeClaim":
      return {
        accessModes: plain(o.spec?.accessModes),
        ...(d.spec?.storageClassName ? { storageClassName: o.spec?.storageClassName } : {}),
        storage: o.spec?.resources?.requests?.storage,
      };
    case "ConfigMap":
      return { data: plain(o.data) ?? {} };
    case "Namespace":
      return {};
    default:
      return { spec: plain(o.spec) };
  }
}

function compareKube(desired: KubernetesObject, live: KubernetesObject | undefined): ResourceDrift {
  const meta = desired.metadata ?? {};
  const name = meta.namespace ? `${meta.namespace}/${meta.name}` : (meta.name ?? "");
  const kind = desired.kind ?? "";
  if (!live) return missing(kind, name);
  const labels = labelsOf(desired, live);
  const differences = [
    ...differencesOf("metadata.labels", labels.expected, labels.actual),
    ...differencesOf("", kubeProjection(desired, desired), kubeProjection(live, desired)),
  ];
  return resource(kind, name, differences);
}

/** Desired against live, resource by resource: `in-sync` when every resource is present as built. */
export function compareEnvironment(desired: DesiredEnvironment, live: LiveEnvironment, checkedAt: Date): DriftReport {
  const resources = [
    ...desired.roles.map((role) =>
      compareRole(
        role,
        live.roles.find((r) => r.name === role.name),
      ),
    ),
    ...desired.podIdentity.map((p) =>
      comparePodIdentity(
        p,
        live.podIdentity.find((l) => l.namespace === p.namespace && l.serviceAccount === p.serviceAccount),
      ),
    ),
    compareClusterAccess(desired.clusterAccess, live.clusterAccess),
    ...desired.kubernetes.map((object, i) => compareKube(object, live.kubernetes[i])),
  ];
  const drifted = resources.some((r) => r.state !== "present");
  return { checkedAt: checkedAt.toISOString(), status: drifted ? "drifted" : "in-sync", resources };
}

/** A check that could not be made (a read failed): unknown, with why; never an error of the caller's request. */
export function unknownDrift(reason: string, checkedAt: Date): DriftReport {
  return { checkedAt: checkedAt.toISOString(), status: "unknown", reason, resources: [] };
}

/** Only what differs: for events and summaries. */
export function driftedResources(report: DriftReport): ResourceDrift[] {
  return report.resources.filter((r) => r.state !== "present");
}
