/**
 * The emulated cluster's object storage, with the semantics of kube-apiserver's registry:
 * one global resourceVersion counter (a string on the wire), uid/creationTimestamp/generation,
 * optimistic concurrency on update (stale resourceVersion → 409 Conflict; no resourceVersion → an
 * unconditional update), no-op updates that keep the resourceVersion, the `/status` split, namespace
 * existence and termination checks on create, and graceful deletion as the generic registry does it:
 *  - an object goes when it has a deletionTimestamp, no metadata.finalizers and deletionGracePeriodSeconds 0;
 *  - a pod bound to a node and not yet ended is deleted gracefully: deletionTimestamp and
 *    deletionGracePeriodSeconds (the request's gracePeriodSeconds, else its terminationGracePeriodSeconds, else 30),
 *    and stays until the kubelet has stopped it (kubelet.ts);
 *  - propagationPolicy Foreground / Orphan add the `foregroundDeletion` / `orphan` finalizer, Background deletes
 *    the owner at once; the garbage collector (garbage-collector.ts) then deletes or orphans the dependents, later
 *    (batch/v1 Jobs orphan by default, like upstream);
 *  - a PVC gets `kubernetes.io/pvc-protection` on create (the StorageObjectInUseProtection admission plugin).
 * Namespace deletion only marks the namespace Terminating (a repeated delete answers 409 Conflict, as upstream);
 * the namespace controller (namespace-lifecycle.ts) empties it, and removes it through `finalizeNamespace`.
 *
 * Everything here is synchronous; listeners (watches, controllers) are called after each change.
 */
import { randomUUID } from "node:crypto";
import { jsonEqual } from "./patch.js";
import { applyCreateDefaults, foldStringData, validateCreate, validateUpdate, type KubeObject } from "./admission.js";
import {
  apiVersionOf,
  findResourceTypeByKind,
  LIMIT_RANGES,
  NAMESPACES,
  PODS,
  RESOURCE_QUOTAS,
  SERVICE_ACCOUNTS,
  STORAGE_CLASSES,
  type ResourceType,
} from "./resources.js";
import { matchesFieldRequirements, matchesLabelRequirements, parseFieldSelector, parseLabelSelector } from "./selectors.js";
import { alreadyExists, badRequest, conflict, forbidden, internalError, type KubeStatusError, notFound } from "./kube-status.js";
import { podSecurityRefusal } from "./pod-security.js";
import { applyLimitRangeDefaults, quotaRefusal } from "./limits.js";

export type { KubeObject } from "./admission.js";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  type: WatchEventType;
  resourceType: ResourceType;
  object: KubeObject;
  resourceVersion: number;
}

export type PropagationPolicy = "Background" | "Foreground" | "Orphan";

export interface DeleteOptions {
  propagationPolicy?: PropagationPolicy;
  /** 0: at once (a pod's "force" delete); absent: the pod's terminationGracePeriodSeconds */
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface DeleteResult {
  /** the object as deleted (or as left behind: a Terminating namespace, an object waiting on finalizers) */
  object: KubeObject;
  /** true when the object is gone from storage */
  gone: boolean;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string | null;
  fieldSelector?: string | null;
}

const HISTORY_LIMIT = 10_000;
/** The finalizers the API server adds for propagationPolicy Foreground and Orphan (the garbage collector removes them). */
export const FOREGROUND_FINALIZER = "foregroundDeletion";
export const ORPHAN_FINALIZER = "orphan";
/** Added to every PVC on create by the StorageObjectInUseProtection admission plugin. */
export const PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection";
/** The upstream message for a delete of a namespace already Terminating (409 Conflict). */
export const NAMESPACE_PURGE_MESSAGE =
  "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.";
/** A pod's grace period when its spec gives none. */
export const DEFAULT_GRACE_PERIOD_SECONDS = 30;
/** The NamespaceLifecycle admission plugin refuses to delete these. */
const UNDELETABLE_NAMESPACES = ["default", "kube-system", "kube-public"];
const GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

/** Five characters like the real server's generateName suffix. */
export function randomSuffix(length = 5): string {
  let out = "";
  for (let i = 0; i < length; i++) out += GENERATE_NAME_ALPHABET[Math.floor(Math.random() * GENERATE_NAME_ALPHABET.length)];
  return out;
}

/** RFC 3339 with second precision, as metadata timestamps are written. */
export function timestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/**
 * Whether an object of `type` is in `namespace` (when the type is namespaced and one is given) and
 * matches the label and field selectors. The selectors are parsed here, so a bad one throws its 400 at once.
 */
export function objectMatcher(type: ResourceType, options: ListOptions = {}): (object: KubeObject) => boolean {
  const labels = parseLabelSelector(options.labelSelector);
  const fields = parseFieldSelector(options.fieldSelector, type.resource);
  return (o) =>
    (!type.namespaced || !options.namespace || o.metadata.namespace === options.namespace) &&
    matchesLabelRequirements(o.metadata.labels, labels) &&
    matchesFieldRequirements(o, fields);
}

export class KubeStore {
  private readonly objects = new Map<string, { type: ResourceType; object: KubeObject }>();
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private readonly history: StoreEvent[] = [];
  private revision = 1000;

