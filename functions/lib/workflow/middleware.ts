/**
 * The thin wrappers every Lambda shares: a middy handler with Powertools' tracer, logger and metrics, that
 * puts who is being served on every log line, counts the outcome, and turns whatever the code threw into a
 * named error (errors.ts). Logic stays in the handler's own function.
 *  - `stepHandler`: a state machine step; the named error is rethrown so the Retry/Catch can match on it.
 *  - `httpHandler`: an HTTP API route; the named error becomes the route's own JSON answer, never a stack trace.
 *  - `eventHandler`: an EventBridge target; the named error is rethrown so Lambda retries it, then the DLQ keeps it.
 *
 * The handlers also work when called directly as `handler(event)` or `handler(event, context)` with a minimal
 * context (the local Step Functions runner, the sandbox and the tests do that).
 */
import middy from "@middy/core";
import type { MiddlewareObj, Request } from "@middy/core";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import type { Context } from "aws-lambda";
import { logger, metrics, tracer } from "../aws/powertools.js";
import { ProvisionerError } from "../domain/errors.js";
import { lambdaContext } from "./lambda-context.js";
import { normaliseError } from "./normalise-error.js";

export { logger, metrics, tracer };

/** What a wrapped handler may be called with: the real Lambda context, or any part of it. */
export type HandlerContext = Partial<Context>;
/** The code a wrapper runs: it always gets a whole (real or Lambda-like) context. */
export type HandlerFunction<E, R> = (event: E, context: Context) => Promise<R>;
/** What Lambda, the local runners and the tests call. */
export type WrappedHandler<E, R> = (event: E, context?: HandlerContext) => Promise<R>;
export type StepContext = HandlerContext;
export type StepFunction<E, R> = HandlerFunction<E, R>;
export type StepHandler<E, R> = WrappedHandler<E, R>;

type Middleware<E, R> = MiddlewareObj<E, R, Error, Context>;
type LogKeys = Record<string, string | undefined>;

interface EventWithIdentity {
  execution?: { name?: unknown };
  request?: { tenant?: unknown };
}

/** The keys every log line of a step's invocation carries. */
export function logKeysOf(stepName: string, event: unknown): Record<string, string> {
  const e = (event && typeof event === "object" ? event : {}) as EventWithIdentity;
  const keys: Record<string, string> = { step: stepName };
  if (typeof e.execution?.name === "string") keys.execution = e.execution.name;
  if (typeof e.request?.tenant === "string") keys.tenant = e.request.tenant;
  return keys;
}

/** Put `keysOf(event)` on every log line of the invocation (injectLambdaContext's resetKeys drops them at its end). */
function logKeys<E, R>(keysOf: (event: E) => LogKeys): Middleware<E, R> {
  return {
    before: (request) => {
      const keys = Object.entries(keysOf(request.event)).filter((entry): entry is [string, string] => entry[1] !== undefined);
      logger.appendKeys(Object.fromEntries(keys));
    },
  };
}

/** Replace what the handler threw by its named error, then `report` it (once, here, with that name). */
function namedErrors<E, R>(report: (named: Error, request: Request<E, R, Error, Context>) => void): Middleware<E, R> {
  return {
    onError: (request) => {
      const named = normaliseError(request.error);
      request.error = named;
      report(named, request);
    },
  };
}

/** One count per invocation, named by `outcomeOf`, under `dimension`: an operator alarms on the failing ones. */
function countOutcomes<E, R>(
  dimension: [name: string, value: string],
  outcomeOf: (request: Request<E, R, Error, Context>) => string,
): Middleware<E, R> {
  const count = (request: Request<E, R, Error, Context>) => {
    metrics.addMetric(outcomeOf(request), MetricUnit.Count, 1);
    if (request.error) metrics.addMetadata("errorName", request.error.name ?? "Error");
  };
  return {
    before: () => {
      // One Metrics object serves every handler in a process (the sandbox): start each invocation clean.
      metrics.clearDimensions();
      metrics.addDimension(...dimension);
    },
    after: count,
    onError: count,
  };
}

/** A Lambda-like context for direct calls, so Powertools and middy find what they read. */
function completeContext(functionName: string, context: HandlerContext | undefined): Context {
  return { ...lambdaContext({ functionName }), ...context } as Context;
}

/**
 * Powertools first, in the order it advises (tracer → logger → metrics), then the handler's own middlewares in
 * the order given. middy runs after/onError in reverse, so the last one given (the error naming) runs first on
 * an error and every other middleware sees the named error (and, for a route, its answer).
 */
