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

/** What the walk over the history keeps track of, event by event. */
interface HistoryWalk {
  steps: Map<string, StepState>;
  /** event id → the state it belongs to, and its type */
  stateOfEvent: Map<number, string>;
  typeOfEvent: Map<number, string>;
  /** state → the Parallel/Map it runs inside */
  parentOf: Map<string, string | undefined>;
  /** Parallel and Map states */
  containers: Set<string>;
  /** open states, in entry order */
  open: string[];
  lastEntered?: string;
  /** the execution's own end event type, once seen */
  terminal?: string;
}

function newWalk(): HistoryWalk {
  return { steps: new Map(), stateOfEvent: new Map(), typeOfEvent: new Map(), parentOf: new Map(), containers: new Set(), open: [] };
}

function close(walk: HistoryWalk, name: string): void {
  const at = walk.open.lastIndexOf(name);
  if (at >= 0) walk.open.splice(at, 1);
}

function isInside(walk: HistoryWalk, name: string, container: string): boolean {
  for (let parent = walk.parentOf.get(name); parent !== undefined; parent = walk.parentOf.get(parent))
    if (parent === container) return true;
  return false;
}

/** The innermost open Parallel/Map that is `owner` or holds it. */
function containerOf(walk: HistoryWalk, owner: string | undefined): string | undefined {
  if (owner === undefined) return undefined;
  for (
    let c: string | undefined = walk.containers.has(owner) ? owner : walk.parentOf.get(owner);
    c !== undefined;
    c = walk.parentOf.get(c)
  ) {
    if (walk.open.includes(c)) return c;
  }
  return undefined;
}

/** The state an event without a name belongs to: where its previousEventId chain leads. */
function ownerOf(walk: HistoryWalk, event: HistoryEvent): string | undefined {
  const owner = event.previousEventId !== undefined ? walk.stateOfEvent.get(event.previousEventId) : undefined;
  // Without a usable chain: the most recently entered Task still open.
  return owner ?? [...walk.open].reverse().find((name) => walk.steps.has(name));
}

/** A state entered: note where it runs (inside which Parallel/Map), open it, and (re)start a Task's step. */
function enterState(walk: HistoryWalk, event: HistoryEvent, name: string, type: string, at: string): void {
  const previous = event.previousEventId;
  const previousOwner = previous !== undefined ? walk.stateOfEvent.get(previous) : undefined;
  if (previousOwner !== undefined) {
    const opensContainer = CONTAINER_STARTED.has(walk.typeOfEvent.get(previous!) ?? "");
    walk.parentOf.set(name, opensContainer ? previousOwner : walk.parentOf.get(previousOwner));
  }
  if (event.id !== undefined) walk.stateOfEvent.set(event.id, name);
  if (type === "ParallelStateEntered" || type === "MapStateEntered") walk.containers.add(name);
  close(walk, name);
  walk.open.push(name);
  walk.lastEntered = name;
  if (type === "TaskStateEntered") {
    const step = walk.steps.get(name) ?? { name, status: "running", startedAt: at, retries: 0, pendingFailure: false };
    // A state visited again (a wait loop) runs again.
    step.status = "running";
    step.pendingFailure = false;
    walk.steps.set(name, step);
  }
}

/** A Parallel/Map ended: a failed branch aborts the others, and a branch's failed Task never exits. */
function endInside(walk: HistoryWalk, container: string, at: string): void {
  for (const inside of walk.open.filter((n) => isInside(walk, n, container))) {
    close(walk, inside);
    const insideStep = walk.steps.get(inside);
    if (insideStep && insideStep.status === "running") {
      insideStep.status = "aborted";
      insideStep.finishedAt = at;
    }
    if (insideStep) insideStep.pendingFailure = false;
  }
}

function exitState(walk: HistoryWalk, name: string, at: string): void {
  close(walk, name);
  const step = walk.steps.get(name);
  if (!step) return;
  // Exiting after a failed attempt means a Catch took it: the step failed, the run went on.
  step.status = step.pendingFailure ? "failed" : "succeeded";
  step.finishedAt = at;
  step.pendingFailure = false;
}

