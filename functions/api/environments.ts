/**
 * Environments as records (HTTP API, payload format 2.0), addressed as /environments/{tenant}/{region}/{cluster}.
 *
 * POST /environments: create. The body is a provisioning request (the same schema, allowlist and Idempotency-Key as
 * POST /provision).
 *   202 {executionArn, executionName, statusUrl, environmentUrl}   a new environment: its first run started
 *   200 {environment, lastExecution}   it exists with the same spec: nothing started
 *   409 EnvironmentExists {environmentUrl, updateUrl}   it exists with another spec: update it instead
 *   409 RunInProgress, 422 IdempotencyKeyReused, 400, 403, 503, 500   as POST /provision
 * A failed (compensated) environment owns nothing: a create starts it again, also with a corrected spec. The comparison
 * is the one every create path makes (workflow/existing-environment.ts, through entry/start-provisioning.ts).
 *
 * GET /environments?cluster=&region=&status=&limit=&cursor=   200 {items, next?}
 * GET /environments/{tenant}/{region}/{cluster}[?drift=false]   200 the record with `drift`, a live check of each owned
 *   resource (workflow/drift.ts; a read that fails makes it `unknown` with the reason, never an error) | 404 EnvironmentNotFound
 *   `drift=false` skips the check (a registry read only).
 *
 * DELETE /environments/{tenant}/{region}/{cluster}: tear it down (statemachines/deprovision.asl.json, entry/start-teardown.ts).
 *   202 {executionArn, executionName, statusUrl, environmentUrl}   the teardown started (record: `removing`)
 *   200 {environment, message}   already removed: nothing to do (a repeated DELETE is harmless)
 *   404 EnvironmentNotFound | 409 RunInProgress (a run holds the lease) | 503, 500
 */
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import type { DeploymentConfig } from "../lib/domain/deploy-config.js";
import { environmentUrlFor } from "../lib/domain/environment-url.js";
import { createVerdict } from "../lib/workflow/existing-environment.js";
import { checkRequest, environmentIdOf, specOf, startProvisioning, type StartDeps } from "../lib/entry/start-provisioning.js";
import { startTeardown, type TeardownDeps } from "../lib/entry/start-teardown.js";
import {
  EnvironmentRegistry,
  listEnvironments,
  readEnvironment,
  type EnvironmentId,
  type EnvironmentRecord,
  type RegistryDeps,
} from "../lib/workflow/environment-registry.js";
import { checkDrift, type DriftReadDeps } from "../lib/workflow/drift-reader.js";
import { httpHandler } from "../lib/workflow/middleware.js";
import { errorResponse, json, type Response } from "./http-response.js";
import { answerError, answerStart, headerValue, parseBody, statusUrlFor } from "./provision.js";

export interface EnvironmentsApiDeps extends StartDeps {
  config?: DeploymentConfig;
}

/** The read routes only read: they get the registry's table, not the registry (whose writes they never make). */
export interface EnvironmentReadDeps {
  table?: RegistryDeps;
  /** the clients of the live drift check (default: made per call) */
  drift?: DriftReadDeps;
}

const MAX_PAGE = 100;

export { environmentUrlFor };

/** A record as the API shows it: the lease's holder as an execution, its expiry as a time. */
export function environmentView(record: EnvironmentRecord): Record<string, unknown> {
  const { lease, lastExecution, ...rest } = record;
  return {
    ...rest,
    ...(lastExecution ? { lastExecution: { ...lastExecution, statusUrl: statusUrlFor(lastExecution.name) } } : {}),
    ...(lease ? { lease: { holder: lease.owner, expiresAt: new Date(lease.expiresAt * 1000).toISOString() } } : {}),
    url: environmentUrlFor(record),
  };
}

function registryOf(deps: EnvironmentsApiDeps): EnvironmentRegistry {
  return deps.registry ?? new EnvironmentRegistry();
}

async function create(event: APIGatewayProxyEventV2, deps: EnvironmentsApiDeps): Promise<Response> {
  const body = parseBody(event);
  if (!body.ok) return body.response;
  const checked = checkRequest(body.value, { idempotencyKey: headerValue(event.headers, "idempotency-key"), config: deps.config });
  if (!checked.ok) return json(checked.error === "NotAllowed" ? 403 : 400, { error: checked.error, problems: checked.problems });

  const registry = registryOf(deps);
  const id = environmentIdOf(checked.request);
  const existing = await registry.getEnvironment(id);
  // A live environment with this spec is answered with, not run again (POST /provision runs it: it may carry a head
  // job). Another spec is refused by the start itself, as on every create path.
  const live = existing && existing.status !== "failed" && existing.status !== "removed";
  if (live && createVerdict(existing, specOf(checked.request)) === "same-spec") {
    const view = environmentView(existing);
    return json(200, { environment: view, lastExecution: view.lastExecution ?? null });
  }
  const answer = answerStart(checked.request, await startProvisioning(checked.request, { ...deps, registry }));
  if (answer.statusCode !== 202) return answer;
  return json(202, { ...JSON.parse(String(answer.body)), environmentUrl: environmentUrlFor(id) }, answer.headers as Record<string, string>);
}

