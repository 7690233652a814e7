/**
 * EventBridge entry: a `ComputeEnvironmentRemovalRequested` event on the product's bus (from a source listed in
 * ONBOARDING_EVENT_SOURCES, as onboarding) tears the environment down, exactly as
 * `DELETE /environments/{tenant}/{region}/{cluster}` does (entry/start-teardown.ts). The detail names the environment
 * as a request does: `{"tenant": "genomics", "cluster": {"name": "research", "region": "eu-west-1"}}`.
 *
 * Invoked asynchronously, like the onboarding handler (compute-environment-requested.ts): a detail that is invalid
 * or names no environment throws a permanent named error (logged with every problem; the event ends in the
 * dead-letter queue); a run holding the environment's lease throws RunInProgress, and Lambda's two retries may find
 * it ended. An environment already removed is a success that starts nothing, so a redelivered event is harmless.
 */
import type { EventBridgeEvent } from "aws-lambda";
import { COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED } from "../lib/domain/deploy-config.js";
import { EnvironmentNotFound, InvalidRequest, RunInProgress } from "../lib/domain/errors.js";
import { environmentRefSchema, problemsOf, productMessage } from "../lib/domain/request.js";
import { startTeardown, type TeardownDeps, type TeardownOutcome } from "../lib/entry/start-teardown.js";
import { eventHandler, logger } from "../lib/workflow/middleware.js";

async function removeFromEvent(event: EventBridgeEvent<string, unknown>, deps: TeardownDeps): Promise<TeardownOutcome> {
  if (event["detail-type"] !== COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED) {
    throw new InvalidRequest([
      { path: "detail-type", message: `expected ${COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED}, got "${event["detail-type"]}"` },
    ]);
  }
  // The product's words, as the API and the onboarding event answer, not zod's (which change between majors).
  const parsed = environmentRefSchema.safeParse(event.detail, { error: productMessage });
  if (!parsed.success) throw new InvalidRequest(problemsOf(parsed.error));
  const id = { tenant: parsed.data.tenant, region: parsed.data.cluster.region, cluster: parsed.data.cluster.name };
  const started = await startTeardown(id, deps);
  if (started.outcome === "not-found")
    throw new EnvironmentNotFound(`no environment of tenant "${id.tenant}" on ${id.cluster} in ${id.region}`);
  if (started.outcome === "run-in-progress") {
    throw new RunInProgress(
      `environment of tenant "${id.tenant}" has a run under way (${started.executionName}); the event is retried later`,
      started.executionArn,
    );
  }
  logger.info(started.outcome === "started" ? "teardown started" : "environment already removed: nothing to do", {
    ...started,
    tenant: id.tenant,
  });
  return started;
}

export function createComputeEnvironmentRemovalRequestedHandler(deps: TeardownDeps = {}) {
  return eventHandler(COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED, (event: EventBridgeEvent<string, unknown>) => removeFromEvent(event, deps));
}

export const handler = createComputeEnvironmentRemovalRequestedHandler();
