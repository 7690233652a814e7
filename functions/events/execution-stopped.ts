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
 * A teardown (statemachines/deprovision.asl.json) that ended the same way is not compensated (it is itself a
 * removal): unless its RecordRemoval succeeded (one that could not write the registry failed into RecordFailed),
 * the record is set `failed`, keeping what it named plus a line in `owned.remaining` saying the teardown was
 * stopped, and its lease is released at once, so a repeated DELETE finishes the job instead of waiting out the lease
 * (an hour). Only while that teardown still holds the lease.
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
import { DEPROVISION_STATE_MACHINE_ARN_ENV, STATE_MACHINE_ARN_ENV } from "../lib/domain/deploy-config.js";
import { readEnvironment, recordOutcome, type RegistryDeps } from "../lib/workflow/environment-registry.js";
import { eventHandler, logger } from "../lib/workflow/middleware.js";
import {
  COMPENSATION_STATE_MACHINE_ARN_ENV,
  compensationExecutionName,
  compensationInput,
  EXECUTION_STATUS_CHANGE,
  recordedItsRemoval,
  reportedItsOutcome,
  STOPPED_RUN_GRACE_ENV,
  STOPPED_STATUSES,
  teardownScopeOf,
  type ExecutionStatusChange,
} from "../lib/workflow/stopped-run.js";

/** The longest step Lambda timeout (functions/steps/step-sizing.ts), when the deployment sets no grace. */
export const DEFAULT_GRACE_SECONDS = 120;

export interface ExecutionStoppedDeps {
  sfn?: SFNClient;
  /** the provision state machine (default: STATE_MACHINE_ARN) */
  stateMachineArn?: string;
  /** the compensation state machine (default: COMPENSATION_STATE_MACHINE_ARN) */
  compensationStateMachineArn?: string;
  /** the teardown state machine (default: DEPROVISION_STATE_MACHINE_ARN) */
  deprovisionStateMachineArn?: string;
  /** the environment registry's table and client (default: REGISTRY_TABLE_NAME's); its GetItem and UpdateItem only */
  registry?: RegistryDeps;
  graceSeconds?: number;
}

export type StoppedRunOutcome =
  | { outcome: "ignored"; reason: string }
  | { outcome: "compensation-started" | "compensation-already-started"; compensationExecutionArn?: string; waitUntil: string }
  | { outcome: "teardown-recorded-failed"; remaining: string };

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
  if (!(STOPPED_STATUSES as readonly string[]).includes(change.status)) return { outcome: "ignored", reason: `status ${change.status}` };
  const deprovisionArn = deps.deprovisionStateMachineArn ?? process.env[DEPROVISION_STATE_MACHINE_ARN_ENV];
  if (deprovisionArn && change.stateMachineArn === deprovisionArn) return recordStoppedTeardown(change, deps);
  if (!provisionArn || change.stateMachineArn !== provisionArn) return { outcome: "ignored", reason: "not the provision state machine" };

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

/** A teardown that ended without its RecordRemoval: the record `failed` with what it named, the lease released. */
async function recordStoppedTeardown(change: ExecutionStatusChange, deps: ExecutionStoppedDeps): Promise<StoppedRunOutcome> {
  const events = await historyOf(deps.sfn ?? sfnClient(), change.executionArn);
  if (recordedItsRemoval(events)) return { outcome: "ignored", reason: "the teardown recorded its own outcome" };
  const scope = teardownScopeOf(events);
  if (!scope) return { outcome: "ignored", reason: "the teardown's input names no environment" };
  const registry = deps.registry ?? {};
  const record = await readEnvironment(registry, scope.environment);
  if (record?.lease?.owner !== change.executionArn)
    return { outcome: "ignored", reason: "the environment's lease is no longer this teardown's" };
  const remaining =
    `teardown ${change.name} ended ${change.status}${change.cause ? ` (${change.cause})` : ""} before it finished: ` +
    "what it had not removed yet is still there; a repeated DELETE finishes the job";
  const { remaining: _earlier, ...owned } = record.owned;
  const recorded = await recordOutcome(registry, scope.environment, change.executionArn, {
    status: "failed",
    owned: { ...owned, remaining: [remaining] },
  });
  if (!recorded) return { outcome: "ignored", reason: "the environment's lease is no longer this teardown's" };
  logger.info("a stopped teardown was recorded failed", { executionArn: change.executionArn, status: change.status });
  return { outcome: "teardown-recorded-failed", remaining };
}

export function createExecutionStoppedHandler(deps: ExecutionStoppedDeps = {}) {
  return eventHandler("ExecutionStopped", (event: EventBridgeEvent<string, ExecutionStatusChange>) => compensateStoppedRun(event, deps));
}

export const handler = createExecutionStoppedHandler();
