/**
 * Transient faults in the sandbox are retried to success by the state machine's retriers (intervals
 * shortened for the test, not in the definition): throttling and 5xx at each step, a 409 Conflict on
 * the aws-auth replace, and IAM propagation delay (a new launcher role that EKS does not know yet).
 * The execution history (GetExecutionHistory through the real SFNClient, and the status route) shows the
 * retried attempts with their named errors.
 *
 * The SDK clients retry once themselves (clients.ts MAX_ATTEMPTS = 2) and the Kubernetes client not at
 * all, so an AWS fault has to happen twice in a row to reach the state machine; a Kubernetes one once.
 */
import { describe, expect, it } from "vitest";
import { GetExecutionHistoryCommand, type HistoryEvent, type SFNClient } from "@aws-sdk/client-sfn";
import type { Sandbox } from "../../local/sandbox.js";
import { AWS_AUTH_MAX_ATTEMPTS } from "../../functions/steps/cluster-access/index.js";
import type { FaultKind } from "../../local/faults.js";
import {
  ACCOUNT_ID,
  awsAuth,
  clusterState,
  FAST,
  iamRole,
  mappedRoleArns,
  provision,
  pvcRequest,
  useSandbox,
  type Run,
} from "../support/sandbox-runs.js";

/** The step whose first call of `operation` the fault hits. */
const STEP_OPERATIONS: Array<{ step: string; operation: string }> = [
  { step: "ResolveCluster", operation: "eks:DescribeCluster" },
  { step: "CreateIamResources", operation: "iam:CreateRole" },
  { step: "CreateNamespaceAndRbac", operation: "kube:POST namespaces" },
  { step: "GrantClusterAccess", operation: "eks:CreateAccessEntry" },
  { step: "ConfigureStorage", operation: "kube:POST persistentvolumeclaims" },
  { step: "LaunchHeadJob", operation: "kube:POST jobs" },
  { step: "CheckHeadJob", operation: "kube:GET jobs" },
  { step: "Report", operation: "events:PutEvents" },
];

const NAMED: Record<"throttle" | "5xx" | "conflict", string> = {
  throttle: "Throttled",
  "5xx": "ClusterUnreachable",
  conflict: "KubeConflict",
};

interface TransientCase {
  step: string;
  operation: string;
  kind: "throttle" | "5xx";
  /** how many calls fail */
  times: number;
  /** how many times the state machine retries the step because of them */
  retries: number;
}

const isAws = (operation: string) => !operation.startsWith("kube:");

function cases(): TransientCase[] {
  return STEP_OPERATIONS.flatMap(({ step, operation }) => [
    // Throttled twice: the SDK's own retry is spent on the second, so the state machine retries once;
    // Kubernetes calls are not retried by the client, so the step is retried twice.
    { step, operation, kind: "throttle" as const, times: 2, retries: isAws(operation) ? 1 : 2 },
    // One 5xx: a Kubernetes call fails the step once; an AWS call needs two to get past the SDK.
    { step, operation, kind: "5xx" as const, times: isAws(operation) ? 2 : 1, retries: 1 },
  ]);
}

function withHeadJob(tenant: string) {
  return pvcRequest(tenant, { namespace: tenant, headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });
}

async function history(sfn: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  return (await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000 }))).events ?? [];
}

/** The errors of the failed Lambda attempts, in order. */
function failedAttempts(events: HistoryEvent[]): string[] {
  return events.filter((e) => e.type === "LambdaFunctionFailed").map((e) => e.lambdaFunctionFailedEventDetails?.error ?? "?");
}

function expectRetriedTo(run: Run, step: string, retries: number): void {
  expect(run.execution.status).toBe("SUCCEEDED");
  expect(run.view.status).toBe("SUCCEEDED");
  expect(run.view.steps.find((s) => s.name === step)).toMatchObject({ status: "succeeded", retries });
  expect(run.view.retries).toBe(retries);
}

describe("transient faults on an API_AND_CONFIG_MAP cluster", () => {
  let sandbox: Sandbox;
  let sfn: SFNClient;

  useSandbox({ ...FAST }, (started) => ({ sandbox, sfn } = started));

  it.each(cases().map((c, i) => ({ ...c, tenant: `flaky-${i}` })))(
    "$step: $operation $kind ×$times is retried to success ($tenant)",
    async ({ step, operation, kind, times, retries, tenant }) => {
      // Prepare
      sandbox.faults.inject({ operation, kind: kind as FaultKind, times });

      // Act
      const run = await provision(sandbox, withHeadJob(tenant));

      // Assess
      expect(sandbox.faults.fired).toEqual(Array.from({ length: times }, () => ({ operation, kind })));
      expectRetriedTo(run, step, retries);
      expect(failedAttempts(await history(sfn, run.started.executionArn))).toEqual(Array.from({ length: retries }, () => NAMED[kind]));
      expect(
        sandbox.aws.events({ detailType: "ComputeEnvironmentReady" }).some((e) => (e.detail as { tenant?: string }).tenant === tenant),
      ).toBe(true);
    },
  );
});

