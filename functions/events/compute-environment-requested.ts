/**
 * EventBridge entry: a `ComputeEnvironmentRequested` event on the product's bus starts the same workflow
 * as POST /provision, with the same validation. The event's `detail` is the provisioning request.
 *
 * EventBridge invokes this function asynchronously. Lambda retries every failed async invocation twice
 * (`retryAttempts: 2` in stacks/Provisioner.ts, roughly one and then two minutes later) whatever the error,
 * then sends the event to the dead-letter queue; the rule target's own retries (4, within 2 hours) only
 * cover failing to hand the event to Lambda at all.
 *  - A request that can never succeed (invalid, not allowlisted, idempotency key reused, or another spec for an
 *    environment that exists: EnvironmentExists, which only an update changes) throws a named permanent error,
 *    logged once with every problem. Its two retries fail the same way and the event
 *    ends in the DLQ: nothing is started by any of them.
 *  - Another run of the same tenant under way throws RunInProgress (transient): one of the two retries may
 *    find that run ended and start this one; if it is still running after both, the event ends in the
 *    DLQ, to be redriven once it has ended.
 * Without an idempotency key in the detail the event id is the key: EventBridge delivers at least once,
 * and a redelivered event must not start a second run.
 */
import type { EventBridgeEvent } from "aws-lambda";
import { COMPUTE_ENVIRONMENT_REQUESTED, type DeploymentConfig } from "../lib/domain/deploy-config.js";
import { EnvironmentExists, InvalidRequest, NotAllowed, RunInProgress } from "../lib/domain/errors.js";
import { eventHandler, logger } from "../lib/workflow/middleware.js";
import { checkRequest, startProvisioning, type StartDeps, type StartedExecution } from "../lib/entry/start-provisioning.js";

export interface ComputeEnvironmentRequestedDeps extends StartDeps {
  config?: DeploymentConfig;
}

/** The idempotency key an event without one gets: its id (a UUID), in the key's alphabet. */
function eventIdempotencyKey(eventId: string): string {
  return `event-${eventId}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64);
}

function hasOwnKey(detail: unknown): boolean {
  return typeof detail === "object" && detail !== null && (detail as { idempotencyKey?: unknown }).idempotencyKey !== undefined;
}

/** The workflow started (or found) for the event, or the named error that says why not (logged by eventHandler). */
async function startFromEvent(event: EventBridgeEvent<string, unknown>, deps: ComputeEnvironmentRequestedDeps): Promise<StartedExecution> {
  if (event["detail-type"] !== COMPUTE_ENVIRONMENT_REQUESTED) {
    throw new InvalidRequest([
      { path: "detail-type", message: `expected ${COMPUTE_ENVIRONMENT_REQUESTED}, got "${event["detail-type"]}"` },
    ]);
  }

  const checked = checkRequest(event.detail, {
    idempotencyKey: hasOwnKey(event.detail) ? undefined : eventIdempotencyKey(event.id),
    config: deps.config,
  });
  // Retrying cannot help: refused once, with every problem, and the event goes to the DLQ.
  if (!checked.ok) {
    throw checked.error === "NotAllowed"
      ? new NotAllowed(checked.problems.map((p) => p.message).join("; "))
      : new InvalidRequest(checked.problems);
  }

  const started = await startProvisioning(checked.request, deps);
  if (started.outcome === "key-reused") {
    throw new InvalidRequest([
      {
        path: "idempotencyKey",
        message: `"${checked.request.idempotencyKey}" was already used for a different request (execution ${started.executionName})`,
      },
    ]);
  }
  if (started.outcome === "environment-exists") throw new EnvironmentExists(started.environmentUrl);
  if (started.outcome === "run-in-progress") {
    // Thrown, not returned: Lambda's async retries (2, minutes apart) try again, then the DLQ keeps the event.
    throw new RunInProgress(
      `tenant "${checked.request.tenant}" has a run under way (${started.executionName}); the event is retried later`,
      started.executionArn,
    );
  }
  logger.info("provisioning started", { outcome: started.outcome, executionArn: started.executionArn, tenant: checked.request.tenant });
  return started;
}

export function createComputeEnvironmentRequestedHandler(deps: ComputeEnvironmentRequestedDeps = {}) {
  return eventHandler(COMPUTE_ENVIRONMENT_REQUESTED, (event: EventBridgeEvent<string, unknown>) => startFromEvent(event, deps));
}

export const handler = createComputeEnvironmentRequestedHandler();
