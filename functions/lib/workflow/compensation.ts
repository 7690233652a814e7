/**
 * How a failed run is undone: the one contract every compensator keeps.
 *
 * When a step fails for good, the state machine (statemachines/provision.asl.json, the `Undo*` states) runs
 * the compensators of every step that may have acted, in reverse order, each with the whole workflow state
 * (including `$.error`). Each compensator:
 *   1. undoes exactly what THIS run did, and nothing else: objects it did not create or change are never touched;
 *   2. works when its step failed half-way and returned nothing (it finds its work by marks, see below);
 *   3. can run twice: a second run finds nothing left to undo and says so;
 *   4. never throws for "already gone". Any other error is thrown: the state machine retries the transient ones,
 *      and the Undo state's Catch stores the last one at `$.compensation.<step>`, which ReportFailure lists under
 *      "Could not undo" before the next compensator runs. What it leaves alone on purpose (not this run's, or
 *      changed by someone since) is a `kept` line with the reason; nothing is dropped silently. A previous value is
 *      put back only while the current one is still what this run wrote; changed since, it is left as it is and
 *      reported under `failed` (this run's change could not be undone);
 *   5. returns a {@link CompensationResult}, stored at `$.compensation.<step>` and summarised by ReportFailure.
 *
 * The mechanisms, and the steps that use each:
 *   - Created-by mark: everything a run creates carries the ownership labels/tags and a created-by mark derived from
 *     the execution's name and start time (domain/naming.ts `runMark`: unique to one execution forever, even when a
 *     reused idempotency key brings its name back); the compensator deletes what carries this run's mark
 *     ({@link undoEach} notes each outcome). Used by UndoNamespaceAndRbac, UndoStorage, UndoHeadJob (Kubernetes
 *     labels, workflow/kube-step.ts `deleteEachCreatedBy`), UndoIamResources (IAM and Pod Identity tags) and
 *     UndoClusterAccess (the access entry's tags; in aws-auth, the `nf-eks-provisioner/mappings` annotation that
 *     records which run added which mapping, so exactly that mapping is removed).
 *   - Previous value in the step output: a step that changes something it did not create returns the value before
 *     its change; the compensator puts it back. Used by UndoIamResources (`$.iam.changed`: adopted roles' documents;
 *     `$.iam.changedAssociations`: adopted Pod Identity associations' roles) and UndoClusterAccess
 *     (`$.access.previousIdentity`: an adopted access entry's username and groups). (GrantClusterAccess also returns the
 *     aws-auth data before its edit, `$.access.previousAwsAuth`, but only as a copy for the operator: its
 *     compensator removes the marked mapping and needs no copy.)
 *   - Previous value in an annotation on the object: when the step output may never be written (the step failed
 *     after the change), the previous value rides on the changed object itself. Used by UndoStorage (IRSA role-arn and
 *     nextflow.config ConfigMap changes on adopted objects) and UndoClusterAccess (an adopted aws-auth mapping's
 *     source before and after, in the `nf-eks-provisioner/mapping-edits` annotation).
 *   - Put back before rethrowing: a step that changed an adopted IAM role and then fails restores the previous
 *     documents itself before it throws, because IAM has nowhere to keep a copy and its output is then lost.
 *     Used by CreateIamResources.
 */

import { TRANSIENT_ERROR_NAMES } from "../domain/errors.js";
import { type Claim, isTenantClaim, runMark } from "../domain/naming.js";
import { normaliseError } from "./normalise-error.js";
import type { CaughtError, CompensationResult, WorkflowState } from "./workflow-state.js";
import { readableCause } from "./execution-summary.js";

/**
 * Whose work a compensator removes, from the workflow state: this run's (its mark), or the whole tenant's when the
 * state is a teardown's (`$.removal`, set by the deprovision workflow's entry: entry/start-teardown.ts).
 */
export function claimOf(state: Pick<WorkflowState, "execution" | "removal">, tenant: string): Claim {
  return state.removal ? { tenant } : runMark(state.execution);
}

