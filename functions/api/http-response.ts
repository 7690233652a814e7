/** What the HTTP API handlers (payload format 2.0) share: JSON responses and the answer to an unexpected error. */
import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { ProvisionerError } from "../lib/domain/errors.js";

export type Response = APIGatewayProxyStructuredResultV2;

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): Response {
  return { statusCode, headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) };
}

/**
 * 503 with Retry-After when Step Functions is busy or unreachable (a transient named error), else 500 saying
 * `could not <what>` with the request id: the details are in the log, never in the response.
 */
export function errorResponse(error: unknown, requestId: string | undefined, what: string): Response {
  if (error instanceof ProvisionerError && error.transient) {
    return json(503, { error: error.name, message: "Step Functions is busy or unreachable; try again shortly" }, { "retry-after": "5" });
  }
  return json(500, { error: "InternalError", message: `could not ${what}`, requestId });
}
