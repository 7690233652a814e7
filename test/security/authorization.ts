/**
 * What AWS authorizes for an SDK call, and the decision `@cloud-copilot/iam-simulate` (AGPL: a devDependency, tests
 * only) reaches on it against a Lambda's identity policies.
 *
 * The requests are built from what the steps really send: `requestsOf` reads the commands recorded by the
 * aws-sdk-client-mock fakes, in the order they were sent, and derives the action, the resource ARN (a role's with
 * its path) and the context keys the way IAM and EKS do: `aws:RequestTag/*` and `aws:TagKeys` from the tags sent,
 * `aws:ResourceTag/*` and `iam:PermissionsBoundary` from the resource as the earlier calls left it, tag-on-create
 * (`iam:TagRole`, `eks:TagResource`) beside a create that carries tags, `iam:PassRole` with `iam:PassedToService`
 * beside a Pod Identity association that names a role. The registry's DynamoDB calls are authorized on the table (or
 * the index a Query names), Step Functions' on the state machine or execution they name, PutEvents on each entry's
 * bus, AssumeRole on the role.
 */
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { POD_IDENTITY_SERVICE_PRINCIPAL } from "../../functions/lib/domain/policies.js";
import { ACCOUNT, type LambdaIdentity, REGION } from "./stack-policies.js";

export type Context = Record<string, string | string[]>;

/** One decision a call needs: `action` on `resource`, with the context keys the call carries. */
export interface AuthorizationRequest {
  action: string;
  resource: string;
  context: Context;
}

export type Decision = "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";

export class SimulationRefused extends Error {
  constructor(request: AuthorizationRequest, detail: string) {
    super(`iam-simulate refused ${request.action} on ${request.resource}: ${detail}`);
    this.name = "SimulationRefused";
  }
}

/**
 * The decision on `request` for the Lambda's identity policies. A context key the simulator does not know for the
 * action would be dropped silently (and a denial then prove nothing), so one is an error here.
 */
