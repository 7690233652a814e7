/**
 * Runs that end without their Catch: a provision execution that timed out (the state machine's TimeoutSeconds), was
 * stopped by an operator (StopExecution: ABORTED), or failed past its Catch (FAILED without ReportFailure having
 * reported) never ran its Undo states, and still holds its environment's lease. Step Functions tells the account's
 * default bus ("Step Functions Execution Status Change", source aws.states); the stack's rule sends those events of
 * the provision state machine to functions/events/execution-stopped.ts, which starts the compensation state machine
 * (statemachines/compensate-stopped.asl.json) for that execution with what this module rebuilds from its history.
 *
 * Pure: GetExecutionHistory events in (ascending), the workflow state the Undo steps would have been given out.
 */
import type { HistoryEvent } from "@aws-sdk/client-sfn";
import { summariseHistory } from "./execution-summary.js";
import type { RemovalScope, WorkflowState } from "./workflow-state.js";

/** Step Functions' detail-type for an execution's status change (on the account's default bus). */
export const EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change";
export const STATES_EVENT_SOURCE = "aws.states";
/** The statuses of a run that may have ended without its Catch. */
export const STOPPED_STATUSES = ["TIMED_OUT", "ABORTED", "FAILED"] as const;
export type StoppedStatus = (typeof STOPPED_STATUSES)[number];

/** The compensation state machine's file and the env variable its ARN is given in. */
export const COMPENSATION_STATE_MACHINE_ARN_ENV = "COMPENSATION_STATE_MACHINE_ARN";
/**
 * How long after a stop the compensation waits (seconds): the longest step Lambda timeout, since a step invoked
 * before the stop runs to its end (the stack sets it from the steps' timeouts; the sandbox may shorten it).
 */
export const STOPPED_RUN_GRACE_ENV = "STOPPED_RUN_GRACE_SECONDS";

/** The rule's event pattern: this state machine's executions that timed out, were aborted or failed. */
/** The status changes the stopped-run rule sends on: provision runs (compensated) and teardowns (recorded). */
export function stoppedRunEventPattern(...stateMachineArns: string[]) {
  return {
    source: [STATES_EVENT_SOURCE],
    "detail-type": [EXECUTION_STATUS_CHANGE],
    detail: { status: [...STOPPED_STATUSES], stateMachineArn: stateMachineArns },
  };
}

/** The detail of a status-change event (the fields used here). */
export interface ExecutionStatusChange {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: string;
  /** epoch milliseconds */
  startDate?: number;
  /** epoch milliseconds */
  stopDate?: number | null;
  error?: string | null;
  cause?: string | null;
}

function parsed(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === "object" && !Array.isArray(value);
}

/** The run's states entered, by name (any type). */
function enteredStates(events: HistoryEvent[]): Set<string> {
  return new Set(events.map((e) => e.stateEnteredEventDetails?.name).filter((n): n is string => !!n));
}

/**
 * Whether a teardown's RecordRemoval step succeeded (the record then says what it did). A RecordRemoval that failed
 * (the registry could not be written) also exits its state, through its Catch to RecordFailed: only its Lambda's
 * success counts. The teardown's states run one at a time, so that success follows RecordRemoval's TaskStateEntered.
 */
export function recordedItsRemoval(events: HistoryEvent[]): boolean {
  let inRecordRemoval = false;
  for (const event of events) {
    if (event.type === "ExecutionSucceeded") return true;
    if (event.stateEnteredEventDetails) inRecordRemoval = event.stateEnteredEventDetails.name === "RecordRemoval";
    if (inRecordRemoval && event.type === "LambdaFunctionSucceeded") return true;
  }
  return false;
}

/** The teardown's input (start-teardown.ts teardownInput), from its ExecutionStarted event. */
export function teardownScopeOf(events: HistoryEvent[]): RemovalScope | undefined {
  const started = events.find((e) => e.type === "ExecutionStarted")?.executionStartedEventDetails?.input;
  try {
    return (JSON.parse(started ?? "null") as { removal?: RemovalScope } | null)?.removal;
  } catch {
    return undefined;
  }
}

/**
 * Whether the run's own Catch path reported the failure: ReportFailure went on to `Failed` (not through
 * FailWithoutReport). Such a FAILED run is done; anything else that ended without Report needs compensating.
 */
