/**
 * The emulated clusters' OIDC issuers: each seeded cluster with an issuer URL gets an RSA signing key, signs
 * service-account tokens with it (RS256 JWTs with the claims the kubelet projects for IRSA), and STS checks
 * AssumeRoleWithWebIdentity tokens against it, as AWS STS checks them against the keys the issuer publishes.
 */
import { createPublicKey, generateKeyPairSync, randomUUID, sign, verify, type JsonWebKey, type KeyObject } from "node:crypto";

export interface OidcIssuerKeys {
  /** `https://oidc.eks.<region>.amazonaws.com/id/<ID>` */
  issuer: string;
  /** the `kid` the tokens name in their header */
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** The claims STS reads from a web identity token. */
export interface WebIdentityClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  nbf?: number;
  [claim: string]: unknown;
}

export interface ServiceAccountTokenRequest {
  namespace: string;
  serviceAccount: string;
  /** default `sts.amazonaws.com`, the audience EKS projects for IRSA */
  audience?: string | string[];
  /** default 3600 */
  expiresInSeconds?: number;
  now?: Date;
}

/** No seeded cluster's issuer answers the request for a token. */
export class IssuerNotFound extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IssuerNotFound";
  }
}

export type TokenProblem = "malformed" | "unknown-issuer" | "bad-signature" | "expired" | "not-yet-valid";

export function newIssuerKeys(issuer: string): OidcIssuerKeys {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { issuer, kid: randomUUID(), privateKey, publicKey };
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

export function signToken(keys: OidcIssuerKeys, claims: WebIdentityClaims): string {
  const signingInput = `${base64url({ alg: "RS256", kid: keys.kid, typ: "JWT" })}.${base64url(claims)}`;
  const signature = sign("RSA-SHA256", Buffer.from(signingInput), keys.privateKey).toString("base64url");
  return `${signingInput}.${signature}`;
}

/** The token a pod's projected service-account volume holds (what the AWS SDK's web identity provider reads). */
export function serviceAccountToken(keys: OidcIssuerKeys, request: ServiceAccountTokenRequest): string {
  const iat = Math.floor((request.now ?? new Date()).getTime() / 1000);
  return signToken(keys, {
    iss: keys.issuer,
    sub: `system:serviceaccount:${request.namespace}:${request.serviceAccount}`,
    aud: request.audience ?? "sts.amazonaws.com",
    iat,
    nbf: iat,
    exp: iat + (request.expiresInSeconds ?? 3600),
    "kubernetes.io": { namespace: request.namespace, serviceaccount: { name: request.serviceAccount, uid: randomUUID() } },
  });
}

function decodePart(part: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as unknown;
    return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function hasClaims(payload: Record<string, unknown>): payload is WebIdentityClaims {
  const aud = payload.aud;
  const audOk = typeof aud === "string" || (Array.isArray(aud) && aud.every((a) => typeof a === "string"));
  return typeof payload.iss === "string" && typeof payload.sub === "string" && audOk && typeof payload.exp === "number";
}

/** The token's claims, once its issuer is known, its RS256 signature holds and it is within its validity. */
export function verifyToken(
  token: string,
  keysFor: (issuer: string) => OidcIssuerKeys | undefined,
  now = new Date(),
): { claims: WebIdentityClaims } | { problem: TokenProblem; claims?: WebIdentityClaims } {
  const parts = token.split(".");
  if (parts.length !== 3) return { problem: "malformed" };
  const header = decodePart(parts[0]!);
  const payload = decodePart(parts[1]!);
  if (header?.alg !== "RS256" || !payload || !hasClaims(payload)) return { problem: "malformed" };
  const keys = keysFor(payload.iss);
  if (!keys || (header.kid !== undefined && header.kid !== keys.kid)) return { problem: "unknown-issuer", claims: payload };
  const signed = verify("RSA-SHA256", Buffer.from(`${parts[0]}.${parts[1]}`), keys.publicKey, Buffer.from(parts[2]!, "base64url"));
  if (!signed) return { problem: "bad-signature", claims: payload };
  const seconds = now.getTime() / 1000;
  if (seconds >= payload.exp) return { problem: "expired", claims: payload };
  if (typeof payload.nbf === "number" && seconds < payload.nbf - 60) return { problem: "not-yet-valid", claims: payload };
  return { claims: payload };
}

/** The issuer's JSON Web Key Set, as `<issuer>/keys` publishes it. */
export function issuerJwks(keys: OidcIssuerKeys): { keys: JsonWebKey[] } {
  const jwk = createPublicKey(keys.publicKey).export({ format: "jwk" });
  return { keys: [{ ...jwk, kid: keys.kid, alg: "RS256", use: "sig" }] };
}
