/**
 * Turns aws-local-stepfunctions' event log into the history GetExecutionHistory returns for a Standard
 * workflow whose Tasks call Lambda ARNs directly:
 *
 *   ExecutionStarted
 *   TaskStateEntered → LambdaFunctionScheduled → LambdaFunctionStarted → LambdaFunctionSucceeded → TaskStateExited
 *                     (a retry: LambdaFunctionFailed → LambdaFunctionScheduled → ... for the same state)
 *                     (caught: LambdaFunctionFailed → TaskStateExited with the Catch output; uncaught: ExecutionFailed)
 *   ParallelStateEntered → ParallelStateStarted → (branch events) → ParallelStateSucceeded → ParallelStateExited
 *   Pass/Wait/Choice/Succeed: <Type>StateEntered → <Type>StateExited; Fail: FailStateEntered → ExecutionFailed
 *   ExecutionSucceeded | ExecutionFailed | ExecutionAborted | ExecutionTimedOut
 *
 * `previousEventId` follows the thread an event belongs to, as in AWS: inside a Parallel branch it points
 * to the previous event of that branch (the first one to ParallelStateStarted), which is how a reader
 * ties a LambdaFunctionFailed to the Task it belongs to when branches interleave.
 *
 * The library tells when a Task was entered, failed, retried and exited; what the Lambda itself was given
 * and returned is recorded by the runner's handler wrapper (InvocationLog), as Lambda sees it.
 */
import type { HistoryEvent, HistoryEventType } from "@aws-sdk/client-sfn";
import type { StateMachine } from "aws-local-stepfunctions";
import { ROOT_SCOPE, type StateInfo } from "./definition.js";

/** One event of aws-local-stepfunctions' `eventLogs` (the type is not exported by name). */
export type LibraryEvent = ReturnType<StateMachine["run"]>["eventLogs"] extends AsyncGenerator<infer E> ? E : never;

/** One Lambda invocation as the handler wrapper saw it. */
export interface Invocation {
  input: unknown;
  startedAt: Date;
  finishedAt?: Date;
  output?: unknown;
  /** Lambda's error: errorType and the JSON cause Step Functions reports */
  error?: { error: string; cause: string };
}

/**
 * Lambda invocations per Task state, in call order; the history consumes them one per attempt.
 * (Map iterations running one Task concurrently would share a queue; the workflows here use no Map.)
 */
export class InvocationLog {
  private readonly byState = new Map<string, { calls: Invocation[]; consumed: number }>();

  record(stateName: string, invocation: Invocation): void {
    const entry = this.byState.get(stateName) ?? { calls: [], consumed: 0 };
    entry.calls.push(invocation);
    this.byState.set(stateName, entry);
  }

  /** The next invocation of `stateName` not yet written to the history. */
  take(stateName: string): Invocation | undefined {
    const entry = this.byState.get(stateName);
    if (!entry || entry.consumed >= entry.calls.length) return undefined;
    return entry.calls[entry.consumed++];
  }
}

export interface TerminalOutcome {
  status: "SUCCEEDED" | "FAILED" | "ABORTED" | "TIMED_OUT";
  at: Date;
  output?: string;
  error?: string;
  cause?: string;
}

export interface HistoryBuilderOptions {
  states: StateInfo[];
  roleArn: string;
  invocations: InvocationLog;
  /** Called for every event appended, in order. */
  onEvent: (event: HistoryEvent) => void;
  /** Called once, with the execution's end. */
  onEnd: (outcome: TerminalOutcome) => void;
  /** StopExecution's error and cause, when the execution was stopped */
  stopDetails?: () => { error?: string; cause?: string } | undefined;
}

interface OpenState {
  type: string;
  scope: string;
  /** the last attempt failed (and has not been retried yet) */
  failed: boolean;
  /** a Catch took the failure: the state exits with the Catch output */
  caught: boolean;
  invocation?: Invocation;
}