export function reportedItsOutcome(events: HistoryEvent[]): boolean {
  const entered = enteredStates(events);
  if (events.some((e) => e.type === "ExecutionSucceeded")) return true;
  return entered.has("ReportFailure") && entered.has("Failed") && !entered.has("FailWithoutReport");
}

/**
 * The workflow state as the run last knew it: the Start state's output (request, execution), then every state's
 * output in order, each merged over the last at the top level. A Parallel's branches each add their own step's key,
 * so both branches' results are kept; a step that was running when the run stopped has no output, and its
 * compensator finds its work by the run's marks (compensation.ts, point 2).
 */
export function stateFromHistory(events: HistoryEvent[]): Partial<WorkflowState> {
  const state: Record<string, unknown> = {};
  for (const event of events) {
    const output = parsed(event.stateExitedEventDetails?.output);
    if (isObject(output)) Object.assign(state, output);
  }
  return state as Partial<WorkflowState>;
}

/** The error the run ended with, as a Catch would have stored it at `$.error`. */
export function stopError(change: ExecutionStatusChange, events: HistoryEvent[]): { Error: string; Cause: string } {
  const aborted = events.find((e) => e.type === "ExecutionAborted")?.executionAbortedEventDetails;
  const timedOut = events.find((e) => e.type === "ExecutionTimedOut")?.executionTimedOutEventDetails;
  const failed = events.find((e) => e.type === "ExecutionFailed")?.executionFailedEventDetails;
  if (change.status === "ABORTED") {
    const why = aborted?.cause ?? change.cause ?? aborted?.error ?? change.error;
    return {
      Error: "ExecutionAborted",
      Cause: `The execution was stopped${why ? `: ${why}` : " (StopExecution)"}; its undo steps had not run.`,
    };
  }
  if (change.status === "TIMED_OUT") {
    return {
      Error: "States.Timeout",
      Cause: `The execution timed out${timedOut?.cause ? ` (${timedOut.cause})` : ""}; its undo steps had not run.`,
    };
  }
  const error = failed?.error ?? change.error ?? "States.Runtime";
  return { Error: error, Cause: failed?.cause ?? change.cause ?? "The execution failed without reaching its undo steps." };
}

/** The step the run was in when it ended: a step still running or aborted, else the one that failed, else the last entered. */
export function stoppedStep(events: HistoryEvent[]): string | undefined {
  const summary = summariseHistory(events);
  const open = [...summary.steps].reverse().find((s) => s.status === "running" || s.status === "aborted" || s.status === "failed");
  return open?.name ?? summary.failedStep ?? summary.currentStep;
}

/** The compensation execution's input: when to begin, and the state the Undo steps receive. */
export interface CompensationInput {
  /** ISO 8601: the stop plus the grace (the longest step Lambda timeout) */
  waitUntil: string;
  state: WorkflowState;
}

/** The compensation state machine's input for a stopped run, or undefined when there is nothing to undo (no request). */
export function compensationInput(
  change: ExecutionStatusChange,
  events: HistoryEvent[],
  graceSeconds: number,
): CompensationInput | undefined {
  const state = stateFromHistory(events);
  if (!state.request || !state.execution) return undefined;
  const stoppedAt = change.stopDate ? new Date(change.stopDate) : new Date(events.at(-1)?.timestamp ?? Date.now());
  const step = stoppedStep(events);
  const {
    failure: _failure,
    reportFailureError: _reportError,
    ...rest
  } = state as Partial<WorkflowState> & { failure?: unknown; reportFailureError?: unknown };
  return {
    waitUntil: new Date(stoppedAt.getTime() + graceSeconds * 1000).toISOString(),
    state: { ...rest, error: stopError(change, events), ...(step ? { failedStep: step } : {}) } as WorkflowState,
  };
}

/**
 * The compensation execution's name: one per stopped execution, so a second delivery of the event starts nothing
 * new (StartExecution answers the running one, or ExecutionAlreadyExists once it closed). At most 80 characters.
 */
export function compensationExecutionName(executionName: string, executionArn: string, hash: (text: string) => string): string {
  return `undo-${executionName.slice(0, 60)}-${hash(executionArn).slice(0, 12)}`;
}
