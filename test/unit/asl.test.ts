import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { ExecutionError, StateMachine } from "aws-local-stepfunctions";
import { STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import { failureSummary } from "../../functions/steps/report.js";
import {
  ClusterNotFound,
  HeadJobFailed,
  HeadJobTimedOut,
  LAMBDA_SERVICE_ERROR_NAMES,
  OwnershipConflict,
  Throttled,
  TRANSIENT_ERROR_NAMES,
} from "../../functions/lib/domain/errors.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";

// ---------------------------------------------------------------- the definition and its graph

interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  BackoffRate?: number;
  MaxAttempts?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: string;
}
interface Catcher {
  ErrorEquals: string[];
  ResultPath?: string;
  Next: string;
}
interface AslState {
  Type: string;
  Resource?: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: Array<{ Next: string; Variable?: string; IsPresent?: boolean }>;
  Result?: unknown;
  Retry?: Retrier[];
  Catch?: Catcher[];
  Branches?: AslMachine[];
  ResultPath?: string;
  ErrorPath?: string;
  CausePath?: string;
  Seconds?: number;
  SecondsPath?: string;
}
interface AslMachine {
  StartAt: string;
  States: Record<string, AslState>;
}

const ASL_PATH = new URL("../../statemachines/provision.asl.json", import.meta.url);
const ASL_TEXT = readFileSync(ASL_PATH, "utf8");
const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;

/** What the stack does at deploy time: every `${Placeholder}` becomes a Lambda ARN. */
function definitionWithFakeArns(): AslMachine {
  return JSON.parse(
    ASL_TEXT.replace(PLACEHOLDER, (_, name: string) => `arn:aws:lambda:eu-west-1:111122223333:function:nfeks-${name.replace(/FunctionArn$/, "")}`),
  ) as AslMachine;
}

const definition = JSON.parse(ASL_TEXT) as AslMachine;

interface Located {
  name: string;
  state: AslState;
  /** The Parallel state this one is a branch member of */
  parallel?: string;
}

/** Every state, including those inside Parallel branches, by name. */
function allStates(machine: AslMachine, parallel?: string, into = new Map<string, Located>()): Map<string, Located> {
  for (const [name, state] of Object.entries(machine.States)) {
    into.set(name, { name, state, parallel });
    for (const branch of state.Branches ?? []) allStates(branch, name, into);
  }
  return into;
}

const STATES = allStates(definition);
const state = (name: string): AslState => {
  const found = STATES.get(name);
  if (!found) throw new Error(`no state ${name}`);
  return found.state;
};

const placeholderOf = (s: AslState) => /^\$\{([A-Za-z0-9_]+)\}$/.exec(s.Resource ?? "")?.[1];
const catalogEntryOf = (s: AslState) => STEP_FUNCTIONS.find((e) => e.placeholder === placeholderOf(s));
const tasks = [...STATES.values()].filter((l) => l.state.Type === "Task");
const isForward = (l: Located) => ["apply", "check", "ready"].includes(catalogEntryOf(l.state)?.handler ?? "");

/** The state whose Task runs the given module's compensate handler. */
function compensatorOf(taskName: string): string | undefined {
  const module = catalogEntryOf(state(taskName))?.module;
  return tasks.find((t) => catalogEntryOf(t.state)?.module === module && catalogEntryOf(t.state)?.handler === "compensate")?.name;
}

/** The run order: depth-first along success transitions (Next, Choices, Default, Parallel branches in order). */
function forwardOrder(): string[] {
  const seen = new Set<string>();
  const order: string[] = [];
  const visit = (name: string | undefined): void => {
    if (!name || seen.has(name)) return;
    seen.add(name);
    order.push(name);
    const s = state(name);
    for (const branch of s.Branches ?? []) visit(branch.StartAt);
    for (const choice of s.Choices ?? []) visit(choice.Next);
    visit(s.Default);
    visit(s.Next);
  };
  visit(definition.StartAt);
  return order.filter((name) => {
    const located = STATES.get(name)!;
    return located.state.Type === "Task" && isForward(located);
  });
}

const catchAllOf = (s: AslState) => s.Catch?.find((c) => c.ErrorEquals.includes("States.ALL"));

/** The Choice rule that sends a run whose `$.error` is set (a Parallel branch failed) into compensation. */
const errorRuleOf = (choice: AslState) => choice.Choices?.find((c) => c.Variable === "$.error" && c.IsPresent === true);

