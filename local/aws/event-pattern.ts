/**
 * EventBridge event patterns, matched as EventBridge matches them, for the sandbox's rules: a pattern is an object
 * whose leaves are arrays of allowed values; an event matches when every field the pattern names matches (fields it
 * does not name are ignored). A value matches an array when it equals one of its scalars (an array value when any
 * element does) or satisfies one of its content filters: `{prefix}`, `{suffix}`, `{"anything-but": v | [v]}`,
 * `{exists: true|false}`. Nested objects descend into the event (`detail: {status: [...]}`).
 */
export type EventPattern = { [field: string]: EventPattern | readonly unknown[] };

/** The event as rules see it: `source`, `detail-type`, `detail`, `resources`, `account`, `region`, ... */
export type PatternEvent = Record<string, unknown>;

function scalarMatches(value: unknown, allowed: unknown): boolean {
  if (allowed === null || typeof allowed !== "object") return value === allowed;
  const filter = allowed as Record<string, unknown>;
  if ("exists" in filter) return false; // judged by the caller, which sees absence
  if (typeof filter.prefix === "string") return typeof value === "string" && value.startsWith(filter.prefix);
  if (typeof filter.suffix === "string") return typeof value === "string" && value.endsWith(filter.suffix);
  if ("anything-but" in filter) {
    const refused = filter["anything-but"];
    const list = Array.isArray(refused) ? refused : [refused];
    return value !== undefined && !list.some((r) => scalarMatches(value, r));
  }
  throw new Error(`unsupported content filter in event pattern: ${JSON.stringify(allowed)}`);
}

function leafMatches(value: unknown, allowed: readonly unknown[]): boolean {
  for (const option of allowed) {
    if (option && typeof option === "object" && "exists" in (option as object)) {
      if ((option as { exists: boolean }).exists === (value !== undefined)) return true;
      continue;
    }
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    if (values.some((v) => scalarMatches(v, option))) return true;
  }
  return false;
}

export function matchesPattern(event: PatternEvent, pattern: EventPattern): boolean {
  return Object.entries(pattern).every(([field, expected]) => {
    const value = event[field];
    if (Array.isArray(expected)) return leafMatches(value, expected);
    if (!value || typeof value !== "object" || Array.isArray(value)) return false;
    return matchesPattern(value as PatternEvent, expected as EventPattern);
  });
}
