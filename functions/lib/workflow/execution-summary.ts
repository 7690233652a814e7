/**
 * What an execution's history says, for people: which step runs now, which failed, what each finished
 * step returned and how many attempts it took. Pure: GetExecutionHistory events in (ascending), a
 * summary out. Works on AWS's history and on the local runner's, which has the same shape.
 *
 * A "step" is a Task state (the work the runbook names); Pass, Wait and Choice states are plumbing,
 * though the current step may be one of them (a run waiting on its head job is in `WaitForHeadJob`).
 * Lambda events carry no state name: they belong to the state their `previousEventId` chain leads to,
 * which is what keeps interleaved Parallel branches apart.
 */
import type { HistoryEvent } from "@aws-sdk/client-sfn";

export type StepStatus = "succeeded" | "failed" | "running" | "aborted";

export interface StepSummary {
  name: string;
  status: StepStatus;
  /** ISO 8601: when the state was first entered */
  startedAt: string;
  /** ISO 8601: when it last exited (or failed, or was aborted) */
  finishedAt?: string;
  /** The Task's result as its Lambda returned it (what the state machine stores at `$.iam`, `$.rbac`, ...) */
  result?: unknown;
  /** Failed attempts that were retried */
  retries: number;
  /** The error of the last attempt, when it failed */
  error?: { error: string; cause?: string };
}

export interface HistorySummary {
  /** The last state entered and not yet left (only while the execution runs) */
  currentStep?: string;
  /** The step whose failure failed the execution (only when it failed) */
  failedStep?: string;
  steps: StepSummary[];
  /** Retries over all steps */
  retries: number;
}

/** Lambda puts `{"errorType","errorMessage","trace"}` in the Cause; people want the message. */
export function readableCause(cause: string): string;
export function readableCause(cause: string | undefined): string | undefined;
export function readableCause(cause: string | undefined): string | undefined {
  if (cause === undefined) return undefined;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (parsed && typeof parsed === "object" && typeof parsed.errorMessage === "string") return parsed.errorMessage;
  } catch {
    // plain text
  }
  return cause;
}

function parseOutput(output: string | undefined): unknown {
  if (output === undefined) return undefined;
  try {
    return JSON.parse(output);
  } catch {
    return output;
  }
}

const TERMINAL = new Set(["ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"]);
/** Task-like failure events: Lambda ARNs, service integrations (`arn:aws:states:::lambda:invoke`) and activities. */
const ATTEMPT_SCHEDULED = new Set(["LambdaFunctionScheduled", "TaskScheduled", "ActivityScheduled"]);
const ATTEMPT_SUCCEEDED: Record<string, (e: HistoryEvent) => string | undefined> = {
  LambdaFunctionSucceeded: (e) => e.lambdaFunctionSucceededEventDetails?.output,
  TaskSucceeded: (e) => e.taskSucceededEventDetails?.output,
  ActivitySucceeded: (e) => e.activitySucceededEventDetails?.output,
};
const ATTEMPT_FAILED: Record<string, (e: HistoryEvent) => { error?: string; cause?: string } | undefined> = {
  LambdaFunctionFailed: (e) => e.lambdaFunctionFailedEventDetails,
  LambdaFunctionTimedOut: (e) => e.lambdaFunctionTimedOutEventDetails,
  LambdaFunctionScheduleFailed: (e) => e.lambdaFunctionScheduleFailedEventDetails,
  LambdaFunctionStartFailed: (e) => e.lambdaFunctionStartFailedEventDetails,
  TaskFailed: (e) => e.taskFailedEventDetails,
  TaskTimedOut: (e) => e.taskTimedOutEventDetails,
  TaskStartFailed: (e) => e.taskStartFailedEventDetails,
  TaskSubmitFailed: (e) => e.taskSubmitFailedEventDetails,
  ActivityFailed: (e) => e.activityFailedEventDetails,
  ActivityTimedOut: (e) => e.activityTimedOutEventDetails,
  ActivityScheduleFailed: (e) => e.activityScheduleFailedEventDetails,
};

interface StepState extends StepSummary {
  /** the last attempt failed and no new attempt has been scheduled yet */
  pendingFailure: boolean;
}

/** Events that open the inside of a Parallel or Map: the first state of a branch points back to one of them. */
const CONTAINER_STARTED = new Set(["ParallelStateStarted", "MapStateStarted", "MapIterationStarted"]);
/** Events that end a Parallel or Map: whatever still runs inside it is over. */
const CONTAINER_ENDED = new Set([
  "ParallelStateSucceeded",
  "ParallelStateFailed",
  "ParallelStateAborted",
  "ParallelStateExited",
  "MapStateSucceeded",
  "MapStateFailed",
  "MapStateAborted",
  "MapStateExited",
]);

function iso(date: Date | undefined): string {
  return (date ?? new Date(0)).toISOString();
}

