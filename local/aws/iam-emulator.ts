/**
 * Emulated IAM (query protocol, version 2010-05-08): roles and their inline/attached policies, tags and
 * permissions boundaries, managed policies, users, OIDC providers. Validation follows IAM where it is
 * cheap: name lengths and characters, policy JSON and grammar, principals in trust policies (including
 * the propagation delay of principals created a moment ago), delete conflicts, quotas.
 */
import { parseArn } from "../../functions/lib/domain/arn.js";
import { issuerHost, oidcProviderArn } from "../../functions/lib/domain/policies.js";
import { page } from "../paging.js";
import { AwsApiError, decodeToken, encodeToken, iamUniqueId, validationError, type AwsRequest } from "./protocol.js";
import type { AwsState, IamRole, IamUser, ManagedPolicy, OidcProvider, Tag } from "./account-state.js";
import { memberList, memberStructList, type XmlValue } from "./xml.js";

export const IAM_NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/";
export const IAM_VERSION = "2010-05-08";

/** IAM's default quotas. */
const TRUST_POLICY_MAX_CHARS = 2048;
const INLINE_POLICIES_MAX_CHARS = 10240;
const MANAGED_POLICY_MAX_CHARS = 6144;
const MAX_TAGS = 50;
const DEFAULT_MAX_ITEMS = 100;

interface IamContext {
  state: AwsState;
  request: AwsRequest;
  params: Record<string, string>;
  now: Date;
}

type IamAction = (ctx: IamContext) => Record<string, XmlValue> | undefined;

// ---------------------------------------------------------------- errors

const noSuchEntity = (message: string) => new AwsApiError("NoSuchEntity", 404, message);
const alreadyExists = (message: string) => new AwsApiError("EntityAlreadyExists", 409, message);
const deleteConflict = (message: string) => new AwsApiError("DeleteConflict", 409, message);
const malformedPolicy = (message: string) => new AwsApiError("MalformedPolicyDocument", 400, message);
const invalidInput = (message: string) => new AwsApiError("InvalidInput", 400, message);
const limitExceeded = (message: string) => new AwsApiError("LimitExceeded", 409, message);

// ---------------------------------------------------------------- parameters

/** `RoleName` → `roleName`, as IAM names members in validation messages. */
function memberName(param: string): string {
  return param[0].toLowerCase() + param.slice(1);
}

function required(ctx: IamContext, param: string): string {
  const value = ctx.params[param];
  if (value === undefined) throw validationError(memberName(param), undefined, "Member must not be null");
  return value;
}

function optional(ctx: IamContext, param: string): string | undefined {
  return ctx.params[param];
}

const NAME_PATTERN = /^[\w+=,.@-]+$/;

function validName(ctx: IamContext, param: string, max: number): string {
  const value = required(ctx, param);
  if (value.length < 1) throw validationError(memberName(param), value, "Member must have length greater than or equal to 1");
  if (value.length > max) throw validationError(memberName(param), value, `Member must have length less than or equal to ${max}`);
  if (!NAME_PATTERN.test(value))
    throw validationError(memberName(param), value, "Member must satisfy regular expression pattern: [\\w+=,.@-]+");
  return value;
}

function validPath(ctx: IamContext): string {
  const path = optional(ctx, "Path") ?? "/";
  if (!/^\/([\x21-\x7e]*\/)?$/.test(path) || path.length > 512) {
    throw validationError("path", path, "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)");
  }
  return path;
}

function tagsParam(ctx: IamContext): Tag[] {
  const tags = memberStructList(ctx.params, "Tags").map((t) => ({ Key: t.Key ?? "", Value: t.Value ?? "" }));
  for (const tag of tags) {
    if (tag.Key.length < 1 || tag.Key.length > 128) throw invalidInput(`Tag key ${JSON.stringify(tag.Key)} must be 1-128 characters.`);
    if (tag.Value.length > 256) throw invalidInput(`Tag value for key ${tag.Key} must be at most 256 characters.`);
  }
  if (new Set(tags.map((t) => t.Key.toLowerCase())).size !== tags.length)
    throw invalidInput("Duplicate tag keys found. Please note that Tag keys are case insensitive.");
  if (tags.length > MAX_TAGS) throw limitExceeded(`The number of tags has reached the maximum limit of ${MAX_TAGS}.`);
  return tags;
}

