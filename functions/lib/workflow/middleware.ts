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
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { Tracer } from "@aws-lambda-powertools/tracer";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import type { Context } from "aws-lambda";
import { lambdaContext } from "./lambda-context.js";
import { normaliseError } from "./normalise-error.js";

const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? "nf-eks-provisioner";
export const logger = new Logger({ serviceName });
/** X-Ray segments per step (a no-op outside Lambda or with POWERTOOLS_TRACE_ENABLED=false). */
export const tracer = new Tracer({ serviceName });
/** CloudWatch metrics (EMF) per step: StepSucceeded / StepFailed with the step as dimension. */
export const metrics = new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "NfEksProvisioner", serviceName });

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

/** One count per outcome, so an operator can alarm on failures of a step or of a kind of error. */
function stepMetrics<E, R>(stepName: string): MiddlewareObj<E, R, Error, Context> {
  return {
    before: () => {
      // One Metrics object serves every step in a process (the sandbox): start each invocation clean.
      metrics.clearDimensions();
      metrics.addDimension("step", stepName);
    },
    after: () => {
      metrics.addMetric("StepSucceeded", MetricUnit.Count, 1);
    },
    onError: (request) => {
      metrics.addMetric("StepFailed", MetricUnit.Count, 1);
      metrics.addMetadata("errorName", request.error?.name ?? "Error");
    },
  };
}

/** A Lambda-like context for direct calls, so Powertools and middy find what they read. */
function completeContext(stepName: string, context: StepContext | undefined): Context {
  return { ...lambdaContext({ functionName: stepName }), ...context } as Context;
}

/**
 * Wrap a step: `export const apply = stepHandler("CreateIamResources", (state) => createIam(state))`.
 * Thrown errors come out named (Throttled, OwnershipConflict, ...), with the original as `cause`.
 */
export function stepHandler<E, R>(stepName: string, fn: StepFunction<E, R>): StepHandler<E, R> {
  // Order tracer → logger → metrics, as Powertools advises; error naming last, so its onError runs
  // first (middy runs after/onError in reverse) and every other middleware sees the named error.
  const handler = middy<E, R, Error, Context>()
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .use(stepMetrics<E, R>(stepName))
    .use(identityAndErrors<E, R>(stepName))
    .handler((event, context) => fn(event, context));
  return (event, context) => handler(event, completeContext(stepName, context));
}
