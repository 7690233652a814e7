/**
 * The product's own Lambda roles, in the sandbox's account, as the stack deploys them: one role per step Lambda,
 * the Kubernetes-facing steps' shared KubeStepsRole, one role per HTTP API route and one for the
 * ComputeEnvironmentRequested, ComputeEnvironmentRemovalRequested, drift-check and stopped-run functions. Each role's inline policy comes from the SAME builders the stack uses
 * (stacks/permissions.ts, plain JSON: nothing of aws-cdk-lib is loaded at `npm start`), so a permission missing
 * there is missing here, and the emulator denies the call the step makes (test/infra/sandbox-roles.test.ts holds
 * these policies to the synthesized template's).
 *
 * What the stack adds beside them is left out: the AWSLambdaBasicExecutionRole managed policy and the X-Ray and
 * dead-letter statements CDK writes (CloudWatch Logs, X-Ray and SQS are not emulated).
 */
import { ALL_STEP_FUNCTIONS, type StepFunctionEntry } from "../../functions/steps/catalog.js";
import {
  API_ROUTE_STATEMENTS,
  driftCheckStatements,
  KUBE_STEP_MODULES,
  kubeStepsStatements,
  policyDocument,
  runStarterStatements,
  startTeardownStatements,
  stepFunctionStatements,
  stoppedRunStatements,
  type ApiRoute,
  type PermissionScope,
  type PolicyStatementJson,
  type StackArns,
} from "../../stacks/permissions.js";
import type { AwsEmulator } from "./aws-emulator-server.js";

/** The key of the shared role of the Kubernetes-facing steps (the stack's KubeStepsRole). */
export const KUBE_STEPS_ROLE_KEY = "KubeSteps";
/** The key of the scheduled drift check's role (the stack's DriftCheckFunction). */
export const DRIFT_CHECK_ROLE_KEY = "DriftCheck";
/** The key of the ComputeEnvironmentRequested function's role. */
export const ONBOARDING_EVENTS_ROLE_KEY = "ComputeEnvironmentRequested";
/** The removal events' Lambda (ComputeEnvironmentRemovalRequested starts the teardown). */
export const REMOVAL_EVENTS_ROLE_KEY = "ComputeEnvironmentRemovalRequested";
/** The key of the stopped-run handler's role (the stack's ExecutionStoppedFunction). */
export const EXECUTION_STOPPED_ROLE_KEY = "ExecutionStopped";
/** Every sandbox role of the product is named `<prefix><key>` (the KubeSteps role keeps its historic name). */
export const PRODUCT_ROLE_PREFIX = "nf-eks-provisioner-";
/** The sandbox's stand-in for the stack's KubeStepsRole: the identity every Kubernetes call of the steps is made as. */
export const KUBE_STEPS_ROLE_NAME = `${PRODUCT_ROLE_PREFIX}kube-steps`;

/** The trust every Lambda execution role has. */
export const LAMBDA_TRUST = {
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" }],
};

/** The ARNs the roles' statements name: the stack's, and the compensation state machine the stopped-run handler starts. */
export interface ProductRoleArns extends StackArns {
  compensationStateMachineArn: string;
}

export interface ProductRole {
  /** a step's state name (its own role), KubeSteps, an API route (`POST /provision`), or ComputeEnvironmentRequested */
  key: string;
  roleName: string;
  /** what runs as it: step state names, the route, or the events function */
  runs: string[];
  statements: PolicyStatementJson[];
}

/** A permission taken away from one role (a test's or the CLI's way to see a denial): `action` from role `role` (a key). */
export interface RemovedPermission {
  role: string;
  action: string;
}

/** A removal that names no product role, or a permission the role does not hold. */
export class UnknownPermission extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnknownPermission";
  }
}

/** `CreateIamResources=iam:TagRole` (the CLI's --remove-permission) → a RemovedPermission. */
export function parseRemovedPermission(flag: string): RemovedPermission {
  const at = flag.lastIndexOf("=");
  const role = flag.slice(0, at).trim();
  const action = flag.slice(at + 1).trim();
  if (at < 1 || !/^[a-z0-9-]+:[A-Za-z0-9*]+$/.test(action))
    throw new UnknownPermission(`--remove-permission is ROLE=service:Action (e.g. CreateIamResources=iam:TagRole), got "${flag}"`);
  return { role, action };
}

/** The role key a step runs as: its own state name, or KubeSteps for the Kubernetes-facing ones. */
export function stepRoleKey(entry: Pick<StepFunctionEntry, "module" | "state">): string {
  return KUBE_STEP_MODULES.has(entry.module) ? KUBE_STEPS_ROLE_KEY : entry.state;
}

/** `POST /provision` → `api-POST-provision` (a role name's characters). */
function routeRoleSuffix(route: string): string {
  return `api-${route.replace(/[^A-Za-z0-9]+/g, "-").replace(/-+$/, "")}`;
}

