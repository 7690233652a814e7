/**
 * IAM authorization for the emulated account, decided by `@cloud-copilot/iam-simulate` (AGPL: a
 * devDependency, used only by the sandbox and the tests, never bundled into a Lambda). For each check an
 * operation needs (operation-checks.ts: action, resource ARN, context keys from the request), the caller's
 * identity policies (inline and attached managed, as the account state holds them), its permissions
 * boundary, its session policy and the resource's own policy (a role's trust policy) are evaluated the way
 * AWS evaluates them: an explicit deny anywhere wins, an action no identity policy allows is implicitly
 * denied, and a boundary caps what the identity policies allow.
 *
 * The sandbox admin user has AdministratorAccess attached, so what it did before authorization existed it
 * still does; every other principal can do exactly what its policies say.
 */
import {
  getDenialReasons,
  runSimulation,
  runUnsafeSimulation,
  type RequestAnalysis,
  type Simulation,
  type SimulationIdentityPolicy,
} from "@cloud-copilot/iam-simulate";
import { parseArn } from "../../functions/lib/domain/arn.js";
import type { AwsState, IamRole, IamUser } from "./account-state.js";
import { iamEntityByArn } from "./iam-emulator.js";

export const ADMINISTRATOR_ACCESS_ARN = "arn:aws:iam::aws:policy/AdministratorAccess";

/**
 * The AWS managed policies whose documents the sandbox knows. Any other AWS managed policy (the node role's
 * worker policies, say) is attached as IAM shows it but allows nothing here.
 */
const AWS_MANAGED_POLICY_DOCUMENTS: Record<string, object> = {
  [ADMINISTRATOR_ACCESS_ARN]: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
};

/** A boundary whose document the sandbox does not know allows nothing (a statement that matches no action). */
const ALLOWS_NOTHING = { Version: "2012-10-17", Statement: [{ Effect: "Deny", NotAction: "*", Resource: "*" }] };

export type ContextValues = Record<string, string | string[]>;

/** One decision a request needs: `action` on `resource`, with the context keys the request carries. */
export interface AuthorizationCheck {
  /** `iam:CreateRole` */
  action: string;
  /** the resource ARN, or `*` for actions IAM does not scope to resources */
  resource: string;
  context: ContextValues;
  /** the resource's own policy (JSON text): a role's trust policy for sts:AssumeRole */
  resourcePolicy?: string;
}

/** Who asks: an IAM user or role ARN, an STS assumed-role session ARN, or a service principal (`lambda.amazonaws.com`). */
export interface Principal {
  arn: string;
  accountId: string;
  /** `aws:userid` (the unique id, `AROA...:session` for a session) */
  userId?: string;
  /** the session policy the session was issued with (JSON text) */
  sessionPolicy?: string;
}

export type Decision = { allowed: true } | { allowed: false; explicit: boolean; reason: string };

/** The simulator refused its input (an action it does not know, a resource ARN of no type the action takes). */
export class AuthorizationInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuthorizationInputError";
  }
}

// ---------------------------------------------------------------- the caller's policies

/** The IAM user or role behind a principal ARN (a session's role), when it is one of this account's. */
export function principalEntity(state: AwsState, arn: string): IamRole | IamUser | undefined {
  const parsed = parseArn(arn);
  if (!parsed || parsed.accountId !== state.accountId) return undefined;
  if (parsed.service === "sts" && parsed.resource.startsWith("assumed-role/"))
    return state.iam.roles.get(parsed.resource.split("/")[1] ?? "");
  const ref = iamEntityByArn(state, arn);
  return ref?.entity && ref.entity.arn === arn ? ref.entity : undefined;
}

function managedPolicyDocument(state: AwsState, arn: string): object | undefined {
  const customer = state.iam.policies.get(arn);
  return customer ? (JSON.parse(customer.document) as object) : AWS_MANAGED_POLICY_DOCUMENTS[arn];
}

/** Inline policies by name, attached managed policies by ARN (the names the denial messages show). */
function identityPolicies(state: AwsState, entity: IamRole | IamUser | undefined): SimulationIdentityPolicy[] {
  if (!entity) return [];
  const inline = [...entity.inlinePolicies].map(([name, document]) => ({ name, policy: JSON.parse(document) as object }));
  const attached = entity.attachedPolicyArns.flatMap((arn) => {
    const policy = managedPolicyDocument(state, arn);
    return policy ? [{ name: arn, policy }] : [];
  });
  return [...inline, ...attached];
}

function boundaryPolicies(state: AwsState, entity: IamRole | IamUser | undefined): SimulationIdentityPolicy[] | undefined {
  const arn = entity?.permissionsBoundaryArn;
  return arn ? [{ name: arn, policy: managedPolicyDocument(state, arn) ?? ALLOWS_NOTHING }] : undefined;
}

/** The global keys AWS adds to every request: who asks (ARN, account, id, tags), where and when. */
function globalContext(principal: Principal, entity: IamRole | IamUser | undefined, region: string): ContextValues {
  const now = new Date();
  const context: ContextValues = {
    "aws:PrincipalArn": entity?.arn ?? principal.arn,
    "aws:PrincipalAccount": principal.accountId,
    "aws:RequestedRegion": region,
    "aws:CurrentTime": now.toISOString(),
    "aws:EpochTime": String(Math.floor(now.getTime() / 1000)),
  };
  if (principal.userId) context["aws:userid"] = principal.userId;
  for (const tag of entity?.tags ?? []) context[`aws:PrincipalTag/${tag.Key}`] = tag.Value;
  return context;
}

