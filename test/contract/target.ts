/**
 * Where the contract tests run (#13 point 7): the behaviours are written once and the target comes from the
 * environment. `TARGET=sandbox` (the default, part of `npm test`) starts the sandbox; `TARGET=aws` uses a real
 * account and cluster through the default credential chain (`CONTRACT_CLUSTER`, `CONTRACT_REGION`), only with
 * `npx vitest run --config test/contract/aws.vitest.config.ts`, never in CI.
 *
 * A contract gets from its target: the cluster as its admin (a Kubernetes client whose EKS token the product's own
 * eksBearerToken makes for the default chain's identity, the sandbox's admin there), AWS SDK clients (IAM, EKS,
 * STS) pointed at the target, and a run-scoped name prefix (`nfeks-contract-<random>`): a contract creates only
 * objects named with it and removes them in its afterAll/finally, so a real cluster is left as it was.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import { ApiException, AuthenticationV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import {
  type ContextEntry,
  CreateRoleCommand,
  IAMClient,
  SimulatePrincipalPolicyCommand,
  type CreateRoleCommandInput,
} from "@aws-sdk/client-iam";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { DescribeClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { eksBearerToken, type EksTokenOptions } from "../../functions/lib/aws/eks-token.js";
import { kubeConfigFor } from "../../functions/lib/kube/kube-client.js";
import type { AuthenticationMode, ResolvedCluster } from "../../functions/lib/workflow/workflow-state.js";
import { TEST_TIME_SCALE } from "../../local/kube/cluster-timing.js";

export type TargetName = "sandbox" | "aws";

export const TARGET: TargetName = process.env.TARGET === "aws" ? "aws" : "sandbox";

/**
 * Milliseconds on the target's clock for `realSeconds` of a real cluster: as they are on AWS, scaled by the
 * sandbox's cluster time factor (the contracts' sandbox runs at TEST_TIME_SCALE), never under 3 s there. Known
 * when the test file loads, so it can size a test's own timeout.
 */
export function clusterMs(realSeconds: number): number {
  return TARGET === "aws" ? realSeconds * 1000 : Math.max(3_000, Math.round(realSeconds * 1000 * TEST_TIME_SCALE));
}

/** A test's timeout when it waits up to `realSeconds` on the cluster (plus the target's per-call slack). */
export function testTimeout(realSeconds: number): number {
  return clusterMs(realSeconds) + (TARGET === "aws" ? 60_000 : 20_000);
}

/** What `createRoleAs` saw: the step's role may make the call, or IAM refuses it. */
export type StepDecision = "allowed" | "denied";

/** The clients a step's role calls with (the sandbox: signed as the role's Lambda session, against the emulators). */
export interface StepClients {
  iam: IAMClient;
  eks: EKSClient;
  events: EventBridgeClient;
}

/**
 * One AWS call a contract asks a step's role about: what IAM authorizes for it (the simulator's question on AWS:
 * each action on its resource with the context keys the call carries) and the call itself (made in the sandbox).
 */
export interface StepCall {
  authorizes: Array<{ action: string; resource: string; context?: ContextEntry[] }>;
  make(clients: StepClients): Promise<unknown>;
}

