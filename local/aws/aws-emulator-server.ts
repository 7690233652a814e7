/**
 * One HTTP server on 127.0.0.1 that answers the AWS calls the product makes, on the wire protocols the
 * real clients speak, so the SDK v3 clients and the AWS CLI work against it with only the endpoint changed:
 *   IAM, STS    query protocol, XML (Action=...&Version=...)
 *   EKS         REST JSON (/clusters/{name}/access-entries/...)
 *   EventBridge JSON 1.1 (X-Amz-Target: AWSEvents.PutEvents)
 * Requests are routed by the service in the SigV4 credential scope, checked against the known access keys
 * (signature recomputed, session expiry), passed through the fault injector ("<service>:<Action>"),
 * authorized as IAM authorizes them (operation-checks.ts builds each check from the request, authorizer.ts
 * decides it from the caller's policies with iam-simulate), then answered from in-memory state. Errors carry
 * AWS's codes, HTTP statuses and shapes, so the SDK raises the same exception classes it raises against AWS.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createHash, randomUUID } from "node:crypto";
import { parseArn } from "../../functions/lib/domain/arn.js";
import { CLUSTER_ID_HEADER } from "../../functions/lib/aws/eks-token.js";
import { FaultInjector, type FaultDecision } from "../faults.js";
import { closeServer, flatHeaders, listen, readBody } from "../sandbox-http.js";
import { CLUSTER_ADMIN_POLICY_ARN, handleEks, newAccessEntry, principalIdOf, routeEks, type EksRoute } from "./eks-emulator.js";
import { handleEvents } from "./eventbridge-emulator.js";
import { IAM_NAMESPACE, IAM_VERSION, handleIam, iamEntityByArn, newOidcProvider, newRole, newUser } from "./iam-emulator.js";
import { AwsApiError, type AwsRequest, type AwsService, type Caller } from "./protocol.js";
import {
  decodeQuery,
  parseAuthorization,
  verifyHeaderSignature,
  verifyPresignedRequest,
  type KnownCredentials,
  type ParsedAuthorization,
  type SignableRequest,
} from "./sigv4.js";
import {
  clusterKey,
  createState,
  snapshotOf,
  type AuthenticationMode,
  type AwsState,
  type EksCluster,
  type RecordedEvent,
} from "./account-state.js";
import { STS_NAMESPACE, STS_VERSION, handleSts, type RoleSession } from "./sts-emulator.js";
import { queryErrorResponse, queryParams, queryResponse } from "./xml.js";
import {
  ADMINISTRATOR_ACCESS_ARN,
  AuthorizationInputError,
  decide,
  deniedMessage,
  type AuthorizationCheck,
  type Principal,
} from "./authorizer.js";
import { OPERATION_AUTHORIZATION, SERVED_OPERATIONS, type OperationRequest } from "./operation-checks.js";
import { IssuerNotFound, issuerJwks, newIssuerKeys, serviceAccountToken, type ServiceAccountTokenRequest } from "./oidc-issuer.js";
import { assumeRoleAs, defineRole, type AssumeRoleOptions, type RoleDefinition } from "./role-registry.js";

export type { AwsState, RecordedEvent } from "./account-state.js";
export type { KnownCredentials } from "./sigv4.js";
export type { RoleSession } from "./sts-emulator.js";
export type { AssumeRoleOptions, RoleDefinition } from "./role-registry.js";
export { ADMINISTRATOR_ACCESS_ARN } from "./authorizer.js";

export const DEFAULT_ACCOUNT_ID = "111122223333";
/** The AWS documentation's example keys: what vitest.config.ts and the sandbox put in the environment. */
export const DEFAULT_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE";
export const DEFAULT_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
export const SANDBOX_ADMIN = "sandbox-admin";

export interface AwsEmulatorOptions {
  port?: number;
  faults?: FaultInjector;
  accountId?: string;
  /** how long a new IAM role/user stays invisible to EKS and to trust policies (default 0) */
  propagationDelayMs?: number;
  /** check SigV4 signatures against the known secrets (default true) */
  verifySignatures?: boolean;
}

export interface SeedCluster {
  name: string;
  region: string;
  /** the Kubernetes API URL (the kube emulator's) */
  endpoint: string;
  /** base64 PEM of the API server's CA */
  certificateAuthority: string;
  authenticationMode: AuthenticationMode;
  /** `https://oidc.eks.<region>.amazonaws.com/id/<ID>`; registered as an IAM OIDC provider when given */
  oidcIssuer?: string;
  version?: string;
  /** default ACTIVE (CREATING/UPDATING to exercise ResolveCluster's waiting) */
  status?: string;
  /** the node group's role: created in IAM (and, in API modes, given an EC2_LINUX access entry) */
  nodeRoleArn?: string;
  /** the principal that created the cluster (default: the sandbox-admin user); admin through an access entry in API modes */
  creatorArn?: string;
  tags?: Record<string, string>;
}