function mergeTags(current: Tag[], added: Tag[]): Tag[] {
  const merged = current.filter((t) => !added.some((a) => a.Key.toLowerCase() === t.Key.toLowerCase()));
  const result = [...merged, ...added];
  if (result.length > MAX_TAGS) throw limitExceeded(`The number of tags has reached the maximum limit of ${MAX_TAGS}.`);
  return result;
}

/** TagRole/TagUser: the request's tags merged into the entity's. */
function tagEntity(ctx: IamContext, entity: { tags: Tag[] }): undefined {
  entity.tags = mergeTags(entity.tags, tagsParam(ctx));
  return undefined;
}

/** ListRoleTags/ListUserTags. */
function listTags(ctx: IamContext, entity: { tags: Tag[] }): Record<string, XmlValue> {
  const { items, ...paging } = paged(ctx, entity.tags);
  return { Tags: items.map(tagXml), ...paging };
}

function maxItems(ctx: IamContext): number {
  const raw = optional(ctx, "MaxItems");
  if (raw === undefined) return DEFAULT_MAX_ITEMS;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 1000)
    throw validationError("maxItems", raw, "Member must have value between 1 and 1000");
  return value;
}

/** IAM pages with Marker/IsTruncated. */
function paged<T>(ctx: IamContext, items: T[]): { items: T[]; IsTruncated: boolean; Marker?: string } {
  const offset = decodeToken(optional(ctx, "Marker"), () => invalidInput("Invalid Marker."));
  const { items: slice, next } = page(items, offset, maxItems(ctx));
  return { items: slice, IsTruncated: next !== undefined, ...(next !== undefined ? { Marker: encodeToken(next) } : {}) };
}

// ---------------------------------------------------------------- policy documents

interface Statement {
  Effect?: unknown;
  Action?: unknown;
  NotAction?: unknown;
  Resource?: unknown;
  NotResource?: unknown;
  Principal?: unknown;
  NotPrincipal?: unknown;
}

/** IAM counts policy size without whitespace. */
function policySize(document: string): number {
  return document.replace(/\s+/g, "").length;
}

function parsePolicy(document: string): Statement[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(document);
  } catch {
    throw malformedPolicy("This policy contains invalid Json");
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw malformedPolicy("Syntax errors in policy.");
  const { Version, Statement } = parsed as { Version?: unknown; Statement?: unknown };
  if (Version !== undefined && Version !== "2012-10-17" && Version !== "2008-10-17")
    throw malformedPolicy("The policy failed legacy parsing");
  const statements = Array.isArray(Statement) ? Statement : Statement && typeof Statement === "object" ? [Statement] : undefined;
  if (!statements || statements.length === 0) throw malformedPolicy("Syntax errors in policy.");
  for (const statement of statements as Statement[]) {
    if (!statement || typeof statement !== "object") throw malformedPolicy("Syntax errors in policy.");
    if (statement.Effect !== "Allow" && statement.Effect !== "Deny") throw malformedPolicy("Syntax errors in policy.");
    if (statement.Action === undefined && statement.NotAction === undefined)
      throw malformedPolicy("Policy statement must contain actions.");
  }
  return statements as Statement[];
}

/** Identity policies (inline and managed): resources required, principals forbidden. */
function validateIdentityPolicy(document: string): void {
  for (const statement of parsePolicy(document)) {
    if (statement.Principal !== undefined || statement.NotPrincipal !== undefined)
      throw malformedPolicy("Policy document should not specify a principal.");
    if (statement.Resource === undefined && statement.NotResource === undefined)
      throw malformedPolicy("Policy statement must contain resources.");
  }
}

