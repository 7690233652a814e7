/**
 * An emulated Kubernetes API server over HTTPS on 127.0.0.1, faithful enough that
 * @kubernetes/client-node (KubernetesObjectApi and the typed APIs) and kubectl work unchanged.
 *
 * Request pipeline, as kube-apiserver: authentication (Bearer token → `authenticate`, else 401;
 * then Impersonate-User/-Group when the caller may `impersonate`) → fault injection → RBAC authorization (403 with upstream's message) → the verb.
 * Faults: each resource request calls `faults.check("kube:<HTTP method> <resource>[/<subresource>]")`,
 * so a list is `kube:GET pods` like a get, a status write `kube:PUT jobs/status`; discovery, /version and
 * /openapi are not fault-injectable. Fault kinds answer: throttle → 429 TooManyRequests (Retry-After: 1),
 * 5xx → 503 ServiceUnavailable, conflict → 409 Conflict for the named object, permanent → 403 Forbidden,
 * latency → the normal answer `ms` later.
 *
 * Served: discovery (/api, /apis, /api/v1, /apis/<g>/<v>), /version, /healthz|livez|readyz; GET (get, list
 * with label/field selectors, limit/continue, watch), POST, PUT, PATCH (json-patch, merge-patch,
 * strategic-merge-patch, apply-patch+yaml as an approximation without field ownership), DELETE (with
 * propagationPolicy / orphanDependents / preconditions) and deletecollection; /status, pods/log,
 * namespaces/finalize; SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectReview
 * (`kubectl auth whoami`); Table output for kubectl; a permissive /openapi/v3 so kubectl's client-side
 * validation (`apply -f`, `create -f`) passes, and an empty /openapi/v2 (JSON, or protobuf as kubectl < 1.27
 * asks for it) for the same reason.
 * Not served: dryRun (400), pods/exec and other streaming subresources (400 "Upgrade request required").
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { parse as parseYaml } from "yaml";
import type { FaultInjector } from "../faults.js";
import { closeServer, listen, readBody as readRequestBody } from "../sandbox-http.js";
import type { KubeObject } from "./admission.js";
import { ClusterControllers, type KubeletOptions } from "./kubelet.js";
import type { ImageRegistry } from "./image-registry.js";
import { sandboxNode } from "./scheduler.js";
import { EKS_STORAGE_CLASSES } from "./volumes.js";
import { OPENAPI_V2_PROTOBUF, openApiV2, openApiV2Protobuf, openApiV3, wantsOpenApiV2Protobuf } from "./openapi.js";
import { decodeKubeProtobuf, PROTOBUF_CONTENT_TYPE } from "./protobuf.js";
import { jsonPatch, mergePatch, strategicMergePatch, type Json } from "./patch.js";
import { AUTHENTICATED_GROUP, isAuthorized, type KubeUser, type RequestAttributes } from "./rbac-authorizer.js";
import { requireNoEscalation } from "./rbac-escalation.js";
import { podSecurityWarning } from "./pod-security.js";
import {
  apiGroupDocument,
  apiGroupList,
  apiResourceList,
  apiVersionOf,
  coreApiVersions,
  customResourceType,
  findResourceType,
  NAMESPACES,
  PODS,
  versionInfo,
  type CustomResourceKind,
  type ResourceType,
} from "./resources.js";
import {
  badRequest,
  conflict,
  deletedStatus,
  failure,
  forbidden,
  forbiddenPath,
  internalError,
  invalid,
  KubeStatusError,
  methodNotAllowed,
  notFound,
  pageNotFound,
  serviceUnavailable,
  tooManyRequests,
  unauthorized,
  unsupportedMediaType,
} from "./kube-status.js";
import { KubeStore, objectMatcher, type DeleteOptions, type PropagationPolicy, type StoreEvent } from "./store.js";
import { toTable, wantsTable } from "./table.js";

export type { KubeUser } from "./rbac-authorizer.js";
export type { CustomResourceKind } from "./resources.js";
export type { KubeObject } from "./admission.js";
export { KubeStore } from "./store.js";

export interface KubeApiOptions {
  /** default 0: any free port */
  port?: number;
  faults?: FaultInjector;
  /**
   * Bearer token → user (undefined: 401). `system:authenticated` is added to the groups, as upstream.
   * The store is handed over so an authenticator can read kube-system/aws-auth (see auth.ts).
   */
  authenticate: (token: string, context: { store: KubeStore }) => Promise<KubeUser | undefined>;
  kubelet?: KubeletOptions;
  /**
   * Start like a fresh cluster (default true): namespaces default, kube-system, kube-public, kube-node-lease
   * (each with its `default` ServiceAccount and `kube-root-ca.crt`), ClusterRole `cluster-admin` bound to
   * the group system:masters, one node (scheduler.ts) and EKS's StorageClasses (volumes.ts).
   */
  bootstrap?: boolean;
}

