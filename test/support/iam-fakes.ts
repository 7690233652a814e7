/**
 * A small in-memory IAM and EKS (Pod Identity) for the IAM step's unit tests. The step is built with
 * `createIamStep` around two SDK clients whose calls aws-sdk-client-mock answers from the maps below
 * (only those two instances are mocked, so a call that bypassed the factory's clients would not be
 * answered). `useFakeIamAndEks()` sets the deployment and resets the fakes before each test.
 */
import { beforeEach } from "vitest";
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
  ListPodIdentityAssociationsCommand,
  ResourceNotFoundException,
  UpdatePodIdentityAssociationCommand,
  type PodIdentityAssociation,
} from "@aws-sdk/client-eks";
import { createIamStep } from "../../functions/steps/iam/index.js";
import { IAM_ROLE_PATH, iamPolicyName, productRoleArn } from "../../functions/lib/domain/naming.js";
import { launcherPermissionsPolicy } from "../../functions/lib/domain/policies.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { ACCOUNT, DEPLOYMENT_ENV, RUN, resolvedCluster, stepState, useEnv } from "./fixtures.js";

const iamClient = new IAMClient({ region: "eu-west-1" });
const eksClient = new EKSClient({ region: "eu-west-1" });
export const iam = mockClient(iamClient);
export const eks = mockClient(eksClient);

/** The mocked clients themselves, for another step that takes its clients the same way (test/security). */
export const fakeEksClient = eksClient;
export const fakeIamClient = iamClient;

/** The step's handlers, given the fake clients (the configuration is still read from the environment on each call). */
export const { apply, compensate } = createIamStep({ iam: iamClient, eks: eksClient });

export const ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
export const PROVIDER_ARN = `arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE`;
export const LAUNCHER = "nfeks-genomics.research-launcher";
export const WORKLOAD = "nfeks-genomics.research-workload";
export const LAUNCHER_POLICY = iamPolicyName("nfeks", "genomics", "research", "launcher");
export const FUSION_POLICY = iamPolicyName("nfeks", "genomics", "research", "fusion-s3");
/** The product's roles' ARNs: under the product's IAM path. */
export const LAUNCHER_ARN = productRoleArn("aws", ACCOUNT, LAUNCHER);
export const WORKLOAD_ARN = productRoleArn("aws", ACCOUNT, WORKLOAD);
/** An operator's boundary (PERMISSIONS_BOUNDARY_ARN), and the stack's own, which the deployment sets when the operator names none. */
export const BOUNDARY = `arn:aws:iam::${ACCOUNT}:policy/platform-boundary`;
export const STACK_BOUNDARY = `arn:aws:iam::${ACCOUNT}:policy/test-nf-eks-provisioner-TenantRoleBoundary-ABC123`;

export const CLUSTER = resolvedCluster({ oidcIssuer: ISSUER, authenticationMode: "API_AND_CONFIG_MAP" });

export function stateFor(request: Record<string, unknown> = {}, executionName = RUN): WorkflowState {
  return stepState(request, executionName, { cluster: CLUSTER });
}

export const FUSION_IRSA = { storage: { type: "fusion", bucket: "genomics-work" }, computeServiceAccount: "tower-compute-sa" };
export const FUSION_POD_IDENTITY = {
  storage: { type: "fusion", bucket: "genomics-work", podIdentity: true },
  computeServiceAccount: "tower-compute-sa",
};

// ---------------------------------------------------------------- a small in-memory IAM and EKS

interface FakeRole {
  role: Role;
  inline: Map<string, string>;
  attached: string[];
}

export const roles = new Map<string, FakeRole>();
let oidcProviders: string[] = [];
export const associations = new Map<string, PodIdentityAssociation>();
let nextAssociation = 1;

/** The OIDC providers IAM lists (the cluster's own by default). */
export function setOidcProviders(arns: string[]): void {
  oidcProviders = arns;
}

export function noSuchEntity(what: string) {
  return new NoSuchEntityException({ message: `The role with name ${what} cannot be found.`, $metadata: { httpStatusCode: 404 } });
}

function fakeRole(name: string, trust: unknown, tags: Tag[], extra: Partial<Role> = {}): FakeRole {
  const path = extra.Path ?? "/";
  return {
    role: {
      RoleName: name,
      RoleId: `AROA${name.toUpperCase().replace(/[^A-Z]/g, "")}`,
      Path: path,
      Arn: `arn:aws:iam::${ACCOUNT}:role${path}${name}`,
      CreateDate: new Date(),
      AssumeRolePolicyDocument: encodeURIComponent(JSON.stringify(trust)),
      Tags: tags,
      ...extra,
    },
    inline: new Map(),
    attached: [],
  };
}

