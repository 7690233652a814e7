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

/** What a compensator returns (stored at `$.compensation.<step>`). */
export interface CompensationResult {
  /** What was deleted or put back, one line each (e.g. "Namespace tower-nf", "ConfigMap tower-nf/nextflow-config (restored the previous content)"). */
  undone: string[];
  /** Things deliberately left alone, with the reason (e.g. "Namespace tower-nf: not created by this run"). */
  kept: string[];
  /** What the compensator tried to undo and could not, with the reason; absent when nothing failed. ReportFailure lists it under "Could not undo". */
  failed?: string[];
}

/** An empty result to fill in. */
export function compensationResult(): CompensationResult {
  return { undone: [], kept: [] };
}

/** The reason noted for what a compensator leaves alone because another run, or someone else, made it. */
export const NOT_CREATED_BY_THIS_RUN = "not created by this run";

/** How undoing one thing ended: deleted, left alone (not this run's), or already gone (an earlier attempt, or never made). */
export type UndoOutcome = "deleted" | "kept" | "absent";

/** Note one outcome: deleted → undone; kept → kept, with the reason; already gone → nothing to say. */
export function recordUndo(result: CompensationResult, what: string, outcome: UndoOutcome): void {
  if (outcome === "deleted") result.undone.push(what);
  else if (outcome === "kept") result.kept.push(`${what}: ${NOT_CREATED_BY_THIS_RUN}`);
}

/**
 * Undo each target, one at a time in the order given (what depends on another goes first), and note each
 * outcome. `undo` decides by the target's marks, and throws only what the state machine should see.
 */
export async function undoEach<T>(
  result: CompensationResult,
  targets: readonly T[],
  describe: (target: T) => string,
  undo: (target: T) => Promise<UndoOutcome>,
): Promise<void> {
  for (const target of targets) recordUndo(result, describe(target), await undo(target));
}