export interface ContractTarget {
  name: TargetName;
  /** the cluster under test, with its API endpoint, CA and authentication mode */
  cluster: Pick<ResolvedCluster, "name" | "region" | "endpoint" | "certificateAuthority"> & { authenticationMode: AuthenticationMode };
  accountId: string;
  /** `nfeks-contract-<random>`: the start of every name a contract creates (a valid DNS label and IAM name start) */
  prefix: string;
  /** IAM, EKS and STS as the default chain's identity (the sandbox: its admin, against the emulator) */
  aws: { iam: IAMClient; eks: EKSClient; sts: STSClient };
  /** the cluster as its admin: each request carries a fresh EKS token for the default chain's identity */
  admin: KubeConfig;
  /** the cluster as the admin impersonating `username` (Impersonate-User: the `impersonate` verb, which admins hold) */
  impersonating(username: string): KubeConfig;
  /** the cluster as whoever holds `credentials` (an assumed role's session, say), through an EKS token for them */
  kubeConfigAs(credentials: AwsCredentialIdentity): Promise<KubeConfig>;
  /**
   * The product's IAM settings for the per-step contract: its role-name prefix, the boundary every role it creates
   * carries, and whether a step's role may create `input` (sandbox: the call made as that step's role; aws: IAM's
   * policy simulator on the deployed step role named by CONTRACT_STEP_ROLE_ARNS). Undefined when the target cannot
   * say (aws without the stack's role ARNs).
   */
  productIam?: {
    iamPrefix: string;
    permissionsBoundaryArn: string;
    /** the product's event bus (Report puts its events there) */
    eventBusName: string;
    createRoleAs(step: string, input: CreateRoleCommandInput): Promise<StepDecision>;
    /** whether the step's role may make `call` (sandbox: made as the role; aws: the simulator on the deployed role) */
    callAs(step: string, call: StepCall): Promise<StepDecision>;
    /** why the target cannot answer for `step`'s role (aws: CONTRACT_STEP_ROLE_ARNS does not name it), else undefined */
    stepRoleMissing(step: string): string | undefined;
    /**
     * Runs `fn` with `action` taken from the step's role, then gives it back (sandbox only: a deployed role is not
     * changed by a contract).
     */
    withoutAction?<T>(step: string, action: string, fn: () => Promise<T>): Promise<T>;
  };
  /** why productIam is undefined */
  productIamMissing?: string;
  close(): Promise<void>;
}

/** `nfeks-contract-` and 6 random lowercase characters. */
export function runPrefix(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const suffix = [...randomBytes(6)].map((b) => alphabet[b % alphabet.length]).join("");
  return `nfeks-contract-${suffix}`;
}

/** A KubeConfig whose every request carries the bearer token `token()` gives (fresh ones: EKS tokens live 15 min). */
class TokenKubeConfig extends KubeConfig {
  constructor(private readonly token: () => Promise<string>) {
    super();
  }

  override async applySecurityAuthentication(context: Parameters<KubeConfig["applySecurityAuthentication"]>[0]): Promise<void> {
    await super.applySecurityAuthentication(context);
    context.setHeaderParam("Authorization", `Bearer ${await this.token()}`);
  }
}

type TargetCluster = ContractTarget["cluster"];

/** EKS tokens for `credentials` (undefined: the default chain), remade a minute before they expire. */
function tokenSource(cluster: TargetCluster, credentials?: AwsCredentialIdentityProvider): () => Promise<string> {
  let current: { token: string; expiresAt: Date } | undefined;
  return async () => {
    if (!current || current.expiresAt.getTime() - 60_000 < Date.now()) {
      current = await eksBearerToken(cluster.name, cluster.region, credentials ? { credentials } : {});
    }
    return current.token;
  };
}

function clusterKubeConfig(cluster: TargetCluster, token: () => Promise<string>, impersonateUser?: string): KubeConfig {
  const kc = new TokenKubeConfig(token);
  kc.loadFromOptions({
    clusters: [{ name: cluster.name, server: cluster.endpoint, caData: cluster.certificateAuthority, skipTLSVerify: false }],
    users: [{ name: "contract", ...(impersonateUser ? { impersonateUser } : {}) }],
    contexts: [{ name: cluster.name, cluster: cluster.name, user: "contract" }],
    currentContext: cluster.name,
  });
  return kc;
}

function kubeAccess(cluster: TargetCluster, adminCredentials?: AwsCredentialIdentityProvider) {
  const adminToken = tokenSource(cluster, adminCredentials);
  return {
    admin: clusterKubeConfig(cluster, adminToken),
    impersonating: (username: string) => clusterKubeConfig(cluster, adminToken, username),
    kubeConfigAs: async (credentials: AwsCredentialIdentity) =>
      clusterKubeConfig(
        cluster,
        tokenSource(cluster, async () => credentials),
      ),
  };
}

/**
 * CONTRACT_STEP_ROLE_ARNS (aws): the deployed step roles the per-step contract asks IAM's policy simulator about,
 * as JSON `{"CreateIamResources": "arn:aws:iam::…:role/…", "ResolveCluster": "arn:aws:iam::…:role/…"}`.
 */
