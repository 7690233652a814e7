/**
 * GET /executions/{id} (HTTP API, payload format 2.0): where a provisioning run is, from DescribeExecution
 * and GetExecutionHistory. `id` is the execution name (as POST /provision returns it) or its ARN, URL-encoded.
 *
 *   200 {executionArn, name, status, startDate, stopDate?, currentStep?, failedStep?, steps, retries, error?, cause?}
 *   400 InvalidRequest     the id is neither an execution name nor an execution ARN
 *   404 ExecutionNotFound  no such execution of this deployment's state machine
 *   503 Throttled | ClusterUnreachable (Retry-After)   Step Functions is busy: try again
 *   500 InternalError      anything else (details in the log, never in the response)
 */
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { paginateGetExecutionHistory, type DescribeExecutionOutput, type HistoryEvent, type SFNClient } from "@aws-sdk/client-sfn";
import { parseArn } from "../lib/domain/arn.js";
import { sfnClient } from "../lib/aws/clients.js";
import { DEPROVISION_STATE_MACHINE_ARN_ENV, STATE_MACHINE_ARN_ENV } from "../lib/domain/deploy-config.js";
import { executionArnFor } from "../lib/domain/execution-name.js";
import { readableCause, summariseHistory, type StepSummary } from "../lib/workflow/execution-summary.js";
import { httpHandler } from "../lib/workflow/middleware.js";
import { shownResult } from "../lib/workflow/step-result-fields.js";
import { isAwsError } from "../lib/workflow/normalise-error.js";
import { describeExecutionIfAny, stateMachineArnFrom } from "../lib/entry/start-provisioning.js";
import { errorResponse, json, type Response } from "./http-response.js";

export interface StatusDeps {
  sfn?: SFNClient;
  /** This deployment's state machine (default: the STATE_MACHINE_ARN variable) */
  stateMachineArn?: string;
  /** Its teardown state machine (default: the DEPROVISION_STATE_MACHINE_ARN variable): its runs are addressed by ARN */
  deprovisionStateMachineArn?: string;
}

export interface ExecutionStatusView {
  executionArn: string;
  name: string;
  status: string;
  startDate: string;
  stopDate?: string;
  currentStep?: string;
  failedStep?: string;
  steps: StepSummary[];
  retries: number;
  error?: string;
  cause?: string;
}

/** Step Functions' execution names: 1-80 characters, no whitespace, brackets, wildcards, specials or controls. */
const EXECUTION_NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]{1,80}$/;

export type ParsedExecutionId = { ok: true; executionArn: string } | { ok: false; status: 400 | 404; message: string };

/**
 * The execution ARN an id names: an ARN as given (only of our state machine, when that is known: an ARN needs no
 * STATE_MACHINE_ARN), or a name under our state machine.
 */
export function executionArnOf(rawId: string | undefined, deps: StatusDeps): ParsedExecutionId {
  let id = (rawId ?? "").trim();
  // API Gateway decodes path parameters once; an id encoded twice (or by a client that did it itself) is decoded here.
  if (/%[0-9A-Fa-f]{2}/.test(id)) {
    try {
      id = decodeURIComponent(id);
    } catch {
      return { ok: false, status: 400, message: "the execution id is not validly URL-encoded" };
    }
  }
  if (!id) return { ok: false, status: 400, message: "give an execution name or an execution ARN" };
  if (id.startsWith("arn:")) {
    const arn = parseArn(id);
    const parts = arn?.resource.split(":") ?? [];
    if (arn?.service !== "states" || parts.length !== 3 || parts[0] !== "execution" || !parts[1] || !EXECUTION_NAME.test(parts[2]!)) {
      return {
        ok: false,
        status: 400,
        message: "the id is not a Step Functions execution ARN (arn:aws:states:<region>:<account>:execution:<state machine>:<name>)",
      };
    }
    // Only this deployment's runs are visible here (a teardown's too).
    const stateMachineArn = deps.stateMachineArn ?? process.env[STATE_MACHINE_ARN_ENV];
    const deprovisionArn = deps.deprovisionStateMachineArn ?? process.env[DEPROVISION_STATE_MACHINE_ARN_ENV];
    const ours = [stateMachineArn, deprovisionArn].filter((arn): arn is string => !!arn);
    if (stateMachineArn && !ours.some((machine) => executionArnFor(machine, parts[2]!) === id)) {
      return { ok: false, status: 404, message: "no execution of this deployment's state machine has that ARN" };
    }
    return { ok: true, executionArn: id };
  }
  if (!EXECUTION_NAME.test(id)) {
    return {
      ok: false,
      status: 400,
      message: 'the id is not an execution name (1-80 characters, no spaces or any of <>{}[]?*"#%\\^|~`$&,;:/)',
    };
  }
  return { ok: true, executionArn: executionArnFor(stateMachineArnFrom(deps), id) };
}

