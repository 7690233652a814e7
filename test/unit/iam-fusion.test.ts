/**
 * CreateIamResources, the Fusion workload role: IRSA trust through the cluster's OIDC provider and the
 * S3 policy, or EKS Pod Identity associations; what it refuses and what it leaves to the state machine's retry.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import { CreateRoleCommand, IAMServiceException, ListOpenIDConnectProvidersCommand, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { CreatePodIdentityAssociationCommand, InvalidParameterException } from "@aws-sdk/client-eks";
import { ownershipTags, TAG_CREATED_BY, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { fusionS3Policy, irsaTrustPolicy, oidcProviderArn, podIdentityTrustPolicy } from "../../functions/lib/domain/policies.js";
import { ACCOUNT, RUN, markOf } from "../support/fixtures.js";
import {
  apply,
  associations,
  CLUSTER,
  createRoleInputs,
  eks,
  FUSION_IRSA,
  FUSION_POD_IDENTITY,
  FUSION_POLICY,
  iam,
  ISSUER,
  LAUNCHER_ARN,
  roles,
  setOidcProviders,
  stateFor,
  useFakeIamAndEks,
  WORKLOAD,
  WORKLOAD_ARN,
} from "../support/iam-fakes.js";

useFakeIamAndEks();

// ---------------------------------------------------------------- Fusion

describe("CreateIamResources: Fusion workload role", () => {
  it("IRSA: trusts the cluster's OIDC provider for the head and compute service accounts, with the S3 policy", async () => {
    // Act
    const result = await apply(stateFor(FUSION_IRSA));
    // Assess
    const workload = createRoleInputs().find((i) => i.RoleName === WORKLOAD)!;
    expect(JSON.parse(workload.AssumeRolePolicyDocument!)).toEqual(
      irsaTrustPolicy({
        oidcProviderArn: oidcProviderArn(ACCOUNT, ISSUER, "aws"),
        issuer: "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        namespace: "tower-nf",
        serviceAccounts: ["tower-launcher-sa", "tower-compute-sa"],
      }),
    );
    expect(workload.Tags).toEqual(ownershipTags("genomics", markOf(RUN)));
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
      RoleName: WORKLOAD,
      PolicyName: FUSION_POLICY,
      PolicyDocument: JSON.stringify(fusionS3Policy({ bucket: "genomics-work", workDir: "work", partition: "aws" })),
    });
    expect(result.workloadRoleArn).toBe(WORKLOAD_ARN);
    expect(result.created).toEqual([LAUNCHER_ARN, WORKLOAD_ARN]);
    expect(eks).not.toHaveReceivedCommand(CreatePodIdentityAssociationCommand);
  });

  it("IRSA: refuses when the OIDC provider is not registered in IAM (NotAllowed, says how to fix it)", async () => {
    // Prepare
    setOidcProviders([`arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/SOMEOTHERCLUSTER`]);
    // Act
    const error = await apply(stateFor(FUSION_IRSA)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed", message: expect.stringContaining("eksctl utils associate-iam-oidc-provider") });
    expect(createRoleInputs().map((i) => i.RoleName)).not.toContain(WORKLOAD);
  });

  it("IRSA: refuses a cluster without an OIDC issuer (NotAllowed)", async () => {
    // Prepare
    const state = stateFor(FUSION_IRSA);
    state.cluster = { ...CLUSTER, oidcIssuer: undefined };
    // Act
    const error = await apply(state).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed", message: expect.stringContaining("OIDC issuer") });
  });

  it("Pod Identity: trusts pods.eks.amazonaws.com and associates the head and compute service accounts, tagged", async () => {
    // Act
    const result = await apply(stateFor(FUSION_POD_IDENTITY));
    // Assess
    const workload = createRoleInputs().find((i) => i.RoleName === WORKLOAD)!;
    // Changed by issue #9: only for the tenant's service accounts, namespace and cluster, as the session tags say.
    expect(JSON.parse(workload.AssumeRolePolicyDocument!)).toEqual(
      podIdentityTrustPolicy({
        clusterArn: CLUSTER.arn,
        namespace: "tower-nf",
        serviceAccounts: ["tower-launcher-sa", "tower-compute-sa"],
      }),
    );
    expect(iam).not.toHaveReceivedCommand(ListOpenIDConnectProvidersCommand);
    for (const serviceAccount of ["tower-launcher-sa", "tower-compute-sa"]) {
      expect(eks).toHaveReceivedCommandWith(CreatePodIdentityAssociationCommand, {
        clusterName: "research",
        namespace: "tower-nf",
        serviceAccount,
        roleArn: WORKLOAD_ARN,
        tags: tagsToRecord(ownershipTags("genomics", markOf(RUN))),
        disableSessionTags: false,
      });
    }
    expect(result.podIdentityAssociationIds).toEqual(["a-1", "a-2"]);
    expect(result.created).toHaveLength(4);
  });

  it("Pod Identity: re-run creates no second association", async () => {
    // Prepare
    const first = await apply(stateFor(FUSION_POD_IDENTITY));
    eks.resetHistory();
    iam.resetHistory();
    // Act
    const second = await apply(stateFor(FUSION_POD_IDENTITY));
    // Assess
    expect(eks).not.toHaveReceivedCommand(CreatePodIdentityAssociationCommand);
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(associations.size).toBe(2);
    expect(second).toEqual(first);
  });

  it("Pod Identity: refuses a service account already associated by someone else (OwnershipConflict)", async () => {
    // Prepare
    associations.set("a-foreign", {
      clusterName: "research",
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      roleArn: `arn:aws:iam::${ACCOUNT}:role/someone-else`,
      associationId: "a-foreign",
      tags: {},
    });
    // Act
    const error = await apply(stateFor(FUSION_POD_IDENTITY)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining("tower-nf/tower-launcher-sa") });
    expect(associations.get("a-foreign")!.roleArn).toBe(`arn:aws:iam::${ACCOUNT}:role/someone-else`);
  });

  it("Pod Identity: refuses an association of ours whose session tags are disabled (NotAllowed: the role's trust needs them)", async () => {
    // Prepare
    associations.set("a-untagged", {
      clusterName: "research",
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      roleArn: WORKLOAD_ARN,
      associationId: "a-untagged",
      tags: tagsToRecord(ownershipTags("genomics", markOf("genomics-run-0"))),
      disableSessionTags: true,
    });
    // Act
    const error = await apply(stateFor(FUSION_POD_IDENTITY)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed", message: expect.stringContaining("session tags disabled") });
    expect((error as Error).message).toContain("--no-disable-session-tags");
    expect(associations.get("a-untagged")!.disableSessionTags).toBe(true);
  });

  it("confines the S3 policy to the request's work directory (a trailing '/' makes no difference)", async () => {
    // Act
    await apply(stateFor({ ...FUSION_IRSA, storage: { type: "fusion", bucket: "shared-work", workDir: "teams/genomics/" } }));
    // Assess
    const document = JSON.parse(
      iam.commandCalls(PutRolePolicyCommand).find((c) => c.args[0].input.RoleName === WORKLOAD)!.args[0].input.PolicyDocument!,
    );
    expect(document.Statement).toEqual([
      expect.objectContaining({
        Action: "s3:ListBucket",
        Resource: "arn:aws:s3:::shared-work",
        Condition: { StringLike: { "s3:prefix": ["teams/genomics/", "teams/genomics/*"] } },
      }),
      expect.objectContaining({ Resource: "arn:aws:s3:::shared-work/teams/genomics/*" }),
    ]);
  });

  it("IamNotYetConsistent when EKS says the new role cannot be assumed yet", async () => {
    // Prepare
    eks.on(CreatePodIdentityAssociationCommand).rejects(
      new InvalidParameterException({
        message: `Role ${WORKLOAD_ARN} cannot be assumed by principal pods.eks.amazonaws.com`,
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const error = await apply(stateFor(FUSION_POD_IDENTITY)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "IamNotYetConsistent" });
    // The half-made role carries this run's mark, so the compensator will find it.
    expect(tagsToRecord(roles.get(WORKLOAD)!.role.Tags)[TAG_CREATED_BY]).toBe(
      tagsToRecord(ownershipTags("genomics", markOf(RUN)))[TAG_CREATED_BY],
    );
  });

  it("IamNotYetConsistent when IAM rejects a trust policy principal as invalid", async () => {
    // Prepare
    iam.on(CreateRoleCommand).rejects(
      new IAMServiceException({
        name: "MalformedPolicyDocument",
        message: 'Invalid principal in policy: "Federated"',
        $fault: "client",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const error = await apply(stateFor(FUSION_IRSA)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "IamNotYetConsistent" });
  });
});