  /** The current (latest) resourceVersion, as lists report it. */
  get resourceVersion(): string {
    return String(this.revision);
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Events after `resourceVersion`, or undefined when they are older than the history kept (→ 410 Gone). */
  eventsSince(resourceVersion: number): StoreEvent[] | undefined {
    const oldest = this.history[0]?.resourceVersion;
    if (oldest !== undefined && resourceVersion < oldest - 1 && this.history.length >= HISTORY_LIMIT) return undefined;
    return this.history.filter((e) => e.resourceVersion > resourceVersion);
  }

  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const entry = this.objects.get(this.key(type, namespace, name));
    return entry ? clone(entry.object) : undefined;
  }

  read(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const object = this.get(type, namespace, name);
    if (!object) throw notFound(type, name);
    return object;
  }

  list(type: ResourceType, options: ListOptions = {}): KubeObject[] {
    const matches = objectMatcher(type, options);
    const items: KubeObject[] = [];
    for (const entry of this.objects.values()) {
      if (entry.type === type && matches(entry.object)) items.push(clone(entry.object));
    }
    return items.sort(byNamespaceAndName);
  }

  /** Every object, every type (sorted: group, resource, namespace, name). */
  all(): Array<{ type: ResourceType; object: KubeObject }> {
    return [...this.objects.values()]
      .map((e) => ({ type: e.type, object: clone(e.object) }))
      .sort(
        (a, b) =>
          a.type.group.localeCompare(b.type.group) ||
          a.type.resource.localeCompare(b.type.resource) ||
          byNamespaceAndName(a.object, b.object),
      );
  }

  create(type: ResourceType, body: KubeObject, namespace?: string): KubeObject {
    const obj = this.prepareNew(type, body, namespace);
    const name = obj.metadata.name!;
    if (type.namespaced) this.requireWritableNamespace(type, obj.metadata.namespace!, name);
    if (type.resource === "pods") this.admitPod(obj);
    if (type.resource === "persistentvolumeclaims" && obj.spec?.storageClassName === undefined) {
      // DefaultStorageClass admission: a claim that names no class gets the default one (if any).
      const byDefault = this.list(STORAGE_CLASSES).find(
        (c) => c.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"] === "true",
      );
      if (byDefault) obj.spec = { ...obj.spec, storageClassName: byDefault.metadata.name };
    }
    if (this.objects.has(this.key(type, obj.metadata.namespace, name))) throw alreadyExists(type, name);
    obj.metadata.resourceVersion = this.nextRevision();
    this.objects.set(this.key(type, obj.metadata.namespace, name), { type, object: obj });
    this.emit("ADDED", type, obj);
    return clone(obj);
  }

  /**
   * PUT semantics. `subresource: "status"` replaces only the status; a main-resource update keeps the
   * stored status (for types with a status subresource). Namespaces keep their spec (finalize only).
   */
  update(type: ResourceType, body: KubeObject, options: { namespace?: string; subresource?: "status" | "finalize" } = {}): KubeObject {
    const name = body.metadata?.name;
    if (!name) throw badRequest("name is required");
    const namespace = type.namespaced ? (options.namespace ?? body.metadata.namespace) : undefined;
    const entry = this.objects.get(this.key(type, namespace, name));
    if (!entry) throw notFound(type, name);
    const current = entry.object;
    const wanted = body.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== "" && wanted !== current.metadata.resourceVersion) throw conflict(type, name);