/** AWS managed policies (`arn:aws:iam::aws:policy/...`) belong to no account: readable from every one. */
function resourceAccount(resource: string, principal: Principal): string {
  const accountId = parseArn(resource)?.accountId;
  return accountId && /^\d{12}$/.test(accountId) ? accountId : principal.accountId;
}

// ---------------------------------------------------------------- decisions

function parsePolicy(text: string | undefined): object | undefined {
  return text === undefined ? undefined : (JSON.parse(text) as object);
}

export function simulationFor(state: AwsState, principal: Principal, check: AuthorizationCheck, region: string): Simulation {
  const entity = principalEntity(state, principal.arn);
  const boundary = boundaryPolicies(state, entity);
  const resourcePolicy = parsePolicy(check.resourcePolicy);
  const sessionPolicy = parsePolicy(principal.sessionPolicy);
  return {
    request: {
      principal: principal.arn,
      action: check.action,
      resource: { resource: check.resource, accountId: resourceAccount(check.resource, principal) },
      contextVariables: { ...globalContext(principal, entity, region), ...check.context },
    },
    identityPolicies: identityPolicies(state, entity),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(boundary ? { permissionBoundaryPolicies: boundary } : {}),
    ...(resourcePolicy ? { resourcePolicy } : {}),
    ...(sessionPolicy ? { sessionPolicy } : {}),
  };
}

/** AWS's wording for why a request was denied (the tail of the AccessDenied message). */
function denialReason(action: string, analysis: RequestAnalysis): { explicit: boolean; reason: string } {
  const reasons = getDenialReasons(analysis);
  const explicit = reasons.find((r) => r.denialType === "Explicit");
  if (explicit) {
    const policy =
      explicit.denialType === "Explicit" && explicit.policyIdentifier?.startsWith("arn:") ? `: ${explicit.policyIdentifier}` : "";
    if (explicit.policyType === "pb") return { explicit: true, reason: `with an explicit deny in a permissions boundary${policy}` };
    if (explicit.policyType === "resource") return { explicit: true, reason: "with an explicit deny in a resource-based policy" };
    return { explicit: true, reason: `with an explicit deny in an identity-based policy${policy}` };
  }
  const types = new Set(reasons.map((r) => r.policyType));
  if (types.has("identity")) return { explicit: false, reason: `because no identity-based policy allows the ${action} action` };
  if (types.has("pb")) return { explicit: false, reason: `because no permissions boundary allows the ${action} action` };
  // A trust policy that does not name the caller: AWS says no more than "is not authorized".
  return { explicit: false, reason: "" };
}

/**
 * The decision for one check. Actions whose resource types iam-data does not list for that ARN (EKS lists
 * no access-entry type for ListTagsForResource) are evaluated without that validation.
 */
export async function decide(state: AwsState, principal: Principal, check: AuthorizationCheck, region: string): Promise<Decision> {
  const simulation = simulationFor(state, principal, check, region);
  const result = await runSimulation(simulation, {});
  if (result.resultType === "error") {
    if (result.errors.message !== "no.resource.types") {
      throw new AuthorizationInputError(`cannot decide ${check.action} on ${check.resource}: ${JSON.stringify(result.errors)}`);
    }
    const unchecked = runUnsafeSimulation({ ...simulation, ...withNamedResourcePolicy(simulation.resourcePolicy) }, {});
    return unchecked === "Allowed" ? { allowed: true } : { allowed: false, explicit: unchecked === "ExplicitlyDenied", reason: "" };
  }
  if (result.overallResult === "Allowed") return { allowed: true };
  const analysis = result.resultType === "single" ? result.result.analysis : result.results[0]?.analysis;
  return { allowed: false, ...(analysis ? denialReason(check.action, analysis) : { explicit: false, reason: "" }) };
}

/** `User: <arn> is not authorized to perform: <action> on resource: <arn> because ...`, as AWS words it. */
export function deniedMessage(callerArn: string, check: AuthorizationCheck, decision: Decision): string {
  const base = `User: ${callerArn} is not authorized to perform: ${check.action} on resource: ${check.resource}`;
  return decision.allowed || !decision.reason ? base : `${base} ${decision.reason}`;
}

/**
 * runUnsafeSimulation loads a resource policy without a name and then reads it (iam-simulate 0.1.173), so
 * the policy goes in pre-validated with its name (iam-policy's ValidatedPolicy shape).
 */
function withNamedResourcePolicy(policy: unknown): { resourcePolicy?: unknown } {
  return policy ? { resourcePolicy: { __validated: true, policyDocument: policy, metadata: { name: "resource-policy" }, errors: [] } } : {};
}

/**
 * Whether a role's trust policy lets a web identity in: the principal is the IAM OIDC provider, and the
 * token's claims are the `<issuer host>:sub` / `:aud` keys. iam-data knows no EKS issuer keys (their
 * provider part has slashes), so the validating simulation would drop them: they are evaluated unvalidated.
 */
export function webIdentityTrustAllows(trustPolicy: string, providerArn: string, roleArn: string, context: ContextValues): boolean {
  const accountId = parseArn(roleArn)?.accountId ?? "";
  const result = runUnsafeSimulation(
    {
      request: {
        principal: providerArn,
        action: "sts:AssumeRoleWithWebIdentity",
        resource: { resource: roleArn, accountId },
        contextVariables: context,
      },
      identityPolicies: [],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...withNamedResourcePolicy(JSON.parse(trustPolicy)),
    },
    {},
  );
  return result === "Allowed";
}
