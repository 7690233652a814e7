/**
 * Emulated STS (query protocol, version 2011-06-15):
 *   GetCallerIdentity          who signed the request (header-signed, or a presigned URL as the EKS authenticator forwards it)
 *   AssumeRole                 the caller's identity policies and the role's trust policy (principal, sts:ExternalId) are
 *                              evaluated before this handler runs (operation-checks.ts); here the role must exist and be
 *                              visible, and the session is issued
 *   AssumeRoleWithWebIdentity  unsigned: the token must be an RS256 JWT signed by a cluster's emulated OIDC issuer that IAM
 *                              has a provider for, for an audience the provider lists, unexpired, and the role's trust
 *                              policy must let that provider in with the token's `:sub`/`:aud`
 * The credentials issued are registered with the emulator: every later call made with them is that role's session,
 * authorized by the role's policies (and boundary, and the session policy if one was given).
 */
import { randomBytes } from "node:crypto";
import { issuerHost, oidcProviderArn } from "../../functions/lib/domain/policies.js";
import type { AwsState, IamRole } from "./account-state.js";
import { webIdentityTrustAllows } from "./authorizer.js";
import { entityVisibility, iamEntityByArn } from "./iam-emulator.js";
import { verifyToken, type WebIdentityClaims } from "./oidc-issuer.js";
import { AwsApiError, validationError, type AwsRequest } from "./protocol.js";
import type { KnownCredentials } from "./sigv4.js";
import type { XmlValue } from "./xml.js";

export const STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/";
export const STS_VERSION = "2011-06-15";

/** Every STS action the emulator answers (each needs an authorization entry in operation-checks.ts). */
export const STS_OPERATIONS: readonly string[] = ["GetCallerIdentity", "AssumeRole", "AssumeRoleWithWebIdentity"];

const DEFAULT_SESSION_SECONDS = 3600;
const MIN_SESSION_SECONDS = 900;

/** Temporary credentials STS issued for a role session. */
export interface RoleSession {
  credentials: KnownCredentials & { sessionToken: string; expiration: Date };
  /** `arn:aws:sts::<account>:assumed-role/<role>/<session>` */
  assumedRoleArn: string;
  /** `<RoleId>:<session>` */
  assumedRoleId: string;
}

// ---------------------------------------------------------------- errors

const invalidIdentityToken = (message: string) => new AwsApiError("InvalidIdentityToken", 400, message);

/** The AccessDenied AssumeRole answers for a role that is missing, not yet visible, or whose trust refuses the caller. */
export function assumeRoleDenied(callerArn: string, roleArn: string): AwsApiError {
  return new AwsApiError("AccessDenied", 403, `User: ${callerArn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`);
}

// ---------------------------------------------------------------- sessions

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function temporaryAccessKeyId(): string {
  return `ASIA${Array.from(randomBytes(16), (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join("")}`;
}

/** Issues (and registers) a session of `role`: AWS-shaped temporary credentials that expire. */
export function issueRoleSession(
  state: AwsState,
  role: IamRole,
  sessionName: string,
  durationSeconds = DEFAULT_SESSION_SECONDS,
  sessionPolicy?: string,
): RoleSession {
  const assumedRoleArn = `arn:aws:sts::${state.accountId}:assumed-role/${role.roleName}/${sessionName}`;
  const credentials = {
    accessKeyId: temporaryAccessKeyId(),
    secretAccessKey: randomBytes(30).toString("base64"),
    sessionToken: randomBytes(96).toString("base64"),
    arn: assumedRoleArn,
    expiration: new Date(Date.now() + durationSeconds * 1000),
    ...(sessionPolicy !== undefined ? { sessionPolicy } : {}),
  };
  state.credentials.set(credentials.accessKeyId, credentials);
  return { credentials, assumedRoleArn, assumedRoleId: `${role.roleId}:${sessionName}` };
}

function sessionXml(session: RoleSession): Record<string, XmlValue> {
  const { accessKeyId, secretAccessKey, sessionToken, expiration } = session.credentials;
  return {
    Credentials: { AccessKeyId: accessKeyId, SecretAccessKey: secretAccessKey, SessionToken: sessionToken, Expiration: expiration },
    AssumedRoleUser: { AssumedRoleId: session.assumedRoleId, Arn: session.assumedRoleArn },
  };
}

// ---------------------------------------------------------------- parameters

function sessionName(params: Record<string, string>): string {
  const name = params.RoleSessionName;
  if (name === undefined) throw validationError("roleSessionName", undefined, "Member must not be null");
  if (name.length < 2) throw validationError("roleSessionName", name, "Member must have length greater than or equal to 2");
  if (name.length > 64) throw validationError("roleSessionName", name, "Member must have length less than or equal to 64");
  if (!/^[\w+=,.@-]*$/.test(name))
    throw validationError("roleSessionName", name, "Member must satisfy regular expression pattern: [\\w+=,.@-]*");
  return name;
}