    let next: KubeObject;
    if (options.subresource === "status") {
      next = { ...clone(current), status: clone(body.status) };
    } else if (options.subresource === "finalize") {
      next = { ...clone(current), spec: { ...(current.spec ?? {}), finalizers: clone(body.spec?.finalizers ?? []) } };
    } else {
      next = clone(body);
      next.apiVersion = apiVersionOf(type);
      next.kind = type.kind;
      if (type.status) next.status = clone(current.status);
      if (type.resource === "namespaces") {
        next.spec = clone(current.spec);
        next.metadata = { ...next.metadata, labels: { ...(next.metadata?.labels ?? {}), "kubernetes.io/metadata.name": name } };
      }
      if (type.resource === "secrets") foldStringData(next);
    }
    // Server-owned metadata cannot be changed by a client.
    next.metadata = {
      ...next.metadata,
      name,
      ...(type.namespaced ? { namespace } : {}),
      uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp,
      resourceVersion: current.metadata.resourceVersion,
    };
    if (!type.namespaced) delete next.metadata.namespace;
    dropEmptyMaps(next.metadata);
    for (const field of ["deletionTimestamp", "deletionGracePeriodSeconds", "generation"] as const) {
      if (current.metadata[field] !== undefined) (next.metadata as Record<string, unknown>)[field] = current.metadata[field];
      else delete next.metadata[field];
    }
    if (type.generation && !jsonEqual(current.spec, next.spec)) next.metadata.generation = (current.metadata.generation ?? 0) + 1;
    validateUpdate(type, current, next, { storageClass: (className) => this.get(STORAGE_CLASSES, undefined, className) });

    if (jsonEqual(current, next)) return clone(current); // a no-op write keeps the resourceVersion, as upstream
    return this.commit(type, namespace, entry, next);
  }

  /** Store `next` over the entry: MODIFIED, or DELETED when it was being deleted and nothing holds it any more. */
  private commit(type: ResourceType, namespace: string | undefined, entry: { object: KubeObject }, next: KubeObject): KubeObject {
    next.metadata.resourceVersion = this.nextRevision();
    if (type.resource === "namespaces" && namespaceReadyToGo(next)) {
      // The last finalizer of a Terminating namespace removed (spec's by /finalize, or its own metadata's by an
      // update): the registry deletes it, as upstream's ShouldDeleteNamespaceDuringUpdate.
      entry.object = next;
      this.removeNamespace(next.metadata.name!);
      return clone(next);
    }
    if (readyToGo(type, next)) {
      this.objects.delete(this.key(type, namespace, next.metadata.name!));
      this.emit("DELETED", type, next);
      return clone(next);
    }
    entry.object = next;
    this.emit("MODIFIED", type, next);
    return clone(next);
  }

