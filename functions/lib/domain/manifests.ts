/**
 * Kubernetes manifests, as pure data: the YAML the Seqera "Kubernetes" / "Amazon EKS" runbooks tell an
 * engineer to `kubectl apply`, built from the request. Every object carries the ownership marks
 * (tenant, created-by execution) so it can be adopted on a re-run and deleted only by the run that made it.
 */
import type {
  KubernetesObject,
  V1ConfigMap,
  V1EnvVar,
  V1Job,
  V1LimitRange,
  V1Namespace,
  V1NetworkPolicy,
  V1ObjectMeta,
  V1PersistentVolumeClaim,
  V1PolicyRule,
  V1ResourceQuota,
  V1Role,
  V1RoleBinding,
  V1ServiceAccount,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import { createHash } from "node:crypto";
import { ANNOTATION_CREATED_BY, LAUNCHER_ROLE, launcherUsername, NEXTFLOW_CONFIGMAP, ownershipLabels, type RunMark } from "./naming.js";
import type { PodSecurityLevel } from "./deploy-config.js";
import type { FusionStorage, HeadJobSpec, NamespaceQuota, PvcStorage } from "./request.js";

export type { KubernetesObject };

export interface ManifestContext {
  tenant: string;
  namespace: string;
  /** The execution's name, recorded on each object for people to read */
  executionName: string;
  /** This run's mark: what the compensator finds its objects by */
  run: RunMark;
  /** The request's extra labels; the ownership marks always win over them. */
  labels?: Record<string, string>;
}

const RBAC_API_GROUP = "rbac.authorization.k8s.io";
/** Where the head pod finds nextflow.config and params.json (one projected volume over both ConfigMaps). */
export const NEXTFLOW_CONFIG_DIR = "/etc/nextflow";
export const HEAD_CONTAINER = "nextflow";
/** Label the Job controller puts on its pods; set on the template too so selectors work before it does. */
export const JOB_NAME_LABEL = "job-name";

/** The verbs the runbook grants: no update/patch, never "*". */
export const LAUNCHER_VERBS = ["get", "list", "watch", "create", "delete"] as const;

/**
 * The Seqera runbook's tower-launcher-role. Nextflow's k8s executor creates, watches, reads the logs of and
 * deletes task pods (or jobs); it reads nextflow.config and params.json from mounted ConfigMaps, so it
 * needs no access to configmaps or persistentvolumeclaims through the API.
 */
const LAUNCHER_RULES: V1PolicyRule[] = [
  { apiGroups: [""], resources: ["pods", "pods/status", "pods/log", "pods/exec"], verbs: [...LAUNCHER_VERBS] },
  { apiGroups: ["batch"], resources: ["jobs", "jobs/status"], verbs: [...LAUNCHER_VERBS] },
];

function metadata(ctx: ManifestContext, name: string, namespaced = true, annotations: Record<string, string> = {}): V1ObjectMeta {
  return {
    name,
    ...(namespaced ? { namespace: ctx.namespace } : {}),
    labels: { ...ctx.labels, ...ownershipLabels(ctx.tenant, ctx.run) },
    annotations: { ...annotations, [ANNOTATION_CREATED_BY]: ctx.executionName },
  };
}

/** Object names up to 253 characters: keep `name` when it fits, else shorten it with a hash so it stays unique. */
function boundedName(name: string, max = 253): string {
  if (name.length <= max) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 8);
  return `${name.slice(0, max - hash.length - 1).replace(/[-.]+$/, "")}-${hash}`;
}

/** Pod Security admission's namespace labels. */
export const POD_SECURITY_LABEL_PREFIX = "pod-security.kubernetes.io";

/**
 * The namespace refuses pods that break `enforce` (baseline unless the deployment says otherwise); `warn` and `audit`
 * hold them to `restricted`, so what would not pass there shows up in kubectl's output and the audit log.
 */
export function podSecurityLabels(enforce: PodSecurityLevel): Record<string, string> {
  const modes = { enforce, warn: "restricted", audit: "restricted" } as const;
  return Object.fromEntries(
    Object.entries(modes).flatMap(([mode, level]) => [
      [`${POD_SECURITY_LABEL_PREFIX}/${mode}`, level],
      [`${POD_SECURITY_LABEL_PREFIX}/${mode}-version`, "latest"],
    ]),
  );
}

/**
 * The namespace carries the ownership marks and the Pod Security labels, never the request's labels: other tenants'
 * NetworkPolicies may select namespaces by label, so a tenant must not be able to label its way into them.
 */
export function namespaceManifest(ctx: ManifestContext, podSecurity: PodSecurityLevel = "baseline"): V1Namespace {
  const meta = metadata({ ...ctx, labels: {} }, ctx.namespace, false);
  return { apiVersion: "v1", kind: "Namespace", metadata: { ...meta, labels: { ...podSecurityLabels(podSecurity), ...meta.labels } } };
}