function durationSeconds(params: Record<string, string>, role: IamRole): number {
  const raw = params.DurationSeconds;
  if (raw === undefined) return DEFAULT_SESSION_SECONDS;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < MIN_SESSION_SECONDS || value > 43200) {
    throw validationError("durationSeconds", raw, "Member must have value between 900 and 43200");
  }
  if (value > role.maxSessionDuration)
    throw new AwsApiError("ValidationError", 400, "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.");
  return value;
}

/** The role `RoleArn` names, when it exists under that ARN and STS can see it yet (IAM propagation). */
export function assumableRole(state: AwsState, roleArn: string, now = Date.now()): IamRole | undefined {
  const ref = iamEntityByArn(state, roleArn);
  if (ref?.kind !== "role" || entityVisibility(ref.entity, roleArn, now) !== "visible") return undefined;
  return ref.entity;
}

// ---------------------------------------------------------------- actions

function assumeRole(state: AwsState, request: AwsRequest, params: Record<string, string>): Record<string, XmlValue> {
  const roleArn = params.RoleArn ?? "";
  const name = sessionName(params);
  const externalId = params.ExternalId;
  if (externalId !== undefined && (externalId.length < 2 || externalId.length > 1224)) {
    throw validationError("externalId", externalId, "Member must have length between 2 and 1224");
  }
  const role = assumableRole(state, roleArn);
  if (!role) throw assumeRoleDenied(request.caller.arn, roleArn);
  const session = issueRoleSession(state, role, name, durationSeconds(params, role), params.Policy);
  return sessionXml(session);
}

/** The token's claims, once it is a JWT that an emulated issuer IAM knows signed, unexpired, for an audience the provider lists. */
function trustedClaims(state: AwsState, token: string): { claims: WebIdentityClaims; providerArn: string; audience: string } {
  const checked = verifyToken(token, (issuer) => state.oidcIssuers.get(issuer));
  const claims = checked.claims;
  if ("problem" in checked && checked.problem === "malformed")
    throw invalidIdentityToken("The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)");
  const providerArn = oidcProviderArn(state.accountId, claims!.iss);
  const provider = state.iam.oidcProviders.get(providerArn);
  if (!provider) throw invalidIdentityToken(`No OpenIDConnect provider found in your account for ${claims!.iss}`);
  if ("problem" in checked) {
    if (checked.problem === "expired") {
      const expiry = new Date(claims!.exp * 1000).toISOString();
      throw new AwsApiError(
        "ExpiredTokenException",
        400,
        `Token expired: current date/time ${new Date().toISOString()} must be before the expiration date/time ${expiry}`,
      );
    }
    if (checked.problem === "unknown-issuer") {
      throw invalidIdentityToken(
        "Couldn't retrieve verification key from your identity provider, " +
          "please reference AssumeRoleWithWebIdentity documentation for requirements",
      );
    }
    throw invalidIdentityToken(
      "The web identity token that was passed could not be validated by AWS. " +
        "Get a new identity token from the identity provider and then retry the request.",
    );
  }
  const audiences = [checked.claims.aud].flat();
  const audience = audiences.find((aud) => provider.clientIds.includes(aud));
  if (!audience) throw invalidIdentityToken("Incorrect token audience");
  return { claims: checked.claims, providerArn, audience };
}

function assumeRoleWithWebIdentity(state: AwsState, params: Record<string, string>): Record<string, XmlValue> {
  const roleArn = params.RoleArn ?? "";
  const name = sessionName(params);
  const token = params.WebIdentityToken;
  if (token === undefined) throw validationError("webIdentityToken", undefined, "Member must not be null");
  const { claims, providerArn, audience } = trustedClaims(state, token);
  const denied = new AwsApiError("AccessDenied", 403, "Not authorized to perform sts:AssumeRoleWithWebIdentity");
  const role = assumableRole(state, roleArn);
  if (!role) throw denied;
  const host = issuerHost(claims.iss);
  const context = { [`${host}:sub`]: claims.sub, [`${host}:aud`]: audience, "sts:RoleSessionName": name };
  if (!webIdentityTrustAllows(role.assumeRolePolicyDocument, providerArn, role.arn, context)) throw denied;
  const session = issueRoleSession(state, role, name, durationSeconds(params, role), params.Policy);
  return { ...sessionXml(session), SubjectFromWebIdentityToken: claims.sub, Audience: audience, Provider: claims.iss };
}

export function handleSts(state: AwsState, request: AwsRequest, action: string, params: Record<string, string>): Record<string, XmlValue> {
  switch (action) {
    case "GetCallerIdentity": {
      const { caller } = request;
      return { UserId: caller.userId, Account: caller.accountId, Arn: caller.arn };
    }
    case "AssumeRole":
      return assumeRole(state, request, params);
    case "AssumeRoleWithWebIdentity":
      return assumeRoleWithWebIdentity(state, params);
    default:
      throw new AwsApiError("InvalidAction", 400, `Could not find operation ${action} for version ${STS_VERSION}`);
  }
}
