/**
 * An in-memory Kubernetes API for unit tests, shaped like @kubernetes/client-node 1.x
 * `KubernetesObjectApi` (it extends it, so it is handed to `setKubeClientFactory` as the real type).
 *
 * What it keeps of the real API server's behaviour, because the steps depend on it:
 *  - create → 409 AlreadyExists, read/replace/patch/delete → 404 NotFound, stale `resourceVersion` → 409 Conflict,
 *    all thrown as the client's own `ApiException` (numeric `code`, V1Status JSON text as `body`), so
 *    normalise-error sees the real shape;
 *  - `resourceVersion` bumps on every change, and a write that changes nothing does not bump it;
 *  - merge patch (RFC 7386: `null` removes a key) applied to the object's JSON form, as the server stores it;
 *    strategic merge patch is treated as a merge patch;
 *  - list with `labelSelector` and `fieldSelector`, parsed and matched by the emulator's own selectors
 *    (local/kube/selectors.ts), so the fake and the sandbox agree on the grammar;
 *  - delete garbage-collects dependents (ownerReferences) unless the policy orphans them; a Job deleted
 *    without `propagationPolicy` orphans its pods, as batch/v1 does; deleting a Namespace deletes its contents;
 *  - namespaced objects without a namespace land in `default`, like the client's default namespace.
 *
 * Faults reuse local/faults.ts with the sandbox's operation names (`kube:POST rolebindings`).
 * `calls` logs every request; `mutations` counts the writes that changed something.
 */
import {
  ApiException,
  type Configuration,
  type KubernetesListObject,
  type KubernetesObject,
  type V1DeleteOptions,
  type V1Status,
} from "@kubernetes/client-node";
import { isDeepStrictEqual } from "node:util";
import { KubeApi, type NamespacedResourceType } from "../../functions/lib/kube/kube-client.js";
import { FaultInjector } from "../../local/faults.js";
import { mergePatch, type Json } from "../../local/kube/patch.js";
import { matchesFieldRequirements, matchesLabelRequirements, parseFieldSelector, parseLabelSelector } from "../../local/kube/selectors.js";
import { failure, KubeStatusError, type StatusDetails } from "../../local/kube/kube-status.js";
import { apiVersionOf, RESOURCE_TYPES } from "../../local/kube/resources.js";

type Verb = "create" | "read" | "replace" | "patch" | "delete" | "list";

export interface FakeKubeCall {
  verb: Verb;
  apiVersion: string;
  kind: string;
  namespace?: string;
  name?: string;
  labelSelector?: string;
  fieldSelector?: string;
  propagationPolicy?: string;
  patchStrategy?: string;
  /** the body sent (create/replace/patch) */
  body?: KubernetesObject;
}

export interface FakeKubeOptions {
  /** Refuse namespaced objects whose Namespace does not exist (404), as the API server does. Default false. */
  requireNamespace?: boolean;
  faults?: FaultInjector;
}

const CLUSTER_SCOPED_KINDS = new Set([
  "Namespace",
  "Node",
  "PersistentVolume",
  "StorageClass",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
]);

const HTTP_VERB: Record<Verb, string> = { create: "POST", read: "GET", list: "GET", replace: "PUT", patch: "PATCH", delete: "DELETE" };
const MERGE_PATCH = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json";

const REASONS: Record<number, string> = {
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
};

/** The error the real client throws for a non-2xx answer: ApiException with the V1Status as JSON text. */
function kubeApiError(code: number, message: string, reason = REASONS[code] ?? "Unknown", details?: StatusDetails): ApiException<string> {
  return new ApiException<string>(code, "Unsuccessful HTTP Request", JSON.stringify(failure(code, reason, message, details)), {
    "content-type": "application/json",
  });
}

