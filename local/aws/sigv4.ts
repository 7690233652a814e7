/**
 * AWS Signature Version 4, checked the way AWS checks it: the emulator recomputes the signature with
 * the secret of the access key named in the credential scope (@smithy/signature-v4, the signer the SDK
 * itself uses) and compares. Header-signed requests (SDK, CLI) and presigned URLs (the EKS bearer token:
 * a presigned STS GetCallerIdentity) are both covered.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

export interface CredentialScope {
  accessKeyId: string;
  /** yyyymmdd */
  date: string;
  region: string;
  service: string;
}

export interface ParsedAuthorization extends CredentialScope {
  signedHeaders: string[];
  signature: string;
}

/** An access key the emulator knows, and the principal it belongs to. */
export interface KnownCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** when set, requests must carry this session token (temporary credentials) */
  sessionToken?: string;
  /** `arn:aws:iam::<account>:user/<name>` or `arn:aws:sts::<account>:assumed-role/<role>/<session>` */
  arn: string;
  /** temporary credentials (an STS session) stop working at this time */
  expiration?: Date;
  /** the session policy given to AssumeRole: the session can do at most what it allows */
  sessionPolicy?: string;
}

/** The parts a signature is computed over. */
export interface SignableRequest {
  method: string;
  protocol: "http:" | "https:";
  /** the Host header as sent (`127.0.0.1:4566`) */
  host: string;
  /** raw, still percent-encoded path */
  path: string;
  /** decoded query parameters */
  query: Record<string, string | string[]>;
  /** lower-cased header names */
  headers: Record<string, string>;
  body?: Uint8Array;
}

/** The EKS authenticator accepts a token for 15 minutes after X-Amz-Date, and X-Amz-Expires of at most 900. */
export const PRESIGNED_TOKEN_LIFETIME_MS = 15 * 60 * 1000;
export const MAX_PRESIGNED_EXPIRES_SECONDS = 900;

export function parseCredentialScope(credential: string): CredentialScope | undefined {
  const [accessKeyId, date, region, service, terminator] = credential.split("/");
  if (!accessKeyId || !date || !region || !service || terminator !== "aws4_request") return undefined;
  return { accessKeyId, date, region, service };
}

/** `AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/eks/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc` */
export function parseAuthorization(header: string | undefined): ParsedAuthorization | undefined {
  if (!header?.startsWith("AWS4-HMAC-SHA256 ")) return undefined;
  const fields = Object.fromEntries(
    header
      .slice("AWS4-HMAC-SHA256 ".length)
      .split(",")
      .map((part) => part.trim().split("=") as [string, string]),
  );
  const scope = parseCredentialScope(fields.Credential ?? "");
  if (!scope || !fields.SignedHeaders || !fields.Signature) return undefined;
  return { ...scope, signedHeaders: fields.SignedHeaders.split(";"), signature: fields.Signature };
}

/** `20240101T120000Z` → Date */
function parseAmzDate(value: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? "");
  if (!m) return undefined;
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

function splitHost(host: string): { hostname: string; port?: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  return m ? { hostname: m[1], ...(m[2] ? { port: Number(m[2]) } : {}) } : { hostname: host };
}

function signerFor(credentials: KnownCredentials, region: string, service: string): SignatureV4 {
  // No session token here: a signed x-amz-security-token header/parameter is taken from the request as sent.
  return new SignatureV4({
    credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
    region,
    service,
    sha256: Sha256,
    uriEscapePath: true,
    // Never add x-amz-content-sha256 ourselves: only a client that signed it has it in its canonical request.
    applyChecksum: false,
  });
}

function sameSignature(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** Only the headers the client said it signed, so the recomputation covers exactly what the client covered. */
function signedHeadersOf(request: SignableRequest, names: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of names) {
    if (name === "host") headers.host = request.host;
    else if (request.headers[name] !== undefined) headers[name] = request.headers[name];
  }
  return headers;
}

