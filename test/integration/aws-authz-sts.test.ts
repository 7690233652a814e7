/**
 * The emulator's STS lets a caller in as AWS does: AssumeRole only when the role's trust policy (and, for a trust on
 * the account, the caller's own policies) allow it; AssumeRoleWithWebIdentity only with a token the cluster's issuer
 * signed, for the :sub and :aud the trust names; and the sessions it issues carry the role's permissions in every
 * later call, until they expire. Driven by the real SDK v3 clients.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { DeleteRolePolicyCommand, GetRoleCommand } from "@aws-sdk/client-iam";
import {
  AssumeRoleCommand,
  AssumeRoleWithWebIdentityCommand,
  ExpiredTokenException,
  GetCallerIdentityCommand,
  InvalidIdentityTokenException,
  STSServiceException,
} from "@aws-sdk/client-sts";
import { AccessDeniedException as EksAccessDenied, DescribeClusterCommand, ListClustersCommand } from "@aws-sdk/client-eks";
import { oidcProviderArn } from "../../functions/lib/domain/policies.js";
import { newIssuerKeys, serviceAccountToken } from "../../local/aws/oidc-issuer.js";
import {
  ACCOUNT,
  admin,
  allow,
  aws,
  CLUSTER_ARN,
  clientsAs,
  denial,
  ISSUER,
  ISSUER_HOST,
  policy,
  rejection,
  sessionOf,
  TRUST_ACCOUNT,
  useAuthzEmulator,
} from "../support/aws-authz-sessions.js";

useAuthzEmulator();

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