/** The 409 for a write based on a stale object (or an injected conflict). */
function conflictError(kind: string, name: string): ApiException<string> {
  return kubeApiError(
    409,
    `Operation cannot be fulfilled on ${resourceOf(kind)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
  );
}

/** The resource (plural) of a kind: `ServiceAccount` → `serviceaccounts`, `Ingress` → `ingresses`. */
function resourceOf(kind: string): string {
  const lower = kind.toLowerCase();
  if (lower.endsWith("s")) return `${lower}es`;
  if (lower.endsWith("y")) return `${lower.slice(0, -1)}ies`;
  return `${lower}s`;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** The object as the server stores it: JSON (Dates become strings, `undefined` keys vanish). */
function jsonOf(value: unknown): Json {
  return JSON.parse(JSON.stringify(value)) as Json;
}

/** Run the emulator's parsing, answering its 400s with the client's ApiException like every other error here. */
function asClientError<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof KubeStatusError)) throw error;
    const { code, message, reason, details } = error.status;
    throw kubeApiError(code ?? 500, message ?? error.message, reason, details);
  }
}

export class FakeKubeApi extends KubeApi {
  private readonly objects = new Map<string, KubernetesObject>();
  private version = 1000;
  private uidCounter = 0;
  readonly calls: FakeKubeCall[] = [];
  /** Writes that changed the store (a no-op replace/patch and failed calls are not counted). */
  mutations = 0;
  readonly faults: FaultInjector;
  private readonly requireNamespace: boolean;

  constructor(options: FakeKubeOptions = {}) {
    super({} as Configuration);
    this.faults = options.faults ?? new FaultInjector();
    this.requireNamespace = options.requireNamespace ?? false;
  }

  // ------------------------------------------------------------ test helpers

  /** Put an object in the store directly (someone else's object, a pod the kubelet made), bypassing faults. */
  seed<T extends KubernetesObject>(object: T): T {
    const stored = this.stamp(clone(object), undefined);
    this.objects.set(this.keyOf(stored), stored);
    return clone(stored) as T;
  }

  /** The stored object, or undefined. */
  get<T extends KubernetesObject = KubernetesObject>(apiVersion: string, kind: string, name: string, namespace?: string): T | undefined {
    const obj = this.objects.get(this.key(apiVersion, kind, this.namespaceFor(kind, namespace), name));
    return obj ? (clone(obj) as T) : undefined;
  }

  /** Every stored object of a kind (optionally in one namespace), sorted by namespace/name. */
  all<T extends KubernetesObject = KubernetesObject>(kind: string, namespace?: string): T[] {
    return [...this.objects.values()]
      .filter((o) => o.kind === kind && (namespace === undefined || o.metadata?.namespace === namespace))
      .sort((a, b) => this.keyOf(a).localeCompare(this.keyOf(b)))
      .map((o) => clone(o) as T);
  }

  /** `Kind/namespace/name` of every stored object, sorted: a compact picture of the cluster for assertions. */
  inventory(): string[] {
    return [...this.objects.values()].map((o) => [o.kind, o.metadata?.namespace, o.metadata?.name].filter(Boolean).join("/")).sort();
  }

  /** Change an object's status as a controller would (bumps resourceVersion, not counted as a mutation). */
  setStatus(apiVersion: string, kind: string, name: string, namespace: string | undefined, status: unknown): void {
    const key = this.key(apiVersion, kind, this.namespaceFor(kind, namespace), name);
    const obj = this.objects.get(key);
    if (!obj) throw new Error(`fake kube: no ${kind} ${namespace ?? ""}/${name} to set status on`);
    (obj as KubernetesObject & { status?: unknown }).status = clone(status);
    obj.metadata!.resourceVersion = String(++this.version);
  }

  /** Kinds discovery lists beyond the sandbox API server's own (a CRD, say). */
  readonly extraResourceTypes: NamespacedResourceType[] = [];
  /** `<group>/<resource>` this identity may not list (what a SelfSubjectAccessReview answers). */
  readonly notListable = new Set<string>();

  /** Calls of one verb (optionally one kind). */
  callsOf(verb: Verb, kind?: string): FakeKubeCall[] {
    return this.calls.filter((c) => c.verb === verb && (kind === undefined || c.kind === kind));
  }

  // ------------------------------------------------------------ KubeApi: discovery and access reviews

  /** The namespaced kinds the sandbox's API server serves (local/kube/resources.ts), and any extra ones. */
  override async namespacedResourceTypes(): Promise<NamespacedResourceType[]> {
    const served = RESOURCE_TYPES.filter((t) => t.namespaced && !t.virtual).map((t) => ({
      apiVersion: apiVersionOf(t),
      group: t.group,
      kind: t.kind,
      resource: t.resource,
      verbs: t.verbs,
    }));
    return [...served, ...structuredClone(this.extraResourceTypes)];
  }

  override async mayI(attributes: { verb: string; group: string; resource: string; namespace: string }): Promise<boolean> {
    return !(attributes.verb === "list" && this.notListable.has(`${attributes.group}/${attributes.resource}`));
  }

  // ------------------------------------------------------------ KubernetesObjectApi

  override async create<T extends KubernetesObject>(spec: T, _pretty?: string, dryRun?: string): Promise<T> {
    const obj = clone(spec);
    const { apiVersion, kind, name, namespace } = this.identify(obj);
    await this.enter({ verb: "create", apiVersion, kind, namespace, name, body: clone(spec) });
    if (!name) throw kubeApiError(422, `${kind} "" is invalid: metadata.name: Required value`);
    if (this.requireNamespace && namespace && !this.objects.has(this.key("v1", "Namespace", undefined, namespace))) {
      throw kubeApiError(404, `namespaces "${namespace}" not found`, "NotFound", { name: namespace, kind: "namespaces" });
    }
    obj.metadata = { ...obj.metadata, ...(namespace ? { namespace } : {}) };
    const key = this.key(apiVersion, kind, namespace, name);
    if (this.objects.has(key)) {
      throw kubeApiError(409, `${resourceOf(kind)} "${name}" already exists`, "AlreadyExists", { name, kind: resourceOf(kind) });
    }
    if (obj.metadata.resourceVersion) throw kubeApiError(422, "resourceVersion should not be set on objects to be created", "Invalid");
    const stored = this.stamp(obj, undefined);
    if (dryRun !== "All") {
      this.objects.set(key, stored);
      this.mutations++;
    }
    return clone(stored) as T;
  }

  override async read<T extends KubernetesObject>(spec: {
    apiVersion?: string;
    kind?: string;
    metadata: { name: string; namespace?: string };
  }): Promise<T> {
    const { apiVersion, kind, name, namespace } = this.identify(spec as KubernetesObject);
    await this.enter({ verb: "read", apiVersion, kind, namespace, name });
    return clone(this.mustFind(apiVersion, kind, namespace, name)) as T;
  }

  override async replace<T extends KubernetesObject>(spec: T, _pretty?: string, dryRun?: string): Promise<T> {
    const { apiVersion, kind, name, namespace } = this.identify(spec);
    await this.enter({ verb: "replace", apiVersion, kind, namespace, name, body: clone(spec) });
    const current = this.mustFind(apiVersion, kind, namespace, name);
    this.checkResourceVersion(current, spec.metadata?.resourceVersion, kind, name);
    const next = clone(spec) as KubernetesObject & { status?: unknown };
    // Fields the server owns survive an update.
    next.metadata = {
      ...next.metadata,
      ...(namespace ? { namespace } : {}),
      uid: current.metadata!.uid,
      creationTimestamp: current.metadata!.creationTimestamp,
      resourceVersion: current.metadata!.resourceVersion,
    };
    if ("status" in current) next.status = (current as KubernetesObject & { status?: unknown }).status;
    return this.store(current, next, dryRun) as T;
  }

  override async patch<T extends KubernetesObject>(
    spec: T,
    _pretty?: string,
    dryRun?: string,
    _fieldManager?: string,
    _force?: boolean,
    patchStrategy: string = STRATEGIC_MERGE_PATCH,
  ): Promise<T> {
    const { apiVersion, kind, name, namespace } = this.identify(spec);
    await this.enter({ verb: "patch", apiVersion, kind, namespace, name, patchStrategy, body: clone(spec) });
    if (patchStrategy !== MERGE_PATCH && patchStrategy !== STRATEGIC_MERGE_PATCH) {
      throw kubeApiError(415, `the fake supports merge and strategic merge patches, not ${patchStrategy}`);
    }
    const current = this.mustFind(apiVersion, kind, namespace, name);
    this.checkResourceVersion(current, spec.metadata?.resourceVersion, kind, name);
    const next = mergePatch(jsonOf(current), jsonOf(spec)) as unknown as KubernetesObject;
    next.metadata = {
      ...next.metadata,
      name,
      ...(namespace ? { namespace } : {}),
      uid: current.metadata!.uid,
      creationTimestamp: current.metadata!.creationTimestamp,
      resourceVersion: current.metadata!.resourceVersion,
    };
    return this.store(current, next, dryRun) as T;
  }

  override async delete(
    spec: KubernetesObject,
    _pretty?: string,
    dryRun?: string,
    _gracePeriodSeconds?: number,
    orphanDependents?: boolean,
    propagationPolicy?: string,
    body?: V1DeleteOptions,
  ): Promise<V1Status> {
    const { apiVersion, kind, name, namespace } = this.identify(spec);
    const policy = propagationPolicy ?? body?.propagationPolicy;
    await this.enter({ verb: "delete", apiVersion, kind, namespace, name, ...(policy ? { propagationPolicy: policy } : {}) });
    const current = this.mustFind(apiVersion, kind, namespace, name);
    const preconditions = body?.preconditions;
    if (preconditions?.uid !== undefined && preconditions.uid !== current.metadata?.uid) {
      throw kubeApiError(
        409,
        `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${current.metadata?.uid}`,
      );
    }
    if (preconditions?.resourceVersion !== undefined) this.checkResourceVersion(current, preconditions.resourceVersion, kind, name);
    if (dryRun !== "All") {
      // batch/v1 Jobs orphan their pods unless the caller asks for propagation (the API's legacy default).
      const orphan =
        orphanDependents === true || policy === "Orphan" || (policy === undefined && orphanDependents === undefined && kind === "Job");
      this.remove(current, !orphan);
      this.mutations++;
    }
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: { name, kind: resourceOf(kind), uid: current.metadata?.uid },
    };
  }

  override async list<T extends KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace?: string,
    _pretty?: string,
    _exact?: boolean,
    _exportt?: boolean,
    fieldSelector?: string,
    labelSelector?: string,
  ): Promise<KubernetesListObject<T>> {
    await this.enter({
      verb: "list",
      apiVersion,
      kind,
      ...(namespace ? { namespace } : {}),
      ...(labelSelector ? { labelSelector } : {}),
      ...(fieldSelector ? { fieldSelector } : {}),
    });
    const labels = asClientError(() => parseLabelSelector(labelSelector));
    const fields = asClientError(() => parseFieldSelector(fieldSelector, resourceOf(kind)));
    const items = [...this.objects.values()]
      .filter((o) => o.apiVersion === apiVersion && o.kind === kind)
      .filter((o) => !namespace || CLUSTER_SCOPED_KINDS.has(kind) || o.metadata?.namespace === namespace)
      .filter((o) => matchesLabelRequirements(o.metadata?.labels, labels) && matchesFieldRequirements(o, fields))
      .sort((a, b) => this.keyOf(a).localeCompare(this.keyOf(b)))
      .map((o) => clone(o) as T);
    return { apiVersion, kind: `${kind}List`, metadata: { resourceVersion: String(this.version) }, items };
  }

  // ------------------------------------------------------------ internals

  private namespaceFor(kind: string, namespace: string | undefined): string | undefined {
    if (CLUSTER_SCOPED_KINDS.has(kind)) return undefined;
    return namespace || "default";
  }

  private identify(obj: KubernetesObject): { apiVersion: string; kind: string; name: string; namespace?: string } {
    const apiVersion = obj.apiVersion ?? "v1";
    const kind = obj.kind;
    if (!kind) throw new Error("Required parameter spec.kind was null or undefined");
    return { apiVersion, kind, name: obj.metadata?.name ?? "", namespace: this.namespaceFor(kind, obj.metadata?.namespace) };
  }

  private key(apiVersion: string, kind: string, namespace: string | undefined, name: string): string {
    return `${apiVersion}|${kind}|${namespace ?? ""}|${name}`;
  }

  private keyOf(obj: KubernetesObject): string {
    return this.key(obj.apiVersion ?? "v1", obj.kind!, obj.metadata?.namespace, obj.metadata?.name ?? "");
  }

  /** Log the call, then apply any injected fault for it. */
  private async enter(call: FakeKubeCall): Promise<void> {
    this.calls.push(call);
    const operation = `kube:${HTTP_VERB[call.verb]} ${resourceOf(call.kind)}`;
    const fault = this.faults.check(operation);
    if (!fault) return;
    switch (fault.kind) {
      case "latency":
        await new Promise((resolve) => setTimeout(resolve, fault.ms ?? 10));
        return;
      case "throttle":
        throw kubeApiError(429, "Too many requests, please try again later.");
      case "5xx":
        throw kubeApiError(503, "the server is currently unable to handle the request");
      case "conflict":
        throw conflictError(call.kind, call.name ?? "");
      case "permanent":
        throw kubeApiError(403, `${resourceOf(call.kind)} is forbidden: injected fault`);
    }
  }

  private mustFind(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubernetesObject {
    const obj = this.objects.get(this.key(apiVersion, kind, namespace, name));
    if (!obj) throw kubeApiError(404, `${resourceOf(kind)} "${name}" not found`, "NotFound", { name, kind: resourceOf(kind) });
    return obj;
  }

  private checkResourceVersion(current: KubernetesObject, expected: string | undefined, kind: string, name: string): void {
    if (expected !== undefined && expected !== current.metadata?.resourceVersion) throw conflictError(kind, name);
  }

  private stamp(obj: KubernetesObject, previous: KubernetesObject | undefined): KubernetesObject {
    obj.metadata = {
      ...obj.metadata,
      uid: previous?.metadata?.uid ?? obj.metadata?.uid ?? `uid-${++this.uidCounter}`,
      creationTimestamp:
        previous?.metadata?.creationTimestamp ?? obj.metadata?.creationTimestamp ?? new Date(Date.UTC(2025, 0, 1, 0, 0, this.uidCounter)),
      resourceVersion: String(++this.version),
    };
    if (!CLUSTER_SCOPED_KINDS.has(obj.kind!)) obj.metadata.namespace = obj.metadata.namespace || "default";
    return obj;
  }

  /** Store `next` unless it equals `current` in JSON (then nothing changes, as on the API server). */
  private store(current: KubernetesObject, next: KubernetesObject, dryRun: string | undefined): KubernetesObject {
    if (isDeepStrictEqual(jsonOf(next), jsonOf(current)) || dryRun === "All") return clone(current);
    const stored = this.stamp(next, current);
    this.objects.set(this.keyOf(stored), stored);
    this.mutations++;
    return clone(stored);
  }

  private remove(obj: KubernetesObject, collectDependents: boolean): void {
    this.objects.delete(this.keyOf(obj));
    if (obj.kind === "Namespace") {
      for (const child of [...this.objects.values()])
        if (child.metadata?.namespace === obj.metadata?.name) this.objects.delete(this.keyOf(child));
      return;
    }
    if (!collectDependents) return;
    const uid = obj.metadata?.uid;
    for (const child of [...this.objects.values()]) {
      if (child.metadata?.ownerReferences?.some((ref) => ref.uid === uid)) this.remove(child, true);
    }
  }
}
