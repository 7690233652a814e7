/**
 * The Kubernetes side: one KubernetesObjectApi per cluster, built in code from DescribeCluster's endpoint
 * and CA (TLS is always verified against that CA) with an EKS bearer token, and the few operations the
 * steps share: read (404 → undefined), ensure (create, or adopt only what carries our marks), replace
 * (optimistic concurrency through metadata.resourceVersion) and delete-only-what-this-run-created.
 *
 * Errors from the API server are left as client-node `ApiException`s ({code, body}); the step middleware
 * names them (409 → KubeConflict, 429 → Throttled, 5xx → ClusterUnreachable, ...).
 */
import { KubeConfig, KubernetesObjectApi, type KubernetesObject, type V1APIGroupList } from "@kubernetes/client-node";
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { eksBearerToken } from "../aws/eks-token.js";
import { assertInvocationLive, invocationSignal } from "../aws/invocation.js";
import { KubeConflict, NamespaceTerminating, OwnershipConflict } from "../domain/errors.js";
import { type Claim, isOwnedBy, LABEL_CREATED_BY, wasCreatedBy } from "../domain/naming.js";
import { isKubeApiException } from "./kube-errors.js";
import type { ResolvedCluster } from "../domain/cluster.js";

/** A namespaced resource type the cluster serves, from discovery (its preferred version only). */
export interface NamespacedResourceType {
  apiVersion: string;
  /** "" for the core group */
  group: string;
  kind: string;
  /** the plural, as RBAC names it */
  resource: string;
  verbs: string[];
}

/**
 * The Kubernetes client the steps share: client-node's KubernetesObjectApi (create, read, list, replace, patch,
 * delete of any kind) and the two questions it cannot ask: which namespaced kinds the cluster serves (discovery)
 * and whether this identity may do something (a SelfSubjectAccessReview, which every authenticated user may make).
 */
export class KubeApi extends KubernetesObjectApi {
  static override makeApiClient(kc: KubeConfig): KubeApi {
    const client = kc.makeApiClient(KubeApi);
    client.setDefaultNamespace(kc);
    return client;
  }

  /** Every namespaced resource type in discovery (core v1 and each group's preferred version), subresources aside. */
  async namespacedResourceTypes(): Promise<NamespacedResourceType[]> {
    const groups = await this.getJson<V1APIGroupList>("/apis", "V1APIGroupList");
    const apiVersions = ["v1", ...groups.groups.flatMap((g) => g.preferredVersion ?? g.versions[0] ?? []).map((v) => v.groupVersion)];
    const found: NamespacedResourceType[] = [];
    for (const apiVersion of apiVersions) {
      await this.resource(apiVersion, "");
      const group = apiVersion.includes("/") ? apiVersion.split("/")[0]! : "";
      for (const r of this.apiVersionResourceCache[apiVersion]?.resources ?? []) {
        if (r.namespaced && !r.name.includes("/")) found.push({ apiVersion, group, kind: r.kind, resource: r.name, verbs: r.verbs });
      }
    }
    return found;
  }

  /** Whether this identity may `verb` the resource in the namespace, as the API server would decide it now. */
  async mayI(attributes: { verb: string; group: string; resource: string; namespace: string }): Promise<boolean> {
    const review = await this.create({
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      metadata: {},
      spec: { resourceAttributes: attributes },
    } as KubernetesObject);
    return (review as { status?: { allowed?: boolean } }).status?.allowed === true;
  }

  private async getJson<T>(path: string, type: string): Promise<T> {
    const context = this.configuration.baseServer.makeRequestContext(path, "GET" as never);
    context.setHeaderParam("Accept", "application/json");
    return (await this.requestPromise(context as never, type)) as unknown as T;
  }
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** A cached client is replaced this long before its token's (14-minute) expiry. */
export const TOKEN_REFRESH_MARGIN_MS = 60_000;

// ---------------------------------------------------------------- clients

/** One Kubernetes API call may take this long; an unreachable endpoint fails fast as ClusterUnreachable. */
export const KUBE_REQUEST_TIMEOUT_MS = 15_000;

/** A KubeConfig whose every request carries an abort signal: client-node sets no timeout of its own. */
class KubeConfigWithTimeout extends KubeConfig {
  constructor(private readonly timeoutMs: number) {
    super();
  }

