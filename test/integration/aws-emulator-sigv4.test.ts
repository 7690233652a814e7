/**
 * Signatures on the AWS emulator: GetCallerIdentity answers for the key that signed the request, wrong secrets and
 * unknown keys are refused as AWS refuses them, and presigned GetCallerIdentity URLs (EKS bearer tokens) are checked
 * for signature, cluster id, expiry and host.
 */
import { describe, expect, it } from "vitest";
import type { IAMClient } from "@aws-sdk/client-iam";
import { GetCallerIdentityCommand, STSClient, STSServiceException } from "@aws-sdk/client-sts";
import { DescribeClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { NotAllowed } from "../../functions/lib/domain/errors.js";
import { normaliseError } from "../../functions/lib/workflow/normalise-error.js";
import { DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, type AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import { ACCOUNT, ADMIN_ARN, createLauncherRole, REGION, rejection, useAwsEmulator } from "../support/aws-emulator-clients.js";

let aws: AwsEmulator;
let iam: IAMClient;
let sts: STSClient;
useAwsEmulator((started) => ({ aws, iam, sts } = started));

describe("STS and request signatures", () => {
  it("answers GetCallerIdentity for the access key that signed the request", async () => {
    // Prepare
    await createLauncherRole(iam, "seqera-launcher");
    aws.addCredentials({
      accessKeyId: "ASIAEXAMPLESESSION01",
      secretAccessKey: "session-secret",
      sessionToken: "session-token",
      arn: `arn:aws:sts::${ACCOUNT}:assumed-role/seqera-launcher/run-1`,
    });
    const assumed = new STSClient({
      endpoint: aws.url,
      region: REGION,
      maxAttempts: 1,
      credentials: { accessKeyId: "ASIAEXAMPLESESSION01", secretAccessKey: "session-secret", sessionToken: "session-token" },
    });
    // Act
    const admin = await sts.send(new GetCallerIdentityCommand({}));
    const session = await assumed.send(new GetCallerIdentityCommand({}));
    assumed.destroy();
    // Assess
    expect(admin).toMatchObject({ Account: ACCOUNT, Arn: ADMIN_ARN, UserId: aws.state.iam.users.get("sandbox-admin")!.userId });
    expect(session.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/seqera-launcher/run-1`);
    expect(session.UserId).toBe(`${aws.state.iam.roles.get("seqera-launcher")!.roleId}:run-1`);
  });

  it("refuses a wrong secret (SignatureDoesNotMatch) and an unknown key (InvalidClientTokenId / UnrecognizedClientException)", async () => {
    // Prepare
    const wrongSecret = new STSClient({
      endpoint: aws.url,
      region: REGION,
      maxAttempts: 1,
      credentials: { accessKeyId: DEFAULT_ACCESS_KEY_ID, secretAccessKey: "wrong" },
    });
    const unknownKey = { accessKeyId: "AKIAUNKNOWNKEY000000", secretAccessKey: "x" };
    const unknownSts = new STSClient({ endpoint: aws.url, region: REGION, maxAttempts: 1, credentials: unknownKey });
    const unknownEks = new EKSClient({ endpoint: aws.url, region: REGION, maxAttempts: 1, credentials: unknownKey });
    // Act
    const badSignature = await rejection(wrongSecret.send(new GetCallerIdentityCommand({})));
    const unknownToSts = await rejection(unknownSts.send(new GetCallerIdentityCommand({})));
    const unknownToEks = await rejection(unknownEks.send(new DescribeClusterCommand({ name: "research" })));
    for (const client of [wrongSecret, unknownSts, unknownEks]) client.destroy();
    // Assess
    expect(badSignature).toBeInstanceOf(STSServiceException);
    expect(badSignature.name).toBe("SignatureDoesNotMatch");
    expect(badSignature.$metadata?.httpStatusCode).toBe(403);
    expect(unknownToSts.name).toBe("InvalidClientTokenId");
    expect(unknownToEks.name).toBe("UnrecognizedClientException");
    expect(normaliseError(unknownToEks)).toBeInstanceOf(NotAllowed);
  });
});

describe("verifyPresignedCallerIdentity", () => {
  async function presignedUrl(
    opts: { clusterName?: string; expiresIn?: number; signingDate?: Date; secret?: string; signClusterId?: boolean; host?: string } = {},
  ): Promise<string> {
    const host = opts.host ?? "sts.eu-west-1.amazonaws.com";
    const signer = new SignatureV4({
      credentials: { accessKeyId: DEFAULT_ACCESS_KEY_ID, secretAccessKey: opts.secret ?? DEFAULT_SECRET_ACCESS_KEY },
      region: REGION,
      service: "sts",
      sha256: Sha256,
    });
    const headers: Record<string, string> = { host };
    if (opts.signClusterId ?? true) headers["x-k8s-aws-id"] = opts.clusterName ?? "research";
    const [hostname, port] = host.split(":");
    const signed = await signer.presign(
      new HttpRequest({
        method: "GET",
        protocol: "https:",
        hostname,
        port: port ? Number(port) : undefined,
        path: "/",
        query: { Action: "GetCallerIdentity", Version: "2011-06-15" },
        headers,
      }),
      { expiresIn: opts.expiresIn ?? 60, signingDate: opts.signingDate },
    );
    return `https://${host}/?${new URLSearchParams(signed.query as Record<string, string>).toString()}`;
  }

  it("returns the caller of a valid token, and which cluster it was signed for", async () => {
    // Act
    const caller = await aws.verifyPresignedCallerIdentity(await presignedUrl(), { clusterName: "research" });
    const anyCluster = await aws.verifyPresignedCallerIdentity(await presignedUrl());
    // Assess
    expect(caller).toEqual({
      arn: ADMIN_ARN,
      accountId: ACCOUNT,
      userId: aws.state.iam.users.get("sandbox-admin")!.userId,
      accessKeyId: DEFAULT_ACCESS_KEY_ID,
      clusterName: "research",
    });
    expect(anyCluster?.clusterName).toBe("research");
  });

  it("accepts a token signed for the sandbox's own host and port", async () => {
    // Act
    const caller = await aws.verifyPresignedCallerIdentity(await presignedUrl({ host: new URL(aws.url).host }), {
      clusterName: "research",
    });
    // Assess
    expect(caller?.arn).toBe(ADMIN_ARN);
  });

  it.each([
    ["signed for another cluster", { clusterName: "legacy" }],
    ["signed with the wrong secret", { secret: "wrong" }],
    ["without the cluster id among the signed headers", { signClusterId: false }],
    ["with X-Amz-Expires above 900", { expiresIn: 901 }],
    ["older than 15 minutes", { signingDate: new Date(Date.now() - 16 * 60_000) }],
  ])("refuses a token %s", async (_label, opts) => {
    // Act
    const caller = await aws.verifyPresignedCallerIdentity(await presignedUrl(opts), { clusterName: "research" });
    // Assess
    expect(caller).toBeUndefined();
  });

  it("refuses a token whose signature was tampered with, and one from an unknown key", async () => {
    // Prepare
    const url = new URL(await presignedUrl());
    const signature = url.searchParams.get("X-Amz-Signature")!;
    url.searchParams.set("X-Amz-Signature", (signature[0] === "0" ? "1" : "0") + signature.slice(1));
    const unknown = new URL(await presignedUrl());
    unknown.searchParams.set(
      "X-Amz-Credential",
      unknown.searchParams.get("X-Amz-Credential")!.replace(DEFAULT_ACCESS_KEY_ID, "AKIAUNKNOWNKEY000000"),
    );
    // Act
    const tampered = await aws.verifyPresignedCallerIdentity(url.toString(), { clusterName: "research" });
    const unknownKey = await aws.verifyPresignedCallerIdentity(unknown.toString(), { clusterName: "research" });
    // Assess
    expect(tampered).toBeUndefined();
    expect(unknownKey).toBeUndefined();
  });

  it("answers the presigned GET itself, in JSON when asked, as STS does for the EKS authenticator", async () => {
    // Prepare
    const url = new URL(await presignedUrl({ host: new URL(aws.url).host }));
    const local = `${aws.url}/${url.search}`;
    // Act
    const ok = await fetch(local, { headers: { "x-k8s-aws-id": "research", accept: "application/json" } });
    const wrongCluster = await fetch(local, { headers: { "x-k8s-aws-id": "legacy" } });
    // Assess
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ GetCallerIdentityResponse: { GetCallerIdentityResult: { Arn: ADMIN_ARN, Account: ACCOUNT } } });
    expect(wrongCluster.status).toBe(403);
    expect(await wrongCluster.text()).toContain("<Code>SignatureDoesNotMatch</Code>");
  });
});
