/**
 * Policy documents compared by meaning (functions/steps/iam/policy-comparison.ts): what decides whether the
 * IAM step writes to an adopted role, and whether its compensator writes the recorded document back.
 */
import { describe, expect, it } from "vitest";
import { policyText, sameAsRecorded, samePolicy } from "../../functions/steps/iam/policy-comparison.js";

const DESIRED = {
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Action: ["eks:DescribeCluster"], Resource: ["arn:aws:eks:eu-west-1:111122223333:cluster/research"] }],
};

/** As IAM returns a document: URL-encoded JSON. */
const asIamReturnsIt = (document: unknown) => encodeURIComponent(JSON.stringify(document));

describe("policy comparison", () => {
  it("treats key order and one-element arrays vs scalars as the same document", () => {
    // Prepare: the same policy as another tool might have written it
    const rewritten = {
      Statement: [{ Resource: "arn:aws:eks:eu-west-1:111122223333:cluster/research", Action: "eks:DescribeCluster", Effect: "Allow" }],
      Version: "2012-10-17",
    };
    // Act
    const same = samePolicy(asIamReturnsIt(rewritten), DESIRED);
    // Assess
    expect(same).toBe(true);
  });

  it("sees a different resource, and a missing or unreadable document, as different", () => {
    // Prepare
    const otherCluster = {
      ...DESIRED,
      Statement: [{ ...DESIRED.Statement[0], Resource: ["arn:aws:eks:eu-west-1:111122223333:cluster/old"] }],
    };
    // Act
    const results = [samePolicy(asIamReturnsIt(otherCluster), DESIRED), samePolicy(undefined, DESIRED), samePolicy("%E0%A4%A", DESIRED)];
    // Assess
    expect(results).toEqual([false, false, false]);
  });

  it("compares a recorded document by meaning, and by text when the record is not JSON", () => {
    // Prepare
    const recorded = JSON.stringify(DESIRED);
    // Act
    const byMeaning = sameAsRecorded(asIamReturnsIt({ Statement: DESIRED.Statement, Version: "2012-10-17" }), recorded);
    const byText = sameAsRecorded(encodeURIComponent("not json"), "not json");
    const absent = sameAsRecorded(undefined, "not json");
    // Assess
    expect([byMeaning, byText, absent]).toEqual([true, true, false]);
  });

  it("gives back the plain text of a document IAM returned, or the document itself when it is not URL-encoded", () => {
    // Act
    const decoded = policyText(asIamReturnsIt(DESIRED));
    const undecodable = policyText("100%");
    // Assess
    expect(JSON.parse(decoded)).toEqual(DESIRED);
    expect(undecodable).toBe("100%");
  });
});
