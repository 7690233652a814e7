/**
 * Step Functions' payload quota in the local runner: every state's input and output (its effective output, after
 * ResultSelector, ResultPath and OutputPath) is at most 256 KiB, or the execution fails with States.DataLimitExceeded,
 * which no Retry or Catch takes. States inside Parallel branches and Map iterations are held to it too.
 *
 * aws-local-stepfunctions has no hook for payload quotas. Its `StateMachine.prototype.execute` is the loop that runs
 * a machine's states, the top one's and (as `new StateMachine(...)` of the same class) every branch's and
 * iteration's; it tells its event logger each state's input before the state runs and its output after, inside the
 * try whose catch fails the execution. So `execute` is wrapped once: for a run given the quota (PAYLOAD_QUOTA_OPTION
 * in its run options, which the library hands down to branches and iterations), those two calls measure the payload
 * and throw DataLimitExceeded. A Parallel or Map rethrows its branch's error as it was, so the error stays uncatchable
 * on the way up; the StateFailed event dispatched first keeps the history's open state closed as a failure.
 */
import { StateMachine, type RunOptions } from "aws-local-stepfunctions";
import { json } from "./history.js";

/** Step Functions' state payload quota (256 KiB). */
export const PAYLOAD_LIMIT_BYTES = 256 * 1024;

/** The run option (passed down to branches and iterations by the library) that holds a run's states to the quota. */
const PAYLOAD_QUOTA_OPTION = "payloadQuotaBytes";

/** States.DataLimitExceeded is terminal: no Retry or Catch (not even States.ALL) takes it. */
export class DataLimitExceeded extends Error {
  readonly isRetryable = false;
  readonly isCatchable = false;
  constructor(message: string) {
    super(message);
    this.name = "States.DataLimitExceeded";
  }
}

/** The part of the library's (unexported) EventLogger the quota wraps. */
interface StateEventLogger {
  dispatchStateEnteredEvent(stateName: string, stateType: string, input: unknown): void;
  dispatchStateExitedEvent(stateName: string, stateType: string, input: unknown, output: unknown): void;
  dispatchStateFailedEvent(stateName: string, stateType: string, input: unknown, error: Error): void;
}

/** `execute`'s arguments, as the library passes them (private in its types). */
type Execute = (
  this: StateMachine,
  input: unknown,
  options: { runOptions?: Record<string, unknown>; eventLogger: StateEventLogger },
  cleanupFn: () => void,
) => Promise<unknown>;

/** Run options that hold the run, its branches and its iterations to `limitBytes`. */
export function withPayloadQuota(options: RunOptions, limitBytes = PAYLOAD_LIMIT_BYTES): RunOptions {
  enforcePayloadQuotaInLibrary();
  return Object.assign(options, { [PAYLOAD_QUOTA_OPTION]: limitBytes });
}

let installed = false;

/** Wrap the library's state loop once (see the module comment); runs without the option are untouched. */
function enforcePayloadQuotaInLibrary(): void {
  if (installed) return;
  installed = true;
  const prototype = StateMachine.prototype as unknown as { execute: Execute };
  const execute = prototype.execute;
  prototype.execute = function (this: StateMachine, input, options, cleanupFn) {
    const limitBytes = options.runOptions?.[PAYLOAD_QUOTA_OPTION];
    if (typeof limitBytes === "number") holdToQuota(options.eventLogger, limitBytes);
    return execute.call(this, input, options, cleanupFn);
  };
}

/** Measure each state's input as it enters and its output as it exits, on this one run's event logger. */
function holdToQuota(logger: StateEventLogger, limitBytes: number): void {
  const entered = logger.dispatchStateEnteredEvent.bind(logger);
  const exited = logger.dispatchStateExitedEvent.bind(logger);
  // A state's input is the previous state's output, measured as it exited: not measured twice.
  let measured: { value: unknown } | undefined;
  const fail = (stateName: string, stateType: string, input: unknown, what: "an input" | "an output"): never => {
    const error = new DataLimitExceeded(
      `The state/task '${stateName}' has ${what} with a size exceeding the maximum number of bytes service limit.`,
    );
    logger.dispatchStateFailedEvent(stateName, stateType, input, error);
    throw error;
  };
  logger.dispatchStateEnteredEvent = (stateName, stateType, input) => {
    entered(stateName, stateType, input);
    if (measured?.value === input) return;
    // The run's input (StartExecution checks it) or a branch's or iteration's, which Parameters/ItemSelector can grow.
    if (Buffer.byteLength(json(input)) > limitBytes) fail(stateName, stateType, input, "an input");
  };
  logger.dispatchStateExitedEvent = (stateName, stateType, input, output) => {
    if (Buffer.byteLength(json(output)) > limitBytes) fail(stateName, stateType, input, "an output");
    measured = { value: output };
    exited(stateName, stateType, input, output);
  };
}