/** Summarise a history given in ascending order (GetExecutionHistory with reverseOrder false). */
export function summariseHistory(events: HistoryEvent[]): HistorySummary {
  const steps = new Map<string, StepState>();
  /** event id → the state it belongs to, and its type */
  const stateOfEvent = new Map<number, string>();
  const typeOfEvent = new Map<number, string>();
  /** state → the Parallel/Map it runs inside */
  const parentOf = new Map<string, string | undefined>();
  /** Parallel and Map states */
  const containers = new Set<string>();
  /** open states, in entry order */
  const open: string[] = [];
  let lastEntered: string | undefined;
  let terminal: string | undefined;

  const close = (name: string) => {
    const at = open.lastIndexOf(name);
    if (at >= 0) open.splice(at, 1);
  };
  const isInside = (name: string, container: string): boolean => {
    for (let parent = parentOf.get(name); parent !== undefined; parent = parentOf.get(parent)) if (parent === container) return true;
    return false;
  };
  const containerOf = (owner: string | undefined): string | undefined => {
    if (owner === undefined) return undefined;
    for (let c: string | undefined = containers.has(owner) ? owner : parentOf.get(owner); c !== undefined; c = parentOf.get(c)) {
      if (open.includes(c)) return c;
    }
    return undefined;
  };
  const ownerOf = (event: HistoryEvent): string | undefined => {
    const owner = event.previousEventId !== undefined ? stateOfEvent.get(event.previousEventId) : undefined;
    // Without a usable chain: the most recently entered Task still open.
    return owner ?? [...open].reverse().find((name) => steps.has(name));
  };

  for (const event of events) {
    const type = event.type ?? "";
    const at = iso(event.timestamp);
    if (event.id !== undefined) typeOfEvent.set(event.id, type);

    if (type.endsWith("StateEntered") && event.stateEnteredEventDetails?.name) {
      const name = event.stateEnteredEventDetails.name;
      const previous = event.previousEventId;
      const previousOwner = previous !== undefined ? stateOfEvent.get(previous) : undefined;
      if (previousOwner !== undefined) {
        const opensContainer = CONTAINER_STARTED.has(typeOfEvent.get(previous!) ?? "");
        parentOf.set(name, opensContainer ? previousOwner : parentOf.get(previousOwner));
      }
      if (event.id !== undefined) stateOfEvent.set(event.id, name);
      if (type === "ParallelStateEntered" || type === "MapStateEntered") containers.add(name);
      close(name);
      open.push(name);
      lastEntered = name;
      if (type === "TaskStateEntered") {
        const step = steps.get(name) ?? { name, status: "running", startedAt: at, retries: 0, pendingFailure: false };
        // A state visited again (a wait loop) runs again.
        step.status = "running";
        step.pendingFailure = false;
        steps.set(name, step);
      }
      continue;
    }

    const exitedName = type.endsWith("StateExited") ? event.stateExitedEventDetails?.name : undefined;
    // A container's own end points back at its last branch event: it belongs to the container still open above it.
    const name = exitedName ?? (CONTAINER_ENDED.has(type) ? containerOf(ownerOf(event)) : ownerOf(event));
    if (name !== undefined && event.id !== undefined) stateOfEvent.set(event.id, name);
    const step = name !== undefined ? steps.get(name) : undefined;

    if (TERMINAL.has(type)) {
      terminal = type;
      continue;
    }
    if (CONTAINER_ENDED.has(type) && name !== undefined) {
      // A failed branch aborts the others; a branch's failed Task never exits.
      for (const inside of open.filter((n) => isInside(n, name))) {
        close(inside);
        const insideStep = steps.get(inside);
        if (insideStep && insideStep.status === "running") {
          insideStep.status = "aborted";
          insideStep.finishedAt = at;
        }
        if (insideStep) insideStep.pendingFailure = false;
      }
    }
    if (exitedName !== undefined) {
      const exited = exitedName;
      close(exited);
      const exitedStep = steps.get(exited);
      if (exitedStep) {
        // Exiting after a failed attempt means a Catch took it: the step failed, the run went on.
        exitedStep.status = exitedStep.pendingFailure ? "failed" : "succeeded";
        exitedStep.finishedAt = at;
        exitedStep.pendingFailure = false;
      }
      continue;
    }
    if (type.endsWith("StateAborted")) {
      if (name !== undefined) close(name);
      if (step) {
        if (step.status === "running") step.status = "aborted";
        step.finishedAt = at;
        step.pendingFailure = false;
      }
      continue;
    }
    if (!step) continue;
    if (ATTEMPT_SCHEDULED.has(type)) {
      if (step.pendingFailure) step.retries++;
      step.pendingFailure = false;
      step.status = "running";
      delete step.error;
      delete step.finishedAt;
      continue;
    }
    if (type in ATTEMPT_SUCCEEDED) {
      step.result = parseOutput(ATTEMPT_SUCCEEDED[type]!(event));
      continue;
    }
    if (type in ATTEMPT_FAILED) {
      const details = ATTEMPT_FAILED[type]!(event) ?? {};
      step.pendingFailure = true;
      step.status = "failed";
      step.finishedAt = at;
      step.error = { error: details.error ?? type, ...(details.cause !== undefined ? { cause: readableCause(details.cause) } : {}) };
    }
  }

  const list: StepSummary[] = [...steps.values()].map(({ pendingFailure, ...step }) => {
    // Cut short by the end of the execution.
    if (terminal && step.status === "running") return { ...step, status: "aborted" as const };
    // Between a failed attempt and its retry the step is still running (the error says why it is retrying).
    if (!terminal && pendingFailure && open.includes(step.name)) {
      const { finishedAt: _unfinished, ...running } = step;
      return { ...running, status: "running" as const };
    }
    return step;
  });
  const summary: HistorySummary = { steps: list, retries: list.reduce((sum, s) => sum + s.retries, 0) };
  if (!terminal && open.length) summary.currentStep = open[open.length - 1];
  if (terminal === "ExecutionFailed" || terminal === "ExecutionTimedOut") {
    summary.failedStep = list.find((s) => s.status === "failed")?.name ?? lastEntered;
  }
  return summary;
}