/** `Task` → `TaskStateEntered` */
function stateEventType(type: string, suffix: "Entered" | "Exited" | "Aborted"): HistoryEventType {
  return `${type}State${suffix}` as HistoryEventType;
}

/** State types whose end can be aborted (the others are instantaneous). */
const ABORTABLE = new Set(["Task", "Wait", "Parallel", "Map"]);

export function json(value: unknown): string {
  return JSON.stringify(value === undefined ? null : value);
}

function causeText(cause: unknown): string | undefined {
  if (cause === undefined || cause === null) return undefined;
  if (typeof cause === "string") return cause;
  if (cause instanceof Error) return cause.message;
  return json(cause);
}

export class HistoryBuilder {
  readonly events: HistoryEvent[] = [];
  private readonly stateInfo = new Map<string, StateInfo>();
  private readonly open = new Map<string, OpenState>();
  /** last event id per thread (scope) */
  private readonly lastInScope = new Map<string, number>();
  private ended = false;

  constructor(private readonly opts: HistoryBuilderOptions) {
    for (const info of opts.states) this.stateInfo.set(info.name, info);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  private scopeOf(stateName: string, index?: number): string {
    const scope = this.stateInfo.get(stateName)?.scope ?? ROOT_SCOPE;
    // Map iterations run the same states concurrently: one thread per index.
    return index === undefined ? scope : `${scope}#${index}`;
  }

  private append(type: HistoryEventType, scope: string | undefined, at: Date | number, details: Partial<HistoryEvent> = {}): HistoryEvent {
    const id = this.events.length + 1;
    const previousEventId = scope === undefined ? id - 1 : (this.lastInScope.get(scope) ?? 0);
    const event: HistoryEvent = { timestamp: at instanceof Date ? at : new Date(at), type, id, previousEventId, ...details };
    this.events.push(event);
    if (scope !== undefined) this.lastInScope.set(scope, id);
    this.opts.onEvent(event);
    return event;
  }

  /** The thread inside a Parallel/Map starts at its ParallelStateStarted/MapStateStarted event. */
  private startChildThreads(stateName: string, startedId: number): void {
    for (const child of this.stateInfo.get(stateName)?.childScopes ?? []) {
      for (const key of [...this.lastInScope.keys()]) if (key === child || key.startsWith(`${child}#`)) this.lastInScope.delete(key);
      this.lastInScope.set(child, startedId);
    }
  }

  private childThreadStart(scope: string): number | undefined {
    // `<parent>/<Map>[*]#3` starts where `<parent>/<Map>[*]` started.
    const base = scope.includes("#") ? scope.slice(0, scope.indexOf("#")) : scope;
    return this.lastInScope.get(base);
  }

  private threadFor(stateName: string, index?: number): string {
    const scope = this.scopeOf(stateName, index);
    if (!this.lastInScope.has(scope)) {
      const start = this.childThreadStart(scope);
      if (start !== undefined) this.lastInScope.set(scope, start);
    }
    return scope;
  }

  /** Close the open states (those `within` the given scopes, if given): a failed Parallel aborts its other branches. */
  private abortOpenStates(at: number, within?: (scope: string) => boolean): void {
    const entries = [...this.open.entries()].reverse();
    for (const [name, state] of entries) {
      if (within && !within(state.scope)) continue;
      this.open.delete(name);
      if (state.failed || !ABORTABLE.has(state.type)) continue;
      this.append(stateEventType(state.type, "Aborted"), state.scope, at);
    }
  }

  private lambdaScheduled(name: string, state: OpenState, scope: string, at: number): void {
    const invocation = this.opts.invocations.take(name);
    state.invocation = invocation;
    // No invocation: the Task failed before calling Lambda (its input could not be built).
    if (!invocation) return;
    const info = this.stateInfo.get(name);
    this.append("LambdaFunctionScheduled", scope, at, {
      lambdaFunctionScheduledEventDetails: {
        resource: info?.resource ?? "",
        input: json(invocation.input),
        inputDetails: { truncated: false },
        ...(info?.timeoutSeconds ? { timeoutInSeconds: info.timeoutSeconds } : {}),
      },
    });
    this.append("LambdaFunctionStarted", scope, invocation.startedAt);
  }

  translate(event: LibraryEvent): void {
    if (this.ended) return;
    switch (event.type) {
      case "ExecutionStarted":
        this.append("ExecutionStarted", undefined, event.timestamp, {
          previousEventId: 0,
          executionStartedEventDetails: { input: json(event.input), inputDetails: { truncated: false }, roleArn: this.opts.roleArn },
        });
        return;

      case "StateEntered": {
        const { name, type, input } = event.state;
        const scope = this.threadFor(name, event.index);
        const state: OpenState = { type, scope, failed: false, caught: false };
        this.open.set(name, state);
        this.append(stateEventType(type, "Entered"), scope, event.timestamp, {
          stateEnteredEventDetails: { name, input: json(input), inputDetails: { truncated: false } },
        });
        if (type === "Task") this.lambdaScheduled(name, state, scope, event.timestamp);
        if (type === "Parallel") this.startChildThreads(name, this.append("ParallelStateStarted", scope, event.timestamp).id!);
        if (type === "Map")
          this.startChildThreads(
            name,
            this.append("MapStateStarted", scope, event.timestamp, {
              mapStateStartedEventDetails: { length: Array.isArray(input) ? input.length : 0 },
            }).id!,
          );
        return;
      }

      case "StateFailed": {
        const { name, type } = event.state;
        const state = this.open.get(name);
        if (!state) return;
        state.failed = true;
        const cause = causeText(event.Cause);
        if (type === "Task") {
          const invocation = state.invocation;
          if (invocation && !invocation.error && invocation.finishedAt) {
            // Lambda answered; the failure came after (ResultSelector/ResultPath): it still succeeded.
            this.append("LambdaFunctionSucceeded", state.scope, invocation.finishedAt, {
              lambdaFunctionSucceededEventDetails: { output: json(invocation.output), outputDetails: { truncated: false } },
            });
          } else if (invocation && event.Error === "States.Timeout") {
            this.append("LambdaFunctionTimedOut", state.scope, event.timestamp, {
              lambdaFunctionTimedOutEventDetails: { error: event.Error, cause },
            });
          } else if (invocation) {
            this.append("LambdaFunctionFailed", state.scope, invocation.finishedAt ?? event.timestamp, {
              lambdaFunctionFailedEventDetails: { error: invocation.error?.error ?? event.Error, cause: invocation.error?.cause ?? cause },
            });
          }
        }
        if (type === "Parallel" || type === "Map") {
          const children = this.stateInfo.get(name)?.childScopes ?? [];
          this.abortOpenStates(event.timestamp, (scope) =>
            children.some((child) => scope === child || scope.startsWith(`${child}#`) || scope.startsWith(`${child}/`)),
          );
          this.append(type === "Parallel" ? "ParallelStateFailed" : "MapStateFailed", state.scope, event.timestamp, {
            previousEventId: this.events.length,
          });
        }
        return;
      }

      case "StateRetried": {
        const { name, type } = event.state;
        const state = this.open.get(name);
        if (!state) return;
        state.failed = false;
        if (type === "Task") this.lambdaScheduled(name, state, state.scope, event.timestamp);
        if (type === "Parallel") this.startChildThreads(name, this.append("ParallelStateStarted", state.scope, event.timestamp).id!);
        if (type === "Map") this.startChildThreads(name, this.append("MapStateStarted", state.scope, event.timestamp).id!);
        return;
      }

      case "StateCaught": {
        const state = this.open.get(event.state.name);
        if (state) state.caught = true;
        return;
      }

      case "StateExited": {
        const { name, type, output } = event.state;
        const state = this.open.get(name);
        const scope = state?.scope ?? this.threadFor(name, event.index);
        if (state && !state.caught) {
          if (type === "Task" && state.invocation) {
            this.append("LambdaFunctionSucceeded", scope, state.invocation.finishedAt ?? event.timestamp, {
              lambdaFunctionSucceededEventDetails: { output: json(state.invocation.output), outputDetails: { truncated: false } },
            });
          }
          // The container ends after its last branch event, whichever branch that was.
          if (type === "Parallel") this.append("ParallelStateSucceeded", scope, event.timestamp, { previousEventId: this.events.length });
          if (type === "Map") this.append("MapStateSucceeded", scope, event.timestamp, { previousEventId: this.events.length });
        }
        this.open.delete(name);
        this.append(stateEventType(type, "Exited"), scope, event.timestamp, {
          stateExitedEventDetails: { name, output: json(output), outputDetails: { truncated: false } },
        });
        return;
      }

      case "MapIterationStarted":
      case "MapIterationSucceeded":
      case "MapIterationFailed": {
        const mapName = event.parentState.name;
        const iterationScope = `${this.stateInfo.get(mapName)?.childScopes[0] ?? mapName}#${event.index}`;
        if (!this.lastInScope.has(iterationScope)) this.lastInScope.set(iterationScope, this.childThreadStart(iterationScope) ?? 0);
        this.append(event.type, iterationScope, event.timestamp, {
          [`${event.type.charAt(0).toLowerCase()}${event.type.slice(1)}EventDetails`]: { name: mapName, index: event.index },
        });
        return;
      }

      case "ParallelBranchStarted":
      case "ParallelBranchSucceeded":
      case "ParallelBranchFailed":
        // AWS has no per-branch events: the branch's own state events say it all.
        return;

      case "ExecutionSucceeded":
        this.end({ status: "SUCCEEDED", at: new Date(event.timestamp), output: json(event.output) });
        this.append("ExecutionSucceeded", undefined, event.timestamp, {
          executionSucceededEventDetails: { output: json(event.output), outputDetails: { truncated: false } },
        });
        return;

      case "ExecutionFailed": {
        this.abortOpenStates(event.timestamp);
        const cause = causeText(event.Cause);
        this.end({ status: "FAILED", at: new Date(event.timestamp), error: event.Error, cause });
        this.append("ExecutionFailed", undefined, event.timestamp, { executionFailedEventDetails: { error: event.Error, cause } });
        return;
      }

      case "ExecutionAborted": {
        this.abortOpenStates(event.timestamp);
        const stop = this.opts.stopDetails?.() ?? {};
        this.end({ status: "ABORTED", at: new Date(event.timestamp), error: stop.error, cause: stop.cause });
        this.append("ExecutionAborted", undefined, event.timestamp, {
          executionAbortedEventDetails: { ...(stop.error ? { error: stop.error } : {}), ...(stop.cause ? { cause: stop.cause } : {}) },
        });
        return;
      }

      case "ExecutionTimeout":
        this.abortOpenStates(event.timestamp);
        this.end({
          status: "TIMED_OUT",
          at: new Date(event.timestamp),
          error: "States.Timeout",
          cause: "The execution ran longer than the state machine's TimeoutSeconds.",
        });
        this.append("ExecutionTimedOut", undefined, event.timestamp, {
          executionTimedOutEventDetails: {
            error: "States.Timeout",
            cause: "The execution ran longer than the state machine's TimeoutSeconds.",
          },
        });
        return;
    }
  }

  /** The execution ended without a terminal event from the library (a runner fault): close it as failed. */
  failUnfinished(error: string, cause: string): void {
    if (this.ended) return;
    const now = Date.now();
    this.abortOpenStates(now);
    this.end({ status: "FAILED", at: new Date(now), error, cause });
    this.append("ExecutionFailed", undefined, now, { executionFailedEventDetails: { error, cause } });
  }

  private end(outcome: TerminalOutcome): void {
    this.ended = true;
    this.opts.onEnd(outcome);
  }
}
