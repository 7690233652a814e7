/**
 * The AWS emulator authorizes like AWS: every call is checked against the calling principal's identity
 * policies, its permissions boundary and, for AssumeRole, the role's trust policy; STS issues sessions that
 * carry the role's permissions. Driven by the real SDK v3 clients (and raw signed requests to check each
 * protocol's AccessDenied shape, and the AWS CLI when one is installed).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CreatePolicyCommand,
  CreateRoleCommand,
  DeleteRolePolicyCommand,
  GetRoleCommand,
  IAMClient,
  IAMServiceException,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import {
  AssumeRoleCommand,
  AssumeRoleWithWebIdentityCommand,
  ExpiredTokenException,
  GetCallerIdentityCommand,
  InvalidIdentityTokenException,
  STSClient,
  STSServiceException,
} from "@aws-sdk/client-sts";
import {
  AccessDeniedException as EksAccessDenied,
  CreateAccessEntryCommand,
  CreatePodIdentityAssociationCommand,
  DescribeClusterCommand,
  EKSClient,
  ListClustersCommand,
} from "@aws-sdk/client-eks";
import { AccessDeniedException as EventsAccessDenied, EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { NotAllowed } from "../../functions/lib/domain/errors.js";
import { oidcProviderArn, podIdentityTrustPolicy } from "../../functions/lib/domain/policies.js";
import { normaliseError } from "../../functions/lib/workflow/normalise-error.js";
import { newIssuerKeys, serviceAccountToken } from "../../local/aws/oidc-issuer.js";
import { startAwsEmulator, type AwsEmulator, type RoleDefinition, type SeedCluster } from "../../local/aws/aws-emulator-server.js";

const ACCOUNT = "111122223333";
const REGION = "eu-west-1";
const ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const ISSUER_HOST = ISSUER.replace("https://", "");
const CLUSTER_ARN = `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`;
const MARK = "app.kubernetes.io/managed-by";
const PRODUCT = "nf-eks-provisioner";
const TRUST_ACCOUNT = {
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

interface Keys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

let aws: AwsEmulator;
let admin: { iam: IAMClient; sts: STSClient; eks: EKSClient; events: EventBridgeClient };
const opened: Array<{ destroy(): void }> = [];

function clientsAs(credentials?: Keys) {
  const config = { endpoint: aws.url, region: REGION, maxAttempts: 1, ...(credentials ? { credentials } : {}) };
  const c = { iam: new IAMClient(config), sts: new STSClient(config), eks: new EKSClient(config), events: new EventBridgeClient(config) };
  opened.push(...Object.values(c));
  return c;
}

function allow(action: string | string[], resource: string | string[] = "*", condition?: object) {
  return { Effect: "Allow", Action: action, Resource: resource, ...(condition ? { Condition: condition } : {}) };
}

function policy(...statements: object[]) {
  return { Version: "2012-10-17", Statement: statements };
}

/** A role with these inline policies (and the rest of the definition), and a session of it: its keys. */
async function sessionOf(
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
function denial(
  caller: string,
  action: string,
  resource: string,
  reason: string | undefined = `because no identity-based policy allows the ${action} action`,
) {
  return `User: ${caller} is not authorized to perform: ${action} on resource: ${resource}${reason ? ` ${reason}` : ""}`;
}

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the call to fail, it succeeded");
}

