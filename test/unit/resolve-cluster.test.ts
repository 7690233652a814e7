import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import { DescribeClusterCommand, EKSClient, ResourceNotFoundException, type Cluster } from "@aws-sdk/client-eks";
import * as resolveClusterModule from "../../functions/steps/resolve-cluster.js";
import { createResolveClusterStep } from "../../functions/steps/resolve-cluster.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { loadDeploymentConfig } from "../../functions/lib/domain/deploy-config.js";
import { DEPLOYMENT_ENV, stepState, useEnv } from "../support/fixtures.js";

/** The EKS client handed to the step through its factory, its calls mocked. */
const eksClient = new EKSClient({ region: "eu-west-1" });
const eks = mockClient(eksClient);
const { apply } = createResolveClusterStep({ eks: eksClient });

const CLUSTER_ARN = "arn:aws:eks:eu-west-1:111122223333:cluster/research";
const ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

function activeCluster(overrides: Partial<Cluster> = {}): Cluster {
  return {
    name: "research",
    arn: CLUSTER_ARN,
    status: "ACTIVE",
    version: "1.31",
    endpoint: "https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com",
    certificateAuthority: { data: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t" },
    identity: { oidc: { issuer: ISSUER } },
    accessConfig: { authenticationMode: "API_AND_CONFIG_MAP" },
    ...overrides,
  };
}

useEnv(DEPLOYMENT_ENV);

beforeEach(() => {
  eks.reset();
  resetClients();
});

describe("createResolveClusterStep", () => {
  it("asks the EKS client it is given", async () => {
    // Prepare
    const given = new EKSClient({ region: "eu-west-1" });
    const givenEks = mockClient(given);
    givenEks.on(DescribeClusterCommand).resolves({ cluster: activeCluster() });
    // Act
    const resolved = await createResolveClusterStep({ eks: given }).apply(stepState());
    // Assess
    expect(resolved.arn).toBe(CLUSTER_ARN);
    expect(givenEks).toHaveReceivedCommandWith(DescribeClusterCommand, { name: "research" });
    expect(eks).toHaveReceivedCommandTimes(DescribeClusterCommand, 0);
  });

  it("exports the catalog's handler, which makes its client for the request's region when called", async () => {
    // Prepare: every EKSClient's calls mocked (the handler makes its own)
    const anyClient = mockClient(EKSClient);
    anyClient.on(DescribeClusterCommand).resolves({ cluster: activeCluster() });
    try {
      // Act
      const resolved = await resolveClusterModule.apply(stepState());
      // Assess
      expect(resolved.region).toBe("eu-west-1");
      expect(anyClient).toHaveReceivedCommandTimes(DescribeClusterCommand, 1);
    } finally {
      anyClient.restore();
    }
  });
});

describe("ResolveCluster", () => {
  it("returns what later steps need from DescribeCluster", async () => {
    // Prepare
    eks.on(DescribeClusterCommand, { name: "research" }).resolves({ cluster: activeCluster() });
    // Act
    const resolved = await apply(stepState());
    // Assess
    expect(eks).toHaveReceivedCommandWith(DescribeClusterCommand, { name: "research" });
    expect(resolved).toEqual({
      name: "research",
      region: "eu-west-1",
      arn: CLUSTER_ARN,
      accountId: "111122223333",
      endpoint: "https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com",
      certificateAuthority: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
      oidcIssuer: ISSUER,
      authenticationMode: "API_AND_CONFIG_MAP",
      version: "1.31",
    });
  });

  it("defaults the authentication mode to CONFIG_MAP when the cluster reports none", async () => {
    // Prepare
    eks.on(DescribeClusterCommand).resolves({ cluster: activeCluster({ accessConfig: undefined, identity: undefined }) });
    // Act
    const resolved = await apply(stepState());
    // Assess
    expect(resolved.authenticationMode).toBe("CONFIG_MAP");
    expect(resolved).not.toHaveProperty("oidcIssuer");
  });

  it("refuses an invalid request with every problem (InvalidRequest) before calling AWS", async () => {
    // Prepare
    const state = stepState({ tenant: "Not_A_Label", namespace: "kube-system" });
    // Act
    const error = await apply(state).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "InvalidRequest" });
    expect((error as { problems: Array<{ path: string }> }).problems.map((p) => p.path)).toEqual(
      expect.arrayContaining(["tenant", "namespace"]),
    );
    expect(eks).not.toHaveReceivedCommand(DescribeClusterCommand);
  });

  it.each([
    ["another cluster", { name: "prod", region: "eu-west-1" }],
    ["the same name in another region", { name: "research", region: "us-east-1" }],
  ])("refuses %s not on the allowlist (NotAllowed)", async (_what, cluster) => {
    // Prepare
    eks.on(DescribeClusterCommand).resolves({ cluster: activeCluster() });
    // Act
    const error = await apply(stepState({ cluster })).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed", message: expect.stringContaining("allowlist") });
    expect(eks).not.toHaveReceivedCommand(DescribeClusterCommand);
  });

  it.each([
    ["the cluster's own account", "arn:aws:iam::111122223333:role/launcher"],
    ["an allowlisted account", "arn:aws:iam::444455556666:user/ci"],
  ])("accepts an existing launcher principal in %s", async (_what, principalArn) => {
    // Prepare
    eks.on(DescribeClusterCommand).resolves({ cluster: activeCluster() });
    // Act
    const resolved = await apply(stepState({ launcher: { mode: "existing", principalArn } }));
    // Assess
    expect(resolved.accountId).toBe("111122223333");
  });

  it("refuses an existing launcher principal from an account that is not allowed (NotAllowed)", async () => {
    // Prepare
    eks.on(DescribeClusterCommand).resolves({ cluster: activeCluster() });
    // Act
    const error = await apply(
      stepState({ launcher: { mode: "existing", principalArn: "arn:aws:iam::999988887777:role/elsewhere" } }),
    ).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed", message: expect.stringContaining("999988887777") });
  });

  it("refuses a created launcher whose trust names a principal from an account that is not allowed (NotAllowed)", async () => {
    // Prepare
    eks.on(DescribeClusterCommand).resolves({ cluster: activeCluster() });
    const principals = ["arn:aws:iam::444455556666:user/ci", "arn:aws:iam::999988887777:role/elsewhere"];
    // Act
    const error = await apply(stepState({ launcher: { mode: "create", trust: { principals } } })).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed", message: expect.stringContaining("arn:aws:iam::999988887777:role/elsewhere") });
  });

  it("names a missing cluster ClusterNotFound", async () => {
    // Prepare
    eks
      .on(DescribeClusterCommand)
      .rejects(new ResourceNotFoundException({ message: "No cluster found for name: research.", $metadata: { httpStatusCode: 404 } }));
    // Act
    const error = await apply(stepState()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "ClusterNotFound", message: expect.stringContaining("research") });
  });

  it.each(["CREATING", "UPDATING"])("asks for a retry while the cluster is %s (ClusterUnreachable)", async (status) => {
    // Prepare
    eks.on(DescribeClusterCommand).resolves({ cluster: activeCluster({ status: status as Cluster["status"] }) });
    // Act
    const error = await apply(stepState()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "ClusterUnreachable", message: expect.stringContaining(status) });
  });

  it.each(["FAILED", "DELETING"])("refuses a cluster that is %s (NotAllowed)", async (status) => {
    // Prepare
    eks.on(DescribeClusterCommand).resolves({ cluster: activeCluster({ status: status as Cluster["status"] }) });
    // Act
    const error = await apply(stepState()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "NotAllowed", message: expect.stringContaining(status) });
  });

  it("turns a throttled DescribeCluster into Throttled for the state machine to retry", async () => {
    // Prepare
    const throttled = Object.assign(new Error("Rate exceeded"), { name: "ThrottlingException", $metadata: { httpStatusCode: 429 } });
    eks.on(DescribeClusterCommand).rejects(throttled);
    // Act
    const error = await apply(stepState()).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: "Throttled" });
  });

  it("has nothing to compensate", () => {
    // Assess
    expect(Object.keys(resolveClusterModule)).not.toContain("compensate");
  });
});

