/**
 * Starting a provisioning run: the one place the HTTP API and the EventBridge entry share.
 *  1. `checkRequest`: the workflow's own schema (every problem, by path) and the deploy-time cluster
 *     allowlist, so a request that can only fail is refused at the door.
 *  2. `startProvisioning`: StartExecution under a name derived from tenant + idempotency key. A repeat of
 *     the same request finds the execution already there and returns it; the same key with a different
 *     request is reported as `key-reused`, never started.
 */
import { isDeepStrictEqual } from "node:util";
import { DescribeExecutionCommand, StartExecutionCommand, type SFNClient } from "@aws-sdk/client-sfn";
import { sfnClient } from "./clients.js";
import { loadDeploymentConfig, type DeploymentConfig } from "./config.js";
import { NotAllowed, type Problem } from "./errors.js";
import { executionArnFor, executionNameFor } from "./execution-name.js";
import { isAwsError, normaliseError } from "./normalise-error.js";
import { safeParseRequest, type ProvisionRequest } from "./request.js";
import { assertClusterAllowed } from "./allowlist.js";

export const STATE_MACHINE_ARN_ENV = "STATE_MACHINE_ARN";

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
  const withKey = options.idempotencyKey !== undefined && isPlainObject(input) ? { ...input, idempotencyKey: options.idempotencyKey } : input;
  const parsed = safeParseRequest(withKey);
  if (!parsed.ok) return { ok: false, error: "InvalidRequest", problems: parsed.problems };
  try {
    assertClusterAllowed(parsed.request, options.config ?? loadDeploymentConfig());
  } catch (error) {
    if (error instanceof NotAllowed) return { ok: false, error: "NotAllowed", problems: [{ path: "cluster", message: error.message }] };
    throw error;
  }
  return { ok: true, request: parsed.request };
}

export type StartOutcome =
  | { outcome: "started"; executionArn: string; executionName: string }
  /** The same request under the same key: the execution that already exists (running or finished). */
  | { outcome: "existing"; executionArn: string; executionName: string; status?: string }
  /** The key was used before for a different request. */
  | { outcome: "key-reused"; executionName: string };

/** A run that exists (new or found): what callers report back. */
export type StartedExecution = Exclude<StartOutcome, { outcome: "key-reused" }>;

export interface StartDeps {
  sfn?: SFNClient;
  stateMachineArn?: string;
  /** For names without an idempotency key */
  now?: Date;
}

function stateMachineArnFrom(deps: StartDeps): string {
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

/** Start the workflow with `{request}` as input (the state machine's Start state adds the execution). */
export async function startProvisioning(request: ProvisionRequest, deps: StartDeps = {}): Promise<StartOutcome> {
  const sfn = deps.sfn ?? sfnClient();
  const stateMachineArn = stateMachineArnFrom(deps);
  const executionName = executionNameFor({ tenant: String(request.tenant), idempotencyKey: request.idempotencyKey }, { now: deps.now });
  try {
    const started = await sfn.send(
      new StartExecutionCommand({ stateMachineArn, name: executionName, input: JSON.stringify({ request }) }),
    );
    // Standard workflows also answer here, with the same ARN, for a repeat while the first still runs.
    return { outcome: "started", executionArn: started.executionArn ?? executionArnFor(stateMachineArn, executionName), executionName };
  } catch (error) {
    if (!isAwsError(error, "ExecutionAlreadyExists")) throw normaliseError(error);
  }

  const executionArn = executionArnFor(stateMachineArn, executionName);
  let existing;
  try {
    existing = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  } catch (error) {
    throw normaliseError(error);
  }
  if (isDeepStrictEqual(requestOfInput(existing.input), asStored(request))) {
    return { outcome: "existing", executionArn: existing.executionArn ?? executionArn, executionName, status: existing.status };
  }
  return { outcome: "key-reused", executionName };
}