/** A raw request signed with `keys`, to read the answer's status, headers and body as they are on the wire. */
async function signedFetch(
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

beforeEach(async () => {
  aws = await startAwsEmulator({ accountId: ACCOUNT });
  aws.seedCluster(RESEARCH);
  admin = clientsAs();
});

afterEach(async () => {
  for (const client of opened.splice(0)) client.destroy();
  await aws.close();
});

// ---------------------------------------------------------------- allowed and denied, each protocol's shape

describe("every call is checked against the caller's policies", () => {
  it("allows what the role's policy allows, on the resources it names, and nothing else", async () => {
    // Prepare
    await admin.iam.send(
      new CreateRoleCommand({ RoleName: "nfeks-genomics-launcher", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) }),
    );
    await admin.iam.send(new CreateRoleCommand({ RoleName: "other-team", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) }));
    const keys = await sessionOf("reader", { read: policy(allow("iam:GetRole", `arn:aws:iam::${ACCOUNT}:role/nfeks-*`)) });
    const { iam } = clientsAs(keys);
    // Act
    const allowed = await iam.send(new GetRoleCommand({ RoleName: "nfeks-genomics-launcher" }));
    const otherRole = await rejection(iam.send(new GetRoleCommand({ RoleName: "other-team" })));
    // Assess
    expect(allowed.Role?.RoleName).toBe("nfeks-genomics-launcher");
    expect(otherRole.name).toBe("AccessDenied");
    expect(otherRole.message).toBe(denial(keys.arn, "iam:GetRole", `arn:aws:iam::${ACCOUNT}:role/other-team`));
  });

  it("denies IAM with the query protocol's AccessDenied: HTTP 403, <ErrorResponse>, Type Sender; the SDK raises AccessDenied", async () => {
    // Prepare
    const keys = await sessionOf("nobody", {});
    const { iam } = clientsAs(keys);
    const form = new URLSearchParams({
      Action: "CreateRole",
      Version: "2010-05-08",
      RoleName: "x",
      AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT),
    }).toString();
    const expected = denial(keys.arn, "iam:CreateRole", `arn:aws:iam::${ACCOUNT}:role/x`);
    const escaped = expected.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    // Act
    const error = await rejection(
      iam.send(new CreateRoleCommand({ RoleName: "x", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) })),
    );
    const raw = await signedFetch(keys, "iam", {
      method: "POST",
      path: "/",
      headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
      body: form,
    });
    // Assess
    expect(error).toBeInstanceOf(IAMServiceException);
    expect(error.name).toBe("AccessDenied");
    expect(error.$metadata?.httpStatusCode).toBe(403);
    expect(error.message).toBe(expected);
    expect(normaliseError(error, "iam:CreateRole")).toBeInstanceOf(NotAllowed);
    expect(raw.status).toBe(403);
    expect(raw.body).toMatch(
      new RegExp(
        `^<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code>` +
          `<Message>${escaped}</Message></Error><RequestId>[0-9a-f-]{36}</RequestId></ErrorResponse>$`,
      ),
    );
    expect(aws.state.iam.roles.has("x")).toBe(false);
  });

  it("denies EKS with REST JSON's AccessDeniedException: HTTP 403, {message}, x-amzn-ErrorType", async () => {
    // Prepare
    const keys = await sessionOf("nobody", {});
    const { eks } = clientsAs(keys);
    const expected = denial(keys.arn, "eks:DescribeCluster", CLUSTER_ARN);
    // Act
    const error = await rejection(eks.send(new DescribeClusterCommand({ name: "research" })));
    const raw = await signedFetch(keys, "eks", { method: "GET", path: "/clusters/research" });
    // Assess
    expect(error).toBeInstanceOf(EksAccessDenied);
    expect(error.$metadata?.httpStatusCode).toBe(403);
    expect(error.message).toBe(expected);
    expect(normaliseError(error, "eks:DescribeCluster")).toBeInstanceOf(NotAllowed);
    expect(raw.status).toBe(403);
    expect(raw.headers.get("x-amzn-errortype")).toBe("AccessDeniedException");
    expect(JSON.parse(raw.body)).toEqual({ message: expected });
  });

  it("denies EventBridge with JSON 1.1's AccessDeniedException: HTTP 400, {__type, message}", async () => {
    // Prepare
    const keys = await sessionOf("nobody", {});
    const { events } = clientsAs(keys);
    const entry = { Source: PRODUCT, DetailType: "ComputeEnvironmentReady", Detail: "{}", EventBusName: PRODUCT };
    const busArn = `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${PRODUCT}`;
    const expected = denial(keys.arn, "events:PutEvents", busArn);
    // Act
    const error = await rejection(events.send(new PutEventsCommand({ Entries: [entry] })));
    const raw = await signedFetch(keys, "events", {
      method: "POST",
      path: "/",
      headers: { "content-type": "application/x-amz-json-1.1", "x-amz-target": "AWSEvents.PutEvents" },
      body: JSON.stringify({ Entries: [entry] }),
    });
    // Assess
    expect(error).toBeInstanceOf(EventsAccessDenied);
    expect(error.$metadata?.httpStatusCode).toBe(400);
    expect(error.message).toBe(expected);
    expect(normaliseError(error, "events:PutEvents")).toBeInstanceOf(NotAllowed);
    expect(raw.status).toBe(400);
    expect(JSON.parse(raw.body)).toEqual({ __type: "AccessDeniedException", message: expected });
    expect(aws.events()).toEqual([]);
  });

  it("lets an explicit deny win over an allow", async () => {
    // Prepare
    const keys = await sessionOf("careful", {
      all: policy(allow("eks:*")),
      never: policy({ Effect: "Deny", Action: "eks:ListClusters", Resource: "*" }),
    });
    const { eks } = clientsAs(keys);
    // Act
    const described = await eks.send(new DescribeClusterCommand({ name: "research" }));
    const error = await rejection(eks.send(new ListClustersCommand({})));
    // Assess
    expect(described.cluster?.name).toBe("research");
    expect(error.message).toBe(
      `User: ${keys.arn} is not authorized to perform: eks:ListClusters on resource: * with an explicit deny in an identity-based policy`,
    );
  });
});