export const LIMIT_RANGE = "tenant-defaults";
export const RESOURCE_QUOTA = "tenant-quota";
export const NETWORK_POLICY = "deny-from-other-namespaces";

/**
 * What a container gets when it does not ask: requests for CPU and memory (a quota on requests refuses pods without
 * them) and a memory limit (a quota on limits.memory refuses pods without one). No default CPU limit: Nextflow asks for
 * a task's CPUs as a request only, and a default limit below that request would make its pod invalid.
 */
export const CONTAINER_DEFAULTS = { defaultRequest: { cpu: "250m", memory: "256Mi" }, default: { memory: "1Gi" } } as const;

/** (client-node's models name `default` and `from` `_default` and `_from`; its serializer writes the real names.) */
export function limitRangeManifest(ctx: ManifestContext): V1LimitRange {
  const limits = [
    { type: "Container", defaultRequest: { ...CONTAINER_DEFAULTS.defaultRequest }, _default: { ...CONTAINER_DEFAULTS.default } },
  ];
  return { apiVersion: "v1", kind: "LimitRange", metadata: metadata(ctx, LIMIT_RANGE), spec: { limits } };
}

/** The namespace's quota: CPU requests, memory requests and limits, pods (only what the quota names). */
export function resourceQuotaManifest(ctx: ManifestContext, quota: NamespaceQuota): V1ResourceQuota {
  const hard: Record<string, string> = {
    ...(quota.cpu !== undefined ? { "requests.cpu": quota.cpu } : {}),
    ...(quota.memory !== undefined ? { "requests.memory": quota.memory, "limits.memory": quota.memory } : {}),
    ...(quota.pods !== undefined ? { pods: String(quota.pods) } : {}),
  };
  return { apiVersion: "v1", kind: "ResourceQuota", metadata: metadata(ctx, RESOURCE_QUOTA), spec: { hard } };
}

/** Ingress only from pods of the same namespace: another tenant's pods (and any other namespace's) are refused. */
export function networkPolicyManifest(ctx: ManifestContext): V1NetworkPolicy {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: metadata(ctx, NETWORK_POLICY),
    spec: { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ _from: [{ podSelector: {} }] }] },
  };
}

export function serviceAccountManifest(ctx: ManifestContext, name: string, annotations?: Record<string, string>): V1ServiceAccount {
  return { apiVersion: "v1", kind: "ServiceAccount", metadata: metadata(ctx, name, true, annotations) };
}

export function launcherRoleManifest(ctx: ManifestContext, name: string = LAUNCHER_ROLE): V1Role {
  return {
    apiVersion: `${RBAC_API_GROUP}/v1`,
    kind: "Role",
    metadata: metadata(ctx, name),
    rules: LAUNCHER_RULES.map((rule) => ({
      ...rule,
      apiGroups: [...rule.apiGroups!],
      resources: [...rule.resources!],
      verbs: [...rule.verbs],
    })),
  };
}

/** Binds the head pod's ServiceAccount to the launcher Role (runbook: `tower-launcher-sa` binding). */
export function serviceAccountRoleBinding(ctx: ManifestContext, serviceAccount: string, role: string = LAUNCHER_ROLE): V1RoleBinding {
  return {
    apiVersion: `${RBAC_API_GROUP}/v1`,
    kind: "RoleBinding",
    metadata: metadata(ctx, boundedName(`${serviceAccount}-binding`)),
    roleRef: { apiGroup: RBAC_API_GROUP, kind: "Role", name: role },
    subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace: ctx.namespace }],
  };
}

/**
 * Binds the Kubernetes user the tenant's launcher IAM principal maps to (access entry or aws-auth) to the
 * launcher Role: that tenant's own user, so no other tenant's launcher gets in through this binding.
 */
export function launcherUserRoleBinding(
  ctx: ManifestContext,
  username: string = launcherUsername(ctx.tenant),
  role: string = LAUNCHER_ROLE,
): V1RoleBinding {
  return {
    apiVersion: `${RBAC_API_GROUP}/v1`,
    kind: "RoleBinding",
    metadata: metadata(ctx, boundedName(`${username}-binding`)),
    roleRef: { apiGroup: RBAC_API_GROUP, kind: "Role", name: role },
    subjects: [{ kind: "User", name: username, apiGroup: RBAC_API_GROUP }],
  };
}

/** The shared work volume: ReadWriteMany so the head and every task pod mount it at once. */
export function pvcManifest(ctx: ManifestContext, storage: PvcStorage): V1PersistentVolumeClaim {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: metadata(ctx, storage.claimName),
    spec: {
      accessModes: ["ReadWriteMany"],
      ...(storage.storageClass ? { storageClassName: storage.storageClass } : {}),
      resources: { requests: { storage: storage.size } },
    },
  };
}

export const NEXTFLOW_CONFIG_KEY = "nextflow.config";
export const PARAMS_KEY = "params.json";

