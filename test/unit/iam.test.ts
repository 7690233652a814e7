import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import {
  CreateRoleCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  EntityAlreadyExistsException,
  GetRoleCommand,
  GetRolePolicyCommand,
  GetUserCommand,
  IAMClient,
  IAMServiceException,
  ListAttachedRolePoliciesCommand,
  ListOpenIDConnectProvidersCommand,
  ListRolePoliciesCommand,
  NoSuchEntityException,
  PutRolePermissionsBoundaryCommand,
  PutRolePolicyCommand,
  UpdateAssumeRolePolicyCommand,
  type CreateRoleCommandInput,
  type Role,
  type Tag,
} from "@aws-sdk/client-iam";
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  EKSClient,
  InvalidParameterException,
  ListPodIdentityAssociationsCommand,
  ResourceNotFoundException,
  UpdatePodIdentityAssociationCommand,
  type PodIdentityAssociation,
} from "@aws-sdk/client-eks";
import { apply, compensate } from "../../functions/steps/iam/index.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { iamPolicyName, ownershipTags, TAG_CREATED_BY, tagsToRecord } from "../../functions/lib/domain/naming.js";
import {
  fusionS3Policy,
  irsaTrustPolicy,
  launcherPermissionsPolicy,
  launcherTrustPolicy,
  oidcProviderArn,
  podIdentityTrustPolicy,
} from "../../functions/lib/domain/policies.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { ACCOUNT, DEPLOYMENT_ENV, OTHER_RUN, RUN, resolvedCluster, stepState, useEnv } from "../support/fixtures.js";

const iam = mockClient(IAMClient);
const eks = mockClient(EKSClient);

const ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const PROVIDER_ARN = `arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE`;
const LAUNCHER = "nfeks-genomics.research-launcher";
const WORKLOAD = "nfeks-genomics.research-workload";
const LAUNCHER_POLICY = iamPolicyName("nfeks", "genomics", "research", "launcher");
const FUSION_POLICY = iamPolicyName("nfeks", "genomics", "research", "fusion-s3");
const BOUNDARY = `arn:aws:iam::${ACCOUNT}:policy/platform-boundary`;

const CLUSTER = resolvedCluster({ oidcIssuer: ISSUER, authenticationMode: "API_AND_CONFIG_MAP" });

function stateFor(request: Record<string, unknown> = {}, executionName = RUN): WorkflowState {
  return stepState(request, executionName, { cluster: CLUSTER });
}

const FUSION_IRSA = { storage: { type: "fusion", bucket: "genomics-work" }, computeServiceAccount: "tower-compute-sa" };
const FUSION_POD_IDENTITY = { storage: { type: "fusion", bucket: "genomics-work", podIdentity: true }, computeServiceAccount: "tower-compute-sa" };

// ---------------------------------------------------------------- a small in-memory IAM and EKS

interface FakeRole {
  role: Role;
  inline: Map<string, string>;
  attached: string[];
}

const roles = new Map<string, FakeRole>();
let oidcProviders: string[] = [];
const associations = new Map<string, PodIdentityAssociation>();
let nextAssociation = 1;

function noSuchEntity(what: string) {
  return new NoSuchEntityException({ message: `The role with name ${what} cannot be found.`, $metadata: { httpStatusCode: 404 } });
}

function fakeRole(name: string, trust: unknown, tags: Tag[], extra: Partial<Role> = {}): FakeRole {
  return {
    role: {
      RoleName: name,
      RoleId: `AROA${name.toUpperCase().replace(/[^A-Z]/g, "")}`,
      Path: "/",
      Arn: `arn:aws:iam::${ACCOUNT}:role/${name}`,
      CreateDate: new Date(),
      AssumeRolePolicyDocument: encodeURIComponent(JSON.stringify(trust)),
      Tags: tags,
      ...extra,
    },
    inline: new Map(),
    attached: [],
  };
}

function seedRole(name: string, trust: unknown, tags: Tag[], inline: Record<string, unknown> = {}, attached: string[] = []): FakeRole {
  const entry = fakeRole(name, trust, tags);
  for (const [policyName, doc] of Object.entries(inline)) entry.inline.set(policyName, encodeURIComponent(JSON.stringify(doc)));
  entry.attached.push(...attached);
  roles.set(name, entry);
  return entry;
}

