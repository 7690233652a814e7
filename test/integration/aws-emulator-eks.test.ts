/**
 * The AWS emulator's EKS (REST JSON) through the real EKSClient: clusters, access entries and their policies, Pod
 * Identity associations and tags, with EKS's exceptions, idempotency tokens and the IAM propagation delay.
 */
import { describe, expect, it } from "vitest";
import { CreateRoleCommand, type IAMClient, MalformedPolicyDocumentException } from "@aws-sdk/client-iam";
import {
  AssociateAccessPolicyCommand,
  CreateAccessEntryCommand,
  CreatePodIdentityAssociationCommand,
  DeleteAccessEntryCommand,
  DeletePodIdentityAssociationCommand,
  DescribeAccessEntryCommand,
  DescribeClusterCommand,
  DescribePodIdentityAssociationCommand,
  DisassociateAccessPolicyCommand,
  EKSClient,
  InvalidParameterException,
  InvalidRequestException,
  ListAccessEntriesCommand,
  ListAssociatedAccessPoliciesCommand,
  ListClustersCommand,
  ListTagsForResourceCommand,
  NotFoundException,
  ResourceInUseException,
  ResourceNotFoundException,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateAccessEntryCommand,
  UpdatePodIdentityAssociationCommand,
  paginateListAccessEntries,
  paginateListPodIdentityAssociations,
} from "@aws-sdk/client-eks";
import { IamNotYetConsistent } from "../../functions/lib/domain/errors.js";
import { normaliseError } from "../../functions/lib/workflow/normalise-error.js";
import type { AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import {
  ACCOUNT,
  podIdentityTrust,
  ADMIN_ARN,
  createLauncherRole,
  ISSUER,
  NODE_ROLE_ARN,
  REGION,
  rejection,
  RESEARCH,
  useAwsEmulator,
} from "../support/aws-emulator-clients.js";

let aws: AwsEmulator;
let iam: IAMClient;
let eks: EKSClient;
useAwsEmulator((started) => ({ aws, iam, eks } = started));

const VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy";

describe("EKS (REST JSON)", () => {
  it("describes a seeded cluster and lists clusters only in the region the request is signed for", async () => {
    // Prepare
    const elsewhere = new EKSClient({ endpoint: aws.url, region: "us-east-1", maxAttempts: 1 });
    // Act
    const { cluster } = await eks.send(new DescribeClusterCommand({ name: "research" }));
    const here = await eks.send(new ListClustersCommand({}));
    const there = await elsewhere.send(new ListClustersCommand({}));
    const notThere = await rejection(elsewhere.send(new DescribeClusterCommand({ name: "research" })));
    elsewhere.destroy();
    // Assess
    expect(cluster).toMatchObject({
      name: "research",
      arn: `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`,
      status: "ACTIVE",
      endpoint: RESEARCH.endpoint,
      version: "1.31",
      certificateAuthority: { data: RESEARCH.certificateAuthority },
      identity: { oidc: { issuer: ISSUER } },
      accessConfig: { authenticationMode: "API_AND_CONFIG_MAP" },
    });
    expect(cluster?.createdAt).toBeInstanceOf(Date);
    expect(here.clusters).toEqual(["legacy", "research"]);
    expect(there.clusters).toEqual([]);
    expect(notThere).toBeInstanceOf(ResourceNotFoundException);
  });

  it("raises ResourceNotFoundException (404) with the cluster name for an unknown cluster", async () => {
    // Act
    const error = await rejection(eks.send(new DescribeClusterCommand({ name: "ghost" })));
    // Assess
    expect(error).toBeInstanceOf(ResourceNotFoundException);
    expect(error.message).toBe("No cluster found for name: ghost.");
    expect((error as ResourceNotFoundException).clusterName).toBe("ghost");
    expect(error.$metadata?.httpStatusCode).toBe(404);
  });

  it("seeds the creator's admin entry and the node role's EC2_LINUX entry in API modes", async () => {
    // Act
    const { accessEntries } = await eks.send(new ListAccessEntriesCommand({ clusterName: "research" }));
    const node = await eks.send(new DescribeAccessEntryCommand({ clusterName: "research", principalArn: NODE_ROLE_ARN }));
    const admin = await eks.send(new ListAssociatedAccessPoliciesCommand({ clusterName: "research", principalArn: ADMIN_ARN }));
    // Assess
    expect(accessEntries).toEqual([ADMIN_ARN, NODE_ROLE_ARN]);
    expect(node.accessEntry).toMatchObject({
      type: "EC2_LINUX",
      kubernetesGroups: ["system:nodes"],
      username: "system:node:{{EC2PrivateDNSName}}",
    });
    expect(admin.associatedAccessPolicies?.map((p) => p.policyArn)).toEqual([
      "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
    ]);
  });

  it("runs an access entry through create, describe, update, policy association and delete", async () => {
    // Prepare
    const principalArn = await createLauncherRole(iam);
    // Act
    const { accessEntry } = await eks.send(
      new CreateAccessEntryCommand({
        clusterName: "research",
        principalArn,
        kubernetesGroups: ["tower-launcher-role"],
        username: "tower-launcher-user",
        tags: { "nf-eks-provisioner/tenant": "genomics" },
      }),
    );
    const duplicate = await rejection(eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn })));
    const updated = await eks.send(
      new UpdateAccessEntryCommand({ clusterName: "research", principalArn, kubernetesGroups: ["tower-launcher-role", "viewers"] }),
    );
    const associated = await eks.send(
      new AssociateAccessPolicyCommand({
        clusterName: "research",
        principalArn,
        policyArn: VIEW_POLICY,
        accessScope: { type: "namespace", namespaces: ["tower-nf"] },
      }),
    );
    const byPolicy = await eks.send(new ListAccessEntriesCommand({ clusterName: "research", associatedPolicyArn: VIEW_POLICY }));
    await eks.send(new DisassociateAccessPolicyCommand({ clusterName: "research", principalArn, policyArn: VIEW_POLICY }));
    const afterDisassociate = await eks.send(new ListAssociatedAccessPoliciesCommand({ clusterName: "research", principalArn }));
    await eks.send(new DeleteAccessEntryCommand({ clusterName: "research", principalArn }));
    const gone = await rejection(eks.send(new DescribeAccessEntryCommand({ clusterName: "research", principalArn })));
    // Assess
    expect(accessEntry).toMatchObject({
      clusterName: "research",
      principalArn,
      kubernetesGroups: ["tower-launcher-role"],
      username: "tower-launcher-user",
      type: "STANDARD",
      tags: { "nf-eks-provisioner/tenant": "genomics" },
    });
    expect(accessEntry?.accessEntryArn).toMatch(
      new RegExp(`^arn:aws:eks:${REGION}:${ACCOUNT}:access-entry/research/role/${ACCOUNT}/nfeks-genomics-launcher/`),
    );
    expect(duplicate).toBeInstanceOf(ResourceInUseException);
    expect(duplicate.$metadata?.httpStatusCode).toBe(409);
    expect(updated.accessEntry?.kubernetesGroups).toEqual(["tower-launcher-role", "viewers"]);
    expect(associated.associatedAccessPolicy?.accessScope).toEqual({ type: "namespace", namespaces: ["tower-nf"] });
    expect(byPolicy.accessEntries).toEqual([principalArn]);
    expect(afterDisassociate.associatedAccessPolicies).toEqual([]);
    expect(gone).toBeInstanceOf(ResourceNotFoundException);
  });

  it("gives a role's access entry the assumed-role username EKS defaults to", async () => {
    // Prepare
    const principalArn = await createLauncherRole(iam);
    // Act
    const { accessEntry } = await eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn }));
    // Assess
    expect(accessEntry?.username).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-genomics-launcher/{{SessionName}}`);
    expect(accessEntry?.kubernetesGroups).toEqual([]);
  });

  it("answers a create repeated with the same clientRequestToken with the entry it created", async () => {
    // Prepare
    const principalArn = await createLauncherRole(iam);
    const input = { clusterName: "research", principalArn, clientRequestToken: "token-1" };
    // Act
    const first = await eks.send(new CreateAccessEntryCommand(input));
    const again = await eks.send(new CreateAccessEntryCommand(input));
    // Assess
    expect(again.accessEntry?.accessEntryArn).toBe(first.accessEntry?.accessEntryArn);
  });

  it("refuses principals IAM does not know, and ones created less than propagationDelayMs ago, as EKS does", async () => {
    // Prepare
    aws.state.propagationDelayMs = 60_000;
    const fresh = await createLauncherRole(iam, "just-created");
    // Act
    const unknown = await rejection(
      eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn: `arn:aws:iam::${ACCOUNT}:role/ghost` })),
    );
    const propagating = await rejection(eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn: fresh })));
    aws.state.iam.roles.get("just-created")!.visibleAt = Date.now() - 1; // the delay has passed
    const later = await eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn: fresh }));
    // Assess
    expect(unknown).toBeInstanceOf(InvalidParameterException);
    expect(propagating).toBeInstanceOf(InvalidParameterException);
    expect(propagating.message).toBe("The specified principalArn is invalid: invalid principal");
    // The product reads this answer as IAM not having caught up yet, and retries.
    expect(normaliseError(propagating)).toBeInstanceOf(IamNotYetConsistent);
    expect(later.accessEntry?.principalArn).toBe(fresh);
  });

  it("applies the propagation delay to trust policies naming a just-created role (MalformedPolicyDocument → IamNotYetConsistent)", async () => {
    // Prepare
    aws.state.propagationDelayMs = 60_000;
    const fresh = await createLauncherRole(iam, "just-created");
    const trust = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { AWS: fresh }, Action: "sts:AssumeRole" }],
    });
    // Act
    const error = await rejection(iam.send(new CreateRoleCommand({ RoleName: "trusting", AssumeRolePolicyDocument: trust })));
    // Assess
    expect(error).toBeInstanceOf(MalformedPolicyDocumentException);
    expect(normaliseError(error)).toBeInstanceOf(IamNotYetConsistent);
  });

  it("refuses access entries on a CONFIG_MAP cluster and system: groups", async () => {
    // Prepare
    const principalArn = await createLauncherRole(iam);
    // Act
    const configMapOnly = await rejection(eks.send(new CreateAccessEntryCommand({ clusterName: "legacy", principalArn })));
    const systemGroup = await rejection(
      eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn, kubernetesGroups: ["system:masters"] })),
    );
    // Assess
    expect(configMapOnly).toBeInstanceOf(InvalidRequestException);
    expect(configMapOnly.message).toContain("authentication mode");
    expect(systemGroup).toBeInstanceOf(InvalidParameterException);
    expect(aws.state.eks.clusters.get(`${REGION}/research`)!.accessEntries.has(principalArn)).toBe(false);
  });

  it("pages ListAccessEntries with nextToken", async () => {
    // Prepare
    for (const name of ["r1", "r2", "r3"]) {
      await eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn: await createLauncherRole(iam, name) }));
    }
    // Act
    const pages: string[][] = [];
    for await (const page of paginateListAccessEntries({ client: eks, pageSize: 2 }, { clusterName: "research" }))
      pages.push(page.accessEntries ?? []);
    // Assess
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages.flat()).toContain(`arn:aws:iam::${ACCOUNT}:role/r3`);
  });

  it("runs a Pod Identity association through create, list, describe, update and delete", async () => {
    // Prepare
    const { Role } = await iam.send(
      new CreateRoleCommand({ RoleName: "workload", AssumeRolePolicyDocument: JSON.stringify(podIdentityTrust) }),
    );
    const { Role: other } = await iam.send(
      new CreateRoleCommand({ RoleName: "workload-2", AssumeRolePolicyDocument: JSON.stringify(podIdentityTrust) }),
    );
    // Act
    const { association } = await eks.send(
      new CreatePodIdentityAssociationCommand({
        clusterName: "research",
        namespace: "tower-nf",
        serviceAccount: "tower-launcher-sa",
        roleArn: Role!.Arn!,
        tags: { t: "1" },
      }),
    );
    const clash = await rejection(
      eks.send(
        new CreatePodIdentityAssociationCommand({
          clusterName: "research",
          namespace: "tower-nf",
          serviceAccount: "tower-launcher-sa",
          roleArn: Role!.Arn!,
        }),
      ),
    );
    const listed: string[] = [];
    for await (const page of paginateListPodIdentityAssociations(
      { client: eks },
      { clusterName: "research", namespace: "tower-nf", serviceAccount: "tower-launcher-sa" },
    )) {
      listed.push(...(page.associations ?? []).map((a) => a.associationId!));
    }
    const otherNamespace = await eks.send(
      new DescribePodIdentityAssociationCommand({ clusterName: "research", associationId: association!.associationId! }),
    );
    const updated = await eks.send(
      new UpdatePodIdentityAssociationCommand({
        clusterName: "research",
        associationId: association!.associationId!,
        roleArn: other!.Arn!,
      }),
    );
    const deleted = await eks.send(
      new DeletePodIdentityAssociationCommand({ clusterName: "research", associationId: association!.associationId! }),
    );
    const gone = await rejection(
      eks.send(new DescribePodIdentityAssociationCommand({ clusterName: "research", associationId: association!.associationId! })),
    );
    // Assess
    expect(association?.associationId).toMatch(/^a-[a-z0-9]{17}$/);
    expect(association?.associationArn).toBe(
      `arn:aws:eks:${REGION}:${ACCOUNT}:podidentityassociation/research/${association?.associationId}`,
    );
    expect(clash).toBeInstanceOf(ResourceInUseException);
    expect(listed).toEqual([association!.associationId]);
    expect(otherNamespace.association?.tags).toEqual({ t: "1" });
    expect(updated.association?.roleArn).toBe(other!.Arn);
    expect(deleted.association?.associationId).toBe(association!.associationId);
    expect(gone).toBeInstanceOf(ResourceNotFoundException);
  });

  it("refuses a Pod Identity role that the Pod Identity agent could not assume", async () => {
    // Prepare
    const principalArn = await createLauncherRole(iam, "not-for-pods");
    // Act
    const error = await rejection(
      eks.send(
        new CreatePodIdentityAssociationCommand({
          clusterName: "research",
          namespace: "tower-nf",
          serviceAccount: "sa",
          roleArn: principalArn,
        }),
      ),
    );
    // Assess
    expect(error).toBeInstanceOf(InvalidParameterException);
    expect(error.message).toBe(`Role ${principalArn} cannot be assumed by principal pods.eks.amazonaws.com`);
  });

  it("tags and untags clusters and access entries by ARN, and answers NotFoundException for unknown ARNs", async () => {
    // Prepare
    const clusterArn = `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`;
    const { accessEntry } = await eks.send(
      new CreateAccessEntryCommand({ clusterName: "research", principalArn: await createLauncherRole(iam), tags: { a: "1" } }),
    );
    // Act
    await eks.send(new TagResourceCommand({ resourceArn: clusterArn, tags: { team: "genomics", tier: "dev" } }));
    await eks.send(new UntagResourceCommand({ resourceArn: clusterArn, tagKeys: ["tier"] }));
    await eks.send(new TagResourceCommand({ resourceArn: accessEntry!.accessEntryArn!, tags: { b: "2" } }));
    const clusterTags = await eks.send(new ListTagsForResourceCommand({ resourceArn: clusterArn }));
    const entryTags = await eks.send(new ListTagsForResourceCommand({ resourceArn: accessEntry!.accessEntryArn! }));
    const unknown = await rejection(
      eks.send(new ListTagsForResourceCommand({ resourceArn: `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/ghost` })),
    );
    // Assess
    expect(clusterTags.tags).toEqual({ team: "genomics" });
    expect(entryTags.tags).toEqual({ a: "1", b: "2" });
    expect(unknown).toBeInstanceOf(NotFoundException);
  });
});
