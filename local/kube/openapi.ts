/**
 * A permissive OpenAPI v3 document per group-version, enough for kubectl (`kubectl apply -f` / `create -f`
 * refuse to run when they can download no schema): each kind's PATCH path declares the `fieldValidation`
 * query parameter, so kubectl leaves validation to the server (admission.ts), and each kind's schema is an
 * object that keeps unknown fields.
 * /openapi/v2 is what kubectl before 1.27 reads instead (e.g. Debian bookworm's kubectl 1.20): it asks for
 * gnostic's protobuf encoding and cannot read JSON, so the document is served in both. It is a valid but
 * empty Swagger 2.0 document: with no definition naming a kind, kubectl skips client-side validation (the
 * server validates, as with v3) and `apply` falls back to its built-in strategic-merge metadata.
 */
import { createHash } from "node:crypto";
import { encodeProtobufMessage } from "./protobuf.js";
import { RESOURCE_TYPES } from "./resources.js";

const SPEC_VERSION = "v1.31.4";

function groupVersionPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function document(group: string, version: string): Record<string, unknown> | undefined {
  const types = RESOURCE_TYPES.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const schemaGroup = group === "" ? "core" : group.replace(/\.k8s\.io$/, "");
  const schemas: Record<string, unknown> = {};
  for (const t of types) {
    schemas[`io.k8s.api.${schemaGroup}.${version}.${t.kind}`] = {
      type: "object",
      description: `${t.kind} (sandbox schema: fields are checked by the API server)`,
      properties: {
        apiVersion: { type: "string" },
        kind: { type: "string" },
        metadata: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
      },
      "x-kubernetes-preserve-unknown-fields": true,
      "x-kubernetes-group-version-kind": [{ group, kind: t.kind, version }],
    };
  }
  // One PATCH operation per kind that accepts `fieldValidation`: kubectl then leaves field validation to
  // the server instead of validating against these (schema-less) definitions.
  const paths: Record<string, unknown> = {};
  for (const t of types.filter((t) => t.verbs.includes("patch"))) {
    const prefix = `/${groupVersionPath(group, version)}`;
    const path = t.namespaced ? `${prefix}/namespaces/{namespace}/${t.resource}/{name}` : `${prefix}/${t.resource}/{name}`;
    paths[path] = {
      patch: {
        operationId: `patch${t.kind}`,
        parameters: [{ name: "fieldValidation", in: "query", schema: { type: "string", uniqueItems: true } }],
        responses: { "200": { description: "OK" } },
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": { group, version, kind: t.kind },
      },
    };
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: SPEC_VERSION },
    paths,
    components: { schemas },
  };
}

function hashOf(value: unknown): string {
  return createHash("sha512").update(JSON.stringify(value)).digest("hex").slice(0, 128).toUpperCase();
}

/** The v3 index and each group-version's document with its hash, built once (RESOURCE_TYPES never change). */
let v3: { index: unknown; documents: Map<string, Record<string, unknown>> } | undefined;

function openApiV3Documents(): NonNullable<typeof v3> {
  if (v3) return v3;
  const paths: Record<string, { serverRelativeURL: string }> = {};
  const documents = new Map<string, Record<string, unknown>>();
  for (const t of RESOURCE_TYPES) {
    const rel = groupVersionPath(t.group, t.version);
    if (documents.has(rel)) continue;
    const doc = document(t.group, t.version)!;
    documents.set(rel, doc);
    paths[rel] = { serverRelativeURL: `/openapi/v3/${rel}?hash=${hashOf(doc)}` };
  }
  v3 = { index: { paths }, documents };
  return v3;
}

/** GET /openapi/v3 (the index) or /openapi/v3/<api|apis>/...; undefined: 404. */
export function openApiV3(path: string): unknown {
  const { index, documents } = openApiV3Documents();
  if (path === "/openapi/v3") return index;
  const m = /^\/openapi\/v3\/(?:api\/([^/]+)|apis\/([^/]+)\/([^/]+))$/.exec(path);
  if (!m) return undefined;
  return documents.get(m[1] ? groupVersionPath("", m[1]) : groupVersionPath(m[2]!, m[3]!));
}

/**
 * The Content-Type of the protobuf /openapi/v2. kubectl asks for `...spec.v2@v1.0+protobuf`, but `@` is not
 * valid in a media type and client-go refuses a response labelled so ("mime: unexpected content after
 * media subtype"); kube-apiserver (kube-openapi) answers with this spelling.
 */
export const OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/** Whether an Accept header asks for the protobuf /openapi/v2 (either spelling) before JSON, as kube-openapi negotiates. */
export function wantsOpenApiV2Protobuf(accept: string | undefined): boolean {
  for (const clause of (accept ?? "").split(",")) {
    const type = clause.split(";")[0]!.trim();
    if (/^application\/com\.github\.proto-openapi\.spec\.v2[@.]v1\.0\+protobuf$/.test(type)) return true;
    if (type === "application/json" || type === "*/*" || type === "application/*") return false;
  }
  return false;
}

/** GET /openapi/v2 as JSON: Swagger 2.0 with no paths and no definitions. */
export function openApiV2(): Record<string, unknown> {
  return { swagger: "2.0", info: { title: "Kubernetes", version: SPEC_VERSION }, paths: {}, definitions: {} };
}

/**
 * The same document as gnostic's openapi.v2.Document message (OpenAPIv2.proto): swagger = 1,
 * info = 2 {title = 1, version = 2}, paths = 8, definitions = 9.
 */
export function openApiV2Protobuf(): Buffer {
  return encodeProtobufMessage({ 1: "2.0", 2: { 1: "Kubernetes", 2: SPEC_VERSION }, 8: {}, 9: {} });
}
