/**
 * "Is anything in this namespace not ours?", asked before a compensator deletes a namespace its run created (a
 * namespace delete takes its whole content with it). The kinds come from the cluster's discovery, every namespaced
 * kind it serves (custom resources too), not a fixed list. A kind this identity may not list is a kind it cannot
 * look into: it counts as possibly foreign, so the namespace is kept and the report names the kind.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { type Claim, wasCreatedBy } from "../domain/naming.js";
import type { KubeApi, NamespacedResourceType } from "./kube-client.js";

export interface NamespaceContent {
  /** `<Kind> <name>` of each object this run did not create */
  foreign: string[];
  /** `<resource>.<group>` (or `<resource>` for the core group) of each kind this identity may not list here */
  unlisted: string[];
}

/**
 * Events are the cluster's record of what happened (the kubelet's, the controllers'), not content anyone put in the
 * namespace: they go with it. A kind without `list` (a review, a binding) holds no objects.
 */
function holdsContent(type: NamespacedResourceType): boolean {
  return type.verbs.includes("list") && type.kind !== "Event";
}

/** What the cluster puts in every namespace itself: the `default` ServiceAccount, its CA bundle, legacy SA tokens. */
function isClusterDefault(kind: string, object: KubernetesObject): boolean {
  const name = object.metadata?.name;
  if (kind === "ServiceAccount") return name === "default";
  if (kind === "ConfigMap") return name === "kube-root-ca.crt";
  if (kind === "Secret") return (object as { type?: string }).type === "kubernetes.io/service-account-token";
  return false;
}

/** `deployments.apps`, `pods`: how RBAC and kubectl name a kind's resource. */
export function qualifiedResourceName(type: Pick<NamespacedResourceType, "group" | "resource">): string {
  return type.group ? `${type.resource}.${type.group}` : type.resource;
}

/** One kind's part of the answer: its objects this run did not create, or that it may not be listed here. */
async function lookAt(api: KubeApi, type: NamespacedResourceType, namespace: string, claim: Claim): Promise<NamespaceContent> {
  // Asked first (a SelfSubjectAccessReview, which anyone may make), so a kind outside the ClusterRole is never a refused call.
  if (!(await api.mayI({ verb: "list", group: type.group, resource: type.resource, namespace }))) {
    return { foreign: [], unlisted: [qualifiedResourceName(type)] };
  }
  const { items } = await api.list<KubernetesObject>(type.apiVersion, type.kind, namespace);
  const foreign = items.filter((item) => !isClusterDefault(type.kind, item) && !wasCreatedBy(item.metadata?.labels, claim));
  return { foreign: foreign.map((item) => `${type.kind} ${item.metadata?.name}`), unlisted: [] };
}

/** Every object in the namespace this run did not create (the cluster's own aside), and the kinds it could not look at. */
export async function contentNotCreatedBy(api: KubeApi, namespace: string, claim: Claim): Promise<NamespaceContent> {
  // Every kind at once (a few dozen small requests); the answer keeps discovery's order.
  const parts = await Promise.all(
    (await api.namespacedResourceTypes()).filter(holdsContent).map((type) => lookAt(api, type, namespace, claim)),
  );
  return { foreign: parts.flatMap((p) => p.foreign), unlisted: parts.flatMap((p) => p.unlisted) };
}
