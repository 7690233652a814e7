/**
 * The AWS emulator's authorization table (local/aws/operation-checks.ts): every operation the emulator
 * serves has an entry, every check an entry builds names a real IAM action on a resource iam-simulate can
 * decide, the sandbox admin (AdministratorAccess) is allowed all of them and a principal with no policy
 * none of them (GetCallerIdentity excepted, as on AWS). iam-simulate is AGPL: the product never imports it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { describe, expect, it } from "vitest";
import { createState } from "../../local/aws/account-state.js";
import { decide, type AuthorizationCheck } from "../../local/aws/authorizer.js";
import { newUser } from "../../local/aws/iam-emulator.js";
import { OPERATION_AUTHORIZATION, SERVED_OPERATIONS, type OperationRequest } from "../../local/aws/operation-checks.js";
import { ADMINISTRATOR_ACCESS_ARN } from "../../local/aws/aws-emulator-server.js";

const ACCOUNT = "111122223333";
const REGION = "eu-west-1";
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-launcher`;
const CLUSTER_ARN = `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`;

/** One request carrying every parameter any operation reads, so each entry builds its checks from real values. */
function sampleRequest(callerArn: string): OperationRequest {
  const state = createState(ACCOUNT, 0);
  return {
    state,
    caller: { accessKeyId: "AKIAEXAMPLE", arn: callerArn, accountId: ACCOUNT, userId: "AIDAEXAMPLE" },
    region: REGION,
    params: {
      RoleName: "nfeks-genomics-launcher",
      RoleArn: ROLE_ARN,
      RoleSessionName: "run-1",
      ExternalId: "tenant-external-id",
      UserName: "alice",
      PolicyName: "boundary",
      PolicyArn: `arn:aws:iam::${ACCOUNT}:policy/boundary`,
      PermissionsBoundary: `arn:aws:iam::${ACCOUNT}:policy/boundary`,
      OpenIDConnectProviderArn: `arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.eks.${REGION}.amazonaws.com/id/EXAMPLE`,
      Url: `https://oidc.eks.${REGION}.amazonaws.com/id/EXAMPLE`,
      "Tags.member.1.Key": "app.kubernetes.io/managed-by",
      "Tags.member.1.Value": "nf-eks-provisioner",
      "TagKeys.member.1": "team",
    },
    labels: {
      name: "research",
      principalArn: ROLE_ARN,
      policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
      associationId: "a-abcdefghijklmnopq",
      resourceArn: CLUSTER_ARN,
    },
    body: {
      principalArn: ROLE_ARN,
      roleArn: ROLE_ARN,
      kubernetesGroups: ["tower-launcher-role-genomics"],
      policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
      accessScope: { type: "namespace", namespaces: ["tower-nf"] },
      namespace: "tower-nf",
      serviceAccount: "tower-launcher-sa",
      tags: { "app.kubernetes.io/managed-by": "nf-eks-provisioner" },
      Entries: [{ Source: "nf-eks-provisioner", DetailType: "ComputeEnvironmentReady", Detail: "{}", EventBusName: "nf-eks-provisioner" }],
    },
    query: { tagKeys: "team" },
  };
}

function checksOf(operation: string, request: OperationRequest): AuthorizationCheck[] {
  const entry = OPERATION_AUTHORIZATION[operation];
  return entry && "checks" in entry ? entry.checks(request) : [];
}