/**
 * Where a failure of this state goes: its own Catch. Inside a Parallel branch the Catch ends the branch
 * (so the Parallel waits for its other branch), and the Choice after the Parallel routes the failure on.
 */
function failureEntryOf(name: string): string {
  const located = STATES.get(name)!;
  const catcher = catchAllOf(located.state);
  if (!catcher) throw new Error(`${name} has no Catch of States.ALL`);
  if (!located.parallel) return catcher.Next;
  const branchEnd = state(catcher.Next);
  if (STATES.get(catcher.Next)?.parallel !== located.parallel || !branchEnd.End) throw new Error(`${name}'s Catch does not end its branch`);
  const after = state(located.parallel).Next!;
  const rule = errorRuleOf(state(after));
  if (state(after).Type !== "Choice" || !rule) throw new Error(`${located.parallel} is not followed by a Choice on $.error`);
  return rule.Next;
}

/** All states reachable over every transition (success and failure). */
function reachableFrom(start: string): Set<string> {
  const seen = new Set<string>();
  const stack = [start];
  while (stack.length) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const s = state(name);
    const next = [s.Next, s.Default, ...(s.Choices ?? []).map((c) => c.Next), ...(s.Catch ?? []).map((c) => c.Next)];
    for (const n of next) if (n) stack.push(n);
  }
  return seen;
}

/** The compensators a failure runs, in order, following the chain's Next until it ends. */
function compensationChainFrom(entry: string): string[] {
  const chain: string[] = [];
  let name: string | undefined = entry;
  const guard = new Set<string>();
  while (name && !guard.has(name)) {
    guard.add(name);
    const s = state(name);
    if (s.Type === "Task" && catalogEntryOf(s)?.handler === "compensate") chain.push(name);
    name = s.Next;
  }
  return chain;
}

// ---------------------------------------------------------------- static checks

