import { describe, expect, it } from "vitest";
import type { EnvironmentRecord } from "../../functions/lib/workflow/environment-registry.js";
import { createVerdict, ownsNothing } from "../../functions/lib/workflow/existing-environment.js";

const SPEC = { tenant: "mv", cluster: { name: "research", region: "eu-west-1" }, namespace: "mv-one", storage: { type: "pvc" } };
const OTHER_SPEC = { ...SPEC, namespace: "mv-two" };
const OWNED = { roles: ["arn:aws:iam::111122223333:role/nf-eks-provisioner/nfeks-mv.research-launcher"], kubernetes: [] };

function record(overrides: Partial<EnvironmentRecord> = {}): EnvironmentRecord {
  return {
    tenant: "mv",
    region: "eu-west-1",
    cluster: "research",
    spec: SPEC,
    generation: 1,
    status: "ready",
    owned: OWNED,
    createdAt: "2025-01-31T12:00:00.000Z",
    updatedAt: "2025-01-31T12:00:00.000Z",
    ...overrides,
  };
}

describe("a create against the environment already recorded", () => {
  it("may run the recorded spec again, whatever the status (a re-run)", () => {
    // Prepare
    const records = [record(), record({ status: "failed" }), record({ status: "removed", owned: {} })];
    // Act
    const verdicts = records.map((r) => createVerdict(r, structuredClone(SPEC)));
    // Assess
    expect(verdicts).toEqual(["same-spec", "same-spec", "same-spec"]);
  });

  it("compares specs by value, not by key order", () => {
    // Prepare
    const reordered = { storage: { type: "pvc" }, namespace: "mv-one", cluster: { region: "eu-west-1", name: "research" }, tenant: "mv" };
    // Act // Assess
    expect(createVerdict(record(), reordered)).toBe("same-spec");
  });

  it("refuses another spec on a live environment, and on one that is provisioning, updating or removing", () => {
    // Prepare
    const statuses = ["ready", "provisioning", "updating", "removing"] as const;
    // Act
    const verdicts = statuses.map((status) => createVerdict(record({ status }), OTHER_SPEC));
    // Assess
    expect(verdicts).toEqual(["conflict", "conflict", "conflict", "conflict"]);
  });

  it("lets another spec start anew where nothing is owned: removed, or a failed create that was compensated", () => {
    // Prepare // Act
    const removed = createVerdict(record({ status: "removed", owned: { kept: [] } }), OTHER_SPEC);
    const failedCreate = createVerdict(record({ status: "failed", owned: {} }), OTHER_SPEC);
    // Assess
    expect([removed, failedCreate]).toEqual(["free", "free"]);
  });

  it("refuses another spec on a failed environment that still owns something: what it could not undo, or a failed update's generation", () => {
    // Prepare
    const leftovers = record({ status: "failed", owned: { couldNotUndo: ["Namespace mv-one: 503"] } });
    const failedUpdate = record({ status: "failed", owned: OWNED });
    // Act // Assess
    expect(createVerdict(leftovers, OTHER_SPEC)).toBe("conflict");
    expect(createVerdict(failedUpdate, OTHER_SPEC)).toBe("conflict");
  });
});

describe("an owned list that owns nothing", () => {
  it("has no key, or only empty lists", () => {
    // Prepare // Act // Assess
    expect(ownsNothing({})).toBe(true);
    expect(ownsNothing({ roles: [], podIdentityAssociations: [], kubernetes: [] })).toBe(true);
    expect(ownsNothing({ roles: [], clusterAccess: { method: "access-entry", principalArn: "arn:aws:iam::1:role/x" } })).toBe(false);
    expect(ownsNothing(OWNED)).toBe(false);
  });
});
