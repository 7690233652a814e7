/**
 * Step Functions execution histories written by hand, as the service writes them for Lambda-ARN Tasks, for the
 * tests of GET /executions/{id} and of summariseHistory (functions/lib/workflow/execution-summary.ts): the writer,
 * the results the early steps return, and a run up to the Parallel with both branches entered.
 */
import type { HistoryEvent } from "@aws-sdk/client-sfn";

export const LAMBDA = "arn:aws:lambda:eu-west-1:111122223333:function:nf-eks-";
export const T0 = Date.parse("2025-01-31T12:00:00Z");

/** Lambda's Cause for a Node handler error, as Step Functions reports it. */
export function lambdaCause(errorType: string, errorMessage: string): string {
  return JSON.stringify({ errorType, errorMessage, trace: [`${errorType}: ${errorMessage}`, "    at handler (/var/task/index.mjs:1:1)"] });
}

/**
 * Writes a history the way Step Functions does for Lambda-ARN Tasks: ids in order, each event's
 * previousEventId pointing at the previous event of its own thread (a Parallel branch is its own thread).
 */
export class HistoryWriter {
  readonly events: HistoryEvent[] = [];

  add(type: string, previousEventId: number, details: Partial<HistoryEvent> = {}): number {
    const id = this.events.length + 1;
    this.events.push({ id, previousEventId, type: type as HistoryEvent["type"], timestamp: new Date(T0 + id * 1000), ...details });
    return id;
  }

  started(input: unknown): number {
    return this.add("ExecutionStarted", 0, {
      executionStartedEventDetails: { input: JSON.stringify(input), roleArn: "arn:aws:iam::111122223333:role/sfn" },
    });
  }

  enter(type: string, name: string, prev: number): number {
    return this.add(`${type}StateEntered`, prev, { stateEnteredEventDetails: { name, input: "{}" } });
  }

  exit(type: string, name: string, prev: number, output: unknown = {}): number {
    return this.add(`${type}StateExited`, prev, { stateExitedEventDetails: { name, output: JSON.stringify(output) } });
  }

  /** Scheduled + Started; returns the Started id */
  attempt(name: string, prev: number): number {
    const scheduled = this.add("LambdaFunctionScheduled", prev, {
      lambdaFunctionScheduledEventDetails: { resource: `${LAMBDA}${name}`, input: "{}" },
    });
    return this.add("LambdaFunctionStarted", scheduled);
  }

  fail(prev: number, error: string, message: string): number {
    return this.add("LambdaFunctionFailed", prev, { lambdaFunctionFailedEventDetails: { error, cause: lambdaCause(error, message) } });
  }

  succeed(prev: number, output: unknown): number {
    return this.add("LambdaFunctionSucceeded", prev, { lambdaFunctionSucceededEventDetails: { output: JSON.stringify(output) } });
  }

  /** A Task that succeeds at the first attempt; returns the TaskStateExited id */
  task(name: string, prev: number, output: unknown): number {
    const entered = this.enter("Task", name, prev);
    return this.exit("Task", name, this.succeed(this.attempt(name, entered), output));
  }
}

export const CLUSTER = { name: "research", region: "eu-west-1", authenticationMode: "API" };
export const IAM = {
  launcherArn: "arn:aws:iam::111122223333:role/nfeks-genomics-launcher",
  launcherKind: "role",
  launcherCreated: true,
  created: [],
};
export const RBAC = { namespace: "tower-nf", serviceAccount: "tower-launcher-sa", role: "tower-launcher-role", created: [], adopted: [] };

/** Start → ResolveCluster → the Parallel with both branches entered; returns ids to continue from. */
export function upToParallel(w: HistoryWriter, iamAttempts: Array<"throttle" | "ok">) {
  w.started({ request: { tenant: "genomics" } });
  const start = w.exit("Pass", "Start", w.enter("Pass", "Start", 0));
  const resolved = w.task("ResolveCluster", start, CLUSTER);
  const parallelEntered = w.enter("Parallel", "PrepareIdentityAndNamespace", resolved);
  const parallelStarted = w.add("ParallelStateStarted", parallelEntered);
  const iamEntered = w.enter("Task", "CreateIamResources", parallelStarted);
  const rbacEntered = w.enter("Task", "CreateNamespaceAndRbac", parallelStarted);
  // The branches interleave: only previousEventId tells which Lambda event is whose.
  const rbacStarted = w.attempt("CreateNamespaceAndRbac", rbacEntered);
  let iamLast = iamEntered;
  for (const [i, outcome] of iamAttempts.entries()) {
    const started = w.attempt("CreateIamResources", iamLast);
    iamLast =
      outcome === "throttle"
        ? w.fail(started, "Throttled", `iam:CreateRole failed: Throttling: Rate exceeded (${i + 1})`)
        : w.succeed(started, IAM);
  }
  return { parallelEntered, parallelStarted, iamLast, rbacStarted };
}
