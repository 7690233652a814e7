/**
 * Driving provisioning runs in the sandbox the way a client does (POST /provision, GET /executions/{id}
 * on the real HTTP API) and reading what the emulators hold afterwards. Shared by test/integration/*.
 */
import { existsSync } from "node:fs";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { parse as parseYaml } from "yaml";
import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { SFNClient, type DescribeExecutionOutput } from "@aws-sdk/client-sfn";
import type { ExecutionStatusView } from "../../functions/api/status.js";
import { summariseHistory } from "../../functions/lib/workflow/execution-summary.js";
import { iamClient, signedWith } from "../../functions/lib/aws/clients.js";
import { eksBearerToken } from "../../functions/lib/aws/eks-token.js";
import { awsAuthPrincipal } from "../../functions/lib/kube/aws-auth/index.js";
import { kubeConfigFor, newKubeClient, setKubeClientFactory } from "../../functions/lib/kube/kube-client.js";
import type { ProvisionRequestInput } from "../../functions/lib/domain/request.js";
import type { ResolvedCluster } from "../../functions/lib/workflow/workflow-state.js";
import { isFinished, isTerminal, JOB_TRACKING_FINALIZER } from "../../local/kube/kubelet.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import { startSandbox, type Sandbox, type SandboxOptions } from "../../local/sandbox.js";
import { FAST_TIME_SCALE } from "../../local/sfn/time-scale.js";
import { TEST_TIME_SCALE } from "../../local/kube/cluster-timing.js";

/**
 * Step Functions waits/retries scaled (2 ms / 1 ms per nominal second; the definition is untouched), and the
 * cluster's clock at the tests' time factor (a Terminating namespace with a running pod is gone in about 1 s; the
 * kubelet's steps follow).
 */
export const FAST: SandboxOptions = { timeScale: FAST_TIME_SCALE, clusterTimeScale: TEST_TIME_SCALE };

/** How long one run may take in a test before it counts as stuck. */
export const RUN_TIMEOUT_MS = 20_000;

export const CLUSTER = { name: "research", region: "eu-west-1" } as const;
export const ACCOUNT_ID = "111122223333";
export const NODE_ROLE_ARN = `arn:aws:iam::${ACCOUNT_ID}:role/research-node-role`;

/** The kubectl the tests drive: $KUBECTL (CI passes the one it found or installed), else /usr/bin/kubectl. */
export const KUBECTL = process.env.KUBECTL || "/usr/bin/kubectl";
/** Whether that kubectl is there (the kubectl tests are skipped without it). */
export const HAS_KUBECTL = existsSync(KUBECTL);

export interface StartedSandbox {
  sandbox: Sandbox;
  /** an SFNClient on the sandbox's Step Functions endpoint */
  sfn: SFNClient;
}

/**
 * One sandbox for the enclosing describe block, as useFakeKube is one fake per test: started before its
 * tests (`options` is read then) and handed to `onStart`, injected faults cleared after each test, the
 * sandbox and its SFNClient closed after all.
 */
export function useSandbox(options: SandboxOptions | (() => SandboxOptions), onStart: (started: StartedSandbox) => void): void {
  let started: StartedSandbox | undefined;
  beforeAll(async () => {
    const sandbox = await startSandbox(typeof options === "function" ? options() : options);
    activeSandbox = sandbox;
    started = { sandbox, sfn: new SFNClient({ region: CLUSTER.region, endpoint: sandbox.sfnUrl }) };
    onStart(started);
  });
  afterEach(() => {
    started?.sandbox.faults.clear();
  });
  afterAll(async () => {
    started?.sfn.destroy();
    await started?.sandbox.close();
  });
}

/** A PVC tenant, optionally with a head job; `overrides` replace top-level fields. */
export function pvcRequest(tenant: string, overrides: Partial<ProvisionRequestInput> = {}): ProvisionRequestInput {
  return {
    tenant,
    cluster: { ...CLUSTER },
    launcher: { mode: "create", trustAccount: true },
    storage: { type: "pvc", storageClass: "efs-sc", size: "100Gi" },
    labels: { team: tenant },
    ...overrides,
  };
}