/** Checks an Authorization-header signature (SDK and CLI requests). */
export async function verifyHeaderSignature(
  request: SignableRequest,
  auth: ParsedAuthorization,
  credentials: KnownCredentials,
): Promise<boolean> {
  const signingDate = parseAmzDate(request.headers["x-amz-date"]);
  if (!signingDate) return false;
  // A signed payload hash must be the body's (AWS checks it; the signature alone would not).
  const claimedHash = request.headers["x-amz-content-sha256"];
  if (
    claimedHash &&
    claimedHash !== "UNSIGNED-PAYLOAD" &&
    claimedHash !==
      createHash("sha256")
        .update(request.body ?? Buffer.alloc(0))
        .digest("hex")
  )
    return false;
  const signer = signerFor(credentials, auth.region, auth.service);
  const { hostname, port } = splitHost(request.host);
  const toSign = new HttpRequest({
    method: request.method,
    protocol: request.protocol,
    hostname,
    port,
    path: request.path,
    query: request.query,
    headers: signedHeadersOf(request, auth.signedHeaders),
    body: request.body?.length ? request.body : undefined,
  });
  const signed = await signer.sign(toSign, {
    signingDate,
    signingRegion: auth.region,
    signingService: auth.service,
    signableHeaders: new Set(auth.signedHeaders),
  });
  const recomputed = parseAuthorization(String(signed.headers.authorization));
  return (
    recomputed !== undefined &&
    recomputed.signedHeaders.join(";") === auth.signedHeaders.join(";") &&
    sameSignature(recomputed.signature, auth.signature)
  );
}

export type PresignedProblem =
  | "malformed"
  | "unsigned-cluster-id"
  | "bad-expires"
  | "expired"
  | "unknown-access-key"
  | "bad-session-token"
  | "signature-mismatch";

export interface PresignedCheck {
  ok: boolean;
  problem?: PresignedProblem;
  credentials?: KnownCredentials;
  scope?: CredentialScope;
}

/**
 * Checks a presigned request's query signature (X-Amz-Signature) the way aws-iam-authenticator and STS
 * do together: X-Amz-Expires at most 900, X-Amz-Date less than 15 minutes old, the cluster id header
 * signed, and the signature right for the access key's secret. `headers` carries the unsigned-by-URL
 * header values the verifier supplies (the cluster id), as the authenticator sends them to STS.
 */
export async function verifyPresignedRequest(
  request: SignableRequest,
  lookup: (accessKeyId: string) => KnownCredentials | undefined,
  opts: { now?: Date; requireSignedHeader?: string } = {},
): Promise<PresignedCheck> {
  const param = (name: string): string | undefined => {
    const key = Object.keys(request.query).find((k) => k.toLowerCase() === name.toLowerCase());
    const value = key === undefined ? undefined : request.query[key];
    return Array.isArray(value) ? value[0] : value;
  };
  const scope = parseCredentialScope(param("X-Amz-Credential") ?? "");
  const signature = param("X-Amz-Signature");
  const signedHeaders = (param("X-Amz-SignedHeaders") ?? "").split(";").filter(Boolean);
  const signingDate = parseAmzDate(param("X-Amz-Date"));
  if (!scope || !signature || !signingDate || param("X-Amz-Algorithm") !== "AWS4-HMAC-SHA256") return { ok: false, problem: "malformed" };
  if (opts.requireSignedHeader && !signedHeaders.includes(opts.requireSignedHeader))
    return { ok: false, problem: "unsigned-cluster-id", scope };
  const expires = Number(param("X-Amz-Expires"));
  if (!Number.isInteger(expires) || expires < 0 || expires > MAX_PRESIGNED_EXPIRES_SECONDS)
    return { ok: false, problem: "bad-expires", scope };
  const now = opts.now ?? new Date();
  if (now.getTime() > signingDate.getTime() + PRESIGNED_TOKEN_LIFETIME_MS) return { ok: false, problem: "expired", scope };

  const credentials = lookup(scope.accessKeyId);
  if (!credentials) return { ok: false, problem: "unknown-access-key", scope };
  if (credentials.sessionToken !== undefined && param("X-Amz-Security-Token") !== credentials.sessionToken) {
    return { ok: false, problem: "bad-session-token", scope };
  }

  const { hostname, port } = splitHost(request.host);
  const query = Object.fromEntries(Object.entries(request.query).filter(([key]) => key !== "X-Amz-Signature"));
  const presigned = await signerFor(credentials, scope.region, scope.service).presign(
    new HttpRequest({
      method: request.method,
      protocol: request.protocol,
      hostname,
      port,
      path: request.path,
      query,
      headers: signedHeadersOf(request, signedHeaders),
    }),
    {
      signingDate,
      expiresIn: expires,
      signingRegion: scope.region,
      signingService: scope.service,
      signableHeaders: new Set(signedHeaders),
    },
  );
  const recomputed = presigned.query?.["X-Amz-Signature"];
  if (
    typeof recomputed === "string" &&
    presigned.query?.["X-Amz-SignedHeaders"] === signedHeaders.join(";") &&
    sameSignature(recomputed, signature)
  ) {
    return { ok: true, credentials, scope };
  }
  return { ok: false, problem: "signature-mismatch", scope, credentials };
}

/** Decoded query parameters of a URL; repeated keys become arrays. */
export function decodeQuery(search: URLSearchParams): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of search) {
    const existing = query[key];
    query[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return query;
}