/** One authorization decision the server made for a request (the request's own, or an escalate/bind/impersonate check). */
export interface AuthorizationRecord extends RequestAttributes {
  username: string;
  groups: string[];
  allowed: boolean;
}

/** The decisions kept for `authorizations` (the oldest are dropped past this). */
const AUTHORIZATIONS_KEPT = 100_000;

export interface KubeApiServer {
  /** https://127.0.0.1:<port> */
  url: string;
  port: number;
  /** base64 of the CA certificate PEM (kubeconfig `certificate-authority-data`, EKS `certificateAuthority.data`) */
  caData: string;
  caPem: string;
  store: KubeStore;
  controllers: ClusterControllers;
  /** which container images the kubelet can pull: `images.add("ghcr.io/acme/x:1")`, `images.remove("nextflow/nextflow")` */
  images: ImageRegistry;
  /**
   * Every authorization decision, in order: each request's, and the checks the server makes inside one (`escalate`
   * and `bind` for RBAC writes, `impersonate`). What an identity asked for, and got, can be read back from it.
   */
  authorizations: AuthorizationRecord[];
  /** Every object, deep-copied and sorted (group, resource, namespace, name). */
  snapshot(): KubeObject[];
  /** Insert or replace an object as the cluster administrator (no RBAC, no faults, no resourceVersion check). */
  seed(obj: KubeObject): KubeObject;
  /**
   * Serve a custom resource kind from now on, as creating its CustomResourceDefinition would: discovery lists it, and
   * its objects are stored, listed, watched and deleted like any other (RBAC applies). This server only.
   */
  registerCustomResource(kind: CustomResourceKind): void;
  /** A kubeconfig (YAML) for this server and a bearer token, for kubectl. */
  kubeconfig(token: string, options?: { namespace?: string; contextName?: string }): string;
  close(): Promise<void>;
}

const TLS_DIR = new URL("./tls/", import.meta.url);
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const JOB_ORPHAN_WARNING =
  '299 - "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning"';

interface ResourceRequest {
  type: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
  verb: string;
}

export async function startKubeApi(options: KubeApiOptions): Promise<KubeApiServer> {
  const caPem = readFileSync(new URL("ca.crt", TLS_DIR), "utf8");
  const store = new KubeStore();
  const controllers = new ClusterControllers(store, { ...(options.kubelet ?? {}), caPem });
  if (options.bootstrap ?? true) bootstrapCluster(store, controllers);

  const watches = new Set<ServerResponse>();
  const authorizations: AuthorizationRecord[] = [];
  const api = new ApiHandler(store, controllers, options, watches, authorizations);
  const server: Server = createServer(
    { key: readFileSync(new URL("server.key", TLS_DIR)), cert: readFileSync(new URL("server.crt", TLS_DIR)) },
    (req, res) => void api.handle(req, res),
  );
  const port = await listen(server, options.port ?? 0, "127.0.0.1");
  const url = `https://127.0.0.1:${port}`;
  api.serverAddress = `127.0.0.1:${port}`;
  const caData = Buffer.from(caPem).toString("base64");

  return {
    url,
    port,
    caData,
    caPem,
    store,
    controllers,
    images: controllers.images,
    authorizations,
    snapshot: () => store.all().map((entry) => entry.object),
    seed: (obj) => store.seed(obj),
    registerCustomResource: (kind) => api.registerCustomResource(kind),
    kubeconfig: (token, kubeconfigOptions = {}) => kubeconfigYaml(url, caData, token, kubeconfigOptions),
    close: async () => {
      controllers.close();
      for (const res of watches) res.end();
      watches.clear();
      await closeServer(server);
    },
  };
}

/**
 * kube-system/aws-auth as EKS creates it for a managed node group: the node role mapped to
 * `system:node:{{EC2PrivateDNSName}}` in system:bootstrappers and system:nodes. For `seed()`.
 */
export function nodeAwsAuthConfigMap(nodeRoleArn: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "aws-auth", namespace: "kube-system" },
    data: {
      mapRoles: `- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: ${nodeRoleArn}\n  username: system:node:{{EC2PrivateDNSName}}\n`,
    },
  };
}

