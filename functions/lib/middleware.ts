/**
 * The thin wrapper every step Lambda shares: a middy handler that puts the execution name, tenant and
 * step on every log line, and turns whatever the step threw into a named error (errors.ts) so the
 * state machine's Retry/Catch can match on it. Logic stays in the step's own function.
 *
 * The handler also works when called directly as `handler(event, context)` with a minimal context
 * (the local Step Functions runner and the tests do that).
 */
import middy from "@middy/core";
import type { MiddlewareObj } from "@middy/core";
import { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import type { Context } from "aws-lambda";
import { normaliseError } from "./normalise-error.js";

export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "nf-eks-provisioner" });

/** What a step handler may be called with: the real Lambda context, or any part of it. */
export type StepContext = Partial<Context>;
export type StepFunction<E, R> = (event: E, context: Context) => Promise<R>;
export type StepHandler<E, R> = (event: E, context?: StepContext) => Promise<R>;

interface EventWithIdentity {
  execution?: { name?: unknown };
  request?: { tenant?: unknown };
}

/** The keys every log line of this invocation carries. */
export function logKeysOf(stepName: string, event: unknown): Record<string, string> {
  const e = (event && typeof event === "object" ? event : {}) as EventWithIdentity;
  const keys: Record<string, string> = { step: stepName };
  if (typeof e.execution?.name === "string") keys.execution = e.execution.name;
  if (typeof e.request?.tenant === "string") keys.tenant = e.request.tenant;
  return keys;
}

function identityAndErrors<E, R>(stepName: string): MiddlewareObj<E, R, Error, Context> {
  return {
    before: (request) => {
      logger.appendKeys(logKeysOf(stepName, request.event));
    },
    onError: (request) => {
      const named = normaliseError(request.error);
      // Logged once here, with the name the state machine will match on.
      logger.error(`${stepName} failed with ${named.name}`, { errorName: named.name, error: named });
      request.error = named;
    },
  };
}

/** A Lambda-like context for direct calls, so Powertools and middy find what they read. */
function completeContext(stepName: string, context: StepContext | undefined): Context {
  const started = Date.now();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: stepName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `local:${stepName}`,
    memoryLimitInMB: "128",
    awsRequestId: `local-${started.toString(36)}`,
    logGroupName: "local",
    logStreamName: "local",
    // Lambda's longest timeout: middy aborts early only when the real context says so.
    getRemainingTimeInMillis: () => Math.max(0, 900_000 - (Date.now() - started)),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
    ...context,
  } as Context;
}

/**
 * Wrap a step: `export const apply = stepHandler("CreateIamResources", (state) => createIam(state))`.
 * Thrown errors come out named (Throttled, OwnershipConflict, ...), with the original as `cause`.
 */
export function stepHandler<E, R>(stepName: string, fn: StepFunction<E, R>): StepHandler<E, R> {
  // Middleware order (after/onError run in reverse): logger context → identity keys + error naming.
  const handler = middy<E, R, Error, Context>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(identityAndErrors<E, R>(stepName))
    .handler((event, context) => fn(event, context));
  return (event, context) => handler(event, completeContext(stepName, context));
}
