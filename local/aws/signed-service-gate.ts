/**
 * The authorization the sandbox puts in front of the AWS services it serves beside the AWS emulator: DynamoDB
 * (dynalite, the environment registry) and Step Functions (the local runner's API). Both speak AWS JSON 1.0
 * (`POST /`, `X-Amz-Target: <prefix>.<Operation>`); each request's SigV4 signature is checked and its checks are
 * decided by the AWS emulator (`authorizeSigned`: the same signature check and iam-simulate evaluation IAM, STS,
 * EKS and EventBridge get), and a refusal is answered with the JSON protocols' codes (HTTP 400, as DynamoDB and
 * Step Functions answer them). What each operation needs (action, resource ARN) is the service's own table:
 * dynamoDbChecks in dynamodb.ts, stepFunctionsChecks in ../sfn/service.ts.
 */
import type { IncomingMessage } from "node:http";
import type { AuthorizationCheck } from "./authorizer.js";
import type { AwsEmulator, SignedServiceDecision } from "./aws-emulator-server.js";
import type { Caller } from "./protocol.js";
import { flatHeaders } from "../sandbox-http.js";

/** Who decides: the AWS emulator's `authorizeSigned` (its keys, its account's roles and policies). */
export type SignedServiceAuthorizer = AwsEmulator["authorizeSigned"];

/** The checks one request needs, from its operation (the X-Amz-Target suffix) and JSON body. */
export type ChecksFor = (operation: string, body: Record<string, unknown>, caller: Caller, region: string) => AuthorizationCheck[];

/** A refused request, in the JSON protocols' words. */
export interface ServiceRefusal {
  status: 400;
  code:
    | "MissingAuthenticationTokenException"
    | "UnrecognizedClientException"
    | "InvalidSignatureException"
    | "ExpiredTokenException"
    | "AccessDeniedException";
  message: string;
}

const REFUSALS: Record<
  Exclude<SignedServiceDecision, { allowed: true }>["problem"],
  Omit<ServiceRefusal, "message"> & { message?: string }
> = {
  "missing-signature": { status: 400, code: "MissingAuthenticationTokenException", message: "Request is missing Authentication Token" },
  "unknown-key": { status: 400, code: "UnrecognizedClientException", message: "The security token included in the request is invalid." },
  "bad-signature": {
    status: 400,
    code: "InvalidSignatureException",
    message:
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
  },
  expired: { status: 400, code: "ExpiredTokenException", message: "The security token included in the request is expired" },
  denied: { status: 400, code: "AccessDeniedException" },
};

/** `DynamoDB_20120810.UpdateItem` → `UpdateItem` (empty when the target has another prefix). */
export function operationOf(headers: Record<string, string>, targetPrefix: string): string {
  const target = headers["x-amz-target"] ?? "";
  return target.startsWith(`${targetPrefix}.`) ? target.slice(targetPrefix.length + 1) : "";
}

/** The JSON body as the checks read it: an object, else nothing (the service answers the parse error itself). */
export function jsonObject(body: Buffer): Record<string, unknown> {
  try {
    const parsed = JSON.parse(body.toString("utf8") || "{}") as unknown;
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * Undefined when the request may be served (signed by a known key, every check allowed); else the refusal to
 * answer. The sandbox admin's keys hold AdministratorAccess: what they did before, they still do.
 */
export async function refusalOf(
  authorize: SignedServiceAuthorizer,
  req: IncomingMessage,
  body: Buffer,
  targetPrefix: string,
  checksFor: ChecksFor,
): Promise<ServiceRefusal | undefined> {
  const headers = flatHeaders(req);
  const operation = operationOf(headers, targetPrefix);
  const parsed = jsonObject(body);
  const request = { method: req.method ?? "POST", host: headers.host ?? "", url: req.url ?? "/", headers, body };
  const decision = await authorize(request, (caller, region) => checksFor(operation, parsed, caller, region));
  if (decision.allowed) return undefined;
  const refusal = REFUSALS[decision.problem];
  return {
    status: refusal.status,
    code: refusal.code,
    message: decision.problem === "denied" ? decision.message : (refusal.message ?? ""),
  };
}