/** An empty result to fill in. */
export function compensationResult(): CompensationResult {
  return { undone: [], kept: [] };
}

/** The reason noted for what a compensator leaves alone because another run, or someone else, made it. */
export const NOT_CREATED_BY_THIS_RUN = "not created by this run";

/** How undoing one thing ended: deleted, left alone (not this run's), or already gone (an earlier attempt, or never made). */
export type UndoOutcome = "deleted" | "kept" | "absent";

/** The reason a teardown notes for what it leaves alone: it does not carry the tenant's ownership marks. */
export function notTheTenants(tenant: string): string {
  return `not marked as the product's for tenant ${tenant}`;
}

/** Why something was left alone under this claim (undefined: a compensation's claim). */
export function notClaimed(claim?: Claim): string {
  return claim && isTenantClaim(claim) ? notTheTenants(claim.tenant) : NOT_CREATED_BY_THIS_RUN;
}

/** Note one outcome: deleted → undone; kept → kept, with the reason; already gone → nothing to say. */
export function recordUndo(result: CompensationResult, what: string, outcome: UndoOutcome, claim?: Claim): void {
  if (outcome === "deleted") result.undone.push(what);
  else if (outcome === "kept") result.kept.push(`${what}: ${notClaimed(claim)}`);
}

/**
 * Undo each target, one at a time in the order given (what depends on another goes first), and note each
 * outcome. `undo` decides by the target's marks, and throws only what the state machine should see.
 * Under a teardown's claim each target goes through {@link undoOne}: a permanent failure is noted and the rest go on.
 */
export async function undoEach<T>(
  result: CompensationResult,
  targets: readonly T[],
  describe: (target: T) => string,
  undo: (target: T) => Promise<UndoOutcome>,
  claim?: Claim,
): Promise<void> {
  for (const target of targets) {
    const what = describe(target);
    await undoOne(result, what, claim, async () => recordUndo(result, what, await undo(target), claim));
  }
}

/**
 * Undo one thing. A compensation (one run's claim) throws what it cannot get past (point 4 above). A teardown (a
 * tenant's claim: statemachines/deprovision.asl.json, started by entry/start-teardown.ts) notes a permanent failure
 * under `failed` as `<what>: <Error>: <message>` and goes on with the rest, so its result says exactly what remains;
 * a transient error is thrown either way (the state machine retries the step, which finds what is already gone and
 * goes on from there).
 */
export async function undoOne(
  result: CompensationResult,
  what: string,
  claim: Claim | undefined,
  undo: () => Promise<void>,
): Promise<void> {
  if (!claim || !isTenantClaim(claim)) return undo();
  try {
    await undo();
  } catch (error) {
    const named = normaliseError(error);
    if ((TRANSIENT_ERROR_NAMES as readonly string[]).includes(named.name)) throw named;
    result.failed = [...(result.failed ?? []), `${what}: ${named.name}: ${named.message}`];
  }
}

function isCaughtError(value: CompensationResult | CaughtError): value is CaughtError {
  return typeof (value as CaughtError).Error === "string";
}

/**
 * Every compensator's result (`$.compensation`) as one: what was undone, what was left alone and why, and what could
 * not be undone (a compensator's `failed` lines, and `<step> (<Error>: <cause>)` for one whose Task failed for good).
 */
export function compensationOutcome(state: Pick<WorkflowState, "compensation">): {
  undone: string[];
  kept: string[];
  couldNotUndo: string[];
} {
  const undone: string[] = [];
  const kept: string[] = [];
  const couldNotUndo: string[] = [];
  for (const [step, result] of Object.entries(state.compensation ?? {})) {
    if (!result) continue;
    if (isCaughtError(result)) couldNotUndo.push(`${step} (${result.Error}: ${readableCause(result.Cause) ?? "no cause given"})`);
    else {
      undone.push(...(result.undone ?? []));
      kept.push(...(result.kept ?? []));
      couldNotUndo.push(...(result.failed ?? []));
    }
  }
  return { undone, kept, couldNotUndo };
}
