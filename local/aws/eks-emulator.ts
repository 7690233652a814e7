/**
 * Emulated Amazon EKS control plane (REST JSON): clusters (seeded, read-only), access entries and their
 * access policies, Pod Identity associations, resource tags. Regional: a cluster is found only in the
 * region the request was signed for, as with the real endpoint.
 *
 * Access entries need an authentication mode that allows them and a principal IAM can show EKS: an IAM
 * role or user of this account that exists and was created more than `propagationDelayMs` ago. Until
 * then EKS answers InvalidParameterException "The specified principalArn is invalid: invalid principal",
 * which the product's normaliseError names IamNotYetConsistent (and the workflow retries).
 *
 * An entry belongs to the principal's instance, not its name: it records the role's or user's unique id
 * (RoleId / UserId) when it is made, and the Kubernetes emulator's authenticator (local/kube/auth.ts) does not
 * honour it for a role that was deleted and recreated under the same ARN, as EKS does not.
 */
import { randomUUID } from "node:crypto";
import { parseArn } from "../../functions/lib/domain/arn.js";
import { POD_IDENTITY_SERVICE_PRINCIPAL } from "../../functions/lib/domain/policies.js";
import { page } from "../paging.js";
import { entityVisibility, iamEntityByArn } from "./iam-emulator.js";
import { AwsApiError, associationId, decodeToken, encodeToken, single, type AwsRequest } from "./protocol.js";
import type { AccessEntry, AccessScope, AssociatedAccessPolicy, AwsState, EksCluster, PodIdentityAssociation } from "./account-state.js";
import { clusterKey } from "./account-state.js";

type Json = Record<string, unknown>;

export interface EksRoute {
  operation: string;
  /** decoded path labels */
  labels: Record<string, string>;
}

interface EksContext {
  state: AwsState;
  request: AwsRequest;
  labels: Record<string, string>;
  body: Json;
  now: Date;
}

// ---------------------------------------------------------------- routing

const ROUTES: Array<{ method: string; pattern: string[]; operation: string }> = [
  { method: "GET", pattern: ["clusters"], operation: "ListClusters" },
  { method: "GET", pattern: ["clusters", "{name}"], operation: "DescribeCluster" },
  { method: "POST", pattern: ["clusters", "{name}", "access-entries"], operation: "CreateAccessEntry" },
  { method: "GET", pattern: ["clusters", "{name}", "access-entries"], operation: "ListAccessEntries" },
  { method: "GET", pattern: ["clusters", "{name}", "access-entries", "{principalArn}"], operation: "DescribeAccessEntry" },
  { method: "POST", pattern: ["clusters", "{name}", "access-entries", "{principalArn}"], operation: "UpdateAccessEntry" },
  { method: "DELETE", pattern: ["clusters", "{name}", "access-entries", "{principalArn}"], operation: "DeleteAccessEntry" },
  {
    method: "GET",
    pattern: ["clusters", "{name}", "access-entries", "{principalArn}", "access-policies"],
    operation: "ListAssociatedAccessPolicies",
  },
  {
    method: "POST",
    pattern: ["clusters", "{name}", "access-entries", "{principalArn}", "access-policies"],
    operation: "AssociateAccessPolicy",
  },
  {
    method: "DELETE",
    pattern: ["clusters", "{name}", "access-entries", "{principalArn}", "access-policies", "{policyArn}"],
    operation: "DisassociateAccessPolicy",
  },
  { method: "GET", pattern: ["access-policies"], operation: "ListAccessPolicies" },
  { method: "POST", pattern: ["clusters", "{name}", "pod-identity-associations"], operation: "CreatePodIdentityAssociation" },
  { method: "GET", pattern: ["clusters", "{name}", "pod-identity-associations"], operation: "ListPodIdentityAssociations" },
  {
    method: "GET",
    pattern: ["clusters", "{name}", "pod-identity-associations", "{associationId}"],
    operation: "DescribePodIdentityAssociation",
  },
  {
    method: "POST",
    pattern: ["clusters", "{name}", "pod-identity-associations", "{associationId}"],
    operation: "UpdatePodIdentityAssociation",
  },
  {
    method: "DELETE",
    pattern: ["clusters", "{name}", "pod-identity-associations", "{associationId}"],
    operation: "DeletePodIdentityAssociation",
  },
  { method: "GET", pattern: ["tags", "{resourceArn}"], operation: "ListTagsForResource" },
  { method: "POST", pattern: ["tags", "{resourceArn}"], operation: "TagResource" },
  { method: "DELETE", pattern: ["tags", "{resourceArn}"], operation: "UntagResource" },
];

