/**
 * Server-side printing: kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
 * columns the server chose. These are the columns the real server prints for each kind (the wide-only
 * ones have priority 1), so `kubectl get` in the sandbox reads like it does against EKS.
 */
import type { KubeObject } from "./admission.js";
import type { ResourceType } from "./resources.js";

interface Column {
  name: string;
  type: "string" | "integer" | "date";
  format?: string;
  description: string;
  priority?: number;
  cell: (o: KubeObject, now: number) => string | number;
}

/** kube's duration.HumanDuration */
function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const days = Math.floor(hours / 24) % 365;
    return days === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${days}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

const age = (o: KubeObject, now: number) =>
  o.metadata.creationTimestamp ? humanDuration(now - Date.parse(o.metadata.creationTimestamp)) : "<unknown>";
const NAME: Column = {
  name: "Name",
  type: "string",
  format: "name",
  description: "Name must be unique within a namespace.",
  cell: (o) => o.metadata.name ?? "",
};
const AGE: Column = {
  name: "Age",
  type: "string",
  description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
  cell: age,
};
const CREATED_AT: Column = {
  name: "Created At",
  type: "date",
  description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
  cell: (o) => o.metadata.creationTimestamp ?? "",
};
const count = (v: unknown) => (v && typeof v === "object" ? Object.keys(v).length : 0);
const none = (v: unknown) => (v === undefined || v === null || v === "" ? "<none>" : String(v));

function subjectsOf(kind: string) {
  return (o: KubeObject) => {
    const names = (o.subjects ?? [])
      .filter((s: any) => s.kind === kind)
      .map((s: any) => (kind === "ServiceAccount" ? `${s.namespace ?? o.metadata.namespace}/${s.name}` : s.name));
    return names.join(", ");
  };
}

const BINDING_COLUMNS: Column[] = [
  NAME,
  {
    name: "Role",
    type: "string",
    description: "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
    cell: (o) => `${o.roleRef?.kind}/${o.roleRef?.name}`,
  },
  AGE,
  { name: "Users", type: "string", priority: 1, description: "Users in the binding", cell: subjectsOf("User") },
  { name: "Groups", type: "string", priority: 1, description: "Groups in the binding", cell: subjectsOf("Group") },
  {
    name: "ServiceAccounts",
    type: "string",
    priority: 1,
    description: "ServiceAccounts in the binding",
    cell: subjectsOf("ServiceAccount"),
  },
];

function podStatus(o: KubeObject): string {
  if (o.metadata.deletionTimestamp) return "Terminating";
  for (const s of o.status?.containerStatuses ?? []) {
    if (s.state?.waiting?.reason) return s.state.waiting.reason;
    if (s.state?.terminated?.reason) return s.state.terminated.reason;
  }
  return o.status?.phase ?? "Unknown";
}

function jobStatus(o: KubeObject): string {
  const conditions: any[] = o.status?.conditions ?? [];
  const isTrue = (type: string) => conditions.some((c) => c.type === type && c.status === "True");
  if (isTrue("Failed")) return "Failed";
  if (isTrue("Complete")) return "Complete";
  if (isTrue("FailureTarget")) return "FailureTarget";
  if (isTrue("SuccessCriteriaMet")) return "SuccessCriteriaMet";
  if (o.spec?.suspend) return "Suspended";
  return "Running";
}

function jobDuration(o: KubeObject, now: number): string {
  const start = o.status?.startTime ? Date.parse(o.status.startTime) : undefined;
  if (start === undefined) return "";
  const end = o.status?.completionTime ? Date.parse(o.status.completionTime) : now;
  return humanDuration(end - start);
}

