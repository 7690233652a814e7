/**
 * Driving the AWS emulator (local/aws/) with the real SDK v3 clients, endpoint overridden, as the
 * aws-emulator-*.test.ts files do: a fresh emulator for every test with two clusters seeded (`research`
 * in API_AND_CONFIG_MAP mode with an OIDC issuer and a node role, `legacy` in CONFIG_MAP mode), the
 * policies the tests write, and the error a call is expected to fail with.
 */
import { afterEach, beforeEach } from "vitest";
import { CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { STSClient } from "@aws-sdk/client-sts";
import { EKSClient } from "@aws-sdk/client-eks";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { accountRootArn, launcherTrustPolicy, podIdentityTrustPolicy } from "../../functions/lib/domain/policies.js";
import { startAwsEmulator, type AwsEmulator, type SeedCluster } from "../../local/aws/aws-emulator-server.js";

export const ACCOUNT = "111122223333";
export const REGION = "eu-west-1";
export const ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
export const NODE_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/research-nodes`;
/** the emulator's default caller (its default access key belongs to this user) */
export const ADMIN_ARN = `arn:aws:iam::${ACCOUNT}:user/sandbox-admin`;

export const RESEARCH: SeedCluster = {
  name: "research",
  region: REGION,
  endpoint: "https://127.0.0.1:6443",
  certificateAuthority: Buffer.from("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").toString("base64"),
  authenticationMode: "API_AND_CONFIG_MAP",
  oidcIssuer: ISSUER,
  version: "1.31",
  nodeRoleArn: NODE_ROLE_ARN,
};
export const LEGACY: SeedCluster = {
  ...RESEARCH,
  name: "legacy",
  authenticationMode: "CONFIG_MAP",
  oidcIssuer: undefined,
  nodeRoleArn: undefined,
};

export const launcherTrust = JSON.stringify(launcherTrustPolicy([accountRootArn(ACCOUNT)]));
/** A workload role's Pod Identity trust (the head service account of tower-nf on research). */
export const podIdentityTrust = podIdentityTrustPolicy({
  clusterArn: `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`,
  namespace: "tower-nf",
  serviceAccounts: ["tower-launcher-sa"],
});
export const describeClustersPolicy = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Action: "eks:DescribeCluster", Resource: `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research` }],
});

export function clients(endpoint: string, maxAttempts = 1) {
  const config = { endpoint, region: REGION, maxAttempts };
  return { iam: new IAMClient(config), sts: new STSClient(config), eks: new EKSClient(config), events: new EventBridgeClient(config) };
}

/** The error a promise rejects with (test/support/fixtures.ts). */
export { rejection } from "./fixtures.js";

/** A role trusting the account (as the launcher role does); its ARN. */
export async function createLauncherRole(iam: IAMClient, roleName = "nfeks-genomics-launcher"): Promise<string> {
  const { Role } = await iam.send(new CreateRoleCommand({ RoleName: roleName, AssumeRolePolicyDocument: launcherTrust }));
  return Role!.Arn!;
}

export interface StartedAwsEmulator extends ReturnType<typeof clients> {
  aws: AwsEmulator;
}

/**
 * A fresh emulator for each test of the file (or describe block) that calls this, with `research` and `legacy`
 * seeded and SDK clients on it (one attempt each: no SDK retry hides an answer); handed to `onStart` before the
 * test, clients destroyed and the emulator closed after it.
 */
export function useAwsEmulator(onStart: (started: StartedAwsEmulator) => void): void {
  let started: StartedAwsEmulator | undefined;
  beforeEach(async () => {
    const aws = await startAwsEmulator();
    aws.seedCluster(RESEARCH);
    aws.seedCluster(LEGACY);
    started = { aws, ...clients(aws.url) };
    onStart(started);
  });

  afterEach(async () => {
    if (!started) return;
    for (const client of [started.iam, started.sts, started.eks, started.events]) client.destroy();
    await started.aws.close();
    started = undefined;
  });
}
