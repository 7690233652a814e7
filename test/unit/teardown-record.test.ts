/**
 * RecordRemoval's outcome (functions/steps/teardown-record.ts removalOutcome): what a removal could not undo stays in
 * `remaining` unless a later removal took it with its container (a namespace that is gone, an object deleted since).
 */
import { describe, expect, it } from "vitest";
import { removalOutcome } from "../../functions/steps/teardown-record.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";

const DENIED = "NotAllowed: forbidden";

function teardownState(parts: Partial<WorkflowState>): WorkflowState {
  return { request: { tenant: "genomics", cluster: { name: "research", region: "eu-west-1" } }, ...parts } as WorkflowState;
}

describe("the teardown's outcome", () => {
  it("drops an annotation RemoveStorage could not put back when RemoveNamespaceAndRbac then deleted its ServiceAccount", () => {
    // Prepare
    const state = teardownState({
      compensation: {
        RemoveStorage: {
          undone: [],
          kept: [],
          failed: [
            `eks.amazonaws.com/role-arn on ServiceAccount genomics/tower-launcher-sa: ${DENIED}`,
            `eks.amazonaws.com/role-arn on ServiceAccount genomics/tower-compute-sa: ${DENIED}`,
          ],
        },
        RemoveNamespaceAndRbac: { undone: ["ServiceAccount genomics/tower-launcher-sa"], kept: [] },
      },
    });

    // Act
    const outcome = removalOutcome(state);

    // Assess: the compute SA was not deleted, so its annotation is still there
    expect(outcome).toMatchObject({
      status: "failed",
      remaining: [`eks.amazonaws.com/role-arn on ServiceAccount genomics/tower-compute-sa: ${DENIED}`],
    });
  });

  it("keeps lines about what is not a Kubernetes object in the namespace that went (IAM, EKS, aws-auth, a step)", () => {
    // Prepare
    const elsewhere = [
      `IAM role nfeks-genomics.research-launcher: ${DENIED}`,
      `Pod Identity association a-1 (genomics/tower-launcher-sa): ${DENIED}`,
      `EKS access entry arn:aws:iam::111122223333:role/x on research: ${DENIED}`,
      `aws-auth mapping for arn:aws:iam::111122223333:role/x: ${DENIED}`,
    ];
    const state = teardownState({
      namespaceRemoval: { namespace: "genomics", gone: true },
      compensation: {
        RemoveHeadJobs: { undone: [], kept: [], failed: [`Job genomics/nf-head-genomics-1: ${DENIED}`] },
        RemoveIamResources: { undone: [], kept: [], failed: elsewhere },
        RemoveNamespaceAndRbac: { undone: ["Namespace genomics"], kept: [] },
      },
    });

    // Act
    const outcome = removalOutcome(state);

    // Assess: the Job went with its namespace; the rest remains
    expect(outcome.remaining).toEqual(elsewhere);
  });
});
