/**
 * CreateIamResources, the launcher identity: the role it creates or adopts (and what it records of an
 * adopted role), the principal it is given, and what it refuses.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import {
  CreateRoleCommand,
  GetRoleCommand,
  GetUserCommand,
  IAMServiceException,
  PutRolePermissionsBoundaryCommand,
  PutRolePolicyCommand,
  UpdateAssumeRolePolicyCommand,
  type Tag,
} from "@aws-sdk/client-iam";
import { IAM_ROLE_PATH, iamPolicyName, ownershipTags, productRoleArn } from "../../functions/lib/domain/naming.js";
import { accountRootArn, launcherPermissionsPolicy, launcherTrustPolicy } from "../../functions/lib/domain/policies.js";
import { ACCOUNT, OTHER_RUN, RUN, resolvedCluster, stepState, markOf } from "../support/fixtures.js";
import {
  apply,
  BOUNDARY,
  CLUSTER,
  createRoleInputs,
  FUSION_IRSA,
  iam,
  LAUNCHER,
  LAUNCHER_ARN,
  LAUNCHER_POLICY,
  noSuchEntity,
  policyOf,
  PREVIOUS_LAUNCHER_POLICY,
  PREVIOUS_TRUST,
  roles,
  seedRole,
  STACK_BOUNDARY,
  stateFor,
  useFakeIamAndEks,
  WORKLOAD,
} from "../support/iam-fakes.js";

useFakeIamAndEks();

/** The trust of a launcher whose request says `trustAccount: true` (the fixtures' request). */
const ACCOUNT_TRUST = launcherTrustPolicy([accountRootArn(ACCOUNT)]);

// ---------------------------------------------------------------- launcher