  delete(type: ResourceType, namespace: string | undefined, name: string, options: DeleteOptions = {}): DeleteResult {
    const key = this.key(type, namespace, name);
    const entry = this.objects.get(key);
    if (!entry) throw notFound(type, name);
    const current = entry.object;
    const pre = options.preconditions;
    if (pre?.uid && pre.uid !== current.metadata.uid) {
      throw preconditionFailed(type, name, `UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion) {
      throw preconditionFailed(
        type,
        name,
        `ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
      );
    }
    // batch/v1 Jobs keep their pods unless asked otherwise (upstream's legacy default for that API).
    const propagationPolicy = options.propagationPolicy ?? (type.resource === "jobs" ? "Orphan" : "Background");

    if (type.resource === "namespaces") {
      if (UNDELETABLE_NAMESPACES.includes(name)) {
        throw forbidden({ username: "", verb: "delete", type, name }, "this namespace may not be deleted");
      }
      if (current.metadata.deletionTimestamp) {
        if (current.spec?.finalizers?.length) throw conflict(type, name, NAMESPACE_PURGE_MESSAGE);
        return { object: clone(current), gone: false };
      }
      const terminating = clone(current);
      terminating.metadata.deletionTimestamp = timestamp();
      terminating.metadata.deletionGracePeriodSeconds = 0;
      terminating.status = { ...(terminating.status ?? {}), phase: "Terminating" };
      // A namespace made with no finalizers at all goes at once, as upstream's registry deletes it.
      const object = this.commit(type, namespace, entry, terminating);
      return { object, gone: !this.objects.has(key) };
    }

    const grace = this.gracePeriod(type, current, options.gracePeriodSeconds);
    const hasDependents = this.dependentsOf(current.metadata.uid!).length > 0;
    if (
      !current.metadata.deletionTimestamp &&
      !current.metadata.finalizers?.length &&
      grace === 0 &&
      (propagationPolicy === "Background" || !hasDependents)
    ) {
      // Nothing holds it: gone at once (its dependents, if any, are the garbage collector's).
      this.objects.delete(key);
      const deleted = clone(current);
      deleted.metadata.resourceVersion = this.nextRevision();
      if (type.resource === "pods") {
        deleted.metadata.deletionTimestamp = timestamp();
        deleted.metadata.deletionGracePeriodSeconds = 0;
      }
      this.emit("DELETED", type, deleted);
      return { object: clone(deleted), gone: true };
    }
    const next = clone(current);
    const finalizers = [...(next.metadata.finalizers ?? [])];
    const policyFinalizer =
      propagationPolicy === "Foreground" ? FOREGROUND_FINALIZER : propagationPolicy === "Orphan" ? ORPHAN_FINALIZER : undefined;
    // Upstream adds it whatever the dependents; an object without any is removed at once here (the collector's next step).
    if (policyFinalizer && hasDependents && !finalizers.includes(policyFinalizer) && !current.metadata.deletionTimestamp)
      finalizers.push(policyFinalizer);
    if (finalizers.length > 0) next.metadata.finalizers = finalizers;
    if (current.metadata.deletionTimestamp) {
      // Already being deleted: a shorter grace period may still be asked for (a force delete of a stuck pod).
      if (grace < (current.metadata.deletionGracePeriodSeconds ?? 0)) next.metadata.deletionGracePeriodSeconds = grace;
      if (jsonEqual(next, current)) return { object: clone(current), gone: false };
    } else {
      next.metadata.deletionTimestamp = timestamp();
      next.metadata.deletionGracePeriodSeconds = grace;
    }
    const result = this.commit(type, namespace, entry, next);
    return { object: result, gone: !this.objects.has(key) };
  }

  /**
   * The grace period a delete gives: pods bound to a node and not yet ended get the request's gracePeriodSeconds,
   * else their terminationGracePeriodSeconds, else 30 (the kubelet stops them in that time); everything else 0.
   */
  private gracePeriod(type: ResourceType, object: KubeObject, requested: number | undefined): number {
    if (type.resource !== "pods" || !object.spec?.nodeName || isEnded(object)) return 0;
    return Math.max(0, requested ?? object.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_PERIOD_SECONDS);
  }

  /** Whether an object with this uid is stored (the garbage collector asks about owners). */
  hasUid(uid: string): boolean {
    for (const entry of this.objects.values()) if (entry.object.metadata.uid === uid) return true;
    return false;
  }

  /** The objects that name `ownerUid` in their ownerReferences (deep copies). */
  dependentsOf(ownerUid: string): Array<{ type: ResourceType; object: KubeObject }> {
    const found: Array<{ type: ResourceType; object: KubeObject }> = [];
    for (const { type, object } of this.objects.values()) {
      if ((object.metadata.ownerReferences ?? []).some((r) => r.uid === ownerUid)) found.push({ type, object: clone(object) });
    }
    return found;
  }

  /** The objects stored in `namespace`, every namespaced type (deep copies). */
  inNamespace(namespace: string): Array<{ type: ResourceType; object: KubeObject }> {
    const found: Array<{ type: ResourceType; object: KubeObject }> = [];
    for (const { type, object } of this.objects.values()) {
      if (type.namespaced && object.metadata.namespace === namespace) found.push({ type, object: clone(object) });
    }
    return found;
  }

  /**
   * A controller's write (kubelet, job controller, binder): applies `change` to the stored object without
   * admission, bumps the resourceVersion and notifies. Returns undefined when the object is gone.
   */
  mutate(type: ResourceType, namespace: string | undefined, name: string, change: (object: KubeObject) => void): KubeObject | undefined {
    const entry = this.objects.get(this.key(type, namespace, name));
    if (!entry) return undefined;
    const next = clone(entry.object);
    change(next);
    if (jsonEqual(next, entry.object)) return clone(entry.object);
    if (next.metadata.finalizers?.length === 0) delete next.metadata.finalizers;
    return this.commit(type, namespace, entry, next);
  }