function installFakeIam(): void {
  iam.on(GetRoleCommand).callsFake(({ RoleName }) => {
    const entry = roles.get(RoleName);
    if (!entry) throw noSuchEntity(RoleName);
    return { Role: entry.role };
  });
  iam.on(GetUserCommand).callsFake(({ UserName }) => {
    if (UserName !== "ci") throw noSuchEntity(UserName);
    return { User: { UserName, UserId: "AIDA", Path: "/", Arn: `arn:aws:iam::${ACCOUNT}:user/ci`, CreateDate: new Date() } };
  });
  iam.on(CreateRoleCommand).callsFake((input: CreateRoleCommandInput) => {
    if (roles.has(input.RoleName!)) throw new EntityAlreadyExistsException({ message: "exists", $metadata: { httpStatusCode: 409 } });
    const entry = fakeRole(input.RoleName!, JSON.parse(input.AssumeRolePolicyDocument!), input.Tags ?? [], {
      ...(input.PermissionsBoundary ? { PermissionsBoundary: { PermissionsBoundaryArn: input.PermissionsBoundary, PermissionsBoundaryType: "PermissionsBoundaryPolicy" } } : {}),
    });
    roles.set(input.RoleName!, entry);
    return { Role: entry.role };
  });
  iam.on(PutRolePolicyCommand).callsFake(({ RoleName, PolicyName, PolicyDocument }) => {
    const entry = roles.get(RoleName);
    if (!entry) throw noSuchEntity(RoleName);
    entry.inline.set(PolicyName, encodeURIComponent(PolicyDocument));
    return {};
  });
  iam.on(GetRolePolicyCommand).callsFake(({ RoleName, PolicyName }) => {
    const doc = roles.get(RoleName)?.inline.get(PolicyName);
    if (!doc) throw noSuchEntity(`${RoleName}/${PolicyName}`);
    return { RoleName, PolicyName, PolicyDocument: doc };
  });
  iam.on(UpdateAssumeRolePolicyCommand).callsFake(({ RoleName, PolicyDocument }) => {
    const entry = roles.get(RoleName);
    if (!entry) throw noSuchEntity(RoleName);
    entry.role.AssumeRolePolicyDocument = encodeURIComponent(PolicyDocument);
    return {};
  });
  iam.on(PutRolePermissionsBoundaryCommand).callsFake(({ RoleName, PermissionsBoundary }) => {
    roles.get(RoleName)!.role.PermissionsBoundary = { PermissionsBoundaryArn: PermissionsBoundary, PermissionsBoundaryType: "PermissionsBoundaryPolicy" };
    return {};
  });
  iam.on(ListRolePoliciesCommand).callsFake(({ RoleName }) => {
    const entry = roles.get(RoleName);
    if (!entry) throw noSuchEntity(RoleName);
    return { PolicyNames: [...entry.inline.keys()], IsTruncated: false };
  });
  iam.on(DeleteRolePolicyCommand).callsFake(({ RoleName, PolicyName }) => {
    if (!roles.get(RoleName)?.inline.delete(PolicyName)) throw noSuchEntity(`${RoleName}/${PolicyName}`);
    return {};
  });
  iam.on(ListAttachedRolePoliciesCommand).callsFake(({ RoleName }) => {
    const entry = roles.get(RoleName);
    if (!entry) throw noSuchEntity(RoleName);
    return { AttachedPolicies: entry.attached.map((arn) => ({ PolicyArn: arn, PolicyName: arn.split("/").pop() })), IsTruncated: false };
  });
  iam.on(DetachRolePolicyCommand).callsFake(({ RoleName, PolicyArn }) => {
    const entry = roles.get(RoleName);
    if (!entry) throw noSuchEntity(RoleName);
    entry.attached = entry.attached.filter((a) => a !== PolicyArn);
    return {};
  });
  iam.on(DeleteRoleCommand).callsFake(({ RoleName }) => {
    const entry = roles.get(RoleName);
    if (!entry) throw noSuchEntity(RoleName);
    if (entry.inline.size || entry.attached.length) throw new IAMServiceException({ name: "DeleteConflict", message: "policies attached", $fault: "client", $metadata: { httpStatusCode: 409 } });
    roles.delete(RoleName);
    return {};
  });
  iam.on(ListOpenIDConnectProvidersCommand).callsFake(() => ({ OpenIDConnectProviderList: oidcProviders.map((Arn) => ({ Arn })) }));
}

