/**
 * Starting a provisioning run: the one place the HTTP API and the EventBridge entry share.
 *  1. `checkRequest`: the workflow's own schema (every problem, by path) and the deploy-time cluster
 *     allowlist, so a request that can only fail is refused at the door.
 *  2. `startProvisioning`: StartExecution under a name derived from tenant + idempotency key. A repeat of
 *     the same request finds the execution already there and returns it; the same key with a different
 *     request is reported as `key-reused`, never started.
 *
 * One run per environment at a time: a second run of the same tenant would adopt the first one's objects
 * (they carry the tenant's marks), and if the first then failed, its compensation would delete them under
 * the second. So a new run is refused (`run-in-progress`) while another holds the environment's lease in the
 * registry (environment-registry.ts): a single-item conditional write, taken before StartExecution with the
 * execution as its owner and the run's timeout as its expiry, released by the workflow's last state. Two starts
 * in the same instant get one run. The ListExecutions look before it stays as an early answer only (it lags).
 * Without a registry table configured (REGISTRY_TABLE_NAME unset: unit tests) the look is all there is.
 *
 * Every create path comes through here, so here is where an existing environment's spec is defended: a run for another
 * spec of a live environment is refused (`environment-exists`: 409 EnvironmentExists, or the event's named error), as
 * only an update (PUT) may change it (workflow/existing-environment.ts). The same spec starts a run (a re-run: it may
 * carry a head job). The record the decision was made on is the one the lease is taken from (its generation), so a
 * run that finished in between cannot slip another spec past it.
 */
import { isDeepStrictEqual } from "node:util";
import {
  DescribeExecutionCommand,
  paginateListExecutions,
  StartExecutionCommand,
  type DescribeExecutionOutput,
  type ExecutionListItem,
  type SFNClient,
} from "@aws-sdk/client-sfn";
import { sfnClient } from "../aws/clients.js";
import { loadDeploymentConfig, STATE_MACHINE_ARN_ENV, type DeploymentConfig } from "../domain/deploy-config.js";
import { InvalidRequest, NotAllowed, type Problem } from "../domain/errors.js";
import { executionArnFor, executionNameFor, tenantOfExecutionName } from "../domain/execution-name.js";
import { awsErrorName, isAwsError, normaliseError } from "../workflow/normalise-error.js";
import { headPodQuotaProblems, safeParseRequest, type ProvisionRequest } from "../domain/request.js";
import { assertClusterAllowed } from "../domain/allowlist.js";
import { EnvironmentRegistry, REGISTRY_TABLE_ENV, type EnvironmentId, type EnvironmentRecord } from "../workflow/environment-registry.js";
import { createVerdict, ownsNothing } from "../workflow/existing-environment.js";
import { environmentUrlFor } from "../domain/environment-url.js";
import type { RerunContext, UpdateContext } from "../workflow/workflow-state.js";
import { RUN_TIMEOUT_SECONDS } from "../domain/run-timeout.js";

export type RequestCheck =
  | { ok: true; request: ProvisionRequest }
  | { ok: false; error: "InvalidRequest" | "NotAllowed"; problems: Problem[] };

