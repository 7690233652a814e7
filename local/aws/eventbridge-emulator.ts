/**
 * Emulated EventBridge (JSON 1.1, `X-Amz-Target: AWSEvents.PutEvents`). Accepted events are recorded in
 * order in `state.events`, so tests can read what the product announced. Entry-level problems come back
 * the way EventBridge reports them: in `Entries[i].ErrorCode` with `FailedEntryCount`, not as a call error.
 */
import { randomUUID } from "node:crypto";
import { AwsApiError, type AwsRequest } from "./protocol.js";
import type { AwsState, RecordedEvent } from "./account-state.js";

type Json = Record<string, unknown>;

const MAX_ENTRIES = 10;
const MAX_ENTRY_BYTES = 256 * 1024;

interface EntryResult {
  EventId?: string;
  ErrorCode?: string;
  ErrorMessage?: string;
}

/** `my-bus` or `arn:aws:events:<region>:<account>:event-bus/my-bus` → `my-bus` */
export function busName(value: unknown): string {
  if (typeof value !== "string" || !value) return "default";
  const marker = ":event-bus/";
  return value.includes(marker) ? value.slice(value.indexOf(marker) + marker.length) : value;
}

function requiredString(entry: Json, field: string): EntryResult | undefined {
  const value = entry[field];
  if (typeof value === "string" && value.length > 0) return undefined;
  return { ErrorCode: "InvalidArgument", ErrorMessage: `Parameter ${field} is not valid. Reason: ${field} is a required argument.` };
}

function acceptEntry(state: AwsState, request: AwsRequest, entry: Json): EntryResult {
  const problem = requiredString(entry, "Source") ?? requiredString(entry, "DetailType") ?? requiredString(entry, "Detail");
  if (problem) return problem;
  if (Buffer.byteLength(JSON.stringify(entry)) > MAX_ENTRY_BYTES)
    return { ErrorCode: "InvalidArgument", ErrorMessage: "Total size of the entries in the request is over the limit." };
  let detail: unknown;
  try {
    detail = JSON.parse(entry.Detail as string);
  } catch {
    return { ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed." };
  }
  if (!detail || typeof detail !== "object" || Array.isArray(detail))
    return { ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed." };
  const resources = Array.isArray(entry.Resources) ? entry.Resources.filter((r): r is string => typeof r === "string") : [];
  const time = typeof entry.Time === "number" ? new Date(entry.Time * 1000) : new Date();
  const recorded: RecordedEvent = {
    eventId: randomUUID(),
    eventBusName: busName(entry.EventBusName),
    source: entry.Source as string,
    detailType: entry.DetailType as string,
    detail,
    resources,
    time,
    region: request.region,
    account: state.accountId,
  };
  state.events.push(recorded);
  // Delivered after the answer, as EventBridge delivers to its targets asynchronously.
  for (const listener of state.eventListeners) setImmediate(() => listener(recorded));
  return { EventId: recorded.eventId };
}

/** Every EventBridge operation the emulator answers (each needs an authorization entry in operation-checks.ts). */
export const EVENTS_OPERATIONS: readonly string[] = ["PutEvents"];

export function handleEvents(state: AwsState, request: AwsRequest, operation: string): Json {
  if (operation !== "PutEvents") throw new AwsApiError("UnknownOperationException", 400, `Unknown operation ${operation}`);
  let body: Json;
  try {
    body = JSON.parse(request.body.toString("utf8") || "{}") as Json;
  } catch {
    throw new AwsApiError("SerializationException", 400, "Start of structure or map found where not expected.");
  }
  const entries = body.Entries;
  if (!Array.isArray(entries) || entries.length < 1 || entries.length > MAX_ENTRIES) {
    const count = Array.isArray(entries) ? entries.length : 0;
    throw new AwsApiError(
      "ValidationException",
      400,
      `1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length ${count < 1 ? "greater than or equal to 1" : `less than or equal to ${MAX_ENTRIES}`}`,
    );
  }
  const results = entries.map((entry) => acceptEntry(state, request, (entry ?? {}) as Json));
  return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
}