export async function decide(lambda: LambdaIdentity, request: AuthorizationRequest): Promise<Decision> {
  const result = await runSimulation(
    {
      request: {
        principal: lambda.roleArn,
        action: request.action,
        resource: { resource: request.resource, accountId: ACCOUNT },
        contextVariables: request.context,
      },
      identityPolicies: lambda.policies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    {},
  );
  if (result.resultType === "error") throw new SimulationRefused(request, JSON.stringify(result.errors));
  const ignored =
    result.resultType === "single" ? (result.result.ignoredContextKeys ?? []) : result.results.flatMap((r) => r.ignoredContextKeys ?? []);
  if (ignored.length) throw new SimulationRefused(request, `context keys not valid for the action: ${ignored.join(", ")}`);
  return result.overallResult as Decision;
}

// ---------------------------------------------------------------- context keys

type Tags = Record<string, string>;

export function requestTags(tags: Tags): Context {
  return {
    ...Object.fromEntries(Object.entries(tags).map(([key, value]) => [`aws:RequestTag/${key}`, value])),
    "aws:TagKeys": Object.keys(tags),
  };
}

export function resourceTags(tags: Tags): Context {
  return Object.fromEntries(Object.entries(tags).map(([key, value]) => [`aws:ResourceTag/${key}`, value]));
}

function tagRecord(tags: Array<{ Key?: string; Value?: string }> | Tags | undefined): Tags {
  if (!tags) return {};
  if (Array.isArray(tags)) return Object.fromEntries(tags.map((t) => [t.Key ?? "", t.Value ?? ""]));
  return tags;
}

// ---------------------------------------------------------------- the account as the calls leave it

/** A role as IAM would evaluate it: its ARN (path included), tags and boundary. */
export interface RoleState {
  path: string;
  tags: Tags;
  boundary?: string;
}

/** Roles and Pod Identity associations that exist before the recorded calls (what the test seeded), then as they leave them. */
export interface AccountModel {
  roles: Map<string, RoleState>;
  associations: Map<string, Tags>;
}

export function accountModel(roles: Record<string, RoleState> = {}, associations: Record<string, Tags> = {}): AccountModel {
  return { roles: new Map(Object.entries(roles)), associations: new Map(Object.entries(associations)) };
}

export function roleArn(name: string, path = "/"): string {
  return `arn:aws:iam::${ACCOUNT}:role${path}${name}`;
}

const clusterArn = (cluster: string) => `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/${cluster}`;
const associationArn = (cluster: string, id: string) => `arn:aws:eks:${REGION}:${ACCOUNT}:podidentityassociation/${cluster}/${id}`;
/** EKS names an access entry `access-entry/<cluster>/<type>/<account>/<name>/<uuid>`. */
function accessEntryArn(cluster: string, principalArn: string): string {
  const name = principalArn.split("/").pop();
  return `arn:aws:eks:${REGION}:${ACCOUNT}:access-entry/${cluster}/role/${ACCOUNT}/${name}/0ac8b1f0-1111-2222-3333-444455556666`;
}

// ---------------------------------------------------------------- commands → requests

type Input = Record<string, any>;

/** A call on an existing role: its ARN with its path, its tags, and (where IAM supplies it) its boundary. */
function onRole(model: AccountModel, action: string, input: Input, withBoundary = false, extra: Context = {}): AuthorizationRequest {
  const role = model.roles.get(input.RoleName);
  const context: Context = { ...resourceTags(role?.tags ?? {}), ...extra };
  if (withBoundary && role?.boundary) context["iam:PermissionsBoundary"] = role.boundary;
  return { action, resource: roleArn(input.RoleName, role?.path), context };
}

function iamRequests(model: AccountModel, command: string, input: Input): AuthorizationRequest[] {
  switch (command) {
    case "GetRole":
    case "GetRolePolicy":
    case "ListRolePolicies":
    case "ListAttachedRolePolicies":
      return [{ ...onRole(model, `iam:${command}`, input), context: {} }];
    case "GetUser":
      return [{ action: "iam:GetUser", resource: `arn:aws:iam::${ACCOUNT}:user/${input.UserName}`, context: {} }];
    case "ListOpenIDConnectProviders":
      return [{ action: "iam:ListOpenIDConnectProviders", resource: "*", context: {} }];
    case "CreateRole": {
      const tags = tagRecord(input.Tags);
      const resource = roleArn(input.RoleName, input.Path ?? "/");
      const boundary: Context = input.PermissionsBoundary ? { "iam:PermissionsBoundary": input.PermissionsBoundary } : {};
      model.roles.set(input.RoleName, { path: input.Path ?? "/", tags, boundary: input.PermissionsBoundary });
      const tagging = Object.keys(tags).length ? [{ action: "iam:TagRole", resource, context: requestTags(tags) }] : [];
      return [{ action: "iam:CreateRole", resource, context: { ...requestTags(tags), ...boundary } }, ...tagging];
    }
    case "PutRolePermissionsBoundary": {
      const request = onRole(model, "iam:PutRolePermissionsBoundary", input, false, {
        "iam:PermissionsBoundary": input.PermissionsBoundary,
      });
      model.roles.get(input.RoleName)!.boundary = input.PermissionsBoundary;
      return [request];
    }
    case "PutRolePolicy":
    case "DeleteRolePolicy":
      return [onRole(model, `iam:${command}`, input, true)];
    case "DetachRolePolicy":
      return [onRole(model, "iam:DetachRolePolicy", input, true, { "iam:PolicyARN": input.PolicyArn })];
    case "UpdateAssumeRolePolicy":
      return [onRole(model, "iam:UpdateAssumeRolePolicy", input)];
    case "DeleteRole": {
      const request = onRole(model, "iam:DeleteRole", input);
      model.roles.delete(input.RoleName);
      return [request];
    }
    default:
      throw new Error(`test/security does not know what IAM authorizes for ${command}: add it to authorization.ts`);
  }
}

function passRole(roleArnSent: string | undefined): AuthorizationRequest[] {
  if (!roleArnSent) return [];
  return [{ action: "iam:PassRole", resource: roleArnSent, context: { "iam:PassedToService": POD_IDENTITY_SERVICE_PRINCIPAL } }];
}

function eksRequests(model: AccountModel, command: string, input: Input, output: Input | undefined): AuthorizationRequest[] {
  const owned = (id: string) => resourceTags(model.associations.get(id) ?? {});
  switch (command) {
    case "DescribeCluster":
    case "ListPodIdentityAssociations":
    case "ListAccessEntries":
      return [{ action: `eks:${command}`, resource: clusterArn(input.clusterName ?? input.name), context: {} }];
    case "DescribePodIdentityAssociation":
      return [
        { action: "eks:DescribePodIdentityAssociation", resource: associationArn(input.clusterName, input.associationId), context: {} },
      ];
    case "CreatePodIdentityAssociation": {
      const tags = tagRecord(input.tags);
      const id = output?.association?.associationId ?? "a-new";
      model.associations.set(id, tags);
      return [
        { action: "eks:CreatePodIdentityAssociation", resource: clusterArn(input.clusterName), context: requestTags(tags) },
        { action: "eks:TagResource", resource: associationArn(input.clusterName, id), context: requestTags(tags) },
        ...passRole(input.roleArn),
      ];
    }
    case "UpdatePodIdentityAssociation":
      return [
        {
          action: "eks:UpdatePodIdentityAssociation",
          resource: associationArn(input.clusterName, input.associationId),
          context: owned(input.associationId),
        },
        ...passRole(input.roleArn),
      ];
    case "DeletePodIdentityAssociation":
      return [
        {
          action: "eks:DeletePodIdentityAssociation",
          resource: associationArn(input.clusterName, input.associationId),
          context: owned(input.associationId),
        },
      ];
    case "CreateAccessEntry": {
      const tags = tagRecord(input.tags);
      model.associations.set(`entry:${input.principalArn}`, tags);
      const entry = accessEntryArn(input.clusterName, input.principalArn);
      return [
        { action: "eks:CreateAccessEntry", resource: clusterArn(input.clusterName), context: requestTags(tags) },
        { action: "eks:TagResource", resource: entry, context: requestTags(tags) },
      ];
    }
    case "DescribeAccessEntry":
    case "ListAssociatedAccessPolicies":
      return [{ action: `eks:${command}`, resource: accessEntryArn(input.clusterName, input.principalArn), context: {} }];
    case "UpdateAccessEntry":
    case "DeleteAccessEntry":
      return [
        {
          action: `eks:${command}`,
          resource: accessEntryArn(input.clusterName, input.principalArn),
          context: owned(`entry:${input.principalArn}`),
        },
      ];
    default:
      throw new Error(`test/security does not know what EKS authorizes for ${command}: add it to authorization.ts`);
  }
}

/** DynamoDB authorizes an item or query call on the table, or on the index a Query names. */
function dynamodbRequests(command: string, input: Input): AuthorizationRequest[] {
  const table = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${input.TableName}`;
  switch (command) {
    case "GetItem":
    case "PutItem":
    case "UpdateItem":
    case "DeleteItem":
      return [{ action: `dynamodb:${command}`, resource: table, context: {} }];
    case "Query":
      return [{ action: "dynamodb:Query", resource: input.IndexName ? `${table}/index/${input.IndexName}` : table, context: {} }];
    default:
      throw new Error(`test/security does not know what DynamoDB authorizes for ${command}: add it to authorization.ts`);
  }
}

/** Step Functions: state machine actions on the state machine, execution actions on the execution. */
function statesRequests(command: string, input: Input): AuthorizationRequest[] {
  switch (command) {
    case "StartExecution":
    case "ListExecutions":
      return [{ action: `states:${command}`, resource: input.stateMachineArn, context: {} }];
    case "DescribeExecution":
    case "GetExecutionHistory":
    case "StopExecution":
      return [{ action: `states:${command}`, resource: input.executionArn, context: {} }];
    default:
      throw new Error(`test/security does not know what Step Functions authorizes for ${command}: add it to authorization.ts`);
  }
}

/** The ARN of the bus an event goes to: its EventBusName (a name or an ARN), else the account's default bus. */
export function eventBusArn(nameOrArn: string | undefined): string {
  if (nameOrArn?.startsWith("arn:")) return nameOrArn;
  return `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${nameOrArn ?? "default"}`;
}

/** EventBridge authorizes PutEvents on each entry's bus; STS AssumeRole on the role. */
function eventsAndStsRequests(command: string, input: Input): AuthorizationRequest[] {
  switch (command) {
    case "PutEvents": {
      const buses = new Set<string>((input.Entries ?? []).map((entry: Input) => eventBusArn(entry.EventBusName)));
      return [...buses].map((resource) => ({ action: "events:PutEvents", resource, context: {} }));
    }
    case "AssumeRole":
      return [{ action: "sts:AssumeRole", resource: input.RoleArn, context: {} }];
    default:
      throw new Error(`test/security does not know what EventBridge or STS authorizes for ${command}: add it to authorization.ts`);
  }
}

/** A call recorded by an aws-sdk-client-mock stub (a sinon call: its command, when it was made, what it returned). */
export interface RecordedCall {
  args: [{ constructor: { name: string }; input: Input }];
  callId: number;
  returnValue?: unknown;
}

/**
 * The authorization requests of the recorded calls, in the order they were made (across clients). `model` holds
 * the roles and associations that existed before them; it is brought up to date call by call.
 */
export async function requestsOf(calls: RecordedCall[], model: AccountModel): Promise<AuthorizationRequest[]> {
  const requests: AuthorizationRequest[] = [];
  for (const call of [...calls].sort((a, b) => a.callId - b.callId)) {
    const [command] = call.args;
    const name = command.constructor.name.replace(/Command$/, "");
    const output = (await Promise.resolve(call.returnValue).catch(() => undefined)) as Input | undefined;
    requests.push(...requestsOfCommand(model, name, command.input, output));
  }
  return requests;
}

function requestsOfCommand(model: AccountModel, name: string, input: Input, output: Input | undefined): AuthorizationRequest[] {
  switch (SERVICE_OF_COMMAND[name]) {
    case "iam":
      return iamRequests(model, name, input);
    case "dynamodb":
      return dynamodbRequests(name, input);
    case "states":
      return statesRequests(name, input);
    case "events":
    case "sts":
      return eventsAndStsRequests(name, input);
    default:
      return eksRequests(model, name, input, output);
  }
}

/** The service of each command the product sends to a service other than EKS (anything else recorded is an EKS command). */
const SERVICE_OF_COMMAND: Record<string, string> = Object.fromEntries([
  ...[
    "GetRole",
    "GetRolePolicy",
    "ListRolePolicies",
    "ListAttachedRolePolicies",
    "GetUser",
    "ListOpenIDConnectProviders",
    "CreateRole",
    "PutRolePermissionsBoundary",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "DetachRolePolicy",
    "UpdateAssumeRolePolicy",
    "DeleteRole",
  ].map((name) => [name, "iam"]),
  ...["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"].map((name) => [name, "dynamodb"]),
  ...["StartExecution", "ListExecutions", "DescribeExecution", "GetExecutionHistory", "StopExecution"].map((name) => [name, "states"]),
  ["PutEvents", "events"],
  ["AssumeRole", "sts"],
]);
