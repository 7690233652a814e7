/**
 * Where an undo of Pod Identity associations looks (steps/iam/pod-identity.ts): a compensation where its run made them,
 * a teardown in the whole cluster, so the associations an earlier generation made elsewhere (a namespace an update
 * changed) go with the environment, and no one else's association is touched or noted.
 */
import { describe, expect, it } from "vitest";
import { associationSearches, isUndoTarget } from "../../functions/steps/iam/pod-identity.js";
import { ownershipTags, runMark, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { parseRequest } from "../../functions/lib/domain/request.js";

const request = parseRequest({
  tenant: "genomics",
  cluster: { name: "research", region: "eu-west-1" },
  launcher: { mode: "create", trustAccount: true },
  namespace: "genomics-two",
  computeServiceAccount: "tower-compute-sa",
  storage: { type: "fusion", bucket: "genomics-work", podIdentity: true },
});
const RUN = runMark({ name: "genomics-run-2", startTime: "2026-12-05T10:00:00Z" });
const EARLIER = runMark({ name: "genomics-run-1", startTime: "2026-12-04T10:00:00Z" });
const TEARDOWN = { tenant: "genomics" };
const marked = (tenant: string, run = EARLIER) => tagsToRecord(ownershipTags(tenant, run));

describe("associationSearches", () => {
  it("searches the spec's namespace for each of its service accounts in a compensation, and the whole cluster in a teardown", () => {
    // Prepare // Act
    const compensation = associationSearches(request, RUN);
    const teardown = associationSearches(request, TEARDOWN);

    // Assess
    expect(compensation).toEqual([
      { namespace: "genomics-two", serviceAccount: "tower-launcher-sa" },
      { namespace: "genomics-two", serviceAccount: "tower-compute-sa" },
    ]);
    expect(teardown).toEqual([{}]);
  });
});

describe("isUndoTarget", () => {
  it("in a teardown takes the tenant's association in a namespace an earlier generation used, and ignores another tenant's there", () => {
    // Prepare
    const ours = { namespace: "genomics-one", serviceAccount: "tower-launcher-sa", tags: marked("genomics") };
    const theirs = { namespace: "genomics-one", serviceAccount: "tower-launcher-sa", tags: marked("proteomics") };
    const unmarked = { namespace: "genomics-one", serviceAccount: "tower-launcher-sa", tags: {} };

    // Act // Assess
    expect(isUndoTarget(ours, request, TEARDOWN)).toBe(true);
    expect(isUndoTarget(theirs, request, TEARDOWN)).toBe(false);
    expect(isUndoTarget(unmarked, request, TEARDOWN)).toBe(false);
  });

  it("always deals with what sits where the spec puts an association (so another's there is noted as kept), ours or not", () => {
    // Prepare
    const unmarkedInPlace = { namespace: "genomics-two", serviceAccount: "tower-compute-sa", tags: {} };
    const otherRunInPlace = { namespace: "genomics-two", serviceAccount: "tower-launcher-sa", tags: marked("genomics", EARLIER) };

    // Act // Assess
    expect(isUndoTarget(unmarkedInPlace, request, TEARDOWN)).toBe(true);
    expect(isUndoTarget(unmarkedInPlace, request, RUN)).toBe(true);
    expect(isUndoTarget(otherRunInPlace, request, RUN)).toBe(true);
  });

  it("in a compensation leaves an association of another namespace alone, even the tenant's", () => {
    // Prepare
    const elsewhere = { namespace: "genomics-one", serviceAccount: "tower-launcher-sa", tags: marked("genomics", EARLIER) };

    // Act // Assess
    expect(isUndoTarget(elsewhere, request, RUN)).toBe(false);
  });
});
