/**
 * The scheduled drift check: an EventBridge Scheduler schedule (DRIFT_SCHEDULE, daily by default; stacks/Provisioner.ts)
 * invokes this Lambda, which checks every `ready` environment in the registry (workflow/drift-reader.ts, the same check
 * as GET /environments/{tenant}/{region}/{cluster}) and puts one `EnvironmentDrifted` event on the product's bus for
 * each that differs from its spec (events/environment-drifted.schema.json: the environment and only the resources that
 * are missing or changed). A check that cannot be made (`unknown`) puts no event: it is logged and counted.
 * Reads only, then PutEvents; nothing is repaired here (POST .../reconcile does that).
 */
import { PutEventsCommand, type EventBridgeClient, type PutEventsRequestEntry } from "@aws-sdk/client-eventbridge";
import { eventBridgeClient } from "../lib/aws/clients.js";
import { CONFIG_ENV } from "../lib/domain/deploy-config.js";
import { PRODUCT } from "../lib/domain/naming.js";
import { checkDrift, type DriftReadDeps } from "../lib/workflow/drift-reader.js";
import { driftedResources, type DriftReport } from "../lib/workflow/drift.js";
import { listEnvironments, type EnvironmentRecord, type RegistryDeps } from "../lib/workflow/environment-registry.js";
import { eventHandler, logger } from "../lib/workflow/middleware.js";

export const ENVIRONMENT_DRIFTED = "EnvironmentDrifted";
/** PutEvents takes at most ten entries a call. */
const PUT_EVENTS_BATCH = 10;

export interface DriftCheckDeps {
  table?: RegistryDeps;
  drift?: DriftReadDeps;
  events?: EventBridgeClient;
  eventBusName?: string;
}

export interface DriftCheckSummary {
  checked: number;
  drifted: number;
  unknown: number;
  /** the environments whose check could not be made, with why */
  unknownReasons: Array<{ environment: string; reason: string }>;
}

function environmentUrl(record: EnvironmentRecord): string {
  return `/environments/${[record.tenant, record.region, record.cluster].map(encodeURIComponent).join("/")}`;
}

/** The event's detail: which environment, at which generation, and what differs (events/environment-drifted.schema.json). */
export function driftedDetail(record: EnvironmentRecord, report: DriftReport): Record<string, unknown> {
  return {
    tenant: record.tenant,
    region: record.region,
    cluster: record.cluster,
    generation: record.generation,
    environmentUrl: environmentUrl(record),
    checkedAt: report.checkedAt,
    resources: driftedResources(report),
  };
}

async function putAll(entries: PutEventsRequestEntry[], events: EventBridgeClient): Promise<void> {
  for (let i = 0; i < entries.length; i += PUT_EVENTS_BATCH) {
    const batch = entries.slice(i, i + PUT_EVENTS_BATCH);
    const result = await events.send(new PutEventsCommand({ Entries: batch }));
    if (result.FailedEntryCount) {
      const failed = (result.Entries ?? []).filter((e) => e.ErrorCode).map((e) => `${e.ErrorCode}: ${e.ErrorMessage ?? ""}`);
      throw new Error(`events:PutEvents rejected ${result.FailedEntryCount} ${ENVIRONMENT_DRIFTED} event(s): ${failed.join("; ")}`);
    }
  }
}

/** Check every ready environment, a registry page at a time; put an EnvironmentDrifted event for each that drifted. */
export async function checkEnvironments(deps: DriftCheckDeps = {}): Promise<DriftCheckSummary> {
  const summary: DriftCheckSummary = { checked: 0, drifted: 0, unknown: 0, unknownReasons: [] };
  const entries: PutEventsRequestEntry[] = [];
  const busName = deps.eventBusName ?? (process.env[CONFIG_ENV.eventBusName] || "default");
  let cursor: string | undefined;
  do {
    const page = await listEnvironments(deps.table ?? {}, { status: "ready", limit: 50, ...(cursor ? { cursor } : {}) });
    for (const record of page.items) {
      const report = await checkDrift(record, deps.drift);
      summary.checked += 1;
      if (report.status === "unknown") {
        summary.unknown += 1;
        summary.unknownReasons.push({ environment: environmentUrl(record), reason: report.reason ?? "" });
        logger.warn("drift check could not be made", { environment: environmentUrl(record), reason: report.reason });
      } else if (report.status === "drifted") {
        summary.drifted += 1;
        entries.push({ EventBusName: busName, Source: PRODUCT, DetailType: ENVIRONMENT_DRIFTED, Detail: JSON.stringify(driftedDetail(record, report)) });
      }
    }
    cursor = page.next;
  } while (cursor);
  if (entries.length) await putAll(entries, deps.events ?? eventBridgeClient());
  logger.info("drift check done", { ...summary });
  return summary;
}

export function createDriftCheckHandler(deps: DriftCheckDeps = {}) {
  return eventHandler("ScheduledDriftCheck", () => checkEnvironments(deps));
}

export const handler = createDriftCheckHandler();
