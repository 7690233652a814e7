/**
 * The teardown's last step (statemachines/deprovision.asl.json). Its removals are the provisioning workflow's
 * compensators (`Undo*`, run as RemoveHeadJobs, RemoveStorage, RemoveNamespaceAndRbac, RemoveClusterAccess,
 * RemoveIamResources) under the tenant's claim (`$.removal`, workflow/compensation.ts claimOf): everything marked as
 * the product's for the tenant goes, whichever run made it; nothing without those marks is touched. Its own steps are
 * WaitForNamespaceRemoval (namespace-removal.ts) and this one:
 *  - RecordRemoval (`record`): `removed` when nothing remains (what was kept on purpose, such as a namespace
 *    holding someone else's objects, is listed under `owned.kept`), else `failed` with `owned.remaining`: exactly
 *    what could not be removed and why (each removal notes a permanent failure and goes on, compensation.ts undoOne).
 *    One conditional write, which also releases the lease. Returns `{status, ...}`; a failed teardown's
 *    `{error, cause}` is the execution's. Once the record says `removed`, ComputeEnvironmentRemoved goes on the
 *    product's bus (events/compute-environment-removed.schema.json).
 */
import { compensationOutcome } from "../lib/workflow/compensation.js";
import { recordRunOutcome, type OutcomeDeps } from "../lib/workflow/environment-outcome.js";
import { emitComputeEnvironmentRemoved, type EventDeps } from "../lib/workflow/event-bus.js";
import { readableCause } from "../lib/workflow/execution-summary.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import type { RemovedDetail } from "../lib/domain/product-events.js";
import type { KubeRef, RemovalOutcome, WorkflowState } from "../lib/workflow/workflow-state.js";

export const TEARDOWN_INCOMPLETE = "TeardownIncomplete";

export interface RecordRemovalDeps extends OutcomeDeps, EventDeps {}

function describeOwned(owned: Record<string, unknown>): string[] {
  const roles = (owned.roles as string[] | undefined) ?? [];
  const associations = (owned.podIdentityAssociations as string[] | undefined) ?? [];
  const access = owned.clusterAccess as { method: string; principalArn: string } | undefined;
  const objects = (owned.kubernetes as KubeRef[] | undefined) ?? [];
  return [
    ...objects.map((ref) => `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`),
    ...(access ? [`${access.method === "aws-auth" ? "aws-auth mapping" : "EKS access entry"} for ${access.principalArn}`] : []),
    ...associations.map((id) => `Pod Identity association ${id}`),
    ...roles.map((arn) => `IAM role ${arn.slice(arn.lastIndexOf("/") + 1)}`),
  ];
}

/**
 * The Kubernetes object a line is about: `<Kind> [<namespace>/]<name>: ...`, or `<what> on <Kind> <namespace>/<name>: ...`
 * (an annotation on it). Undefined for lines about anything else (IAM, EKS, aws-auth, a step).
 */
function objectOfLine(line: string): { ref: string; namespace?: string } | undefined {
  const found = /^(?:\S+ on )?([A-Z][A-Za-z]+ (?:([a-z0-9.-]+)\/)?[a-z0-9.-]+):/.exec(line);
  return found ? { ref: found[1]!, ...(found[2] ? { namespace: found[2] } : {}) } : undefined;
}

/**
 * What a removal could not undo and a later one took with it: anything in a namespace that is gone, anything on an
 * object a later removal deleted (the IRSA annotation RemoveStorage could not put back, on a ServiceAccount that
 * RemoveNamespaceAndRbac then deleted).
 */
function wentWithItsContainer(line: string, deleted: ReadonlySet<string>, goneNamespace: string | undefined): boolean {
  const about = objectOfLine(line);
  if (!about) return false;
  return (goneNamespace !== undefined && about.namespace === goneNamespace) || deleted.has(about.ref);
}

export function removalOutcome(state: WorkflowState): RemovalOutcome {
  const outcome = compensationOutcome(state);
  const { undone, kept } = outcome;
  const gone = state.namespaceRemoval?.gone ? state.namespaceRemoval.namespace : undefined;
  const deleted = new Set(undone);
  const couldNotUndo = outcome.couldNotUndo.filter((line) => !wentWithItsContainer(line, deleted, gone));
  // ResolveCluster failed: nothing was removed, everything the record names remains.
  const unresolved = state.error
    ? describeOwned(state.removal?.owned ?? {}).map(
        (what) => `${what}: ResolveCluster failed (${state.error!.Error}: ${readableCause(state.error!.Cause) ?? "no cause given"})`,
      )
    : [];
  const remaining = [...unresolved, ...couldNotUndo];
  if (state.error && unresolved.length === 0)
    remaining.push(`ResolveCluster (${state.error.Error}: ${readableCause(state.error.Cause) ?? "no cause given"})`);
  if (remaining.length === 0) return { status: "removed", undone, kept, remaining };
  const cause = [
    `Could not remove: ${remaining.join("; ")}.`,
    undone.length ? `Removed: ${undone.join(", ")}.` : "Removed: nothing.",
    ...(kept.length ? [`Left in place: ${kept.join(", ")}.`] : []),
    "A repeated DELETE tries again.",
  ].join(" ");
  return { status: "failed", undone, kept, remaining, error: TEARDOWN_INCOMPLETE, cause };
}

/** ComputeEnvironmentRemoved's detail: the environment, what went and what was left on purpose. */
export function removedDetail(state: WorkflowState, outcome: RemovalOutcome): RemovedDetail {
  const environment = state.removal?.environment;
  const namespace = state.namespaceRemoval?.namespace ?? state.request?.namespace;
  return {
    tenant: environment?.tenant ?? state.request.tenant,
    cluster: {
      name: state.cluster?.name ?? environment?.cluster ?? state.request.cluster.name,
      region: state.cluster?.region ?? environment?.region ?? state.request.cluster.region,
      ...(state.cluster?.arn ? { arn: state.cluster.arn } : {}),
    },
    ...(namespace ? { namespace } : {}),
    removed: outcome.undone,
    kept: outcome.kept,
    execution: state.execution,
  };
}

export async function recordRemoval(state: WorkflowState, deps: RecordRemovalDeps = {}): Promise<RemovalOutcome> {
  const outcome = removalOutcome(state);
  const keptPart = outcome.kept.length ? { kept: outcome.kept } : {};
  // Failed: what the record named stays (a repeated teardown needs its access entry), with what remains.
  const owned = outcome.status === "removed" ? keptPart : { ...(state.removal?.owned ?? {}), remaining: outcome.remaining, ...keptPart };
  await recordRunOutcome(state, outcome.status, owned, deps);
  logger.info("teardown recorded", { status: outcome.status, remaining: outcome.remaining.length });
  // After the record: a retry of this Task writes the same outcome again, and the event only says what the record says.
  if (outcome.status === "removed") await emitComputeEnvironmentRemoved(removedDetail(state, outcome), deps);
  return outcome;
}

/** The step's handler, with the registry given (tests) or taken from REGISTRY_TABLE_NAME. */
export function createRecordRemovalStep(deps: RecordRemovalDeps = {}) {
  return { record: stepHandler<WorkflowState, RemovalOutcome>("RecordRemoval", (state) => recordRemoval(state, deps)) };
}

export const { record } = createRecordRemovalStep();
