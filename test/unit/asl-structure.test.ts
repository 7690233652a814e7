import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import {
  LAMBDA_SERVICE_ERROR_NAMES,
  LAMBDA_TIMEOUT_ERROR,
  NAMESPACE_TERMINATING_RETRY,
  PERMANENT_ERROR_NAMES,
  TRANSIENT_ERROR_NAMES,
} from "../../functions/lib/domain/errors.js";
import {
  type AslMachine,
  allStates,
  ASL_TEXT,
  catalogEntryOf,
  catchAllOf,
  compensationChainFrom,
  compensatorOf,
  definitionWithFakeArns,
  errorRuleOf,
  failureEntryOf,
  forwardOrder,
  PLACEHOLDER,
  reachableFrom,
  STATES,
  state,
  tasks,
} from "../support/asl-definition.js";

/* provision.asl.json read as a graph: valid ASL, every Task retried and caught, the run order, and where each failure goes (compensation). */

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

  it.each(tasks.map((t) => [t.name, t] as const))(
    "%s retries Lambda service errors and transient errors with capped, jittered backoff",
    (_name, task) => {
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
    },
  );

  /** The steps that create objects in the tenant's namespace: the ones that can meet it still Terminating. */
  const CREATE_IN_NAMESPACE = ["CreateNamespaceAndRbac", "ConfigureStorage", "LaunchHeadJob"];

  it.each(CREATE_IN_NAMESPACE)(
    "%s retries NamespaceTerminating on its own schedule (a few minutes), before the general retrier",
    (name) => {
      // Prepare
      const retriers = tasks.find((t) => t.name === name)!.state.Retry ?? [];
      // Act
      const index = retriers.findIndex((r) => r.ErrorEquals.includes("NamespaceTerminating"));
      const general = retriers.findIndex((r) => r.ErrorEquals.includes("KubeConflict"));
      const r = retriers[index]!;
      let total = 0;
      for (let attempt = 0; attempt < r.MaxAttempts!; attempt++)
        total += Math.min(r.MaxDelaySeconds!, r.IntervalSeconds! * r.BackoffRate! ** attempt);
      // Assess
      expect(r).toEqual(NAMESPACE_TERMINATING_RETRY);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(general);
      expect(total).toBeGreaterThan(120);
      expect(total).toBeLessThan(600);
    },
  );

  it("retries NamespaceTerminating only where something is created in the namespace", () => {
    // Act
    const retrying = tasks
      .filter((t) => (t.state.Retry ?? []).some((r) => r.ErrorEquals.includes("NamespaceTerminating")))
      .map((t) => t.name);
    // Assess
    expect(retrying.sort()).toEqual([...CREATE_IN_NAMESPACE].sort());
  });

  it("never retries a permanent error (ClusterEndpointUnreachable included): it goes straight to compensation", () => {
    // Act
    const retried = tasks
      .flatMap((t) => (t.state.Retry ?? []).flatMap((r) => r.ErrorEquals))
      .filter((e) => (PERMANENT_ERROR_NAMES as readonly string[]).includes(e));
    // Assess
    expect(PERMANENT_ERROR_NAMES).toContain("ClusterEndpointUnreachable");
    expect(retried).toEqual([]);
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
      // Update runs only (depth-first, it is reached after Report's first path): IsUpdate -> RemoveUnwantedResources ->
      // RemoveUnwantedIdentities -> Report.
      "RemoveUnwantedResources",
      "RemoveUnwantedIdentities",
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
      const mustUndo = new Set(
        order
          .slice(0, index + 1)
          .concat(siblings)
          .map(compensatorOf)
          .filter((c): c is string => !!c),
      );
      const entry = failureEntryOf(name);
      // Act
      const reachable = reachableFrom(entry);
      const chain = compensationChainFrom(entry);
      // Assess
      for (const compensator of mustUndo) expect(reachable, `${compensator} after ${name} fails`).toContain(compensator);
      expect(new Set(chain)).toEqual(mustUndo);
      const stepIndexOf = (compensator: string) =>
        Math.max(...order.flatMap((step, i) => (compensatorOf(step) === compensator ? [i] : [])));
      const indices = chain.map(stepIndexOf);
      expect(indices).toEqual([...indices].sort((a, b) => b - a));
      expect(reachable).toContain("ReportFailure");
      expect(reachable).toContain("Failed");
      expect([...reachable].filter((s) => state(s).Type === "Succeed")).toEqual([]);
    },
  );

  it("an update run (input with $.update) removes what is no longer wanted last, after every build step, and only then reports", () => {
    // Prepare
    const hasHeadJob = state("HasHeadJob");
    // Act
    const isUpdate = state(hasHeadJob.Default!);
    const removal = state("RemoveUnwantedResources");
    // Assess
    expect(hasHeadJob.Default).toBe("IsUpdate");
    expect(isUpdate.Choices).toEqual([{ Variable: "$.update", IsPresent: true, Next: "RemoveUnwantedResources" }]);
    expect(isUpdate.Default).toBe("Report");
    expect(removal.Next).toBe("RemoveUnwantedIdentities");
    expect(state("RemoveUnwantedIdentities").Next).toBe("Report");
    for (const step of ["RemoveUnwantedResources", "RemoveUnwantedIdentities"]) {
      expect(compensationChainFrom(failureEntryOf(step))).toEqual([
        "UndoHeadJob",
        "UndoStorage",
        "UndoClusterAccess",
        "UndoNamespaceAndRbac",
        "UndoIamResources",
      ]);
    }
  });

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
    expect(compensationChainFrom(catcher!.Next)).toEqual([
      "UndoHeadJob",
      "UndoStorage",
      "UndoClusterAccess",
      "UndoNamespaceAndRbac",
      "UndoIamResources",
    ]);
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