function installFakeEks(): void {
  eks.on(ListPodIdentityAssociationsCommand).callsFake(({ clusterName, namespace, serviceAccount }) => ({
    associations: [...associations.values()]
      .filter((a) => a.clusterName === clusterName && (!namespace || a.namespace === namespace) && (!serviceAccount || a.serviceAccount === serviceAccount))
      .map(({ clusterName, namespace, serviceAccount, associationArn, associationId }) => ({ clusterName, namespace, serviceAccount, associationArn, associationId })),
  }));
  eks.on(DescribePodIdentityAssociationCommand).callsFake(({ associationId }) => {
    const association = associations.get(associationId);
    if (!association) throw new ResourceNotFoundException({ message: "not found", $metadata: { httpStatusCode: 404 } });
    return { association };
  });
  eks.on(CreatePodIdentityAssociationCommand).callsFake(({ clusterName, namespace, serviceAccount, roleArn, tags }) => {
    const associationId = `a-${nextAssociation++}`;
    const association = { clusterName, namespace, serviceAccount, roleArn, tags, associationId, associationArn: `arn:aws:eks:eu-west-1:${ACCOUNT}:podidentityassociation/research/${associationId}` };
    associations.set(associationId, association);
    return { association };
  });
  eks.on(UpdatePodIdentityAssociationCommand).callsFake(({ associationId, roleArn }) => {
    associations.get(associationId)!.roleArn = roleArn;
    return { association: associations.get(associationId) };
  });
  eks.on(DeletePodIdentityAssociationCommand).callsFake(({ associationId }) => {
    if (!associations.delete(associationId)) throw new ResourceNotFoundException({ message: "not found", $metadata: { httpStatusCode: 404 } });
    return {};
  });
}

/** A document as the fake IAM stores it (URL-encoded, as IAM returns it). */
function policyOf(document: string | undefined): unknown {
  return document === undefined ? undefined : JSON.parse(decodeURIComponent(document));
}

/** What another run left on an adopted role: a different trust and a DescribeCluster policy for another cluster. */
const PREVIOUS_TRUST = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "sts:AssumeRole", Condition: { StringEquals: { "sts:ExternalId": "kept" } } }] };
const PREVIOUS_LAUNCHER_POLICY = launcherPermissionsPolicy([`arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/old`]);

function createRoleInputs(): CreateRoleCommandInput[] {
  return iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input as CreateRoleCommandInput);
}

useEnv({ ...DEPLOYMENT_ENV, PERMISSIONS_BOUNDARY_ARN: undefined });

beforeEach(() => {
  iam.reset();
  eks.reset();
  resetClients();
  roles.clear();
  associations.clear();
  nextAssociation = 1;
  oidcProviders = [PROVIDER_ARN];
  installFakeIam();
  installFakeEks();
});

// ---------------------------------------------------------------- launcher