// ---------------------------------------------------------------- permissions boundaries

describe("a permissions boundary caps what the identity policies allow", () => {
  async function boundary(name: string, document: object): Promise<string> {
    const { Policy } = await admin.iam.send(new CreatePolicyCommand({ PolicyName: name, PolicyDocument: JSON.stringify(document) }));
    return Policy!.Arn!;
  }

  it("denies an action the identity policy allows but the boundary does not", async () => {
    // Prepare
    const onlyReads = await boundary("only-reads", policy(allow(["iam:Get*", "iam:List*"])));
    const keys = await sessionOf("capped", { everything: policy(allow("iam:*")) }, { permissionsBoundaryArn: onlyReads });
    const { iam } = clientsAs(keys);
    // Act
    const read = await iam.send(new GetRoleCommand({ RoleName: "capped" }));
    const error = await rejection(
      iam.send(new CreateRoleCommand({ RoleName: "escalated", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) })),
    );
    // Assess
    expect(read.Role?.PermissionsBoundary?.PermissionsBoundaryArn).toBe(onlyReads);
    expect(error.name).toBe("AccessDenied");
    expect(error.message).toBe(
      denial(
        keys.arn,
        "iam:CreateRole",
        `arn:aws:iam::${ACCOUNT}:role/escalated`,
        "because no permissions boundary allows the iam:CreateRole action",
      ),
    );
    expect(aws.state.iam.roles.has("escalated")).toBe(false);
  });

  it("names the boundary whose explicit deny refused the call", async () => {
    // Prepare
    const noRoles = await boundary("no-role-writes", policy(allow("*"), { Effect: "Deny", Action: "iam:CreateRole", Resource: "*" }));
    const keys = await sessionOf("denied-by-boundary", { everything: policy(allow("*")) }, { permissionsBoundaryArn: noRoles });
    const { iam } = clientsAs(keys);
    // Act
    const error = await rejection(
      iam.send(new CreateRoleCommand({ RoleName: "escalated", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) })),
    );
    // Assess
    expect(error.message).toBe(
      denial(
        keys.arn,
        "iam:CreateRole",
        `arn:aws:iam::${ACCOUNT}:role/escalated`,
        `with an explicit deny in a permissions boundary: ${noRoles}`,
      ),
    );
  });
});

// ---------------------------------------------------------------- the request context