  override async applySecurityAuthentication(context: Parameters<KubeConfig["applySecurityAuthentication"]>[0]): Promise<void> {
    // A handler its runner has stopped (past its timeout) makes no further request, and its requests in flight end.
    assertInvocationLive();
    await super.applySecurityAuthentication(context);
    const invocation = invocationSignal();
    const timeout = AbortSignal.timeout(this.timeoutMs);
    context.setSignal(invocation ? AbortSignal.any([timeout, invocation]) : timeout);
  }
}

/** The kubeconfig for one cluster, in code: no file, no exec plugin, TLS verified against the cluster CA. */
export function kubeConfigFor(cluster: ResolvedCluster, token: string, timeoutMs = KUBE_REQUEST_TIMEOUT_MS): KubeConfig {
  const kc = new KubeConfigWithTimeout(timeoutMs);
  const name = `${cluster.name}.${cluster.region}`;
  kc.loadFromOptions({
    clusters: [{ name, server: cluster.endpoint, caData: cluster.certificateAuthority, skipTLSVerify: false }],
    users: [{ name: `${name}-provisioner`, token }],
    contexts: [{ name, cluster: name, user: `${name}-provisioner` }],
    currentContext: name,
  });
  return kc;
}

type KubeClientFactory = (cluster: ResolvedCluster) => Promise<KubeApi>;

let clientFactory: KubeClientFactory | undefined;
const clients = new Map<string, { api: KubeApi; expiresAt: Date }>();
/** Who signs the EKS token: the Lambda's own role (undefined: the SDK's default chain), or the identity the sandbox gives. */
let tokenCredentials: AwsCredentialIdentityProvider | undefined;

function clusterKey(cluster: ResolvedCluster): string {
  return `${cluster.region}/${cluster.name}/${cluster.endpoint}/${cluster.certificateAuthority}`;
}

/**
 * A client for the cluster, reused across invocations of a warm Lambda while its token is fresh
 * (tokens live 14 minutes here; the client is rebuilt in the last minute).
 */
export async function kubeClientFor(cluster: ResolvedCluster): Promise<KubeApi> {
  if (clientFactory) return clientFactory(cluster);
  const key = clusterKey(cluster);
  const cached = clients.get(key);
  if (cached && cached.expiresAt.getTime() - TOKEN_REFRESH_MARGIN_MS > Date.now()) return cached.api;
  const built = await newKubeClient(cluster);
  clients.set(key, built);
  return built.api;
}

/** A new client for the cluster with a fresh EKS token (no cache): what kubeClientFor caches. */
export async function newKubeClient(cluster: ResolvedCluster): Promise<{ api: KubeApi; expiresAt: Date }> {
  const signedBy = tokenCredentials ? { credentials: tokenCredentials } : {};
  const { token, expiresAt } = await eksBearerToken(cluster.name, cluster.region, signedBy);
  return { api: kubeApiFrom(kubeConfigFor(cluster, token)), expiresAt };
}

/** A KubeApi for a kubeconfig (KubernetesObjectApi.makeApiClient, for the subclass). */
export function kubeApiFrom(kc: KubeConfig): KubeApi {
  return KubeApi.makeApiClient(kc);
}

/**
 * The sandbox: sign EKS tokens as the identity the operator maps in the cluster (the deployed KubeStepsRole's stand-in)
 * while the rest of the process keeps its own credentials. No argument: the SDK's default chain again.
 */
export function setKubeTokenCredentials(credentials?: AwsCredentialIdentityProvider): void {
  tokenCredentials = credentials;
  clients.clear();
}

/** Tests: hand every step a fake (or a client for a local server); no argument restores the real one. */
export function setKubeClientFactory(factory?: KubeClientFactory): void {
  clientFactory = factory;
  clients.clear();
}

/** Forget cached clients (tests that move the clock or the environment). */
export function resetKubeClients(): void {
  clients.clear();
}

// ---------------------------------------------------------------- errors

/** True when `error` is a Kubernetes API answer with this HTTP status (client-node ApiException). */
export function isKubeError(error: unknown, status: number): boolean {
  return isKubeApiException(error) && error.code === status;
}

// ---------------------------------------------------------------- operations

export function refOf(object: KubernetesObject): ObjectRef {
  return {
    apiVersion: object.apiVersion ?? "v1",
    kind: object.kind ?? "",
    ...(object.metadata?.namespace ? { namespace: object.metadata.namespace } : {}),
    name: object.metadata?.name ?? "",
  };
}

export function describeRef(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`;
}

function header(ref: ObjectRef) {
  return {
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) },
  };
}

export async function readObject<T extends KubernetesObject>(api: KubernetesObjectApi, ref: ObjectRef): Promise<T | undefined> {
  try {
    return (await api.read<T>(header(ref) as Parameters<KubernetesObjectApi["read"]>[0])) as T;
  } catch (error) {
    if (isKubeError(error, 404)) return undefined;
    throw error;
  }
}

/**
 * Create `desired`, or adopt the existing object when it carries our marks for this tenant.
 * `created` is true when this execution made it (now, or in an earlier attempt of the same run: the
 * object carries the same created-by mark as `desired`). An object without our marks is never touched.
 * An object being deleted is never adopted: it will be gone soon, so a transient error lets the state machine try
 * again once it is (NamespaceTerminating for a namespace still Terminating after a compensation, else KubeConflict).
 */
export async function ensureObject<T extends KubernetesObject>(
  api: KubernetesObjectApi,
  desired: T,
  tenant: string,
): Promise<{ object: T; created: boolean }> {
  const ref = refOf(desired);
  try {
    // client-node fills in defaults on the spec it is given: hand it a copy.
    return { object: (await api.create<T>(structuredClone(desired))) as T, created: true };
  } catch (error) {
    if (!isKubeError(error, 409)) throw error;
  }
  const existing = await readObject<T>(api, ref);
  if (!existing) {
    // Deleted between our create and our read: one more try decides.
    return { object: (await api.create<T>(structuredClone(desired))) as T, created: true };
  }
  const labels = existing.metadata?.labels;
  const deleting: unknown = existing.metadata?.deletionTimestamp;
  if (deleting) {
    const since = deleting instanceof Date ? deleting.toISOString() : String(deleting);
    const message = `${describeRef(ref)} already exists but is being deleted (since ${since}); it is not adopted. Retrying once it is gone.`;
    // A Terminating namespace takes its pods' grace periods and its finalizers to go: the longer retry schedule.
    throw ref.kind === "Namespace" && ref.apiVersion === "v1" ? new NamespaceTerminating(message) : new KubeConflict(message);
  }
  if (!isOwnedBy(labels, tenant)) {
    throw new OwnershipConflict(
      `${describeRef(ref)} already exists without the ownership labels for tenant ${tenant}; it is left untouched. Delete or rename it, or choose another name.`,
    );
  }
  const mark = desired.metadata?.labels?.[LABEL_CREATED_BY];
  return { object: existing, created: mark !== undefined && labels?.[LABEL_CREATED_BY] === mark };
}

/** Replace the whole object; its metadata.resourceVersion makes a concurrent change answer 409. */
export async function replaceObject<T extends KubernetesObject>(api: KubernetesObjectApi, object: T): Promise<T> {
  return (await api.replace<T>(structuredClone(object))) as T;
}

/**
 * Delete the object only when this run created it (its created-by label), or for a teardown when it is the
 * tenant's (its ownership labels). Children (a Job's pods)
 * go with it in the background. The uid precondition makes sure we delete the object we inspected:
 * `read` (the object the caller already read at `ref`), else the object read here.
 */
export async function deleteIfCreatedBy(
  api: KubernetesObjectApi,
  ref: ObjectRef,
  claim: Claim,
  read?: KubernetesObject,
): Promise<"deleted" | "absent" | "kept"> {
  const existing = read ?? (await readObject(api, ref));
  if (!existing) return "absent";
  if (!wasCreatedBy(existing.metadata?.labels, claim)) return "kept";
  const uid = existing.metadata?.uid;
  try {
    await api.delete(header(ref), undefined, undefined, undefined, undefined, "Background", {
      propagationPolicy: "Background",
      ...(uid ? { preconditions: { uid } } : {}),
    });
  } catch (error) {
    if (isKubeError(error, 404)) return "absent";
    throw error;
  }
  return "deleted";
}