type Visibility = "visible" | "propagating" | "missing";

/** An IAM role or user ARN (`role/<path><name>`, `user/<path><name>`), and the entity of this account by that name. */
export type IamEntityRef = { name: string; path: string; accountId: string } & (
  | { kind: "role"; entity?: IamRole }
  | { kind: "user"; entity?: IamUser }
);

/**
 * Parses an IAM role or user ARN (undefined for anything else). `entity` is this account's role or user
 * of that name, if any (never another account's); it may have another path: compare its `arn` when that matters.
 */
export function iamEntityByArn(state: AwsState, arn: string): IamEntityRef | undefined {
  const parsed = parseArn(arn);
  if (parsed?.service !== "iam") return undefined;
  const { resource, accountId } = parsed;
  const kind = resource.startsWith("role/") ? "role" : resource.startsWith("user/") ? "user" : undefined;
  if (!kind) return undefined;
  const name = resource.slice(resource.lastIndexOf("/") + 1);
  const path = resource.slice(kind.length, resource.length - name.length);
  const ours = accountId === state.accountId;
  return kind === "role"
    ? { kind, name, path, accountId, entity: ours ? state.iam.roles.get(name) : undefined }
    : { kind, name, path, accountId, entity: ours ? state.iam.users.get(name) : undefined };
}

/** Whether EKS/STS (and trust policies) can see the role or user `arn` names (its entity, from iamEntityByArn) yet. */
export function entityVisibility(entity: IamRole | IamUser | undefined, arn: string, now: number): Visibility {
  if (!entity || entity.arn !== arn) return "missing";
  return now >= entity.visibleAt ? "visible" : "propagating";
}

/** Whether EKS/STS (and trust policies) can see an IAM role or user ARN of this account yet. */
function principalVisibility(state: AwsState, arn: string, now = Date.now()): Visibility {
  return entityVisibility(iamEntityByArn(state, arn)?.entity, arn, now);
}