function withPowertools<E, R>(name: string, fn: HandlerFunction<E, R>, own: Middleware<E, R>[]): WrappedHandler<E, R> {
  const handler = middy<E, R, Error, Context>()
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics));
  for (const middleware of own) handler.use(middleware);
  handler.handler((event, context) => fn(event, context));
  return (event, context) => handler(event, completeContext(name, context));
}

/**
 * Wrap a step: `export const apply = stepHandler("CreateIamResources", (state) => createIam(state))`.
 * Thrown errors come out named (Throttled, OwnershipConflict, ...), with the original as `cause`.
 */
export function stepHandler<E, R>(stepName: string, fn: StepFunction<E, R>): StepHandler<E, R> {
  return withPowertools(stepName, fn, [
    countOutcomes<E, R>(["step", stepName], ({ error }) => (error ? "StepFailed" : "StepSucceeded")),
    logKeys<E, R>((event) => logKeysOf(stepName, event)),
    namedErrors<E, R>((named) => logger.error(`${stepName} failed with ${named.name}`, { errorName: named.name, error: named })),
  ]);
}

/** What an HTTP API (payload 2.0) route needs of its event and answer. */
export interface HttpEventLike {
  requestContext?: { requestId?: string };
}
export interface HttpAnswerLike {
  statusCode?: number;
}

/** A route's answer to a named error its handler threw (its 4xx/5xx JSON): a pure builder, never the stack. */
export type HttpErrorAnswer<E, R> = (error: Error, event: E) => R;

/** Answered (2xx/3xx), refused (4xx: the caller's to fix) or failed (5xx: ours, or Step Functions being busy). */
export function httpOutcomeOf(statusCode: number | undefined): "RequestAnswered" | "RequestRefused" | "RequestFailed" {
  if (statusCode === undefined || statusCode >= 500) return "RequestFailed";
  return statusCode >= 400 ? "RequestRefused" : "RequestAnswered";
}

/**
 * Wrap an HTTP route: `export const handler = httpHandler("POST /provision", (event) => answer(event), answerError)`.
 * What the handler throws is named, answered by `answerError` (logged at error level when that is a 5xx), and so
 * never reaches API Gateway as an exception; the request id is on every log line.
 */
export function httpHandler<E extends HttpEventLike, R extends HttpAnswerLike>(
  routeName: string,
  fn: HandlerFunction<E, R>,
  answerError: HttpErrorAnswer<E, R>,
): WrappedHandler<E, R> {
  return withPowertools(routeName, fn, [
    countOutcomes<E, R>(["route", routeName], ({ response }) => httpOutcomeOf(response?.statusCode)),
    logKeys<E, R>((event) => ({ route: routeName, requestId: event.requestContext?.requestId })),
    namedErrors<E, R>((named, request) => {
      // Setting the response (not returning it) lets every other onError run: the trace records the error.
      request.response = answerError(named, request.event);
      logAnswered(routeName, named, request.response.statusCode);
    }),
  ]);
}

/** A 5xx is ours (or Step Functions'): an error; a 4xx the caller's: information. */
function logAnswered(routeName: string, named: Error, statusCode: number | undefined): void {
  const fields = { errorName: named.name, statusCode, error: named };
  if (httpOutcomeOf(statusCode) === "RequestFailed") logger.error(`${routeName} failed with ${named.name}`, fields);
  else logger.info(`${routeName} refused with ${named.name}`, fields);
}

/** What an EventBridge event carries that names it. */
export interface EventBridgeEventLike {
  id?: string;
  source?: string;
}

/** Started (or found), deferred (a transient error: Lambda retries the event) or refused (it can never succeed). */
export function eventOutcomeOf(error: Error | null | undefined): "EventAccepted" | "EventDeferred" | "EventRefused" {
  if (!error) return "EventAccepted";
  return error instanceof ProvisionerError && error.transient ? "EventDeferred" : "EventRefused";
}

/**
 * Wrap an EventBridge target: `export const handler = eventHandler("ComputeEnvironmentRequested", (event) => start(event))`.
 * What the handler throws comes out named, logged once (a warning when Lambda's retries may yet succeed); the event
 * id and source are on every log line.
 */
export function eventHandler<E extends EventBridgeEventLike, R>(name: string, fn: HandlerFunction<E, R>): WrappedHandler<E, R> {
  return withPowertools(name, fn, [
    countOutcomes<E, R>(["event", name], ({ error }) => eventOutcomeOf(error)),
    logKeys<E, R>((event) => ({ eventId: event.id, source: event.source })),
    namedErrors<E, R>((named) => {
      const fields = { errorName: named.name, error: named };
      if (eventOutcomeOf(named) === "EventDeferred") logger.warn(`${name}: event deferred with ${named.name}; Lambda retries it`, fields);
      else logger.error(`${name}: event refused with ${named.name}`, fields);
    }),
  ]);
}