/** Every EKS operation the emulator answers (each needs an authorization entry in operation-checks.ts). */
export const EKS_OPERATIONS: readonly string[] = ROUTES.map((route) => route.operation);

/** Match a raw (percent-encoded) path: labels are split on `/` first, then decoded (ARNs arrive as one encoded label). */
export function routeEks(method: string, rawPath: string): EksRoute | undefined {
  const segments = rawPath.split("/").filter(Boolean);
  for (const route of ROUTES) {
    if (route.method !== method || route.pattern.length !== segments.length) continue;
    const labels: Record<string, string> = {};
    const matches = route.pattern.every((part, i) => {
      if (part.startsWith("{")) {
        labels[part.slice(1, -1)] = safeDecode(segments[i]);
        return true;
      }
      return part === segments[i];
    });
    if (matches) return { operation: route.operation, labels };
  }
  return undefined;
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

// ---------------------------------------------------------------- errors

const notFound = (message: string, clusterName?: string) =>
  new AwsApiError("ResourceNotFoundException", 404, message, clusterName ? { clusterName } : {});
const inUse = (message: string, clusterName?: string) =>
  new AwsApiError("ResourceInUseException", 409, message, clusterName ? { clusterName } : {});
const invalidParameter = (message: string, clusterName?: string) =>
  new AwsApiError("InvalidParameterException", 400, message, clusterName ? { clusterName } : {});
const invalidRequest = (message: string, clusterName?: string) =>
  new AwsApiError("InvalidRequestException", 400, message, clusterName ? { clusterName } : {});

/** The message EKS gives for a principal IAM cannot (yet) show it; normaliseError's IAM_PROPAGATION_MESSAGE recognises it. */
const INVALID_PRINCIPAL_MESSAGE = "The specified principalArn is invalid: invalid principal";

// ---------------------------------------------------------------- access policies EKS offers

const ACCESS_POLICY_NAMES = [
  "AmazonEKSAdminPolicy",
  "AmazonEKSAdminViewPolicy",
  "AmazonEKSClusterAdminPolicy",
  "AmazonEKSEditPolicy",
  "AmazonEKSViewPolicy",
  "AmazonEKSAutoNodePolicy",
  "AmazonEKSBlockStorageClusterPolicy",
  "AmazonEKSComputeClusterPolicy",
  "AmazonEKSLoadBalancingClusterPolicy",
  "AmazonEKSNetworkingClusterPolicy",
  "AmazonEMRJobPolicy",
];

function accessPolicyArn(name: string): string {
  return `arn:aws:eks::aws:cluster-access-policy/${name}`;
}

/** The access policy EKS associates with the cluster creator's access entry. */
export const CLUSTER_ADMIN_POLICY_ARN = accessPolicyArn("AmazonEKSClusterAdminPolicy");

const ACCESS_POLICY_ARNS = new Set(ACCESS_POLICY_NAMES.map(accessPolicyArn));
const ACCESS_ENTRY_TYPES = new Set(["STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX", "HYPERPOD_LINUX"]);
const RESERVED_PREFIXES = ["system:", "amazon:", "aws:", "eks:", "iam:"];
const MAX_TAGS = 50;

// ---------------------------------------------------------------- helpers

function cluster(ctx: EksContext): EksCluster {
  const name = ctx.labels.name;
  const found = ctx.state.eks.clusters.get(clusterKey(ctx.request.region, name));
  if (!found) throw notFound(`No cluster found for name: ${name}.`, name);
  return found;
}

/** Access entries exist only where the authentication mode allows them. */
function clusterWithAccessEntries(ctx: EksContext): EksCluster {
  const found = cluster(ctx);
  if (found.authenticationMode === "CONFIG_MAP") {
    throw invalidRequest(
      "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.",
      found.name,
    );
  }
  return found;
}

function accessEntry(ctx: EksContext, owner: EksCluster): AccessEntry {
  const entry = owner.accessEntries.get(ctx.labels.principalArn);
  if (!entry) {
    throw notFound(
      `The specified principalArn could not be found. You can view your available access entries with 'list-access-entries'.`,
      owner.name,
    );
  }
  return entry;
}

function association(ctx: EksContext, owner: EksCluster): PodIdentityAssociation {
  const found = owner.podIdentityAssociations.get(ctx.labels.associationId);
  if (!found) throw notFound(`Could not find association: ${ctx.labels.associationId}`, owner.name);
  return found;
}

function stringField(ctx: EksContext, field: string, required: boolean): string | undefined {
  const value = ctx.body[field];
  if (value === undefined || value === null) {
    if (required) throw invalidParameter(`${field} is required.`);
    return undefined;
  }
  if (typeof value !== "string") throw invalidParameter(`${field} must be a string.`);
  return value;
}

function stringList(ctx: EksContext, field: string): string[] | undefined {
  const value = ctx.body[field];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) throw invalidParameter(`${field} must be a list of strings.`);
  return value as string[];
}