export const STEP_ROLE_ARNS_ENV = "CONTRACT_STEP_ROLE_ARNS";
/** CONTRACT_PERMISSIONS_BOUNDARY_ARN (aws): the stack's TenantRoleBoundaryArn output. */
export const BOUNDARY_ARN_ENV = "CONTRACT_PERMISSIONS_BOUNDARY_ARN";
/** CONTRACT_IAM_PREFIX (aws): the stack's IAM_PREFIX (default nfeks). */
export const IAM_PREFIX_ENV = "CONTRACT_IAM_PREFIX";
/** CONTRACT_EVENT_BUS_NAME (aws): the stack's EventBusName output. */
export const EVENT_BUS_NAME_ENV = "CONTRACT_EVENT_BUS_NAME";

/** IAM's policy simulator on a deployed step role: every action of the call must be allowed. */
function simulatedCall(iam: IAMClient, roleArns: Record<string, string>) {
  return async (step: string, call: StepCall): Promise<StepDecision> => {
    const source = roleArns[step];
    if (!source) throw new Error(`${STEP_ROLE_ARNS_ENV} names no role for ${step}`);
    for (const { action, resource, context } of call.authorizes) {
      const { EvaluationResults } = await iam.send(
        new SimulatePrincipalPolicyCommand({
          PolicySourceArn: source,
          ActionNames: [action],
          ResourceArns: [resource],
          ...(context?.length ? { ContextEntries: context } : {}),
        }),
      );
      if (EvaluationResults?.[0]?.EvalDecision !== "allowed") return "denied";
    }
    return "allowed";
  };
}

/** A call refused by IAM, as the SDK throws it (AccessDenied in the query protocols, AccessDeniedException in JSON). */
function isAccessDenied(error: unknown): boolean {
  const { name, Code } = error as { name?: string; Code?: string };
  return ["AccessDenied", "AccessDeniedException"].includes(name ?? "") || Code === "AccessDenied";
}

/** The simulator's view of CreateRole: the context keys IAM supplies for the request's boundary and tags. */
function simulatedCreateRole(iam: IAMClient, roleArns: Record<string, string>, accountId: string) {
  return async (step: string, input: CreateRoleCommandInput): Promise<StepDecision> => {
    const source = roleArns[step];
    if (!source) throw new Error(`${STEP_ROLE_ARNS_ENV} names no role for ${step}`);
    const tags = input.Tags ?? [];
    const contextEntries = [
      ...(input.PermissionsBoundary
        ? [{ ContextKeyName: "iam:PermissionsBoundary", ContextKeyType: "string" as const, ContextKeyValues: [input.PermissionsBoundary] }]
        : []),
      ...tags.map((t) => ({ ContextKeyName: `aws:RequestTag/${t.Key}`, ContextKeyType: "string" as const, ContextKeyValues: [t.Value!] })),
      ...(tags.length
        ? [{ ContextKeyName: "aws:TagKeys", ContextKeyType: "stringList" as const, ContextKeyValues: tags.map((t) => t.Key!) }]
        : []),
    ];
    const resource = `arn:aws:iam::${accountId}:role${input.Path ?? "/"}${input.RoleName}`;
    const actions = ["iam:CreateRole", ...(tags.length ? ["iam:TagRole"] : [])];
    const { EvaluationResults } = await iam.send(
      new SimulatePrincipalPolicyCommand({
        PolicySourceArn: source,
        ActionNames: actions,
        ResourceArns: [resource],
        ContextEntries: contextEntries,
      }),
    );
    return (EvaluationResults ?? []).length === actions.length && EvaluationResults!.every((r) => r.EvalDecision === "allowed")
      ? "allowed"
      : "denied";
  };
}