describe("the request context comes from the request and the stored resource", () => {
  it("needs iam:TagRole too when CreateRole carries tags, limited by aws:TagKeys", async () => {
    // Prepare
    const roles = `arn:aws:iam::${ACCOUNT}:role/nfeks-*`;
    const createOnly = clientsAs(await sessionOf("create-only", { create: policy(allow("iam:CreateRole", roles)) }));
    const createAndTag = clientsAs(
      await sessionOf("create-and-tag", {
        create: policy(
          allow("iam:CreateRole", roles),
          allow("iam:TagRole", roles, { "ForAllValues:StringEquals": { "aws:TagKeys": [MARK] } }),
        ),
      }),
    );
    const create = (roleName: string, tags?: Array<{ Key: string; Value: string }>) =>
      new CreateRoleCommand({
        RoleName: roleName,
        AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT),
        ...(tags ? { Tags: tags } : {}),
      });
    // Act
    const untagged = await createOnly.iam.send(create("nfeks-untagged"));
    const taggedWithoutTagRole = await rejection(createOnly.iam.send(create("nfeks-tagged", [{ Key: MARK, Value: PRODUCT }])));
    const tagged = await createAndTag.iam.send(create("nfeks-tagged", [{ Key: MARK, Value: PRODUCT }]));
    const otherKey = await rejection(createAndTag.iam.send(create("nfeks-other", [{ Key: "team", Value: "x" }])));
    // Assess
    expect(untagged.Role?.RoleName).toBe("nfeks-untagged");
    expect(taggedWithoutTagRole.message).toContain(
      `is not authorized to perform: iam:TagRole on resource: arn:aws:iam::${ACCOUNT}:role/nfeks-tagged`,
    );
    expect(tagged.Role?.Tags).toEqual([{ Key: MARK, Value: PRODUCT }]);
    expect(otherKey.message).toContain("iam:TagRole");
    expect([...aws.state.iam.roles.keys()].filter((name) => name.startsWith("nfeks-"))).toEqual(["nfeks-untagged", "nfeks-tagged"]);
  });

  it("needs eks:TagResource on the new access entry when CreateAccessEntry carries tags", async () => {
    // Prepare
    const principalArn = aws.defineRole({ roleName: "nfeks-genomics-launcher" });
    const createOnly = clientsAs(await sessionOf("entries", { create: policy(allow("eks:CreateAccessEntry", CLUSTER_ARN)) }));
    const tags = { [MARK]: PRODUCT };
    // Act
    const error = await rejection(createOnly.eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn, tags })));
    // Assess
    expect(error).toBeInstanceOf(EksAccessDenied);
    expect(error.message).toMatch(
      new RegExp(
        `is not authorized to perform: eks:TagResource on resource: ` +
          `arn:aws:eks:${REGION}:${ACCOUNT}:access-entry/research/role/${ACCOUNT}/nfeks-genomics-launcher/[0-9a-f-]{36} `,
      ),
    );
    expect(aws.state.eks.clusters.get(`${REGION}/research`)!.accessEntries.has(principalArn)).toBe(false);
  });

  it("reads aws:ResourceTag from the stored role: writes only to roles carrying the mark", async () => {
    // Prepare
    const document = JSON.stringify(policy(allow("eks:DescribeCluster", CLUSTER_ARN)));
    aws.defineRole({ roleName: "nfeks-marked", tags: { [MARK]: PRODUCT } });
    aws.defineRole({ roleName: "nfeks-unmarked" });
    const { iam } = clientsAs(
      await sessionOf("writer", {
        owned: policy(
          allow("iam:PutRolePolicy", `arn:aws:iam::${ACCOUNT}:role/nfeks-*`, { StringEquals: { [`aws:ResourceTag/${MARK}`]: PRODUCT } }),
        ),
      }),
    );
    // Act
    await iam.send(new PutRolePolicyCommand({ RoleName: "nfeks-marked", PolicyName: "describe", PolicyDocument: document }));
    const error = await rejection(
      iam.send(new PutRolePolicyCommand({ RoleName: "nfeks-unmarked", PolicyName: "describe", PolicyDocument: document })),
    );
    // Assess
    expect(aws.state.iam.roles.get("nfeks-marked")!.inlinePolicies.get("describe")).toBe(document);
    expect(error.name).toBe("AccessDenied");
    expect(aws.state.iam.roles.get("nfeks-unmarked")!.inlinePolicies.size).toBe(0);
  });

  it("reads iam:PermissionsBoundary from CreateRole: a role without the required boundary is refused", async () => {
    // Prepare
    const { Policy } = await admin.iam.send(
      new CreatePolicyCommand({ PolicyName: "tenant-boundary", PolicyDocument: JSON.stringify(policy(allow("s3:*"))) }),
    );
    const required = Policy!.Arn!;
    const { iam } = clientsAs(
      await sessionOf("bounded-creator", {
        create: policy(allow("iam:CreateRole", "*", { StringEquals: { "iam:PermissionsBoundary": required } })),
      }),
    );
    const trust = JSON.stringify(TRUST_ACCOUNT);
    // Act
    const without = await rejection(iam.send(new CreateRoleCommand({ RoleName: "nfeks-free", AssumeRolePolicyDocument: trust })));
    const withIt = await iam.send(
      new CreateRoleCommand({ RoleName: "nfeks-bounded", AssumeRolePolicyDocument: trust, PermissionsBoundary: required }),
    );
    // Assess
    expect(without.name).toBe("AccessDenied");
    expect(withIt.Role?.PermissionsBoundary?.PermissionsBoundaryArn).toBe(required);
  });

  it("passes a role to EKS Pod Identity only under an iam:PassedToService condition naming pods.eks.amazonaws.com", async () => {
    // Prepare
    const workload = aws.defineRole({
      roleName: "nfeks-genomics-workload",
      trustPolicy: podIdentityTrustPolicy({ clusterArn: CLUSTER_ARN, namespace: "tower-nf", serviceAccounts: ["tower-launcher-sa"] }),
    });
    const associate = allow("eks:CreatePodIdentityAssociation", CLUSTER_ARN);
    const passTo = (service: string) => allow("iam:PassRole", workload, { StringEquals: { "iam:PassedToService": service } });
    const right = clientsAs(await sessionOf("pass-to-pods", { p: policy(associate, passTo("pods.eks.amazonaws.com")) }));
    const wrong = clientsAs(await sessionOf("pass-to-ec2", { p: policy(associate, passTo("ec2.amazonaws.com")) }));
    const request = (serviceAccount: string) =>
      new CreatePodIdentityAssociationCommand({ clusterName: "research", namespace: "tower-nf", serviceAccount, roleArn: workload });
    // Act
    const created = await right.eks.send(request("tower-launcher-sa"));
    const error = await rejection(wrong.eks.send(request("tower-compute-sa")));
    // Assess
    expect(created.association?.roleArn).toBe(workload);
    expect(error).toBeInstanceOf(EksAccessDenied);
    expect(error.message).toContain(`is not authorized to perform: iam:PassRole on resource: ${workload}`);
  });
});

