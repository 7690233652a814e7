/**
 * UndoIamResources puts an adopted role's previous documents (and an adopted Pod Identity association's previous
 * role) back only while the current one is still what this run wrote; documents are compared as parsed JSON, so the
 * same policy written back with other spacing or key order still counts as this run's. Changed since: left as it
 * is and reported under `failed` (could not be undone).
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import { PutRolePolicyCommand, UpdateAssumeRolePolicyCommand } from "@aws-sdk/client-iam";
import { UpdatePodIdentityAssociationCommand } from "@aws-sdk/client-eks";
import { ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { ACCOUNT, markOf, OTHER_RUN, RUN, stepState } from "../support/fixtures.js";
import {
  apply,
  associations,
  BOUNDARY,
  CLUSTER,
  compensate,
  eks,
  FUSION_POD_IDENTITY,
  iam,
  LAUNCHER,
  LAUNCHER_POLICY,
  policyOf,
  PREVIOUS_LAUNCHER_POLICY,
  PREVIOUS_TRUST,
  roles,
  seedRole,
  stateFor,
  useFakeIamAndEks,
  WORKLOAD_ARN,
} from "../support/iam-fakes.js";

useFakeIamAndEks();

/** The launcher role of this tenant adopted and changed by this run; the state its compensator gets. */
async function adoptedAndChanged() {
  process.env.PERMISSIONS_BOUNDARY_ARN = BOUNDARY;
  seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", markOf(OTHER_RUN)), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
  const state = stepState({}, RUN, { cluster: CLUSTER, iam: await apply(stateFor()) });
  iam.resetHistory();
  return state;
}

describe("UndoIamResources: an adopted role changed again after this run", () => {
  it("leaves a trust policy someone changed since, puts back the inline policy still as written, and says which was not undone", async () => {
    // Prepare
    const state = await adoptedAndChanged();
    const theirs = {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "sts:AssumeRole" }],
    };
    roles.get(LAUNCHER)!.role.AssumeRolePolicyDocument = encodeURIComponent(JSON.stringify(theirs));
    // Act
    const result = await compensate(state);
    // Assess
    expect(policyOf(roles.get(LAUNCHER)!.role.AssumeRolePolicyDocument)).toEqual(theirs);
    expect(policyOf(roles.get(LAUNCHER)!.inline.get(LAUNCHER_POLICY))).toEqual(PREVIOUS_LAUNCHER_POLICY);
    expect(iam).not.toHaveReceivedCommand(UpdateAssumeRolePolicyCommand);
    expect(result.undone).toEqual([`IAM role ${LAUNCHER}: inline policy ${LAUNCHER_POLICY} restored`]);
    expect(result.failed).toEqual([
      `IAM role ${LAUNCHER}: trust policy changed since this run wrote it, so the previous document was not put back`,
    ]);
  });

  it("leaves an inline policy someone deleted or rewrote since", async () => {
    // Prepare
    const state = await adoptedAndChanged();
    roles.get(LAUNCHER)!.inline.delete(LAUNCHER_POLICY);
    // Act
    const result = await compensate(state);
    // Assess
    expect(roles.get(LAUNCHER)!.inline.has(LAUNCHER_POLICY)).toBe(false);
    expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    expect(policyOf(roles.get(LAUNCHER)!.role.AssumeRolePolicyDocument)).toEqual(PREVIOUS_TRUST);
    expect(result.failed).toEqual([
      `IAM role ${LAUNCHER}: inline policy ${LAUNCHER_POLICY} changed since this run wrote it, so the previous document was not put back`,
    ]);
  });

  it("compares documents as parsed JSON: the same policy re-serialised (spacing, key order) is still this run's, and is put back", async () => {
    // Prepare
    const state = await adoptedAndChanged();
    const written = JSON.parse(state.iam!.changed![0]!.writtenTrustPolicy!);
    const reordered = JSON.stringify({ Statement: written.Statement, Version: written.Version }, null, 2);
    roles.get(LAUNCHER)!.role.AssumeRolePolicyDocument = encodeURIComponent(reordered);
    // Act
    const result = await compensate(state);
    // Assess
    expect(policyOf(roles.get(LAUNCHER)!.role.AssumeRolePolicyDocument)).toEqual(PREVIOUS_TRUST);
    expect(result.failed).toBeUndefined();
    expect(result.undone).toEqual([`IAM role ${LAUNCHER}: inline policy ${LAUNCHER_POLICY} restored, trust policy restored`]);
  });
});

describe("UndoIamResources: an adopted Pod Identity association pointed elsewhere after this run", () => {
  it("leaves it as it is and says it was not undone", async () => {
    // Prepare
    const previousRoleArn = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-workload`;
    const tags = tagsToRecord(ownershipTags("genomics", markOf(OTHER_RUN)));
    associations.set("a-old", {
      clusterName: "research",
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      roleArn: previousRoleArn,
      associationId: "a-old",
      tags,
    });
    const applied = await apply(stateFor(FUSION_POD_IDENTITY));
    expect(associations.get("a-old")!.roleArn).toBe(WORKLOAD_ARN);
    const theirs = `arn:aws:iam::${ACCOUNT}:role/someone-elses`;
    associations.get("a-old")!.roleArn = theirs;
    eks.resetHistory();
    // Act
    const result = await compensate(stepState(FUSION_POD_IDENTITY, RUN, { cluster: CLUSTER, iam: applied }));
    // Assess
    expect(associations.get("a-old")!.roleArn).toBe(theirs);
    expect(eks).not.toHaveReceivedCommand(UpdatePodIdentityAssociationCommand);
    expect(result.failed).toEqual([
      `Pod Identity association a-old: its role was changed since this run set it, so ${previousRoleArn} was not put back`,
    ]);
  });
});
