/**
 * POST /provision (HTTP API, payload format 2.0): validate the body with the workflow's own schema,
 * refuse clusters off the allowlist, start the workflow, answer 202 with where to watch it.
 *
 *   400 InvalidJson | InvalidRequest {problems: [{path, message}]}  (every problem at once; also a
 *                                    request Step Functions refuses as too large an input)
 *   403 NotAllowed {problems}        cluster not on this deployment's allowlist
 *   409 RunInProgress {executionArn, statusUrl}   another run of the tenant is under way: try after it ends
 *   409 EnvironmentExists {environmentUrl, updateUrl}   the environment exists with another spec: PUT it instead (the
 *                                    same spec starts a run: a re-run, which may carry a head job)
 *   422 IdempotencyKeyReused         the key already started a run for a different request
 *   202 {executionArn, executionName, statusUrl}   started, or the same request's existing run
 *   503 Throttled | ClusterUnreachable (Retry-After)   Step Functions is busy: try again
 *   500 InternalError                anything else (details in the log, never in the response)
 */
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import type { DeploymentConfig } from "../lib/domain/deploy-config.js";
import { EnvironmentExists, InvalidRequest } from "../lib/domain/errors.js";
import { httpHandler, logger } from "../lib/workflow/middleware.js";
import { checkRequest, startProvisioning, type StartDeps, type StartOutcome } from "../lib/entry/start-provisioning.js";
import type { ProvisionRequest } from "../lib/domain/request.js";
import { errorResponse, json, type Response } from "./http-response.js";

const IDEMPOTENCY_KEY_HEADER = "idempotency-key";

export interface ProvisionApiDeps extends StartDeps {
  config?: DeploymentConfig;
}

/** API Gateway lower-cases header names in payload 2.0; direct callers (the dev server, tests) may not. */
export function headerValue(headers: APIGatewayProxyEventV2["headers"] | undefined, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers ?? {})) if (key.toLowerCase() === wanted) return value;
  return undefined;
}

function bodyText(event: APIGatewayProxyEventV2): string {
  if (!event.body) return "";
  return event.isBase64Encoded ? Buffer.from(event.body, "base64").toString("utf8") : event.body;
}

export function statusUrlFor(executionName: string): string {
  return `/executions/${encodeURIComponent(executionName)}`;
}

export function parseBody(event: APIGatewayProxyEventV2): { ok: true; value: unknown } | { ok: false; response: Response } {
  const text = bodyText(event);
  if (!text.trim())
    return {
      ok: false,
      response: json(400, { error: "InvalidJson", message: "the request body is empty; send the provisioning request as JSON" }),
    };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return {
      ok: false,
      response: json(400, { error: "InvalidJson", message: `the request body is not valid JSON: ${(error as Error).message}` }),
    };
  }
}

/** The route itself: every answer but the one to a thrown error (answerError, through httpHandler). */
async function answer(event: APIGatewayProxyEventV2, deps: ProvisionApiDeps): Promise<Response> {
  const body = parseBody(event);
  if (!body.ok) return body.response;

  const checked = checkRequest(body.value, { idempotencyKey: headerValue(event.headers, IDEMPOTENCY_KEY_HEADER), config: deps.config });
  if (!checked.ok) {
    logger.info("provisioning request refused", { error: checked.error, problems: checked.problems });
    return json(checked.error === "NotAllowed" ? 403 : 400, { error: checked.error, problems: checked.problems });
  }

  return answerStart(checked.request, await startProvisioning(checked.request, deps));
}

/** What POST /provision and POST /environments answer once a start was tried: 202, 409 RunInProgress or EnvironmentExists, or 422. */
export function answerStart(request: ProvisionRequest, started: StartOutcome): Response {
  if (started.outcome === "environment-exists") {
    // The same refusal the onboarding event throws.
    const refusal = new EnvironmentExists(started.environmentUrl);
    logger.info("provisioning refused: the environment exists with another spec", { environmentUrl: started.environmentUrl });
    return json(409, {
      error: refusal.name,
      message: refusal.message,
      environmentUrl: started.environmentUrl,
      updateUrl: started.environmentUrl,
    });
  }
  if (started.outcome === "key-reused") {
    return json(422, {
      error: "IdempotencyKeyReused",
      message: `idempotency key "${request.idempotencyKey}" was already used for a different request; use a new key`,
    });
  }
  if (started.outcome === "run-in-progress") {
    logger.info("provisioning refused: another run of the tenant is under way", {
      executionArn: started.executionArn,
      tenant: request.tenant,
    });
    return json(409, {
      error: "RunInProgress",
      message: `tenant "${request.tenant}" has a run under way (${started.executionName}); try again once it has ended`,
      executionArn: started.executionArn,
      statusUrl: statusUrlFor(started.executionName),
    });
  }
  logger.info("provisioning started", { outcome: started.outcome, executionArn: started.executionArn, tenant: request.tenant });
  const statusUrl = statusUrlFor(started.executionName);
  // A repeat answers exactly like the first call: same execution, same status URL.
  return json(202, { executionArn: started.executionArn, executionName: started.executionName, statusUrl }, { location: statusUrl });
}

/** A request Step Functions refuses (too large an input) is the caller's to fix; anything else is 503 or 500. */
export function answerError(error: Error, event: APIGatewayProxyEventV2): Response {
  if (error instanceof InvalidRequest) return json(400, { error: error.name, problems: error.problems });
  return errorResponse(error, event.requestContext?.requestId, "start the provisioning workflow");
}

export function createProvisionHandler(deps: ProvisionApiDeps = {}) {
  return httpHandler("POST /provision", (event: APIGatewayProxyEventV2) => answer(event, deps), answerError);
}

export const handler = createProvisionHandler();
