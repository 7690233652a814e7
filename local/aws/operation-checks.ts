/**
 * Every operation the AWS emulator serves, and what AWS authorizes for it: the IAM action, the resource ARN
 * and the context keys, built from the request as AWS builds them (resource ARNs from the names and ARNs
 * sent, `aws:RequestTag/*` and `aws:TagKeys` from the tags sent, `aws:ResourceTag/*` from the stored
 * resource, `iam:PermissionsBoundary`, `iam:PolicyARN`, `iam:PassedToService`, the EKS access-entry keys,
 * `events:source`/`events:detail-type`). A create call that carries tags also needs the tagging action on
 * the new resource (tag-on-create). authorizer.ts decides each check; the server refuses to serve an
 * operation that has no entry here (and test/integration/aws-authz-table.test.ts fails).
 */
import { randomUUID } from "node:crypto";
import { parseArn } from "../../functions/lib/domain/arn.js";
import { POD_IDENTITY_SERVICE_PRINCIPAL, oidcProviderArn } from "../../functions/lib/domain/policies.js";
import { clusterKey, type AwsState, type EksCluster, type IamRole, type IamUser, type Tag } from "./account-state.js";
import type { AuthorizationCheck, ContextValues } from "./authorizer.js";
import { EKS_OPERATIONS } from "./eks-emulator.js";
import { EVENTS_OPERATIONS, busName } from "./eventbridge-emulator.js";
import { IAM_OPERATIONS, entityVisibility, iamEntityByArn } from "./iam-emulator.js";
import { associationId, type Caller } from "./protocol.js";
import { STS_OPERATIONS } from "./sts-emulator.js";
import { memberList, memberStructList } from "./xml.js";

/** What the table reads from a request, whatever its protocol. */
export interface OperationRequest {
  state: AwsState;
  caller: Caller;
  /** the signing region (EKS and EventBridge ARNs carry it) */
  region: string;
  /** query-protocol parameters (IAM, STS) */
  params: Record<string, string>;
  /** EKS path labels (decoded) */
  labels: Record<string, string>;
  /** the JSON body (EKS, EventBridge); empty when there is none or it does not parse */
  body: Record<string, unknown>;
  /** decoded URL query */
  query: Record<string, string | string[]>;
}

export type OperationAuthorization =
  | { checks: (request: OperationRequest) => AuthorizationCheck[] }
  /** served without a signature, authorized by the operation itself (why, in words) */
  | { anonymous: string };

// ---------------------------------------------------------------- context keys

/** `aws:RequestTag/<key>` for each tag sent, and `aws:TagKeys`. */
function requestTags(tags: Array<{ key: string; value: string }>): ContextValues {
  if (tags.length === 0) return {};
  const context: ContextValues = Object.fromEntries(tags.map((t) => [`aws:RequestTag/${t.key}`, t.value]));
  context["aws:TagKeys"] = tags.map((t) => t.key);
  return context;
}

/** `aws:ResourceTag/<key>` for each tag the stored resource carries (IAM roles and users: `iam:ResourceTag/<key>` too). */
function resourceTags(tags: Array<{ key: string; value: string }>, iamIdentity = false): ContextValues {
  const context: ContextValues = {};
  for (const t of tags) {
    context[`aws:ResourceTag/${t.key}`] = t.value;
    if (iamIdentity) context[`iam:ResourceTag/${t.key}`] = t.value;
  }
  return context;
}

const fromIamTags = (tags: Tag[]) => tags.map((t) => ({ key: t.Key, value: t.Value }));
const fromTagMap = (tags: Record<string, string>) => Object.entries(tags).map(([key, value]) => ({ key, value }));

function iamTagsSent(request: OperationRequest): Array<{ key: string; value: string }> {
  return memberStructList(request.params, "Tags").map((t) => ({ key: t.Key ?? "", value: t.Value ?? "" }));
}