function tagsField(ctx: EksContext): Record<string, string> {
  const value = ctx.body.tags;
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value) || Object.values(value).some((v) => typeof v !== "string"))
    throw invalidParameter("tags must be a map of strings.");
  const tags = value as Record<string, string>;
  validateTags(tags);
  return { ...tags };
}

function validateTags(tags: Record<string, string>): void {
  for (const [key, value] of Object.entries(tags)) {
    if (key.length < 1 || key.length > 128 || value.length > 256)
      throw new AwsApiError("BadRequestException", 400, `Tag ${key} is not valid: keys are 1-128 characters, values at most 256.`);
    if (key.toLowerCase().startsWith("aws:"))
      throw new AwsApiError("BadRequestException", 400, `Tag key ${key} uses the reserved prefix aws:.`);
  }
  if (Object.keys(tags).length > MAX_TAGS)
    throw new AwsApiError("BadRequestException", 400, `A resource can have at most ${MAX_TAGS} tags.`);
}

function maxResults(ctx: EksContext, max = 100): number {
  const raw = single(ctx.request.query.maxResults);
  if (raw === undefined) return max;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) throw invalidParameter(`maxResults must be between 1 and ${max}.`);
  return value;
}

function paged<T>(ctx: EksContext, items: T[], max = 100): { items: T[]; nextToken?: string } {
  const offset = decodeToken(single(ctx.request.query.nextToken), () => invalidParameter("The nextToken is not valid."));
  const { items: slice, next } = page(items, offset, maxResults(ctx, max));
  return { items: slice, ...(next !== undefined ? { nextToken: encodeToken(next) } : {}) };
}

/** restJson timestamps are epoch seconds. */
function epoch(date: Date): number {
  return date.getTime() / 1000;
}

/**
 * The SDK fills `clientRequestToken` on every create; a create repeated with the same token (an SDK retry
 * after a lost answer) gets the resource it created (remembered in `state.requestTokens`) instead of
 * ResourceInUseException, as on AWS.
 */
function tokenKey(ctx: EksContext, owner: EksCluster, operation: string): string | undefined {
  const token = ctx.body.clientRequestToken;
  return typeof token === "string" && token ? `${owner.region}/${owner.name}/${operation}/${token}` : undefined;
}

function rememberedByToken(ctx: EksContext, key: string | undefined): string | undefined {
  return key ? ctx.state.requestTokens.get(key) : undefined;
}

function rememberToken(ctx: EksContext, key: string | undefined, id: string): void {
  if (key) ctx.state.requestTokens.set(key, id);
}

// ---------------------------------------------------------------- renderers