describe("a 409 Conflict on the aws-auth replace (CONFIG_MAP cluster)", () => {
  let sandbox: Sandbox;
  let sfn: SFNClient;

  useSandbox({ ...FAST, authenticationMode: "CONFIG_MAP" }, (started) => ({ sandbox, sfn } = started));

  it("one conflict is handled inside the step: it reads aws-auth again and redoes its edit", async () => {
    // Prepare
    sandbox.faults.inject({ operation: "kube:PUT configmaps", kind: "conflict", times: 1 });

    // Act
    const run = await provision(sandbox, pvcRequest("contended", { namespace: "contended" }));

    // Assess
    expect(sandbox.faults.fired).toEqual([{ operation: "kube:PUT configmaps", kind: "conflict" }]);
    expectRetriedTo(run, "GrantClusterAccess", 0);
    expect(mappedRoleArns(sandbox)).toContain(`arn:aws:iam::${ACCOUNT_ID}:role/nfeks-contended.research-launcher`);
  });

  it("conflicts on every edit round fail the step with KubeConflict, which the state machine retries", async () => {
    // Prepare
    sandbox.faults.inject({ operation: "kube:PUT configmaps", kind: "conflict", times: AWS_AUTH_MAX_ATTEMPTS });

    // Act
    const run = await provision(sandbox, pvcRequest("busy", { namespace: "busy" }));

    // Assess
    expect(sandbox.faults.fired).toHaveLength(AWS_AUTH_MAX_ATTEMPTS);
    expectRetriedTo(run, "GrantClusterAccess", 1);
    expect(failedAttempts(await history(sfn, run.started.executionArn))).toEqual(["KubeConflict"]);
    // The node role's mapping survived every round, templated username included.
    expect(awsAuth(sandbox).data.mapRoles).toContain("username: system:node:{{EC2PrivateDNSName}}");
    expect(mappedRoleArns(sandbox)[0]).toBe(`arn:aws:iam::${ACCOUNT_ID}:role/research-node-role`);
    expect(mappedRoleArns(sandbox).filter((arn) => arn.endsWith("/nfeks-busy.research-launcher"))).toHaveLength(1);
  });
});

describe("IAM propagation delay", () => {
  let sandbox: Sandbox;
  let sfn: SFNClient;
  const DELAY_MS = 1_500;

  // Retries 400 ms apart here: the six the definition allows must outlast the delay.
  useSandbox({ ...FAST, retryIntervalMs: 400, propagationDelayMs: DELAY_MS }, (started) => ({ sandbox, sfn } = started));

  it("CreateAccessEntry for a brand-new launcher role is refused as an invalid principal until IAM has caught up, then succeeds", async () => {
    // Act
    const run = await provision(sandbox, pvcRequest("fresh", { namespace: "fresh" }));

    // Assess
    const step = run.view.steps.find((s) => s.name === "GrantClusterAccess")!;
    expect(run.execution.status).toBe("SUCCEEDED");
    expect(step.status).toBe("succeeded");
    expect(step.retries).toBeGreaterThanOrEqual(1);
    const events = await history(sfn, run.started.executionArn);
    const failures = events.filter((e) => e.type === "LambdaFunctionFailed").map((e) => e.lambdaFunctionFailedEventDetails);
    expect(failures).toHaveLength(step.retries);
    for (const failure of failures) {
      expect(failure?.error).toBe("IamNotYetConsistent");
      expect(failure?.cause).toMatch(/eks:CreateAccessEntry failed: InvalidParameterException/);
    }
    // It took at least as long as IAM needed to make the role known.
    const role = iamRole(sandbox, "nfeks-fresh.research-launcher")!;
    const granted = events.find((e) => e.type === "TaskStateExited" && e.stateExitedEventDetails?.name === "GrantClusterAccess")!;
    expect(granted.timestamp!.getTime()).toBeGreaterThanOrEqual(role.visibleAt);
    expect(clusterState(sandbox).accessEntries.has(role.arn)).toBe(true);
  });
});