/* The same rule in the teardown (deprovision.asl.json) and the stopped-run compensation (compensate-stopped.asl.json). */

describe("every state machine: Lambda timeouts", () => {
  /**
   * The Lambdas that put an event on the bus (Report, ReportFailure, the teardown's RecordRemoval): a timed-out attempt
   * may have put it already, and a retry would put it twice. Keyed by the Lambda a Task invokes, not the Task's name:
   * the teardown runs the compensators under names of its own (RemoveStorage runs UndoStorage).
   */
  const NOT_IDEMPOTENT = new Set(["Report", "ReportFailure", "RecordRemoval"]);

  /** Every Task of every state machine in statemachines/ (Parallel branches included) and the step Lambda it invokes. */
  const everyTask = readdirSync(new URL("../../statemachines/", import.meta.url))
    .filter((file) => file.endsWith(".asl.json"))
    .sort()
    .flatMap((file) => {
      const machine = JSON.parse(readFileSync(new URL(`../../statemachines/${file}`, import.meta.url), "utf8")) as AslMachine;
      return [...allStates(machine).values()]
        .filter(({ state: s }) => s.Type === "Task")
        .map(({ name, state: s }) => {
          const step = /^\$\{([A-Za-z0-9]+)FunctionArn\}$/.exec(s.Resource ?? "")?.[1];
          return [`${file}: ${name}`, step, s] as const;
        });
    });

  it("reads the Tasks of every state machine, the teardown's and the stopped-run compensation's with provision's", () => {
    // Act
    const files = new Set(everyTask.map(([where]) => where.split(":")[0]));
    // Assess
    expect([...files]).toEqual(["compensate-stopped.asl.json", "deprovision.asl.json", "provision.asl.json"]);
    expect(everyTask.filter(([, step]) => step === undefined).map(([where]) => where)).toEqual([]);
  });

  it.each(everyTask)("%s retries a Lambda timeout (Sandbox.Timedout) only when its step is idempotent", (_where, step, task) => {
    // Act
    const timeout = (task.Retry ?? []).find((r) => r.ErrorEquals.includes(LAMBDA_TIMEOUT_ERROR));
    // Assess
    if (NOT_IDEMPOTENT.has(step!)) expect(timeout).toBeUndefined();
    else expect(timeout).toMatchObject({ ErrorEquals: [LAMBDA_TIMEOUT_ERROR], MaxAttempts: 2, JitterStrategy: "FULL" });
  });
});
