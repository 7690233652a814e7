/**
 * Status objects exactly as kube-apiserver writes them (field order and messages included), and the
 * error the emulator throws internally to answer with one.
 */
import { qualifiedResource, type ResourceType } from "./resources.js";

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: Array<{ reason: string; message: string; field?: string }>;
  retryAfterSeconds?: number;
}

export interface KubeStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message?: string;
  reason?: string;
  details?: StatusDetails;
  /** absent on the Success status a DELETE answers with */
  code?: number;
}

/** Thrown inside the emulator; the server answers with `status` and `headers`. */
export class KubeStatusError extends Error {
  readonly status: KubeStatus;
  readonly headers: Record<string, string>;
  constructor(status: KubeStatus, headers: Record<string, string> = {}) {
    super(status.message ?? status.reason ?? `HTTP ${status.code}`);
    this.name = "KubeStatusError";
    this.status = status;
    this.headers = headers;
  }
}

type TypeRef = Pick<ResourceType, "group" | "resource">;

export function failure(code: number, reason: string, message: string, details?: StatusDetails): KubeStatus {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

function detailsFor(type: TypeRef, name?: string): StatusDetails {
  return { ...(name ? { name } : {}), ...(type.group ? { group: type.group } : {}), kind: type.resource };
}

export function notFound(type: TypeRef, name: string): KubeStatusError {
  return new KubeStatusError(failure(404, "NotFound", `${qualifiedResource(type)} "${name}" not found`, detailsFor(type, name)));
}

export function alreadyExists(type: TypeRef, name: string): KubeStatusError {
  return new KubeStatusError(failure(409, "AlreadyExists", `${qualifiedResource(type)} "${name}" already exists`, detailsFor(type, name)));
}

/** `why` defaults to the stale-resourceVersion explanation; a failed delete precondition gives its own. */
export function conflict(
  type: TypeRef,
  name: string,
  why = "the object has been modified; please apply your changes to the latest version and try again",
): KubeStatusError {
  return new KubeStatusError(
    failure(409, "Conflict", `Operation cannot be fulfilled on ${qualifiedResource(type)} "${name}": ${why}`, detailsFor(type, name)),
  );
}

export function badRequest(message: string): KubeStatusError {
  return new KubeStatusError(failure(400, "BadRequest", message));
}

export function invalid(
  kind: string,
  name: string,
  group: string,
  causes: Array<{ field: string; message: string; reason?: string }>,
): KubeStatusError {
  const list = causes.map((c) => ({ reason: c.reason ?? "FieldValueInvalid", message: c.message, field: c.field }));
  const summary =
    causes.length === 1 ? `${causes[0]!.field}: ${causes[0]!.message}` : `[${causes.map((c) => `${c.field}: ${c.message}`).join(", ")}]`;
  return new KubeStatusError(
    failure(422, "Invalid", `${kind} "${name}" is invalid: ${summary}`, { name, ...(group ? { group } : {}), kind, causes: list }),
  );
}

export interface ForbiddenAttributes {
  username: string;
  verb: string;
  type: TypeRef;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** `pods "x" is forbidden: User "u" cannot create resource "pods" in API group "" in the namespace "ns"` */
export function forbidden(a: ForbiddenAttributes, reason?: string, causes?: StatusDetails["causes"]): KubeStatusError {
  const resource = a.subresource ? `${a.type.resource}/${a.subresource}` : a.type.resource;
  const subject = a.name ? `${qualifiedResource(a.type)} "${a.name}"` : qualifiedResource(a.type);
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : "at the cluster scope";
  const why = reason ?? `User "${a.username}" cannot ${a.verb} resource "${resource}" in API group "${a.type.group}" ${scope}`;
  const details = { ...detailsFor(a.type, a.name), ...(causes ? { causes } : {}) };
  return new KubeStatusError(failure(403, "Forbidden", `${subject} is forbidden: ${why}`, details));
}

/** Non-resource URLs (`/healthz`, unknown paths) a user may not GET. */
export function forbiddenPath(username: string, verb: string, path: string): KubeStatusError {
  return new KubeStatusError(failure(403, "Forbidden", `forbidden: User "${username}" cannot ${verb} path "${path}"`, {}));
}

/** `Internal error occurred: <message>`, the message repeated as the one cause. */
export function internalError(message: string): KubeStatusError {
  return new KubeStatusError(failure(500, "InternalError", `Internal error occurred: ${message}`, { causes: [{ reason: "", message }] }));
}

export function unauthorized(): KubeStatusError {
  return new KubeStatusError(failure(401, "Unauthorized", "Unauthorized"));
}

export function tooManyRequests(): KubeStatusError {
  return new KubeStatusError(failure(429, "TooManyRequests", "Too many requests, please try again later.", { retryAfterSeconds: 1 }), {
    "Retry-After": "1",
  });
}

export function serviceUnavailable(): KubeStatusError {
  return new KubeStatusError(failure(503, "ServiceUnavailable", "the server is currently unable to handle the request"));
}

export function methodNotAllowed(): KubeStatusError {
  return new KubeStatusError(failure(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"));
}

export function unsupportedMediaType(contentType: string): KubeStatusError {
  return new KubeStatusError(
    failure(
      415,
      "UnsupportedMediaType",
      `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${JSON.stringify(contentType)})`,
    ),
  );
}

/** The 404 for a URL that names no known resource (the real server answers with this bare Status). */
export function pageNotFound(): KubeStatusError {
  return new KubeStatusError(failure(404, "NotFound", "the server could not find the requested resource", {}));
}

/** `{kind:"Status", status:"Success"}` the server answers a DELETE with when the object is gone at once. */
export function deletedStatus(type: TypeRef, name: string, uid: string): KubeStatus {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details: { ...detailsFor(type, name), uid } };
}
