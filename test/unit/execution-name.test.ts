import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  executionArnFor,
  executionNameFor,
  MAX_EXECUTION_NAME_LENGTH,
  sanitiseExecutionName,
  tenantOfExecutionName,
} from "../../functions/lib/domain/execution-name.js";

const VALID_NAME = /^[A-Za-z0-9_-]{1,80}$/;

describe("executionNameFor", () => {
  it("derives the name from tenant and idempotency key, the same every time", () => {
    // Act
    const first = executionNameFor({ tenant: "genomics", idempotencyKey: "onboard-42" });
    const again = executionNameFor({ tenant: "genomics", idempotencyKey: "onboard-42" });
    // Assess
    expect(first).toBe("genomics_onboard-42");
    expect(again).toBe(first);
  });

  it("keeps tenant and key apart: tenant a-b with key c is not tenant a with key b-c", () => {
    // Act
    const one = executionNameFor({ tenant: "a-b", idempotencyKey: "c" });
    const other = executionNameFor({ tenant: "a", idempotencyKey: "b-c" });
    // Assess
    expect(one).not.toBe(other);
  });

  it("shortens long names to 80 characters with a hash, so long keys stay distinct", () => {
    // Prepare
    const tenant = "t".repeat(40);
    // Act
    const a = executionNameFor({ tenant, idempotencyKey: `${"k".repeat(63)}a` });
    const b = executionNameFor({ tenant, idempotencyKey: `${"k".repeat(63)}b` });
    // Assess
    expect(a).toHaveLength(MAX_EXECUTION_NAME_LENGTH);
    expect(a).toMatch(VALID_NAME);
    expect(a).not.toBe(b);
    expect(executionNameFor({ tenant, idempotencyKey: `${"k".repeat(63)}a` })).toBe(a);
  });

  it("without a key: <tenant>-<timestamp>-<random>", () => {
    // Act
    const name = executionNameFor({ tenant: "genomics" }, { now: new Date("2025-01-31T12:34:56.789Z"), random: () => "0a1b2c3d" });
    // Assess
    expect(name).toBe("genomics-20250131T123456Z-0a1b2c3d");
    expect(executionNameFor({ tenant: "genomics" })).toMatch(/^genomics-\d{8}T\d{6}Z-[0-9a-f]{8}$/);
  });

  it("always yields a valid Step Functions name, whatever it is given", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 60 }),
        fc.option(fc.string({ minLength: 1, maxLength: 100 }), { nil: undefined }),
        (tenant, key) => {
          // Act
          const name = executionNameFor({ tenant, idempotencyKey: key });
          // Assess
          expect(name).toMatch(VALID_NAME);
        },
      ),
    );
  });

  it("rewritten names stay distinct from each other", () => {
    // Act
    const dotted = sanitiseExecutionName("a.b");
    const dashed = sanitiseExecutionName("a-b");
    // Assess
    expect(dashed).toBe("a-b");
    expect(dotted).not.toBe(dashed);
    expect(dotted).toMatch(VALID_NAME);
  });
});

describe("executionArnFor", () => {
  it("turns a state machine ARN and a name into the execution ARN", () => {
    // Act
    const arn = executionArnFor("arn:aws:states:eu-west-1:111122223333:stateMachine:provision", "genomics_k");
    // Assess
    expect(arn).toBe("arn:aws:states:eu-west-1:111122223333:execution:provision:genomics_k");
    expect(() => executionArnFor("arn:aws:lambda:eu-west-1:111122223333:function:x", "n")).toThrow(/not a state machine ARN/);
  });
});

describe("tenantOfExecutionName", () => {
  /** Tenants as request.ts accepts them: DNS-1123 labels of at most 40 characters */
  const tenant = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/);
  const key = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);

  it.each([
    ["genomics_onboard-42", "genomics"],
    ["a-b_c", "a-b"],
    ["a_b-c", "a"],
    ["genomics-lab_x", "genomics-lab"],
    ["genomics_event-6a7e8feb-b491-4cf7-a9f1-bf3703467718", "genomics"],
    ["genomics-20250131T123456Z-0a1b2c3d", "genomics"],
    ["genomics-lab-20250131T123456Z-0a1b2c3d", "genomics-lab"],
    ["a-20250131t123456z-20250131T123456Z-0a1b2c3d", "a-20250131t123456z"],
    ["x1_20250131T123456Z-0a1b2c3d", "x1"],
  ])("reads %s as tenant %s", (name, expected) => {
    expect(tenantOfExecutionName(name)).toBe(expected);
  });

  it.each([
    "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "Genomics_key",
    "_key",
    "genomics-20250131T123456Z-0A1B2C3D",
    "genomics-20250131T123456Z",
    "genomics",
    "-x-20250131T123456Z-0a1b2c3d",
    `${"t".repeat(41)}_key`,
  ])("reads no tenant from %s, a name executionNameFor cannot make", (name) => {
    expect(tenantOfExecutionName(name)).toBeUndefined();
  });

  it("gives back the tenant of every name executionNameFor makes, keyed (long keys shortened) or not (property)", () => {
    fc.assert(
      fc.property(
        tenant,
        fc.option(key, { nil: undefined }),
        fc.date({ min: new Date("2000-01-01"), max: new Date("2099-12-31"), noInvalidDate: true }),
        (t, k, now) => {
          // Act
          const name = executionNameFor({ tenant: t, idempotencyKey: k }, { now });
          // Assess
          expect(tenantOfExecutionName(name)).toBe(t);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("never takes one tenant's name for another's, even when one tenant is a prefix of the other", () => {
    // Prepare
    const now = new Date("2025-01-31T12:34:56Z");
    // Act
    const names = ["a", "a-b", "a-b-c"].flatMap((t) => [
      executionNameFor({ tenant: t }, { now, random: () => "0a1b2c3d" }),
      executionNameFor({ tenant: t, idempotencyKey: "b-c" }),
      executionNameFor({ tenant: t, idempotencyKey: "x".repeat(64) }),
    ]);
    // Assess
    expect(names.map(tenantOfExecutionName)).toEqual(["a", "a", "a", "a-b", "a-b", "a-b", "a-b-c", "a-b-c", "a-b-c"]);
  });
});