describe("provision.asl.json: structure", () => {
  it("is a valid Amazon States Language definition (asl-validator, ARNs and paths checked)", () => {
    // Prepare
    const require = createRequire(import.meta.url);
    const aslValidator = require("asl-validator") as (
      definition: unknown,
      options?: { checkArn?: boolean; checkPaths?: boolean },
    ) => { isValid: boolean; errorsText: (separator?: string) => string };
    // Act
    const result = aslValidator(definitionWithFakeArns(), { checkArn: true, checkPaths: true });
    // Assess
    expect(result.errorsText("\n")).toBe("");
    expect(result.isValid).toBe(true);
  });

  it("uses every placeholder of the step catalog, and no other", () => {
    // Prepare
    const used = new Set([...ASL_TEXT.matchAll(PLACEHOLDER)].map((m) => m[1]));
    // Act
    const catalog = new Set(STEP_FUNCTIONS.map((e) => e.placeholder));
    // Assess
    expect([...used].sort()).toEqual([...catalog].sort());
  });

  it("invokes Lambda functions directly: every Task's Resource is exactly one placeholder", () => {
    // Prepare
    const resources = tasks.map((t) => t.state.Resource);
    // Act
    const notPlaceholders = resources.filter((r) => !/^\$\{[A-Za-z0-9]+FunctionArn\}$/.test(r ?? ""));
    // Assess
    expect(tasks.length).toBe(STEP_FUNCTIONS.length);
    expect(notPlaceholders).toEqual([]);
  });

  it.each(tasks.map((t) => [t.name, t] as const))("%s retries Lambda service errors and transient errors with capped, jittered backoff", (_name, task) => {
    // Prepare
    const retriers = task.state.Retry ?? [];
    // Act
    const lambda = retriers.find((r) => LAMBDA_SERVICE_ERROR_NAMES.every((e) => r.ErrorEquals.includes(e)));
    const transient = retriers.find((r) => TRANSIENT_ERROR_NAMES.every((e) => r.ErrorEquals.includes(e)));
    // Assess
    expect(lambda).toBeDefined();
    expect(lambda!.BackoffRate).toBeGreaterThan(1);
    expect(transient).toMatchObject({ IntervalSeconds: 2, BackoffRate: 2, MaxAttempts: 6, MaxDelaySeconds: 60, JitterStrategy: "FULL" });
    for (const retrier of retriers) {
      expect(retrier.MaxDelaySeconds).toBeGreaterThan(0);
      expect(retrier.JitterStrategy).toBe("FULL");
      // Permanent errors must go straight to compensation, never be retried.
      expect(retrier.ErrorEquals).not.toContain("States.ALL");
    }
  });

  it.each(tasks.map((t) => [t.name, t] as const))("%s catches States.ALL itself (inside a Parallel branch too)", (_name, task) => {
    // Act
    const catcher = catchAllOf(task.state);
    // Assess
    expect(catcher).toBeDefined();
    expect(catcher!.ResultPath).toMatch(/^\$\.(error|compensation\.[A-Za-z]+|reportFailureError)$/);
  });

  it("each Parallel branch catches its own failure into a branch-local Pass that records the step and ends the branch", () => {
    // Prepare
    const parallel = state("PrepareIdentityAndNamespace");
    // Act
    const branches = (parallel.Branches ?? []).map((branch) => {
      const task = branch.States[branch.StartAt]!;
      const catcher = catchAllOf(task);
      return { task: branch.StartAt, catcher, onFailure: catcher ? branch.States[catcher.Next] : undefined };
    });
    // Assess: a failed branch ends normally, so the Parallel only ends once both branches have ended
    expect(branches.map((b) => b.task)).toEqual(["CreateIamResources", "CreateNamespaceAndRbac"]);
    for (const { task, catcher, onFailure } of branches) {
      expect(catcher, task).toMatchObject({ ErrorEquals: ["States.ALL"], ResultPath: "$.error" });
      expect(onFailure, task).toMatchObject({ Type: "Pass", Result: task, ResultPath: "$.failedStep", End: true });
    }
  });

  it("the Choice after the Parallel goes on when both branches succeeded and compensates both when one failed", () => {
    // Prepare
    const parallel = state("PrepareIdentityAndNamespace");
    // Act
    const choice = state(parallel.Next!);
    const rule = errorRuleOf(choice);
    // Assess
    expect(parallel.Next).toBe("DidIdentityAndNamespaceSucceed");
    expect(choice.Type).toBe("Choice");
    expect(choice.Choices).toHaveLength(1);
    expect(rule?.Next).toBe("UndoNamespaceAndRbac");
    expect(choice.Default).toBe("GrantClusterAccess");
    expect(compensationChainFrom(rule!.Next)).toEqual(["UndoNamespaceAndRbac", "UndoIamResources"]);
  });

  it("the Parallel keeps its own Catch of States.ALL as a safety net, into the same compensation", () => {
    // Act
    const catcher = catchAllOf(state("PrepareIdentityAndNamespace"));
    // Assess
    expect(catcher).toMatchObject({ ResultPath: "$.error", Next: "UndoNamespaceAndRbac" });
  });

  it("runs the steps in runbook order", () => {
    // Act
    const order = forwardOrder();
    // Assess
    expect(order).toEqual([
      "ResolveCluster",
      "CreateIamResources",
      "CreateNamespaceAndRbac",
      "GrantClusterAccess",
      "ConfigureStorage",
      "LaunchHeadJob",
      "CheckHeadJob",
      "Report",
    ]);
    expect(STATES.get("CreateIamResources")!.parallel).toBe("PrepareIdentityAndNamespace");
    expect(STATES.get("CreateNamespaceAndRbac")!.parallel).toBe("PrepareIdentityAndNamespace");
  });

  it.each(forwardOrder().map((name, index) => [name, index] as const))(
    "a failure in %s undoes every step before it, in reverse order, then reports and fails",
    (name, index) => {
      // Prepare
      const order = forwardOrder();
      const parallel = STATES.get(name)!.parallel;
      const siblings = order.filter((other) => parallel && STATES.get(other)!.parallel === parallel);
      const mustUndo = new Set(order.slice(0, index + 1).concat(siblings).map(compensatorOf).filter((c): c is string => !!c));
      const entry = failureEntryOf(name);
      // Act
      const reachable = reachableFrom(entry);
      const chain = compensationChainFrom(entry);
      // Assess
      for (const compensator of mustUndo) expect(reachable, `${compensator} after ${name} fails`).toContain(compensator);
      expect(new Set(chain)).toEqual(mustUndo);
      const stepIndexOf = (compensator: string) => Math.max(...order.flatMap((step, i) => (compensatorOf(step) === compensator ? [i] : [])));
      const indices = chain.map(stepIndexOf);
      expect(indices).toEqual([...indices].sort((a, b) => b - a));
      expect(reachable).toContain("ReportFailure");
      expect(reachable).toContain("Failed");
      expect([...reachable].filter((s) => state(s).Type === "Succeed")).toEqual([]);
    },
  );

  it("ResolveCluster has nothing to undo: its failure goes straight to ReportFailure", () => {
    // Act
    const entry = failureEntryOf("ResolveCluster");
    // Assess
    expect(entry).toBe("ReportFailure");
  });

  it("a failing Parallel undoes both of its branches", () => {
    // Act
    const chain = compensationChainFrom(failureEntryOf("CreateIamResources"));
    // Assess
    expect(chain).toEqual(["UndoNamespaceAndRbac", "UndoIamResources"]);
  });

  it("compensators never skip on failure: success and Catch go to the same next state, results at $.compensation.<Name>", () => {
    // Prepare
    const compensators = tasks.filter((t) => catalogEntryOf(t.state)?.handler === "compensate");
    // Act
    const shapes = compensators.map((c) => ({
      name: c.name,
      next: c.state.Next,
      catchNext: c.state.Catch?.map((k) => k.Next),
      resultPath: c.state.ResultPath,
      catchResultPath: c.state.Catch?.map((k) => k.ResultPath),
      catchesAll: c.state.Catch?.some((k) => k.ErrorEquals.includes("States.ALL")),
    }));
    // Assess
    expect(compensators.length).toBe(5);
    for (const shape of shapes) {
      expect(shape.catchesAll, shape.name).toBe(true);
      expect(shape.catchNext, shape.name).toEqual([shape.next]);
      expect(shape.resultPath, shape.name).toBe(`$.compensation.${shape.name}`);
      expect(shape.catchResultPath, shape.name).toEqual([`$.compensation.${shape.name}`]);
    }
  });

  it("ends a failed run in a Fail state whose error and cause come from ReportFailure's {error, cause}", () => {
    // Prepare
    const failed = state("Failed");
    // Act
    const reportFailure = state("ReportFailure");
    // Assess
    expect(failed).toMatchObject({ Type: "Fail", ErrorPath: "$.failure.error", CausePath: "$.failure.cause" });
    expect(reportFailure.ResultPath).toBe("$.failure");
    expect(reportFailure.Next).toBe("Failed");
  });

  it("waits for the head job as long as CheckHeadJob says (SecondsPath), looping until it is done", () => {
    // Prepare
    const wait = state("WaitForHeadJob");
    // Act
    const choice = state(state("CheckHeadJob").Next!);
    // Assess
    expect(wait).toMatchObject({ Type: "Wait", SecondsPath: "$.headJob.nextCheckSeconds", Next: "CheckHeadJob" });
    expect(wait.Seconds).toBeUndefined();
    expect(state("LaunchHeadJob").Next).toBe("WaitForHeadJob");
    expect(choice.Type).toBe("Choice");
    expect(choice.Choices).toEqual([{ Variable: "$.headJob.done", BooleanEquals: true, Next: "Report" }]);
    expect(choice.Default).toBe("WaitForHeadJob");
  });

  it("does not count checks: the timeout is CheckHeadJob's HeadJobTimedOut, caught into compensation", () => {
    // Prepare
    const check = state("CheckHeadJob");
    // Act
    const catcher = catchAllOf(check);
    const retried = (check.Retry ?? []).flatMap((r) => r.ErrorEquals);
    // Assess
    expect(ASL_TEXT).not.toContain("$.headJob.checks");
    expect(STATES.has("HeadJobTimedOut")).toBe(false);
    expect(retried).not.toContain("HeadJobTimedOut");
    expect(catcher).toMatchObject({ ResultPath: "$.error", Next: "UndoHeadJob" });
    expect(compensationChainFrom(catcher!.Next)).toEqual(["UndoHeadJob", "UndoStorage", "UndoClusterAccess", "UndoNamespaceAndRbac", "UndoIamResources"]);
  });

  it("stores each step's result where the state shape says", () => {
    // Prepare
    const expected: Record<string, string> = {
      ResolveCluster: "$.cluster",
      CreateIamResources: "$.iam",
      CreateNamespaceAndRbac: "$.rbac",
      GrantClusterAccess: "$.access",
      ConfigureStorage: "$.storage",
      LaunchHeadJob: "$.headJob",
      CheckHeadJob: "$.headJob",
    };
    // Act
    const actual = Object.fromEntries(Object.keys(expected).map((name) => [name, state(name).ResultPath]));
    // Assess
    expect(actual).toEqual(expected);
  });
});