export interface PresignedCaller {
  arn: string;
  accountId: string;
  userId: string;
  accessKeyId: string;
  /** the x-k8s-aws-id the URL was signed for */
  clusterName: string;
}

export interface AwsEmulator {
  url: string;
  state: AwsState;
  faults: FaultInjector;
  seedCluster(cluster: SeedCluster): void;
  /** deep, deterministic copy of the IAM and EKS state (events too when asked) */
  snapshot(opts?: { includeEvents?: boolean }): unknown;
  /** let another access key sign requests, as the given principal (authorized by that principal's policies) */
  addCredentials(credentials: KnownCredentials): void;
  /**
   * Create a role with the given identity policies (or replace the documents of the role of that name),
   * visible at once. Returns its ARN. With `assumeRole`, how a product step gets a role of its own.
   */
  defineRole(definition: RoleDefinition): string;
  /**
   * A session of a role, issued as STS AssumeRole issues one: the role's trust policy must let the sandbox
   * admin in (or `options.service`, e.g. `lambda.amazonaws.com` for an execution role). The credentials are
   * registered: calls signed with them are authorized by the role's policies and boundary.
   */
  assumeRole(roleArn: string, options?: AssumeRoleOptions): Promise<RoleSession>;
  /**
   * A service-account token signed by a seeded cluster's OIDC issuer (the one IRSA pods hold), for
   * AssumeRoleWithWebIdentity. `clusterName` picks the cluster (default: the only one with an issuer).
   */
  serviceAccountToken(request: ServiceAccountTokenRequest & { clusterName?: string }): string;
  /** the JSON Web Key Set an emulated issuer publishes */
  issuerJwks(issuer: string): { keys: object[] } | undefined;
  /**
   * The caller behind an EKS bearer token's presigned STS GetCallerIdentity URL, or undefined when the
   * signature, the expiry or the signed cluster id does not hold. Without `clusterName`, any seeded
   * cluster's name is accepted as the signed x-k8s-aws-id (the answer says which).
   */
  verifyPresignedCallerIdentity(url: string, opts?: { clusterName?: string; now?: Date }): Promise<PresignedCaller | undefined>;
  /**
   * For the services the sandbox serves beside this emulator (DynamoDB, Step Functions): the request's SigV4
   * header signature checked against the known keys, as for IAM, STS, EKS and EventBridge, then each check
   * `checksFor` builds from the request decided as the caller (its role's policies, boundary and session policy).
   * The caller's service answers the outcome in its own error shape (signed-service-gate.ts).
   */
  authorizeSigned(
    request: SignedServiceRequest,
    checksFor: (caller: Caller, region: string) => AuthorizationCheck[],
  ): Promise<SignedServiceDecision>;
  /** the events PutEvents accepted, optionally filtered */
  events(filter?: { detailType?: string; source?: string; eventBusName?: string }): RecordedEvent[];
  /** hear of every event PutEvents accepts (a bus rule's target); returns the unsubscribe */
  onEvent(listener: (event: RecordedEvent) => void): () => void;
  /**
   * An event an AWS service sends on its own (Step Functions' status changes): recorded on the account's `default`
   * bus like an accepted PutEvents entry, and heard by `onEvent` listeners. Nobody can PutEvents an `aws.*` source.
   */
  putServiceEvent(event: {
    source: string;
    detailType: string;
    detail: Record<string, unknown>;
    resources?: string[];
    region?: string;
  }): RecordedEvent;
  close(): Promise<void>;
}

/** A request to a service served beside the emulator, as its server read it. */
export interface SignedServiceRequest {
  method: string;
  /** the Host header as sent */
  host: string;
  /** the request target as sent (`req.url`: path and query) */
  url: string;
  /** lower-cased header names */
  headers: Record<string, string>;
  body: Buffer;
}

/** Why such a request is refused (each service words it in its own error shape), or its caller when it is allowed. */
export type SignedServiceDecision =
  | { allowed: true; caller: Caller }
  | { allowed: false; problem: "missing-signature" | "unknown-key" | "bad-signature" | "expired" }
  | { allowed: false; problem: "denied"; caller: Caller; message: string };

// ---------------------------------------------------------------- callers

/** The caller of an unsigned request (AssumeRoleWithWebIdentity): nobody yet. */
function anonymousCaller(state: AwsState): Caller {
  return { accessKeyId: "", arn: "anonymous", accountId: state.accountId, userId: "" };
}