const COLUMNS: Record<string, Column[]> = {
  namespaces: [
    NAME,
    { name: "Status", type: "string", description: "The status of the namespace", cell: (o) => o.status?.phase ?? "" },
    AGE,
  ],
  serviceaccounts: [
    NAME,
    {
      name: "Secrets",
      type: "integer",
      description: "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
      cell: (o) => (o.secrets ?? []).length,
    },
    AGE,
  ],
  configmaps: [
    NAME,
    {
      name: "Data",
      type: "integer",
      description: "Data contains the configuration data.",
      cell: (o) => count(o.data) + count(o.binaryData),
    },
    AGE,
  ],
  secrets: [
    NAME,
    { name: "Type", type: "string", description: "Used to facilitate programmatic handling of secret data.", cell: (o) => o.type ?? "" },
    { name: "Data", type: "integer", description: "Contains the secret data.", cell: (o) => count(o.data) },
    AGE,
  ],
  persistentvolumeclaims: [
    NAME,
    {
      name: "Status",
      type: "string",
      description: "Phase represents the current phase of PersistentVolumeClaim.",
      cell: (o) => o.status?.phase ?? "",
    },
    {
      name: "Volume",
      type: "string",
      description: "VolumeName is the binding reference to the PersistentVolume backing this claim.",
      cell: (o) => o.spec?.volumeName ?? "",
    },
    {
      name: "Capacity",
      type: "string",
      description: "Capacity represents the actual resources of the underlying volume.",
      cell: (o) => o.status?.capacity?.storage ?? "",
    },
    {
      name: "Access Modes",
      type: "string",
      description: "AccessModes contains the desired access modes the volume should have.",
      cell: (o) => accessModes(o.status?.accessModes),
    },
    {
      name: "StorageClass",
      type: "string",
      description: "StorageClassName is the name of the StorageClass required by the claim.",
      cell: (o) => none(o.spec?.storageClassName),
    },
    {
      name: "VolumeAttributesClass",
      type: "string",
      description: "The VolumeAttributesClass used by this claim.",
      cell: (o) => none(o.spec?.volumeAttributesClassName),
    },
    AGE,
    {
      name: "VolumeMode",
      type: "string",
      priority: 1,
      description: "volumeMode defines what type of volume is required by the claim.",
      cell: (o) => o.spec?.volumeMode ?? "",
    },
  ],
  pods: [
    NAME,
    {
      name: "Ready",
      type: "string",
      description: "The aggregate readiness state of this pod for accepting traffic.",
      cell: (o) => `${(o.status?.containerStatuses ?? []).filter((s: any) => s.ready).length}/${(o.spec?.containers ?? []).length}`,
    },
    { name: "Status", type: "string", description: "The aggregate status of the containers in this pod.", cell: podStatus },
    {
      name: "Restarts",
      type: "string",
      description:
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
      cell: (o) => String((o.status?.containerStatuses ?? []).reduce((n: number, s: any) => n + (s.restartCount ?? 0), 0)),
    },
    AGE,
    {
      name: "IP",
      type: "string",
      priority: 1,
      description: "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
      cell: (o) => none(o.status?.podIP),
    },
    {
      name: "Node",
      type: "string",
      priority: 1,
      description: "NodeName is a request to schedule this pod onto a specific node.",
      cell: (o) => none(o.spec?.nodeName),
    },
    {
      name: "Nominated Node",
      type: "string",
      priority: 1,
      description: "nominatedNodeName is set only when this pod preempts other pods on the node.",
      cell: (o) => none(o.status?.nominatedNodeName),
    },
    {
      name: "Readiness Gates",
      type: "string",
      priority: 1,
      description: "If specified, all readiness gates will be evaluated for pod readiness.",
      cell: () => "<none>",
    },
  ],
  jobs: [
    NAME,
    { name: "Status", type: "string", description: "Status of the job.", cell: jobStatus },
    {
      name: "Completions",
      type: "string",
      description: "The desired number of successfully finished pods the job should be run with.",
      cell: (o) => `${o.status?.succeeded ?? 0}/${o.spec?.completions ?? 1}`,
    },
    { name: "Duration", type: "string", description: "Time required to complete the job.", cell: jobDuration },
    AGE,
    {
      name: "Containers",
      type: "string",
      priority: 1,
      description: "Names of each container in the template.",
      cell: (o) => (o.spec?.template?.spec?.containers ?? []).map((c: any) => c.name).join(","),
    },
    {
      name: "Images",
      type: "string",
      priority: 1,
      description: "Images referenced by each container in the template.",
      cell: (o) => (o.spec?.template?.spec?.containers ?? []).map((c: any) => c.image).join(","),
    },
    {
      name: "Selector",
      type: "string",
      priority: 1,
      description: "A label query over pods that should match the pod count.",
      cell: (o) =>
        Object.entries(o.spec?.selector?.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(","),
    },
  ],
  roles: [NAME, CREATED_AT],
  clusterroles: [NAME, CREATED_AT],
  rolebindings: BINDING_COLUMNS,
  clusterrolebindings: BINDING_COLUMNS,
};

function accessModes(modes: string[] | undefined): string {
  const short: Record<string, string> = { ReadWriteOnce: "RWO", ReadOnlyMany: "ROX", ReadWriteMany: "RWX", ReadWriteOncePod: "RWOP" };
  return (modes ?? []).map((m) => short[m] ?? m).join(",");
}

/** True when the Accept header asks for a Table (kubectl get's human-readable output). */
export function wantsTable(accept: string | undefined): boolean {
  return /as=Table/.test(accept ?? "") && /g=meta\.k8s\.io/.test(accept ?? "");
}

export function toTable(
  type: ResourceType,
  objects: KubeObject[],
  resourceVersion: string,
  includeObject: string | null,
  now = Date.now(),
): unknown {
  const columns = COLUMNS[type.resource] ?? [NAME, CREATED_AT];
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: { resourceVersion },
    columnDefinitions: columns.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? "",
      description: c.description,
      priority: c.priority ?? 0,
    })),
    rows: objects.map((o) => ({
      cells: columns.map((c) => c.cell(o, now)),
      ...(includeObject === "None"
        ? {}
        : {
            object: includeObject === "Object" ? o : { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata },
          }),
    })),
  };
}
