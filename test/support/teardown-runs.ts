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

export function environmentPath(tenant: string): string {
  return `/environments/${tenant}/${CLUSTER.region}/${CLUSTER.name}`;
}

export async function postEnvironment(sandbox: Sandbox, request: unknown): Promise<Answer> {
  const res = await fetch(`${sandbox.apiUrl}/environments`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(request),
  });
  return { status: res.status, body: await res.json() };
}

export async function deleteEnvironment(sandbox: Sandbox, tenant: string): Promise<Answer> {
  const res = await fetch(`${sandbox.apiUrl}${environmentPath(tenant)}`, { method: "DELETE" });
  return { status: res.status, body: await res.json() };
}

export async function putEnvironment(sandbox: Sandbox, tenant: string, spec: unknown): Promise<Answer> {
  const res = await fetch(`${sandbox.apiUrl}${environmentPath(tenant)}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(spec),
  });
  return { status: res.status, body: await res.json() };
}

export async function postReconcile(sandbox: Sandbox, tenant: string): Promise<Answer> {
  const res = await fetch(`${sandbox.apiUrl}${environmentPath(tenant)}/reconcile`, { method: "POST" });
  return { status: res.status, body: await res.json() };
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

export async function readEnvironment(sandbox: Sandbox, tenant: string): Promise<Answer> {
  const res = await fetch(`${sandbox.apiUrl}${environmentPath(tenant)}`);
  return { status: res.status, body: await res.json() };
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
