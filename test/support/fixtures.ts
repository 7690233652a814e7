/**
 * What the unit tests share: one tenant onboarding onto one allowed EKS cluster, the workflow state a
 * step receives, the deployment's settings, and an in-memory Kubernetes API handed to the steps.
 * Each test file then states only what makes its cases different.
 */
import { afterEach, beforeEach } from "vitest";
import { setKubeClientFactory } from "../../functions/lib/kube/kube-client.js";
import { type RunMark, runMark } from "../../functions/lib/domain/naming.js";
import type { ExecutionRef, ResolvedCluster, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { FakeKubeApi, type FakeKubeOptions } from "./fake-kube-api.js";

export const ACCOUNT = "111122223333";
export const TENANT = "genomics";
/** This run's execution name, and another run's (an earlier run for the same tenant). */
export const RUN = "genomics-run-1";
export const OTHER_RUN = "genomics-run-0";
/** The runbook's default namespace. */
export const NS = "tower-nf";

/** The smallest valid request: the tenant, the allowed cluster, a created launcher (trusting the account, said explicitly), PVC storage. */
export const REQUEST = {
  tenant: TENANT,
  cluster: { name: "research", region: "eu-west-1" },
  launcher: { mode: "create", trustAccount: true },
  storage: { type: "pvc" },
};

/** The deployment settings (env) the handlers validate requests against. */
export const DEPLOYMENT_ENV = { ALLOWED_CLUSTERS: "research@eu-west-1", ALLOWED_ACCOUNT_IDS: "444455556666", IAM_PREFIX: "nfeks" };

/** The cluster as ResolveCluster hands it on (no OIDC issuer unless given). */
export function resolvedCluster(overrides: Partial<ResolvedCluster> = {}): ResolvedCluster {
  return {
    name: "research",
    region: "eu-west-1",
    arn: `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`,
    accountId: ACCOUNT,
    endpoint: "https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com",
    certificateAuthority: "LS0t",
    authenticationMode: "API",
    version: "1.31",
    ...overrides,
  };
}

/** When the fixtures' executions started (`$$.Execution.StartTime`); a name and this time make a run's mark. */
export const RUN_START = "2025-03-03T09:00:00.000Z";

/** `$$.Execution` of the provisioning state machine for an execution name (started at RUN_START unless given). */
export function executionRef(name = RUN, startTime = RUN_START): ExecutionRef {
  return { name, id: `arn:aws:states:eu-west-1:${ACCOUNT}:execution:provision:${name}`, startTime };
}

/** The run mark of the execution `name` (started at RUN_START unless given): what its objects carry. */
export function markOf(name = RUN, startTime = RUN_START): RunMark {
  return runMark(executionRef(name, startTime));
}

/**
 * The state a step receives: REQUEST with `request` merged over it (unvalidated, as the state machine
 * passes it on), the execution, and what earlier steps left in `results` (`cluster`, `iam`, ...).
 */
export function stepState(request: Record<string, unknown> = {}, executionName = RUN, results: Partial<WorkflowState> = {}): WorkflowState {
  return { request: { ...structuredClone(REQUEST), ...request }, execution: executionRef(executionName), ...results } as WorkflowState;
}

/**
 * Sets env variables before each test (`undefined` removes one) and puts the whole env back after it,
 * so settings a test changes do not leak into the next.
 */
export function useEnv(settings: Record<string, string | undefined>): void {
  const saved = { ...process.env };
  beforeEach(() => {
    for (const [name, value] of Object.entries(settings)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  afterEach(() => {
    process.env = { ...saved };
  });
}

/** Hands the steps a fresh in-memory Kubernetes API in each test; the returned function gives the current one. */
export function useFakeKube(options: FakeKubeOptions = {}): () => FakeKubeApi {
  let kube: FakeKubeApi;
  beforeEach(() => {
    kube = new FakeKubeApi(options);
    setKubeClientFactory(async () => kube);
  });
  afterEach(() => {
    setKubeClientFactory();
  });
  return () => kube;
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejection(
  promise: Promise<unknown>,
): Promise<Error & { $metadata?: { httpStatusCode?: number; attempts?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the call to fail, it succeeded");
}