  /**
   * The namespace controller's last step, once the namespace is empty: its own `kubernetes` finalizer removed from
   * spec.finalizers. With no other finalizer left (spec's or the object's metadata.finalizers) the namespace goes,
   * and anything still in it (only when called early) with it; else it stays Terminating until they are removed.
   */
  finalizeNamespace(name: string): void {
    const entry = this.objects.get(this.key(NAMESPACES, undefined, name));
    if (!entry?.object.metadata.deletionTimestamp) return;
    const finalizers: string[] = entry.object.spec?.finalizers ?? [];
    if (!finalizers.includes(NAMESPACE_CONTROLLER_FINALIZER) && !namespaceReadyToGo(entry.object)) return; // already finalized: held by others
    const next = clone(entry.object);
    next.spec = { ...(next.spec ?? {}), finalizers: finalizers.filter((f) => f !== NAMESPACE_CONTROLLER_FINALIZER) };
    this.commit(NAMESPACES, undefined, entry, next);
  }

  private removeNamespace(name: string): void {
    const entry = this.objects.get(this.key(NAMESPACES, undefined, name));
    if (!entry) return;
    for (const { type, object } of [...this.objects.values()]) {
      if (!type.namespaced || object.metadata.namespace !== name) continue;
      this.objects.delete(this.key(type, name, object.metadata.name!));
      const deleted = clone(object);
      deleted.metadata.resourceVersion = this.nextRevision();
      this.emit("DELETED", type, deleted);
    }
    this.objects.delete(this.key(NAMESPACES, undefined, name));
    const gone = clone(entry.object);
    gone.metadata.resourceVersion = this.nextRevision();
    gone.spec = { ...(gone.spec ?? {}), finalizers: [] };
    this.emit("DELETED", NAMESPACES, gone);
  }

  /**
   * Insert or replace an object as the cluster administrator would (no resourceVersion check).
   * For sandbox setup: kube-system/aws-auth, node roles, pre-existing tenant objects.
   */
  seed(body: KubeObject): KubeObject {
    const type = findResourceTypeByKind(body.apiVersion, body.kind);
    if (!type || type.virtual) throw badRequest(`cannot seed ${body.apiVersion} ${body.kind}: unknown to the emulator`);
    const namespace = type.namespaced ? (body.metadata?.namespace ?? "default") : undefined;
    const existing = this.get(type, namespace, body.metadata?.name ?? "");
    if (!existing) return this.create(type, body, namespace);
    const { resourceVersion: _ignored, ...metadata } = body.metadata;
    const replaced = this.update(type, { ...body, metadata }, { namespace });
    return type.status && body.status
      ? this.update(type, { ...replaced, status: body.status }, { namespace, subresource: "status" })
      : replaced;
  }

  // ---- internals ----

  private key(type: ResourceType, namespace: string | undefined, name: string): string {
    return `${type.group}/${type.resource}/${type.namespaced ? (namespace ?? "") : ""}/${name}`;
  }

  private nextRevision(): string {
    this.revision += 1;
    return String(this.revision);
  }

  private emit(type: WatchEventType, resourceType: ResourceType, object: KubeObject): void {
    const event: StoreEvent = { type, resourceType, object: clone(object), resourceVersion: Number(object.metadata.resourceVersion) };
    this.history.push(event);
    if (this.history.length > HISTORY_LIMIT) this.history.shift();
    for (const listener of [...this.listeners]) listener(event);
  }

