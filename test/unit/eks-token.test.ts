import { createHash, createHmac } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CLUSTER_ID_HEADER,
  decodeEksToken,
  eksBearerToken,
  PRESIGN_EXPIRES_SECONDS,
  stsEndpointFor,
  TOKEN_LIFETIME_MS,
  TOKEN_PREFIX,
} from "../../functions/lib/aws/eks-token.js";
import { resetClients } from "../../functions/lib/aws/clients.js";

const ACCESS_KEY = "AKIDEXAMPLETOKEN";
const SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const credentials = async () => ({ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });
const NOW = new Date("2025-03-04T05:06:07Z");
const EMPTY_SHA256 = createHash("sha256").update("").digest("hex");
const savedEnv = { ...process.env };

/** An independent SigV4 check: rebuild the canonical request from the URL alone and recompute the signature. */
function recomputeSignature(url: URL, clusterName: string, secretKey: string): string {
  const params = [...url.searchParams.entries()].filter(([k]) => k !== "X-Amz-Signature");
  const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const canonicalQuery = params
    .map(([k, v]) => [encode(k), encode(v)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const signedHeaders = url.searchParams.get("X-Amz-SignedHeaders")!;
  const headerValues: Record<string, string> = { host: url.host, [CLUSTER_ID_HEADER]: clusterName };
  const canonicalHeaders = signedHeaders
    .split(";")
    .map((h) => `${h}:${headerValues[h]}\n`)
    .join("");
  const canonicalRequest = ["GET", url.pathname, canonicalQuery, canonicalHeaders, signedHeaders, EMPTY_SHA256].join("\n");
  const amzDate = url.searchParams.get("X-Amz-Date")!;
  const [, date, region, service] = url.searchParams.get("X-Amz-Credential")!.split("/");
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, createHash("sha256").update(canonicalRequest).digest("hex")].join("\n");
  let key: Buffer = createHmac("sha256", `AWS4${secretKey}`).update(date).digest();
  for (const part of [region, service, "aws4_request"]) key = createHmac("sha256", key).update(part).digest();
  return createHmac("sha256", key).update(stringToSign).digest("hex");
}

function urlOf(token: string): URL {
  const decoded = decodeEksToken(token);
  expect(decoded).toBeDefined();
  return new URL(decoded!);
}

describe("eksBearerToken", () => {
  beforeEach(() => {
    delete process.env.AWS_ENDPOINT_URL;
    delete process.env.AWS_ENDPOINT_URL_STS;
    delete process.env.EKS_TOKEN_STS_ENDPOINT;
  });
  afterEach(() => {
    process.env = { ...savedEnv };
    resetClients();
  });

  it("is k8s-aws-v1. + base64url without padding of a presigned regional STS GetCallerIdentity URL", async () => {
    // Prepare
    const clusterName = "research";

    // Act
    const { token } = await eksBearerToken(clusterName, "eu-west-1", { credentials, now: NOW });

    // Assess
    expect(token.startsWith(TOKEN_PREFIX)).toBe(true);
    const body = token.slice(TOKEN_PREFIX.length);
    expect(body).toMatch(/^[A-Za-z0-9_-]+$/); // base64url alphabet, no '=' padding, no '+' or '/'
    const url = urlOf(token);
    expect(url.protocol).toBe("https:");
    expect(url.host).toBe("sts.eu-west-1.amazonaws.com");
    expect(url.pathname).toBe("/");
    const q = url.searchParams;
    expect(q.get("Action")).toBe("GetCallerIdentity");
    expect(q.get("Version")).toBe("2011-06-15");
    expect(q.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
    expect(q.get("X-Amz-Credential")).toBe(`${ACCESS_KEY}/20250304/eu-west-1/sts/aws4_request`);
    expect(q.get("X-Amz-Date")).toBe("20250304T050607Z");
    expect(q.get("X-Amz-Expires")).toBe(String(PRESIGN_EXPIRES_SECONDS));
    expect(q.get("X-Amz-Expires")).toBe("60");
    expect(q.get("X-Amz-SignedHeaders")!.split(";")).toEqual(["host", "x-k8s-aws-id"]);
    expect(q.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    // The cluster name travels only as a signed header, never in the URL.
    expect(token).not.toContain(clusterName);
    expect(decodeEksToken(token)).not.toContain(clusterName);
  });

  it("carries a signature that recomputes from the URL, the cluster name and the secret key", async () => {
    // Prepare
    const { token } = await eksBearerToken("research", "eu-west-1", { credentials, now: NOW });
    const url = urlOf(token);

    // Act
    const expected = recomputeSignature(url, "research", SECRET_KEY);

    // Assess
    expect(url.searchParams.get("X-Amz-Signature")).toBe(expected);
    // Bound to the cluster: the same URL does not verify for another cluster or another secret.
    expect(recomputeSignature(url, "other-cluster", SECRET_KEY)).not.toBe(expected);
    expect(recomputeSignature(url, "research", "not-the-secret")).not.toBe(expected);
  });

  it("includes the session token of temporary credentials (and still verifies)", async () => {
    // Prepare
    const temporary = async () => ({
      accessKeyId: "ASIAEXAMPLE",
      secretAccessKey: SECRET_KEY,
      sessionToken: "FwoGZXIvYXdzE+session/token==",
    });

    // Act
    const { token } = await eksBearerToken("research", "eu-west-1", { credentials: temporary, now: NOW });

    // Assess
    const url = urlOf(token);
    expect(url.searchParams.get("X-Amz-Security-Token")).toBe("FwoGZXIvYXdzE+session/token==");
    expect(url.searchParams.get("X-Amz-Signature")).toBe(recomputeSignature(url, "research", SECRET_KEY));
  });

  it("expires 14 minutes after signing, and a token signed later differs", async () => {
    // Prepare
    const later = new Date(NOW.getTime() + 13 * 60_000);

    // Act
    const first = await eksBearerToken("research", "eu-west-1", { credentials, now: NOW });
    const second = await eksBearerToken("research", "eu-west-1", { credentials, now: later });

    // Assess
    expect(TOKEN_LIFETIME_MS).toBe(14 * 60_000);
    expect(first.expiresAt.toISOString()).toBe("2025-03-04T05:20:07.000Z");
    expect(second.expiresAt.getTime()).toBe(later.getTime() + 14 * 60_000);
    expect(urlOf(second.token).searchParams.get("X-Amz-Date")).toBe("20250304T051907Z");
    expect(second.token).not.toBe(first.token);
  });

  // #13 point 6 changes this behaviour: AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL no longer move the token's host
  // (a VPC endpoint's host gives tokens EKS rejects); only EKS_TOKEN_STS_ENDPOINT does.
  it("signs for the regional STS endpoint even when AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL are set", async () => {
    // Prepare
    process.env.AWS_ENDPOINT_URL = "http://127.0.0.1:1111";
    process.env.AWS_ENDPOINT_URL_STS = "https://vpce-0abc-sts.sts.eu-west-1.vpce.amazonaws.com";

    // Act
    const { token } = await eksBearerToken("research", "eu-west-1", { credentials, now: NOW });

    // Assess
    const url = urlOf(token);
    expect(`${url.protocol}//${url.host}`).toBe("https://sts.eu-west-1.amazonaws.com");
    expect(url.searchParams.get("X-Amz-Credential")).toContain("/eu-west-1/sts/");
    expect(url.searchParams.get("X-Amz-Signature")).toBe(recomputeSignature(url, "research", SECRET_KEY));
  });

  it("signs for EKS_TOKEN_STS_ENDPOINT when set (host with port signed), and an explicit stsEndpoint wins over it", async () => {
    // Prepare
    process.env.AWS_ENDPOINT_URL_STS = "http://localhost:7000";
    process.env.EKS_TOKEN_STS_ENDPOINT = "https://sts-fips.us-east-1.amazonaws.com:8443";

    // Act
    const fromSetting = await eksBearerToken("research", "us-east-1", { credentials, now: NOW });
    const explicit = await eksBearerToken("research", "eu-west-1", { credentials, now: NOW, stsEndpoint: "https://sts.example.test:8443" });

    // Assess
    expect(urlOf(fromSetting.token).host).toBe("sts-fips.us-east-1.amazonaws.com:8443");
    expect(urlOf(fromSetting.token).searchParams.get("X-Amz-Signature")).toBe(
      recomputeSignature(urlOf(fromSetting.token), "research", SECRET_KEY),
    );
    expect(urlOf(explicit.token).host).toBe("sts.example.test:8443");
    expect(stsEndpointFor("cn-north-1", {})).toBe("https://sts.cn-north-1.amazonaws.com.cn");
    expect(stsEndpointFor("eu-west-1", { AWS_ENDPOINT_URL_STS: "http://127.0.0.1:4566" })).toBe("https://sts.eu-west-1.amazonaws.com");
  });

  it("uses the SDK default credential chain when none are given", async () => {
    // Prepare: vitest.config.ts sets fake keys in the environment
    const envKey = process.env.AWS_ACCESS_KEY_ID!;

    // Act
    const { token } = await eksBearerToken("research", "eu-west-1", { now: NOW });

    // Assess
    const url = urlOf(token);
    expect(url.searchParams.get("X-Amz-Credential")!.startsWith(`${envKey}/`)).toBe(true);
    expect(url.searchParams.get("X-Amz-Signature")).toBe(recomputeSignature(url, "research", process.env.AWS_SECRET_ACCESS_KEY!));
  });

  it("decodeEksToken refuses anything without the k8s-aws-v1 prefix", () => {
    // Prepare
    const notAToken = Buffer.from("https://sts.amazonaws.com/").toString("base64url");

    // Act
    const decoded = decodeEksToken(notAToken);

    // Assess
    expect(decoded).toBeUndefined();
  });
});
