/**
 * The deploy-time configuration (functions/lib/domain/deploy-config.ts) as an operator writes it, and the region the stack
 * deploys to (stacks/config.ts deployRegion), which must follow the AWS profile rather than default to us-east-1.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  AWS_REGION_CODE,
  configToEnv,
  loadDeploymentConfig,
  loadNamespaceSettings,
  parseClusterList,
  permissionsBoundaryProblem,
} from "../../functions/lib/domain/deploy-config.js";
import { EKS_CLUSTER_NAME } from "../../functions/lib/domain/request.js";
import { deployRegion } from "../../stacks/config.js";

const BASE = { ALLOWED_CLUSTERS: "research@eu-west-1", ALLOWED_ACCOUNT_IDS: "111122223333", IAM_PREFIX: "nfeks" };

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("allowed clusters", () => {
  it("accepts EKS cluster names and AWS Region codes, and nothing like a wildcard", () => {
    // Assess
    for (const name of ["research", "genomics-prod", "lab_2", "1st", "a".repeat(100)]) expect(EKS_CLUSTER_NAME.test(name), name).toBe(true);
    for (const name of ["lab*", "*", "-lead", "_lead", "has space", "a".repeat(101), "", "lab.one"])
      expect(EKS_CLUSTER_NAME.test(name), name).toBe(false);
    for (const region of ["eu-west-1", "us-east-2", "ap-southeast-3", "us-gov-west-1", "cn-north-1", "us-isob-east-1", "il-central-1"]) {
      expect(AWS_REGION_CODE.test(region), region).toBe(true);
    }
    for (const region of ["eu-west", "EU-WEST-1", "*", "eu-west-*", "eu-west-1a", "eu west 1", "", "eu-west-1 "]) {
      expect(AWS_REGION_CODE.test(region), region).toBe(false);
    }
  });

  it("trims names and regions in both spellings of the list", () => {
    // Act
    const listed = loadDeploymentConfig({ ...BASE, ALLOWED_CLUSTERS: "  research @ eu-west-1 ,genomics-prod@us-east-1 , " });
    const json = loadDeploymentConfig({ ...BASE, ALLOWED_CLUSTERS: ' [{"name":" research ","region":"eu-west-1 "}] ' });
    // Assess
    expect(listed.allowedClusters).toEqual([
      { name: "research", region: "eu-west-1" },
      { name: "genomics-prod", region: "us-east-1" },
    ]);
    expect(json.allowedClusters).toEqual([{ name: "research", region: "eu-west-1" }]);
  });

  it("refuses an entry with more than one @ instead of guessing which part is the region", () => {
    // Act + Assess
    expect(() => parseClusterList("research@eu-west-1@extra")).toThrow(/"research@eu-west-1@extra" has more than one "@"/);
    expect(() => loadDeploymentConfig({ ...BASE, ALLOWED_CLUSTERS: "a@eu-west-1,b@c@us-east-1" })).toThrow(
      /Invalid deployment configuration: allowedClusters: "b@c@us-east-1" has more than one "@"/,
    );
  });

  it("names each bad cluster and region by its position", () => {
    // Act
    const load = () =>
      loadDeploymentConfig({ ...BASE, ALLOWED_CLUSTERS: "research@eu-west-1,lab*@eu-west-1,genomics@*,@us-east-1,orphan" });
    // Assess
    expect(load).toThrow(/allowedClusters\.1\.name: an EKS cluster name is 1-100 letters/);
    expect(load).toThrow(/allowedClusters\.2\.region: a region is an AWS Region code such as eu-west-1/);
    expect(load).toThrow(/allowedClusters\.3\.name/);
    expect(load).toThrow(/allowedClusters\.4\.region: Required/);
  });
});

describe("the permissions boundary", () => {
  it("accepts IAM managed policy ARNs, customer or AWS managed, with a path or without", () => {
    // Assess
    for (const arn of [
      "arn:aws:iam::111122223333:policy/platform-boundary",
      "arn:aws:iam::111122223333:policy/boundaries/platform-boundary",
      "arn:aws-us-gov:iam::111122223333:policy/platform-boundary",
      "arn:aws:iam::aws:policy/PowerUserAccess",
    ]) {
      expect(permissionsBoundaryProblem(arn), arn).toBeUndefined();
    }
  });

  it("says what is wrong with anything else", () => {
    // Assess
    expect(permissionsBoundaryProblem("platform-boundary")).toMatch(/not an ARN/);
    expect(permissionsBoundaryProblem("arn:aws:s3:::platform-boundary")).toMatch(/IAM policy ARN is needed.*"s3"/);
    expect(permissionsBoundaryProblem("arn:aws:iam::12345:policy/platform-boundary")).toMatch(/account must be 12 digits/);
    expect(permissionsBoundaryProblem("arn:aws:iam::111122223333:role/platform-boundary")).toMatch(/resource must be policy\/<name>/);
    expect(permissionsBoundaryProblem("arn:aws:iam::111122223333:policy/")).toMatch(/resource must be policy\/<name>/);
    expect(permissionsBoundaryProblem("arn:aws:iam:eu-west-1:111122223333:policy/platform-boundary")).toMatch(/no region/);
    expect(permissionsBoundaryProblem("arn:aws:iam::111122223333:policy/platform boundary")).toMatch(/not an ARN/);
  });

  it("is trimmed, checked when the configuration loads, and survives the trip through the environment", () => {
    // Act
    const config = loadDeploymentConfig({
      ...BASE,
      IAM_PREFIX: " nfeks ",
      PERMISSIONS_BOUNDARY_ARN: "  arn:aws:iam::111122223333:policy/b  ",
    });
    // Assess
    expect(config.permissionsBoundaryArn).toBe("arn:aws:iam::111122223333:policy/b");
    expect(config.iamPrefix).toBe("nfeks");
    expect(loadDeploymentConfig(configToEnv(config))).toEqual(config);
    expect(() => loadDeploymentConfig({ ...BASE, PERMISSIONS_BOUNDARY_ARN: "arn:aws:iam::111122223333:role/b" })).toThrow(
      /permissionsBoundaryArn: the resource must be policy\/<name>/,
    );
    expect(loadDeploymentConfig({ ...BASE, PERMISSIONS_BOUNDARY_ARN: "   " }).permissionsBoundaryArn).toBeUndefined();
  });
});

describe("the namespaces' Pod Security level", () => {
  it("is baseline unless the deployment chooses, and privileged only where privileged namespaces are allowed", () => {
    // Act
    const byDefault = loadNamespaceSettings({});
    const restricted = loadNamespaceSettings({ POD_SECURITY_LEVEL: "restricted" });
    const privileged = loadNamespaceSettings({ POD_SECURITY_LEVEL: "privileged", ALLOW_PRIVILEGED_NAMESPACES: "true" });
    // Assess
    expect(byDefault).toEqual({ podSecurityLevel: "baseline", allowPrivilegedNamespaces: false });
    expect(restricted.podSecurityLevel).toBe("restricted");
    expect(privileged).toEqual({ podSecurityLevel: "privileged", allowPrivilegedNamespaces: true });
    expect(() => loadNamespaceSettings({ POD_SECURITY_LEVEL: "privileged" })).toThrow(
      /podSecurityLevel: privileged namespaces need ALLOW_PRIVILEGED_NAMESPACES=true/,
    );
    expect(() => loadNamespaceSettings({ POD_SECURITY_LEVEL: "lenient" })).toThrow(/podSecurityLevel/);
    expect(() => loadNamespaceSettings({ ALLOW_PRIVILEGED_NAMESPACES: "yes" })).toThrow(/allowPrivilegedNamespaces/);
  });

  it("is checked with the rest of the configuration when the stack is synthesized, and survives the trip through the environment", () => {
    // Act
    const config = loadDeploymentConfig({ ...BASE, POD_SECURITY_LEVEL: "restricted" });
    // Assess
    expect(config.podSecurityLevel).toBe("restricted");
    expect(loadDeploymentConfig(configToEnv(config))).toEqual(config);
    expect(() => loadDeploymentConfig({ ...BASE, POD_SECURITY_LEVEL: "privileged", ALLOW_PRIVILEGED_NAMESPACES: "false" })).toThrow(
      /podSecurityLevel/,
    );
  });
});

describe("the namespaces' default quota (NAMESPACE_QUOTA)", () => {
  it("is none unless set, JSON of Kubernetes quantities and a pod count, and survives the trip through the environment", () => {
    // Act
    const none = loadNamespaceSettings({});
    const sized = loadNamespaceSettings({ NAMESPACE_QUOTA: '{"cpu":"16","memory":"64Gi","pods":200}' });
    const config = loadDeploymentConfig({ ...BASE, NAMESPACE_QUOTA: '{"memory":"32Gi"}' });
    // Assess
    expect(none.namespaceQuota).toBeUndefined();
    expect(sized.namespaceQuota).toEqual({ cpu: "16", memory: "64Gi", pods: 200 });
    expect(loadDeploymentConfig(configToEnv(config))).toEqual(config);
    expect(() => loadNamespaceSettings({ NAMESPACE_QUOTA: "cpu=16" })).toThrow(/namespaceQuota/);
    expect(() => loadNamespaceSettings({ NAMESPACE_QUOTA: '{"cpu":"lots"}' })).toThrow(/namespaceQuota\.cpu/);
  });
});

describe("the STS endpoint EKS tokens are presigned for (EKS_TOKEN_STS_ENDPOINT)", () => {
  it("is none unless set, an https endpoint without a path, and survives the trip through the environment", () => {
    // Act
    const none = loadDeploymentConfig(BASE);
    const fips = loadDeploymentConfig({ ...BASE, EKS_TOKEN_STS_ENDPOINT: " https://sts-fips.us-east-1.amazonaws.com " });
    // Assess
    expect(none.eksTokenStsEndpoint).toBeUndefined();
    expect(fips.eksTokenStsEndpoint).toBe("https://sts-fips.us-east-1.amazonaws.com");
    expect(loadDeploymentConfig(configToEnv(fips))).toEqual(fips);
    expect(() => loadDeploymentConfig({ ...BASE, EKS_TOKEN_STS_ENDPOINT: "http://127.0.0.1:4566" })).toThrow(
      /eksTokenStsEndpoint|EKS_TOKEN_STS_ENDPOINT/,
    );
    expect(() => loadDeploymentConfig({ ...BASE, EKS_TOKEN_STS_ENDPOINT: "https://sts.amazonaws.com/path" })).toThrow(
      /eksTokenStsEndpoint|EKS_TOKEN_STS_ENDPOINT/,
    );
  });
});

describe("the region the stack deploys to", () => {
  /** An AWS config file with one profile, and no region in the environment. */
  function isolatedAwsConfig(profiles: Record<string, string>): void {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nf-eks-aws-"));
    const file = path.join(dir, "config");
    fs.writeFileSync(
      file,
      Object.entries(profiles)
        .map(([name, region]) => `[profile ${name}]\nregion = ${region}\n`)
        .join(""),
    );
    vi.stubEnv("AWS_CONFIG_FILE", file);
    vi.stubEnv("AWS_SHARED_CREDENTIALS_FILE", path.join(dir, "credentials"));
    vi.stubEnv("AWS_REGION", undefined);
    vi.stubEnv("AWS_DEFAULT_REGION", undefined);
    vi.stubEnv("AWS_PROFILE", undefined);
  }

  it("takes --region first, then AWS_REGION, then AWS_DEFAULT_REGION", async () => {
    // Prepare
    isolatedAwsConfig({ research: "ap-south-1" });
    vi.stubEnv("AWS_DEFAULT_REGION", "ca-central-1");
    // Act + Assess
    expect(await deployRegion({ region: "eu-north-1", profile: "research" })).toBe("eu-north-1");
    expect(await deployRegion({ profile: "research" })).toBe("ca-central-1");
    vi.stubEnv("AWS_REGION", "eu-west-3");
    expect(await deployRegion({ profile: "research" })).toBe("eu-west-3");
  });

  it("otherwise follows the region of the profile sst was given, or of AWS_PROFILE", async () => {
    // Prepare
    isolatedAwsConfig({ research: "ap-south-1", genomics: "sa-east-1" });
    // Act + Assess
    expect(await deployRegion({ profile: "research" })).toBe("ap-south-1");
    vi.stubEnv("AWS_PROFILE", "genomics");
    expect(await deployRegion({})).toBe("sa-east-1");
  });

  it("stops instead of guessing us-east-1 when there is no region anywhere", async () => {
    // Prepare
    isolatedAwsConfig({ research: "ap-south-1" });
    // Act + Assess
    await expect(deployRegion({})).rejects.toThrow(/no AWS region to deploy to/);
  });
});