  private prepareNew(type: ResourceType, body: KubeObject, namespace: string | undefined): KubeObject {
    if (!body || typeof body !== "object" || Array.isArray(body)) throw badRequest("the body of the request must be a JSON object");
    const obj = clone(body);
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(type)) {
      throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${apiVersionOf(type)})`);
    }
    if (obj.kind !== undefined && obj.kind !== type.kind) {
      throw badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${type.kind})`);
    }
    obj.apiVersion = apiVersionOf(type);
    obj.kind = type.kind;
    obj.metadata = { ...(obj.metadata ?? {}) };
    dropEmptyMaps(obj.metadata);
    if (type.namespaced) {
      const ns = namespace ?? obj.metadata.namespace ?? "default";
      if (obj.metadata.namespace && obj.metadata.namespace !== ns) {
        throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
      }
      obj.metadata.namespace = ns;
    } else {
      delete obj.metadata.namespace;
    }
    if (obj.metadata.resourceVersion) throw internalError("resourceVersion should not be set on objects to be created");
    if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`;
    for (const field of [
      "uid",
      "creationTimestamp",
      "deletionTimestamp",
      "deletionGracePeriodSeconds",
      "generation",
      "selfLink",
      "managedFields",
    ]) {
      delete obj.metadata[field];
    }
    const uid = randomUUID();
    if (obj.metadata.name) applyCreateDefaults(type, obj, uid);
    validateCreate(type, obj);
    obj.metadata.uid = uid;
    obj.metadata.creationTimestamp = timestamp();
    if (type.generation) obj.metadata.generation = 1;
    return obj;
  }

  private requireWritableNamespace(type: ResourceType, namespace: string, name: string): void {
    const ns = this.objects.get(this.key(NAMESPACES, undefined, namespace))?.object;
    if (!ns) throw notFound(NAMESPACES, namespace);
    if (ns.metadata.deletionTimestamp) {
      throw forbidden(
        { username: "", verb: "create", type, name },
        `unable to create new content in namespace ${namespace} because it is being terminated`,
        [{ reason: "NamespaceTerminating", message: `namespace ${namespace} is being terminated`, field: "metadata.namespace" }],
      );
    }
  }

  /**
   * Admission for every pod, the API's and the Job controller's alike: ServiceAccount, LimitRanger (defaults),
   * Pod Security, ResourceQuota (every container states what a quota names).
   */
  private admitPod(pod: KubeObject): void {
    const namespace = pod.metadata.namespace!;
    this.requireServiceAccount(pod);
    applyLimitRangeDefaults(pod, this.list(LIMIT_RANGES, { namespace }));
    const refusal =
      podSecurityRefusal(this.objects.get(this.key(NAMESPACES, undefined, namespace))?.object.metadata.labels, pod) ??
      quotaRefusal(pod, this.list(RESOURCE_QUOTAS, { namespace }));
    if (refusal) throw refusal;
  }

  /** The ServiceAccount admission plugin: a pod's service account must exist. */
  private requireServiceAccount(pod: KubeObject): void {
    const namespace = pod.metadata.namespace!;
    const sa = pod.spec?.serviceAccountName ?? "default";
    if (this.objects.has(this.key(SERVICE_ACCOUNTS, namespace, sa))) return;
    throw forbidden(
      { username: "", verb: "create", type: PODS, name: pod.metadata.name },
      `error looking up service account ${namespace}/${sa}: serviceaccount "${sa}" not found`,
    );
  }
}

/**
 * Empty label and annotation maps are not kept: the real API server stores and serialises them with
 * `omitempty`, so `annotations: {}` written by a client reads back as no annotations at all.
 */
function dropEmptyMaps(metadata: KubeObject["metadata"]): void {
  for (const field of ["labels", "annotations"] as const) {
    const value = metadata[field];
    if (value && typeof value === "object" && Object.keys(value).length === 0) delete metadata[field];
  }
}

/** A pod that has ended (Succeeded or Failed): nothing left for the kubelet to stop. */
function isEnded(object: KubeObject): boolean {
  return object.status?.phase === "Succeeded" || object.status?.phase === "Failed";
}

/** The finalizer the namespace controller puts in a namespace's spec.finalizers and removes once it is empty. */
const NAMESPACE_CONTROLLER_FINALIZER = "kubernetes";

/** A Terminating namespace nothing holds any more: no spec.finalizers (the controllers') and no metadata.finalizers. */
function namespaceReadyToGo(namespace: KubeObject): boolean {
  return (
    namespace.metadata.deletionTimestamp !== undefined && !namespace.spec?.finalizers?.length && !namespace.metadata.finalizers?.length
  );
}

/** Being deleted, no finalizer left and no grace period running: the registry removes it (namespaces: namespaceReadyToGo). */
function readyToGo(type: ResourceType, object: KubeObject): boolean {
  return (
    type.resource !== "namespaces" &&
    object.metadata.deletionTimestamp !== undefined &&
    !object.metadata.finalizers?.length &&
    (object.metadata.deletionGracePeriodSeconds ?? 0) === 0
  );
}

function byNamespaceAndName(a: KubeObject, b: KubeObject): number {
  return (
    (a.metadata.namespace ?? "").localeCompare(b.metadata.namespace ?? "") || (a.metadata.name ?? "").localeCompare(b.metadata.name ?? "")
  );
}

function preconditionFailed(type: ResourceType, name: string, why: string): KubeStatusError {
  return conflict(type, name, `Precondition failed: ${why}`);
}
