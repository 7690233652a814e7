import { describe, expect, it } from "vitest";
import { ExecutionError, StateMachine } from "aws-local-stepfunctions";
import { failureSummary } from "../../functions/steps/report.js";
import { ClusterNotFound, HeadJobFailed, HeadJobTimedOut, OwnershipConflict, Throttled } from "../../functions/lib/domain/errors.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { catalogEntryOf, definitionWithFakeArns, state, tasks } from "../support/asl-definition.js";

/* provision.asl.json run (aws-local-stepfunctions) with stub steps: the paths a run takes, retries, waits and compensation. */

type Handler = (input: WorkflowState) => unknown;
type JsonValue = Parameters<StateMachine["run"]>[0];

const EXECUTION = { Name: "genomics_run-1", Id: "arn:aws:states:eu-west-1:111122223333:execution:provision:genomics_run-1" };
const REQUEST = { tenant: "genomics", cluster: { name: "research", region: "eu-west-1" }, storage: { type: "pvc" } };
const HEAD_JOB = { pipeline: "nf-core/rnaseq", revision: "3.14.0" };

const taskNames = tasks.map((t) => t.name);

/** Stubs that answer like the real steps, recording each call. */
function stubHandlers(calls: string[], inputs: Map<string, WorkflowState>, overrides: Record<string, Handler> = {}) {
  const defaults: Record<string, Handler> = {
    ResolveCluster: () => ({
      name: "research",
      region: "eu-west-1",
      arn: "arn:aws:eks:eu-west-1:111122223333:cluster/research",
      accountId: "111122223333",
      endpoint: "https://k8s.example",
      certificateAuthority: "LS0t",
      authenticationMode: "API",
      version: "1.31",
    }),
    CreateIamResources: () => ({
      launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher",
      launcherKind: "role",
      launcherCreated: true,
      created: ["role/nfeks-genomics-launcher"],
    }),
    CreateNamespaceAndRbac: () => ({
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      role: "tower-launcher-role",
      created: [],
      adopted: [],
    }),
    GrantClusterAccess: () => ({
      method: "access-entry",
      principalArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher",
      username: "tower-launcher-user",
      groups: ["tower-launcher-role"],
      created: true,
    }),
    ConfigureStorage: () => ({
      type: "pvc",
      claimName: "tower-scratch",
      mountPath: "/scratch",
      annotated: [],
      configMap: "nextflow-config",
      nextflowConfig: "",
      created: [],
    }),
    LaunchHeadJob: () => ({
      jobName: "nf-head-genomics-1",
      namespace: "tower-nf",
      phase: "Pending",
      done: false,
      checks: 0,
      launchedAt: "2025-01-01T00:00:00.000Z",
      nextCheckSeconds: 10,
    }),
    CheckHeadJob: (s) => {
      const checks = (s.headJob?.checks ?? 0) + 1;
      return { ...s.headJob, checks, phase: checks >= 2 ? "Running" : "Pending", done: checks >= 2, nextCheckSeconds: 10 * 2 ** checks };
    },
    Report: () => ({ eventBusName: "bus" }),
    ReportFailure: (s) => failureSummary(s),
  };
  for (const name of taskNames)
    if (catalogEntryOf(state(name))?.handler === "compensate") defaults[name] = () => ({ undone: [name], kept: [] });
  const handlers: Record<string, (input: JsonValue) => Promise<JsonValue>> = {};
  for (const name of taskNames) {
    const handler = overrides[name] ?? defaults[name];
    handlers[name] = async (input) => {
      calls.push(name);
      inputs.set(name, structuredClone(input) as unknown as WorkflowState);
      return (await handler(input as unknown as WorkflowState)) as JsonValue;
    };
  }
  return handlers;
}