async function openAws(): Promise<ContractTarget> {
  const name = process.env.CONTRACT_CLUSTER;
  const region = process.env.CONTRACT_REGION;
  if (!name || !region) throw new Error("TARGET=aws needs CONTRACT_CLUSTER and CONTRACT_REGION");
  const aws = { iam: new IAMClient({ region }), eks: new EKSClient({ region }), sts: new STSClient({ region }) };
  const { cluster: described } = await aws.eks.send(new DescribeClusterCommand({ name }));
  const { Account } = await aws.sts.send(new GetCallerIdentityCommand({}));
  const cluster: TargetCluster = {
    name,
    region,
    endpoint: described!.endpoint!,
    certificateAuthority: described!.certificateAuthority!.data!,
    authenticationMode: (described!.accessConfig?.authenticationMode ?? "CONFIG_MAP") as AuthenticationMode,
  };
  const roleArnsText = process.env[STEP_ROLE_ARNS_ENV];
  const boundary = process.env[BOUNDARY_ARN_ENV];
  const roleArns = roleArnsText ? (JSON.parse(roleArnsText) as Record<string, string>) : {};
  const productIam =
    roleArnsText && boundary
      ? {
          iamPrefix: process.env[IAM_PREFIX_ENV] || "nfeks",
          permissionsBoundaryArn: boundary,
          eventBusName: process.env[EVENT_BUS_NAME_ENV] || "",
          createRoleAs: simulatedCreateRole(aws.iam, roleArns, Account!),
          callAs: simulatedCall(aws.iam, roleArns),
          stepRoleMissing: (step: string) =>
            roleArns[step] ? undefined : `${STEP_ROLE_ARNS_ENV} names no role for ${step} (the deployed stack's role of that step)`,
        }
      : undefined;
  return {
    name: "aws",
    cluster,
    accountId: Account!,
    prefix: runPrefix(),
    aws,
    ...kubeAccess(cluster),
    productIam,
    productIamMissing: productIam
      ? undefined
      : `needs a deployed stack: set ${STEP_ROLE_ARNS_ENV} (the step roles' ARNs as JSON) and ${BOUNDARY_ARN_ENV} (output TenantRoleBoundaryArn)`,
    close: async () => {
      for (const client of Object.values(aws)) client.destroy();
    },
  };
}

async function openSandbox(): Promise<ContractTarget> {
  // Loaded only for the sandbox target: the real target never starts emulators.
  const { startSandbox } = await import("../../local/sandbox.js");
  const { DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY } = await import("../../local/aws/aws-emulator-server.js");
  const { FAST } = await import("../support/sandbox-runs.js");
  const sandbox = await startSandbox(FAST);
  const { name, region, accountId, authenticationMode } = sandbox.cluster;
  const cluster: TargetCluster = { name, region, endpoint: sandbox.kubeUrl, certificateAuthority: sandbox.kube.caData, authenticationMode };
  // The sandbox's admin (the cluster's creator, with its admin access entry), against the emulator.
  const credentials = { accessKeyId: DEFAULT_ACCESS_KEY_ID, secretAccessKey: DEFAULT_SECRET_ACCESS_KEY };
  const config = { region, endpoint: sandbox.awsUrl, credentials };
  const aws = { iam: new IAMClient(config), eks: new EKSClient(config), sts: new STSClient(config) };
  /** The call made as the step's own role (its Lambda's session, as the runner signs its handler). */
  async function createRoleAs(step: string, input: CreateRoleCommandInput): Promise<StepDecision> {
    const signer = sandbox.signers.get(step);
    if (!signer) throw new Error(`the sandbox has no role for ${step}`);
    const iam = new IAMClient({ region, endpoint: sandbox.awsUrl, credentials: signer.credentials });
    try {
      await iam.send(new CreateRoleCommand(input));
      return "allowed";
    } catch (error) {
      if ((error as { name?: string }).name === "AccessDenied" || (error as { Code?: string }).Code === "AccessDenied") return "denied";
      throw error;
    } finally {
      iam.destroy();
    }
  }
  /** The call made with clients signed as the step's role; an AccessDenied answer is the role's refusal. */
  async function callAs(step: string, call: StepCall): Promise<StepDecision> {
    const signer = sandbox.signers.get(step);
    if (!signer) throw new Error(`the sandbox has no role for ${step}`);
    const signed = { region, endpoint: sandbox.awsUrl, credentials: signer.credentials };
    const clients = { iam: new IAMClient(signed), eks: new EKSClient(signed), events: new EventBridgeClient(signed) };
    try {
      await call.make(clients);
      return "allowed";
    } catch (error) {
      if (isAccessDenied(error)) return "denied";
      throw error;
    } finally {
      for (const client of Object.values(clients)) client.destroy();
    }
  }
  return {
    name: "sandbox",
    cluster,
    accountId,
    prefix: runPrefix(),
    aws,
    ...kubeAccess(cluster, async () => credentials),
    productIam: {
      iamPrefix: sandbox.env.IAM_PREFIX!,
      permissionsBoundaryArn: sandbox.env.PERMISSIONS_BOUNDARY_ARN!,
      eventBusName: sandbox.env.EVENT_BUS_NAME!,
      createRoleAs,
      callAs,
      stepRoleMissing: (step: string) => (sandbox.signers.has(step) ? undefined : `the sandbox has no role for ${step}`),
      async withoutAction<T>(step: string, action: string, fn: () => Promise<T>): Promise<T> {
        const { defineProductRole, withoutAction } = await import("../../local/aws/product-roles.js");
        const role = sandbox.productRoles.find((r) => r.key === step);
        if (!role) throw new Error(`the sandbox has no role for ${step}`);
        defineProductRole(sandbox.aws, role, withoutAction(role.statements, action));
        try {
          return await fn();
        } finally {
          defineProductRole(sandbox.aws, role);
        }
      },
    },
    close: async () => {
      for (const client of Object.values(aws)) client.destroy();
      await sandbox.close();
    },
  };
}