describe("CreateIamResources: launcher", () => {
  it("creates the launcher role, tagged with the ownership marks, with its trust and DescribeCluster policy", async () => {
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(iam).toHaveReceivedCommandTimes(CreateRoleCommand, 1);
    const [input] = createRoleInputs();
    expect(input.RoleName).toBe(LAUNCHER);
    expect(JSON.parse(input.AssumeRolePolicyDocument!)).toEqual(ACCOUNT_TRUST);
    expect(input.Tags).toEqual(ownershipTags("genomics", markOf(RUN)));
    // Changed by issue #9: under the product's path, and bounded by the stack's boundary when the operator names none.
    expect(input.Path).toBe(IAM_ROLE_PATH);
    expect(input.PermissionsBoundary).toBe(STACK_BOUNDARY);
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
      RoleName: LAUNCHER,
      PolicyName: LAUNCHER_POLICY,
      PolicyDocument: JSON.stringify(launcherPermissionsPolicy([CLUSTER.arn])),
    });
    expect(result).toEqual({
      launcherArn: `arn:aws:iam::${ACCOUNT}:role/nf-eks-provisioner/${LAUNCHER}`,
      launcherKind: "role",
      launcherCreated: true,
      // IAM's CreateDate of the role (GrantClusterAccess replaces an access entry older than it: #13 point 1)
      launcherCreateDate: roles.get(LAUNCHER)!.role.CreateDate!.toISOString(),
      created: [`arn:aws:iam::${ACCOUNT}:role/nf-eks-provisioner/${LAUNCHER}`],
    });
  });

  it("a role IAM says exists but cannot show yet is decided once more, then left to the state machine's retry", async () => {
    // Prepare: GetRole keeps answering NoSuchEntity while CreateRole keeps answering EntityAlreadyExists
    iam.on(CreateRoleCommand).rejects(
      new IAMServiceException({
        name: "EntityAlreadyExists",
        message: `Role with name ${LAUNCHER} already exists.`,
        $fault: "client",
        $metadata: { httpStatusCode: 409 },
      }),
    );
    // Act
    const attempt = apply(stateFor());
    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "IamNotYetConsistent" });
    expect(iam).toHaveReceivedCommandTimes(CreateRoleCommand, 2);
  });

  it("sets the permissions boundary when the deployment configures one", async () => {
    // Prepare
    process.env.PERMISSIONS_BOUNDARY_ARN = BOUNDARY;
    // Act
    await apply(stateFor({ storage: FUSION_IRSA.storage }));
    // Assess
    const inputs = createRoleInputs();
    expect(inputs.map((i) => i.RoleName)).toEqual([LAUNCHER, WORKLOAD]);
    for (const input of inputs) expect(input.PermissionsBoundary).toBe(BOUNDARY);
  });

  it("re-run: finds its own role and writes nothing (no CreateRole, no policy updates)", async () => {
    // Prepare
    const first = await apply(stateFor());
    iam.resetHistory();
    // Act
    const second = await apply(stateFor());
    // Assess
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    expect(iam).not.toHaveReceivedCommand(UpdateAssumeRolePolicyCommand);
    expect(second).toEqual(first);
    expect(roles.size).toBe(1);
  });

  it("adopts a role marked for this tenant by another run, bringing its policies to the desired documents and recording the previous ones", async () => {
    // Prepare
    process.env.PERMISSIONS_BOUNDARY_ARN = BOUNDARY;
    seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", markOf(OTHER_RUN)), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(iam).toHaveReceivedCommandWith(UpdateAssumeRolePolicyCommand, {
      RoleName: LAUNCHER,
      PolicyDocument: JSON.stringify(ACCOUNT_TRUST),
    });
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
      RoleName: LAUNCHER,
      PolicyDocument: JSON.stringify(launcherPermissionsPolicy([CLUSTER.arn])),
    });
    expect(iam).toHaveReceivedCommandWith(PutRolePermissionsBoundaryCommand, { RoleName: LAUNCHER, PermissionsBoundary: BOUNDARY });
    expect(result.launcherCreated).toBe(false);
    expect(result.created).toEqual([]);
    expect(result.changed).toEqual([
      {
        roleName: LAUNCHER,
        previousBoundary: {},
        previousTrustPolicy: JSON.stringify(PREVIOUS_TRUST),
        previousInlinePolicy: { name: LAUNCHER_POLICY, document: JSON.stringify(PREVIOUS_LAUNCHER_POLICY) },
        writtenTrustPolicy: JSON.stringify(ACCOUNT_TRUST),
        writtenInlinePolicy: JSON.stringify(launcherPermissionsPolicy([CLUSTER.arn])),
      },
    ]);
  });

  it("puts the permissions boundary on an adopted role before changing its trust or inline policy", async () => {
    // Prepare: IAM permissions may allow those writes only on roles that carry the boundary
    process.env.PERMISSIONS_BOUNDARY_ARN = BOUNDARY;
    seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", markOf(OTHER_RUN)), {
      [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY,
    }).role.PermissionsBoundary = {
      PermissionsBoundaryArn: `arn:aws:iam::${ACCOUNT}:policy/old-boundary`,
      PermissionsBoundaryType: "PermissionsBoundaryPolicy",
    };
    // Act
    const result = await apply(stateFor());
    // Assess
    const [boundary] = iam.commandCalls(PutRolePermissionsBoundaryCommand);
    expect(boundary.calledBefore(iam.commandCalls(UpdateAssumeRolePolicyCommand)[0])).toBe(true);
    expect(boundary.calledBefore(iam.commandCalls(PutRolePolicyCommand)[0])).toBe(true);
    expect(result.changed?.[0].previousBoundary).toEqual({ arn: `arn:aws:iam::${ACCOUNT}:policy/old-boundary` });
  });

  it("same request again on a role another run made: writes nothing and records no change", async () => {
    // Prepare
    process.env.PERMISSIONS_BOUNDARY_ARN = BOUNDARY;
    await apply(stateFor({}, OTHER_RUN));
    iam.resetHistory();
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    expect(iam).not.toHaveReceivedCommand(UpdateAssumeRolePolicyCommand);
    expect(iam).not.toHaveReceivedCommand(PutRolePermissionsBoundaryCommand);
    expect(result).toEqual({
      launcherArn: LAUNCHER_ARN,
      launcherKind: "role",
      launcherCreated: false,
      launcherCreateDate: roles.get(LAUNCHER)!.role.CreateDate!.toISOString(),
      created: [],
    });
  });

  it("gives the same tenant a separate role per cluster, leaving the first cluster's role as it was", async () => {
    // Prepare
    await apply(stateFor());
    const researchPolicy = roles.get(LAUNCHER)!.inline.get(LAUNCHER_POLICY);
    const other = resolvedCluster({ name: "other", arn: `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/other` });
    iam.resetHistory();
    // Act
    const result = await apply(stepState({ cluster: { name: "other", region: "eu-west-1" } }, "genomics-run-2", { cluster: other }));
    // Assess
    expect(result.launcherArn).toBe(productRoleArn("aws", ACCOUNT, "nfeks-genomics.other-launcher"));
    expect(result.changed).toBeUndefined();
    expect(iam).not.toHaveReceivedCommandWith(PutRolePolicyCommand, { RoleName: LAUNCHER });
    expect(roles.get(LAUNCHER)!.inline.get(LAUNCHER_POLICY)).toBe(researchPolicy);
    expect(
      policyOf(roles.get("nfeks-genomics.other-launcher")!.inline.get(iamPolicyName("nfeks", "genomics", "other", "launcher"))),
    ).toEqual(launcherPermissionsPolicy([other.arn]));
  });

  it.each([
    ["no tags at all", [] as Tag[]],
    ["another tenant's marks", ownershipTags("proteomics", markOf("proteomics-run-1"))],
  ])("refuses a role with the same name and %s (OwnershipConflict), touching nothing", async (_what, tags) => {
    // Prepare
    seedRole(LAUNCHER, { Version: "2012-10-17", Statement: [] }, tags);
    // Act
    const error = await apply(stateFor()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining(LAUNCHER) });
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(iam).not.toHaveReceivedCommand(UpdateAssumeRolePolicyCommand);
    expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
  });

  it("trusts exactly the principals the request names, with its external ID", async () => {
    // Prepare
    const principals = [`arn:aws:iam::${ACCOUNT}:role/seqera-platform`, "arn:aws:iam::444455556666:user/ci"];
    // Act
    await apply(stateFor({ launcher: { mode: "create", trust: { principals, externalId: "genomics-seqera" } } }));
    // Assess
    const [input] = createRoleInputs();
    expect(JSON.parse(input.AssumeRolePolicyDocument!)).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "AssumeByTheNamedPrincipals",
          Effect: "Allow",
          Principal: { AWS: principals },
          Action: "sts:AssumeRole",
          Condition: { StringEquals: { "sts:ExternalId": "genomics-seqera" } },
        },
      ],
    });
    expect(input.AssumeRolePolicyDocument).not.toContain(":root");
  });

  it("refuses to create a role when the deployment sets no permissions boundary (NotAllowed), creating nothing", async () => {
    // Prepare
    delete process.env.PERMISSIONS_BOUNDARY_ARN;
    // Act
    const error = await apply(stateFor()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed", message: expect.stringContaining("PERMISSIONS_BOUNDARY_ARN") });
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
  });

  it("refuses a same-named role at another IAM path, even carrying this tenant's marks (OwnershipConflict naming the path)", async () => {
    // Prepare: role names are unique whatever the path; this one is outside the product's reach
    seedRole(
      LAUNCHER,
      PREVIOUS_TRUST,
      ownershipTags("genomics", markOf(OTHER_RUN)),
      { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY },
      [],
      "/platform/",
    );
    // Act
    const error = await apply(stateFor()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining("at path /platform/") });
    expect((error as Error).message).toContain(IAM_ROLE_PATH);
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(iam).not.toHaveReceivedCommand(UpdateAssumeRolePolicyCommand);
    expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    expect(iam).not.toHaveReceivedCommand(PutRolePermissionsBoundaryCommand);
  });

  it("uses an existing launcher role after checking it exists, creating nothing", async () => {
    // Prepare
    seedRole("seqera-launcher", {}, []);
    // Act
    const result = await apply(
      stateFor({ launcher: { mode: "existing", principalArn: `arn:aws:iam::${ACCOUNT}:role/team/seqera-launcher` } }),
    );
    // Assess
    expect(iam).toHaveReceivedCommandWith(GetRoleCommand, { RoleName: "seqera-launcher" });
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(result).toEqual({
      launcherArn: `arn:aws:iam::${ACCOUNT}:role/team/seqera-launcher`,
      launcherKind: "role",
      launcherCreated: false,
      launcherCreateDate: roles.get("seqera-launcher")!.role.CreateDate!.toISOString(),
      created: [],
    });
  });

  it("uses an existing launcher user (GetUser)", async () => {
    // Act
    const result = await apply(stateFor({ launcher: { mode: "existing", principalArn: `arn:aws:iam::${ACCOUNT}:user/ci` } }));
    // Assess
    expect(iam).toHaveReceivedCommandWith(GetUserCommand, { UserName: "ci" });
    expect(result.launcherKind).toBe("user");
  });

  it("refuses an existing principal that does not exist (InvalidRequest)", async () => {
    // Act
    const error = await apply(stateFor({ launcher: { mode: "existing", principalArn: `arn:aws:iam::${ACCOUNT}:role/ghost` } })).catch(
      (e: unknown) => e,
    );
    // Assess
    expect(error).toMatchObject({ name: "InvalidRequest", message: expect.stringContaining("principal does not exist") });
    expect((error as { problems: Array<{ path: string }> }).problems[0].path).toBe("launcher.principalArn");
  });

  it("does not look up a principal in another (allowlisted) account, which IAM here cannot see", async () => {
    // Act
    const result = await apply(stateFor({ launcher: { mode: "existing", principalArn: "arn:aws:iam::444455556666:role/seqera" } }));
    // Assess
    expect(iam).not.toHaveReceivedCommand(GetRoleCommand);
    expect(result.launcherArn).toBe("arn:aws:iam::444455556666:role/seqera");
  });

  it("names a throttled CreateRole Throttled (the state machine retries)", async () => {
    // Prepare
    iam
      .on(CreateRoleCommand)
      .rejects(
        new IAMServiceException({ name: "Throttling", message: "Rate exceeded", $fault: "client", $metadata: { httpStatusCode: 400 } }),
      );
    // Act
    const error = await apply(stateFor()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "Throttled" });
  });

  it("adopts the role when a concurrent attempt created it between read and write", async () => {
    // Prepare: the first GetRole misses, CreateRole then finds the role already there (this run's tags)
    seedRole(LAUNCHER, ACCOUNT_TRUST, ownershipTags("genomics", markOf(RUN)), {
      [LAUNCHER_POLICY]: launcherPermissionsPolicy([CLUSTER.arn]),
    });
    iam
      .on(GetRoleCommand)
      .rejectsOnce(noSuchEntity(LAUNCHER))
      .callsFake(({ RoleName }) => ({ Role: roles.get(RoleName)!.role }));
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(iam).toHaveReceivedCommandTimes(CreateRoleCommand, 1);
    expect(iam).toHaveReceivedCommandTimes(GetRoleCommand, 2);
    expect(result.launcherCreated).toBe(true);
    expect(roles.size).toBe(1);
  });
});