/**
 * The tenant's nextflow.config, shared by every run in the namespace. The head job's params are not here:
 * each head job has its own ConfigMap (headJobParamsConfigMapManifest), so a later run cannot rewrite
 * the params under a head pod that has not started yet.
 */
export function nextflowConfigMapManifest(ctx: ManifestContext, nextflowConfig: string): V1ConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: metadata(ctx, NEXTFLOW_CONFIGMAP),
    data: { [NEXTFLOW_CONFIG_KEY]: nextflowConfig },
  };
}

/** The head job's own params ConfigMap: `<jobName>-params` (a job name is at most 63 characters, so this fits). */
export function headJobParamsConfigMapName(jobName: string): string {
  return `${jobName}-params`;
}

/** The head job's params file (params never go on the command line), in a ConfigMap of its own. */
export function headJobParamsConfigMapManifest(ctx: ManifestContext, jobName: string, params: Record<string, unknown> = {}): V1ConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: metadata(ctx, headJobParamsConfigMapName(jobName)),
    data: { [PARAMS_KEY]: `${JSON.stringify(params, null, 2)}\n` },
  };
}

/**
 * Deterministic per tenant and run, so a retried LaunchHeadJob finds its own Job (and a later run under a reused
 * execution name makes another); a DNS-1123 label (at most 63 characters, the Job controller puts it in a label value).
 */
export function headJobName(tenant: string, run: RunMark): string {
  const mark = run.slice(0, 8);
  const room = 63 - "nf-head-".length - mark.length - 1;
  const tenantPart = tenant
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .slice(0, room)
    .replace(/^-+|-+$/g, "");
  return tenantPart ? `nf-head-${tenantPart}-${mark}` : `nf-head-${mark}`;
}

/** The `nextflow run` argv: an array handed to the container runtime, never a shell command line. */
function headJobArgs(spec: HeadJobSpec): string[] {
  return [
    "run",
    spec.pipeline,
    ...(spec.revision ? ["-r", spec.revision] : []),
    ...(spec.profiles.length ? ["-profile", spec.profiles.join(",")] : []),
    "-params-file",
    `${NEXTFLOW_CONFIG_DIR}/${PARAMS_KEY}`,
    "-c",
    `${NEXTFLOW_CONFIG_DIR}/${NEXTFLOW_CONFIG_KEY}`,
  ];
}

export interface HeadJobOptions {
  serviceAccount: string;
  storage: PvcStorage | FusionStorage;
  /** The shared ConfigMap holding nextflow.config */
  configMap: string;
  /** The job's own ConfigMap holding params.json (headJobParamsConfigMapName(jobName)) */
  paramsConfigMap: string;
  jobName: string;
}

export function headJobManifest(ctx: ManifestContext, spec: HeadJobSpec, opts: HeadJobOptions): V1Job {
  const meta = metadata(ctx, opts.jobName);
  // Plain log lines in `kubectl logs`; the request's env may still override it.
  const env: V1EnvVar[] = [
    ...("NXF_ANSI_LOG" in spec.env ? [] : [{ name: "NXF_ANSI_LOG", value: "false" }]),
    ...Object.entries(spec.env).map(([name, value]) => ({ name, value })),
  ];
  // One directory, two ConfigMaps: the tenant's nextflow.config and this job's params.json.
  const volumes: V1Volume[] = [
    {
      name: "nextflow-config",
      projected: {
        sources: [
          { configMap: { name: opts.configMap, items: [{ key: NEXTFLOW_CONFIG_KEY, path: NEXTFLOW_CONFIG_KEY }] } },
          { configMap: { name: opts.paramsConfigMap, items: [{ key: PARAMS_KEY, path: PARAMS_KEY }] } },
        ],
      },
    },
  ];
  const volumeMounts: V1VolumeMount[] = [{ name: "nextflow-config", mountPath: NEXTFLOW_CONFIG_DIR, readOnly: true }];
  if (opts.storage.type === "pvc") {
    volumes.push({ name: "scratch", persistentVolumeClaim: { claimName: opts.storage.claimName } });
    volumeMounts.push({ name: "scratch", mountPath: opts.storage.mountPath });
  }
  const resources = { cpu: spec.cpu, memory: spec.memory };
  // Nextflow needs no privilege: none to escalate to, no capabilities, the runtime's default seccomp profile.
  const securityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: meta,
    spec: {
      // A failed Nextflow run is reported, not retried behind the workflow's back.
      backoffLimit: 0,
      template: {
        metadata: { labels: { ...meta.labels, [JOB_NAME_LABEL]: opts.jobName }, annotations: { ...meta.annotations } },
        spec: {
          serviceAccountName: opts.serviceAccount,
          restartPolicy: "Never",
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: HEAD_CONTAINER,
              image: spec.image,
              command: ["nextflow"],
              args: headJobArgs(spec),
              env,
              resources: { requests: { ...resources }, limits: { ...resources } },
              securityContext,
              volumeMounts,
            },
          ],
          volumes,
        },
      },
    },
  };
}
