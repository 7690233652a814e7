/**
 * Fast mode for the local Step Functions: time is scaled, never replaced. Every nominal second of the definition
 * (a Wait's `Seconds`, a retrier's `IntervalSeconds` and `MaxDelaySeconds`) lasts `waitMs` (Waits) or
 * `retryIntervalMs` (retries) milliseconds, and the rest is what Step Functions does: aws-local-stepfunctions still
 * computes each retry's backoff (`BackoffRate`), caps it (`MaxDelaySeconds`) and applies `JitterStrategy: FULL`, on the
 * scaled numbers. A Wait's `SecondsPath` is still read from the state's input: a non-negative integer is scaled; any
 * other value is left to the library, which fails the execution with the uncatchable `States.Runtime`, as the
 * service does. The definition the stack deploys is never edited: the runner runs a scaled copy (validated in its
 * original form first).
 */
import type { AslDefinition, AslRetrier, AslState } from "./definition.js";

/** Milliseconds per nominal second. */
export interface TimeScale {
  /** a Wait's second */
  waitMs: number;
  /** a retry interval's second (IntervalSeconds, MaxDelaySeconds) */
  retryIntervalMs: number;
}

/** Tests: a 10 s Wait takes 20 ms; a retrier's 2 s interval 2 ms, doubling up to its cap. */
export const FAST_TIME_SCALE: TimeScale = { waitMs: 2, retryIntervalMs: 1 };
/** As the service: one second is one second. */
export const REAL_TIME_SCALE: TimeScale = { waitMs: 1000, retryIntervalMs: 1000 };

/** Step Functions' defaults for a retrier that leaves them out (the library's too). */
const DEFAULT_INTERVAL_SECONDS = 1;

function scaleRetrier(retrier: AslRetrier, factor: number): AslRetrier {
  return {
    ...retrier,
    IntervalSeconds: (retrier.IntervalSeconds ?? DEFAULT_INTERVAL_SECONDS) * factor,
    ...(retrier.MaxDelaySeconds !== undefined ? { MaxDelaySeconds: retrier.MaxDelaySeconds * factor } : {}),
  };
}

function scaleState(state: AslState, scale: TimeScale): AslState {
  const copy: AslState = { ...state };
  if (Array.isArray(state.Retry)) copy.Retry = state.Retry.map((r) => scaleRetrier(r, scale.retryIntervalMs / 1000));
  // Seconds: 0 is no wait at all (the library skips a falsy Seconds, which is the same).
  if (state.Type === "Wait" && typeof state.Seconds === "number") copy.Seconds = state.Seconds * (scale.waitMs / 1000);
  if (state.Branches) copy.Branches = state.Branches.map((b) => scaleDefinition(b, scale));
  if (state.Iterator) copy.Iterator = scaleDefinition(state.Iterator, scale);
  if (state.ItemProcessor) copy.ItemProcessor = scaleDefinition(state.ItemProcessor, scale);
  return copy;
}

/** The definition with every Wait's Seconds and every retrier's intervals in scaled seconds (fractions allowed here). */
export function scaleDefinition(definition: AslDefinition, scale: TimeScale): AslDefinition {
  return {
    ...definition,
    States: Object.fromEntries(Object.entries(definition.States).map(([name, state]) => [name, scaleState(state, scale)])),
  };
}

/** A `$.a.b` path's value in a document (the only SecondsPath shape scaled; any other is read by the library, unscaled). */
export function simplePathValue(path: string, document: unknown): { found: boolean; value?: unknown } {
  if (!/^\$(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(path)) return { found: false };
  let value: unknown = document;
  for (const key of path.split(".").slice(1)) {
    if (!value || typeof value !== "object" || Array.isArray(value) || !(key in value)) return { found: true, value: undefined };
    value = (value as Record<string, unknown>)[key];
  }
  return { found: true, value };
}

/** A document with `value` at a `$.a.b` ResultPath (`$` replaces it); undefined for any other ResultPath. */
export function withResultAt(document: unknown, resultPath: string | null | undefined, value: unknown): unknown {
  if (resultPath === null) return document; // ResultPath: null keeps the input
  if (resultPath === undefined || resultPath === "$") return value;
  if (!/^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(resultPath)) return undefined;
  const keys = resultPath.split(".").slice(1);
  const root = structuredClone(document ?? {}) as Record<string, unknown>;
  let node = root;
  for (const key of keys.slice(0, -1)) {
    if (!node[key] || typeof node[key] !== "object" || Array.isArray(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
  return root;
}

/**
 * The milliseconds a `SecondsPath` Wait lasts under `scale`, from the state's input; undefined when the value is not a
 * non-negative integer (the library then reads it itself and fails with States.Runtime) or the input is unknown.
 */
export function scaledSecondsPathWait(state: AslState, input: unknown, scale: TimeScale): number | undefined {
  if (typeof state.SecondsPath !== "string") return undefined;
  const { found, value } = simplePathValue(state.SecondsPath, input);
  if (!found || typeof value !== "number" || !Number.isInteger(value) || value < 0) return undefined;
  // The library skips a wait of 0 ms; anything else sleeps at least 1 ms so a wait stays a wait.
  return value === 0 ? 0 : Math.max(1, value * scale.waitMs);
}