async function list(event: APIGatewayProxyEventV2, deps: EnvironmentReadDeps): Promise<Response> {
  const query = event.queryStringParameters ?? {};
  const limit = query.limit === undefined ? 50 : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    return json(400, { error: "InvalidRequest", problems: [{ path: "limit", message: `limit is a whole number from 1 to ${MAX_PAGE}` }] });
  }
  if (query.cursor !== undefined && !isCursor(query.cursor)) {
    return json(400, { error: "InvalidRequest", problems: [{ path: "cursor", message: "cursor is the `next` of a previous page" }] });
  }
  const page = await listEnvironments(deps.table ?? {}, {
    limit,
    cursor: query.cursor,
    cluster: query.cluster,
    region: query.region,
    status: query.status,
  });
  return json(200, { items: page.items.map(environmentView), ...(page.next ? { next: page.next } : {}) });
}

function isCursor(cursor: string): boolean {
  try {
    const key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    return typeof key === "object" && key !== null && !Array.isArray(key);
  } catch {
    return false;
  }
}

function environmentIdOfPath(event: APIGatewayProxyEventV2): EnvironmentId {
  const p = event.pathParameters ?? {};
  return { tenant: p.tenant ?? "", region: p.region ?? "", cluster: p.cluster ?? "" };
}

/** A teardown's status link: by ARN (its runs are not the provisioning state machine's, which names address). */
export function teardownStatusUrl(executionArn: string): string {
  return `/executions/${encodeURIComponent(executionArn)}`;
}

async function remove(event: APIGatewayProxyEventV2, deps: TeardownDeps): Promise<Response> {
  const id = environmentIdOfPath(event);
  const started = await startTeardown(id, deps);
  switch (started.outcome) {
    case "not-found":
      return json(404, { error: "EnvironmentNotFound", message: `no environment ${environmentUrlFor(id)}` });
    case "already-removed":
      return json(200, { environment: environmentView(started.environment), message: "already removed: nothing to do" });
    case "run-in-progress":
      return json(409, {
        error: "RunInProgress",
        message: `environment ${environmentUrlFor(id)} has a run under way (${started.executionName}); try again once it has ended`,
        executionArn: started.executionArn,
        statusUrl: teardownStatusUrl(started.executionArn),
      });
    case "started": {
      const statusUrl = teardownStatusUrl(started.executionArn);
      return json(
        202,
        { executionArn: started.executionArn, executionName: started.executionName, statusUrl, environmentUrl: environmentUrlFor(id) },
        { location: statusUrl },
      );
    }
  }
}

async function read(event: APIGatewayProxyEventV2, deps: EnvironmentReadDeps): Promise<Response> {
  const id = environmentIdOfPath(event);
  const record = await readEnvironment(deps.table ?? {}, id);
  if (!record) return json(404, { error: "EnvironmentNotFound", message: `no environment ${environmentUrlFor(id)}` });
  const query = event.queryStringParameters ?? {};
  if (query.drift !== undefined && query.drift !== "true" && query.drift !== "false") {
    return json(400, {
      error: "InvalidRequest",
      problems: [{ path: "drift", message: "drift is true (the default: a live check) or false (the record only)" }],
    });
  }
  if (query.drift === "false") return json(200, environmentView(record));
  // A removed environment owns nothing: there is nothing to check.
  const drift = record.status === "removed" ? undefined : await checkDrift(record, deps.drift);
  return json(200, { ...environmentView(record), ...(drift ? { drift } : {}) });
}

function readError(error: Error, event: APIGatewayProxyEventV2): Response {
  return errorResponse(error, event.requestContext?.requestId, "read the environment registry");
}

export function createEnvironmentHandler(deps: EnvironmentsApiDeps = {}) {
  return httpHandler("POST /environments", (event: APIGatewayProxyEventV2) => create(event, deps), answerError);
}

export function createListEnvironmentsHandler(deps: EnvironmentReadDeps = {}) {
  return httpHandler("GET /environments", (event: APIGatewayProxyEventV2) => list(event, deps), readError);
}

export function createReadEnvironmentHandler(deps: EnvironmentReadDeps = {}) {
  return httpHandler("GET /environments/{tenant}/{region}/{cluster}", (event: APIGatewayProxyEventV2) => read(event, deps), readError);
}

export function createDeleteEnvironmentHandler(deps: TeardownDeps = {}) {
  return httpHandler(
    "DELETE /environments/{tenant}/{region}/{cluster}",
    (event: APIGatewayProxyEventV2) => remove(event, deps),
    (error, event) => errorResponse(error, event.requestContext?.requestId, "start the teardown workflow"),
  );
}

export const createHandler = createEnvironmentHandler();
export const deleteHandler = createDeleteEnvironmentHandler();
export const listHandler = createListEnvironmentsHandler();
export const readHandler = createReadEnvironmentHandler();
