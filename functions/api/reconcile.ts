/**
 * POST /environments/{tenant}/{region}/{cluster}/reconcile: re-apply the environment's recorded spec as a run, like any
 * other (the lease, retries, compensation): what was deleted by hand is made again, an owned role's documents are
 * brought back to the spec's. The same entry code as a create (entry/start-provisioning.ts): the spec is validated and
 * allowlisted again, so a deployment that no longer allows the cluster refuses it.
 *
 *   202 {executionArn, executionName, statusUrl, environmentUrl}   the run started
 *   404 EnvironmentNotFound
 *   409 EnvironmentRemoved (torn down: create it again instead) | RunInProgress (another run holds the lease)
 *   400, 403, 422, 503, 500   as POST /provision (Idempotency-Key too)
 */
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { checkRequest, startProvisioning } from "../lib/entry/start-provisioning.js";
import { EnvironmentRegistry } from "../lib/workflow/environment-registry.js";
import { httpHandler } from "../lib/workflow/middleware.js";
import { environmentUrlFor, type EnvironmentsApiDeps } from "./environments.js";
import { json, type Response } from "./http-response.js";
import { answerError, answerStart, headerValue } from "./provision.js";

export function reconcileUrlFor(id: { tenant: string; region: string; cluster: string }): string {
  return `${environmentUrlFor(id)}/reconcile`;
}

async function reconcile(event: APIGatewayProxyEventV2, deps: EnvironmentsApiDeps): Promise<Response> {
  const p = event.pathParameters ?? {};
  const id = { tenant: p.tenant ?? "", region: p.region ?? "", cluster: p.cluster ?? "" };
  const registry = deps.registry ?? new EnvironmentRegistry();
  const record = await registry.getEnvironment(id);
  if (!record) return json(404, { error: "EnvironmentNotFound", message: `no environment ${environmentUrlFor(id)}` });
  if (record.status === "removed") {
    return json(409, { error: "EnvironmentRemoved", message: `environment ${environmentUrlFor(id)} was removed; create it again with POST /environments`, environmentUrl: environmentUrlFor(id) });
  }
  const checked = checkRequest(record.spec, { idempotencyKey: headerValue(event.headers, "idempotency-key"), config: deps.config });
  if (!checked.ok) return json(checked.error === "NotAllowed" ? 403 : 400, { error: checked.error, problems: checked.problems });
  const answer = answerStart(checked.request, await startProvisioning(checked.request, { ...deps, registry }));
  if (answer.statusCode !== 202) return answer;
  return json(202, { ...JSON.parse(String(answer.body)), environmentUrl: environmentUrlFor(id) }, answer.headers as Record<string, string>);
}

export function createReconcileHandler(deps: EnvironmentsApiDeps = {}) {
  return httpHandler("POST /environments/{tenant}/{region}/{cluster}/reconcile", (event: APIGatewayProxyEventV2) => reconcile(event, deps), answerError);
}

export const handler = createReconcileHandler();
