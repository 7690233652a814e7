/**
 * EventBridge entry: a `ComputeEnvironmentRequested` event on the product's bus starts the same workflow
 * as POST /provision, with the same validation. The event's `detail` is the provisioning request.
 *
 * A request that can never succeed (invalid, not allowlisted, idempotency key reused) throws a named
 * permanent error and is logged, so the event goes to the dead-letter queue instead of being retried.
 * Without an idempotency key in the detail the event id is the key: EventBridge delivers at least once,
 * and a redelivered event must not start a second run.
 */
import type { EventBridgeEvent } from "aws-lambda";
import type { DeploymentConfig } from "../lib/config.js";
import { InvalidRequest, NotAllowed } from "../lib/errors.js";
import { logger } from "../lib/middleware.js";
import { checkRequest, startProvisioning, type StartDeps, type StartedExecution } from "../lib/start-provisioning.js";

export const COMPUTE_ENVIRONMENT_REQUESTED = "ComputeEnvironmentRequested";

export interface ComputeEnvironmentRequestedDeps extends StartDeps {
  config?: DeploymentConfig;
}

/** The idempotency key an event without one gets: its id (a UUID), in the key's alphabet. */
export function eventIdempotencyKey(eventId: string): string {
  return `event-${eventId}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64);
}

function hasOwnKey(detail: unknown): boolean {
  return typeof detail === "object" && detail !== null && (detail as { idempotencyKey?: unknown }).idempotencyKey !== undefined;
}

export function createComputeEnvironmentRequestedHandler(deps: ComputeEnvironmentRequestedDeps = {}) {
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
    logger.info("provisioning started", { outcome: started.outcome, executionArn: started.executionArn, tenant: checked.request.tenant });
    return started;
  };
}

export const handler = createComputeEnvironmentRequestedHandler();