// ---------------------------------------------------------------- running it (aws-local-stepfunctions)

type Handler = (input: WorkflowState) => unknown;
type JsonValue = Parameters<StateMachine["run"]>[0];

const EXECUTION = { Name: "genomics_run-1", Id: "arn:aws:states:eu-west-1:111122223333:execution:provision:genomics_run-1" };
const REQUEST = { tenant: "genomics", cluster: { name: "research", region: "eu-west-1" }, storage: { type: "pvc" } };
const HEAD_JOB = { pipeline: "nf-core/rnaseq", revision: "3.14.0" };

const taskNames = tasks.map((t) => t.name);

/** Stubs that answer like the real steps, recording each call. */
function stubHandlers(calls: string[], inputs: Map<string, WorkflowState>, overrides: Record<string, Handler> = {}) {
  const defaults: Record<string, Handler> = {
    ResolveCluster: () => ({ name: "research", region: "eu-west-1", arn: "arn:aws:eks:eu-west-1:111122223333:cluster/research", accountId: "111122223333", endpoint: "https://k8s.example", certificateAuthority: "LS0t", authenticationMode: "API", version: "1.31" }),
    CreateIamResources: () => ({ launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher", launcherKind: "role", launcherCreated: true, created: ["role/nfeks-genomics-launcher"] }),
    CreateNamespaceAndRbac: () => ({ namespace: "tower-nf", serviceAccount: "tower-launcher-sa", role: "tower-launcher-role", created: [], adopted: [] }),
    GrantClusterAccess: () => ({ method: "access-entry", principalArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher", username: "tower-launcher-user", groups: ["tower-launcher-role"], created: true }),
    ConfigureStorage: () => ({ type: "pvc", claimName: "tower-scratch", mountPath: "/scratch", annotated: [], configMap: "nextflow-config", nextflowConfig: "", created: [] }),
    LaunchHeadJob: () => ({ jobName: "nf-head-genomics-1", namespace: "tower-nf", phase: "Pending", done: false, checks: 0, launchedAt: "2025-01-01T00:00:00.000Z", nextCheckSeconds: 10 }),
    CheckHeadJob: (s) => {
      const checks = (s.headJob?.checks ?? 0) + 1;
      return { ...s.headJob, checks, phase: checks >= 2 ? "Running" : "Pending", done: checks >= 2, nextCheckSeconds: 10 * 2 ** checks };
    },
    Report: () => ({ eventBusName: "bus" }),
    ReportFailure: (s) => failureSummary(s),
  };
  for (const name of taskNames) if (catalogEntryOf(state(name))?.handler === "compensate") defaults[name] = () => ({ undone: [name], kept: [] });
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
    expect(inputs.get("ResolveCluster")).toEqual({ request: REQUEST, execution: { name: EXECUTION.Name, id: EXECUTION.Id } });
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
    expect(inputs.get("GrantClusterAccess")).toMatchObject({ cluster: { name: "research" }, iam: { launcherCreated: true }, rbac: { namespace: "tower-nf" } });
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
    expect(inputs.get("UndoIamResources")?.compensation).toMatchObject({ UndoStorage: { undone: ["UndoStorage"] }, UndoNamespaceAndRbac: { undone: ["UndoNamespaceAndRbac"] } });
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
        return { method: "access-entry", principalArn: "arn:aws:iam::111122223333:role/x", username: "tower-launcher-user", groups: ["tower-launcher-role"], created: true };
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
    expect(compensatorCalls(calls).filter((c) => c !== "UndoClusterAccess")).toEqual(["UndoStorage", "UndoNamespaceAndRbac", "UndoIamResources"]);
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
        return { launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher", launcherKind: "role", launcherCreated: true, created: ["role/nfeks-genomics-launcher"] };
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
        return { launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher", launcherKind: "role", launcherCreated: true, created: [] };
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
      LaunchHeadJob: () => ({ jobName: "nf-head-genomics-1", namespace: "tower-nf", phase: "Pending", done: false, checks: 0, launchedAt: "2025-01-01T00:00:00.000Z", nextCheckSeconds: 1 }),
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
        if (checks === 3) throw new HeadJobTimedOut("head job tower-nf/nf-head-genomics-1 was still Pending after 30 minutes (timeout 30 minutes)");
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