/** A Fusion tenant (IRSA unless `podIdentity`), with a compute service account. */
export function fusionRequest(
  tenant: string,
  opts: { podIdentity?: boolean } & Partial<ProvisionRequestInput> = {},
): ProvisionRequestInput {
  const { podIdentity, ...overrides } = opts;
  return {
    tenant,
    cluster: { ...CLUSTER },
    launcher: { mode: "create", trustAccount: true },
    computeServiceAccount: "tower-compute-sa",
    storage: { type: "fusion", bucket: `${tenant}-nextflow-work`, workDir: "work", ...(podIdentity ? { podIdentity: true } : {}) },
    labels: { team: tenant },
    ...overrides,
  };
}

export interface Started {
  executionArn: string;
  executionName: string;
  statusUrl: string;
}

/** POST /provision through the HTTP API; the raw answer. */
export async function postProvision(
  sandbox: Sandbox,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sandbox.apiUrl}/provision`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** GET /executions/{id} through the HTTP API. */
export async function getStatus(sandbox: Sandbox, id: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sandbox.apiUrl}/executions/${encodeURIComponent(id)}`);
  return { status: res.status, body: await res.json() };
}

export interface Run {
  started: Started;
  execution: DescribeExecutionOutput;
  /** the status route's view once the run ended */
  view: ExecutionStatusView;
}

