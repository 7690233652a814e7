/**
 * Turn whatever a step's SDK or Kubernetes call threw into one of the named errors in errors.ts, so the
 * state machine can tell "retry" from "compensate". The original error is kept as `cause`; the message
 * says which call failed. Errors we cannot classify are returned unchanged (they go to compensation as
 * themselves, which is the safe default).
 */
import {
  ClusterUnreachable,
  IamNotYetConsistent,
  InvalidRequest,
  KubeConflict,
  NamespaceTerminating,
  NotAllowed,
  ProvisionerError,
  Throttled,
} from "../domain/errors.js";
import { OPERATION_KEY } from "../aws/clients.js";
import { CONFIG_ENV } from "../domain/deploy-config.js";
import { isKubeApiException, kubeStatus, type KubeStatus } from "../kube/kube-errors.js";

/** AWS error codes that mean "slow down". */
const THROTTLING_NAMES = new Set([
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "TooManyRequests",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "ProvisionedThroughputExceededException",
  "SlowDown",
  "BandwidthLimitExceeded",
  "EC2ThrottledException",
  "PriorRequestNotComplete",
]);

/** AWS error codes that mean "the service is having a bad moment". */
const SERVICE_FAILURE_NAMES = new Set([
  "InternalFailure",
  "InternalError",
  "InternalServerError",
  "InternalServerException",
  "ServiceUnavailable",
  "ServiceUnavailableException",
  "ServiceFailure",
  "ServiceFailureException",
  "ServerException",
  "ServiceException",
]);

/** "Another request is changing this right now": transient, retry later. */
const BUSY_NAMES = new Set(["ConcurrentModification", "ConcurrentModificationException", "ResourceInUseException"]);

const ACCESS_DENIED_NAMES = new Set([
  "AccessDenied",
  "AccessDeniedException",
  "UnauthorizedOperation",
  "UnauthorizedException",
  "UnrecognizedClientException",
  "InvalidClientTokenId",
  "ExpiredToken",
  "ExpiredTokenException",
]);

/** Node / undici network failures: the endpoint cannot be reached. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
]);
const NETWORK_NAMES = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException", "AbortError", "FetchError"]);

/**
 * IAM is eventually consistent: a role created seconds ago is rejected by STS/EKS/IAM as an invalid
 * principal or one that "cannot be assumed". Retrying a little later succeeds.
 */
const IAM_PROPAGATION_MESSAGE =
  /invalid principal|cannot be assumed|not authorized to perform: sts:AssumeRole|(principal|role).{0,80}(does not exist|not (be )?found|is invalid)/i;
const IAM_PROPAGATION_NAMES = new Set([
  "MalformedPolicyDocument",
  "MalformedPolicyDocumentException",
  "InvalidParameterException",
  "InvalidRequestException",
  "InvalidInput",
  "InvalidInputException",
  "InvalidParameterValue",
  "ValidationException",
]);

/**
 * IAM's NoSuchEntity for a managed policy ARN (`Policy arn:... does not exist or is not attachable`, or
 * `Scope ARN: arn:... does not exist or is not attachable` for a permissions boundary). The product never
 * creates managed policies, so waiting does not make one appear: it is a configuration error.
 */
const MISSING_POLICY_MESSAGE =
  /\b(?:Scope ARN|Policy)\s*:?\s*(arn:[^\s]+?)\.?\s+(?:does not exist|is not attachable|was not found|cannot be found)/i;
/** The calls whose policy ARN is the deployment's permissions boundary (iam.ts attaches no managed policy). */
const BOUNDARY_OPERATIONS = new Set([
  "iam:CreateRole",
  "iam:PutRolePermissionsBoundary",
  "iam:CreateUser",
  "iam:PutUserPermissionsBoundary",
]);

interface AwsLikeError {
  name?: string;
  Code?: string;
  code?: string | number;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: { throttling?: boolean };
  $fault?: "client" | "server";
  [OPERATION_KEY]?: string;
}

/** The AWS error code of an SDK v3 error (`NoSuchEntity` → also matches `NoSuchEntityException`). */
export function awsErrorName(error: unknown): string | undefined {
  if (!error || typeof error !== "object") return undefined;
  const e = error as AwsLikeError;
  return e.name && e.name !== "Error" ? e.name : e.Code;
}

/** True when `error` is the AWS error `code`, with or without the SDK's `Exception` suffix. */
export function isAwsError(error: unknown, ...codes: string[]): boolean {
  const name = awsErrorName(error);
  if (!name) return false;
  const bare = name.replace(/Exception$/, "");
  return codes.some((code) => code === name || code.replace(/Exception$/, "") === bare);
}

/** A read whose "not found" (the AWS error `code`) is an answer: the value, or undefined when absent. */
export async function ifExists<T>(promise: Promise<T>, code: string): Promise<T | undefined> {
  try {
    return await promise;
  } catch (error) {
    if (isAwsError(error, code)) return undefined;
    throw error;
  }
}

/** A delete whose "not found" (the AWS error `code`) means already gone: done either way. */
export async function ignoreMissing(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    if (!isAwsError(error, code)) throw error;
  }
}

function isAwsSdkError(e: AwsLikeError): boolean {
  return typeof e.$metadata === "object" || e.$fault !== undefined;
}

function kubeStatusMessage(status: KubeStatus): string | undefined {
  if (status.text !== undefined) return status.text.trim().slice(0, 300) || undefined;
  if (typeof status.message === "string" && status.message) return status.message;
  if (typeof status.reason === "string" && status.reason) return status.reason;
  return undefined;
}

