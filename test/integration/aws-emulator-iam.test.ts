/**
 * The AWS emulator's IAM (query protocol) through the real IAMClient: roles, inline and managed policies, users and
 * OIDC providers, answered with IAM's error codes (so the SDK raises the same exception classes) and its validation.
 */
import { describe, expect, it } from "vitest";
import {
  CreateOpenIDConnectProviderCommand,
  CreatePolicyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  DeleteConflictException,
  DeletePolicyCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DeleteUserCommand,
  AttachRolePolicyCommand,
  DetachRolePolicyCommand,
  EntityAlreadyExistsException,
  GetOpenIDConnectProviderCommand,
  GetPolicyCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  GetUserCommand,
  type IAMClient,
  IAMServiceException,
  ListAttachedRolePoliciesCommand,
  ListOpenIDConnectProvidersCommand,
  ListRoleTagsCommand,
  MalformedPolicyDocumentException,
  NoSuchEntityException,
  PutRolePermissionsBoundaryCommand,
  PutRolePolicyCommand,
  TagRoleCommand,
  UntagRoleCommand,
  UpdateAssumeRolePolicyCommand,
  paginateListRolePolicies,
} from "@aws-sdk/client-iam";
import { accountRootArn, launcherTrustPolicy, oidcProviderArn } from "../../functions/lib/domain/policies.js";
import type { AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import {
  ACCOUNT,
  podIdentityTrust,
  ADMIN_ARN,
  createLauncherRole,
  describeClustersPolicy,
  ISSUER,
  launcherTrust,
  NODE_ROLE_ARN,
  rejection,
  useAwsEmulator,
} from "../support/aws-emulator-clients.js";

let aws: AwsEmulator;
let iam: IAMClient;
useAwsEmulator((started) => ({ aws, iam } = started));

describe("IAM (query protocol)", () => {
  it("creates a tagged role and reads it back with its trust policy URL-encoded, as IAM returns it", async () => {
    // Prepare
    const tags = [{ Key: "app.kubernetes.io/managed-by", Value: "nf-eks-provisioner" }];
    // Act
    const created = await iam.send(
      new CreateRoleCommand({
        RoleName: "launcher",
        Path: "/seqera/",
        AssumeRolePolicyDocument: launcherTrust,
        Tags: tags,
        Description: "d",
      }),
    );
    const { Role } = await iam.send(new GetRoleCommand({ RoleName: "launcher" }));
    // Assess
    expect(created.Role?.Arn).toBe(`arn:aws:iam::${ACCOUNT}:role/seqera/launcher`);
    expect(Role?.RoleId).toMatch(/^AROA[A-Z2-7]{17}$/);
    expect(Role?.Tags).toEqual(tags);
    expect(Role?.Description).toBe("d");
    expect(Role?.AssumeRolePolicyDocument).toBe(encodeURIComponent(launcherTrust));
    expect(JSON.parse(decodeURIComponent(Role!.AssumeRolePolicyDocument!))).toEqual(launcherTrustPolicy([accountRootArn(ACCOUNT)]));
  });

  it("raises NoSuchEntityException (404) for a role that does not exist", async () => {
    // Act
    const error = await rejection(iam.send(new GetRoleCommand({ RoleName: "ghost" })));
    // Assess
    expect(error).toBeInstanceOf(NoSuchEntityException);
    expect(error.message).toBe("The role with name ghost cannot be found.");
    expect(error.$metadata?.httpStatusCode).toBe(404);
  });

  it("raises EntityAlreadyExistsException (409) for a second role of the same name, in any case", async () => {
    // Prepare
    await createLauncherRole(iam, "Launcher");
    // Act
    const error = await rejection(iam.send(new CreateRoleCommand({ RoleName: "launcher", AssumeRolePolicyDocument: launcherTrust })));
    // Assess
    expect(error).toBeInstanceOf(EntityAlreadyExistsException);
    expect(error.$metadata?.httpStatusCode).toBe(409);
  });

  it("refuses to delete a role that still has policies (DeleteConflict), then deletes it once they are gone", async () => {
    // Prepare
    await createLauncherRole(iam, "launcher");
    await iam.send(new PutRolePolicyCommand({ RoleName: "launcher", PolicyName: "describe", PolicyDocument: describeClustersPolicy }));
    await iam.send(new AttachRolePolicyCommand({ RoleName: "launcher", PolicyArn: "arn:aws:iam::aws:policy/ReadOnlyAccess" }));
    // Act
    const inlineConflict = await rejection(iam.send(new DeleteRoleCommand({ RoleName: "launcher" })));
    await iam.send(new DeleteRolePolicyCommand({ RoleName: "launcher", PolicyName: "describe" }));
    const attachedConflict = await rejection(iam.send(new DeleteRoleCommand({ RoleName: "launcher" })));
    await iam.send(new DetachRolePolicyCommand({ RoleName: "launcher", PolicyArn: "arn:aws:iam::aws:policy/ReadOnlyAccess" }));
    await iam.send(new DeleteRoleCommand({ RoleName: "launcher" }));
    // Assess
    expect(inlineConflict).toBeInstanceOf(DeleteConflictException);
    expect(inlineConflict.message).toBe("Cannot delete entity, must delete policies first.");
    expect(attachedConflict).toBeInstanceOf(DeleteConflictException);
    expect(aws.state.iam.roles.has("launcher")).toBe(false);
  });

  it("stores inline policies, returns them URL-encoded, and pages ListRolePolicies with Marker", async () => {
    // Prepare
    await createLauncherRole(iam, "launcher");
    for (const name of ["a", "b", "c"]) {
      await iam.send(new PutRolePolicyCommand({ RoleName: "launcher", PolicyName: name, PolicyDocument: describeClustersPolicy }));
    }
    // Act
    const { PolicyDocument } = await iam.send(new GetRolePolicyCommand({ RoleName: "launcher", PolicyName: "b" }));
    const pages: string[][] = [];
    for await (const page of paginateListRolePolicies({ client: iam, pageSize: 2 }, { RoleName: "launcher" }))
      pages.push(page.PolicyNames ?? []);
    const missing = await rejection(iam.send(new GetRolePolicyCommand({ RoleName: "launcher", PolicyName: "zzz" })));
    // Assess
    expect(decodeURIComponent(PolicyDocument!)).toBe(describeClustersPolicy);
    expect(pages).toEqual([["a", "b"], ["c"]]);
    expect(missing).toBeInstanceOf(NoSuchEntityException);
  });

  it("rejects policy documents IAM would reject (MalformedPolicyDocument) and names that break its rules (ValidationError)", async () => {
    // Prepare
    await createLauncherRole(iam, "launcher");
    // Act
    const badJson = await rejection(
      iam.send(new PutRolePolicyCommand({ RoleName: "launcher", PolicyName: "p", PolicyDocument: "{not json" })),
    );
    const principalInIdentityPolicy = await rejection(
      iam.send(new PutRolePolicyCommand({ RoleName: "launcher", PolicyName: "p", PolicyDocument: launcherTrust })),
    );
    const resourceInTrust = await rejection(
      iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: "launcher", PolicyDocument: describeClustersPolicy })),
    );
    const longName = await rejection(
      iam.send(new CreateRoleCommand({ RoleName: "r".repeat(65), AssumeRolePolicyDocument: launcherTrust })),
    );
    const badChars = await rejection(iam.send(new CreateRoleCommand({ RoleName: "no spaces", AssumeRolePolicyDocument: launcherTrust })));
    // Assess
    expect(badJson).toBeInstanceOf(MalformedPolicyDocumentException);
    expect(badJson.message).toBe("This policy contains invalid Json");
    expect(principalInIdentityPolicy).toBeInstanceOf(MalformedPolicyDocumentException);
    expect(resourceInTrust).toBeInstanceOf(MalformedPolicyDocumentException);
    expect(longName).toBeInstanceOf(IAMServiceException);
    expect(longName.name).toBe("ValidationError");
    expect(longName.message).toContain("Member must have length less than or equal to 64");
    expect(badChars.name).toBe("ValidationError");
  });

  it("rejects a trust policy naming a principal of this account that does not exist", async () => {
    // Prepare
    const trust = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/ghost` }, Action: "sts:AssumeRole" }],
    });
    // Act
    const error = await rejection(iam.send(new CreateRoleCommand({ RoleName: "r", AssumeRolePolicyDocument: trust })));
    // Assess
    expect(error).toBeInstanceOf(MalformedPolicyDocumentException);
    expect(error.message).toBe(`Invalid principal in policy: "AWS":"arn:aws:iam::${ACCOUNT}:role/ghost"`);
  });

  it("updates the trust policy, tags, untags and sets a permissions boundary that must exist", async () => {
    // Prepare
    await createLauncherRole(iam, "launcher");
    const { Policy } = await iam.send(new CreatePolicyCommand({ PolicyName: "boundary", PolicyDocument: describeClustersPolicy }));
    const newTrust = JSON.stringify(podIdentityTrust);
    // Act
    await iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: "launcher", PolicyDocument: newTrust }));
    await iam.send(
      new TagRoleCommand({
        RoleName: "launcher",
        Tags: [
          { Key: "a", Value: "1" },
          { Key: "b", Value: "2" },
        ],
      }),
    );
    await iam.send(new UntagRoleCommand({ RoleName: "launcher", TagKeys: ["a"] }));
    await iam.send(new PutRolePermissionsBoundaryCommand({ RoleName: "launcher", PermissionsBoundary: Policy!.Arn! }));
    const missingBoundary = await rejection(
      iam.send(
        new PutRolePermissionsBoundaryCommand({ RoleName: "launcher", PermissionsBoundary: `arn:aws:iam::${ACCOUNT}:policy/ghost` }),
      ),
    );
    const { Role } = await iam.send(new GetRoleCommand({ RoleName: "launcher" }));
    const { Tags } = await iam.send(new ListRoleTagsCommand({ RoleName: "launcher" }));
    // Assess
    expect(decodeURIComponent(Role!.AssumeRolePolicyDocument!)).toBe(newTrust);
    expect(Tags).toEqual([{ Key: "b", Value: "2" }]);
    expect(Role?.PermissionsBoundary).toEqual({ PermissionsBoundaryType: "Policy", PermissionsBoundaryArn: Policy!.Arn });
    expect(missingBoundary).toBeInstanceOf(NoSuchEntityException);
  });

  it("manages customer policies: attachment counts, and no deletion while attached", async () => {
    // Prepare
    await createLauncherRole(iam, "launcher");
    const { Policy } = await iam.send(new CreatePolicyCommand({ PolicyName: "eks-describe", PolicyDocument: describeClustersPolicy }));
    await iam.send(new AttachRolePolicyCommand({ RoleName: "launcher", PolicyArn: Policy!.Arn! }));
    // Act
    const attached = await iam.send(new GetPolicyCommand({ PolicyArn: Policy!.Arn! }));
    const { AttachedPolicies } = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: "launcher" }));
    const conflict = await rejection(iam.send(new DeletePolicyCommand({ PolicyArn: Policy!.Arn! })));
    const duplicate = await rejection(
      iam.send(new CreatePolicyCommand({ PolicyName: "eks-describe", PolicyDocument: describeClustersPolicy })),
    );
    // Assess
    expect(Policy?.Arn).toBe(`arn:aws:iam::${ACCOUNT}:policy/eks-describe`);
    expect(attached.Policy?.AttachmentCount).toBe(1);
    expect(AttachedPolicies).toEqual([{ PolicyName: "eks-describe", PolicyArn: Policy!.Arn }]);
    expect(conflict).toBeInstanceOf(DeleteConflictException);
    expect(duplicate).toBeInstanceOf(EntityAlreadyExistsException);
  });

  it("answers GetUser for the caller without a name, and creates and deletes users", async () => {
    // Act
    const me = await iam.send(new GetUserCommand({}));
    const created = await iam.send(new CreateUserCommand({ UserName: "seqera" }));
    await iam.send(new DeleteUserCommand({ UserName: "seqera" }));
    const gone = await rejection(iam.send(new GetUserCommand({ UserName: "seqera" })));
    // Assess
    expect(me.User?.Arn).toBe(ADMIN_ARN);
    expect(created.User?.Arn).toBe(`arn:aws:iam::${ACCOUNT}:user/seqera`);
    expect(gone).toBeInstanceOf(NoSuchEntityException);
  });

  it("lists the OIDC provider a seeded cluster registered, and refuses a duplicate", async () => {
    // Act
    const { OpenIDConnectProviderList } = await iam.send(new ListOpenIDConnectProvidersCommand({}));
    const provider = await iam.send(new GetOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: oidcProviderArn(ACCOUNT, ISSUER) }));
    const duplicate = await rejection(
      iam.send(new CreateOpenIDConnectProviderCommand({ Url: ISSUER, ClientIDList: ["sts.amazonaws.com"] })),
    );
    // Assess
    expect(OpenIDConnectProviderList).toEqual([{ Arn: oidcProviderArn(ACCOUNT, ISSUER) }]);
    expect(provider.Url).toBe(ISSUER.replace("https://", ""));
    expect(provider.ClientIDList).toEqual(["sts.amazonaws.com"]);
    expect(duplicate).toBeInstanceOf(EntityAlreadyExistsException);
  });

  it("seeds the cluster's node role in IAM with the worker policies attached", async () => {
    // Act
    const { Role } = await iam.send(new GetRoleCommand({ RoleName: "research-nodes" }));
    const { AttachedPolicies } = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: "research-nodes" }));
    // Assess
    expect(Role?.Arn).toBe(NODE_ROLE_ARN);
    expect(AttachedPolicies?.map((p) => p.PolicyName)).toEqual([
      "AmazonEKSWorkerNodePolicy",
      "AmazonEKS_CNI_Policy",
      "AmazonEC2ContainerRegistryReadOnly",
    ]);
  });
});