/** Start a run through the API (expects 202) and wait for it to end. */
export async function provision(sandbox: Sandbox, request: unknown, headers: Record<string, string> = {}): Promise<Run> {
  const answer = await postProvision(sandbox, request, headers);
  if (answer.status !== 202) throw new Error(`POST /provision answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return finish(sandbox, answer.body as Started);
}

/** Wait for a started run to end; then read its status through the status route. */
export async function finish(sandbox: Sandbox, started: Started): Promise<Run> {
  const execution = await sandbox.stepFunctions.waitFor(started.executionArn, { timeoutMs: RUN_TIMEOUT_MS });
  const status = await getStatus(sandbox, started.executionName);
  if (status.status !== 200) throw new Error(`GET /executions answered ${status.status}: ${JSON.stringify(status.body)}`);
  return { started, execution, view: status.body as ExecutionStatusView };
}

/** The result the status route shows for a step (the last attempt's). */
export function stepResult<T = any>(run: Run, step: string): T {
  const found = run.view.steps.find((s) => s.name === step);
  if (!found) throw new Error(`no step ${step} in ${run.view.steps.map((s) => s.name).join(", ")}`);
  return found.result as T;
}

/**
 * The result a step returned, whole, as the execution history holds it: also the fields the status route withholds
 * (what a result keeps for its compensator alone, e.g. the IAM step's previous documents).
 */
export async function recordedStepResult<T = any>(sandbox: Sandbox, run: Run, step: string): Promise<T> {
  const { events } = await sandbox.stepFunctions.getExecutionHistory({ executionArn: run.started.executionArn, maxResults: 1000 });
  const found = summariseHistory(events ?? []).steps.find((s) => s.name === step);
  if (!found) throw new Error(`no step ${step} in the history of ${run.started.executionName}`);
  return found.result as T;
}

/**
 * Poll `check` until it holds (a condition, never a fixed sleep) and return what it gave; throws with
 * `what` after `timeoutMs`.
 */
export async function until<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Exclude<T, undefined | null | false>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * The emulated cluster's controllers have nothing left to do for what exists: no namespace terminating,
 * every active namespace populated, every PVC bound, every Job finished, every Job pod terminal.
 * Snapshots are compared only in this state, so a controller's late write never looks like a step's.
 */
function isSettled(sandbox: Sandbox): boolean {
  const objects = sandbox.kube.snapshot();
  const of = (kind: string) => objects.filter((o) => o.kind === kind);
  const namespaces = of("Namespace");
  if (namespaces.some((ns) => ns.metadata.deletionTimestamp)) return false;
  for (const ns of namespaces) {
    const name = ns.metadata.name;
    if (!objects.some((o) => o.kind === "ServiceAccount" && o.metadata.namespace === name && o.metadata.name === "default")) return false;
  }
  if (of("PersistentVolumeClaim").some((pvc) => pvc.status?.phase !== "Bound")) return false;
  if (of("Job").some((job) => !isFinished(job))) return false;
  const jobPods = of("Pod").filter((pod) => (pod.metadata.ownerReferences ?? []).some((r: { kind: string }) => r.kind === "Job"));
  // A Job's ended pod is settled once the Job controller has counted it (its job-tracking finalizer removed).
  return jobPods.every((pod) => isTerminal(pod) && !(pod.metadata.finalizers ?? []).includes(JOB_TRACKING_FINALIZER));
}

export async function settled(sandbox: Sandbox): Promise<void> {
  await until("the emulated cluster's controllers to settle", () => isSettled(sandbox));
}

/** Every object of `kind` (in `namespace`, when given). */
export function kubeObjects(sandbox: Sandbox, kind: string, namespace?: string): KubeObject[] {
  return sandbox.kube.snapshot().filter((o) => o.kind === kind && (namespace === undefined || o.metadata.namespace === namespace));
}

export function kubeObject(sandbox: Sandbox, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
  return sandbox.kube
    .snapshot()
    .find((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
}

/** Everything in one namespace, the namespace included (for "left intact" comparisons). */
export function namespaceContent(sandbox: Sandbox, namespace: string): KubeObject[] {
  return sandbox.kube
    .snapshot()
    .filter((o) => o.metadata.namespace === namespace || (o.kind === "Namespace" && o.metadata.name === namespace));
}

export function awsAuth(sandbox: Sandbox): KubeObject {
  const found = kubeObject(sandbox, "ConfigMap", "kube-system", "aws-auth");
  if (!found) throw new Error("kube-system/aws-auth is missing");
  return found;
}

/** The `rolearn` of every aws-auth mapRoles entry, in order. */
export function mappedRoleArns(sandbox: Sandbox): string[] {
  return (parseYaml(awsAuth(sandbox).data.mapRoles) as Array<{ rolearn: string }>).map((m) => m.rolearn);
}

export function clusterState(sandbox: Sandbox) {
  const cluster = sandbox.aws.state.eks.clusters.get(`${CLUSTER.region}/${CLUSTER.name}`);
  if (!cluster) throw new Error("the sandbox cluster is not seeded");
  return cluster;
}

export function iamRole(sandbox: Sandbox, roleName: string) {
  return sandbox.aws.state.iam.roles.get(roleName);
}

/** Trust and inline policies as the emulator stores them (JSON text, as given). */
export function policyOf(text: string | undefined): any {
  if (text === undefined) return undefined;
  return JSON.parse(text.startsWith("%") ? decodeURIComponent(text) : text);
}

let keyCounter = 0;

/**
 * A Kubernetes client that authenticates as `principalArn` with an EKS token, exactly as a launcher would:
 * new access keys are registered with the emulated IAM for that principal, the token is signed with
 * them by the product's own eks-token code, and the emulated API server maps it through access entries
 * or aws-auth.
 */
export async function kubeClientAs(sandbox: Sandbox, principalArn: string): Promise<CoreV1Api> {
  return (await kubeConfigAs(sandbox, principalArn)).makeApiClient(CoreV1Api);
}

/** The kubeconfig behind kubeClientAs, for the other API clients (RBAC, authentication, the generic object API). */
export async function kubeConfigAs(sandbox: Sandbox, principalArn: string): Promise<KubeConfig> {
  keyCounter += 1;
  const accessKeyId = `AKIALAUNCHER${String(keyCounter).padStart(8, "0")}`;
  const secretAccessKey = `launcher-secret-${keyCounter}-${Date.now()}`;
  sandbox.aws.addCredentials({ accessKeyId, secretAccessKey, arn: principalArn });
  const { token } = await eksBearerToken(CLUSTER.name, CLUSTER.region, {
    credentials: async () => ({ accessKeyId, secretAccessKey }),
  });
  const { name, region, accountId } = sandbox.cluster;
  const cluster: ResolvedCluster = {
    ...sandbox.cluster,
    arn: `arn:aws:eks:${region}:${accountId}:cluster/${name}`,
    endpoint: sandbox.kubeUrl,
    certificateAuthority: sandbox.kube.caData,
  };
  return kubeConfigFor(cluster, token);
}

/** The HTTP status a client-node call ended with (2xx when it succeeded). */
export async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "number") return code;
    throw error;
  }
}

/** A minimal pod, as a launcher would create one for a Nextflow task. */
export function taskPod(name: string): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: { restartPolicy: "Never", containers: [{ name: "task", image: "quay.io/nextflow/bash", command: ["true"] }] },
  };
}

/** The assumed-role session ARN STS reports for a role (what a launcher's credentials really are). */
export function sessionArnOf(roleArn: string, session = "seqera-launcher"): string {
  const m = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(roleArn);
  if (!m) throw new Error(`not a role ARN: ${roleArn}`);
  return `arn:${m[1]}:sts::${m[2]}:assumed-role/${m[3]}/${session}`;
}

// ---------------------------------------------------------------- shared assertions

/** The launcher's way into the cluster: an access entry (API modes) or an aws-auth mapping next to the node role's. */
export function expectClusterAccess(sandbox: Sandbox, launcherArn: string, tenant: string, seededAwsAuth: KubeObject): void {
  const entry = clusterState(sandbox).accessEntries.get(launcherArn);
  const current = awsAuth(sandbox);
  if (sandbox.cluster.authenticationMode === "CONFIG_MAP") {
    expect(entry).toBeUndefined();
    const mapRoles = parseYaml(current.data.mapRoles) as Array<Record<string, unknown>>;
    // The node group's mapping is kept as it was, templated username included.
    expect(mapRoles).toContainEqual({
      groups: ["system:bootstrappers", "system:nodes"],
      rolearn: NODE_ROLE_ARN,
      username: "system:node:{{EC2PrivateDNSName}}",
    });
    expect(current.data.mapRoles).toContain("username: system:node:{{EC2PrivateDNSName}}");
    // aws-auth holds a role ARN without its path (EKS matches it so).
    const rolearn = awsAuthPrincipal(launcherArn)!.arn;
    expect(mapRoles.filter((m) => m.rolearn === rolearn)).toEqual([
      { rolearn, username: `tower-launcher-user-${tenant}`, groups: [`tower-launcher-role-${tenant}`] },
    ]);
    expect(Object.values(JSON.parse(current.metadata.annotations?.["nf-eks-provisioner/mappings"] ?? "{}"))).not.toHaveLength(0);
  } else {
    expect(entry).toMatchObject({
      principalArn: launcherArn,
      type: "STANDARD",
      username: `tower-launcher-user-${tenant}`,
      kubernetesGroups: [`tower-launcher-role-${tenant}`],
      tags: { "app.kubernetes.io/managed-by": "nf-eks-provisioner", "nf-eks-provisioner/tenant": tenant },
    });
    // No access policy: the namespace Role is all the launcher gets.
    expect(entry!.accessPolicies.size).toBe(0);
    // aws-auth is not touched when access entries are used.
    expect(current).toStrictEqual(seededAwsAuth);
  }
}

/**
 * The launcher identity really works, as Seqera Platform would use it: an EKS token signed with the
 * launcher's credentials may create (and delete) a pod in the tenant namespace, and nothing elsewhere.
 */
export async function expectLauncherConfinedTo(sandbox: Sandbox, launcherArn: string, namespace: string): Promise<void> {
  const core = await kubeClientAs(sandbox, sessionArnOf(launcherArn));
  const name = `launcher-check-${keyCounter}`;
  expect(await statusOf(core.createNamespacedPod({ namespace, body: taskPod(name) }))).toBe(200);
  expect(kubeObject(sandbox, "Pod", namespace, name)?.spec?.serviceAccountName).toBe("default");
  expect(await statusOf(core.createNamespacedPod({ namespace: "default", body: taskPod(name) }))).toBe(403);
  expect(await statusOf(core.listNamespace())).toBe(403);
  expect(await statusOf(core.listPodForAllNamespaces())).toBe(403);
  expect(await statusOf(core.listNamespacedSecret({ namespace }))).toBe(403);
  // Clean up as the launcher (delete is one of its verbs), so later snapshots only hold the product's work.
  expect(await statusOf(core.deleteNamespacedPod({ name, namespace }))).toBe(200);
  // A running pod is deleted gracefully (its terminationGracePeriodSeconds, on the cluster's clock): gone a moment later.
  await until(`pod ${namespace}/${name} to be gone`, () => kubeObject(sandbox, "Pod", namespace, name) === undefined, 10_000);
  expect(kubeObject(sandbox, "Pod", namespace, name)).toBeUndefined();
  expect(kubeObjects(sandbox, "Pod", "default")).toEqual([]);
}

/** The ComputeEnvironmentReady event of one run. */
export function readyEventOf(sandbox: Sandbox, executionName: string): any {
  const events = sandbox.aws
    .events({ detailType: "ComputeEnvironmentReady" })
    .filter((e) => (e.detail as any)?.execution?.name === executionName);
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ source: "nf-eks-provisioner", eventBusName: "nf-eks-provisioner" });
  return events[0]!.detail;
}

// ---------------------------------------------------------------- ordering a Parallel's branches

/**
 * Hold every call of one IAM command the step handlers make (through the product's memoised IAM client)
 * until `gate` resolves. Orders the Parallel's branches by what happened, not by timing. Returns the undo.
 */
export function holdIamCommand(commandName: string, gate: () => Promise<unknown>): () => void {
  const name = `test-hold-${commandName}`;
  const stacks = iamMiddlewareStacks();
  for (const stack of stacks) {
    stack.add(
      (next, context) => async (args) => {
        if (context.commandName === commandName) await gate();
        return next(args);
      },
      { step: "initialize", name },
    );
  }
  return () => {
    for (const stack of stacks) stack.remove(name);
  };
}

/** The sandbox useSandbox started last (one process holds one sandbox at a time). */
let activeSandbox: Sandbox | undefined;

type MiddlewareStackLike = {
  add(
    m: (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => (args: unknown) => Promise<unknown>,
    o: { step: "initialize"; name: string },
  ): void;
  remove(name: string): boolean;
};

/**
 * The middleware stacks of the IAM clients the step handlers use (clients.ts memoises one per process and signer):
 * each step signs as its own role in the sandbox, so the client of every role, and the process's own.
 */
function iamMiddlewareStacks(): MiddlewareStackLike[] {
  const signers = [...(activeSandbox?.signers.values() ?? [])];
  const clients = [iamClient(), ...signers.map((signer) => signedWith(signer, () => iamClient()))];
  return clients.map((client) => client.middlewareStack as unknown as MiddlewareStackLike);
}

/**
 * Hold the step handlers' Kubernetes creates of one kind until `gate` resolves: the steps get the real
 * client (EKS token, cluster CA) with only `create` wrapped. Returns the undo.
 */
export function holdKubeCreates(kind: string, gate: () => Promise<unknown>): () => void {
  setKubeClientFactory(async (cluster) => {
    // The real client, signed as the provisioner's own identity (the sandbox sets it), with create wrapped.
    const { api } = await newKubeClient(cluster);
    const create = api.create.bind(api) as (...args: unknown[]) => Promise<unknown>;
    (api as unknown as { create: (...args: unknown[]) => Promise<unknown> }).create = async (...args: unknown[]) => {
      if ((args[0] as { kind?: string })?.kind === kind) await gate();
      return create(...args);
    };
    return api;
  });
  return () => setKubeClientFactory();
}

/** Resolves once the step handlers' next call of an IAM command has been answered (or refused). */
export function iamCommandSettled(commandName: string): Promise<void> {
  const name = `test-settled-${commandName}`;
  const stacks = iamMiddlewareStacks();
  return new Promise<void>((resolve) => {
    for (const stack of stacks) {
      stack.add(
        (next, context) => async (args) => {
          if (context.commandName !== commandName) return next(args);
          try {
            return await next(args);
          } finally {
            for (const each of stacks) each.remove(name);
            resolve();
          }
        },
        { step: "initialize", name },
      );
    }
  });
}