function kubeconfigYaml(url: string, caData: string, token: string, options: { namespace?: string; contextName?: string }): string {
  const context = options.contextName ?? "sandbox";
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${context}`,
    "  cluster:",
    `    server: ${url}`,
    `    certificate-authority-data: ${caData}`,
    "users:",
    `- name: ${context}`,
    "  user:",
    `    token: ${JSON.stringify(token)}`,
    "contexts:",
    `- name: ${context}`,
    "  context:",
    `    cluster: ${context}`,
    `    user: ${context}`,
    ...(options.namespace ? [`    namespace: ${options.namespace}`] : []),
    `current-context: ${context}`,
    "",
  ].join("\n");
}

function bootstrapCluster(store: KubeStore, controllers: ClusterControllers): void {
  for (const name of ["default", "kube-node-lease", "kube-public", "kube-system"]) {
    store.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
    controllers.populateNamespace(name);
  }
  // The node of a managed node group, and the StorageClasses of an EKS cluster with the EBS, EFS and FSx CSI drivers.
  store.seed(sandboxNode());
  for (const storageClass of EKS_STORAGE_CLASSES) store.seed(storageClass);
  const bootstrapLabels = { "kubernetes.io/bootstrapping": "rbac-defaults" };
  const annotations = { "rbac.authorization.kubernetes.io/autoupdate": "true" };
  store.seed({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: "cluster-admin", labels: bootstrapLabels, annotations },
    rules: [
      { apiGroups: ["*"], resources: ["*"], verbs: ["*"] },
      { nonResourceURLs: ["*"], verbs: ["*"] },
    ],
  });
  store.seed({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "cluster-admin", labels: bootstrapLabels, annotations },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "system:masters" }],
  });
}

class ApiHandler {
  serverAddress = "127.0.0.1:443";
  /** The custom resource kinds registered on this server, beside the built-in RESOURCE_TYPES. */
  private readonly customTypes: ResourceType[] = [];

  constructor(
    private readonly store: KubeStore,
    private readonly controllers: ClusterControllers,
    private readonly options: KubeApiOptions,
    private readonly watches: Set<ServerResponse>,
    private readonly authorizations: AuthorizationRecord[],
  ) {}

  registerCustomResource(kind: CustomResourceKind): void {
    const type = customResourceType(kind);
    if (this.customTypes.some((t) => t.group === type.group && t.resource === type.resource))
      throw new Error(`${type.resource}.${type.group} is already served`);
    this.customTypes.push(type);
  }

  /** Ask the RBAC authorizer, and keep the decision. */
  private decide(user: KubeUser, attributes: RequestAttributes): boolean {
    const allowed = isAuthorized(this.store, user, attributes);
    const record = Object.fromEntries(Object.entries(attributes).filter(([, v]) => v !== undefined)) as RequestAttributes;
    this.authorizations.push({ username: user.username, groups: [...user.groups], ...record, allowed });
    if (this.authorizations.length > AUTHORIZATIONS_KEPT) this.authorizations.splice(0, this.authorizations.length - AUTHORIZATIONS_KEPT);
    return allowed;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? "/", "https://localhost");
      const user = await this.authenticate(req);
      const path = url.pathname.replace(/\/+$/, "") || "/";
      const nonResource = this.nonResource(path);
      if (nonResource !== undefined || !isResourcePath(path)) {
        return this.serveNonResource(req, res, user, path, nonResource);
      }
      const target = this.resolve(req.method ?? "GET", path, url.searchParams);
      await this.injectFault(req.method ?? "GET", target, user);
      this.authorize(user, target);
      await this.serveResource(req, res, url, user, target);
    } catch (error) {
      this.sendError(res, error);
    }
  }

  // ---- pipeline ----

  private async authenticate(req: IncomingMessage): Promise<KubeUser> {
    const header = req.headers.authorization ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthorized();
    let user: KubeUser | undefined;
    try {
      user = await this.options.authenticate(match[1]!, { store: this.store });
    } catch {
      user = undefined;
    }
    if (!user) throw unauthorized();
    const groups = user.groups.includes(AUTHENTICATED_GROUP) ? user.groups : [...user.groups, AUTHENTICATED_GROUP];
    return this.impersonate(req, { ...user, groups });
  }

  /** `kubectl --as/--as-group`: Impersonate-User / Impersonate-Group, allowed by the `impersonate` verb. */
  private impersonate(req: IncomingMessage, user: KubeUser): KubeUser {
    const username = req.headersDistinct["impersonate-user"]?.[0];
    const groups = req.headersDistinct["impersonate-group"] ?? [];
    if (username === undefined) {
      if (groups.length > 0) throw badRequest("requested impersonation of groups without impersonating a user");
      return user;
    }
    const checks: Array<[string, string]> = [["users", username], ...groups.map((g): [string, string] => ["groups", g])];
    for (const [resource, name] of checks) {
      if (!this.decide(user, { verb: "impersonate", apiGroup: "", resource, name })) {
        throw forbidden({ username: user.username, verb: "impersonate", type: { group: "", resource }, name });
      }
    }
    return { username, groups: [...groups.filter((g) => g !== AUTHENTICATED_GROUP), AUTHENTICATED_GROUP] };
  }

  private async injectFault(method: string, target: ResourceRequest, user: KubeUser): Promise<void> {
    const resource = target.subresource ? `${target.type.resource}/${target.subresource}` : target.type.resource;
    const fault = this.options.faults?.check(`kube:${method} ${resource}`);
    if (!fault) return;
    switch (fault.kind) {
      case "latency":
        await new Promise((resolve) => setTimeout(resolve, fault.ms ?? 100));
        return;
      case "throttle":
        throw tooManyRequests();
      case "5xx":
        throw serviceUnavailable();
      case "conflict":
        throw conflict(target.type, target.name ?? "");
      case "permanent":
        throw forbiddenRequest(user, target);
    }
  }

  private authorize(user: KubeUser, target: ResourceRequest): void {
    const attributes: RequestAttributes = {
      verb: target.verb,
      apiGroup: target.type.group,
      resource: target.type.resource,
      subresource: target.subresource,
      namespace: target.namespace,
      name: target.name,
    };
    if (!this.decide(user, attributes)) throw forbiddenRequest(user, target);
  }

  // ---- non-resource URLs ----

  /** The document for a discovery/info path, null for a known path with no document (404), undefined: not one. */
  private nonResource(path: string): unknown | null | undefined {
    if (path === "/version") return versionInfo();
    if (path === "/api") return coreApiVersions(this.serverAddress);
    if (path === "/apis") return apiGroupList(this.customTypes);
    if (path === "/api/v1") return apiResourceList("", "v1");
    const group = /^\/apis\/([^/]+)$/.exec(path);
    if (group) return apiGroupDocument(group[1]!, this.customTypes) ?? null;
    const groupVersion = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
    if (groupVersion) return apiResourceList(groupVersion[1]!, groupVersion[2]!, this.customTypes) ?? null;
    if (/^\/(healthz|livez|readyz)$/.test(path)) return "ok";
    if (path === "/openapi/v2") return openApiV2();
    if (/^\/openapi\/v3(\/|$)/.test(path)) return openApiV3(path) ?? null;
    if (/^\/openapi(\/|$)/.test(path)) return null;
    return undefined;
  }

  private serveNonResource(req: IncomingMessage, res: ServerResponse, user: KubeUser, path: string, document: unknown): void {
    const verb = (req.method ?? "GET").toLowerCase();
    if (!this.decide(user, { verb, path })) throw forbiddenPath(user.username, verb, path);
    if (document === undefined || document === null) throw pageNotFound();
    if (verb !== "get" && verb !== "head") throw methodNotAllowed();
    if (path === "/openapi/v2" && wantsOpenApiV2Protobuf(req.headers.accept)) {
      const body = openApiV2Protobuf();
      res.writeHead(200, { "Content-Type": OPENAPI_V2_PROTOBUF, "Content-Length": body.length });
      res.end(body);
      return;
    }
    if (typeof document === "string") {
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(document);
      return;
    }
    this.sendJson(res, 200, document);
  }

  // ---- resource URLs ----

  private resolve(method: string, path: string, query: URLSearchParams): ResourceRequest {
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(.+)$/.exec(path);
    if (!m) throw pageNotFound();
    const group = m[1] ? "" : m[2]!;
    const version = m[1] ?? m[3]!;
    const segments = m[4]!.split("/").map(decodeURIComponent);
    let namespace: string | undefined;
    let rest = segments;
    if (
      segments[0] === "namespaces" &&
      segments.length >= 3 &&
      !(segments.length === 3 && (segments[2] === "status" || segments[2] === "finalize"))
    ) {
      namespace = segments[1];
      rest = segments.slice(2);
    }
    const [resource, name, subresource, ...extra] = rest;
    const type =
      findResourceType(group, version, resource!) ??
      this.customTypes.find((t) => t.group === group && t.version === version && t.resource === resource);
    if (!type || extra.length > 0) throw pageNotFound();
    if (namespace !== undefined && !type.namespaced) throw pageNotFound();
    if (type.namespaced && namespace === undefined && name !== undefined) throw pageNotFound();
    if (subresource !== undefined && !(subresource === "status" ? type.status : type.subresources?.includes(subresource)))
      throw pageNotFound();
    const watching = query.get("watch") === "true" || query.get("watch") === "1";
    const verb = verbFor(method, name !== undefined, watching);
    if (!verb) throw methodNotAllowed();
    if (type.virtual && verb !== "create") throw methodNotAllowed();
    return { type, namespace, name, subresource, verb };
  }

  private async serveResource(req: IncomingMessage, res: ServerResponse, url: URL, user: KubeUser, target: ResourceRequest): Promise<void> {
    const query = url.searchParams;
    if (query.get("dryRun")) throw badRequest("dryRun is not supported by the sandbox API server");
    const { type, namespace, name, subresource } = target;
    switch (target.verb) {
      case "get":
        if (subresource === "log") return this.sendPodLog(res, namespace!, name!, query.get("container"));
        if (subresource === "exec") throw badRequest("Upgrade request required");
        return this.sendObject(req, res, 200, type, this.store.read(type, namespace, name!), query);
      case "list":
        return this.sendList(req, res, type, namespace, query);
      case "watch":
        return this.watch(res, type, namespace, query);
      case "create": {
        if (subresource) throw badRequest("Upgrade request required");
        const body = (await readJsonBody(req)) as KubeObject;
        if (type.virtual) return this.sendJson(res, 201, this.review(type, body, user));
        this.requireNoEscalation(user, type, body, namespace, undefined);
        const created = this.store.create(type, body, namespace);
        return this.sendObject(req, res, 201, type, created, query, this.podSecurityWarning(type, created));
      }
      case "update": {
        const body = (await readJsonBody(req)) as KubeObject;
        requireMatchingIdentity(type, body, namespace, name!);
        const sub = subresource === "status" || subresource === "finalize" ? subresource : undefined;
        if (!sub) this.requireNoEscalation(user, type, body, namespace, name);
        return this.sendObject(req, res, 200, type, this.store.update(type, body, { namespace, subresource: sub }), query);
      }
      case "patch":
        return this.patch(req, res, user, type, namespace, name!, subresource, query);
      case "delete":
        return this.delete(req, res, type, namespace, name!, query);
      case "deletecollection": {
        const options = await this.deleteOptions(req, query);
        const items = this.store.list(type, {
          namespace,
          labelSelector: query.get("labelSelector"),
          fieldSelector: query.get("fieldSelector"),
        });
        for (const item of items) this.store.delete(type, item.metadata.namespace, item.metadata.name!, options);
        return this.sendJson(res, 200, listOf(type, items, this.store.resourceVersion));
      }
      default:
        throw methodNotAllowed();
    }
  }

  private sendPodLog(res: ServerResponse, namespace: string, name: string, container: string | null): void {
    const pod = this.store.read(PODS, namespace, name);
    const containers: string[] = (pod.spec?.containers ?? []).map((c: { name: string }) => c.name);
    const chosen = container ?? containers[0]!;
    if (!container && containers.length > 1) {
      throw badRequest(`a container name must be specified for pod ${name}, choose one of: [${containers.join(" ")}]`);
    }
    if (!containers.includes(chosen)) throw badRequest(`container ${chosen} is not valid for pod ${name}`);
    const log = this.controllers.podLog(namespace, name);
    if (log === undefined) {
      const waiting =
        (pod.status?.containerStatuses ?? []).find((s: { name: string }) => s.name === chosen)?.state?.waiting?.reason ??
        "ContainerCreating";
      throw badRequest(`container "${chosen}" in pod "${name}" is waiting to start: ${waiting}`);
    }
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(log);
  }

  private async patch(
    req: IncomingMessage,
    res: ServerResponse,
    user: KubeUser,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    subresource: string | undefined,
    query: URLSearchParams,
  ): Promise<void> {
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    const raw = await readBody(req);
    const isApply = contentType === "application/apply-patch+yaml";
    let patchBody: unknown;
    try {
      patchBody = isApply ? parseYaml(raw) : JSON.parse(raw);
    } catch (error) {
      throw badRequest(`error decoding patch: ${(error as Error).message}`);
    }
    const existing = this.store.get(type, namespace, name);
    if (isApply) {
      if (!query.get("fieldManager")) {
        throw invalid("PatchOptions", "", "meta.k8s.io", [
          { field: "fieldManager", reason: "FieldValueRequired", message: "Required value: is required for apply patch" },
        ]);
      }
      if (!existing) {
        const applied = { ...(patchBody as KubeObject), metadata: { ...((patchBody as KubeObject)?.metadata ?? {}), name } };
        this.requireNoEscalation(user, type, applied, namespace, name);
        return this.sendObject(req, res, 201, type, this.store.create(type, applied, namespace), query);
      }
    }
    if (!existing) throw notFound(type, name);
    let patched: Json;
    switch (contentType) {
      case "application/json-patch+json":
        patched = jsonPatch(existing as unknown as Json, patchBody);
        break;
      case "application/merge-patch+json":
        patched = mergePatch(existing as unknown as Json, patchBody as Json);
        break;
      case "application/strategic-merge-patch+json":
      case "application/apply-patch+yaml":
        patched = strategicMergePatch(existing as unknown as Json, patchBody as Json);
        break;
      default:
        throw unsupportedMediaType(contentType);
    }
    const next = patched as unknown as KubeObject;
    if (!next || typeof next !== "object" || !next.metadata || typeof next.metadata !== "object")
      throw badRequest("the patched object has no metadata");
    if (next.metadata.name !== name) {
      throw invalid(type.kind, name, type.group, [
        { field: "metadata.name", message: `Invalid value: ${JSON.stringify(next.metadata.name)}: field is immutable` },
      ]);
    }
    if (type.namespaced && next.metadata.namespace !== namespace) {
      throw invalid(type.kind, name, type.group, [
        { field: "metadata.namespace", message: `Invalid value: ${JSON.stringify(next.metadata.namespace)}: field is immutable` },
      ]);
    }
    const sub = subresource === "status" ? "status" : undefined;
    if (!sub) this.requireNoEscalation(user, type, next, namespace, name);
    this.sendObject(req, res, 200, type, this.store.update(type, next, { namespace, subresource: sub }), query);
  }

  /** The RBAC registry's escalation rule for Role/RoleBinding writes (rbac-escalation.ts); other types pass. */
  private requireNoEscalation(
    user: KubeUser,
    type: ResourceType,
    body: KubeObject,
    namespace: string | undefined,
    name: string | undefined,
  ): void {
    requireNoEscalation(this.store, user, type, body ?? ({} as KubeObject), { namespace, name }, (attributes) =>
      this.decide(user, attributes),
    );
  }

  private async deleteOptions(req: IncomingMessage, query: URLSearchParams): Promise<DeleteOptions> {
    const raw = await readBody(req);
    let body: {
      propagationPolicy?: string;
      orphanDependents?: boolean;
      gracePeriodSeconds?: number;
      preconditions?: { uid?: string; resourceVersion?: string };
    } = {};
    if (raw.trim()) {
      try {
        body = JSON.parse(raw);
      } catch (error) {
        throw badRequest(`error decoding DeleteOptions: ${(error as Error).message}`);
      }
    }
    let policy = query.get("propagationPolicy") ?? body.propagationPolicy;
    const orphan = query.get("orphanDependents") ?? (body.orphanDependents === undefined ? undefined : String(body.orphanDependents));
    if (policy && orphan !== undefined && orphan !== null)
      throw badRequest("Either orphanDependents or propagationPolicy may be set, but not both");
    if (!policy && orphan !== undefined && orphan !== null) policy = orphan === "true" ? "Orphan" : "Background";
    if (policy && !["Background", "Foreground", "Orphan"].includes(policy)) {
      throw invalid("DeleteOptions", "", "meta.k8s.io", [
        {
          field: "propagationPolicy",
          reason: "FieldValueNotSupported",
          message: `Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan", "nil"`,
        },
      ]);
    }
    const grace = query.get("gracePeriodSeconds") ?? (body.gracePeriodSeconds === undefined ? undefined : String(body.gracePeriodSeconds));
    if (grace !== undefined && grace !== null && !/^-?\d+$/.test(grace))
      throw badRequest(`invalid gracePeriodSeconds: ${JSON.stringify(grace)}`);
    return {
      propagationPolicy: policy as PropagationPolicy | undefined,
      ...(grace !== undefined && grace !== null ? { gracePeriodSeconds: Number(grace) } : {}),
      preconditions: body.preconditions,
    };
  }

  private async delete(
    req: IncomingMessage,
    res: ServerResponse,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    query: URLSearchParams,
  ): Promise<void> {
    const options = await this.deleteOptions(req, query);
    const result = this.store.delete(type, namespace, name, options);
    const headers: Record<string, string> = {};
    if (type.resource === "jobs" && type.group === "batch" && !options.propagationPolicy) headers.Warning = JOB_ORPHAN_WARNING;
    if (!result.gone || type.resource === "pods") return this.sendJson(res, 200, result.object, headers);
    this.sendJson(res, 200, deletedStatus(type, name, result.object.metadata.uid!), headers);
  }

  private review(type: ResourceType, body: KubeObject, user: KubeUser): unknown {
    if (type.resource === "selfsubjectreviews") {
      return {
        kind: "SelfSubjectReview",
        apiVersion: "authentication.k8s.io/v1",
        metadata: { creationTimestamp: null },
        status: {
          userInfo: {
            username: user.username,
            ...(user.uid ? { uid: user.uid } : {}),
            groups: user.groups,
            ...(user.extra ? { extra: user.extra } : {}),
          },
        },
      };
    }
    const spec = body?.spec ?? {};
    let allowed: boolean;
    if (spec.nonResourceAttributes) {
      allowed = isAuthorized(this.store, user, {
        verb: spec.nonResourceAttributes.verb ?? "",
        path: spec.nonResourceAttributes.path ?? "",
      });
    } else {
      const a = spec.resourceAttributes ?? {};
      allowed = isAuthorized(this.store, user, {
        verb: a.verb ?? "",
        apiGroup: a.group ?? "",
        resource: a.resource ?? "",
        subresource: a.subresource || undefined,
        namespace: a.namespace || undefined,
        name: a.name || undefined,
      });
    }
    return {
      kind: "SelfSubjectAccessReview",
      apiVersion: "authorization.k8s.io/v1",
      metadata: { creationTimestamp: null },
      spec,
      status: allowed ? { allowed: true, reason: "RBAC: allowed by the sandbox API server" } : { allowed: false },
    };
  }

  // ---- watch ----

  private watch(res: ServerResponse, type: ResourceType, namespace: string | undefined, query: URLSearchParams): void {
    const matches = objectMatcher(type, {
      namespace,
      labelSelector: query.get("labelSelector"),
      fieldSelector: query.get("fieldSelector"),
    });
    const from = query.get("resourceVersion");
    let replay: StoreEvent[] | undefined;
    if (from && from !== "0") {
      replay = this.store.eventsSince(Number(from));
      if (!replay || !/^\d+$/.test(from)) {
        res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
        res.end(
          `${JSON.stringify({ type: "ERROR", object: failure(410, "Expired", `too old resource version: ${from} (${this.store.resourceVersion})`) })}\n`,
        );
        return;
      }
    }
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
    res.flushHeaders(); // clients wait for the headers before they read events
    const write = (eventType: string, object: KubeObject) => res.write(`${JSON.stringify({ type: eventType, object })}\n`);
    if (replay) {
      for (const e of replay) if (e.resourceType === type && matches(e.object)) write(e.type, e.object);
    } else {
      for (const object of this.store.list(type, { namespace })) if (matches(object)) write("ADDED", object);
    }
    const unsubscribe = this.store.subscribe((e) => {
      if (e.resourceType === type && matches(e.object)) write(e.type, e.object);
    });
    this.watches.add(res);
    const timeoutSeconds = Number(query.get("timeoutSeconds") ?? 1800);
    const timer = setTimeout(() => res.end(), Math.max(1, timeoutSeconds) * 1000);
    const stop = () => {
      clearTimeout(timer);
      unsubscribe();
      this.watches.delete(res);
    };
    res.on("close", stop);
    res.on("finish", stop);
  }

  // ---- responses ----

  private sendList(
    req: IncomingMessage,
    res: ServerResponse,
    type: ResourceType,
    namespace: string | undefined,
    query: URLSearchParams,
  ): void {
    let items = this.store.list(type, { namespace, labelSelector: query.get("labelSelector"), fieldSelector: query.get("fieldSelector") });
    const resourceVersion = this.store.resourceVersion;
    const limit = Number(query.get("limit") ?? 0);
    const token = query.get("continue");
    let offset = 0;
    if (token) {
      const decoded = /^(\d+):(\d+)$/.exec(Buffer.from(token, "base64url").toString());
      if (!decoded) throw badRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
      offset = Number(decoded[2]);
    }
    let next: string | undefined;
    let remaining: number | undefined;
    if (limit > 0 || offset > 0) {
      const end = limit > 0 ? offset + limit : items.length;
      if (end < items.length) {
        next = Buffer.from(`${resourceVersion}:${end}`).toString("base64url");
        remaining = items.length - end;
      }
      items = items.slice(offset, end);
    }
    if (wantsTable(req.headers.accept)) {
      this.sendJson(res, 200, toTable(type, items, resourceVersion, query.get("includeObject")));
      return;
    }
    const list = listOf(type, items, resourceVersion) as { metadata: Record<string, unknown> };
    if (next) list.metadata = { ...list.metadata, continue: next, remainingItemCount: remaining };
    this.sendJson(res, 200, list);
  }

  private sendObject(
    req: IncomingMessage,
    res: ServerResponse,
    code: number,
    type: ResourceType,
    object: KubeObject,
    query: URLSearchParams,
    warning?: string,
  ): void {
    const headers: Record<string, string> = warning ? { Warning: warning } : {};
    if (wantsTable(req.headers.accept)) {
      this.sendJson(res, code, toTable(type, [object], object.metadata.resourceVersion ?? "", query.get("includeObject")), headers);
      return;
    }
    this.sendJson(res, code, object, headers);
  }

  /** Pod Security's `warn` level, for a new pod or a Job's pod template (workloads are warned about, never refused). */
  private podSecurityWarning(type: ResourceType, object: KubeObject): string | undefined {
    const spec =
      type.resource === "pods" ? object.spec : type.resource === "jobs" && type.group === "batch" ? object.spec?.template?.spec : undefined;
    if (spec === undefined) return undefined;
    return podSecurityWarning(this.store.get(NAMESPACES, undefined, object.metadata.namespace!)?.metadata.labels, spec);
  }

  private sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private sendError(res: ServerResponse, error: unknown): void {
    if (error instanceof KubeStatusError) {
      this.sendJson(res, error.status.code ?? 500, error.status, error.headers);
      return;
    }
    this.sendJson(res, 500, internalError(error instanceof Error ? error.message : String(error)).status);
  }
}

