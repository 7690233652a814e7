/**
 * Driving environments through the HTTP API in the sandbox: POST /environments, GET, PUT and DELETE
 * /environments/{tenant}/{region}/{cluster}, POST …/reconcile. Shared by test/integration/teardown*.test.ts,
 * update.test.ts and environment-journey.test.ts.
 */
import type { DescribeExecutionOutput } from "@aws-sdk/client-sfn";
import type { Sandbox } from "../../local/sandbox.js";
import { CLUSTER, finish, RUN_TIMEOUT_MS, type Run, type Started } from "./sandbox-runs.js";

export interface Answer {
  status: number;
  body: any;
}

/** Any route of the sandbox's HTTP API, with a JSON body when given: the status and the JSON answer. */
export async function callApi(sandbox: Sandbox, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${sandbox.apiUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

export function environmentPath(tenant: string): string {
  return `/environments/${tenant}/${CLUSTER.region}/${CLUSTER.name}`;
}

export function postEnvironment(sandbox: Sandbox, request: unknown): Promise<Answer> {
  return callApi(sandbox, "POST", "/environments", request);
}

export function deleteEnvironment(sandbox: Sandbox, tenant: string): Promise<Answer> {
  return callApi(sandbox, "DELETE", environmentPath(tenant));
}

export function putEnvironment(sandbox: Sandbox, tenant: string, spec: unknown): Promise<Answer> {
  return callApi(sandbox, "PUT", environmentPath(tenant), spec);
}

export function postReconcile(sandbox: Sandbox, tenant: string): Promise<Answer> {
  return callApi(sandbox, "POST", `${environmentPath(tenant)}/reconcile`);
}

/** The spec a PUT sends: the request without tenant and cluster (the path names them). */
export function specOf(request: object): Record<string, unknown> {
  const { tenant: _tenant, cluster: _cluster, ...spec } = request as Record<string, unknown>;
  return spec;
}

/**
 * Change an existing environment to `request` the way an operator must (PUT; POST answers 409 EnvironmentExists
 * to another spec), expect 202, and wait for the update run to end, read as `provision` reads a run.
 */
export async function updateTo(sandbox: Sandbox, request: { tenant: string }): Promise<Run> {
  const answer = await putEnvironment(sandbox, request.tenant, specOf(request));
  if (answer.status !== 202)
    throw new Error(`PUT ${environmentPath(request.tenant)} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return finish(sandbox, answer.body as Started);
}

export function readEnvironment(sandbox: Sandbox, tenant: string): Promise<Answer> {
  return callApi(sandbox, "GET", environmentPath(tenant));
}

export interface Ended {
  answer: Answer;
  execution: DescribeExecutionOutput;
}

/** POST /environments (expects 202) and wait for the run to end. */
export async function createEnvironment(sandbox: Sandbox, request: unknown): Promise<Ended> {
  const answer = await postEnvironment(sandbox, request);
  if (answer.status !== 202) throw new Error(`POST /environments answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return { answer, execution: await sandbox.stepFunctions.waitFor(answer.body.executionArn, { timeoutMs: RUN_TIMEOUT_MS }) };
}

/** DELETE the tenant's environment (expects 202) and wait for the teardown to end. */
export async function teardown(sandbox: Sandbox, tenant: string): Promise<Ended> {
  const answer = await deleteEnvironment(sandbox, tenant);
  if (answer.status !== 202) throw new Error(`DELETE ${environmentPath(tenant)} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return { answer, execution: await sandbox.stepFunctions.waitFor(answer.body.executionArn, { timeoutMs: RUN_TIMEOUT_MS }) };
}
