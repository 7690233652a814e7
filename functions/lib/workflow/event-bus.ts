/**
 * Putting the product's lifecycle events (domain/product-events.ts) on its bus: one PutEvents entry per event,
 * source `nf-eks-provisioner`, the cluster's ARN as the resource. An entry EventBridge rejects is thrown as a
 * named error (Throttled and InternalFailure are transient, so the Task's Retry takes them).
 */
import { PutEventsCommand, type EventBridgeClient, type PutEventsRequestEntry } from "@aws-sdk/client-eventbridge";
import { eventBridgeClient } from "../aws/clients.js";
import { CONFIG_ENV } from "../domain/deploy-config.js";
import { ClusterUnreachable, NotAllowed, Throttled } from "../domain/errors.js";
import { EVENT_SOURCE, REMOVED_DETAIL_TYPE, type ProductEventType, type RemovedDetail } from "../domain/product-events.js";
import { logger } from "../aws/powertools.js";

export interface EventDeps {
  events?: EventBridgeClient;
  eventBusName?: string;
}

function eventBusName(deps: EventDeps): string {
  return deps.eventBusName ?? (process.env[CONFIG_ENV.eventBusName] || "default");
}

/** Put one event on the product's bus; returns the bus name. */
export async function putProductEvent(
  detailType: ProductEventType,
  detail: unknown,
  resources: string[],
  deps: EventDeps = {},
): Promise<string> {
  const entry: PutEventsRequestEntry = {
    EventBusName: eventBusName(deps),
    Source: EVENT_SOURCE,
    DetailType: detailType,
    Resources: resources,
    Detail: JSON.stringify(detail),
  };
  const events = deps.events ?? eventBridgeClient();
  const result = await events.send(new PutEventsCommand({ Entries: [entry] }));
  if (!result.FailedEntryCount) return entry.EventBusName!;
  const failed = result.Entries?.find((e) => e.ErrorCode) ?? {};
  const message =
    `events:PutEvents rejected the ${entry.DetailType} event: ${failed.ErrorCode ?? "unknown"}: ${failed.ErrorMessage ?? ""}`.trim();
  if (failed.ErrorCode === "ThrottlingException") throw new Throttled(message);
  if (failed.ErrorCode === "InternalFailure" || failed.ErrorCode === "InternalException") throw new ClusterUnreachable(message);
  if (failed.ErrorCode?.startsWith("AccessDenied") || failed.ErrorCode === "NotAuthorizedForSourceException") throw new NotAllowed(message);
  throw new Error(message);
}

/**
 * ComputeEnvironmentRemoved, for the teardown's last state (issue 15 point 1): call it from the deprovision
 * workflow's report step once the environment's record says `removed`, with what was removed and kept.
 */
export async function emitComputeEnvironmentRemoved(detail: RemovedDetail, deps: EventDeps = {}): Promise<string> {
  const bus = await putProductEvent(REMOVED_DETAIL_TYPE, detail, detail.cluster.arn ? [detail.cluster.arn] : [], deps);
  logger.info("compute environment removed", { eventBusName: bus });
  return bus;
}
