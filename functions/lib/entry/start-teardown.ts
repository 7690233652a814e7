/**
 * Starting a teardown: the one place the DELETE route and the `ComputeEnvironmentRemovalRequested` event share.
 *
 *  - An environment the registry does not know: `not-found` (HTTP 404; the event goes to the dead-letter queue).
 *  - One already `removed` (and no run holding it): `already-removed`, nothing started. A repeated DELETE is harmless.
 *  - Otherwise the environment's lease is taken like any run's (a conditional write; a run holding it: `run-in-progress`),
 *    the record is marked `removing`, and statemachines/deprovision.asl.json starts with `{request, removal}`: the
 *    environment's spec as the request the steps read, and the scope (the environment, what its record says the
 *    product owns there). The workflow's last state records `removed` (or `failed`, with what remains) and releases
 *    the lease. A start that fails puts the record back as it was.
 */
import { StartExecutionCommand, type SFNClient } from "@aws-sdk/client-sfn";
import { sfnClient } from "../aws/clients.js";
import { DEPROVISION_STATE_MACHINE_ARN_ENV } from "../domain/deploy-config.js";
import { executionArnFor, executionNameFor } from "../domain/execution-name.js";
import { normaliseError } from "../workflow/normalise-error.js";
import { EnvironmentRecords, type EnvironmentId, type EnvironmentRecord } from "../workflow/environment-registry.js";
import type { RemovalScope } from "../workflow/workflow-state.js";

/** How long a teardown may run: deprovision.asl.json's `TimeoutSeconds`, and the expiry of the lease it holds. */
export const TEARDOWN_TIMEOUT_SECONDS = 3600;

export type TeardownOutcome =
  | { outcome: "not-found" }
  | { outcome: "already-removed"; environment: EnvironmentRecord }
  | { outcome: "run-in-progress"; executionArn: string; executionName: string }
  | { outcome: "started"; executionArn: string; executionName: string };

export interface TeardownDeps {
  sfn?: SFNClient;
  /** The deprovision state machine (default: DEPROVISION_STATE_MACHINE_ARN) */
  deprovisionStateMachineArn?: string;
  registry?: EnvironmentRecords;
  now?: Date;
}

/** The execution input: the spec as the request (what the steps validate and name things after) and the scope. */
export function teardownInput(record: EnvironmentRecord): { request: Record<string, unknown>; removal: RemovalScope } {
  const { remaining: _remaining, ...owned } = record.owned;
  return {
    request: { ...record.spec, tenant: record.tenant, cluster: { name: record.cluster, region: record.region } },
    removal: { environment: { tenant: record.tenant, region: record.region, cluster: record.cluster }, owned },
  };
}

function nameOfArn(executionArn: string): string {
  return executionArn.slice(executionArn.lastIndexOf(":") + 1);
}

export function deprovisionStateMachineArnFrom(deps: { deprovisionStateMachineArn?: string }): string {
  const arn = deps.deprovisionStateMachineArn ?? process.env[DEPROVISION_STATE_MACHINE_ARN_ENV];
  if (!arn) throw new Error(`${DEPROVISION_STATE_MACHINE_ARN_ENV} is not set`);
  return arn;
}

/** Start the environment's teardown (see the module comment); what Step Functions throws comes out named. */
export async function startTeardown(id: EnvironmentId, deps: TeardownDeps = {}): Promise<TeardownOutcome> {
  const registry = deps.registry ?? new EnvironmentRecords();
  const record = await registry.getEnvironment(id);
  if (!record) return { outcome: "not-found" };
  const held = record.lease && record.lease.expiresAt > Math.floor(Date.now() / 1000);
  if (record.status === "removed" && !held) return { outcome: "already-removed", environment: record };

  const stateMachineArn = deprovisionStateMachineArnFrom(deps);
  const executionName = executionNameFor({ tenant: id.tenant }, { now: deps.now });
  const owner = { name: executionName, arn: executionArnFor(stateMachineArn, executionName) };
  const lease = await registry.takeRemovalLease(id, { owner, expiresAt: Math.floor(Date.now() / 1000) + TEARDOWN_TIMEOUT_SECONDS });
  if (!lease.taken) return { outcome: "run-in-progress", executionArn: lease.holder, executionName: nameOfArn(lease.holder) };

  const sfn = deps.sfn ?? sfnClient();
  try {
    const started = await sfn.send(
      new StartExecutionCommand({ stateMachineArn, name: executionName, input: JSON.stringify(teardownInput(record)) }),
    );
    return { outcome: "started", executionArn: started.executionArn ?? owner.arn, executionName };
  } catch (error) {
    // Nothing started: the record as it was, the lease given back (one write, by its owner).
    await registry.recordOutcome(id, owner.arn, { status: record.status, owned: record.owned });
    throw normaliseError(error);
  }
}
