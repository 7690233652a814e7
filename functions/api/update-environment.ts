/**
 * PUT /environments/{tenant}/{region}/{cluster} (HTTP API, payload format 2.0): replace an environment's desired spec
 * with a new generation and start the update run that converges the cluster and the account to it.
 *
 * The body is the spec: a provisioning request without its head job (a head job belongs to a run) and without
 * `tenant` and `cluster`, which the path gives (when the body has them they must match it). Everything is checked up
 * front, and every problem answered at once:
 *   404 EnvironmentNotFound              no such environment (or it was removed)
 *   400 InvalidJson | InvalidRequest     every problem: the schema's, a tenant or cluster that is not the path's, a head
 *                                        job, a claim that would shrink or change its StorageClass (domain/spec-change.ts)
 *   403 NotAllowed                       the cluster is not on this deployment's allowlist
 *   409 RunInProgress                    a run holds the environment's lease
 *   409 EnvironmentNotReady              the environment is not `ready` (a failed create: POST /environments again)
 *   409 EnvironmentChanged               another update finished between this one's read and its start: read, retry
 *   200 {environment, lastExecution}     the spec is the recorded one: nothing to do, nothing started
 *   202 {executionArn, executionName, statusUrl, environmentUrl, generation}   the update run started: the record holds
 *                                        the new generation as desired, status `updating`, and the run holds the lease
 *   422 IdempotencyKeyReused, 503, 500   as POST /provision
 *
 * Whether a claim's StorageClass allows it to grow needs a cluster read, which the API does not make (its role reaches
 * the registry and Step Functions only): the run checks it before it changes the claim (VolumeExpansionNotAllowed).
 */
import { isDeepStrictEqual } from "node:util";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import type { Problem } from "../lib/domain/errors.js";
import { claimChangeProblems } from "../lib/domain/spec-change.js";
import { checkRequest, specOf, startProvisioning } from "../lib/entry/start-provisioning.js";
import { EnvironmentRegistry, type EnvironmentId, type EnvironmentRecord } from "../lib/workflow/environment-registry.js";
import { httpHandler } from "../lib/workflow/middleware.js";
import { environmentUrlFor, environmentView, type EnvironmentsApiDeps } from "./environments.js";
import { json, type Response } from "./http-response.js";
import { answerError, answerStart, headerValue, parseBody } from "./provision.js";

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The body with the path's tenant and cluster, and the problems of a body that names others (or carries a head job). */
export function specRequestOf(body: unknown, id: EnvironmentId): { request: unknown; problems: Problem[] } {
  if (!isPlainObject(body)) return { request: body, problems: [] };
  const problems: Problem[] = [];
  if (body.tenant !== undefined && body.tenant !== id.tenant) {
    problems.push({
      path: "tenant",
      message: `the body names tenant ${JSON.stringify(body.tenant)}, the path ${id.tenant}: leave it out or make it the path's`,
    });
  }
  const cluster = isPlainObject(body.cluster) ? body.cluster : undefined;
  if (body.cluster !== undefined && !cluster)
    problems.push({ path: "cluster", message: "cluster comes from the path: leave it out or make it the path's" });
  if (cluster?.name !== undefined && cluster.name !== id.cluster) {
    problems.push({
      path: "cluster.name",
      message: `the body names cluster ${JSON.stringify(cluster.name)}, the path ${id.cluster}: leave it out or make it the path's`,
    });
  }
  if (cluster?.region !== undefined && cluster.region !== id.region) {
    problems.push({
      path: "cluster.region",
      message: `the body names region ${JSON.stringify(cluster.region)}, the path ${id.region}: leave it out or make it the path's`,
    });
  }
  if (body.headJob !== undefined) {
    problems.push({
      path: "headJob",
      message: "a head job belongs to a run, not to the environment's spec: PUT takes the spec without one",
    });
  }
  const { headJob: _headJob, ...rest } = body;
  return { request: { ...rest, tenant: id.tenant, cluster: { ...(cluster ?? {}), name: id.cluster, region: id.region } }, problems };
}

function notReady(record: EnvironmentRecord): Response {
  const url = environmentUrlFor(record);
  const hint = record.status === "failed" ? `; create it again with POST /environments` : "";
  return json(409, {
    error: "EnvironmentNotReady",
    message: `environment ${url} is ${record.status}, not ready: only a ready environment is updated${hint}`,
    environmentUrl: url,
  });
}

async function update(event: APIGatewayProxyEventV2, deps: EnvironmentsApiDeps): Promise<Response> {
  const p = event.pathParameters ?? {};
  const id: EnvironmentId = { tenant: p.tenant ?? "", region: p.region ?? "", cluster: p.cluster ?? "" };
  const registry = deps.registry ?? new EnvironmentRegistry();
  const record = await registry.getEnvironment(id);
  if (!record || record.status === "removed")
    return json(404, { error: "EnvironmentNotFound", message: `no environment ${environmentUrlFor(id)}` });

  const body = parseBody(event);
  if (!body.ok) return body.response;
  const { request, problems } = specRequestOf(body.value, id);
  const checked = checkRequest(request, { idempotencyKey: headerValue(event.headers, "idempotency-key"), config: deps.config });
  if (!checked.ok && checked.error === "NotAllowed") return json(403, { error: checked.error, problems: checked.problems });
  const all = [...problems, ...(checked.ok ? claimChangeProblems(record.spec, checked.request) : checked.problems)];
  if (!checked.ok || all.length) return json(400, { error: "InvalidRequest", problems: all });

  const nowSeconds = Math.floor(Date.now() / 1000);
  if (record.lease && record.lease.expiresAt > nowSeconds) {
    return json(409, {
      error: "RunInProgress",
      message: `environment ${environmentUrlFor(id)} has a run under way; try again once it has ended`,
      executionArn: record.lease.owner,
      statusUrl: `/executions/${encodeURIComponent(record.lease.owner)}`,
    });
  }
  if (isDeepStrictEqual(record.spec, specOf(checked.request))) {
    const view = environmentView(record);
    return json(200, { environment: view, lastExecution: view.lastExecution ?? null });
  }
  if (record.status !== "ready") return notReady(record);

  const previous = { spec: record.spec, generation: record.generation, owned: record.owned };
  const started = await startProvisioning(
    checked.request,
    { ...deps, registry },
    { update: { previous, generation: record.generation + 1 } },
  );
  if (started.outcome === "run-in-progress" && !started.executionArn) {
    return json(409, {
      error: "EnvironmentChanged",
      message: `environment ${environmentUrlFor(id)} changed since it was read (another run finished): read it again and retry`,
      environmentUrl: environmentUrlFor(id),
    });
  }
  const answer = answerStart(checked.request, started);
  if (answer.statusCode !== 202) return answer;
  return json(
    202,
    { ...JSON.parse(String(answer.body)), environmentUrl: environmentUrlFor(id), generation: record.generation + 1 },
    answer.headers as Record<string, string>,
  );
}

export function createUpdateEnvironmentHandler(deps: EnvironmentsApiDeps = {}) {
  return httpHandler("PUT /environments/{tenant}/{region}/{cluster}", (event: APIGatewayProxyEventV2) => update(event, deps), answerError);
}

export const updateHandler = createUpdateEnvironmentHandler();