function abortState(walk: HistoryWalk, name: string | undefined, at: string): void {
  if (name !== undefined) close(walk, name);
  const step = name !== undefined ? walk.steps.get(name) : undefined;
  if (!step) return;
  if (step.status === "running") step.status = "aborted";
  step.finishedAt = at;
  step.pendingFailure = false;
}

/** One attempt of a Task's work: scheduled (a retry when the last one failed), succeeded, or failed. */
function recordAttempt(step: StepState, event: HistoryEvent, type: string, at: string): void {
  if (ATTEMPT_SCHEDULED.has(type)) {
    if (step.pendingFailure) step.retries++;
    step.pendingFailure = false;
    step.status = "running";
    delete step.error;
    delete step.finishedAt;
    return;
  }
  if (type in ATTEMPT_SUCCEEDED) {
    step.result = parseOutput(ATTEMPT_SUCCEEDED[type]!(event));
    return;
  }
  if (type in ATTEMPT_FAILED) {
    const details = ATTEMPT_FAILED[type]!(event) ?? {};
    step.pendingFailure = true;
    step.status = "failed";
    step.finishedAt = at;
    step.error = { error: details.error ?? type, ...(details.cause !== undefined ? { cause: readableCause(details.cause) } : {}) };
  }
}

function applyEvent(walk: HistoryWalk, event: HistoryEvent): void {
  const type = event.type ?? "";
  const at = iso(event.timestamp);
  if (event.id !== undefined) walk.typeOfEvent.set(event.id, type);
  if (type.endsWith("StateEntered") && event.stateEnteredEventDetails?.name) {
    enterState(walk, event, event.stateEnteredEventDetails.name, type, at);
    return;
  }

  const exitedName = type.endsWith("StateExited") ? event.stateExitedEventDetails?.name : undefined;
  // A container's own end points back at its last branch event: it belongs to the container still open above it.
  const name = exitedName ?? (CONTAINER_ENDED.has(type) ? containerOf(walk, ownerOf(walk, event)) : ownerOf(walk, event));
  if (name !== undefined && event.id !== undefined) walk.stateOfEvent.set(event.id, name);

  if (TERMINAL.has(type)) {
    walk.terminal = type;
    return;
  }
  if (CONTAINER_ENDED.has(type) && name !== undefined) endInside(walk, name, at);
  if (exitedName !== undefined) exitState(walk, exitedName, at);
  else if (type.endsWith("StateAborted")) abortState(walk, name, at);
  else {
    const step = name !== undefined ? walk.steps.get(name) : undefined;
    if (step) recordAttempt(step, event, type, at);
  }
}

/** Each step as the walk left it, settled by how the execution stands. */
function settledSteps(walk: HistoryWalk): StepSummary[] {
  return [...walk.steps.values()].map(({ pendingFailure, ...step }) => {
    // Cut short by the end of the execution.
    if (walk.terminal && step.status === "running") return { ...step, status: "aborted" as const };
    // Between a failed attempt and its retry the step is still running (the error says why it is retrying).
    if (!walk.terminal && pendingFailure && walk.open.includes(step.name)) {
      const { finishedAt: _unfinished, ...running } = step;
      return { ...running, status: "running" as const };
    }
    return step;
  });
}

/** Summarise a history given in ascending order (GetExecutionHistory with reverseOrder false). */
export function summariseHistory(events: HistoryEvent[]): HistorySummary {
  const walk = newWalk();
  for (const event of events) applyEvent(walk, event);
  const list = settledSteps(walk);
  const summary: HistorySummary = { steps: list, retries: list.reduce((sum, s) => sum + s.retries, 0) };
  if (!walk.terminal && walk.open.length) summary.currentStep = walk.open[walk.open.length - 1];
  if (walk.terminal === "ExecutionFailed" || walk.terminal === "ExecutionTimedOut") {
    summary.failedStep = list.find((s) => s.status === "failed")?.name ?? walk.lastEntered;
  }
  return summary;
}
