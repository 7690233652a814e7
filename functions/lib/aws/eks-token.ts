/**
 * The bearer token EKS accepts (what `aws eks get-token` and aws-iam-authenticator produce):
 * `k8s-aws-v1.` + base64url (no padding) of an STS `GetCallerIdentity` URL presigned with SigV4, with the
 * cluster name in the signed header `x-k8s-aws-id`. The API server replays the URL to STS to learn who we
 * are; the header binds the token to one cluster. No secret leaves the Lambda: only a signature.
 *
 * The URL is presigned for the regional STS endpoint (`https://sts.<region>.amazonaws.com`, `.com.cn` in China)
 * even when `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` move the SDK's STS client elsewhere (a VPC endpoint, the
 * sandbox): EKS accepts only tokens for its partition's STS hosts and replays the URL itself. Only the explicit
 * setting `EKS_TOKEN_STS_ENDPOINT` (e.g. `https://sts-fips.us-east-1.amazonaws.com`) chooses another endpoint.
 * The sandbox needs none: its API server checks the token as EKS does and verifies it with the emulated STS.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { CONFIG_ENV } from "../domain/deploy-config.js";
import { stsClient } from "./clients.js";

export const TOKEN_PREFIX = "k8s-aws-v1.";
/** The header that binds the presigned URL to one cluster. */
export const CLUSTER_ID_HEADER = "x-k8s-aws-id";
/** How long STS accepts the presigned URL (the API server caches the answer for up to 15 minutes). */
export const PRESIGN_EXPIRES_SECONDS = 60;
/** EKS honours a token for 15 minutes; we treat it as good for 14 and regenerate before that. */
export const TOKEN_LIFETIME_MS = 14 * 60_000;

export interface EksTokenOptions {
  /** Defaults to the SDK's default credential chain (the STS client's). */
  credentials?: AwsCredentialIdentityProvider;
  /** Signing time (tests). */
  now?: Date;
  /** Overrides the STS endpoint (else EKS_TOKEN_STS_ENDPOINT, then the regional endpoint). */
  stsEndpoint?: string;
}

export interface EksToken {
  token: string;
  expiresAt: Date;
}

/** The setting that presigns tokens for another STS endpoint than the regional one (README, configuration). */
export const EKS_TOKEN_STS_ENDPOINT = CONFIG_ENV.eksTokenStsEndpoint;

/**
 * The regional STS endpoint EKS expects, unless `EKS_TOKEN_STS_ENDPOINT` says otherwise. `AWS_ENDPOINT_URL_STS` and
 * `AWS_ENDPOINT_URL` are not read: a token for their host (a VPC endpoint) is one EKS rejects.
 */
export function stsEndpointFor(region: string, env: NodeJS.ProcessEnv = process.env): string {
  const override = env[EKS_TOKEN_STS_ENDPOINT];
  if (override) return override;
  const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return `https://sts.${region}.${suffix}`;
}

/** RFC 3986 escaping, as SigV4 canonicalises query values. */
function escapeUri(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function toUrl(request: HttpRequest): string {
  const query = Object.entries(request.query)
    .flatMap(([key, value]) => (Array.isArray(value) ? value.map((v) => [key, v] as const) : value == null ? [] : [[key, value] as const]))
    .map(([key, value]) => `${escapeUri(key)}=${escapeUri(value)}`)
    .join("&");
  const port = request.port ? `:${request.port}` : "";
  return `${request.protocol}//${request.hostname}${port}${request.path}?${query}`;
}

/** Node's base64url never pads. */
function base64UrlNoPadding(value: string): string {
  return Buffer.from(value, "utf8").toString("base64url");
}

/** The presigned GetCallerIdentity URL inside a token (tests and the sandbox's authenticator). */
export function decodeEksToken(token: string): string | undefined {
  if (!token.startsWith(TOKEN_PREFIX)) return undefined;
  return Buffer.from(token.slice(TOKEN_PREFIX.length), "base64url").toString("utf8");
}

export async function eksBearerToken(clusterName: string, region: string, opts: EksTokenOptions = {}): Promise<EksToken> {
  const now = opts.now ?? new Date();
  const endpoint = new URL(opts.stsEndpoint ?? stsEndpointFor(region));
  const host = endpoint.host; // includes a non-default port (sandbox)
  const request = new HttpRequest({
    method: "GET",
    protocol: endpoint.protocol,
    hostname: endpoint.hostname,
    ...(endpoint.port ? { port: Number(endpoint.port) } : {}),
    path: endpoint.pathname || "/",
    query: { Action: "GetCallerIdentity", Version: "2011-06-15" },
    // Both are signed: `host` because SigV4 requires it, the cluster id so the token is for this cluster only.
    headers: { host, [CLUSTER_ID_HEADER]: clusterName },
  });
  const signer = new SignatureV4({
    credentials: opts.credentials ?? stsClient(region).config.credentials,
    region,
    service: "sts",
    sha256: Sha256,
  });
  const presigned = await signer.presign(request, { expiresIn: PRESIGN_EXPIRES_SECONDS, signingDate: now });
  return {
    token: TOKEN_PREFIX + base64UrlNoPadding(toUrl(presigned as HttpRequest)),
    expiresAt: new Date(now.getTime() + TOKEN_LIFETIME_MS),
  };
}