function clusterJson(c: EksCluster): Json {
  return {
    name: c.name,
    arn: c.arn,
    createdAt: epoch(c.createdAt),
    version: c.version,
    endpoint: c.endpoint,
    roleArn: c.roleArn,
    resourcesVpcConfig: {
      subnetIds: [],
      securityGroupIds: [],
      endpointPublicAccess: true,
      endpointPrivateAccess: false,
      publicAccessCidrs: ["0.0.0.0/0"],
    },
    kubernetesNetworkConfig: { serviceIpv4Cidr: "10.100.0.0/16", ipFamily: "ipv4" },
    logging: { clusterLogging: [{ types: ["api", "audit", "authenticator", "controllerManager", "scheduler"], enabled: false }] },
    ...(c.oidcIssuer ? { identity: { oidc: { issuer: c.oidcIssuer } } } : {}),
    status: c.status,
    certificateAuthority: { data: c.certificateAuthority },
    platformVersion: c.platformVersion,
    tags: { ...c.tags },
    health: { issues: [] },
    accessConfig: { bootstrapClusterCreatorAdminPermissions: true, authenticationMode: c.authenticationMode },
    upgradePolicy: { supportType: "STANDARD" },
  };
}

function accessEntryJson(e: AccessEntry): Json {
  return {
    clusterName: e.clusterName,
    principalArn: e.principalArn,
    kubernetesGroups: [...e.kubernetesGroups],
    accessEntryArn: e.accessEntryArn,
    createdAt: epoch(e.createdAt),
    modifiedAt: epoch(e.modifiedAt),
    tags: { ...e.tags },
    username: e.username,
    type: e.type,
  };
}

function associatedPolicyJson(p: AssociatedAccessPolicy): Json {
  return {
    policyArn: p.policyArn,
    accessScope: { type: p.accessScope.type, namespaces: [...p.accessScope.namespaces] },
    associatedAt: epoch(p.associatedAt),
    modifiedAt: epoch(p.modifiedAt),
  };
}

function associationJson(a: PodIdentityAssociation): Json {
  return {
    clusterName: a.clusterName,
    namespace: a.namespace,
    serviceAccount: a.serviceAccount,
    roleArn: a.roleArn,
    associationArn: a.associationArn,
    associationId: a.associationId,
    tags: { ...a.tags },
    createdAt: epoch(a.createdAt),
    modifiedAt: epoch(a.modifiedAt),
    disableSessionTags: a.disableSessionTags,
    ...(a.ownerArn ? { ownerArn: a.ownerArn } : {}),
    ...(a.targetRoleArn ? { targetRoleArn: a.targetRoleArn } : {}),
  };
}

// ---------------------------------------------------------------- principals and roles

/** An IAM role or user ARN (roles with paths keep them: `role/team/name`) that IAM can show EKS. */
function assertPrincipalUsable(ctx: EksContext, principalArn: string, clusterName: string): void {
  const principal = iamEntityByArn(ctx.state, principalArn);
  if (!principal) throw invalidParameter("The principalArn parameter format is not valid", clusterName);
  // IAM of another account is not emulated: EKS would ask it; here it is taken as existing.
  if (principal.accountId === ctx.state.accountId && entityVisibility(principal.entity, principalArn, ctx.now.getTime()) !== "visible") {
    throw invalidParameter(INVALID_PRINCIPAL_MESSAGE, clusterName);
  }
}

function defaultUsername(principalArn: string, kind: "role" | "user", name: string, accountId: string, type: string): string {
  if (type === "EC2_LINUX" || type === "EC2_WINDOWS" || type === "EC2" || type === "HYBRID_LINUX")
    return "system:node:{{EC2PrivateDNSName}}";
  if (type === "FARGATE_LINUX") return "system:node:{{SessionName}}";
  if (kind === "user") return principalArn;
  return `arn:aws:sts::${accountId}:assumed-role/${name}/{{SessionName}}`;
}

/**
 * An access entry as EKS makes one: by CreateAccessEntry, or with a cluster (its creator's, its node
 * role's). Node types get `system:nodes`; the username defaults by type and principal.
 */