function principalValues(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

/** Trust policies: principals required, resources forbidden, principals of this account must exist (and be visible). */
function validateTrustPolicy(state: AwsState, document: string, now: Date): void {
  if (policySize(document) > TRUST_POLICY_MAX_CHARS)
    throw limitExceeded(`Cannot exceed quota for ACLSizePerRole: ${TRUST_POLICY_MAX_CHARS}`);
  for (const statement of parsePolicy(document)) {
    if (statement.Resource !== undefined || statement.NotResource !== undefined) throw malformedPolicy("Has prohibited field Resource");
    const principal = statement.Principal ?? statement.NotPrincipal;
    if (principal === undefined) throw malformedPolicy("AssumeRolepolicy contained an invalid principal element");
    if (principal === "*") continue;
    if (typeof principal !== "object" || principal === null) throw malformedPolicy("Invalid principal in policy");
    for (const [kind, value] of Object.entries(principal as Record<string, unknown>)) {
      for (const item of principalValues(value)) {
        if (!principalExists(state, kind, item, now)) throw malformedPolicy(`Invalid principal in policy: "${kind}":"${item}"`);
      }
    }
  }
}

function principalExists(state: AwsState, kind: string, value: string, now: Date): boolean {
  if (kind === "Service" || kind === "CanonicalUser") return value.length > 0;
  if (kind === "AWS") {
    if (value === "*" || /^\d{12}$/.test(value)) return true;
    const arn = parseArn(value);
    if (arn?.service !== "iam") return false;
    if (arn.accountId !== state.accountId) return true; // another account's principals are its business
    if (arn.resource === "root") return true;
    return principalVisibility(state, value, now.getTime()) === "visible";
  }
  if (kind === "Federated") {
    const arn = parseArn(value);
    if (!arn) return value.includes("."); // web identity providers: accounts.google.com, cognito-identity.amazonaws.com
    if (arn.accountId !== state.accountId) return true;
    return arn.resource.startsWith("oidc-provider/") ? state.iam.oidcProviders.has(value) : true;
  }
  return false;
}

function validateInlinePolicies(role: IamRole, name: string, document: string): void {
  const total = [...role.inlinePolicies.entries()]
    .filter(([n]) => n !== name)
    .reduce((sum, [, doc]) => sum + policySize(doc), policySize(document));
  if (total > INLINE_POLICIES_MAX_CHARS)
    throw limitExceeded(`Maximum policy size of ${INLINE_POLICIES_MAX_CHARS} bytes exceeded for role ${role.roleName}`);
}

// ---------------------------------------------------------------- lookups

function roleNamed(ctx: IamContext, name: string): IamRole {
  const role = ctx.state.iam.roles.get(name);
  if (!role) throw noSuchEntity(`The role with name ${name} cannot be found.`);
  return role;
}

function userNamed(ctx: IamContext, name: string): IamUser {
  const user = ctx.state.iam.users.get(name);
  if (!user) throw noSuchEntity(`The user with name ${name} cannot be found.`);
  return user;
}

function isAwsManagedPolicy(arn: string): boolean {
  const parsed = parseArn(arn);
  return parsed?.service === "iam" && parsed.accountId === "aws" && parsed.resource.startsWith("policy/");
}

/** A policy that can be attached (or used as a boundary): ours, or AWS managed; else NoSuchEntity with `missing`. */
function attachablePolicy(ctx: IamContext, arn: string, missing: string): string {
  if (!parseArn(arn)) throw invalidInput(`ARN ${arn} is not valid.`);
  if (!isAwsManagedPolicy(arn) && !ctx.state.iam.policies.has(arn)) throw noSuchEntity(missing);
  return arn;
}

function boundaryPolicy(ctx: IamContext, arn: string): string {
  return attachablePolicy(ctx, arn, `Scope ARN: ${arn} does not exist or is not attachable.`);
}

/** The optional PermissionsBoundary of CreateRole/CreateUser, checked. */
function optionalBoundary(ctx: IamContext): string | undefined {
  const boundary = optional(ctx, "PermissionsBoundary");
  return boundary === undefined ? undefined : boundaryPolicy(ctx, boundary);
}

/** IAM names are case-insensitive: "Launcher" and "launcher" are the same role. */
function nameTaken(entities: Map<string, unknown>, name: string): boolean {
  return [...entities.keys()].some((taken) => taken.toLowerCase() === name.toLowerCase());
}

// ---------------------------------------------------------------- renderers

function tagXml(tag: Tag): Record<string, XmlValue> {
  return { Key: tag.Key, Value: tag.Value };
}

/** Tags as IAM renders them on an entity: left out when there are none. */
function tagsXml(tags: Tag[]): XmlValue {
  return tags.length ? tags.map(tagXml) : undefined;
}

function boundaryXml(arn: string | undefined): XmlValue {
  return arn ? { PermissionsBoundaryType: "Policy", PermissionsBoundaryArn: arn } : undefined;
}

function roleXml(role: IamRole): Record<string, XmlValue> {
  return {
    Path: role.path,
    RoleName: role.roleName,
    RoleId: role.roleId,
    Arn: role.arn,
    CreateDate: role.createDate,
    // IAM returns policy documents URL-encoded.
    AssumeRolePolicyDocument: encodeURIComponent(role.assumeRolePolicyDocument),
    Description: role.description,
    MaxSessionDuration: role.maxSessionDuration,
    PermissionsBoundary: boundaryXml(role.permissionsBoundaryArn),
    Tags: tagsXml(role.tags),
    RoleLastUsed: {},
  };
}

function userXml(user: IamUser): Record<string, XmlValue> {
  return {
    Path: user.path,
    UserName: user.userName,
    UserId: user.userId,
    Arn: user.arn,
    CreateDate: user.createDate,
    PermissionsBoundary: boundaryXml(user.permissionsBoundaryArn),
    Tags: tagsXml(user.tags),
  };
}

function attachmentCount(state: AwsState, arn: string): number {
  return [...state.iam.roles.values()].filter((r) => r.attachedPolicyArns.includes(arn)).length;
}

function boundaryUsage(state: AwsState, arn: string): number {
  return [...state.iam.roles.values(), ...state.iam.users.values()].filter((e) => e.permissionsBoundaryArn === arn).length;
}

function policyXml(state: AwsState, policy: ManagedPolicy): Record<string, XmlValue> {
  return {
    PolicyName: policy.policyName,
    PolicyId: policy.policyId,
    Arn: policy.arn,
    Path: policy.path,
    DefaultVersionId: "v1",
    AttachmentCount: attachmentCount(state, policy.arn),
    PermissionsBoundaryUsageCount: boundaryUsage(state, policy.arn),
    IsAttachable: true,
    Description: policy.description,
    CreateDate: policy.createDate,
    UpdateDate: policy.updateDate,
    Tags: tagsXml(policy.tags),
  };
}

// ---------------------------------------------------------------- builders shared with seeding

export function newRole(
  state: AwsState,
  init: {
    roleName: string;
    path?: string;
    assumeRolePolicyDocument: string;
    description?: string;
    tags?: Tag[];
    permissionsBoundaryArn?: string;
    maxSessionDuration?: number;
  },
  now: Date,
  visibleAt = now.getTime() + state.propagationDelayMs,
): IamRole {
  const path = init.path ?? "/";
  return {
    roleName: init.roleName,
    roleId: iamUniqueId("AROA"),
    arn: `arn:aws:iam::${state.accountId}:role${path}${init.roleName}`,
    path,
    createDate: now,
    visibleAt,
    assumeRolePolicyDocument: init.assumeRolePolicyDocument,
    description: init.description,
    maxSessionDuration: init.maxSessionDuration ?? 3600,
    permissionsBoundaryArn: init.permissionsBoundaryArn,
    tags: init.tags ?? [],
    inlinePolicies: new Map(),
    attachedPolicyArns: [],
  };
}

export function newUser(
  state: AwsState,
  init: { userName: string; path?: string; tags?: Tag[]; permissionsBoundaryArn?: string },
  now: Date,
  visibleAt = now.getTime() + state.propagationDelayMs,
): IamUser {
  const path = init.path ?? "/";
  return {
    userName: init.userName,
    userId: iamUniqueId("AIDA"),
    arn: `arn:aws:iam::${state.accountId}:user${path}${init.userName}`,
    path,
    createDate: now,
    visibleAt,
    permissionsBoundaryArn: init.permissionsBoundaryArn,
    tags: init.tags ?? [],
    inlinePolicies: new Map(),
    attachedPolicyArns: [],
  };
}

export function newOidcProvider(
  state: AwsState,
  init: { url: string; clientIds?: string[]; thumbprints?: string[]; tags?: Tag[] },
  now: Date,
): OidcProvider {
  return {
    arn: oidcProviderArn(state.accountId, init.url),
    url: init.url,
    clientIds: init.clientIds ?? [],
    thumbprints: init.thumbprints ?? [],
    createDate: now,
    tags: init.tags ?? [],
  };
}

// ---------------------------------------------------------------- actions

const actions: Record<string, IamAction> = {
  // ----- roles
  CreateRole(ctx) {
    const roleName = validName(ctx, "RoleName", 64);
    const path = validPath(ctx);
    const document = required(ctx, "AssumeRolePolicyDocument");
    const description = optional(ctx, "Description");
    if (description !== undefined && description.length > 1000)
      throw validationError("description", description, "Member must have length less than or equal to 1000");
    const tags = tagsParam(ctx);
    const maxSession = optional(ctx, "MaxSessionDuration");
    const maxSessionDuration = maxSession === undefined ? 3600 : Number(maxSession);
    if (!Number.isInteger(maxSessionDuration) || maxSessionDuration < 3600 || maxSessionDuration > 43200) {
      throw validationError("maxSessionDuration", maxSession, "Member must have value between 3600 and 43200");
    }
    if (nameTaken(ctx.state.iam.roles, roleName)) throw alreadyExists(`Role with name ${roleName} already exists.`);
    validateTrustPolicy(ctx.state, document, ctx.now);
    const permissionsBoundaryArn = optionalBoundary(ctx);
    const role = newRole(
      ctx.state,
      { roleName, path, assumeRolePolicyDocument: document, description, tags, maxSessionDuration, permissionsBoundaryArn },
      ctx.now,
    );
    ctx.state.iam.roles.set(roleName, role);
    return { Role: roleXml(role) };
  },

  GetRole(ctx) {
    return { Role: roleXml(roleNamed(ctx, required(ctx, "RoleName"))) };
  },

  ListRoles(ctx) {
    const prefix = optional(ctx, "PathPrefix") ?? "/";
    const roles = [...ctx.state.iam.roles.values()]
      .filter((r) => r.path.startsWith(prefix))
      .sort((a, b) => a.roleName.localeCompare(b.roleName));
    const { items, ...paging } = paged(ctx, roles);
    // ListRoles leaves out tags and boundaries, as IAM does.
    return {
      Roles: items.map((r) => ({ ...roleXml(r), Tags: undefined, PermissionsBoundary: undefined, RoleLastUsed: undefined })),
      ...paging,
    };
  },

  DeleteRole(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    if (role.inlinePolicies.size) throw deleteConflict("Cannot delete entity, must delete policies first.");
    if (role.attachedPolicyArns.length) throw deleteConflict("Cannot delete entity, must detach all policies first.");
    ctx.state.iam.roles.delete(role.roleName);
    return undefined;
  },

  UpdateAssumeRolePolicy(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const document = required(ctx, "PolicyDocument");
    validateTrustPolicy(ctx.state, document, ctx.now);
    role.assumeRolePolicyDocument = document;
    return undefined;
  },

  PutRolePermissionsBoundary(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    role.permissionsBoundaryArn = boundaryPolicy(ctx, required(ctx, "PermissionsBoundary"));
    return undefined;
  },

  DeleteRolePermissionsBoundary(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    role.permissionsBoundaryArn = undefined;
    return undefined;
  },

  TagRole: (ctx) => tagEntity(ctx, roleNamed(ctx, required(ctx, "RoleName"))),

  UntagRole(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const keys = memberList(ctx.params, "TagKeys").map((k) => k.toLowerCase());
    role.tags = role.tags.filter((t) => !keys.includes(t.Key.toLowerCase()));
    return undefined;
  },

  ListRoleTags: (ctx) => listTags(ctx, roleNamed(ctx, required(ctx, "RoleName"))),

  // ----- inline role policies
  PutRolePolicy(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const policyName = validName(ctx, "PolicyName", 128);
    const document = required(ctx, "PolicyDocument");
    validateIdentityPolicy(document);
    validateInlinePolicies(role, policyName, document);
    role.inlinePolicies.set(policyName, document);
    return undefined;
  },

  GetRolePolicy(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const policyName = required(ctx, "PolicyName");
    const document = role.inlinePolicies.get(policyName);
    if (document === undefined) throw noSuchEntity(`The role policy with name ${policyName} cannot be found.`);
    return { RoleName: role.roleName, PolicyName: policyName, PolicyDocument: encodeURIComponent(document) };
  },

  DeleteRolePolicy(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const policyName = required(ctx, "PolicyName");
    if (!role.inlinePolicies.delete(policyName)) throw noSuchEntity(`The role policy with name ${policyName} cannot be found.`);
    return undefined;
  },

  ListRolePolicies(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const { items, ...paging } = paged(ctx, [...role.inlinePolicies.keys()].sort());
    return { PolicyNames: items, ...paging };
  },

  // ----- attached (managed) role policies
  AttachRolePolicy(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const policyArn = required(ctx, "PolicyArn");
    attachablePolicy(ctx, policyArn, `Policy ${policyArn} does not exist or is not attachable.`);
    if (!role.attachedPolicyArns.includes(policyArn)) {
      if (role.attachedPolicyArns.length >= 10) throw limitExceeded("Cannot exceed quota for PoliciesPerRole: 10");
      role.attachedPolicyArns.push(policyArn);
    }
    return undefined;
  },

  DetachRolePolicy(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const policyArn = required(ctx, "PolicyArn");
    if (!role.attachedPolicyArns.includes(policyArn)) throw noSuchEntity(`Policy ${policyArn} was not found.`);
    role.attachedPolicyArns = role.attachedPolicyArns.filter((arn) => arn !== policyArn);
    return undefined;
  },

  ListAttachedRolePolicies(ctx) {
    const role = roleNamed(ctx, required(ctx, "RoleName"));
    const { items, ...paging } = paged(ctx, role.attachedPolicyArns);
    return {
      AttachedPolicies: items.map((arn) => ({ PolicyName: arn.slice(arn.lastIndexOf("/") + 1), PolicyArn: arn })),
      ...paging,
    };
  },

  // ----- managed policies
  CreatePolicy(ctx) {
    const policyName = validName(ctx, "PolicyName", 128);
    const path = validPath(ctx);
    const document = required(ctx, "PolicyDocument");
    const arn = `arn:aws:iam::${ctx.state.accountId}:policy${path}${policyName}`;
    if ([...ctx.state.iam.policies.values()].some((p) => p.policyName.toLowerCase() === policyName.toLowerCase() && p.path === path)) {
      throw alreadyExists(`A policy called ${policyName} already exists. Duplicate names are not allowed.`);
    }
    validateIdentityPolicy(document);
    if (policySize(document) > MANAGED_POLICY_MAX_CHARS)
      throw limitExceeded(`Cannot exceed quota for PolicySize: ${MANAGED_POLICY_MAX_CHARS}`);
    const policy: ManagedPolicy = {
      policyName,
      policyId: iamUniqueId("ANPA"),
      arn,
      path,
      document,
      description: optional(ctx, "Description"),
      createDate: ctx.now,
      updateDate: ctx.now,
      tags: tagsParam(ctx),
    };
    ctx.state.iam.policies.set(arn, policy);
    return { Policy: policyXml(ctx.state, policy) };
  },

  GetPolicy(ctx) {
    const arn = required(ctx, "PolicyArn");
    const policy = ctx.state.iam.policies.get(arn);
    if (!policy) throw noSuchEntity(`Policy ${arn} was not found.`);
    return { Policy: policyXml(ctx.state, policy) };
  },

  DeletePolicy(ctx) {
    const arn = required(ctx, "PolicyArn");
    if (!ctx.state.iam.policies.has(arn)) throw noSuchEntity(`Policy ${arn} was not found.`);
    if (attachmentCount(ctx.state, arn) > 0 || boundaryUsage(ctx.state, arn) > 0)
      throw deleteConflict("Cannot delete a policy attached to entities.");
    ctx.state.iam.policies.delete(arn);
    return undefined;
  },

  // ----- users
  CreateUser(ctx) {
    const userName = validName(ctx, "UserName", 64);
    const path = validPath(ctx);
    if (nameTaken(ctx.state.iam.users, userName)) throw alreadyExists(`User with name ${userName} already exists.`);
    const user = newUser(ctx.state, { userName, path, tags: tagsParam(ctx), permissionsBoundaryArn: optionalBoundary(ctx) }, ctx.now);
    ctx.state.iam.users.set(userName, user);
    return { User: userXml(user) };
  },

  GetUser(ctx) {
    const userName = optional(ctx, "UserName");
    if (userName !== undefined) return { User: userXml(userNamed(ctx, userName)) };
    // Without a name, GetUser answers for the caller, which must be a user.
    const caller = parseArn(ctx.request.caller.arn);
    if (caller?.service !== "iam" || !caller.resource.startsWith("user/")) {
      throw new AwsApiError("ValidationError", 400, "Must specify userName when calling with non-User credentials");
    }
    return { User: userXml(userNamed(ctx, caller.resource.slice(caller.resource.lastIndexOf("/") + 1))) };
  },

  DeleteUser(ctx) {
    const user = userNamed(ctx, required(ctx, "UserName"));
    const hasKeys = [...ctx.state.credentials.values()].some((c) => c.arn === user.arn);
    if (hasKeys) throw deleteConflict("Cannot delete entity, must delete access keys first.");
    ctx.state.iam.users.delete(user.userName);
    return undefined;
  },

  TagUser: (ctx) => tagEntity(ctx, userNamed(ctx, required(ctx, "UserName"))),

  ListUserTags: (ctx) => listTags(ctx, userNamed(ctx, required(ctx, "UserName"))),

  // ----- OIDC providers
  CreateOpenIDConnectProvider(ctx) {
    const url = required(ctx, "Url");
    if (!/^https:\/\/[^\s/]+/.test(url) || url.length > 255) throw invalidInput(`Invalid url: ${url}. The url must begin with https://`);
    const provider = newOidcProvider(
      ctx.state,
      {
        url,
        clientIds: memberList(ctx.params, "ClientIDList"),
        thumbprints: memberList(ctx.params, "ThumbprintList"),
        tags: tagsParam(ctx),
      },
      ctx.now,
    );
    if (ctx.state.iam.oidcProviders.has(provider.arn)) throw alreadyExists(`Provider with url ${url} already exists.`);
    ctx.state.iam.oidcProviders.set(provider.arn, provider);
    return { OpenIDConnectProviderArn: provider.arn, Tags: tagsXml(provider.tags) };
  },

  GetOpenIDConnectProvider(ctx) {
    const arn = required(ctx, "OpenIDConnectProviderArn");
    const provider = ctx.state.iam.oidcProviders.get(arn);
    if (!provider) throw noSuchEntity(`OpenIDConnect Provider not found for arn ${arn}`);
    return {
      // IAM answers the URL without its scheme.
      Url: issuerHost(provider.url),
      ClientIDList: provider.clientIds,
      ThumbprintList: provider.thumbprints,
      CreateDate: provider.createDate,
      Tags: tagsXml(provider.tags),
    };
  },

  ListOpenIDConnectProviders(ctx) {
    return { OpenIDConnectProviderList: [...ctx.state.iam.oidcProviders.keys()].sort().map((arn) => ({ Arn: arn })) };
  },

  DeleteOpenIDConnectProvider(ctx) {
    const arn = required(ctx, "OpenIDConnectProviderArn");
    if (!ctx.state.iam.oidcProviders.delete(arn)) throw noSuchEntity(`OpenIDConnect Provider not found for arn ${arn}`);
    return undefined;
  },
};

/** Every IAM action the emulator answers (each needs an authorization entry in operation-checks.ts). */
export const IAM_OPERATIONS: readonly string[] = Object.keys(actions);

export function handleIam(
  state: AwsState,
  request: AwsRequest,
  action: string,
  params: Record<string, string>,
): Record<string, XmlValue> | undefined {
  const handler = actions[action];
  if (!handler) throw new AwsApiError("InvalidAction", 400, `Could not find operation ${action} for version ${IAM_VERSION}`);
  return handler({ state, request, params, now: new Date() });
}