export interface CheckOptions {
  /** From the Idempotency-Key header (or the event id): replaces the body's `idempotencyKey`. */
  idempotencyKey?: string;
  config?: DeploymentConfig;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validate like the workflow does, then check the allowlist. */
export function checkRequest(input: unknown, options: CheckOptions = {}): RequestCheck {
  // The key goes through the schema with the body, so a bad header is reported as `idempotencyKey`.
  const withKey =
    options.idempotencyKey !== undefined && isPlainObject(input) ? { ...input, idempotencyKey: options.idempotencyKey } : input;
  const parsed = safeParseRequest(withKey);
  if (!parsed.ok) return { ok: false, error: "InvalidRequest", problems: parsed.problems };
  const config = options.config ?? loadDeploymentConfig();
  try {
    assertClusterAllowed(parsed.request, config);
  } catch (error) {
    if (error instanceof NotAllowed) return { ok: false, error: "NotAllowed", problems: [{ path: "cluster", message: error.message }] };
    throw error;
  }
  const quotaProblems = headPodQuotaProblems(parsed.request.headJob, parsed.request.quota, config.namespaceQuota);
  if (quotaProblems.length) return { ok: false, error: "InvalidRequest", problems: quotaProblems };
  return { ok: true, request: parsed.request };
}

export type StartOutcome =
  | { outcome: "started"; executionArn: string; executionName: string }
  /** The same request under the same key: the execution that already exists (running or finished). */
  | { outcome: "existing"; executionArn: string; executionName: string; status?: string }
  /** The key was used before for a different request. */
  | { outcome: "key-reused"; executionName: string }
  /** Another run of the same tenant is RUNNING (this one): nothing was started. */
  | { outcome: "run-in-progress"; executionArn: string; executionName: string }
  /** The environment exists with another spec, which only an update (PUT on environmentUrl) changes: nothing was started. */
  | { outcome: "environment-exists"; environmentUrl: string };

/** A run that exists (new or found): what callers report back. */
export type StartedExecution = Exclude<StartOutcome, { outcome: "key-reused" | "run-in-progress" | "environment-exists" }>;

export interface StartDeps {
  sfn?: SFNClient;
  stateMachineArn?: string;
  /** For names without an idempotency key */
  now?: Date;
  /** The environment registry (default: on REGISTRY_TABLE_NAME when set; null: none) */
  registry?: EnvironmentRegistry | null;
}

function registryOf(deps: StartDeps): EnvironmentRegistry | undefined {
  if (deps.registry !== undefined) return deps.registry ?? undefined;
  return process.env[REGISTRY_TABLE_ENV] ? new EnvironmentRegistry() : undefined;
}

/** The environment a request is for. */
export function environmentIdOf(request: ProvisionRequest): EnvironmentId {
  return { tenant: String(request.tenant), region: request.cluster.region, cluster: request.cluster.name };
}

/** An environment's spec: the validated request without its head job (it belongs to the run) and idempotency key. */
export function specOf(request: ProvisionRequest): Record<string, unknown> {
  const { headJob: _headJob, idempotencyKey: _key, ...spec } = asStored(request) as Record<string, unknown>;
  return spec;
}

/** The name of an execution ARN (its last `:` part). */
function nameOfArn(executionArn: string): string {
  return executionArn.slice(executionArn.lastIndexOf(":") + 1);
}

/** The record before this start took its lease (to put back if nothing starts), and whether this start created it. */
interface LeaseTaken {
  previous: EnvironmentRecord;
  created: boolean;
}

/** How often a create reads the record again when another run's outcome moved it on between its read and its lease. */
const LEASE_ATTEMPTS = 3;

/** The refusal of another spec for the environment `request` is for. */
function environmentExists(request: ProvisionRequest): StartOutcome {
  return { outcome: "environment-exists", environmentUrl: environmentUrlFor(environmentIdOf(request)) };
}

/**
 * The environment's lease for this run: the record created when it is new (a create of another spec refused when it is
 * not), then the lease taken from the generation that decision read. `recorded`: the record as the start already read it.
 */
async function leaseFor(
  registry: EnvironmentRegistry,
  request: ProvisionRequest,
  owner: { name: string; arn: string },
  update?: UpdateContext,
  recorded?: EnvironmentRecord,
): Promise<{ refused: StartOutcome } | { taken: LeaseTaken | undefined }> {
  const id = environmentIdOf(request);
  const spec = specOf(request);
  const expiresAt = Math.floor(Date.now() / 1000) + RUN_TIMEOUT_SECONDS;
  let known = recorded;
  for (let attempt = 1; ; attempt += 1) {
    const made = update || known ? undefined : await registry.createEnvironment(id, spec);
    const previous = made?.record ?? known ?? (await registry.getEnvironment(id));
    if (!update && previous && !made?.created && createVerdict(previous, spec) === "conflict")
      return { refused: environmentExists(request) };
    // An update takes the lease only from the generation it read, and marks the record `updating`; a create (or re-run)
    // only from the generation its verdict was made on.
    const lease = await registry.takeLease(id, {
      owner,
      expiresAt,
      spec,
      ...(update ? { status: "updating" as const, generation: update.previous.generation } : { generation: previous?.generation }),
    });
    if (lease.taken) return { taken: previous ? { previous, created: made?.created === true } : undefined };
    // No holder: the record moved on since it was read (a run ended, another started and ended): decide again.
    if (!update && !lease.holder && attempt < LEASE_ATTEMPTS) {
      known = await registry.getEnvironment(id);
      continue;
    }
    return { refused: { outcome: "run-in-progress", executionArn: lease.holder, executionName: nameOfArn(lease.holder) } };
  }
}

/**
 * What a re-run carries (`$.rerun`): the record as it was, when it owns something. A failure then undoes only this run's
 * work and the environment is intact, so the record is put back (report.ts) instead of left `failed` owning nothing,
 * which would hide the environment from the scheduled drift check and make a create of its spec start over.
 */
function rerunOf(taken: LeaseTaken | undefined): RerunContext | undefined {
  if (!taken || taken.created || ownsNothing(taken.previous.owned)) return undefined;
  const { spec, generation, status, owned } = taken.previous;
  return { previous: { spec, generation, status, owned } };
}

/** This deployment's state machine: the one given, else the STATE_MACHINE_ARN variable's. */
export function stateMachineArnFrom(deps: { stateMachineArn?: string }): string {
  const arn = deps.stateMachineArn ?? process.env[STATE_MACHINE_ARN_ENV];
  if (!arn) throw new Error(`${STATE_MACHINE_ARN_ENV} is not set`);
  return arn;
}

/** The request as the execution input stores it (JSON drops undefined fields). */
function asStored(request: ProvisionRequest): unknown {
  return JSON.parse(JSON.stringify(request));
}

function requestOfInput(input: string | undefined): unknown {
  try {
    return (JSON.parse(input ?? "null") as { request?: unknown } | null)?.request;
  } catch {
    return undefined;
  }
}

/** A RUNNING execution of `tenant` other than `executionName` (every page: ListExecutions pages at most 1000). */
async function otherRunOfTenant(
  sfn: SFNClient,
  stateMachineArn: string,
  tenant: string,
  executionName: string,
): Promise<ExecutionListItem | undefined> {
  for await (const page of paginateListExecutions({ client: sfn }, { stateMachineArn, statusFilter: "RUNNING", maxResults: 1000 })) {
    // The same name is this very request again (an idempotent repeat), not another run.
    const other = (page.executions ?? []).find(
      (e) => e.name !== executionName && e.name !== undefined && tenantOfExecutionName(e.name) === tenant,
    );
    if (other) return other;
  }
  return undefined;
}

/** The execution, or undefined when Step Functions has none with this ARN (any other error is thrown as it is). */
export async function describeExecutionIfAny(sfn: SFNClient, executionArn: string): Promise<DescribeExecutionOutput | undefined> {
  try {
    return await sfn.send(new DescribeExecutionCommand({ executionArn }));
  } catch (error) {
    if (isAwsError(error, "ExecutionDoesNotExist")) return undefined;
    throw error;
  }
}

/**
 * Step Functions refuses an input over 256 KiB (InvalidExecutionInput, or a ValidationException on the
 * `input` length): the request's fault, so a 400 with a problem, never a 500.
 */
function isInputTooLarge(error: unknown): boolean {
  if (isAwsError(error, "InvalidExecutionInput")) return true;
  const message = (error as { message?: unknown } | undefined)?.message;
  return (
    isAwsError(error, "ValidationException") &&
    typeof message === "string" &&
    /input/i.test(message) &&
    /exceed|length|too large|size/i.test(message)
  );
}

/** A key the registry remembers (beyond Step Functions' 90 days): its run for the same request, key-reused for another. */
async function keyedRun(
  registry: EnvironmentRegistry,
  sfn: SFNClient,
  request: ProvisionRequest,
  tenant: string,
): Promise<StartOutcome | undefined> {
  const known = await registry.findKey(tenant, request.idempotencyKey!);
  if (!known) return undefined;
  if (!isDeepStrictEqual(known.request, asStored(request))) return { outcome: "key-reused", executionName: known.executionName };
  const execution = await describeExecutionIfAny(sfn, known.executionArn);
  return { outcome: "existing", executionArn: known.executionArn, executionName: known.executionName, status: execution?.status };
}

/** The execution already under this name: `existing` for the same request, `key-reused` for another; undefined if none. */
async function executionUnderName(
  sfn: SFNClient,
  stateMachineArn: string,
  executionName: string,
  request: ProvisionRequest,
): Promise<Exclude<StartOutcome, { outcome: "started" | "run-in-progress" }> | undefined> {
  const executionArn = executionArnFor(stateMachineArn, executionName);
  const existing = await describeExecutionIfAny(sfn, executionArn);
  if (!existing) return undefined;
  if (isDeepStrictEqual(requestOfInput(existing.input), asStored(request))) {
    return { outcome: "existing", executionArn: existing.executionArn ?? executionArn, executionName, status: existing.status };
  }
  return { outcome: "key-reused", executionName };
}

/**
 * Start the workflow with `{request}` as input (the state machine's Start state adds the execution). What Step
 * Functions throws comes out named (Throttled, ClusterUnreachable, ...); a too large input as InvalidRequest.
 */
export async function startProvisioning(request: ProvisionRequest, deps: StartDeps = {}, run: StartRun = {}): Promise<StartOutcome> {
  try {
    return await startOrFind(request, deps, run);
  } catch (error) {
    throw normaliseError(error);
  }
}

/** What kind of run: a create (or re-run) by default; an update carries the generation it replaces (the workflow's `$.update`). */
export interface StartRun {
  update?: UpdateContext;
}

async function startOrFind(request: ProvisionRequest, deps: StartDeps, run: StartRun): Promise<StartOutcome> {
  const sfn = deps.sfn ?? sfnClient();
  const stateMachineArn = stateMachineArnFrom(deps);
  const tenant = String(request.tenant);
  const executionName = executionNameFor({ tenant, idempotencyKey: request.idempotencyKey }, { now: deps.now });

  const registry = registryOf(deps);
  const keyed = registry && request.idempotencyKey ? await keyedRun(registry, sfn, request, tenant) : undefined;
  if (keyed) return keyed;

  // Another spec of a live environment is refused before anything else: waiting for a run to end would not change it.
  const recorded = registry && !run.update ? await registry.getEnvironment(environmentIdOf(request)) : undefined;
  if (recorded && createVerdict(recorded, specOf(request)) === "conflict") return environmentExists(request);

  const running = await otherRunOfTenant(sfn, stateMachineArn, tenant, executionName);
  if (running) {
    // A keyed repeat of a run that already exists still answers with that run: it starts nothing.
    const known = request.idempotencyKey ? await executionUnderName(sfn, stateMachineArn, executionName, request) : undefined;
    return (
      known ?? {
        outcome: "run-in-progress",
        executionArn: running.executionArn ?? executionArnFor(stateMachineArn, running.name!),
        executionName: running.name!,
      }
    );
  }

  const owner = { name: executionName, arn: executionArnFor(stateMachineArn, executionName) };
  const lease = registry ? await leaseFor(registry, request, owner, run.update, recorded) : undefined;
  if (lease && "refused" in lease) return lease.refused;
  const rerun = run.update ? undefined : rerunOf(lease?.taken);

  try {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name: executionName,
        input: JSON.stringify({ request, ...(run.update ? { update: run.update } : {}), ...(rerun ? { rerun } : {}) }),
      }),
    );
    if (registry && request.idempotencyKey) {
      await registry.rememberKey({
        tenant,
        key: request.idempotencyKey,
        executionName,
        executionArn: owner.arn,
        request: asStored(request),
      });
    }
    // Standard workflows also answer here, with the same ARN, for a repeat while the first still runs.
    return { outcome: "started", executionArn: started.executionArn ?? owner.arn, executionName };
  } catch (error) {
    // Nothing started under this name: the record as it was and the lease go back (a repeat's ExecutionAlreadyExists
    // keeps both for its run).
    if (registry && !isAwsError(error, "ExecutionAlreadyExists")) {
      const taken = lease && "taken" in lease ? lease.taken : undefined;
      if (taken) await registry.putBackAfterFailedStart(environmentIdOf(request), owner.arn, taken.previous, taken.created);
      else await registry.releaseLease(environmentIdOf(request), owner.arn);
    }
    if (isInputTooLarge(error)) {
      const detail = (error as Error).message ? `: ${(error as Error).message}` : "";
      throw new InvalidRequest(
        [{ path: "", message: `the request is too large to start the workflow with (${awsErrorName(error)}${detail})` }],
        { cause: error },
      );
    }
    if (!isAwsError(error, "ExecutionAlreadyExists")) throw error;
  }

  const found = await executionUnderName(sfn, stateMachineArn, executionName, request);
  if (!found) throw new Error(`Step Functions said execution ${executionName} exists, then that it does not`);
  return found;
}