describe("ResolveCluster: can the Kubernetes-facing steps reach the API endpoint?", () => {
  const VPC = "vpc-0123456789abcdef0";
  const OTHER_VPC = "vpc-0fedcba9876543210";
  const IN_VPC = {
    KUBE_STEPS_VPC_ID: VPC,
    KUBE_STEPS_SUBNET_IDS: "subnet-0123456789abcdef0",
    KUBE_STEPS_SECURITY_GROUP_IDS: "sg-0123456789abcdef0",
  };
  const resolveWith = (settings: Record<string, string>) =>
    createResolveClusterStep({ eks: eksClient, config: loadDeploymentConfig({ ...DEPLOYMENT_ENV, ...settings }) }).apply(stepState());

  it.each([
    [
      "a private-only endpoint, Lambdas outside any VPC",
      { endpointPublicAccess: false, endpointPrivateAccess: true },
      {},
      /private \(public access is off\).*KUBE_STEPS_VPC_ID, KUBE_STEPS_SUBNET_IDS and KUBE_STEPS_SECURITY_GROUP_IDS/,
    ],
    [
      "public CIDRs that exclude Lambdas outside any VPC",
      { endpointPublicAccess: true, endpointPrivateAccess: true, publicAccessCidrs: ["203.0.113.0/24"] },
      {},
      /admits only 203\.0\.113\.0\/24.*set KUBE_STEPS_VPC_ID/,
    ],
    [
      "restricted public CIDRs and no private access",
      { endpointPublicAccess: true, endpointPrivateAccess: false, publicAccessCidrs: ["203.0.113.0/24"] },
      {},
      /enable the endpoint's private access/,
    ],
    [
      "a private endpoint in another VPC than the Lambdas'",
      { endpointPublicAccess: false, endpointPrivateAccess: true, vpcId: OTHER_VPC },
      IN_VPC,
      new RegExp(`private to ${OTHER_VPC}.*run in ${VPC}`),
    ],
  ])(
    "fails at once on %s: ClusterEndpointUnreachable (permanent), saying what to configure",
    async (_what, vpcConfig, settings, message) => {
      // Prepare
      eks.on(DescribeClusterCommand).resolves({ cluster: activeCluster({ resourcesVpcConfig: { vpcId: VPC, ...vpcConfig } }) });
      // Act
      const error = await resolveWith(settings).catch((e: unknown) => e);
      // Assess
      expect(error).toMatchObject({ name: "ClusterEndpointUnreachable", transient: false, message: expect.stringMatching(message) });
      expect(eks).toHaveReceivedCommandTimes(DescribeClusterCommand, 1);
    },
  );

  it.each([
    ["a public endpoint open to all, Lambdas outside any VPC", { endpointPublicAccess: true, publicAccessCidrs: ["0.0.0.0/0"] }, {}],
    ["a private endpoint in the Lambdas' VPC", { endpointPublicAccess: false, endpointPrivateAccess: true }, IN_VPC],
    [
      "restricted public CIDRs, Lambdas in a VPC (their NAT may be admitted)",
      { endpointPublicAccess: true, publicAccessCidrs: ["203.0.113.0/24"] },
      IN_VPC,
    ],
    ["no resourcesVpcConfig reported", undefined, {}],
  ])("goes on with %s", async (_what, vpcConfig, settings) => {
    // Prepare
    eks
      .on(DescribeClusterCommand)
      .resolves({ cluster: activeCluster(vpcConfig ? { resourcesVpcConfig: { vpcId: VPC, ...vpcConfig } } : {}) });
    // Act
    const resolved = await resolveWith(settings);
    // Assess
    expect(resolved.name).toBe("research");
  });
});