describe("CreateIamResources: launcher", () => {
  it("creates the launcher role, tagged with the ownership marks, with its trust and DescribeCluster policy", async () => {
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(iam).toHaveReceivedCommandTimes(CreateRoleCommand, 1);
    const [input] = createRoleInputs();
    expect(input.RoleName).toBe(LAUNCHER);
    expect(JSON.parse(input.AssumeRolePolicyDocument!)).toEqual(launcherTrustPolicy(ACCOUNT, "aws"));
    expect(input.Tags).toEqual(ownershipTags("genomics", RUN));
    expect(input.PermissionsBoundary).toBeUndefined();
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
      RoleName: LAUNCHER,
      PolicyName: LAUNCHER_POLICY,
      PolicyDocument: JSON.stringify(launcherPermissionsPolicy([CLUSTER.arn])),
    });
    expect(result).toEqual({
      launcherArn: `arn:aws:iam::${ACCOUNT}:role/${LAUNCHER}`,
      launcherKind: "role",
      launcherCreated: true,
      created: [`arn:aws:iam::${ACCOUNT}:role/${LAUNCHER}`],
    });
  });

  it("a role IAM says exists but cannot show yet is decided once more, then left to the state machine's retry", async () => {
    // Prepare: GetRole keeps answering NoSuchEntity while CreateRole keeps answering EntityAlreadyExists
    iam.on(CreateRoleCommand).rejects(new IAMServiceException({ name: "EntityAlreadyExists", message: `Role with name ${LAUNCHER} already exists.`, $fault: "client", $metadata: { httpStatusCode: 409 } }));
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
    seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", OTHER_RUN), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(iam).toHaveReceivedCommandWith(UpdateAssumeRolePolicyCommand, { RoleName: LAUNCHER, PolicyDocument: JSON.stringify(launcherTrustPolicy(ACCOUNT, "aws")) });
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, { RoleName: LAUNCHER, PolicyDocument: JSON.stringify(launcherPermissionsPolicy([CLUSTER.arn])) });
    expect(iam).toHaveReceivedCommandWith(PutRolePermissionsBoundaryCommand, { RoleName: LAUNCHER, PermissionsBoundary: BOUNDARY });
    expect(result.launcherCreated).toBe(false);
    expect(result.created).toEqual([]);
    expect(result.changed).toEqual([
      {
        roleName: LAUNCHER,
        previousBoundary: {},
        previousTrustPolicy: JSON.stringify(PREVIOUS_TRUST),
        previousInlinePolicy: { name: LAUNCHER_POLICY, document: JSON.stringify(PREVIOUS_LAUNCHER_POLICY) },
      },
    ]);
  });

  it("puts the permissions boundary on an adopted role before changing its trust or inline policy", async () => {
    // Prepare: IAM permissions may allow those writes only on roles that carry the boundary
    process.env.PERMISSIONS_BOUNDARY_ARN = BOUNDARY;
    seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", OTHER_RUN), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY }).role.PermissionsBoundary = {
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
    expect(result).toEqual({ launcherArn: `arn:aws:iam::${ACCOUNT}:role/${LAUNCHER}`, launcherKind: "role", launcherCreated: false, created: [] });
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
    expect(result.launcherArn).toBe(`arn:aws:iam::${ACCOUNT}:role/nfeks-genomics.other-launcher`);
    expect(result.changed).toBeUndefined();
    expect(iam).not.toHaveReceivedCommandWith(PutRolePolicyCommand, { RoleName: LAUNCHER });
    expect(roles.get(LAUNCHER)!.inline.get(LAUNCHER_POLICY)).toBe(researchPolicy);
    expect(policyOf(roles.get("nfeks-genomics.other-launcher")!.inline.get(iamPolicyName("nfeks", "genomics", "other", "launcher")))).toEqual(
      launcherPermissionsPolicy([other.arn]),
    );
  });

  it.each([
    ["no tags at all", [] as Tag[]],
    ["another tenant's marks", ownershipTags("proteomics", "proteomics-run-1")],
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

  it("uses an existing launcher role after checking it exists, creating nothing", async () => {
    // Prepare
    seedRole("seqera-launcher", {}, []);
    // Act
    const result = await apply(stateFor({ launcher: { mode: "existing", principalArn: `arn:aws:iam::${ACCOUNT}:role/team/seqera-launcher` } }));
    // Assess
    expect(iam).toHaveReceivedCommandWith(GetRoleCommand, { RoleName: "seqera-launcher" });
    expect(iam).not.toHaveReceivedCommand(CreateRoleCommand);
    expect(result).toEqual({
      launcherArn: `arn:aws:iam::${ACCOUNT}:role/team/seqera-launcher`,
      launcherKind: "role",
      launcherCreated: false,
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
    const error = await apply(stateFor({ launcher: { mode: "existing", principalArn: `arn:aws:iam::${ACCOUNT}:role/ghost` } })).catch((e: unknown) => e);
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
    iam.on(CreateRoleCommand).rejects(new IAMServiceException({ name: "Throttling", message: "Rate exceeded", $fault: "client", $metadata: { httpStatusCode: 400 } }));
    // Act
    const error = await apply(stateFor()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "Throttled" });
  });

  it("adopts the role when a concurrent attempt created it between read and write", async () => {
    // Prepare: the first GetRole misses, CreateRole then finds the role already there (this run's tags)
    seedRole(LAUNCHER, launcherTrustPolicy(ACCOUNT, "aws"), ownershipTags("genomics", RUN), {
      [LAUNCHER_POLICY]: launcherPermissionsPolicy([CLUSTER.arn]),
    });
    iam.on(GetRoleCommand).rejectsOnce(noSuchEntity(LAUNCHER)).callsFake(({ RoleName }) => ({ Role: roles.get(RoleName)!.role }));
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(iam).toHaveReceivedCommandTimes(CreateRoleCommand, 1);
    expect(iam).toHaveReceivedCommandTimes(GetRoleCommand, 2);
    expect(result.launcherCreated).toBe(true);
    expect(roles.size).toBe(1);
  });
});

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
    expect(workload.Tags).toEqual(ownershipTags("genomics", RUN));
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
      RoleName: WORKLOAD,
      PolicyName: FUSION_POLICY,
      PolicyDocument: JSON.stringify(fusionS3Policy({ bucket: "genomics-work", partition: "aws" })),
    });
    expect(result.workloadRoleArn).toBe(`arn:aws:iam::${ACCOUNT}:role/${WORKLOAD}`);
    expect(result.created).toEqual([`arn:aws:iam::${ACCOUNT}:role/${LAUNCHER}`, `arn:aws:iam::${ACCOUNT}:role/${WORKLOAD}`]);
    expect(eks).not.toHaveReceivedCommand(CreatePodIdentityAssociationCommand);
  });

  it("IRSA: refuses when the OIDC provider is not registered in IAM (NotAllowed, says how to fix it)", async () => {
    // Prepare
    oidcProviders = [`arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/SOMEOTHERCLUSTER`];
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
    expect(JSON.parse(workload.AssumeRolePolicyDocument!)).toEqual(podIdentityTrustPolicy());
    expect(iam).not.toHaveReceivedCommand(ListOpenIDConnectProvidersCommand);
    for (const serviceAccount of ["tower-launcher-sa", "tower-compute-sa"]) {
      expect(eks).toHaveReceivedCommandWith(CreatePodIdentityAssociationCommand, {
        clusterName: "research",
        namespace: "tower-nf",
        serviceAccount,
        roleArn: `arn:aws:iam::${ACCOUNT}:role/${WORKLOAD}`,
        tags: tagsToRecord(ownershipTags("genomics", RUN)),
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

  it("IamNotYetConsistent when EKS says the new role cannot be assumed yet", async () => {
    // Prepare
    eks.on(CreatePodIdentityAssociationCommand).rejects(
      new InvalidParameterException({
        message: `Role arn:aws:iam::${ACCOUNT}:role/${WORKLOAD} cannot be assumed by principal pods.eks.amazonaws.com`,
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const error = await apply(stateFor(FUSION_POD_IDENTITY)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "IamNotYetConsistent" });
    // The half-made role carries this run's mark, so the compensator will find it.
    expect(tagsToRecord(roles.get(WORKLOAD)!.role.Tags)[TAG_CREATED_BY]).toBe(tagsToRecord(ownershipTags("genomics", RUN))[TAG_CREATED_BY]);
  });

  it("IamNotYetConsistent when IAM rejects a trust policy principal as invalid", async () => {
    // Prepare
    iam.on(CreateRoleCommand).rejects(
      new IAMServiceException({ name: "MalformedPolicyDocument", message: "Invalid principal in policy: \"Federated\"", $fault: "client", $metadata: { httpStatusCode: 400 } }),
    );
    // Act
    const error = await apply(stateFor(FUSION_IRSA)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "IamNotYetConsistent" });
  });
});

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
    expect(iam).toHaveReceivedCommandWith(DetachRolePolicyCommand, { RoleName: LAUNCHER, PolicyArn: `arn:aws:iam::${ACCOUNT}:policy/extra` });
    expect(result).toEqual({ undone: [`IAM role ${WORKLOAD}`, `IAM role ${LAUNCHER}`], kept: [] });
  });

  it("keeps roles it did not create: adopted ones and foreign ones", async () => {
    // Prepare
    seedRole(LAUNCHER, {}, ownershipTags("genomics", "genomics-run-0"), { p: {} });
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
    iam.on(PutRolePolicyCommand).rejects(new IAMServiceException({ name: "ServiceFailure", message: "boom", $fault: "server", $metadata: { httpStatusCode: 500 } }));
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
      tags: tagsToRecord(ownershipTags("genomics", "genomics-run-0")),
    });
    // Act
    const result = await compensate(stateFor(FUSION_POD_IDENTITY));
    // Assess
    for (const id of ours) expect(associations.has(id)).toBe(false);
    expect(associations.has("a-other")).toBe(true);
    expect(result.undone).toEqual(expect.arrayContaining([expect.stringContaining("a-1"), expect.stringContaining("a-2"), `IAM role ${WORKLOAD}`, `IAM role ${LAUNCHER}`]));
    expect(result.kept).toEqual([expect.stringContaining("a-other")]);
    const lastAssociationDeleted = eks.commandCalls(DeletePodIdentityAssociationCommand).at(-1)!;
    const firstRoleDeleted = iam.commandCalls(DeleteRoleCommand)[0];
    expect(lastAssociationDeleted.calledBefore(firstRoleDeleted)).toBe(true);
  });

  it("puts back the trust and inline policy an adopted role had before this run, keeps the boundary, and changes nothing when run again", async () => {
    // Prepare
    process.env.PERMISSIONS_BOUNDARY_ARN = BOUNDARY;
    seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", OTHER_RUN), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
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
    seedRole(WORKLOAD, previousTrust, ownershipTags("genomics", OTHER_RUN));
    const applied = await apply(stateFor(FUSION_IRSA));
    // Act
    const result = await compensate(stepState(FUSION_IRSA, RUN, { cluster: CLUSTER, iam: applied }));
    // Assess
    expect(applied.changed).toEqual([{ roleName: WORKLOAD, previousTrustPolicy: JSON.stringify(previousTrust), previousInlinePolicy: { name: FUSION_POLICY } }]);
    expect(roles.has(LAUNCHER)).toBe(false);
    expect(policyOf(roles.get(WORKLOAD)!.role.AssumeRolePolicyDocument)).toEqual(previousTrust);
    expect(roles.get(WORKLOAD)!.inline.size).toBe(0);
    expect(result.undone).toEqual([`IAM role ${WORKLOAD}: inline policy ${FUSION_POLICY} removed, trust policy restored`, `IAM role ${LAUNCHER}`]);
  });

  it("a step that fails after changing an adopted role puts the previous documents back itself (the compensator gets no $.iam)", async () => {
    // Prepare: the launcher is adopted and changed, then the workload role cannot be made
    seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags("genomics", OTHER_RUN), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
    oidcProviders = [];
    // Act
    const error = await apply(stateFor(FUSION_IRSA)).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed" });
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, { RoleName: LAUNCHER, PolicyDocument: JSON.stringify(launcherPermissionsPolicy([CLUSTER.arn])) });
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
      tags: tagsToRecord(ownershipTags("genomics", OTHER_RUN)),
    });
    const applied = await apply(stateFor(FUSION_POD_IDENTITY));
    expect(associations.get("a-old")!.roleArn).toBe(`arn:aws:iam::${ACCOUNT}:role/${WORKLOAD}`);
    // Act
    const result = await compensate(stepState(FUSION_POD_IDENTITY, RUN, { cluster: CLUSTER, iam: applied }));
    // Assess
    expect(applied.changedAssociations).toEqual([{ associationId: "a-old", previousRoleArn }]);
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
