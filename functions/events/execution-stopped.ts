/**
 * A provision run that ended without its Catch (timed out, stopped by an operator, or failed past its Catch) is
 * compensated here. The stack's rule on the account's default bus sends Step Functions' "Execution Status Change"
 * events of the provision state machine with status TIMED_OUT, ABORTED or FAILED to this function, which:
 *   1. reads the execution's history (a FAILED run whose ReportFailure reported is done: its Catch ran);
 *   2. rebuilds the workflow state the Undo steps would have been given (workflow/stopped-run.ts);
 *   3. starts the compensation state machine (statemachines/compensate-stopped.asl.json) with it and a time to
 *      begin: the stop plus the longest step Lambda timeout (STOPPED_RUN_GRACE_SECONDS).
 *
 * Why a state machine that waits, rather than waiting here: a step invoked before the stop runs to its end (Step
 * Functions does not stop a Lambda it already invoked), so its undo must not begin before that step's timeout has
 * passed; a Wait state (TimestampPath) holds that for free and for as long as needed, and the compensation then runs
 * the provision workflow's own Undo states (same Lambdas, same retries and catches) and its ReportFailure, which
 * records the environment `failed` with what could not be undone, releases the lease only if that execution still
 * holds it, and emits ComputeEnvironmentFailed.
 *
 * Idempotent: the compensation execution's name is derived from the stopped execution's ARN, so a second delivery
 * of the event finds it (running: StartExecution answers with it; closed: ExecutionAlreadyExists) and starts nothing.
 */
import { createHash } from "node:crypto";
import {
  ExecutionAlreadyExists,
  GetExecutionHistoryCommand,
  StartExecutionCommand,
  type HistoryEvent,
  type SFNClient,
} from "@aws-sdk/client-sfn";
import type { EventBridgeEvent } from "aws-lambda";
import { sfnClient } from "../lib/aws/clients.js";
import { STATE_MACHINE_ARN_ENV } from "../lib/domain/deploy-config.js";
import { eventHandler, logger } from "../lib/workflow/middleware.js";
import {
  COMPENSATION_STATE_MACHINE_ARN_ENV,
  compensationExecutionName,
  compensationInput,
  EXECUTION_STATUS_CHANGE,
  reportedItsOutcome,
  STOPPED_RUN_GRACE_ENV,
  STOPPED_STATUSES,
  type ExecutionStatusChange,
} from "../lib/workflow/stopped-run.js";

/** The longest step Lambda timeout (stacks/Provisioner.ts STEP_SIZING), when the deployment sets no grace. */
export const DEFAULT_GRACE_SECONDS = 120;

export interface ExecutionStoppedDeps {
  sfn?: SFNClient;
  /** the provision state machine (default: STATE_MACHINE_ARN) */
  stateMachineArn?: string;
  /** the compensation state machine (default: COMPENSATION_STATE_MACHINE_ARN) */
  compensationStateMachineArn?: string;
  graceSeconds?: number;
}

export type StoppedRunOutcome =
  | { outcome: "ignored"; reason: string }
  | { outcome: "compensation-started" | "compensation-already-started"; compensationExecutionArn?: string; waitUntil: string };

async function historyOf(sfn: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000, nextToken, includeExecutionData: true }));
    events.push(...(page.events ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return events;
}

function graceOf(deps: ExecutionStoppedDeps): number {
  if (deps.graceSeconds !== undefined) return deps.graceSeconds;
  const configured = Number(process.env[STOPPED_RUN_GRACE_ENV]);
  return process.env[STOPPED_RUN_GRACE_ENV] && Number.isFinite(configured) && configured >= 0 ? configured : DEFAULT_GRACE_SECONDS;
}

export async function compensateStoppedRun(
  event: EventBridgeEvent<string, ExecutionStatusChange>,
  deps: ExecutionStoppedDeps = {},
): Promise<StoppedRunOutcome> {
  const change = event.detail;
  const provisionArn = deps.stateMachineArn ?? process.env[STATE_MACHINE_ARN_ENV];
  const compensationArn = deps.compensationStateMachineArn ?? process.env[COMPENSATION_STATE_MACHINE_ARN_ENV];
  if (!compensationArn) throw new Error(`${COMPENSATION_STATE_MACHINE_ARN_ENV} is not set`);
  // The rule filters on these already; checked again so a misrouted event changes nothing.
  if (event["detail-type"] !== EXECUTION_STATUS_CHANGE)
    return { outcome: "ignored", reason: `not a status change: ${event["detail-type"]}` };
  if (!provisionArn || change.stateMachineArn !== provisionArn) return { outcome: "ignored", reason: "not the provision state machine" };
  if (!(STOPPED_STATUSES as readonly string[]).includes(change.status)) return { outcome: "ignored", reason: `status ${change.status}` };

  const sfn = deps.sfn ?? sfnClient();
  const events = await historyOf(sfn, change.executionArn);
  if (reportedItsOutcome(events)) return { outcome: "ignored", reason: "the run's own Catch compensated and reported it" };
  const input = compensationInput(change, events, graceOf(deps));
  if (!input) return { outcome: "ignored", reason: "the run ended before its state was built: nothing was made" };

  const name = compensationExecutionName(change.name, change.executionArn, (text) => createHash("sha256").update(text).digest("hex"));
  try {
    const started = await sfn.send(new StartExecutionCommand({ stateMachineArn: compensationArn, name, input: JSON.stringify(input) }));
    logger.info("compensation of a stopped run started", {
      executionArn: change.executionArn,
      status: change.status,
      compensationExecutionArn: started.executionArn,
      waitUntil: input.waitUntil,
    });
    return { outcome: "compensation-started", compensationExecutionArn: started.executionArn, waitUntil: input.waitUntil };
  } catch (error) {
    if (!(error instanceof ExecutionAlreadyExists)) throw error;
    logger.info("the stopped run's compensation was already started", { executionArn: change.executionArn });
    return { outcome: "compensation-already-started", waitUntil: input.waitUntil };
  }
}

export function createExecutionStoppedHandler(deps: ExecutionStoppedDeps = {}) {
  return eventHandler("ExecutionStopped", (event: EventBridgeEvent<string, ExecutionStatusChange>) => compensateStoppedRun(event, deps));
}

export const handler = createExecutionStoppedHandler();