// ---------------------------------------------------------------- STS AssumeRole: trust

describe("AssumeRole succeeds only when the role's trust policy lets the caller in", () => {
  const trusting = (principal: object, condition?: object) =>
    policy({ Effect: "Allow", Principal: principal, Action: "sts:AssumeRole", ...(condition ? { Condition: condition } : {}) });

  it("lets in the principal the trust policy names, and no other", async () => {
    // Prepare
    const named = await sessionOf("seqera-platform", {});
    const other = await sessionOf("someone-else", {});
    const target = aws.defineRole({
      roleName: "nfeks-genomics-launcher",
      trustPolicy: trusting({ AWS: `arn:aws:iam::${ACCOUNT}:role/seqera-platform` }),
    });
    const assume = { RoleArn: target, RoleSessionName: "seqera" };
    // Act
    const assumed = await clientsAs(named).sts.send(new AssumeRoleCommand(assume));
    const error = await rejection(clientsAs(other).sts.send(new AssumeRoleCommand(assume)));
    // Assess
    expect(assumed.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-genomics-launcher/seqera`);
    expect(assumed.AssumedRoleUser?.AssumedRoleId).toBe(`${aws.state.iam.roles.get("nfeks-genomics-launcher")!.roleId}:seqera`);
    expect(assumed.Credentials?.AccessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(assumed.Credentials?.Expiration?.getTime()).toBeGreaterThan(Date.now());
    expect(error).toBeInstanceOf(STSServiceException);
    expect(error.name).toBe("AccessDenied");
    expect(error.$metadata?.httpStatusCode).toBe(403);
    expect(error.message).toMatch(new RegExp(`^User: ${other.arn} is not authorized to perform: sts:AssumeRole on resource: ${target}`));
  });

  it("requires the external id the trust policy asks for", async () => {
    // Prepare
    const target = aws.defineRole({
      roleName: "seqera-launcher",
      trustPolicy: trusting({ AWS: `arn:aws:iam::${ACCOUNT}:root` }, { StringEquals: { "sts:ExternalId": "tenant-1234" } }),
    });
    const { sts } = admin;
    // Act
    const missing = await rejection(sts.send(new AssumeRoleCommand({ RoleArn: target, RoleSessionName: "run-1" })));
    const wrong = await rejection(
      sts.send(new AssumeRoleCommand({ RoleArn: target, RoleSessionName: "run-1", ExternalId: "tenant-9999" })),
    );
    const right = await sts.send(new AssumeRoleCommand({ RoleArn: target, RoleSessionName: "run-1", ExternalId: "tenant-1234" }));
    // Assess
    expect(missing.name).toBe("AccessDenied");
    expect(wrong.name).toBe("AccessDenied");
    expect(right.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/seqera-launcher/run-1`);
  });

  it("with a trust on the account, needs sts:AssumeRole in the caller's own policies too", async () => {
    // Prepare
    const target = aws.defineRole({ roleName: "account-trusting", trustPolicy: TRUST_ACCOUNT });
    const without = clientsAs(await sessionOf("no-assume", {}));
    const withIt = clientsAs(await sessionOf("may-assume", { assume: policy(allow("sts:AssumeRole", target)) }));
    // Act
    const error = await rejection(without.sts.send(new AssumeRoleCommand({ RoleArn: target, RoleSessionName: "run-1" })));
    const assumed = await withIt.sts.send(new AssumeRoleCommand({ RoleArn: target, RoleSessionName: "run-1" }));
    // Assess
    expect(error.message).toContain("because no identity-based policy allows the sts:AssumeRole action");
    expect(assumed.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/account-trusting/run-1`);
  });

  it("refuses a role that does not exist with the same AccessDenied", async () => {
    // Act
    const error = await rejection(
      admin.sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${ACCOUNT}:role/ghost`, RoleSessionName: "run-1" })),
    );
    // Assess
    expect(error.name).toBe("AccessDenied");
    expect(error.message).toBe(
      denial(`arn:aws:iam::${ACCOUNT}:user/sandbox-admin`, "sts:AssumeRole", `arn:aws:iam::${ACCOUNT}:role/ghost`, ""),
    );
  });
});

