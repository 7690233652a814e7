/**
 * What the aws-authz-*.test.ts files on the emulator's authorization share (local/aws/): a fresh emulator for each
 * test with `research` seeded, the admin's SDK clients on it, roles with inline policies and a session of each,
 * AWS's AccessDenied wording, and raw signed requests to read an answer as it is on the wire.
 *
 * `aws` and `admin` are the current test's (set before each test by `useAuthzEmulator()`); clients made with
 * `clientsAs` are destroyed after it.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { EKSClient } from "@aws-sdk/client-eks";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { IAMClient } from "@aws-sdk/client-iam";
import { STSClient } from "@aws-sdk/client-sts";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterEach, beforeEach } from "vitest";
import { startAwsEmulator, type AwsEmulator, type RoleDefinition, type SeedCluster } from "../../local/aws/aws-emulator-server.js";
import { ACCOUNT, ISSUER, REGION, rejection } from "./aws-emulator-clients.js";

export { ACCOUNT, ISSUER, REGION, rejection };
export const ISSUER_HOST = ISSUER.replace("https://", "");
export const CLUSTER_ARN = `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`;
export const MARK = "app.kubernetes.io/managed-by";
export const PRODUCT = "nf-eks-provisioner";
export const TRUST_ACCOUNT = {
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "sts:AssumeRole" }],
};

const RESEARCH: SeedCluster = {
  name: "research",
  region: REGION,
  endpoint: "https://127.0.0.1:6443",
  certificateAuthority: Buffer.from("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").toString("base64"),
  authenticationMode: "API_AND_CONFIG_MAP",
  oidcIssuer: ISSUER,
};

export interface Keys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export let aws: AwsEmulator;
export let admin: { iam: IAMClient; sts: STSClient; eks: EKSClient; events: EventBridgeClient };
const opened: Array<{ destroy(): void }> = [];

export function clientsAs(credentials?: Keys) {
  const config = { endpoint: aws.url, region: REGION, maxAttempts: 1, ...(credentials ? { credentials } : {}) };
  const c = { iam: new IAMClient(config), sts: new STSClient(config), eks: new EKSClient(config), events: new EventBridgeClient(config) };
  opened.push(...Object.values(c));
  return c;
}

export function allow(action: string | string[], resource: string | string[] = "*", condition?: object) {
  return { Effect: "Allow", Action: action, Resource: resource, ...(condition ? { Condition: condition } : {}) };
}

export function policy(...statements: object[]) {
  return { Version: "2012-10-17", Statement: statements };
}

/** A role with these inline policies (and the rest of the definition), and a session of it: its keys. */
export async function sessionOf(
  roleName: string,
  inlinePolicies: Record<string, object>,
  more: Partial<RoleDefinition> = {},
): Promise<Keys & { arn: string }> {
  const roleArn = aws.defineRole({ roleName, inlinePolicies, ...more });
  const { credentials, assumedRoleArn } = await aws.assumeRole(roleArn);
  return {
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    sessionToken: credentials.sessionToken,
    arn: assumedRoleArn,
  };
}

/** AWS's AccessDenied message: who, what, on which resource, and why (by default: no identity policy allows it). */
export function denial(
  caller: string,
  action: string,
  resource: string,
  reason: string | undefined = `because no identity-based policy allows the ${action} action`,
) {
  return `User: ${caller} is not authorized to perform: ${action} on resource: ${resource}${reason ? ` ${reason}` : ""}`;
}

/** A raw request signed with `keys`, to read the answer's status, headers and body as they are on the wire. */
export async function signedFetch(
  keys: Keys,
  service: string,
  request: { method: string; path: string; headers?: Record<string, string>; body?: string },
) {
  const url = new URL(aws.url);
  const signer = new SignatureV4({ credentials: keys, region: REGION, service, sha256: Sha256 });
  const signed = await signer.sign(
    new HttpRequest({
      method: request.method,
      protocol: "http:",
      hostname: url.hostname,
      port: Number(url.port),
      path: request.path,
      headers: { host: url.host, ...request.headers },
      body: request.body,
    }),
  );
  const response = await fetch(`${aws.url}${request.path}`, {
    method: request.method,
    headers: signed.headers as Record<string, string>,
    body: request.body,
  });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** A fresh emulator (account ACCOUNT, `research` seeded) and admin clients before each test; all closed after it. */
export function useAuthzEmulator(): void {
  beforeEach(async () => {
    aws = await startAwsEmulator({ accountId: ACCOUNT });
    aws.seedCluster(RESEARCH);
    admin = clientsAs();
  });

  afterEach(async () => {
    for (const client of opened.splice(0)) client.destroy();
    await aws.close();
  });
}