/**
 * A 403 because the namespace is still Terminating (an earlier compensation deleted it): not a
 * permission problem; once the namespace is gone the step can create it again.
 */
function isNamespaceTerminating(status: KubeStatus): boolean {
  const causes = Array.isArray(status.details?.causes) ? status.details.causes : [];
  if (causes.some((c) => c?.reason === "NamespaceTerminating")) return true;
  return typeof status.message === "string" && /because it is being terminated/i.test(status.message);
}

/** NoSuchEntity for a policy ARN: permanent, naming the setting to fix when it is the permissions boundary. */
function missingPolicy(call: string, awsMessage: string, options: { cause: unknown }): NotAllowed | undefined {
  const policyArn = MISSING_POLICY_MESSAGE.exec(awsMessage)?.[1];
  if (!policyArn) return undefined;
  if (BOUNDARY_OPERATIONS.has(call) || /^\s*Scope ARN/i.test(awsMessage)) {
    return new NotAllowed(
      `${call} failed: the permissions boundary policy ${policyArn} does not exist or is not attachable (${awsMessage}); ` +
        `fix the deployment's ${CONFIG_ENV.permissionsBoundaryArn} (an existing customer-managed or AWS-managed policy ARN of this account) and redeploy`,
      options,
    );
  }
  return new NotAllowed(`${call} failed: the IAM policy ${policyArn} does not exist or is not attachable (${awsMessage})`, options);
}

function networkCode(e: AwsLikeError & { cause?: unknown; errno?: unknown }): string | undefined {
  // fetch/undici wrap the socket error in `cause`; node:http puts it on the error itself.
  for (const candidate of [e, e.cause as AwsLikeError | undefined]) {
    if (!candidate || typeof candidate !== "object") continue;
    if (typeof candidate.code === "string" && NETWORK_CODES.has(candidate.code)) return candidate.code;
    if (candidate.name && NETWORK_NAMES.has(candidate.name)) return candidate.name;
    if (typeof candidate.message === "string" && /socket hang up/i.test(candidate.message)) return "socket hang up";
  }
  return undefined;
}

/**
 * Map an error to a named ProvisionerError. `operation` names the call (`iam:CreateRole`, `kube:PUT
 * configmaps`); when absent, the operation stamped on SDK errors by clients.ts is used.
 */
export function normaliseError(error: unknown, operation?: string): Error {
  if (error instanceof ProvisionerError) return error;
  if (!error || typeof error !== "object") {
    return new Error(`${operation ? `${operation} failed: ` : ""}${String(error)}`, { cause: error });
  }
  const e = error as AwsLikeError & { body?: unknown; cause?: unknown };
  const call = operation ?? e[OPERATION_KEY] ?? (isKubeApiException(e) ? "Kubernetes API call" : "AWS call");
  const options = { cause: error };

  if (isKubeApiException(e)) {
    const status = e.code as number;
    const body = kubeStatus(e.body);
    const detail = kubeStatusMessage(body) ?? `HTTP ${status}`;
    const message = `${call} failed (HTTP ${status}): ${detail}`;
    if (status === 409) return new KubeConflict(message, options);
    if (status === 429) return new Throttled(message, options);
    if (status === 403 && isNamespaceTerminating(body)) {
      return new NamespaceTerminating(`${message} (the namespace is still being deleted; retrying once it is gone)`, options);
    }
    if (status === 401 || status === 403) return new NotAllowed(message, options);
    // BadRequest / Invalid: the server refused what we sent; sending it again will not help.
    if (status === 400 || status === 422) return new InvalidRequest(message, options);
    if (status >= 500) return new ClusterUnreachable(message, options);
    return error as Error;
  }

  const net = networkCode(e);
  if (net && !isAwsSdkError(e))
    return new ClusterUnreachable(`${call} failed: endpoint unreachable (${net}): ${e.message ?? ""}`.trim(), options);

  if (isAwsSdkError(e) || e.Code) {
    const name = awsErrorName(e) ?? "UnknownError";
    const status = e.$metadata?.httpStatusCode;
    const message = `${call} failed: ${name}: ${e.message ?? ""}`.trim();
    if (THROTTLING_NAMES.has(name) || status === 429 || e.$retryable?.throttling) return new Throttled(message, options);
    if (BUSY_NAMES.has(name)) return new Throttled(message, options);
    if (isAwsError(e, "NoSuchEntity")) {
      // A policy ARN that does not exist will not appear by waiting (the product creates none).
      const policy = missingPolicy(call, e.message ?? "", options);
      if (policy) return policy;
      // Steps handle "does not exist" where it is an answer; a role or user that escapes is IAM not having caught up.
      return new IamNotYetConsistent(message, options);
    }
    if (IAM_PROPAGATION_NAMES.has(name) && IAM_PROPAGATION_MESSAGE.test(e.message ?? "")) return new IamNotYetConsistent(message, options);
    if (SERVICE_FAILURE_NAMES.has(name) || (status !== undefined && status >= 500) || e.$fault === "server") {
      return new ClusterUnreachable(message, options);
    }
    if (ACCESS_DENIED_NAMES.has(name)) return new NotAllowed(message, options);
    if (net) return new ClusterUnreachable(`${call} failed: endpoint unreachable (${net}): ${e.message ?? ""}`.trim(), options);
    return error as Error;
  }

  return error as Error;
}