function callerOf(state: AwsState, credentials: KnownCredentials): Caller {
  const arn = parseArn(credentials.arn);
  const accountId = arn?.accountId ?? state.accountId;
  const resource = arn?.resource ?? "";
  let userId = `AIDA${createHash("sha256").update(credentials.arn).digest("hex").slice(0, 17).toUpperCase()}`;
  const iamUser = iamEntityByArn(state, credentials.arn);
  if (iamUser?.kind === "user") {
    userId = iamUser.entity?.userId ?? userId;
  } else if (resource.startsWith("assumed-role/")) {
    const [, roleName, session] = resource.split("/");
    const roleId =
      state.iam.roles.get(roleName)?.roleId ?? `AROA${createHash("sha256").update(roleName).digest("hex").slice(0, 17).toUpperCase()}`;
    userId = `${roleId}:${session ?? ""}`;
  }
  return { accessKeyId: credentials.accessKeyId, arn: credentials.arn, accountId, userId };
}

// ---------------------------------------------------------------- protocol per service

interface ServiceProtocol {
  render(res: ServerResponse, request: AwsRequest, result: unknown, operation: string): void;
  renderError(res: ServerResponse, requestId: string, error: AwsApiError): void;
  /** the error for an unknown or missing access key, and for a wrong signature */
  unknownKey(): AwsApiError;
  badSignature(): AwsApiError;
  /** temporary credentials past their expiration */
  expiredToken(): AwsApiError;
  /** the service's AccessDenied shape (IAM/STS query XML 403, EKS REST JSON 403, EventBridge JSON 400) */
  accessDenied(message: string): AwsApiError;
  fault(decision: FaultDecision, operation: string, caller?: Caller): AwsApiError | undefined;
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

function accessDeniedMessage(operation: string, caller?: Caller): string {
  return `User: ${caller?.arn ?? "anonymous"} is not authorized to perform: ${operation} because no identity-based policy allows the ${operation} action`;
}

const EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired";

function queryProtocol(namespace: string, service: "iam" | "sts"): ServiceProtocol {
  return {
    render(res, request, result, action) {
      // aws-iam-authenticator asks STS for JSON (Accept: application/json); everyone else gets XML.
      if (service === "sts" && (request.headers.accept ?? "").includes("application/json")) {
        const body = JSON.stringify({
          [`${action}Response`]: { [`${action}Result`]: result, ResponseMetadata: { RequestId: request.requestId } },
        });
        send(res, 200, "application/json", body, { "x-amzn-RequestId": request.requestId });
        return;
      }
      send(res, 200, "text/xml", queryResponse(action, namespace, request.requestId, result as Record<string, never> | undefined), {
        "x-amzn-RequestId": request.requestId,
      });
    },
    renderError(res, requestId, error) {
      send(res, error.status, "text/xml", queryErrorResponse(error, namespace, requestId), { "x-amzn-RequestId": requestId });
    },
    unknownKey: () => new AwsApiError("InvalidClientTokenId", 403, "The security token included in the request is invalid."),
    badSignature: () =>
      new AwsApiError(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
      ),
    expiredToken: () => new AwsApiError("ExpiredToken", 403, EXPIRED_TOKEN_MESSAGE),
    // IAM and STS: <ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>... with HTTP 403, as botocore's
    // query-protocol error parser and the AWS CLI show it ("An error occurred (AccessDenied) when calling the CreateRole operation").
    accessDenied: (message) => new AwsApiError("AccessDenied", 403, message),
    fault(decision, operation, caller) {
      switch (decision.kind) {
        case "throttle":
          return new AwsApiError("Throttling", 400, "Rate exceeded");
        case "5xx":
          return service === "iam"
            ? new AwsApiError("ServiceFailure", 500, "The request processing has failed because of an unknown error, exception or failure.")
            : new AwsApiError("ServiceUnavailable", 503, "Service is unavailable. Please try again later.");
        case "conflict":
          return new AwsApiError(
            "ConcurrentModification",
            409,
            "Rate exceeded for concurrent modification of this resource. Please try again.",
          );
        case "permanent":
          return this.accessDenied(accessDeniedMessage(operation, caller));
        default:
          return undefined;
      }
    },
  };
}

function jsonError(res: ServerResponse, requestId: string, error: AwsApiError, withType: boolean): void {
  const body = JSON.stringify({ ...(withType ? { __type: error.code } : {}), message: error.message, ...error.fields });
  send(res, error.status, "application/json", body, { "x-amzn-RequestId": requestId, "x-amzn-ErrorType": error.code });
}

const eksProtocol: ServiceProtocol = {
  render(res, request, result) {
    send(res, 200, "application/json", JSON.stringify(result), { "x-amzn-RequestId": request.requestId });
  },
  renderError: (res, requestId, error) => jsonError(res, requestId, error, false),
  unknownKey: () => new AwsApiError("UnrecognizedClientException", 403, "The security token included in the request is invalid."),
  badSignature: () =>
    new AwsApiError(
      "InvalidSignatureException",
      403,
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    ),
  expiredToken: () => new AwsApiError("ExpiredTokenException", 403, EXPIRED_TOKEN_MESSAGE),
  // EKS (REST JSON): HTTP 403, body {"message": "..."}, header x-amzn-ErrorType: AccessDeniedException, as EKS answers
  // ("api error AccessDeniedException: User: ... is not authorized to perform: eks:DescribeCluster on resource: ...", StatusCode: 403).
  accessDenied: (message) => new AwsApiError("AccessDeniedException", 403, message),
  fault(decision, operation, caller) {
    switch (decision.kind) {
      case "throttle":
        return new AwsApiError("ThrottlingException", 429, "Rate exceeded");
      case "5xx":
        return new AwsApiError("ServerException", 500, "An internal error occurred. Please try again.");
      case "conflict":
        return new AwsApiError("ResourceInUseException", 409, "The resource is being modified by another request. Please try again.");
      case "permanent":
        return eksProtocol.accessDenied(accessDeniedMessage(operation, caller));
      default:
        return undefined;
    }
  },
};

const eventsProtocol: ServiceProtocol = {
  render(res, request, result) {
    send(res, 200, "application/x-amz-json-1.1", JSON.stringify(result), { "x-amzn-RequestId": request.requestId });
  },
  renderError: (res, requestId, error) => jsonError(res, requestId, error, true),
  unknownKey: () => new AwsApiError("UnrecognizedClientException", 400, "The security token included in the request is invalid."),
  badSignature: () =>
    new AwsApiError("InvalidSignatureException", 400, "The request signature we calculated does not match the signature you provided."),
  expiredToken: () => new AwsApiError("ExpiredTokenException", 400, EXPIRED_TOKEN_MESSAGE),
  // EventBridge (JSON 1.1): HTTP 400, body {"__type": "AccessDeniedException", "message": "..."}, as EventBridge answers
  // ("AccessDeniedException: User: ... is not authorized to perform: events:PutRule on resource: ... status code: 400").
  accessDenied: (message) => new AwsApiError("AccessDeniedException", 400, message),
  fault(decision, operation, caller) {
    switch (decision.kind) {
      case "throttle":
        return new AwsApiError("ThrottlingException", 400, "Rate exceeded");
      case "5xx":
        return new AwsApiError("InternalException", 500, "An internal error occurred.");
      case "conflict":
        return new AwsApiError("ConcurrentModificationException", 400, "Another process is modifying this resource. Try again later.");
      case "permanent":
        return eventsProtocol.accessDenied(accessDeniedMessage(operation, caller));
      default:
        return undefined;
    }
  },
};

const PROTOCOLS: Record<AwsService, ServiceProtocol> = {
  iam: queryProtocol(IAM_NAMESPACE, "iam"),
  sts: queryProtocol(STS_NAMESPACE, "sts"),
  eks: eksProtocol,
  events: eventsProtocol,
};

// ---------------------------------------------------------------- request plumbing

/** The service when the request carries no usable signature (to answer in the right shape). */
function guessService(headers: Record<string, string>, path: string, params: Record<string, string>): AwsService {
  if ((headers["x-amz-target"] ?? "").startsWith("AWSEvents.")) return "events";
  if (params.Action) return params.Version === STS_VERSION || params.Action === "GetCallerIdentity" ? "sts" : "iam";
  return path === "/" ? "sts" : "eks";
}

const KNOWN_SERVICES = new Set<AwsService>(["iam", "sts", "eks", "events"]);

interface Resolved {
  operation: string;
  /** the EKS route's path labels */
  labels: Record<string, string>;
  run: (request: AwsRequest) => unknown;
}

function resolveOperation(
  state: AwsState,
  service: AwsService,
  method: string,
  path: string,
  headers: Record<string, string>,
  params: Record<string, string>,
): Resolved {
  switch (service) {
    case "iam": {
      const action = params.Action ?? "";
      if (params.Version && params.Version !== IAM_VERSION)
        throw new AwsApiError("InvalidAction", 400, `Could not find operation ${action} for version ${params.Version}`);
      return { operation: action, labels: {}, run: (request) => handleIam(state, request, action, params) };
    }
    case "sts": {
      const action = params.Action ?? "";
      return { operation: action, labels: {}, run: (request) => handleSts(state, request, action, params) };
    }
    case "eks": {
      const route: EksRoute | undefined = routeEks(method, path);
      if (!route) throw new AwsApiError("UnknownOperationException", 404, `No operation matches ${method} ${path}`);
      return { operation: route.operation, labels: route.labels, run: (request) => handleEks(state, request, route) };
    }
    case "events": {
      const target = headers["x-amz-target"] ?? "";
      const operation = target.startsWith("AWSEvents.") ? target.slice("AWSEvents.".length) : target;
      return { operation, labels: {}, run: (request) => handleEvents(state, request, operation) };
    }
  }
}

// ---------------------------------------------------------------- authorization

const SERVED = new Set(SERVED_OPERATIONS);

/** A JSON body as the operation table reads it: an object, else nothing (the handler answers the parse error). */
function jsonBody(body: Buffer): Record<string, unknown> {
  try {
    const parsed = JSON.parse(body.toString("utf8") || "{}") as unknown;
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function principalOf(state: AwsState, caller: Caller): Principal {
  const sessionPolicy = state.credentials.get(caller.accessKeyId)?.sessionPolicy;
  return { arn: caller.arn, accountId: caller.accountId, userId: caller.userId, ...(sessionPolicy !== undefined ? { sessionPolicy } : {}) };
}

/**
 * Every check the operation needs must be allowed for the caller; the first denied one answers with the
 * service's AccessDenied. An operation the handlers serve without an entry in the table is never served.
 */
async function authorizeOperation(state: AwsState, protocol: ServiceProtocol, key: string, input: OperationRequest): Promise<void> {
  const entry = OPERATION_AUTHORIZATION[key];
  if (!entry) {
    if (SERVED.has(key)) throw new AuthorizationInputError(`no authorization entry for ${key}: add one to local/aws/operation-checks.ts`);
    return; // not an operation the service has: its handler answers InvalidAction / UnknownOperation
  }
  if ("anonymous" in entry) return;
  const principal = principalOf(state, input.caller);
  for (const check of entry.checks(input)) {
    const decision = await decide(state, principal, check, input.region);
    if (!decision.allowed) throw protocol.accessDenied(deniedMessage(input.caller.arn, check, decision));
  }
}

/** Unsigned requests are answered only for the operations AWS serves unsigned (AssumeRoleWithWebIdentity). */
function servedUnsigned(service: AwsService, operation: string): boolean {
  const entry = OPERATION_AUTHORIZATION[`${service}:${operation}`];
  return entry !== undefined && "anonymous" in entry;
}

// ---------------------------------------------------------------- the emulator

export async function startAwsEmulator(opts: AwsEmulatorOptions = {}): Promise<AwsEmulator> {
  const accountId = opts.accountId ?? DEFAULT_ACCOUNT_ID;
  const state = createState(accountId, opts.propagationDelayMs ?? 0);
  const faults = opts.faults ?? new FaultInjector();
  const verifySignatures = opts.verifySignatures ?? true;

  // The default principal: a long-established IAM user with the example keys.
  // It holds AdministratorAccess, so everything the sandbox did before IAM was enforced it still does.
  const admin = newUser(state, { userName: SANDBOX_ADMIN }, new Date(), 0);
  admin.attachedPolicyArns.push(ADMINISTRATOR_ACCESS_ARN);
  state.iam.users.set(SANDBOX_ADMIN, admin);
  state.credentials.set(DEFAULT_ACCESS_KEY_ID, {
    accessKeyId: DEFAULT_ACCESS_KEY_ID,
    secretAccessKey: DEFAULT_SECRET_ACCESS_KEY,
    arn: admin.arn,
  });

  const lookup = (accessKeyId: string) => state.credentials.get(accessKeyId);

  const expired = (credentials: KnownCredentials) => credentials.expiration !== undefined && Date.now() >= credentials.expiration.getTime();

  /** A header-signed request: its access key known, its session token the key's, its signature right, not expired. */
  async function checkHeaderSigned(
    signable: SignableRequest,
    auth: ParsedAuthorization,
  ): Promise<
    | { problem: "unknown-key" | "bad-signature" | "expired"; credentials?: undefined }
    | { problem?: undefined; credentials: KnownCredentials }
  > {
    const credentials = lookup(auth.accessKeyId);
    if (!credentials) return { problem: "unknown-key" };
    if (credentials.sessionToken !== undefined && signable.headers["x-amz-security-token"] !== credentials.sessionToken)
      return { problem: "unknown-key" };
    if (verifySignatures && !(await verifyHeaderSignature(signable, auth, credentials))) return { problem: "bad-signature" };
    if (expired(credentials)) return { problem: "expired" };
    return { credentials };
  }

  async function authenticate(
    service: AwsService,
    request: Omit<AwsRequest, "caller" | "service" | "region">,
    host: string,
    auth: ParsedAuthorization | undefined,
    unsignedAllowed: boolean,
  ): Promise<{ caller: Caller; region: string }> {
    const protocol = PROTOCOLS[service];
    const signable = {
      method: request.method,
      protocol: "http:" as const,
      host,
      path: request.path,
      query: request.query,
      headers: request.headers,
      body: request.body,
    };
    if (auth) {
      const checked = await checkHeaderSigned(signable, auth);
      if (checked.problem === "unknown-key") throw protocol.unknownKey();
      if (checked.problem === "bad-signature") throw protocol.badSignature();
      if (checked.problem === "expired") throw protocol.expiredToken();
      if (!checked.credentials) throw protocol.unknownKey();
      return { caller: callerOf(state, checked.credentials), region: auth.region };
    }
    if (unsignedAllowed && request.query["X-Amz-Signature"] === undefined) return { caller: anonymousCaller(state), region: "us-east-1" };
    // Query-string (presigned) authentication.
    const check = await verifyPresignedRequest(signable, lookup);
    if (check.ok && check.credentials && expired(check.credentials)) throw protocol.expiredToken();
    if (check.ok && check.credentials && check.scope) return { caller: callerOf(state, check.credentials), region: check.scope.region };
    if (check.problem === "unknown-access-key" || check.problem === "bad-session-token") throw protocol.unknownKey();
    if (check.problem === "expired") throw new AwsApiError("ExpiredToken", 403, "The security token included in the request is expired");
    if (check.problem === "signature-mismatch" && verifySignatures) throw protocol.badSignature();
    if (check.problem === "signature-mismatch" && check.credentials && check.scope)
      return { caller: callerOf(state, check.credentials), region: check.scope.region };
    throw service === "eks"
      ? new AwsApiError("MissingAuthenticationTokenException", 403, "Missing Authentication Token")
      : new AwsApiError("MissingAuthenticationToken", 403, "Request is missing Authentication Token");
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const body = await readBody(req);
    const url = new URL(req.url ?? "/", "http://localhost");
    const rawPath = (req.url ?? "/").split("?")[0] || "/";
    const headers = flatHeaders(req);
    const query = decodeQuery(url.searchParams);
    const params = queryParams(query, body, headers["content-type"]);
    const auth = parseAuthorization(headers.authorization);
    const presignedScope = typeof query["X-Amz-Credential"] === "string" ? (query["X-Amz-Credential"] as string).split("/")[3] : undefined;
    const scopeService = (auth?.service ?? presignedScope) as AwsService | undefined;
    const service: AwsService = scopeService && KNOWN_SERVICES.has(scopeService) ? scopeService : guessService(headers, rawPath, params);
    const protocol = PROTOCOLS[service];
    let caller: Caller | undefined;
    try {
      if (scopeService && !KNOWN_SERVICES.has(scopeService)) {
        throw new AwsApiError("UnrecognizedClientException", 400, `The sandbox does not emulate the ${scopeService} service.`);
      }
      const resolved = resolveOperation(state, service, req.method ?? "GET", rawPath, headers, params);
      const base = { method: req.method ?? "GET", path: rawPath, query, headers, body, requestId };
      const identity = await authenticate(service, base, headers.host ?? "", auth, servedUnsigned(service, resolved.operation));
      caller = identity.caller;

      const operation = `${service}:${resolved.operation}`;
      const decision = faults.check(operation);
      if (decision?.kind === "latency") await new Promise((resolve) => setTimeout(resolve, decision.ms ?? 250));
      else if (decision) {
        const error = protocol.fault(decision, operation, caller);
        if (error) throw error;
      }

      const { labels } = resolved;
      const { region } = identity;
      await authorizeOperation(state, protocol, operation, { state, caller, region, params, labels, body: jsonBody(body), query });

      const request: AwsRequest = { ...base, service, region: identity.region, caller };
      const result = resolved.run(request);
      protocol.render(res, request, result, resolved.operation);
    } catch (error) {
      if (error instanceof AwsApiError) {
        protocol.renderError(res, requestId, error);
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      const internal =
        service === "eks" ? new AwsApiError("ServerException", 500, message) : new AwsApiError("InternalFailure", 500, message);
      protocol.renderError(res, requestId, internal);
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, "text/plain", String(error));
      else res.destroy();
    });
  });
  const port = await listen(server, opts.port ?? 0, "127.0.0.1");

  return {
    url: `http://127.0.0.1:${port}`,
    state,
    faults,
    seedCluster: (cluster) => seedCluster(state, cluster),
    snapshot: (snapshotOpts) => snapshotOf(state, snapshotOpts),
    addCredentials(credentials) {
      state.credentials.set(credentials.accessKeyId, { ...credentials });
    },
    async authorizeSigned(request, checksFor) {
      const auth = parseAuthorization(request.headers.authorization);
      if (!auth) return { allowed: false, problem: "missing-signature" };
      const path = request.url.split("?")[0] || "/";
      const query = decodeQuery(new URL(request.url, "http://localhost").searchParams);
      const signable = {
        method: request.method,
        protocol: "http:" as const,
        host: request.host,
        path,
        query,
        headers: request.headers,
        body: request.body,
      };
      const checked = await checkHeaderSigned(signable, auth);
      if (checked.problem) return { allowed: false, problem: checked.problem };
      const caller = callerOf(state, checked.credentials);
      const principal = principalOf(state, caller);
      for (const check of checksFor(caller, auth.region)) {
        const decision = await decide(state, principal, check, auth.region);
        if (!decision.allowed) return { allowed: false, problem: "denied", caller, message: deniedMessage(caller.arn, check, decision) };
      }
      return { allowed: true, caller };
    },
    defineRole: (definition) => defineRole(state, definition).arn,
    assumeRole: (roleArn, options) => assumeRoleAs(state, admin.arn, roleArn, options),
    serviceAccountToken(request) {
      const wanted = request.clusterName;
      const clusters = [...state.eks.clusters.values()].filter((c) => wanted === undefined || c.name === wanted);
      const issuers = clusters.flatMap((c) => c.oidcIssuer ?? []);
      if (issuers.length !== 1)
        throw new IssuerNotFound(`${issuers.length} seeded clusters with an OIDC issuer match ${wanted ?? "(any)"}`);
      return serviceAccountToken(state.oidcIssuers.get(issuers[0]!)!, request);
    },
    issuerJwks(issuer) {
      const keys = state.oidcIssuers.get(issuer);
      return keys ? issuerJwks(keys) : undefined;
    },
    async verifyPresignedCallerIdentity(presignedUrl, verifyOpts = {}) {
      return verifyCallerIdentityUrl(state, presignedUrl, verifyOpts);
    },
    onEvent(listener) {
      state.eventListeners.add(listener);
      return () => state.eventListeners.delete(listener);
    },
    putServiceEvent(event) {
      const recorded: RecordedEvent = {
        eventId: randomUUID(),
        eventBusName: "default",
        source: event.source,
        detailType: event.detailType,
        detail: event.detail,
        resources: event.resources ?? [],
        time: new Date(),
        region: event.region ?? "us-east-1",
        account: state.accountId,
      };
      state.events.push(recorded);
      for (const listener of state.eventListeners) setImmediate(() => listener(recorded));
      return recorded;
    },
    events(filter = {}) {
      return state.events.filter(
        (e) =>
          (filter.detailType === undefined || e.detailType === filter.detailType) &&
          (filter.source === undefined || e.source === filter.source) &&
          (filter.eventBusName === undefined || e.eventBusName === filter.eventBusName),
      );
    },
    close: () => closeServer(server),
  };
}

// ---------------------------------------------------------------- presigned GetCallerIdentity (EKS tokens)

async function verifyCallerIdentityUrl(
  state: AwsState,
  presignedUrl: string,
  opts: { clusterName?: string; now?: Date },
): Promise<PresignedCaller | undefined> {
  let url: URL;
  try {
    url = new URL(presignedUrl);
  } catch {
    return undefined;
  }
  const query = decodeQuery(url.searchParams);
  const action = Object.entries(query).find(([key]) => key.toLowerCase() === "action")?.[1];
  if (action !== "GetCallerIdentity") return undefined;
  const protocol = url.protocol === "https:" ? "https:" : "http:";
  const clusterNames =
    opts.clusterName !== undefined ? [opts.clusterName] : [...new Set([...state.eks.clusters.values()].map((c) => c.name))];
  // The Host the client signed: with the port when the URL has one (the sandbox), bare otherwise (AWS).
  const hosts = [...new Set([url.host, url.hostname])];
  const path = url.pathname || "/";
  for (const clusterName of clusterNames) {
    for (const host of hosts) {
      const check = await verifyPresignedRequest(
        { method: "GET", protocol, host, path, query, headers: { [CLUSTER_ID_HEADER]: clusterName } },
        (accessKeyId) => state.credentials.get(accessKeyId),
        { now: opts.now, requireSignedHeader: CLUSTER_ID_HEADER },
      );
      if (check.ok && check.credentials) {
        const { expiration } = check.credentials;
        if (expiration !== undefined && (opts.now ?? new Date()).getTime() >= expiration.getTime()) return undefined;
        const caller = callerOf(state, check.credentials);
        return { arn: caller.arn, accountId: caller.accountId, userId: caller.userId, accessKeyId: caller.accessKeyId, clusterName };
      }
      // Anything but a signature mismatch (expired, unknown key, unsigned cluster id) fails for every candidate.
      if (check.problem !== "signature-mismatch") return undefined;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------- seeding

const NODE_TRUST_POLICY = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
});
const NODE_MANAGED_POLICIES = ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"].map(
  (name) => `arn:aws:iam::aws:policy/${name}`,
);
/** The root CA thumbprint IAM shows for EKS OIDC issuers. */
const EKS_OIDC_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

function seedCluster(state: AwsState, seed: SeedCluster): void {
  const now = new Date();
  const creatorArn = seed.creatorArn ?? `arn:aws:iam::${state.accountId}:user/${SANDBOX_ADMIN}`;
  const cluster: EksCluster = {
    name: seed.name,
    region: seed.region,
    arn: `arn:aws:eks:${seed.region}:${state.accountId}:cluster/${seed.name}`,
    endpoint: seed.endpoint,
    certificateAuthority: seed.certificateAuthority,
    authenticationMode: seed.authenticationMode,
    ...(seed.oidcIssuer ? { oidcIssuer: seed.oidcIssuer } : {}),
    version: seed.version ?? "1.31",
    status: seed.status ?? "ACTIVE",
    createdAt: now,
    roleArn: `arn:aws:iam::${state.accountId}:role/eksClusterRole`,
    ...(seed.nodeRoleArn ? { nodeRoleArn: seed.nodeRoleArn } : {}),
    platformVersion: "eks.1",
    tags: { ...seed.tags },
    accessEntries: new Map(),
    podIdentityAssociations: new Map(),
  };

  if (seed.nodeRoleArn) seedNodeRole(state, seed.nodeRoleArn, now);
  if (seed.oidcIssuer) {
    const provider = newOidcProvider(
      state,
      { url: seed.oidcIssuer, clientIds: ["sts.amazonaws.com"], thumbprints: [EKS_OIDC_THUMBPRINT] },
      now,
    );
    if (!state.iam.oidcProviders.has(provider.arn)) state.iam.oidcProviders.set(provider.arn, provider);
    // The cluster's issuer signs its service-account tokens; STS verifies AssumeRoleWithWebIdentity against it.
    if (!state.oidcIssuers.has(seed.oidcIssuer)) state.oidcIssuers.set(seed.oidcIssuer, newIssuerKeys(seed.oidcIssuer));
  }

  // API modes: EKS gives the creator an admin access entry and the node role an EC2_LINUX one.
  if (seed.authenticationMode !== "CONFIG_MAP") {
    const creator = newAccessEntry(
      cluster,
      state.accountId,
      creatorArn,
      { type: "STANDARD", principalId: principalIdOf(state, creatorArn) },
      now,
    );
    creator.accessPolicies.set(CLUSTER_ADMIN_POLICY_ARN, {
      policyArn: CLUSTER_ADMIN_POLICY_ARN,
      accessScope: { type: "cluster", namespaces: [] },
      associatedAt: now,
      modifiedAt: now,
    });
    cluster.accessEntries.set(creatorArn, creator);
    if (seed.nodeRoleArn) {
      const nodeEntry = newAccessEntry(
        cluster,
        state.accountId,
        seed.nodeRoleArn,
        { type: "EC2_LINUX", principalId: principalIdOf(state, seed.nodeRoleArn) },
        now,
      );
      cluster.accessEntries.set(seed.nodeRoleArn, nodeEntry);
    }
  }
  state.eks.clusters.set(clusterKey(seed.region, seed.name), cluster);
}

function seedNodeRole(state: AwsState, roleArn: string, now: Date): void {
  const existing = iamEntityByArn(state, roleArn);
  if (existing?.kind !== "role" || existing.accountId !== state.accountId || existing.entity) return;
  const roleName = existing.name;
  // Seeded roles are long established: visible at once.
  const role = newRole(
    state,
    { roleName, path: existing.path, assumeRolePolicyDocument: NODE_TRUST_POLICY, description: "EKS node group role" },
    now,
    0,
  );
  role.attachedPolicyArns.push(...NODE_MANAGED_POLICIES);
  state.iam.roles.set(roleName, role);
}