describe("the authorization table", () => {
  it("has an entry for every operation the emulator serves, and none for an operation it does not serve", () => {
    // Prepare
    const served = [...SERVED_OPERATIONS].sort();
    // Act
    const entries = Object.keys(OPERATION_AUTHORIZATION).sort();
    // Assess
    expect(served.length).toBeGreaterThan(50);
    expect(entries).toEqual(served);
  });

  it("serves only AssumeRoleWithWebIdentity unsigned (its trust policy authorizes it)", () => {
    // Act
    const anonymous = Object.entries(OPERATION_AUTHORIZATION)
      .filter(([, entry]) => "anonymous" in entry)
      .map(([operation]) => operation);
    // Assess
    expect(anonymous).toEqual(["sts:AssumeRoleWithWebIdentity"]);
  });

  it("names only actions IAM knows", async () => {
    // Prepare
    const sample = sampleRequest(`arn:aws:iam::${ACCOUNT}:user/sandbox-admin`);
    const actions = new Set(SERVED_OPERATIONS.flatMap((operation) => checksOf(operation, sample).map((check) => check.action)));
    // Act
    const unknown: string[] = [];
    for (const action of actions) {
      const request = { principal: sample.caller.arn, action, resource: { resource: "*", accountId: ACCOUNT }, contextVariables: {} };
      const result = await runSimulation({ request, identityPolicies: [], serviceControlPolicies: [], resourceControlPolicies: [] }, {});
      if (result.resultType === "error" && ["invalid.action", "invalid.service"].includes(result.errors.message)) unknown.push(action);
    }
    // Assess
    expect(actions.size).toBeGreaterThan(50);
    expect(unknown).toEqual([]);
  });

  it("asks for the tagging action too when a create call carries tags (tag-on-create)", () => {
    // Prepare
    const request = sampleRequest(`arn:aws:iam::${ACCOUNT}:user/sandbox-admin`);
    // Act
    const actions = (operation: string) => checksOf(operation, request).map((check) => check.action);
    // Assess
    expect(actions("iam:CreateRole")).toEqual(["iam:CreateRole", "iam:TagRole"]);
    expect(actions("iam:CreateUser")).toEqual(["iam:CreateUser", "iam:TagUser"]);
    expect(actions("iam:CreatePolicy")).toEqual(["iam:CreatePolicy", "iam:TagPolicy"]);
    expect(actions("iam:CreateOpenIDConnectProvider")).toEqual(["iam:CreateOpenIDConnectProvider", "iam:TagOpenIDConnectProvider"]);
    expect(actions("eks:CreateAccessEntry")).toEqual(["eks:CreateAccessEntry", "eks:TagResource"]);
    expect(actions("eks:CreatePodIdentityAssociation")).toEqual(["eks:CreatePodIdentityAssociation", "iam:PassRole", "eks:TagResource"]);
  });

  it("lets the sandbox admin (AdministratorAccess) pass every check, a principal with no policy none but GetCallerIdentity", async () => {
    // Prepare
    const adminRequest = sampleRequest(`arn:aws:iam::${ACCOUNT}:user/sandbox-admin`);
    const admin = newUser(adminRequest.state, { userName: "sandbox-admin" }, new Date(), 0);
    admin.attachedPolicyArns.push(ADMINISTRATOR_ACCESS_ARN);
    adminRequest.state.iam.users.set("sandbox-admin", admin);
    const nobodyRequest = sampleRequest(`arn:aws:iam::${ACCOUNT}:user/nobody`);
    nobodyRequest.state.iam.users.set("nobody", newUser(nobodyRequest.state, { userName: "nobody" }, new Date(), 0));
    // Act
    const adminDenied: string[] = [];
    const nobodyAllowed: string[] = [];
    for (const operation of SERVED_OPERATIONS) {
      for (const check of checksOf(operation, adminRequest)) {
        const decision = await decide(adminRequest.state, { arn: admin.arn, accountId: ACCOUNT }, check, REGION);
        if (!decision.allowed) adminDenied.push(`${operation} → ${check.action} on ${check.resource}`);
      }
      for (const check of checksOf(operation, nobodyRequest)) {
        const decision = await decide(nobodyRequest.state, { arn: nobodyRequest.caller.arn, accountId: ACCOUNT }, check, REGION);
        if (decision.allowed) nobodyAllowed.push(check.action);
      }
    }
    // Assess
    expect(adminDenied).toEqual([]);
    expect(nobodyAllowed).toEqual(["sts:GetCallerIdentity"]);
  });
});

const ROOT = resolve(import.meta.dirname, "../..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js|json)$/.test(name) ? [path] : [];
  });
}

/**
 * The files reached from `roots` through relative imports (`import type` and re-exports too): what a Lambda or the
 * stack may bundle, so a product file importing a sandbox file that imports iam-simulate is caught as well.
 */
function reachedFrom(roots: string[]): string[] {
  const reached = new Set<string>();
  const pending = [...roots];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (reached.has(file) || !existsSync(file)) continue;
    reached.add(file);
    for (const [, specifier] of readFileSync(file, "utf8").matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g))
      pending.push(resolve(dirname(file), specifier).replace(/\.js$/, ".ts"));
  }
  return [...reached];
}

describe("@cloud-copilot/iam-simulate (AGPL)", () => {
  it("is a devDependency, imported by the sandbox and the tests only, never by functions/ or stacks/", () => {
    // Prepare
    const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
    const productFiles = reachedFrom(["functions", "stacks"].flatMap((dir) => sourceFiles(join(ROOT, dir))));
    // Act
    const importers = productFiles
      .filter((file) => readFileSync(file, "utf8").includes("@cloud-copilot/"))
      .map((file) => relative(ROOT, file));
    // Assess
    expect(manifest.devDependencies?.["@cloud-copilot/iam-simulate"]).toBeDefined();
    expect(manifest.dependencies?.["@cloud-copilot/iam-simulate"]).toBeUndefined();
    expect(productFiles.length).toBeGreaterThan(20);
    expect(importers).toEqual([]);
  });

  it("the check follows imports past the first: local/cli.ts reaches the authorizer only through others (its lazy import())", () => {
    // Prepare
    const cli = join(ROOT, "local/cli.ts");
    expect(readFileSync(cli, "utf8")).not.toContain("authorizer");
    // Act
    const reached = reachedFrom([cli]).map((file) => relative(ROOT, file));
    // Assess
    expect(reached).toContain("local/aws/authorizer.ts");
  });
});