/** Every role of the product and its statements, for a deployment scope and the ARNs of what the stack creates. */
export function productRoles(scope: PermissionScope, arns: ProductRoleArns): ProductRole[] {
  // The provisioning steps and the teardown's own (statemachines/deprovision.asl.json).
  const kubeSteps = ALL_STEP_FUNCTIONS.filter((entry) => KUBE_STEP_MODULES.has(entry.module));
  const ownRoleSteps = ALL_STEP_FUNCTIONS.filter((entry) => !KUBE_STEP_MODULES.has(entry.module));
  return [
    {
      key: KUBE_STEPS_ROLE_KEY,
      roleName: KUBE_STEPS_ROLE_NAME,
      runs: kubeSteps.map((e) => e.state),
      statements: kubeStepsStatements(scope),
    },
    ...ownRoleSteps.map((entry) => ({
      key: entry.state,
      roleName: `${PRODUCT_ROLE_PREFIX}${entry.state}`,
      runs: [entry.state],
      statements: stepFunctionStatements(entry, scope, arns),
    })),
    ...(Object.keys(API_ROUTE_STATEMENTS) as ApiRoute[]).map((route) => ({
      key: route,
      roleName: `${PRODUCT_ROLE_PREFIX}${routeRoleSuffix(route)}`,
      runs: [route],
      statements: API_ROUTE_STATEMENTS[route](arns, scope),
    })),
    {
      key: ONBOARDING_EVENTS_ROLE_KEY,
      roleName: `${PRODUCT_ROLE_PREFIX}${ONBOARDING_EVENTS_ROLE_KEY}`,
      runs: [ONBOARDING_EVENTS_ROLE_KEY],
      statements: runStarterStatements(arns),
    },
    {
      key: REMOVAL_EVENTS_ROLE_KEY,
      roleName: `${PRODUCT_ROLE_PREFIX}${REMOVAL_EVENTS_ROLE_KEY}`,
      runs: [REMOVAL_EVENTS_ROLE_KEY],
      statements: startTeardownStatements(arns.deprovisionStateMachineArn, arns.registryTableArn),
    },
    {
      key: DRIFT_CHECK_ROLE_KEY,
      roleName: `${PRODUCT_ROLE_PREFIX}${DRIFT_CHECK_ROLE_KEY}`,
      runs: [DRIFT_CHECK_ROLE_KEY],
      statements: driftCheckStatements(scope, arns),
    },
    {
      key: EXECUTION_STOPPED_ROLE_KEY,
      roleName: `${PRODUCT_ROLE_PREFIX}${EXECUTION_STOPPED_ROLE_KEY}`,
      runs: [EXECUTION_STOPPED_ROLE_KEY],
      statements: stoppedRunStatements(arns),
    },
  ];
}

/** The statements without `action` (a statement left with no action is dropped). */
export function withoutAction(statements: PolicyStatementJson[], action: string): PolicyStatementJson[] {
  return statements
    .map((s) => ({ ...s, Action: s.Action.filter((a) => a.toLowerCase() !== action.toLowerCase()) }))
    .filter((s) => s.Action.length > 0);
}

/** Refuses a removal that names no role or no action a role holds (a typo would otherwise show nothing). */
function applyRemovals(roles: ProductRole[], removed: RemovedPermission[]): ProductRole[] {
  for (const { role, action } of removed) {
    const found = roles.find((r) => r.key === role || r.roleName === role);
    if (!found) throw new UnknownPermission(`no product role "${role}" (one of: ${roles.map((r) => r.key).join(", ")})`);
    if (!found.statements.some((s) => s.Action.some((a) => a.toLowerCase() === action.toLowerCase()))) {
      throw new UnknownPermission(`role ${found.key} holds no permission ${action}`);
    }
  }
  return roles.map((r) => {
    const mine = removed.filter((x) => x.role === r.key || x.role === r.roleName);
    return mine.length ? { ...r, statements: mine.reduce((statements, x) => withoutAction(statements, x.action), r.statements) } : r;
  });
}

/**
 * Creates (or redefines) every product role in the emulated account, trusted by Lambda, with its statements as
 * one inline policy, minus what `removed` takes away. Returns each role's ARN by key.
 */
export function defineProductRoles(aws: AwsEmulator, roles: ProductRole[], removed: RemovedPermission[] = []): Map<string, string> {
  return new Map(applyRemovals(roles, removed).map((role) => [role.key, defineProductRole(aws, role)]));
}

/**
 * Creates one product role, or gives an existing one these statements (a test takes a permission away mid-sandbox
 * with `withoutAction`, and puts it back); sessions already issued for it see the change at once. Returns its ARN.
 */
export function defineProductRole(aws: AwsEmulator, role: ProductRole, statements: PolicyStatementJson[] = role.statements): string {
  const policyName = `${role.key.replace(/[^\w+=,.@-]+/g, "-").replace(/-$/, "")}-permissions`;
  const inlinePolicies = statements.length ? { [policyName]: policyDocument(statements) } : {};
  const description = `the sandbox's role of ${role.runs.join(", ")}, as deployed`;
  return aws.defineRole({ roleName: role.roleName, trustPolicy: LAMBDA_TRUST, inlinePolicies, description });
}