export function newAccessEntry(
  owner: EksCluster,
  accountId: string,
  principalArn: string,
  init: { type: string; groups?: string[]; username?: string; tags?: Record<string, string>; principalId?: string },
  now: Date,
): AccessEntry {
  const principal = parseArn(principalArn);
  const resource = principal?.resource ?? "";
  const kind = resource.startsWith("user/") ? "user" : "role";
  const name = resource.slice(resource.lastIndexOf("/") + 1);
  const principalAccount = principal?.accountId ?? accountId;
  const { type } = init;
  return {
    clusterName: owner.name,
    principalArn,
    kubernetesGroups:
      type === "STANDARD" ? [...new Set(init.groups ?? [])] : type.startsWith("EC2") || type === "HYBRID_LINUX" ? ["system:nodes"] : [],
    accessEntryArn: `arn:aws:eks:${owner.region}:${accountId}:access-entry/${owner.name}/${kind}/${principalAccount}/${name}/${randomUUID()}`,
    createdAt: now,
    modifiedAt: now,
    tags: init.tags ?? {},
    username: init.username ?? defaultUsername(principalArn, kind, name, principalAccount, type),
    type,
    accessPolicies: new Map(),
    ...(init.principalId ? { principalId: init.principalId } : {}),
  };
}

/** The unique id of the role or user an ARN names now (RoleId / UserId), as EKS records it at CreateAccessEntry. */
export function principalIdOf(state: AwsState, principalArn: string): string | undefined {
  const entity = iamEntityByArn(state, principalArn)?.entity;
  if (!entity || entity.arn !== principalArn) return undefined;
  return "roleId" in entity ? entity.roleId : entity.userId;
}

function validateIdentity(groups: string[] | undefined, username: string | undefined, clusterName: string): void {
  for (const group of groups ?? []) {
    const lower = group.trim().toLowerCase();
    if (RESERVED_PREFIXES.some((p) => lower.startsWith(p))) {
      throw invalidParameter(
        `The kubernetes group name ${group} is invalid, it cannot start with ${RESERVED_PREFIXES.join(", ")}`,
        clusterName,
      );
    }
    if (!group || group.length > 63) throw invalidParameter(`The kubernetes group name ${group} is invalid.`, clusterName);
  }
  if (username !== undefined) {
    const lower = username.trim().toLowerCase();
    if (!username || RESERVED_PREFIXES.some((p) => lower.startsWith(p))) {
      throw invalidParameter(`The username ${username} is invalid, it cannot start with ${RESERVED_PREFIXES.join(", ")}`, clusterName);
    }
  }
}

/** Pod Identity needs a role EKS can see and whose trust lets the Pod Identity agent assume it. */
function assertPodIdentityRole(ctx: EksContext, roleArn: string, clusterName: string): void {
  const cannotAssume = invalidParameter(`Role ${roleArn} cannot be assumed by principal ${POD_IDENTITY_SERVICE_PRINCIPAL}`, clusterName);
  const role = iamEntityByArn(ctx.state, roleArn);
  if (role?.kind !== "role") throw invalidParameter("The roleArn parameter format is not valid", clusterName);
  if (role.accountId !== ctx.state.accountId) return;
  if (entityVisibility(role.entity, roleArn, ctx.now.getTime()) !== "visible") throw cannotAssume;
  if (!trustsService(role.entity!.assumeRolePolicyDocument, POD_IDENTITY_SERVICE_PRINCIPAL)) throw cannotAssume;
}

