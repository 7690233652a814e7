/**
 * What every emulated AWS service shares: the parsed request, the caller, the error a handler throws
 * (rendered per protocol by server.ts), ids and pagination tokens (on ../paging.ts).
 */
import { randomBytes } from "node:crypto";
import { decodePageToken, encodePageToken } from "../paging.js";

/** The services the emulator answers, named as they appear in a SigV4 credential scope. */
export type AwsService = "iam" | "sts" | "eks" | "events";

/** Who signed the request (from the access key in the credential scope). */
export interface Caller {
  accessKeyId: string;
  arn: string;
  accountId: string;
  userId: string;
}

export interface AwsRequest {
  method: string;
  /** raw (still percent-encoded) path, without the query string */
  path: string;
  /** decoded query parameters; repeated keys become arrays */
  query: Record<string, string | string[]>;
  /** lower-cased header names */
  headers: Record<string, string>;
  body: Buffer;
  service: AwsService;
  /** the signing region (EKS and EventBridge are regional; IAM ignores it) */
  region: string;
  caller: Caller;
  requestId: string;
}

/**
 * An AWS error answer. `code` is the wire error code (`NoSuchEntity`, `ResourceNotFoundException`);
 * server.ts renders it as query-protocol XML or JSON with `x-amzn-ErrorType`, as the service does.
 */
export class AwsApiError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** extra members of the JSON error body (EKS adds `clusterName`, for instance) */
    readonly fields: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "AwsApiError";
  }

  /** IAM/STS `<Type>`: Sender for 4xx, Receiver for 5xx. */
  get type(): "Sender" | "Receiver" {
    return this.status >= 500 ? "Receiver" : "Sender";
  }
}

/** The query protocol's ValidationError for a member that breaks a constraint (IAM and STS word it alike). */
export function validationError(member: string, value: string | undefined, constraint: string): AwsApiError {
  const shown = value === undefined ? "null" : `'${value}'`;
  const message = `1 validation error detected: Value ${shown} at '${member}' failed to satisfy constraint: ${constraint}`;
  return new AwsApiError("ValidationError", 400, message);
}

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** IAM unique ids look like `AROA` + 17 base32 characters (AIDA users, ANPA policies). */
export function iamUniqueId(prefix: "AROA" | "AIDA" | "ANPA"): string {
  return prefix + randomChars(ID_ALPHABET, 17);
}

/** EKS Pod Identity association ids: `a-` + 17 lower-case letters and digits. */
export function associationId(): string {
  return `a-${randomChars("abcdefghijklmnopqrstuvwxyz0123456789", 17)}`;
}

function randomChars(alphabet: string, length: number): string {
  const bytes = randomBytes(length);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

/** Opaque pagination tokens (EKS `nextToken`, IAM `Marker`): the offset of the next item. */
export function encodeToken(offset: number): string {
  return encodePageToken({ offset });
}

export function decodeToken(token: string | undefined, invalid: () => AwsApiError): number {
  if (!token) return 0;
  const offset = decodePageToken<{ offset?: unknown } | null>(token)?.offset;
  if (typeof offset === "number" && Number.isInteger(offset) && offset >= 0) return offset;
  throw invalid();
}

export function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