// ---------------------------------------------------------------- STS AssumeRoleWithWebIdentity: IRSA

describe("AssumeRoleWithWebIdentity checks the token against the cluster's issuer and the trust's :sub/:aud", () => {
  const SA_SUB = "system:serviceaccount:tower-nf:tower-launcher-sa";
  let workload: string;

  beforeEach(() => {
    // The IRSA trust the product writes: the cluster's provider, StringEquals on :sub and :aud.
    workload = aws.defineRole({
      roleName: "nfeks-genomics-workload",
      trustPolicy: policy({
        Effect: "Allow",
        Principal: { Federated: oidcProviderArn(ACCOUNT, ISSUER) },
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: { StringEquals: { [`${ISSUER_HOST}:sub`]: SA_SUB, [`${ISSUER_HOST}:aud`]: "sts.amazonaws.com" } },
      }),
      inlinePolicies: { describe: policy(allow("eks:DescribeCluster", CLUSTER_ARN)) },
    });
  });

  const assume = (token: string) =>
    admin.sts.send(new AssumeRoleWithWebIdentityCommand({ RoleArn: workload, RoleSessionName: "pod", WebIdentityToken: token }));

  it("issues a session for the service account the trust names, and the session carries the role's permissions", async () => {
    // Prepare
    const token = aws.serviceAccountToken({ namespace: "tower-nf", serviceAccount: "tower-launcher-sa" });
    // Act
    const assumed = await assume(token);
    const pod = clientsAs({
      accessKeyId: assumed.Credentials!.AccessKeyId!,
      secretAccessKey: assumed.Credentials!.SecretAccessKey!,
      sessionToken: assumed.Credentials!.SessionToken!,
    });
    const described = await pod.eks.send(new DescribeClusterCommand({ name: "research" }));
    const denied = await rejection(pod.eks.send(new ListClustersCommand({})));
    // Assess
    expect(assumed.SubjectFromWebIdentityToken).toBe(SA_SUB);
    expect(assumed.Audience).toBe("sts.amazonaws.com");
    expect(assumed.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-genomics-workload/pod`);
    expect(described.cluster?.name).toBe("research");
    expect(denied).toBeInstanceOf(EksAccessDenied);
  });

  it("refuses another service account's token (wrong :sub)", async () => {
    // Prepare
    const token = aws.serviceAccountToken({ namespace: "tower-nf", serviceAccount: "someone-else" });
    // Act
    const error = await rejection(assume(token));
    // Assess
    expect(error.name).toBe("AccessDenied");
    expect(error.$metadata?.httpStatusCode).toBe(403);
    expect(error.message).toBe("Not authorized to perform sts:AssumeRoleWithWebIdentity");
  });

  it("refuses a token for an audience the provider does not list, and one the trust's :aud does not name", async () => {
    // Prepare
    const unlisted = aws.serviceAccountToken({ namespace: "tower-nf", serviceAccount: "tower-launcher-sa", audience: "vault" });
    aws.state.iam.oidcProviders.get(oidcProviderArn(ACCOUNT, ISSUER))!.clientIds.push("listed-elsewhere");
    const listedButNotTrusted = aws.serviceAccountToken({
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      audience: "listed-elsewhere",
    });
    // Act
    const unlistedError = await rejection(assume(unlisted));
    const untrustedError = await rejection(assume(listedButNotTrusted));
    // Assess
    expect(unlistedError).toBeInstanceOf(InvalidIdentityTokenException);
    expect(unlistedError.message).toBe("Incorrect token audience");
    expect(untrustedError.name).toBe("AccessDenied");
  });

  it("refuses a token the issuer did not sign, and an expired one", async () => {
    // Prepare
    const forged = serviceAccountToken(newIssuerKeys(ISSUER), { namespace: "tower-nf", serviceAccount: "tower-launcher-sa" });
    const expired = aws.serviceAccountToken({
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      now: new Date(Date.now() - 7200_000),
    });
    // Act
    const forgedError = await rejection(assume(forged));
    const expiredError = await rejection(assume(expired));
    // Assess
    expect(forgedError).toBeInstanceOf(InvalidIdentityTokenException);
    expect(expiredError).toBeInstanceOf(ExpiredTokenException);
    expect(expiredError.$metadata?.httpStatusCode).toBe(400);
  });
});

// ---------------------------------------------------------------- sessions carry the role's permissions

describe("the credentials STS issues carry the role's permissions in every later call", () => {
  it("is the role's session: allowed what the role allows now, denied once the role's policy is gone", async () => {
    // Prepare
    const role = aws.defineRole({
      roleName: "nfeks-resolver",
      inlinePolicies: { describe: policy(allow("eks:DescribeCluster", CLUSTER_ARN)) },
    });
    const assumed = await admin.sts.send(new AssumeRoleCommand({ RoleArn: role, RoleSessionName: "step" }));
    const step = clientsAs({
      accessKeyId: assumed.Credentials!.AccessKeyId!,
      secretAccessKey: assumed.Credentials!.SecretAccessKey!,
      sessionToken: assumed.Credentials!.SessionToken!,
    });
    // Act
    const identity = await step.sts.send(new GetCallerIdentityCommand({}));
    const before = await step.eks.send(new DescribeClusterCommand({ name: "research" }));
    const other = await rejection(step.iam.send(new GetRoleCommand({ RoleName: "nfeks-resolver" })));
    await admin.iam.send(new DeleteRolePolicyCommand({ RoleName: "nfeks-resolver", PolicyName: "describe" }));
    const after = await rejection(step.eks.send(new DescribeClusterCommand({ name: "research" })));
    // Assess
    expect(identity.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-resolver/step`);
    expect(before.cluster?.name).toBe("research");
    expect(other.name).toBe("AccessDenied");
    expect(after).toBeInstanceOf(EksAccessDenied);
  });

  it("stops working when it expires (ExpiredToken)", async () => {
    // Prepare
    const session = await sessionOf("short-lived", { describe: policy(allow("eks:DescribeCluster", CLUSTER_ARN)) });
    aws.state.credentials.get(session.accessKeyId)!.expiration = new Date(Date.now() - 1000);
    // Act
    const error = await rejection(clientsAs(session).sts.send(new GetCallerIdentityCommand({})));
    // Assess
    expect(error.name).toBe("ExpiredToken");
    expect(error.$metadata?.httpStatusCode).toBe(403);
  });

  it("is what a Lambda's execution role gets: assumeRole as lambda.amazonaws.com needs a trust naming that service", async () => {
    // Prepare
    const lambdaTrust = policy({ Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" });
    const execution = aws.defineRole({
      roleName: "ResolveClusterRole",
      trustPolicy: lambdaTrust,
      inlinePolicies: { d: policy(allow("eks:DescribeCluster", CLUSTER_ARN)) },
    });
    const notForLambda = aws.defineRole({ roleName: "NotForLambda" });
    // Act
    const session = await aws.assumeRole(execution, { service: "lambda.amazonaws.com", sessionName: "resolve-cluster" });
    const error = await rejection(aws.assumeRole(notForLambda, { service: "lambda.amazonaws.com" }));
    // Assess
    expect(session.assumedRoleArn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/ResolveClusterRole/resolve-cluster`);
    expect(error.message).toBe(`User: lambda.amazonaws.com is not authorized to perform: sts:AssumeRole on resource: ${notForLambda}`);
  });
});

// ---------------------------------------------------------------- a denial, as the AWS CLI shows it

const execFileAsync = promisify(execFile);

async function cliOnPath(): Promise<boolean> {
  try {
    await execFileAsync("aws", ["--version"], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

const cliInstalled = await cliOnPath();

describe.skipIf(!cliInstalled)(`the AWS CLI ${cliInstalled ? "" : "(skipped: no aws on PATH)"}`.trim(), () => {
  it("prints the AccessDenied of a call the role's keys may not make", async () => {
    // Prepare
    const keys = await sessionOf("cli-reader", { read: policy(allow("iam:GetRole")) });
    const home = mkdtempSync(join(tmpdir(), "aws-cli-"));
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      AWS_ACCESS_KEY_ID: keys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
      AWS_SESSION_TOKEN: keys.sessionToken!,
      AWS_DEFAULT_REGION: REGION,
      AWS_EC2_METADATA_DISABLED: "true",
    };
    const args = [
      "--endpoint-url",
      aws.url,
      "iam",
      "create-role",
      "--role-name",
      "from-cli",
      "--assume-role-policy-document",
      JSON.stringify(TRUST_ACCOUNT),
    ];
    // Act
    const failure = await execFileAsync("aws", args, { env, timeout: 25_000 }).then(
      () => undefined,
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    rmSync(home, { recursive: true, force: true });
    // Assess
    const denied = denial(keys.arn, "iam:CreateRole", `arn:aws:iam::${ACCOUNT}:role/from-cli`);
    expect(failure).toContain(`An error occurred (AccessDenied) when calling the CreateRole operation: ${denied}`);
  });
});