async function runMachine(
  request: Record<string, unknown>,
  overrides: Record<string, Handler> = {},
  calls: string[] = [],
  waitTimeOverrides: Record<string, number> = { WaitForHeadJob: 0 },
) {
  const inputs = new Map<string, WorkflowState>();
  const machine = new StateMachine(definitionWithFakeArns() as unknown as ConstructorParameters<typeof StateMachine>[0]);
  const execution = machine.run({ request } as unknown as JsonValue, {
    context: { Execution: EXECUTION },
    overrides: {
      taskResourceLocalHandlers: stubHandlers(calls, inputs, overrides),
      waitTimeOverrides,
      retryIntervalOverrides: Object.fromEntries(taskNames.map((name) => [name, 0])),
    },
  });
  try {
    const output = (await execution.result) as unknown as WorkflowState & { report?: unknown };
    return { calls, inputs, output, failure: undefined };
  } catch (error) {
    if (!(error instanceof ExecutionError)) throw error;
    const cause = error.cause as Error;
    return { calls, inputs, output: undefined, failure: { error: cause.name, cause: cause.message } };
  }
}

const COMPENSATORS = ["UndoHeadJob", "UndoStorage", "UndoClusterAccess", "UndoNamespaceAndRbac", "UndoIamResources"];
const compensatorCalls = (calls: string[]) => calls.filter((c) => COMPENSATORS.includes(c));