export async function openTarget(): Promise<ContractTarget> {
  return TARGET === "aws" ? openAws() : openSandbox();
}

/** A kubeconfig for the target's cluster with an EKS token made by the product's own code. */
export async function kubeConfigWithToken(
  target: ContractTarget,
  opts: EksTokenOptions & { clusterName?: string } = {},
): Promise<KubeConfig> {
  const { token } = await eksBearerToken(opts.clusterName ?? target.cluster.name, target.cluster.region, opts);
  return kubeConfigFor({ ...target.cluster, arn: "", accountId: "" } as ResolvedCluster, token);
}

/** Who the API server says the token's bearer is (SelfSubjectReview), or the HTTP status that refused it. */
export async function whoAmI(kc: KubeConfig): Promise<{ status: number; username?: string }> {
  try {
    const review = await kc
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });
    return { status: 201, username: review.status?.userInfo?.username };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "number") return { status: code };
    throw error;
  }
}

/** A refused call's HTTP status and Status body (kind Status, reason, message, details), as the API server wrote it. */
export async function refusal(call: Promise<unknown>): Promise<{ code: number; body: Record<string, any> }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof ApiException) {
      const body = typeof error.body === "string" ? (JSON.parse(error.body) as Record<string, any>) : (error.body as Record<string, any>);
      return { code: error.code, body };
    }
    throw error;
  }
  throw new Error("the call succeeded where a refusal was expected");
}

/** Waits until `check` gives a truthy value (returned), polling; fails naming `what` after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs: number,
  intervalMs = TARGET === "aws" ? 2_000 : 50,
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as Exclude<T, undefined | null | false>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Runs every cleanup even when one fails, then throws the first failure (afterAll: leave nothing behind). */
export async function cleanUp(...steps: Array<() => Promise<unknown>>): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length) throw failures[0];
}

/** True when a client-node call failed with this status (404 on a cleanup of something already gone). */
export function isStatus(error: unknown, code: number): boolean {
  return error instanceof ApiException && error.code === code;
}

/** A namespace named `name` (the run's prefix first), made as the admin; the contract's objects go in it. */
export async function createNamespace(target: ContractTarget, name: string): Promise<void> {
  if (!name.startsWith(target.prefix)) throw new Error(`${name} does not start with the run's prefix ${target.prefix}`);
  await target.admin
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name, labels: { "app.kubernetes.io/part-of": "nf-eks-provisioner-contracts" } } } });
}

/** Deletes the namespace and all it holds (a cleanup: already gone or already Terminating is fine). */
export async function deleteNamespace(target: ContractTarget, name: string): Promise<void> {
  try {
    await target.admin.makeApiClient(CoreV1Api).deleteNamespace({ name });
  } catch (error) {
    if (!isStatus(error, 404) && !isStatus(error, 409)) throw error;
  }
}

export interface TargetNamespace {
  target: ContractTarget;
  /** `<prefix>-<suffix>`, created before the file's tests and deleted after them */
  namespace: string;
  /** the admin's core API client */
  core: CoreV1Api;
}

/** Open the target before the file's tests with a namespace of its own; remove both after them, even on failure. */
export function useTargetNamespace(suffix: string, opened: (ready: TargetNamespace) => void): void {
  let ready: TargetNamespace | undefined;
  beforeAll(async () => {
    const target = await openTarget();
    ready = { target, namespace: `${target.prefix}-${suffix}`, core: target.admin.makeApiClient(CoreV1Api) };
    opened(ready);
    await createNamespace(target, ready.namespace);
  });
  afterAll(async () => {
    await cleanUp(
      async () => ready && (await deleteNamespace(ready.target, ready.namespace)),
      async () => ready?.target.close(),
    );
  });
}
