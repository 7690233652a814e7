/**
 * How a failed run is undone: the one contract every compensator keeps.
 *
 * When a step fails for good, the state machine (statemachines/provision.asl.json, the `Undo*` states) runs
 * the compensators of every step that may have acted, in reverse order, each with the whole workflow state
 * (including `$.error`). Each compensator:
 *   1. undoes exactly what THIS run did, and nothing else: objects it did not create or change are never touched;
 *   2. works when its step failed half-way and returned nothing (it finds its work by marks, see below);
 *   3. can run twice: a second run finds nothing left to undo and says so;
 *   4. never throws for "already gone"; a transient error is thrown (the state machine retries it), and what it
 *      could not put back is reported, not hidden;
 *   5. returns a {@link CompensationResult}, stored at `$.compensation.<step>` and summarised by ReportFailure.
 *
 * The mechanisms, and the steps that use each:
 *   - Created-by mark: everything a run creates carries the ownership labels/tags and a created-by mark derived from
 *     the execution (domain/naming.ts `executionMark`); the compensator deletes what carries this run's mark.
 *     Used by UndoNamespaceAndRbac, UndoStorage, UndoHeadJob (Kubernetes labels, workflow/kube-step.ts) and
 *     UndoIamResources (IAM/EKS tags).
 *   - Previous value in the step output: a step that changes something it did not create returns the value before
 *     its change; the compensator puts it back. Used by UndoIamResources (`$.iam.changed`,
 *     `$.iam.changedAssociations`) and UndoClusterAccess (`$.access.previousAwsAuth`, the aws-auth data before the edit).
 *   - Previous value in an annotation on the object: when the step output may never be written (the step failed
 *     after the change), the previous value rides on the changed object itself. Used by UndoStorage (IRSA role-arn and
 *     nextflow.config ConfigMap changes on adopted objects).
 *   - Put back before rethrowing: a step that changed an adopted IAM role and then fails restores the previous
 *     documents itself before it throws, because IAM has nowhere to keep a copy and its output is then lost.
 *     Used by CreateIamResources.
 */

/** What a compensator returns (stored at `$.compensation.<step>`). */
export interface CompensationResult {
  /** What was deleted or put back, one line each (e.g. "Namespace tower-nf: deleted"). */
  undone: string[];
  /** Things deliberately left alone, with the reason (e.g. "Namespace tower-nf: not created by this run"). */
  kept: string[];
  /** What the compensator tried to undo and could not, with the reason; absent when nothing failed. */
  failed?: string[];
}

/** An empty result to fill in. */
export function compensationResult(): CompensationResult {
  return { undone: [], kept: [] };
}
