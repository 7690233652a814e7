/**
 * EventBridge entry: a `ComputeEnvironmentRequested` event on the product's bus starts the same workflow
 * as POST /provision, with the same validation. The event's `detail` is the provisioning request.
 *
 * EventBridge invokes this function asynchronously. Lambda retries every failed async invocation twice
 * (`retryAttempts: 2` in stacks/Provisioner.ts, roughly one and then two minutes later) whatever the error,
 * then sends the event to the dead-letter queue; the rule target's own retries (4, within 2 hours) only
 * cover failing to hand the event to Lambda at all.
 *  - A request that can never succeed (invalid, not allowlisted, idempotency key reused) throws a named
 *    permanent error, logged once with every problem. Its two retries fail the same way and the event
 *    ends in the DLQ: nothing is started by any of them.
 *  - Another run of the same tenant under way throws RunInProgress (transient): one of the two retries may
 *    find that run ended and start this one; if it is still running after both, the event ends in the
 *    DLQ, to be redriven once it has ended.
 * Without an idempotency key in the detail the event id is the key: EventBridge delivers at least once,
 * and a redelivered event must not start a second run.
 */
import type { EventBridgeEvent } from "aws-lambda";
import { COMPUTE_ENVIRONMENT_REQUESTED, type DeploymentConfig } from "../lib/domain/deploy-config.js";
import { InvalidRequest, NotAllowed, RunInProgress } from "../lib/domain/errors.js";
import { logger } from "../lib/workflow/middleware.js";
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

function createComputeEnvironmentRequestedHandler(deps: ComputeEnvironmentRequestedDeps = {}) {
  return async (event: EventBridgeEvent<string, unknown>): Promise<StartedExecution> => {
    logger.appendKeys({ eventId: event.id, source: event.source });
    if (event["detail-type"] !== COMPUTE_ENVIRONMENT_REQUESTED) {
      const error = new InvalidRequest([{ path: "detail-type", message: `expected ${COMPUTE_ENVIRONMENT_REQUESTED}, got "${event["detail-type"]}"` }]);
      logger.error("event refused: not a ComputeEnvironmentRequested event", { error });
      throw error;
    }

    const checked = checkRequest(event.detail, {
      idempotencyKey: hasOwnKey(event.detail) ? undefined : eventIdempotencyKey(event.id),
      config: deps.config,
    });
    if (!checked.ok) {
      const error = checked.error === "NotAllowed" ? new NotAllowed(checked.problems.map((p) => p.message).join("; ")) : new InvalidRequest(checked.problems);
      // Retrying cannot help: say so once, with every problem, and let the event go to the DLQ.
      logger.error("event refused: the request can never succeed", { errorName: error.name, problems: checked.problems });
      throw error;
    }

    const started = await startProvisioning(checked.request, deps);
    if (started.outcome === "key-reused") {
      const error = new InvalidRequest([
        { path: "idempotencyKey", message: `"${checked.request.idempotencyKey}" was already used for a different request (execution ${started.executionName})` },
      ]);
      logger.error("event refused: idempotency key reused", { errorName: error.name, problems: error.problems });
      throw error;
    }
    if (started.outcome === "run-in-progress") {
      const error = new RunInProgress(
        `tenant "${checked.request.tenant}" has a run under way (${started.executionName}); the event is retried later`,
        started.executionArn,
      );
      // Thrown, not returned: Lambda's async retries (2, minutes apart) try again, then the DLQ keeps the event.
      logger.warn("event deferred: another run of the tenant is under way", { errorName: error.name, executionArn: started.executionArn });
      throw error;
    }
    logger.info("provisioning started", { outcome: started.outcome, executionArn: started.executionArn, tenant: checked.request.tenant });
    return started;
  };
}

export const handler = createComputeEnvironmentRequestedHandler();