/** A role already in the account; under the product's path unless `path` says otherwise (role names are unique whatever the path). */
export function seedRole(
  name: string,
  trust: unknown,
  tags: Tag[],
  inline: Record<string, unknown> = {},
  attached: string[] = [],
  path = IAM_ROLE_PATH,
): FakeRole {
  const entry = fakeRole(name, trust, tags, { Path: path });
  for (const [policyName, doc] of Object.entries(inline)) entry.inline.set(policyName, encodeURIComponent(JSON.stringify(doc)));
  entry.attached.push(...attached);
  roles.set(name, entry);
  return entry;
}

export function installFakeIam(): void {
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
      ...(input.Path ? { Path: input.Path } : {}),
      ...(input.PermissionsBoundary
        ? {
            PermissionsBoundary: {
              PermissionsBoundaryArn: input.PermissionsBoundary,
              PermissionsBoundaryType: "PermissionsBoundaryPolicy",
            },
          }
        : {}),
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
    roles.get(RoleName)!.role.PermissionsBoundary = {
      PermissionsBoundaryArn: PermissionsBoundary,
      PermissionsBoundaryType: "PermissionsBoundaryPolicy",
    };
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
    if (entry.inline.size || entry.attached.length)
      throw new IAMServiceException({
        name: "DeleteConflict",
        message: "policies attached",
        $fault: "client",
        $metadata: { httpStatusCode: 409 },
      });
    roles.delete(RoleName);
    return {};
  });
  iam.on(ListOpenIDConnectProvidersCommand).callsFake(() => ({ OpenIDConnectProviderList: oidcProviders.map((Arn) => ({ Arn })) }));
}

export function installFakePodIdentityAssociations(): void {
  eks.on(ListPodIdentityAssociationsCommand).callsFake(({ clusterName, namespace, serviceAccount }) => ({
    associations: [...associations.values()]
      .filter(
        (a) =>
          a.clusterName === clusterName &&
          (!namespace || a.namespace === namespace) &&
          (!serviceAccount || a.serviceAccount === serviceAccount),
      )
      .map(({ clusterName, namespace, serviceAccount, associationArn, associationId }) => ({
        clusterName,
        namespace,
        serviceAccount,
        associationArn,
        associationId,
      })),
  }));
  eks.on(DescribePodIdentityAssociationCommand).callsFake(({ associationId }) => {
    const association = associations.get(associationId);
    if (!association) throw new ResourceNotFoundException({ message: "not found", $metadata: { httpStatusCode: 404 } });
    return { association };
  });
  eks.on(CreatePodIdentityAssociationCommand).callsFake(({ clusterName, namespace, serviceAccount, roleArn, tags, disableSessionTags }) => {
    const associationId = `a-${nextAssociation++}`;
    const association = {
      clusterName,
      namespace,
      serviceAccount,
      roleArn,
      tags,
      disableSessionTags: disableSessionTags ?? false,
      associationId,
      associationArn: `arn:aws:eks:eu-west-1:${ACCOUNT}:podidentityassociation/research/${associationId}`,
    };
    associations.set(associationId, association);
    return { association };
  });
  eks.on(UpdatePodIdentityAssociationCommand).callsFake(({ associationId, roleArn }) => {
    associations.get(associationId)!.roleArn = roleArn;
    return { association: associations.get(associationId) };
  });
  eks.on(DeletePodIdentityAssociationCommand).callsFake(({ associationId }) => {
    if (!associations.delete(associationId))
      throw new ResourceNotFoundException({ message: "not found", $metadata: { httpStatusCode: 404 } });
    return {};
  });
}

/** A document as the fake IAM stores it (URL-encoded, as IAM returns it). */
export function policyOf(document: string | undefined): unknown {
  return document === undefined ? undefined : JSON.parse(decodeURIComponent(document));
}

/** What another run left on an adopted role: a different trust and a DescribeCluster policy for another cluster. */
export const PREVIOUS_TRUST = {
  Version: "2012-10-17",
  Statement: [
    {
      Effect: "Allow",
      Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
      Action: "sts:AssumeRole",
      Condition: { StringEquals: { "sts:ExternalId": "kept" } },
    },
  ],
};
export const PREVIOUS_LAUNCHER_POLICY = launcherPermissionsPolicy([`arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/old`]);

export function createRoleInputs(): CreateRoleCommandInput[] {
  return iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input as CreateRoleCommandInput);
}

/** The deployment (the stack's own permissions boundary unless a test sets the operator's) and empty fakes before each test. */
export function useFakeIamAndEks(): void {
  useEnv({ ...DEPLOYMENT_ENV, PERMISSIONS_BOUNDARY_ARN: STACK_BOUNDARY });
  beforeEach(() => {
    iam.reset();
    eks.reset();
    roles.clear();
    associations.clear();
    nextAssociation = 1;
    oidcProviders = [PROVIDER_ARN];
    installFakeIam();
    installFakePodIdentityAssociations();
  });
}