function trustsService(document: string, service: string): boolean {
  try {
    const { Statement } = JSON.parse(document) as { Statement?: unknown };
    const statements = (Array.isArray(Statement) ? Statement : [Statement]) as Array<{
      Effect?: string;
      Principal?: { Service?: unknown };
      Action?: unknown;
    }>;
    return statements.some((s) => {
      const services = [s?.Principal?.Service].flat();
      const actions = [s?.Action].flat();
      return (
        s?.Effect === "Allow" && services.includes(service) && actions.some((a) => a === "sts:AssumeRole" || a === "sts:*" || a === "*")
      );
    });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- tags by ARN

function taggable(ctx: EksContext): { tags: Record<string, string>; set(tags: Record<string, string>): void } {
  const arn = ctx.labels.resourceArn;
  const parsed = parseArn(arn);
  if (parsed?.service !== "eks") throw new AwsApiError("BadRequestException", 400, `${arn} is not a valid resource ARN.`);
  const [kind, clusterName, ...rest] = parsed.resource.split("/");
  const owner = ctx.state.eks.clusters.get(clusterKey(parsed.region, clusterName ?? ""));
  const missing = new AwsApiError("NotFoundException", 404, `Resource ${arn} was not found.`);
  if (!owner || parsed.accountId !== ctx.state.accountId) throw missing;
  if (kind === "cluster" && rest.length === 0) return { tags: owner.tags, set: (tags) => (owner.tags = tags) };
  if (kind === "access-entry") {
    const entry = [...owner.accessEntries.values()].find((e) => e.accessEntryArn === arn);
    if (entry) return { tags: entry.tags, set: (tags) => (entry.tags = tags) };
  }
  if (kind === "podidentityassociation") {
    const found = owner.podIdentityAssociations.get(rest[0] ?? "");
    if (found && found.associationArn === arn) return { tags: found.tags, set: (tags) => (found.tags = tags) };
  }
  throw missing;
}

// ---------------------------------------------------------------- operations

const operations: Record<string, (ctx: EksContext) => Json> = {
  ListClusters(ctx) {
    const names = [...ctx.state.eks.clusters.values()]
      .filter((c) => c.region === ctx.request.region)
      .map((c) => c.name)
      .sort();
    const { items, nextToken } = paged(ctx, names);
    return { clusters: items, ...(nextToken ? { nextToken } : {}) };
  },

  DescribeCluster(ctx) {
    return { cluster: clusterJson(cluster(ctx)) };
  },

  // ----- access entries
  CreateAccessEntry(ctx) {
    const owner = clusterWithAccessEntries(ctx);
    const principalArn = stringField(ctx, "principalArn", true)!;
    const token = tokenKey(ctx, owner, "CreateAccessEntry");
    const repeated = rememberedByToken(ctx, token);
    if (repeated && owner.accessEntries.has(repeated)) return { accessEntry: accessEntryJson(owner.accessEntries.get(repeated)!) };

    const type = stringField(ctx, "type", false) ?? "STANDARD";
    if (!ACCESS_ENTRY_TYPES.has(type)) throw invalidParameter(`The type ${type} is not valid.`, owner.name);
    const groups = stringList(ctx, "kubernetesGroups");
    const username = stringField(ctx, "username", false);
    if (type !== "STANDARD" && (groups?.length || username !== undefined)) {
      throw invalidParameter(`kubernetesGroups and username cannot be specified for access entries of type ${type}.`, owner.name);
    }
    validateIdentity(groups, username, owner.name);
    const tags = tagsField(ctx);
    assertPrincipalUsable(ctx, principalArn, owner.name);
    if (owner.accessEntries.has(principalArn))
      throw inUse("The specified access entry resource is already in use on this cluster.", owner.name);

    const principalId = principalIdOf(ctx.state, principalArn);
    const entry = newAccessEntry(owner, ctx.state.accountId, principalArn, { type, groups, username, tags, principalId }, ctx.now);
    owner.accessEntries.set(principalArn, entry);
    rememberToken(ctx, token, principalArn);
    return { accessEntry: accessEntryJson(entry) };
  },

  DescribeAccessEntry(ctx) {
    const owner = clusterWithAccessEntries(ctx);
    return { accessEntry: accessEntryJson(accessEntry(ctx, owner)) };
  },

  UpdateAccessEntry(ctx) {
    const owner = clusterWithAccessEntries(ctx);
    const entry = accessEntry(ctx, owner);
    const groups = stringList(ctx, "kubernetesGroups");
    const username = stringField(ctx, "username", false);
    if (entry.type !== "STANDARD" && (groups !== undefined || username !== undefined)) {
      throw invalidParameter(`kubernetesGroups and username cannot be updated for access entries of type ${entry.type}.`, owner.name);
    }
    validateIdentity(groups, username, owner.name);
    if (groups !== undefined) entry.kubernetesGroups = [...new Set(groups)];
    if (username !== undefined) entry.username = username;
    entry.modifiedAt = ctx.now;
    return { accessEntry: accessEntryJson(entry) };
  },

  DeleteAccessEntry(ctx) {
    const owner = clusterWithAccessEntries(ctx);
    const entry = accessEntry(ctx, owner);
    owner.accessEntries.delete(entry.principalArn);
    return {};
  },

  ListAccessEntries(ctx) {
    const owner = clusterWithAccessEntries(ctx);
    const policy = single(ctx.request.query.associatedPolicyArn);
    const arns = [...owner.accessEntries.values()].filter((e) => !policy || e.accessPolicies.has(policy)).map((e) => e.principalArn);
    const { items, nextToken } = paged(ctx, arns);
    return { accessEntries: items, ...(nextToken ? { nextToken } : {}) };
  },

  // ----- access policies
  ListAccessPolicies(ctx) {
    const { items, nextToken } = paged(ctx, ACCESS_POLICY_NAMES);
    return { accessPolicies: items.map((name) => ({ name, arn: accessPolicyArn(name) })), ...(nextToken ? { nextToken } : {}) };
  },

  AssociateAccessPolicy(ctx) {
    const owner = clusterWithAccessEntries(ctx);
    const entry = accessEntry(ctx, owner);
    const policyArn = stringField(ctx, "policyArn", true)!;
    if (!ACCESS_POLICY_ARNS.has(policyArn)) throw invalidParameter(`The specified policyArn ${policyArn} is invalid.`, owner.name);
    if (entry.type !== "STANDARD")
      throw invalidRequest(`Access policies cannot be associated with access entries of type ${entry.type}.`, owner.name);
    const scope = ctx.body.accessScope as Partial<AccessScope> | undefined;
    if (!scope || (scope.type !== "cluster" && scope.type !== "namespace"))
      throw invalidParameter("accessScope.type must be cluster or namespace.", owner.name);
    const namespaces = Array.isArray(scope.namespaces) ? scope.namespaces.filter((n): n is string => typeof n === "string") : [];
    if (scope.type === "namespace" && namespaces.length === 0)
      throw invalidParameter("Namespaces must be specified for an access scope of type namespace.", owner.name);
    if (scope.type === "cluster" && namespaces.length > 0)
      throw invalidParameter("Namespaces cannot be specified for an access scope of type cluster.", owner.name);
    const existing = entry.accessPolicies.get(policyArn);
    const associated: AssociatedAccessPolicy = {
      policyArn,
      accessScope: { type: scope.type, namespaces: [...new Set(namespaces)] },
      associatedAt: existing?.associatedAt ?? ctx.now,
      modifiedAt: ctx.now,
    };
    entry.accessPolicies.set(policyArn, associated);
    return { clusterName: owner.name, principalArn: entry.principalArn, associatedAccessPolicy: associatedPolicyJson(associated) };
  },

  DisassociateAccessPolicy(ctx) {
    const owner = clusterWithAccessEntries(ctx);
    const entry = accessEntry(ctx, owner);
    if (!entry.accessPolicies.delete(ctx.labels.policyArn)) {
      throw notFound(`The specified policy ${ctx.labels.policyArn} is not associated with the access entry.`, owner.name);
    }
    return {};
  },

  ListAssociatedAccessPolicies(ctx) {
    const owner = clusterWithAccessEntries(ctx);
    const entry = accessEntry(ctx, owner);
    const { items, nextToken } = paged(ctx, [...entry.accessPolicies.values()]);
    return {
      clusterName: owner.name,
      principalArn: entry.principalArn,
      associatedAccessPolicies: items.map(associatedPolicyJson),
      ...(nextToken ? { nextToken } : {}),
    };
  },

  // ----- Pod Identity associations
  CreatePodIdentityAssociation(ctx) {
    const owner = cluster(ctx);
    const token = tokenKey(ctx, owner, "CreatePodIdentityAssociation");
    const repeated = rememberedByToken(ctx, token);
    if (repeated && owner.podIdentityAssociations.has(repeated))
      return { association: associationJson(owner.podIdentityAssociations.get(repeated)!) };

    const namespace = stringField(ctx, "namespace", true)!;
    const serviceAccount = stringField(ctx, "serviceAccount", true)!;
    const roleArn = stringField(ctx, "roleArn", true)!;
    const targetRoleArn = stringField(ctx, "targetRoleArn", false);
    const tags = tagsField(ctx);
    const clash = [...owner.podIdentityAssociations.values()].find((a) => a.namespace === namespace && a.serviceAccount === serviceAccount);
    if (clash) throw inUse(`Association already exists: ${clash.associationId}`, owner.name);
    assertPodIdentityRole(ctx, roleArn, owner.name);

    const id = associationId();
    const created: PodIdentityAssociation = {
      clusterName: owner.name,
      namespace,
      serviceAccount,
      roleArn,
      associationArn: `arn:aws:eks:${owner.region}:${ctx.state.accountId}:podidentityassociation/${owner.name}/${id}`,
      associationId: id,
      tags,
      createdAt: ctx.now,
      modifiedAt: ctx.now,
      disableSessionTags: ctx.body.disableSessionTags === true,
      ...(targetRoleArn ? { targetRoleArn } : {}),
    };
    owner.podIdentityAssociations.set(id, created);
    rememberToken(ctx, token, id);
    return { association: associationJson(created) };
  },

  DescribePodIdentityAssociation(ctx) {
    return { association: associationJson(association(ctx, cluster(ctx))) };
  },

  UpdatePodIdentityAssociation(ctx) {
    const owner = cluster(ctx);
    const found = association(ctx, owner);
    const roleArn = stringField(ctx, "roleArn", false);
    if (roleArn !== undefined) {
      assertPodIdentityRole(ctx, roleArn, owner.name);
      found.roleArn = roleArn;
    }
    if (typeof ctx.body.disableSessionTags === "boolean") found.disableSessionTags = ctx.body.disableSessionTags;
    const targetRoleArn = stringField(ctx, "targetRoleArn", false);
    if (targetRoleArn !== undefined) found.targetRoleArn = targetRoleArn || undefined;
    found.modifiedAt = ctx.now;
    return { association: associationJson(found) };
  },

  DeletePodIdentityAssociation(ctx) {
    const owner = cluster(ctx);
    const found = association(ctx, owner);
    owner.podIdentityAssociations.delete(found.associationId);
    return { association: associationJson(found) };
  },

  ListPodIdentityAssociations(ctx) {
    const owner = cluster(ctx);
    const namespace = single(ctx.request.query.namespace);
    const serviceAccount = single(ctx.request.query.serviceAccount);
    const matching = [...owner.podIdentityAssociations.values()].filter(
      (a) => (!namespace || a.namespace === namespace) && (!serviceAccount || a.serviceAccount === serviceAccount),
    );
    const { items, nextToken } = paged(ctx, matching);
    return {
      associations: items.map((a) => ({
        clusterName: a.clusterName,
        namespace: a.namespace,
        serviceAccount: a.serviceAccount,
        associationArn: a.associationArn,
        associationId: a.associationId,
        ...(a.ownerArn ? { ownerArn: a.ownerArn } : {}),
      })),
      ...(nextToken ? { nextToken } : {}),
    };
  },

  // ----- tags
  ListTagsForResource(ctx) {
    return { tags: { ...taggable(ctx).tags } };
  },

  TagResource(ctx) {
    const target = taggable(ctx);
    const tags = ctx.body.tags;
    if (!tags || typeof tags !== "object" || Array.isArray(tags) || Object.values(tags).some((v) => typeof v !== "string")) {
      throw new AwsApiError("BadRequestException", 400, "tags must be a map of strings.");
    }
    const merged = { ...target.tags, ...(tags as Record<string, string>) };
    validateTags(merged);
    target.set(merged);
    return {};
  },

  UntagResource(ctx) {
    const target = taggable(ctx);
    const raw = ctx.request.query.tagKeys;
    const keys = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    target.set(Object.fromEntries(Object.entries(target.tags).filter(([key]) => !keys.includes(key))));
    return {};
  },
};

export function handleEks(state: AwsState, request: AwsRequest, route: EksRoute): Json {
  let body: Json = {};
  if (request.body.length) {
    try {
      const parsed = JSON.parse(request.body.toString("utf8")) as unknown;
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as Json;
      else throw new Error("not an object");
    } catch {
      throw new AwsApiError("BadRequestException", 400, "The request body is not valid JSON.");
    }
  }
  return operations[route.operation]({ state, request, labels: route.labels, body, now: new Date() });
}