/** Every event, oldest first (GetExecutionHistory pages at most 1000 at a time). */
export async function fullHistory(sfn: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  for await (const page of paginateGetExecutionHistory(
    { client: sfn },
    { executionArn, reverseOrder: false, maxResults: 1000, includeExecutionData: true },
  )) {
    events.push(...(page.events ?? []));
  }
  return events;
}

/** FailWithoutReport's cause: the failed step's Cause, then why the failure could not be reported. */
const UNREPORTED_CAUSE = /^(\{[\s\S]*\}) (\(ComputeEnvironmentFailed was not reported: [\s\S]*\))$/;

/**
 * The execution's cause for people: Lambda's `{"errorType","errorMessage","trace"}` becomes its message
 * (the stack trace is for the logs), also when FailWithoutReport wrapped it in a sentence of its own.
 */
function readableExecutionCause(cause: string): string {
  const unreported = UNREPORTED_CAUSE.exec(cause);
  if (unreported) return `${readableCause(unreported[1]!)} ${unreported[2]}`;
  return readableCause(cause);
}

/**
 * A step as the response shows it: its result holds only the fields the step's allowlist shows
 * (workflow/step-result-fields.ts), never what a result carries for its compensator alone.
 */
function shownStep(step: StepSummary): StepSummary {
  if (step.result === undefined) return step;
  const { result, ...rest } = step;
  const shown = shownResult(step.name, result);
  return shown === undefined ? rest : { ...rest, result: shown };
}

function statusView(execution: DescribeExecutionOutput, events: HistoryEvent[]): ExecutionStatusView {
  const summary = summariseHistory(events);
  const running = execution.status === "RUNNING";
  const failed = execution.status === "FAILED" || execution.status === "TIMED_OUT" || execution.status === "ABORTED";
  return {
    executionArn: execution.executionArn ?? "",
    name: execution.name ?? "",
    status: execution.status ?? "UNKNOWN",
    startDate: (execution.startDate ?? new Date(0)).toISOString(),
    ...(execution.stopDate ? { stopDate: execution.stopDate.toISOString() } : {}),
    ...(running && summary.currentStep ? { currentStep: summary.currentStep } : {}),
    ...(failed && summary.failedStep ? { failedStep: summary.failedStep } : {}),
    steps: summary.steps.map(shownStep),
    retries: summary.retries,
    ...(failed && execution.error !== undefined ? { error: execution.error } : {}),
    ...(failed && execution.cause !== undefined ? { cause: readableExecutionCause(execution.cause) } : {}),
  };
}

async function executionStatus(executionArn: string, deps: StatusDeps = {}): Promise<ExecutionStatusView | undefined> {
  const sfn = deps.sfn ?? sfnClient();
  const execution = await describeExecutionIfAny(sfn, executionArn);
  if (!execution) return undefined;
  // Read after DescribeExecution: the history is at least as recent as the status it explains.
  return statusView(execution, await fullHistory(sfn, executionArn));
}

/** The route itself: every answer but the one to a thrown error (answerError, through httpHandler). */
async function answer(event: APIGatewayProxyEventV2, deps: StatusDeps): Promise<Response> {
  const id = executionArnOf(event.pathParameters?.id, deps);
  if (!id.ok) {
    return id.status === 404
      ? json(404, { error: "ExecutionNotFound", message: id.message })
      : json(400, { error: "InvalidRequest", message: id.message });
  }
  const view = await executionStatus(id.executionArn, deps);
  if (!view) return json(404, { error: "ExecutionNotFound", message: `no execution ${id.executionArn}` });
  return json(200, view);
}

/** An ARN Step Functions finds malformed is the caller's to fix; anything else is 503 or 500. */
function answerError(error: Error, event: APIGatewayProxyEventV2): Response {
  // normaliseError leaves Step Functions' InvalidArn as it is: still recognisable here.
  if (isAwsError(error, "InvalidArn")) return json(400, { error: "InvalidRequest", message: "the execution ARN is not valid" });
  return errorResponse(error, event.requestContext?.requestId, "read the execution status");
}

export function createStatusHandler(deps: StatusDeps = {}) {
  return httpHandler("GET /executions/{id}", (event: APIGatewayProxyEventV2) => answer(event, deps), answerError);
}

export const handler = createStatusHandler();
