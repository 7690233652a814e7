/** summariseHistory (functions/lib/workflow/execution-summary.ts): retries, aborted branches, wait loops and the failed step, read from a history. */
import { describe, expect, it } from "vitest";
import { summariseHistory } from "../../functions/lib/workflow/execution-summary.js";
import { HistoryWriter, lambdaCause, T0, upToParallel } from "../support/execution-history.js";

describe("summariseHistory", () => {
  it("tells a step waiting for its retry as running, with the error that is being retried", () => {
    // Prepare
    const w = new HistoryWriter();
    upToParallel(w, ["throttle"]);
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    const iam = summary.steps.find((s) => s.name === "CreateIamResources")!;
    expect(iam).toMatchObject({
      status: "running",
      retries: 0,
      error: { error: "Throttled", cause: "iam:CreateRole failed: Throttling: Rate exceeded (1)" },
    });
    expect(iam.finishedAt).toBeUndefined();
    expect(summary.steps.find((s) => s.name === "CreateNamespaceAndRbac")).toMatchObject({ status: "running" });
    expect(summary.currentStep).toBe("CreateNamespaceAndRbac");
    expect(summary.failedStep).toBeUndefined();
  });

  it("counts a retry once the failed attempt is scheduled again", () => {
    // Prepare
    const w = new HistoryWriter();
    const p = upToParallel(w, ["throttle", "throttle"]);
    w.attempt("CreateIamResources", p.iamLast);
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    expect(summary.steps.find((s) => s.name === "CreateIamResources")).toMatchObject({ status: "running", retries: 2 });
    expect(summary.steps.find((s) => s.name === "CreateIamResources")!.error).toBeUndefined();
    expect(summary.retries).toBe(2);
  });

  it("marks a branch still running when its sibling failed as aborted, and the failing branch's Task as failed", () => {
    // Prepare
    const w = new HistoryWriter();
    const p = upToParallel(w, []);
    const rbacFailed = w.fail(p.rbacStarted, "NotAllowed", "kube:POST namespaces failed (HTTP 403): forbidden");
    const aborted = w.add("TaskStateAborted", p.iamLast);
    const parallelFailed = w.add("ParallelStateFailed", Math.max(rbacFailed, aborted));
    w.add("ExecutionFailed", parallelFailed, {
      executionFailedEventDetails: { error: "NotAllowed", cause: lambdaCause("NotAllowed", "forbidden") },
    });
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    expect(summary.steps.find((s) => s.name === "CreateIamResources")).toMatchObject({ status: "aborted" });
    expect(summary.steps.find((s) => s.name === "CreateNamespaceAndRbac")).toMatchObject({
      status: "failed",
      error: { error: "NotAllowed" },
    });
    expect(summary.failedStep).toBe("CreateNamespaceAndRbac");
    expect(summary.currentStep).toBeUndefined();
  });

  it("follows a wait loop: one entry for the check step, its result the latest", () => {
    // Prepare
    const w = new HistoryWriter();
    w.started({});
    let last = 0;
    for (const phase of ["Pending", "Running"]) {
      last = w.exit("Wait", "WaitForHeadJob", w.enter("Wait", "WaitForHeadJob", last));
      last = w.task("CheckHeadJob", last, { phase, done: false });
      last = w.exit("Choice", "IsHeadJobDone", w.enter("Choice", "IsHeadJobDone", last));
    }
    w.enter("Wait", "WaitForHeadJob", last);
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    expect(summary.steps).toHaveLength(1);
    expect(summary.steps[0]).toMatchObject({
      name: "CheckHeadJob",
      status: "succeeded",
      result: { phase: "Running", done: false },
      retries: 0,
    });
    // First entered at event 4 (after the first wait), last exited at event 17 (the second round).
    expect(summary.steps[0]!.startedAt).toBe(new Date(T0 + 4_000).toISOString());
    expect(summary.steps[0]!.finishedAt).toBe(new Date(T0 + 17_000).toISOString());
    expect(summary.currentStep).toBe("WaitForHeadJob");
  });

  it("names the last state entered as the failed step when no Task failed (a Fail state reached by a Choice)", () => {
    // Prepare
    const w = new HistoryWriter();
    w.started({});
    const choice = w.exit("Choice", "IsHeadJobDone", w.enter("Choice", "IsHeadJobDone", 0));
    const fail = w.enter("Fail", "HeadJobNeverRan", choice);
    w.add("ExecutionFailed", fail, { executionFailedEventDetails: { error: "HeadJobFailed", cause: "gone" } });
    // Act
    const summary = summariseHistory(w.events);
    // Assess
    expect(summary.failedStep).toBe("HeadJobNeverRan");
    expect(summary.steps).toEqual([]);
  });
});
