/**
 * Roles for the sandbox and the tests, without going through the wire: define a role with given identity
 * policies (a product step's role, built from the same statements as the stack), then get a session of it
 * from STS. The session is issued exactly as AssumeRole issues one (the same trust evaluation, the same
 * credentials), so a step handler given those keys can do what its role allows and nothing else.
 */
import type { AwsState, IamRole, Tag } from "./account-state.js";
import { AuthorizationInputError, decide, type Principal } from "./authorizer.js";
import { newRole } from "./iam-emulator.js";
import { OPERATION_AUTHORIZATION, type OperationRequest } from "./operation-checks.js";
import { assumableRole, assumeRoleDenied, issueRoleSession, type RoleSession } from "./sts-emulator.js";

export type PolicyText = string | object;

export interface RoleDefinition {
  roleName: string;
  /** default `/` */
  path?: string;
  /** default: this account's principals may assume it (`arn:aws:iam::<account>:root`) */
  trustPolicy?: PolicyText;
  /** name → document */
  inlinePolicies?: Record<string, PolicyText>;
  /** customer managed policies of this account, or AWS managed ones (only AdministratorAccess's document is known) */
  managedPolicyArns?: string[];
  permissionsBoundaryArn?: string;
  tags?: Record<string, string>;
  description?: string;
}

export interface AssumeRoleOptions {
  /** default `sandbox` */
  sessionName?: string;
  /** assume it as this service principal (`lambda.amazonaws.com`: a Lambda's execution role); default the sandbox admin */
  service?: string;
  externalId?: string;
  durationSeconds?: number;
  /** the region the caller signs for (default the account's first cluster's, else us-east-1) */
  region?: string;
}

/** A role definition the registry cannot honour (a managed policy that does not exist). */
export class RoleDefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RoleDefinitionError";
  }
}

function policyText(policy: PolicyText): string {
  return typeof policy === "string" ? policy : JSON.stringify(policy);
}

function accountTrust(accountId: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: "sts:AssumeRole" }],
  });
}

function assertAttachable(state: AwsState, arn: string): void {
  if (arn.startsWith("arn:aws:iam::aws:policy/") || state.iam.policies.has(arn)) return;
  throw new RoleDefinitionError(`Policy ${arn} does not exist or is not attachable.`);
}

/**
 * Creates the role (or replaces the documents of the role of that name), visible at once as a long-established
 * role is. Returns the stored role.
 */
export function defineRole(state: AwsState, definition: RoleDefinition): IamRole {
  const managed = definition.managedPolicyArns ?? [];
  for (const arn of [...managed, ...(definition.permissionsBoundaryArn ? [definition.permissionsBoundaryArn] : [])])
    assertAttachable(state, arn);
  const tags: Tag[] = Object.entries(definition.tags ?? {}).map(([Key, Value]) => ({ Key, Value }));
  const existing = state.iam.roles.get(definition.roleName);
  const role =
    existing ??
    newRole(
      state,
      { roleName: definition.roleName, path: definition.path, assumeRolePolicyDocument: "", description: definition.description },
      new Date(),
      0,
    );
  role.assumeRolePolicyDocument = definition.trustPolicy === undefined ? accountTrust(state.accountId) : policyText(definition.trustPolicy);
  role.inlinePolicies = new Map(Object.entries(definition.inlinePolicies ?? {}).map(([name, doc]) => [name, policyText(doc)]));
  role.attachedPolicyArns = [...managed];
  role.permissionsBoundaryArn = definition.permissionsBoundaryArn;
  role.tags = tags;
  state.iam.roles.set(role.roleName, role);
  return role;
}

function defaultRegion(state: AwsState): string {
  return [...state.eks.clusters.values()][0]?.region ?? "us-east-1";
}

/**
 * A session of `roleArn`, issued as STS AssumeRole issues it: the trust policy must let the caller in (the
 * sandbox admin, or `service`), with the external id when the trust asks for one.
 */
export async function assumeRoleAs(
  state: AwsState,
  adminArn: string,
  roleArn: string,
  options: AssumeRoleOptions = {},
): Promise<RoleSession> {
  const sessionName = options.sessionName ?? "sandbox";
  const region = options.region ?? defaultRegion(state);
  const callerArn = options.service ?? adminArn;
  const principal: Principal = { arn: callerArn, accountId: state.accountId };
  const params: Record<string, string> = { RoleArn: roleArn, RoleSessionName: sessionName };
  if (options.externalId !== undefined) params.ExternalId = options.externalId;
  const request: OperationRequest = {
    state,
    caller: { accessKeyId: "", arn: callerArn, accountId: state.accountId, userId: "" },
    region,
    params,
    labels: {},
    body: {},
    query: {},
  };
  const entry = OPERATION_AUTHORIZATION["sts:AssumeRole"];
  if (!entry || !("checks" in entry)) throw new AuthorizationInputError("sts:AssumeRole has no authorization entry");
  for (const check of entry.checks(request)) {
    if (!(await decide(state, principal, check, region)).allowed) throw assumeRoleDenied(callerArn, roleArn);
  }
  const role = assumableRole(state, roleArn);
  if (!role) throw assumeRoleDenied(callerArn, roleArn);
  return issueRoleSession(state, role, sessionName, options.durationSeconds);
}