/** The 403 for a resource request the user may not make (upstream's RBAC message). */
function forbiddenRequest(user: KubeUser, target: ResourceRequest): KubeStatusError {
  return forbidden({ username: user.username, ...target });
}

function isResourcePath(path: string): boolean {
  return /^\/(api\/v1|apis\/[^/]+\/[^/]+)\/.+/.test(path);
}

function verbFor(method: string, named: boolean, watching: boolean): string | undefined {
  switch (method) {
    case "GET":
    case "HEAD":
      return watching ? "watch" : named ? "get" : "list";
    case "POST":
      return named ? undefined : "create";
    case "PUT":
      return named ? "update" : undefined;
    case "PATCH":
      return named ? "patch" : undefined;
    case "DELETE":
      return named ? "delete" : "deletecollection";
    default:
      return undefined;
  }
}

function listOf(type: ResourceType, items: KubeObject[], resourceVersion: string): unknown {
  // Items in a list carry no kind/apiVersion on the wire, as upstream.
  return {
    kind: `${type.kind}List`,
    apiVersion: apiVersionOf(type),
    metadata: { resourceVersion },
    items: items.map(({ apiVersion: _a, kind: _k, ...rest }) => rest),
  };
}

function requireMatchingIdentity(type: ResourceType, body: KubeObject, namespace: string | undefined, name: string): void {
  if (!body || typeof body !== "object" || !body.metadata) throw badRequest("the body of the request must be an object with metadata");
  if (body.metadata.name !== name)
    throw badRequest(`the name of the object (${body.metadata.name ?? ""}) does not match the name on the URL (${name})`);
  if (type.namespaced && body.metadata.namespace !== undefined && body.metadata.namespace !== namespace) {
    throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
  }
  if (body.kind !== undefined && body.kind !== type.kind) {
    throw badRequest(`the kind in the data (${body.kind}) does not match the expected kind (${type.kind})`);
  }
}

async function readBytes(req: IncomingMessage): Promise<Buffer> {
  return readRequestBody(
    req,
    MAX_BODY_BYTES,
    () => new KubeStatusError(failure(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")),
  );
}

async function readBody(req: IncomingMessage): Promise<string> {
  return (await readBytes(req)).toString("utf8");
}

/** A create/update body: JSON (or YAML), or the protobuf kubectl's typed RBAC client sends. */
async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const contentType = (req.headers["content-type"] ?? "application/json").split(";")[0]!.trim();
  if (contentType === PROTOBUF_CONTENT_TYPE) return decodeKubeProtobuf(await readBytes(req));
  const raw = await readBody(req);
  try {
    return contentType === "application/yaml" ? parseYaml(raw) : JSON.parse(raw);
  } catch (error) {
    throw badRequest(`Object 'Kind' is missing in '${raw.slice(0, 200)}': ${(error as Error).message}`);
  }
}