function eksTagsSent(request: OperationRequest): Array<{ key: string; value: string }> {
  const tags = request.body.tags;
  if (!tags || typeof tags !== "object" || Array.isArray(tags)) return [];
  return fromTagMap(Object.fromEntries(Object.entries(tags).filter(([, v]) => typeof v === "string")) as Record<string, string>);
}

function boundaryKey(arn: string | undefined): ContextValues {
  return arn ? { "iam:PermissionsBoundary": arn } : {};
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

// ---------------------------------------------------------------- IAM

function iamArn(request: OperationRequest, kind: string, path: string, name: string): string {
  return `arn:aws:iam::${request.state.accountId}:${kind}${path}${name}`;
}

/** The role the request names (`RoleName`): its ARN (with its path) and stored tags and boundary, if it exists. */
function namedRole(request: OperationRequest): { arn: string; role?: IamRole } {
  const name = request.params.RoleName ?? "";
  const role = request.state.iam.roles.get(name);
  return { arn: role?.arn ?? iamArn(request, "role", "/", name), role };
}

function namedUser(request: OperationRequest): { arn: string; user?: IamUser } {
  const name = request.params.UserName;
  if (name === undefined)
    return { arn: request.caller.arn, user: [...request.state.iam.users.values()].find((u) => u.arn === request.caller.arn) };
  const user = request.state.iam.users.get(name);
  return { arn: user?.arn ?? iamArn(request, "user", "/", name), user };
}

/** An action on an existing role: its tags, and the boundary it carries now. */
function onRole(action: string, extra: (request: OperationRequest) => ContextValues = () => ({})) {
  return (request: OperationRequest): AuthorizationCheck[] => {
    const { arn, role } = namedRole(request);
    const context = {
      ...resourceTags(fromIamTags(role?.tags ?? []), true),
      ...boundaryKey(role?.permissionsBoundaryArn),
      ...extra(request),
    };
    return [{ action, resource: arn, context }];
  };
}

function onUser(action: string) {
  return (request: OperationRequest): AuthorizationCheck[] => {
    const { arn, user } = namedUser(request);
    return [{ action, resource: arn, context: resourceTags(fromIamTags(user?.tags ?? []), true) }];
  };
}

function onPolicy(action: string) {
  return (request: OperationRequest): AuthorizationCheck[] => {
    const arn = request.params.PolicyArn ?? "";
    return [{ action, resource: arn, context: resourceTags(fromIamTags(request.state.iam.policies.get(arn)?.tags ?? [])) }];
  };
}

function onOidcProvider(action: string) {
  return (request: OperationRequest): AuthorizationCheck[] => {
    const arn = request.params.OpenIDConnectProviderArn ?? "";
    return [{ action, resource: arn, context: resourceTags(fromIamTags(request.state.iam.oidcProviders.get(arn)?.tags ?? [])) }];
  };
}

/** A create: the create action with the tags sent, and the tagging action too when there are any (tag-on-create). */
function creating(
  action: string,
  tagAction: string,
  resource: string,
  tags: Array<{ key: string; value: string }>,
  context: ContextValues = {},
): AuthorizationCheck[] {
  const checks: AuthorizationCheck[] = [{ action, resource, context: { ...requestTags(tags), ...context } }];
  if (tags.length > 0) checks.push({ action: tagAction, resource, context: requestTags(tags) });
  return checks;
}

const listAll = (action: string) => (): AuthorizationCheck[] => [{ action, resource: "*", context: {} }];

const IAM: Record<string, OperationAuthorization> = {
  CreateRole: {
    checks: (r) => {
      const arn = iamArn(r, "role", r.params.Path ?? "/", r.params.RoleName ?? "");
      return creating("iam:CreateRole", "iam:TagRole", arn, iamTagsSent(r), boundaryKey(r.params.PermissionsBoundary));
    },
  },
  GetRole: { checks: onRole("iam:GetRole") },
  ListRoles: { checks: listAll("iam:ListRoles") },
  DeleteRole: { checks: onRole("iam:DeleteRole") },
  UpdateAssumeRolePolicy: { checks: onRole("iam:UpdateAssumeRolePolicy") },
  // The boundary the request sets, not the one the role carries now.
  PutRolePermissionsBoundary: { checks: onRole("iam:PutRolePermissionsBoundary", (r) => boundaryKey(r.params.PermissionsBoundary)) },
  DeleteRolePermissionsBoundary: { checks: onRole("iam:DeleteRolePermissionsBoundary") },
  TagRole: { checks: onRole("iam:TagRole", (r) => requestTags(iamTagsSent(r))) },
  UntagRole: { checks: onRole("iam:UntagRole", (r) => ({ "aws:TagKeys": memberList(r.params, "TagKeys") })) },
  ListRoleTags: { checks: onRole("iam:ListRoleTags") },
  PutRolePolicy: { checks: onRole("iam:PutRolePolicy") },
  GetRolePolicy: { checks: onRole("iam:GetRolePolicy") },
  DeleteRolePolicy: { checks: onRole("iam:DeleteRolePolicy") },
  ListRolePolicies: { checks: onRole("iam:ListRolePolicies") },
  AttachRolePolicy: { checks: onRole("iam:AttachRolePolicy", (r) => ({ "iam:PolicyARN": r.params.PolicyArn ?? "" })) },
  DetachRolePolicy: { checks: onRole("iam:DetachRolePolicy", (r) => ({ "iam:PolicyARN": r.params.PolicyArn ?? "" })) },
  ListAttachedRolePolicies: { checks: onRole("iam:ListAttachedRolePolicies") },
  CreatePolicy: {
    checks: (r) =>
      creating("iam:CreatePolicy", "iam:TagPolicy", iamArn(r, "policy", r.params.Path ?? "/", r.params.PolicyName ?? ""), iamTagsSent(r)),
  },
  GetPolicy: { checks: onPolicy("iam:GetPolicy") },
  DeletePolicy: { checks: onPolicy("iam:DeletePolicy") },
  CreateUser: {
    checks: (r) =>
      creating(
        "iam:CreateUser",
        "iam:TagUser",
        iamArn(r, "user", r.params.Path ?? "/", r.params.UserName ?? ""),
        iamTagsSent(r),
        boundaryKey(r.params.PermissionsBoundary),
      ),
  },
  GetUser: { checks: onUser("iam:GetUser") },
  DeleteUser: { checks: onUser("iam:DeleteUser") },
  TagUser: { checks: (r) => onUser("iam:TagUser")(r).map((c) => ({ ...c, context: { ...c.context, ...requestTags(iamTagsSent(r)) } })) },
  ListUserTags: { checks: onUser("iam:ListUserTags") },
  CreateOpenIDConnectProvider: {
    checks: (r) =>
      creating(
        "iam:CreateOpenIDConnectProvider",
        "iam:TagOpenIDConnectProvider",
        oidcProviderArn(r.state.accountId, r.params.Url ?? ""),
        iamTagsSent(r),
      ),
  },
  GetOpenIDConnectProvider: { checks: onOidcProvider("iam:GetOpenIDConnectProvider") },
  ListOpenIDConnectProviders: { checks: listAll("iam:ListOpenIDConnectProviders") },
  DeleteOpenIDConnectProvider: { checks: onOidcProvider("iam:DeleteOpenIDConnectProvider") },
};

// ---------------------------------------------------------------- STS

/** sts:AssumeRole: the caller's identity policies and the role's trust policy, with the external id and session name. */
function assumeRoleChecks(r: OperationRequest): AuthorizationCheck[] {
  const roleArn = r.params.RoleArn ?? "";
  const ref = iamEntityByArn(r.state, roleArn);
  const role = ref?.kind === "role" && entityVisibility(ref.entity, roleArn, Date.now()) === "visible" ? ref.entity : undefined;
  const context: ContextValues = { ...resourceTags(fromIamTags(role?.tags ?? []), true) };
  if (r.params.ExternalId !== undefined) context["sts:ExternalId"] = r.params.ExternalId;
  if (r.params.RoleSessionName !== undefined) context["sts:RoleSessionName"] = r.params.RoleSessionName;
  return [{ action: "sts:AssumeRole", resource: roleArn, context, ...(role ? { resourcePolicy: role.assumeRolePolicyDocument } : {}) }];
}

const STS: Record<string, OperationAuthorization> = {
  // Always allowed (iam-simulate knows: no policy can deny it).
  GetCallerIdentity: { checks: listAll("sts:GetCallerIdentity") },
  AssumeRole: { checks: assumeRoleChecks },
  AssumeRoleWithWebIdentity: {
    anonymous: "unsigned, as on AWS: the token's signature, issuer, audience and the role's trust policy are checked by sts-emulator.ts",
  },
};

// ---------------------------------------------------------------- EKS

function clusterOf(r: OperationRequest): EksCluster | undefined {
  return r.state.eks.clusters.get(clusterKey(r.region, r.labels.name ?? ""));
}

function clusterArn(r: OperationRequest): string {
  return clusterOf(r)?.arn ?? `arn:aws:eks:${r.region}:${r.state.accountId}:cluster/${r.labels.name ?? ""}`;
}

const onCluster =
  (action: string) =>
  (r: OperationRequest): AuthorizationCheck[] => [
    { action, resource: clusterArn(r), context: resourceTags(fromTagMap(clusterOf(r)?.tags ?? {})) },
  ];

/** The ARN EKS gives an access entry for `principalArn` (`.../<role|user>/<account>/<name>/<uuid>`); a new uuid when none exists yet. */
function accessEntryArn(r: OperationRequest, principalArn: string): string {
  const existing = clusterOf(r)?.accessEntries.get(principalArn);
  if (existing) return existing.accessEntryArn;
  const principal = parseArn(principalArn);
  const resource = principal?.resource ?? "";
  const kind = resource.startsWith("user/") ? "user" : "role";
  const name = resource.slice(resource.lastIndexOf("/") + 1);
  const identity = `${kind}/${principal?.accountId ?? r.state.accountId}/${name}`;
  return `arn:aws:eks:${r.region}:${r.state.accountId}:access-entry/${r.labels.name ?? ""}/${identity}/${randomUUID()}`;
}

/** The access-entry keys: of the stored entry, or of the one the request creates. */
function accessEntryKeys(principalArn: string, type: string, groups: string[], username: string | undefined): ContextValues {
  return {
    "eks:principalArn": principalArn,
    "eks:accessEntryType": type,
    "eks:kubernetesGroups": groups,
    ...(username !== undefined ? { "eks:username": username } : {}),
  };
}

const onAccessEntry =
  (action: string, extra: (r: OperationRequest) => ContextValues = () => ({})) =>
  (r: OperationRequest): AuthorizationCheck[] => {
    const principalArn = r.labels.principalArn ?? "";
    const entry = clusterOf(r)?.accessEntries.get(principalArn);
    const keys = entry ? accessEntryKeys(entry.principalArn, entry.type, entry.kubernetesGroups, entry.username) : {};
    return [
      {
        action,
        resource: accessEntryArn(r, principalArn),
        context: { ...resourceTags(fromTagMap(entry?.tags ?? {})), ...keys, ...extra(r) },
      },
    ];
  };

function accessPolicyKeys(r: OperationRequest): ContextValues {
  const entry = clusterOf(r)?.accessEntries.get(r.labels.principalArn ?? "");
  const policyArn = text(r.body.policyArn) ?? r.labels.policyArn ?? "";
  const scope = (r.body.accessScope ?? entry?.accessPolicies.get(policyArn)?.accessScope) as
    | { type?: unknown; namespaces?: unknown }
    | undefined;
  const context: ContextValues = { "eks:policyArn": policyArn };
  if (typeof scope?.type === "string") context["eks:accessScope"] = scope.type;
  if (stringList(scope?.namespaces).length) context["eks:namespaces"] = stringList(scope?.namespaces);
  return context;
}

function createAccessEntryChecks(r: OperationRequest): AuthorizationCheck[] {
  const principalArn = text(r.body.principalArn) ?? "";
  const keys = accessEntryKeys(principalArn, text(r.body.type) ?? "STANDARD", stringList(r.body.kubernetesGroups), text(r.body.username));
  const tags = eksTagsSent(r);
  const checks: AuthorizationCheck[] = [
    { action: "eks:CreateAccessEntry", resource: clusterArn(r), context: { ...requestTags(tags), ...keys } },
  ];
  if (tags.length > 0) checks.push({ action: "eks:TagResource", resource: accessEntryArn(r, principalArn), context: requestTags(tags) });
  return checks;
}

function associationArn(r: OperationRequest, id: string): string {
  return (
    clusterOf(r)?.podIdentityAssociations.get(id)?.associationArn ??
    `arn:aws:eks:${r.region}:${r.state.accountId}:podidentityassociation/${r.labels.name ?? ""}/${id}`
  );
}

/** EKS Pod Identity hands the role to its agent: iam:PassRole to pods.eks.amazonaws.com. */
function passRoleToPodIdentity(roleArn: string): AuthorizationCheck {
  return { action: "iam:PassRole", resource: roleArn, context: { "iam:PassedToService": POD_IDENTITY_SERVICE_PRINCIPAL } };
}

function createAssociationChecks(r: OperationRequest): AuthorizationCheck[] {
  const tags = eksTagsSent(r);
  const checks: AuthorizationCheck[] = [
    { action: "eks:CreatePodIdentityAssociation", resource: clusterArn(r), context: requestTags(tags) },
  ];
  checks.push(passRoleToPodIdentity(text(r.body.roleArn) ?? ""));
  // The association's id is drawn when it is created: the check is on an ARN of the same form.
  if (tags.length > 0) checks.push({ action: "eks:TagResource", resource: associationArn(r, associationId()), context: requestTags(tags) });
  return checks;
}

const onAssociation =
  (action: string) =>
  (r: OperationRequest): AuthorizationCheck[] => {
    const id = r.labels.associationId ?? "";
    const tags = clusterOf(r)?.podIdentityAssociations.get(id)?.tags ?? {};
    const checks: AuthorizationCheck[] = [{ action, resource: associationArn(r, id), context: resourceTags(fromTagMap(tags)) }];
    const roleArn = text(r.body.roleArn);
    if (action === "eks:UpdatePodIdentityAssociation" && roleArn) checks.push(passRoleToPodIdentity(roleArn));
    return checks;
  };

/** The tags stored on the EKS resource an ARN names (cluster, access entry, Pod Identity association). */
function eksResourceTags(state: AwsState, arn: string): Record<string, string> {
  const parsed = parseArn(arn);
  const [kind, clusterName, id] = (parsed?.resource ?? "").split("/");
  const owner = state.eks.clusters.get(clusterKey(parsed?.region ?? "", clusterName ?? ""));
  if (!owner) return {};
  if (kind === "cluster") return owner.tags;
  if (kind === "access-entry") return [...owner.accessEntries.values()].find((e) => e.accessEntryArn === arn)?.tags ?? {};
  if (kind === "podidentityassociation") return owner.podIdentityAssociations.get(id ?? "")?.tags ?? {};
  return {};
}

const onTaggedResource =
  (action: string, extra: (r: OperationRequest) => ContextValues = () => ({})) =>
  (r: OperationRequest): AuthorizationCheck[] => {
    const arn = r.labels.resourceArn ?? "";
    return [{ action, resource: arn, context: { ...resourceTags(fromTagMap(eksResourceTags(r.state, arn))), ...extra(r) } }];
  };

function untagKeys(r: OperationRequest): ContextValues {
  const raw = r.query.tagKeys;
  return { "aws:TagKeys": raw === undefined ? [] : Array.isArray(raw) ? raw : [raw] };
}

const EKS: Record<string, OperationAuthorization> = {
  ListClusters: { checks: listAll("eks:ListClusters") },
  DescribeCluster: { checks: onCluster("eks:DescribeCluster") },
  CreateAccessEntry: { checks: createAccessEntryChecks },
  ListAccessEntries: { checks: onCluster("eks:ListAccessEntries") },
  DescribeAccessEntry: { checks: onAccessEntry("eks:DescribeAccessEntry") },
  UpdateAccessEntry: { checks: onAccessEntry("eks:UpdateAccessEntry") },
  DeleteAccessEntry: { checks: onAccessEntry("eks:DeleteAccessEntry") },
  ListAssociatedAccessPolicies: { checks: onAccessEntry("eks:ListAssociatedAccessPolicies") },
  AssociateAccessPolicy: { checks: onAccessEntry("eks:AssociateAccessPolicy", accessPolicyKeys) },
  DisassociateAccessPolicy: { checks: onAccessEntry("eks:DisassociateAccessPolicy", accessPolicyKeys) },
  ListAccessPolicies: { checks: listAll("eks:ListAccessPolicies") },
  CreatePodIdentityAssociation: { checks: createAssociationChecks },
  ListPodIdentityAssociations: { checks: onCluster("eks:ListPodIdentityAssociations") },
  DescribePodIdentityAssociation: { checks: onAssociation("eks:DescribePodIdentityAssociation") },
  UpdatePodIdentityAssociation: { checks: onAssociation("eks:UpdatePodIdentityAssociation") },
  DeletePodIdentityAssociation: { checks: onAssociation("eks:DeletePodIdentityAssociation") },
  ListTagsForResource: { checks: onTaggedResource("eks:ListTagsForResource") },
  TagResource: { checks: onTaggedResource("eks:TagResource", (r) => requestTags(eksTagsSent(r))) },
  UntagResource: { checks: onTaggedResource("eks:UntagResource", untagKeys) },
};

// ---------------------------------------------------------------- EventBridge

/** events:PutEvents on each bus the entries name, once for each source and detail type sent there. */
function putEventsChecks(r: OperationRequest): AuthorizationCheck[] {
  const entries = Array.isArray(r.body.Entries) ? (r.body.Entries as Array<Record<string, unknown>>) : [];
  const checks = new Map<string, AuthorizationCheck>();
  for (const entry of entries.length ? entries : [{}]) {
    const resource = `arn:aws:events:${r.region}:${r.state.accountId}:event-bus/${busName(entry?.EventBusName)}`;
    const context: ContextValues = {};
    if (typeof entry?.Source === "string") context["events:source"] = entry.Source;
    if (typeof entry?.DetailType === "string") context["events:detail-type"] = entry.DetailType;
    checks.set(JSON.stringify([resource, context]), { action: "events:PutEvents", resource, context });
  }
  return [...checks.values()];
}

const EVENTS: Record<string, OperationAuthorization> = {
  PutEvents: { checks: putEventsChecks },
};

// ---------------------------------------------------------------- the table

/** `<service>:<Operation>` → how it is authorized. */
export const OPERATION_AUTHORIZATION: Readonly<Record<string, OperationAuthorization>> = Object.fromEntries(
  Object.entries({ iam: IAM, sts: STS, eks: EKS, events: EVENTS }).flatMap(([service, table]) =>
    Object.entries(table).map(([op, entry]) => [`${service}:${op}`, entry]),
  ),
);

/** Every `<service>:<Operation>` the emulator's handlers answer. */
export const SERVED_OPERATIONS: readonly string[] = [
  ...IAM_OPERATIONS.map((op) => `iam:${op}`),
  ...STS_OPERATIONS.map((op) => `sts:${op}`),
  ...EKS_OPERATIONS.map((op) => `eks:${op}`),
  ...EVENTS_OPERATIONS.map((op) => `events:${op}`),
];
