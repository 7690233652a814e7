/**
 * Just enough of Kubernetes' protobuf encoding to read the request bodies kubectl sends that way:
 * `kubectl create rolebinding` / `create clusterrolebinding` use client-go's typed RBAC client, which
 * posts `application/vnd.kubernetes.protobuf` (everything else kubectl sends is JSON). The envelope is
 * the magic `k8s\0` followed by a runtime.Unknown {typeMeta, raw}; `raw` is the object's message.
 * Other kinds answer 415 so the cause is obvious.
 */
import { KubeStatusError, failure } from "./kube-status.js";
import type { KubeObject } from "./admission.js";

export const PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf";
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

interface Field {
  name: string;
  type: "string" | "bytes" | "message" | "map";
  repeated?: boolean;
  schema?: Schema;
}
type Schema = Record<number, Field>;

const OBJECT_META: Schema = {
  1: { name: "name", type: "string" },
  2: { name: "generateName", type: "string" },
  3: { name: "namespace", type: "string" },
  5: { name: "uid", type: "string" },
  6: { name: "resourceVersion", type: "string" },
  11: { name: "labels", type: "map" },
  12: { name: "annotations", type: "map" },
  14: { name: "finalizers", type: "string", repeated: true },
};
const SUBJECT: Schema = {
  1: { name: "kind", type: "string" },
  2: { name: "apiGroup", type: "string" },
  3: { name: "name", type: "string" },
  4: { name: "namespace", type: "string" },
};
const ROLE_REF: Schema = {
  1: { name: "apiGroup", type: "string" },
  2: { name: "kind", type: "string" },
  3: { name: "name", type: "string" },
};
const BINDING: Schema = {
  1: { name: "metadata", type: "message", schema: OBJECT_META },
  2: { name: "subjects", type: "message", repeated: true, schema: SUBJECT },
  3: { name: "roleRef", type: "message", schema: ROLE_REF },
};
const SCHEMAS: Record<string, Schema> = {
  "rbac.authorization.k8s.io/v1/RoleBinding": BINDING,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": BINDING,
};
const TYPE_META: Schema = { 1: { name: "apiVersion", type: "string" }, 2: { name: "kind", type: "string" } };
const UNKNOWN: Schema = { 1: { name: "typeMeta", type: "message", schema: TYPE_META }, 2: { name: "raw", type: "bytes" } };

function unsupported(message: string): KubeStatusError {
  return new KubeStatusError(failure(415, "UnsupportedMediaType", message));
}

function readVarint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (let i = at; i < buf.length; i++) {
    const byte = buf[i]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, i + 1];
    shift += 7;
  }
  throw unsupported("truncated protobuf varint");
}

function decodeMessage(buf: Buffer, schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let at = 0;
  while (at < buf.length) {
    const [tag, next] = readVarint(buf, at);
    at = next;
    const field = schema[Math.floor(tag / 8)];
    const wire = tag & 7;
    let payload: Buffer | undefined;
    if (wire === 0) at = readVarint(buf, at)[1];
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const [length, start] = readVarint(buf, at);
      payload = buf.subarray(start, start + length);
      at = start + length;
    } else throw unsupported(`unsupported protobuf wire type ${wire}`);
    if (!field || payload === undefined) continue; // fields we do not model (timestamps, managedFields, ...)
    let value: unknown;
    if (field.type === "string") value = payload.toString("utf8");
    else if (field.type === "bytes") value = payload;
    else if (field.type === "message") value = decodeMessage(payload, field.schema!);
    else {
      const entry = decodeMessage(payload, { 1: { name: "key", type: "string" }, 2: { name: "value", type: "string" } });
      out[field.name] = { ...((out[field.name] as Record<string, string>) ?? {}), [String(entry.key ?? "")]: String(entry.value ?? "") };
      continue;
    }
    if (field.repeated) out[field.name] = [...((out[field.name] as unknown[]) ?? []), value];
    else if (!(field.type === "string" && value === "")) out[field.name] = value;
  }
  return out;
}

export function decodeKubeProtobuf(body: Buffer): KubeObject {
  if (!body.subarray(0, 4).equals(MAGIC)) throw unsupported("protobuf body without the k8s envelope");
  const envelope = decodeMessage(body.subarray(4), UNKNOWN) as { typeMeta?: { apiVersion?: string; kind?: string }; raw?: Buffer };
  const apiVersion = envelope.typeMeta?.apiVersion ?? "";
  const kind = envelope.typeMeta?.kind ?? "";
  const schema = SCHEMAS[`${apiVersion}/${kind}`];
  if (!schema)
    throw unsupported(
      `the sandbox API server reads protobuf only for RoleBinding/ClusterRoleBinding (got ${apiVersion} ${kind}); send JSON`,
    );
  const object = decodeMessage(envelope.raw ?? Buffer.alloc(0), schema);
  return { apiVersion, kind, metadata: {}, ...object } as KubeObject;
}

/** A message to encode: field number → a string, or a nested message (encoded length-delimited, empty ones too). */
export interface ProtobufMessage {
  [field: number]: string | ProtobufMessage | undefined;
}

function encodeVarint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** Encodes string and message fields (wire type 2), in field-number order, as protoc does. */
export function encodeProtobufMessage(message: ProtobufMessage): Buffer {
  const parts: Buffer[] = [];
  for (const field of Object.keys(message)
    .map(Number)
    .sort((a, b) => a - b)) {
    const value = message[field];
    if (value === undefined) continue;
    const payload = typeof value === "string" ? Buffer.from(value, "utf8") : encodeProtobufMessage(value);
    parts.push(encodeVarint(field * 8 + 2), encodeVarint(payload.length), payload);
  }
  return Buffer.concat(parts);
}
