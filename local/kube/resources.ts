/**
 * The resource types the emulated API server knows, and the discovery documents built from them
 * (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`), shaped as a real server's so that
 * client-node's KubernetesObjectApi (which looks kinds up in the APIResourceList) and kubectl
 * (legacy discovery; it falls back from aggregated discovery when the answer is plain JSON) both work.
 */

export interface ResourceType {
  /** "" for the core group */
  group: string;
  version: string;
  /** plural, as in URLs and RBAC rules */
  resource: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  verbs: string[];
  /** has a `/status` subresource: writes to the main resource keep the stored status, and vice versa */
  status?: boolean;
  /** other subresources served (discovery lists them as `<resource>/<sub>`) */
  subresources?: string[];
  /** the server sets and bumps metadata.generation on spec changes */
  generation?: boolean;
  /** create-only virtual resources (reviews): never stored */
  virtual?: boolean;
}

const CRUD = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const CREATE_ONLY = ["create"];

export const RESOURCE_TYPES: ResourceType[] = [
  {
    group: "",
    version: "v1",
    resource: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    shortNames: ["ns"],
    verbs: CRUD.filter((v) => v !== "deletecollection"),
    status: true,
    subresources: ["finalize"],
  },
  {
    group: "",
    version: "v1",
    resource: "serviceaccounts",
    singular: "serviceaccount",
    kind: "ServiceAccount",
    namespaced: true,
    shortNames: ["sa"],
    verbs: CRUD,
  },
  {
    group: "",
    version: "v1",
    resource: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    namespaced: true,
    shortNames: ["cm"],
    verbs: CRUD,
  },
  { group: "", version: "v1", resource: "secrets", singular: "secret", kind: "Secret", namespaced: true, verbs: CRUD },
  {
    group: "",
    version: "v1",
    resource: "persistentvolumeclaims",
    singular: "persistentvolumeclaim",
    kind: "PersistentVolumeClaim",
    namespaced: true,
    shortNames: ["pvc"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "",
    version: "v1",
    resource: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    shortNames: ["po"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
    subresources: ["log", "exec"],
  },
  { group: "", version: "v1", resource: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"], verbs: CRUD },
  {
    group: "batch",
    version: "v1",
    resource: "jobs",
    singular: "job",
    kind: "Job",
    namespaced: true,
    categories: ["all"],
    verbs: CRUD,
    status: true,
    generation: true,
  },
  { group: "rbac.authorization.k8s.io", version: "v1", resource: "roles", singular: "role", kind: "Role", namespaced: true, verbs: CRUD },
  {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "rolebindings",
    singular: "rolebinding",
    kind: "RoleBinding",
    namespaced: true,
    verbs: CRUD,
  },
  {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "clusterroles",
    singular: "clusterrole",
    kind: "ClusterRole",
    namespaced: false,
    verbs: CRUD,
  },
  {
    group: "storage.k8s.io",
    version: "v1",
    resource: "storageclasses",
    singular: "storageclass",
    kind: "StorageClass",
    namespaced: false,
    shortNames: ["sc"],
    verbs: CRUD,
  },
  {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "clusterrolebindings",
    singular: "clusterrolebinding",
    kind: "ClusterRoleBinding",
    namespaced: false,
    verbs: CRUD,
  },
  {
    group: "events.k8s.io",
    version: "v1",
    resource: "events",
    singular: "event",
    kind: "Event",
    namespaced: true,
    shortNames: ["ev"],
    verbs: CRUD,
  },
  // The rest of a 1.31 cluster's built-in namespaced kinds: stored and served like any other, so that discovery
  // lists what a real cluster lists (the provisioner looks through all of them before deleting a namespace).
  {
    group: "",
    version: "v1",
    resource: "limitranges",
    singular: "limitrange",
    kind: "LimitRange",
    namespaced: true,
    shortNames: ["limits"],
    verbs: CRUD,
  },
  {
    group: "",
    version: "v1",
    resource: "resourcequotas",
    singular: "resourcequota",
    kind: "ResourceQuota",
    namespaced: true,
    shortNames: ["quota"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "",
    version: "v1",
    resource: "services",
    singular: "service",
    kind: "Service",
    namespaced: true,
    shortNames: ["svc"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "",
    version: "v1",
    resource: "endpoints",
    singular: "endpoints",
    kind: "Endpoints",
    namespaced: true,
    shortNames: ["ep"],
    verbs: CRUD,
  },
  { group: "", version: "v1", resource: "podtemplates", singular: "podtemplate", kind: "PodTemplate", namespaced: true, verbs: CRUD },
  {
    group: "",
    version: "v1",
    resource: "replicationcontrollers",
    singular: "replicationcontroller",
    kind: "ReplicationController",
    namespaced: true,
    shortNames: ["rc"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "apps",
    version: "v1",
    resource: "deployments",
    singular: "deployment",
    kind: "Deployment",
    namespaced: true,
    shortNames: ["deploy"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
    generation: true,
  },
  {
    group: "apps",
    version: "v1",
    resource: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    namespaced: true,
    shortNames: ["rs"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
    generation: true,
  },
  {
    group: "apps",
    version: "v1",
    resource: "statefulsets",
    singular: "statefulset",
    kind: "StatefulSet",
    namespaced: true,
    shortNames: ["sts"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
    generation: true,
  },
  {
    group: "apps",
    version: "v1",
    resource: "daemonsets",
    singular: "daemonset",
    kind: "DaemonSet",
    namespaced: true,
    shortNames: ["ds"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
    generation: true,
  },
  {
    group: "apps",
    version: "v1",
    resource: "controllerrevisions",
    singular: "controllerrevision",
    kind: "ControllerRevision",
    namespaced: true,
    verbs: CRUD,
  },
  {
    group: "batch",
    version: "v1",
    resource: "cronjobs",
    singular: "cronjob",
    kind: "CronJob",
    namespaced: true,
    shortNames: ["cj"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "autoscaling",
    version: "v2",
    resource: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    kind: "HorizontalPodAutoscaler",
    namespaced: true,
    shortNames: ["hpa"],
    categories: ["all"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "policy",
    version: "v1",
    resource: "poddisruptionbudgets",
    singular: "poddisruptionbudget",
    kind: "PodDisruptionBudget",
    namespaced: true,
    shortNames: ["pdb"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "networking.k8s.io",
    version: "v1",
    resource: "networkpolicies",
    singular: "networkpolicy",
    kind: "NetworkPolicy",
    namespaced: true,
    shortNames: ["netpol"],
    verbs: CRUD,
  },
  {
    group: "networking.k8s.io",
    version: "v1",
    resource: "ingresses",
    singular: "ingress",
    kind: "Ingress",
    namespaced: true,
    shortNames: ["ing"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "discovery.k8s.io",
    version: "v1",
    resource: "endpointslices",
    singular: "endpointslice",
    kind: "EndpointSlice",
    namespaced: true,
    verbs: CRUD,
  },
  { group: "coordination.k8s.io", version: "v1", resource: "leases", singular: "lease", kind: "Lease", namespaced: true, verbs: CRUD },
  {
    group: "storage.k8s.io",
    version: "v1",
    resource: "csistoragecapacities",
    singular: "csistoragecapacity",
    kind: "CSIStorageCapacity",
    namespaced: true,
    verbs: CRUD,
  },
  // The namespaced custom resources EKS installs on every cluster (VPC CNI's network policy agent, the VPC resource
  // controller's security groups for pods): a real cluster's discovery lists them too.
  {
    group: "networking.k8s.aws",
    version: "v1alpha1",
    resource: "policyendpoints",
    singular: "policyendpoint",
    kind: "PolicyEndpoint",
    namespaced: true,
    verbs: CRUD,
    status: true,
  },
  {
    group: "vpcresources.k8s.aws",
    version: "v1beta1",
    resource: "securitygrouppolicies",
    singular: "securitygrouppolicy",
    kind: "SecurityGroupPolicy",
    namespaced: true,
    shortNames: ["sgp"],
    verbs: CRUD,
  },
  // Cluster-scoped kinds the kubelet's decisions depend on: the node(s) pods are scheduled on, and the StorageClasses
  // claims are provisioned from (EKS with the EBS, EFS and FSx CSI drivers).
  {
    group: "",
    version: "v1",
    resource: "nodes",
    singular: "node",
    kind: "Node",
    namespaced: false,
    shortNames: ["no"],
    verbs: CRUD,
    status: true,
  },
  {
    group: "authorization.k8s.io",
    version: "v1",
    resource: "selfsubjectaccessreviews",
    singular: "selfsubjectaccessreview",
    kind: "SelfSubjectAccessReview",
    namespaced: false,
    verbs: CREATE_ONLY,
    virtual: true,
  },
  {
    group: "authentication.k8s.io",
    version: "v1",
    resource: "selfsubjectreviews",
    singular: "selfsubjectreview",
    kind: "SelfSubjectReview",
    namespaced: false,
    verbs: CREATE_ONLY,
    virtual: true,
  },
];

/** A custom resource kind, as a CustomResourceDefinition names it (tests register one on a server: `registerCustomResource`). */
export interface CustomResourceKind {
  group: string;
  version: string;
  kind: string;
  /** the plural, as in URLs and RBAC rules */
  plural: string;
  singular?: string;
  /** default true (scope: Namespaced) */
  namespaced?: boolean;
  shortNames?: string[];
}

/** The ResourceType a server serves for a custom resource kind: every verb, no subresources. */
export function customResourceType(custom: CustomResourceKind): ResourceType {
  if (!custom.group.includes("."))
    throw new Error(`a custom resource's group has a dot (${custom.group}): it must not shadow a built-in group`);
  const apiVersion = `${custom.group}/${custom.version}`;
  const clash = RESOURCE_TYPES.find(
    (t) => (t.group === custom.group && t.resource === custom.plural) || (apiVersionOf(t) === apiVersion && t.kind === custom.kind),
  );
  if (clash) throw new Error(`${custom.plural}.${custom.group} is already served`);
  return {
    group: custom.group,
    version: custom.version,
    resource: custom.plural,
    singular: custom.singular ?? custom.kind.toLowerCase(),
    kind: custom.kind,
    namespaced: custom.namespaced ?? true,
    ...(custom.shortNames ? { shortNames: custom.shortNames } : {}),
    verbs: CRUD,
  };
}

function typeOf(resource: string, group = ""): ResourceType {
  const found = RESOURCE_TYPES.find((t) => t.resource === resource && t.group === group);
  if (!found) throw new Error(`no resource type ${resource} in group "${group}"`);
  return found;
}

/** The types the emulator's own code handles by name. */
export const NAMESPACES = typeOf("namespaces");
export const SERVICE_ACCOUNTS = typeOf("serviceaccounts");
export const CONFIG_MAPS = typeOf("configmaps");
export const PODS = typeOf("pods");
export const PERSISTENT_VOLUME_CLAIMS = typeOf("persistentvolumeclaims");
export const JOBS = typeOf("jobs", "batch");
export const EVENTS = typeOf("events");
export const NODES = typeOf("nodes");
export const STORAGE_CLASSES = typeOf("storageclasses", "storage.k8s.io");
export const ROLES = typeOf("roles", "rbac.authorization.k8s.io");
export const ROLE_BINDINGS = typeOf("rolebindings", "rbac.authorization.k8s.io");
export const CLUSTER_ROLES = typeOf("clusterroles", "rbac.authorization.k8s.io");
export const CLUSTER_ROLE_BINDINGS = typeOf("clusterrolebindings", "rbac.authorization.k8s.io");
export const LIMIT_RANGES = typeOf("limitranges");
export const RESOURCE_QUOTAS = typeOf("resourcequotas");
export const DEPLOYMENTS = typeOf("deployments", "apps");

export function apiVersionOf(type: Pick<ResourceType, "group" | "version">): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

/** `configmaps`, `jobs.batch`: how the real server names a resource in Status messages. */
export function qualifiedResource(type: Pick<ResourceType, "group" | "resource">): string {
  return type.group ? `${type.resource}.${type.group}` : type.resource;
}

/** An index of RESOURCE_TYPES (the first type wins a key, as a search in order would). */
function indexBy(key: (t: ResourceType) => string): Map<string, ResourceType> {
  const index = new Map<string, ResourceType>();
  for (const t of RESOURCE_TYPES) if (!index.has(key(t))) index.set(key(t), t);
  return index;
}

const BY_RESOURCE = indexBy((t) => `${t.group}/${t.version}/${t.resource}`);
const BY_KIND = indexBy((t) => `${apiVersionOf(t)}/${t.kind}`);

export function findResourceType(group: string, version: string, resource: string): ResourceType | undefined {
  return BY_RESOURCE.get(`${group}/${version}/${resource}`);
}

export function findResourceTypeByKind(apiVersion: string, kind: string): ResourceType | undefined {
  return BY_KIND.get(`${apiVersion}/${kind}`);
}

/** Each named group's versions, in the order the types list them. */
function groupVersionsOf(types: readonly ResourceType[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const t of types) {
    if (!t.group) continue;
    const versions = groups.get(t.group) ?? [];
    if (!versions.includes(t.version)) versions.push(t.version);
    groups.set(t.group, versions);
  }
  return groups;
}

const GROUP_VERSIONS: ReadonlyMap<string, string[]> = groupVersionsOf(RESOURCE_TYPES);

/** GET /api */
export function coreApiVersions(serverAddress: string): unknown {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

/**
 * Discovery documents by path, built on first request (RESOURCE_TYPES never change); a 404 is not kept. A server with
 * custom resource kinds (`custom`) builds its documents each time: they are its own.
 */
const DISCOVERY = new Map<string, unknown>();

function discovered(path: string, custom: readonly ResourceType[], build: () => unknown): unknown {
  if (custom.length > 0) return build();
  if (DISCOVERY.has(path)) return DISCOVERY.get(path);
  const document = build();
  if (document !== undefined) DISCOVERY.set(path, document);
  return document;
}

function groupVersionsWith(custom: readonly ResourceType[]): ReadonlyMap<string, string[]> {
  return custom.length > 0 ? groupVersionsOf([...RESOURCE_TYPES, ...custom]) : GROUP_VERSIONS;
}

function apiGroup(name: string, versions: string[]): Record<string, unknown> {
  const list = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: list, preferredVersion: list[0] };
}

/** GET /apis */
export function apiGroupList(custom: readonly ResourceType[] = []): unknown {
  return discovered("/apis", custom, () => ({
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: [...groupVersionsWith(custom)].map(([name, versions]) => apiGroup(name, versions)),
  }));
}

/** GET /apis/<group> (undefined: 404) */
export function apiGroupDocument(group: string, custom: readonly ResourceType[] = []): unknown {
  return discovered(`/apis/${group}`, custom, () => {
    const versions = groupVersionsWith(custom).get(group);
    return versions ? { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group, versions) } : undefined;
  });
}

/** GET /api/v1 or /apis/<group>/<version> (undefined: 404) */
export function apiResourceList(group: string, version: string, custom: readonly ResourceType[] = []): unknown {
  return discovered(group ? `/apis/${group}/${version}` : `/api/${version}`, custom, () =>
    buildResourceList([...RESOURCE_TYPES, ...custom], group, version),
  );
}

function buildResourceList(served: readonly ResourceType[], group: string, version: string): unknown {
  const types = served.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const resources: Array<Record<string, unknown>> = [];
  for (const t of types) {
    resources.push({
      name: t.resource,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: t.verbs,
      ...(t.shortNames ? { shortNames: t.shortNames } : {}),
      ...(t.categories ? { categories: t.categories } : {}),
    });
    const subresources = [...(t.status ? ["status"] : []), ...(t.subresources ?? [])];
    for (const sub of subresources) {
      resources.push({
        name: `${t.resource}/${sub}`,
        singularName: "",
        namespaced: t.namespaced,
        kind: sub === "status" || sub === "finalize" ? t.kind : subresourceKind(sub),
        verbs: subresourceVerbs(sub),
      });
    }
  }
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: apiVersionOf({ group, version }), resources };
}

function subresourceKind(sub: string): string {
  if (sub === "exec") return "PodExecOptions";
  return "Pod";
}

function subresourceVerbs(sub: string): string[] {
  if (sub === "status") return ["get", "patch", "update"];
  if (sub === "finalize") return ["update"];
  if (sub === "log") return ["get"];
  return ["create", "get"];
}

/** GET /version: an EKS-looking 1.31 server (kubectl's version dispatcher picks its client from this). */
export function versionInfo(): unknown {
  return {
    major: "1",
    minor: "31",
    gitVersion: "v1.31.4-eks-2d5f260",
    gitCommit: "0000000000000000000000000000000000000000",
    gitTreeState: "clean",
    buildDate: "2025-01-01T00:00:00Z",
    goVersion: "go1.22.9",
    compiler: "gc",
    platform: "linux/amd64",
  };
}