describe("provision.asl.json: running it with stub steps", () => {
  it("happy path without a head job: every step once, results at their paths, no compensation", async () => {
    // Act
    const { calls, inputs, output, failure } = await runMachine(REQUEST);
    // Assess
    expect(failure).toBeUndefined();
    expect(calls.slice(0, 1)).toEqual(["ResolveCluster"]);
    expect(new Set(calls.slice(1, 3))).toEqual(new Set(["CreateIamResources", "CreateNamespaceAndRbac"]));
    expect(calls.slice(3)).toEqual(["GrantClusterAccess", "ConfigureStorage", "Report"]);
    // Issue #9: the start time rides with the name (the run mark is made of both).
    expect(inputs.get("ResolveCluster")).toEqual({
      request: REQUEST,
      execution: { name: EXECUTION.Name, id: EXECUTION.Id, startTime: expect.any(String) },
    });
    expect(new Date((inputs.get("ResolveCluster") as WorkflowState).execution.startTime).toISOString()).toBe(
      (inputs.get("ResolveCluster") as WorkflowState).execution.startTime,
    );
    expect(output).toMatchObject({
      request: REQUEST,
      execution: { name: EXECUTION.Name, id: EXECUTION.Id },
      cluster: { name: "research" },
      iam: { launcherCreated: true },
      rbac: { namespace: "tower-nf" },
      access: { method: "access-entry" },
      storage: { claimName: "tower-scratch" },
    });
    // The step after the Parallel sees both branches' results next to the earlier state.
    expect(inputs.get("GrantClusterAccess")).toMatchObject({
      cluster: { name: "research" },
      iam: { launcherCreated: true },
      rbac: { namespace: "tower-nf" },
    });
    expect(output).not.toHaveProperty("error");
  });

  it("happy path with a head job: launches, waits and checks until it runs, then reports", async () => {
    // Act
    const { calls, output, failure } = await runMachine({ ...REQUEST, headJob: HEAD_JOB });
    // Assess
    expect(failure).toBeUndefined();
    expect(calls.slice(5)).toEqual(["LaunchHeadJob", "CheckHeadJob", "CheckHeadJob", "Report"]);
    expect(output?.headJob).toMatchObject({ phase: "Running", done: true, checks: 2 });
    expect(compensatorCalls(calls)).toEqual([]);
  });

  it("a permanent error in ConfigureStorage undoes the earlier steps in reverse order and fails with that error", async () => {
    // Prepare
    const overrides = {
      ConfigureStorage: () => {
        throw new OwnershipConflict("PersistentVolumeClaim tower-nf/tower-scratch exists without our marks");
      },
    };
    // Act
    const { calls, inputs, failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(calls.filter((c) => c === "ConfigureStorage")).toHaveLength(1);
    expect(compensatorCalls(calls)).toEqual(["UndoStorage", "UndoClusterAccess", "UndoNamespaceAndRbac", "UndoIamResources"]);
    expect(calls.at(-1)).toBe("ReportFailure");
    expect(calls).not.toContain("Report");
    expect(inputs.get("UndoStorage")?.error).toMatchObject({ Error: "OwnershipConflict" });
    expect(inputs.get("UndoIamResources")?.compensation).toMatchObject({
      UndoStorage: { undone: ["UndoStorage"] },
      UndoNamespaceAndRbac: { undone: ["UndoNamespaceAndRbac"] },
    });
    expect(failure?.error).toBe("OwnershipConflict");
    expect(failure?.cause).toContain("Step ConfigureStorage failed: OwnershipConflict");
    expect(failure?.cause).toContain("exists without our marks");
  });

  it("retries a transient error and goes on when the retry succeeds", async () => {
    // Prepare
    let attempts = 0;
    const overrides = {
      GrantClusterAccess: () => {
        attempts += 1;
        if (attempts === 1) throw new Throttled("eks:CreateAccessEntry failed: ThrottlingException: Rate exceeded");
        return {
          method: "access-entry",
          principalArn: "arn:aws:iam::111122223333:role/x",
          username: "tower-launcher-user",
          groups: ["tower-launcher-role"],
          created: true,
        };
      },
    };
    // Act
    const { calls, output, failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(failure).toBeUndefined();
    expect(calls.filter((c) => c === "GrantClusterAccess")).toHaveLength(2);
    expect(compensatorCalls(calls)).toEqual([]);
    expect(output?.access).toMatchObject({ method: "access-entry", created: true });
  });

  it("gives up on a transient error after MaxAttempts and compensates", async () => {
    // Prepare
    const overrides = {
      GrantClusterAccess: () => {
        throw new Throttled("eks:CreateAccessEntry failed: ThrottlingException");
      },
    };
    // Act
    const { calls, failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(calls.filter((c) => c === "GrantClusterAccess")).toHaveLength(1 + 6);
    expect(compensatorCalls(calls)).toEqual(["UndoClusterAccess", "UndoNamespaceAndRbac", "UndoIamResources"]);
    expect(failure?.error).toBe("Throttled");
  });

  it("a compensator that keeps failing does not stop the chain; the cause names what could not be undone", async () => {
    // Prepare
    const overrides = {
      ConfigureStorage: () => {
        throw new OwnershipConflict("ConfigMap nextflow-config exists without our marks");
      },
      UndoClusterAccess: () => {
        throw new Throttled("eks:DeleteAccessEntry failed: ThrottlingException");
      },
    };
    // Act
    const { calls, inputs, failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(calls.filter((c) => c === "UndoClusterAccess")).toHaveLength(1 + 6);
    expect(compensatorCalls(calls).filter((c) => c !== "UndoClusterAccess")).toEqual([
      "UndoStorage",
      "UndoNamespaceAndRbac",
      "UndoIamResources",
    ]);
    expect(inputs.get("UndoNamespaceAndRbac")?.compensation?.UndoClusterAccess).toMatchObject({ Error: "Throttled" });
    expect(failure?.error).toBe("OwnershipConflict");
    expect(failure?.cause).toContain("Could not undo: UndoClusterAccess (Throttled");
  });

  it("a failing Parallel branch undoes both branches", async () => {
    // Prepare
    const overrides = {
      CreateNamespaceAndRbac: () => {
        throw new OwnershipConflict("Namespace tower-nf exists without our marks");
      },
    };
    // Act
    const { calls, inputs, failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(compensatorCalls(calls)).toEqual(["UndoNamespaceAndRbac", "UndoIamResources"]);
    expect(calls).not.toContain("GrantClusterAccess");
    expect(failure?.error).toBe("OwnershipConflict");
    // Compensation gets the finished branch's result next to the failed one's error and name.
    expect(inputs.get("UndoNamespaceAndRbac")).toMatchObject({
      cluster: { name: "research" },
      iam: { launcherCreated: true },
      error: { Error: "OwnershipConflict" },
      failedStep: "CreateNamespaceAndRbac",
    });
    expect(inputs.get("UndoNamespaceAndRbac")).not.toHaveProperty("rbac");
    expect(failure?.cause).toMatch(/^Step CreateNamespaceAndRbac failed: OwnershipConflict: /);
  });

  it("waits for the other branch to finish before compensating, so what it created is undone", async () => {
    // Prepare: the IAM branch only finishes after the RBAC branch has failed
    let rbacFailed!: () => void;
    const afterRbacFailed = new Promise<void>((resolve) => (rbacFailed = resolve));
    let iamFinishedAt = -1;
    const overrides: Record<string, Handler> = {
      CreateNamespaceAndRbac: () => {
        rbacFailed();
        throw new OwnershipConflict("Namespace tower-nf exists without our marks");
      },
      CreateIamResources: async () => {
        await afterRbacFailed;
        await new Promise((resolve) => setTimeout(resolve, 50));
        iamFinishedAt = calls.length;
        return {
          launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher",
          launcherKind: "role",
          launcherCreated: true,
          created: ["role/nfeks-genomics-launcher"],
        };
      },
    };
    const calls: string[] = [];
    // Act
    const run = await runMachine(REQUEST, overrides, calls);
    // Assess
    expect(iamFinishedAt).toBeGreaterThan(0);
    expect(calls.indexOf("UndoNamespaceAndRbac")).toBeGreaterThanOrEqual(iamFinishedAt);
    expect(run.inputs.get("UndoIamResources")?.iam).toMatchObject({ created: ["role/nfeks-genomics-launcher"] });
    expect(run.failure?.error).toBe("OwnershipConflict");
  });

  it("when both branches fail, compensates both and reports the first branch's error", async () => {
    // Prepare
    const overrides = {
      CreateIamResources: () => {
        throw new OwnershipConflict("IAM role nfeks-genomics-launcher exists without our marks");
      },
      CreateNamespaceAndRbac: () => {
        throw new OwnershipConflict("Namespace tower-nf exists without our marks");
      },
    };
    // Act
    const { calls, inputs, failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(compensatorCalls(calls)).toEqual(["UndoNamespaceAndRbac", "UndoIamResources"]);
    expect(inputs.get("UndoNamespaceAndRbac")).toMatchObject({ failedStep: "CreateIamResources", error: { Error: "OwnershipConflict" } });
    expect(failure?.cause).toMatch(/^Step CreateIamResources failed: OwnershipConflict: IAM role nfeks-genomics-launcher exists/);
  });

  it("a transient error in one branch is retried inside the branch; the run goes on", async () => {
    // Prepare
    let attempts = 0;
    const overrides = {
      CreateIamResources: () => {
        attempts += 1;
        if (attempts === 1) throw new Throttled("iam:CreateRole failed: Throttling");
        return {
          launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher",
          launcherKind: "role",
          launcherCreated: true,
          created: [],
        };
      },
    };
    // Act
    const { calls, inputs, output, failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(failure).toBeUndefined();
    expect(calls.filter((c) => c === "CreateIamResources")).toHaveLength(2);
    expect(compensatorCalls(calls)).toEqual([]);
    expect(inputs.get("GrantClusterAccess")).not.toHaveProperty("error");
    expect(inputs.get("GrantClusterAccess")).not.toHaveProperty("failedStep");
    expect(output).toMatchObject({ iam: { launcherCreated: true }, rbac: { namespace: "tower-nf" } });
  });

  it("a ResolveCluster failure has nothing to undo and fails with its own error", async () => {
    // Prepare
    const overrides = {
      ResolveCluster: () => {
        throw new ClusterNotFound("cluster research does not exist in eu-west-1");
      },
    };
    // Act
    const { calls, failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(calls).toEqual(["ResolveCluster", "ReportFailure"]);
    expect(failure?.error).toBe("ClusterNotFound");
    expect(failure?.cause).toContain("does not exist");
  });

  it("a failed head job is undone first, then everything before it", async () => {
    // Prepare
    const overrides = {
      CheckHeadJob: () => {
        throw new HeadJobFailed("pod nf-head-genomics-1-abcde ended Failed");
      },
    };
    // Act
    const { calls, failure } = await runMachine({ ...REQUEST, headJob: HEAD_JOB }, overrides);
    // Assess
    expect(compensatorCalls(calls)).toEqual(COMPENSATORS);
    expect(failure?.error).toBe("HeadJobFailed");
  });

  it("keeps looping while CheckHeadJob says not done, however many checks that takes", async () => {
    // Prepare
    const overrides = {
      CheckHeadJob: (s: WorkflowState) => {
        const checks = (s.headJob?.checks ?? 0) + 1;
        return { ...s.headJob, checks, phase: checks >= 200 ? "Running" : "Pending", done: checks >= 200, nextCheckSeconds: 300 };
      },
    };
    // Act
    const { calls, output, failure } = await runMachine({ ...REQUEST, headJob: HEAD_JOB }, overrides);
    // Assess
    expect(failure).toBeUndefined();
    expect(calls.filter((c) => c === "CheckHeadJob")).toHaveLength(200);
    expect(output?.headJob).toMatchObject({ done: true, checks: 200 });
    expect(compensatorCalls(calls)).toEqual([]);
  });

  it("pauses for the head job's nextCheckSeconds between checks", async () => {
    // Prepare
    const overrides = {
      LaunchHeadJob: () => ({
        jobName: "nf-head-genomics-1",
        namespace: "tower-nf",
        phase: "Pending",
        done: false,
        checks: 0,
        launchedAt: "2025-01-01T00:00:00.000Z",
        nextCheckSeconds: 1,
      }),
      CheckHeadJob: (s: WorkflowState) => ({ ...s.headJob, checks: 1, phase: "Running", done: true, nextCheckSeconds: 20 }),
    };
    const started = Date.now();
    // Act
    const { calls, failure } = await runMachine({ ...REQUEST, headJob: HEAD_JOB }, overrides, [], {});
    // Assess
    expect(failure).toBeUndefined();
    expect(calls.filter((c) => c === "CheckHeadJob")).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it("a head job that is out of time (HeadJobTimedOut from CheckHeadJob) is not retried: it is undone first, then everything before it", async () => {
    // Prepare
    const overrides = {
      CheckHeadJob: (s: WorkflowState) => {
        const checks = (s.headJob?.checks ?? 0) + 1;
        if (checks === 3)
          throw new HeadJobTimedOut("head job tower-nf/nf-head-genomics-1 was still Pending after 30 minutes (timeout 30 minutes)");
        return { ...s.headJob, checks, done: false, nextCheckSeconds: 10 };
      },
    };
    // Act
    const { calls, inputs, failure } = await runMachine({ ...REQUEST, headJob: HEAD_JOB }, overrides);
    // Assess
    expect(calls.filter((c) => c === "CheckHeadJob")).toHaveLength(3);
    expect(inputs.get("UndoHeadJob")?.error).toMatchObject({ Error: "HeadJobTimedOut" });
    expect(compensatorCalls(calls)).toEqual(COMPENSATORS);
    expect(failure?.error).toBe("HeadJobTimedOut");
    expect(failure?.cause).toMatch(/^Step LaunchHeadJob failed: HeadJobTimedOut: head job tower-nf\/nf-head-genomics-1 was still Pending/);
  });

  it("keeps the original error when ReportFailure itself fails", async () => {
    // Prepare
    const overrides = {
      ConfigureStorage: () => {
        throw new OwnershipConflict("PVC exists without our marks");
      },
      ReportFailure: () => {
        throw new Error("boom");
      },
    };
    // Act
    const { failure } = await runMachine(REQUEST, overrides);
    // Assess
    expect(failure?.error).toBe("OwnershipConflict");
    expect(failure?.cause).toContain("PVC exists without our marks");
    expect(failure?.cause).toContain("ComputeEnvironmentFailed was not reported");
  });
});
