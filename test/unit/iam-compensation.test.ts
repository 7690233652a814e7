/**
 * UndoIamResources, and the put-back a failing CreateIamResources does itself: delete what this execution
 * created, put adopted roles and Pod Identity associations back as they were, run twice safely.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import {
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  IAMServiceException,
  PutRolePolicyCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { DeletePodIdentityAssociationCommand, UpdatePodIdentityAssociationCommand } from "@aws-sdk/client-eks";
import { ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { irsaTrustPolicy, launcherPermissionsPolicy } from "../../functions/lib/domain/policies.js";
import { ACCOUNT, OTHER_RUN, RUN, stepState, markOf } from "../support/fixtures.js";
import {
  apply,
  associations,
  BOUNDARY,
  CLUSTER,
  compensate,
  eks,
  FUSION_IRSA,
  FUSION_POD_IDENTITY,
  FUSION_POLICY,
  iam,
  LAUNCHER,
  LAUNCHER_POLICY,
  noSuchEntity,
  policyOf,
  PREVIOUS_LAUNCHER_POLICY,
  PREVIOUS_TRUST,
  PROVIDER_ARN,
  roles,
  seedRole,
  setOidcProviders,
  STACK_BOUNDARY,
  stateFor,
  useFakeIamAndEks,
  WORKLOAD,
  WORKLOAD_ARN,
} from "../support/iam-fakes.js";

useFakeIamAndEks();

// ---------------------------------------------------------------- compensate

describe("UndoIamResources", () => {
  it("deletes the roles this execution created: inline policies, attached policies, then the role", async () => {
    // Prepare
    await apply(stateFor(FUSION_IRSA));
    roles.get(LAUNCHER)!.attached.push(`arn:aws:iam::${ACCOUNT}:policy/extra`);
    // Act
    const result = await compensate(stateFor(FUSION_IRSA));
    // Assess
    expect(roles.size).toBe(0);
    expect(iam).toHaveReceivedCommandWith(DeleteRolePolicyCommand, { RoleName: LAUNCHER, PolicyName: LAUNCHER_POLICY });
    expect(iam).toHaveReceivedCommandWith(DetachRolePolicyCommand, {
      RoleName: LAUNCHER,
      PolicyArn: `arn:aws:iam::${ACCOUNT}:policy/extra`,
    });
    expect(result).toEqual({ undone: [`IAM role ${WORKLOAD}`, `IAM role ${LAUNCHER}`], kept: [] });
  });

  it("keeps roles it did not create: adopted ones and foreign ones", async () => {
    // Prepare
    seedRole(LAUNCHER, {}, ownershipTags("genomics", markOf("genomics-run-0")), { p: {} });
    seedRole(WORKLOAD, {}, []);
    // Act
    const result = await compensate(stateFor(FUSION_IRSA));
    // Assess
    expect(iam).not.toHaveReceivedCommand(DeleteRoleCommand);
    expect(iam).not.toHaveReceivedCommand(DeleteRolePolicyCommand);
    expect(roles.size).toBe(2);
    expect(result.undone).toEqual([]);
    expect(result.kept).toEqual([`IAM role ${WORKLOAD}: not created by this run`, `IAM role ${LAUNCHER}: not created by this run`]);
  });

  it("never deletes a same-named role outside the product's IAM path, even one carrying this run's mark", async () => {
    // Prepare: a role at another path whose tags claim this very run (tags can be written by anyone allowed to tag it)
    seedRole(LAUNCHER, {}, ownershipTags("genomics", markOf(RUN)), { p: {} }, [], "/");
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(iam).not.toHaveReceivedCommand(DeleteRoleCommand);
    expect(iam).not.toHaveReceivedCommand(DeleteRolePolicyCommand);
    expect(roles.get(LAUNCHER)!.inline.size).toBe(1);
    expect(result.undone).toEqual([]);
    expect(result.kept).toEqual([expect.stringContaining(`IAM role ${LAUNCHER} already exists at path /, not under the product's path`)]);
  });

  it("is safe to run twice: the second run finds nothing to undo and does not fail", async () => {
    // Prepare
    await apply(stateFor());
    await compensate(stateFor());
    iam.resetHistory();
    // Act
    const second = await compensate(stateFor());
    // Assess
    expect(second).toEqual({ undone: [], kept: [] });
    expect(iam).not.toHaveReceivedCommand(DeleteRoleCommand);
  });

  it("finishes a deletion a previous attempt left half-done (NoSuchEntity counts as done)", async () => {
    // Prepare: the role is still listed but vanishes under us
    await apply(stateFor());
    iam.on(DeleteRoleCommand).rejects(noSuchEntity(LAUNCHER));
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result.undone).toEqual([`IAM role ${LAUNCHER}`]);
  });

  it("cleans up after an apply that failed half-way (role created, inline policy not)", async () => {
    // Prepare
    iam
      .on(PutRolePolicyCommand)
      .rejects(new IAMServiceException({ name: "ServiceFailure", message: "boom", $fault: "server", $metadata: { httpStatusCode: 500 } }));
    const error = await apply(stateFor()).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "ClusterUnreachable" });
    expect(roles.has(LAUNCHER)).toBe(true);
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(roles.has(LAUNCHER)).toBe(false);
    expect(result.undone).toEqual([`IAM role ${LAUNCHER}`]);
  });

  it("deletes only the Pod Identity associations this execution created, before the role", async () => {
    // Prepare
    await apply(stateFor(FUSION_POD_IDENTITY));
    const ours = [...associations.keys()];
    associations.set("a-other", {
      clusterName: "research",
      namespace: "tower-nf",
      serviceAccount: "tower-compute-sa",
      associationId: "a-other",
      tags: tagsToRecord(ownershipTags("genomics", markOf("genomics-run-0"))),
    });
    // Act
    const result = await compensate(stateFor(FUSION_POD_IDENTITY));
    // Assess
    for (const id of ours) expect(associations.has(id)).toBe(false);
    expect(associations.has("a-other")).toBe(true);
    expect(result.undone).toEqual(
      expect.arrayContaining([
        expect.stringContaining("a-1"),
        expect.stringContaining("a-2"),
        `IAM role ${WORKLOAD}`,
        `IAM role ${LAUNCHER}`,
      ]),
    );
    expect(result.kept).toEqual([expect.stringContaining("a-other")]);
    const lastAssociationDeleted = eks.commandCalls(DeletePodIdentityAssociationCommand).at(-1)!;
    const firstRoleDeleted = iam.commandCalls(DeleteRoleCommand)[0];
    expect(lastAssociationDeleted.calledBefore(firstRoleDeleted)).toBe(true);
  });

  it("puts back the trust and inline policy an adopted role had before this run, keeps the boundary, and changes nothing when run again", async () => {
    // Prepare
    process.env.PERMISSIONS_BOUNDARY_ARN = BOUNDARY;
    seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", markOf(OTHER_RUN)), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
    const state = stepState({}, RUN, { cluster: CLUSTER, iam: await apply(stateFor()) });
    iam.resetHistory();
    // Act
    const result = await compensate(state);
    const again = await compensate(state);
    // Assess
    expect(roles.has(LAUNCHER)).toBe(true);
    expect(policyOf(roles.get(LAUNCHER)!.role.AssumeRolePolicyDocument)).toEqual(PREVIOUS_TRUST);
    expect(policyOf(roles.get(LAUNCHER)!.inline.get(LAUNCHER_POLICY))).toEqual(PREVIOUS_LAUNCHER_POLICY);
    expect(roles.get(LAUNCHER)!.role.PermissionsBoundary?.PermissionsBoundaryArn).toBe(BOUNDARY);
    expect(iam).not.toHaveReceivedCommand(DeleteRoleCommand);
    expect(result).toEqual({
      undone: [`IAM role ${LAUNCHER}: inline policy ${LAUNCHER_POLICY} restored, trust policy restored`],
      kept: [`IAM role ${LAUNCHER}: permissions boundary left at ${BOUNDARY} (was none): the deployment requires it`],
    });
    expect(iam).toHaveReceivedCommandTimes(PutRolePolicyCommand, 1);
    expect(iam).toHaveReceivedCommandTimes(UpdateAssumeRolePolicyCommand, 1);
    expect(again.undone).toEqual([]);
  });

  it("Fusion: puts back an adopted workload role's IRSA trust (other namespace) and removes the inline policy it did not have", async () => {
    // Prepare: an earlier run of this tenant trusted another namespace and had no S3 policy yet
    const previousTrust = irsaTrustPolicy({
      oidcProviderArn: PROVIDER_ARN,
      issuer: "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
      namespace: "genomics-old",
      serviceAccounts: ["tower-launcher-sa"],
    });
    seedRole(WORKLOAD, previousTrust, ownershipTags("genomics", markOf(OTHER_RUN)));
    const applied = await apply(stateFor(FUSION_IRSA));
    // Act
    const result = await compensate(stepState(FUSION_IRSA, RUN, { cluster: CLUSTER, iam: applied }));
    // Assess
    // Issue #9: every product role carries a boundary now, so the adopted role (which had none) got the stack's too.
    expect(applied.changed).toEqual([
      {
        roleName: WORKLOAD,
        previousBoundary: {},
        previousTrustPolicy: JSON.stringify(previousTrust),
        previousInlinePolicy: { name: FUSION_POLICY },
        writtenTrustPolicy: expect.stringContaining("system:serviceaccount:tower-nf:tower-launcher-sa"),
        writtenInlinePolicy: expect.stringContaining("arn:aws:s3:::genomics-work/work/*"),
      },
    ]);
    expect(roles.has(LAUNCHER)).toBe(false);
    expect(policyOf(roles.get(WORKLOAD)!.role.AssumeRolePolicyDocument)).toEqual(previousTrust);
    expect(roles.get(WORKLOAD)!.inline.size).toBe(0);
    expect(result.undone).toEqual([
      `IAM role ${WORKLOAD}: inline policy ${FUSION_POLICY} removed, trust policy restored`,
      `IAM role ${LAUNCHER}`,
    ]);
    expect(result.kept).toEqual([
      `IAM role ${WORKLOAD}: permissions boundary left at ${STACK_BOUNDARY} (was none): the deployment requires it`,
    ]);
  });

  it("a step that fails after changing an adopted role puts the previous documents back itself (the compensator gets no $.iam)", async () => {
    // Prepare: the launcher is adopted and changed, then the workload role cannot be made
    seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", markOf(OTHER_RUN)), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
    setOidcProviders([]);
    // Act
    const error = await apply(stateFor(FUSION_IRSA)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed" });
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
      RoleName: LAUNCHER,
      PolicyDocument: JSON.stringify(launcherPermissionsPolicy([CLUSTER.arn])),
    });
    expect(policyOf(roles.get(LAUNCHER)!.role.AssumeRolePolicyDocument)).toEqual(PREVIOUS_TRUST);
    expect(policyOf(roles.get(LAUNCHER)!.inline.get(LAUNCHER_POLICY))).toEqual(PREVIOUS_LAUNCHER_POLICY);
  });

  it("Pod Identity: points an adopted association back at its previous role, before deleting the role this run created", async () => {
    // Prepare: another run of this tenant associated the head service account with another role
    const previousRoleArn = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-workload`;
    associations.set("a-old", {
      clusterName: "research",
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      roleArn: previousRoleArn,
      associationId: "a-old",
      tags: tagsToRecord(ownershipTags("genomics", markOf(OTHER_RUN))),
    });
    const applied = await apply(stateFor(FUSION_POD_IDENTITY));
    expect(associations.get("a-old")!.roleArn).toBe(WORKLOAD_ARN);
    // Act
    const result = await compensate(stepState(FUSION_POD_IDENTITY, RUN, { cluster: CLUSTER, iam: applied }));
    // Assess
    expect(applied.changedAssociations).toEqual([{ associationId: "a-old", previousRoleArn, roleArn: applied.workloadRoleArn }]);
    expect(associations.get("a-old")!.roleArn).toBe(previousRoleArn);
    expect([...associations.keys()]).toEqual(["a-old"]);
    expect(roles.has(WORKLOAD)).toBe(false);
    expect(result.undone).toContain(`Pod Identity association a-old (tower-nf/tower-launcher-sa): role restored to ${previousRoleArn}`);
    const restore = eks.commandCalls(UpdatePodIdentityAssociationCommand).at(-1)!;
    expect(restore.args[0].input).toMatchObject({ associationId: "a-old", roleArn: previousRoleArn });
    expect(restore.calledBefore(iam.commandCalls(DeleteRoleCommand)[0])).toBe(true);
  });

  it("does nothing for a run whose request never validated", async () => {
    // Act
    const result = await compensate(stateFor({ tenant: "NOT VALID" }));
    // Assess
    expect(result).toEqual({ undone: [], kept: [] });
    expect(iam).not.toHaveReceivedAnyCommand();
  });
});
