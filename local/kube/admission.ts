/**
 * What kube-apiserver does to an object before storing it: defaulting (the fields a real server fills in,
 * so `kubectl get -o yaml` and the steps see what they would see on EKS) and validation (the checks that
 * catch manifest bugs early: DNS-1123 names, label syntax, ConfigMap size, Job restartPolicy, immutable
 * fields). Not everything upstream validates is here: only what a provisioner could plausibly get wrong.
 */
import { failure, invalid, KubeStatusError } from "./kube-status.js";
import { quantityValue } from "../../functions/lib/domain/quantity.js";
import type { ResourceType } from "./resources.js";
import { jsonEqual } from "./patch.js";

/** A stored Kubernetes object (loosely typed: the emulator handles every kind). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: any;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [field: string]: any;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const MAX_CONFIGMAP_BYTES = 1024 * 1024;

const SUBDOMAIN_MESSAGE =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MESSAGE =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MESSAGE =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MESSAGE =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

interface Cause {
  field: string;
  message: string;
  reason?: string;
}

const show = (value: unknown) => JSON.stringify(value);
const invalidValue = (field: string, value: unknown, why: string): Cause => ({ field, message: `Invalid value: ${show(value)}: ${why}` });
const required = (field: string, why = ""): Cause => ({
  field,
  reason: "FieldValueRequired",
  message: `Required value${why ? `: ${why}` : ""}`,
});
const unsupported = (field: string, value: unknown, allowed: string[]): Cause => ({
  field,
  reason: "FieldValueNotSupported",
  message: `Unsupported value: ${show(value)}: supported values: ${allowed.map(show).join(", ")}`,
});

/** RBAC objects may use any path-segment name; everything else here is a DNS-1123 subdomain (namespaces: label). */
function nameProblems(type: ResourceType, name: string): Cause[] {
  if (type.resource === "namespaces") {
    if (name.length > 63) return [invalidValue("metadata.name", name, "must be no more than 63 characters")];
    return DNS1123_LABEL.test(name) ? [] : [invalidValue("metadata.name", name, LABEL_MESSAGE)];
  }
  if (type.group === "rbac.authorization.k8s.io") {
    if (name === "." || name === "..") return [invalidValue("metadata.name", name, `may not be '${name}'`)];
    return /[/%]/.test(name) ? [invalidValue("metadata.name", name, `may not contain '${name.includes("/") ? "/" : "%"}'`)] : [];
  }
  if (name.length > 253) return [invalidValue("metadata.name", name, "must be no more than 253 characters")];
  if (!DNS1123_SUBDOMAIN.test(name)) return [invalidValue("metadata.name", name, SUBDOMAIN_MESSAGE)];
  if (type.resource === "jobs" && name.length > 63) {
    // The job name becomes the `job-name` label value on its pods.
    return [invalidValue("metadata.name", name, "must be no more than 63 characters")];
  }
  return [];
}

function qualifiedKeyProblems(field: string, key: string): Cause[] {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const problems: Cause[] = [];
  if (prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) {
    problems.push(invalidValue(field, key, `prefix part ${SUBDOMAIN_MESSAGE}`));
  }
  if (name.length === 0 || name.length > 63) problems.push(invalidValue(field, key, "name part must be no more than 63 characters"));
  else if (!QUALIFIED_NAME.test(name)) problems.push(invalidValue(field, key, QUALIFIED_NAME_MESSAGE));
  return problems;
}

function metadataProblems(meta: ObjectMeta): Cause[] {
  const problems: Cause[] = [];
  for (const [key, value] of Object.entries(meta.labels ?? {})) {
    problems.push(...qualifiedKeyProblems("metadata.labels", key));
    if (typeof value !== "string" || value.length > 63)
      problems.push(invalidValue("metadata.labels", value, "must be no more than 63 characters"));
    else if (!LABEL_VALUE.test(value)) problems.push(invalidValue("metadata.labels", value, LABEL_VALUE_MESSAGE));
  }
  for (const [key, value] of Object.entries(meta.annotations ?? {})) {
    problems.push(...qualifiedKeyProblems("metadata.annotations", key));
    if (typeof value !== "string") problems.push(invalidValue(`metadata.annotations[${key}]`, value, "must be a string"));
  }
  return problems;
}

function podSpecProblems(spec: any, path: string, isJobTemplate: boolean): Cause[] {
  const problems: Cause[] = [];
  if (!spec || typeof spec !== "object") return [required(path)];
  const containers = spec.containers;
  if (!Array.isArray(containers) || containers.length === 0) problems.push(required(`${path}.containers`));
  else {
    containers.forEach((c: any, i: number) => {
      if (!c?.name) problems.push(required(`${path}.containers[${i}].name`));
      else if (!DNS1123_LABEL.test(c.name)) problems.push(invalidValue(`${path}.containers[${i}].name`, c.name, LABEL_MESSAGE));
      if (!c?.image) problems.push(required(`${path}.containers[${i}].image`));
      if (c?.command !== undefined && !isStringArray(c.command))
        problems.push(invalidValue(`${path}.containers[${i}].command`, c.command, "must be a list of strings"));
      if (c?.args !== undefined && !isStringArray(c.args))
        problems.push(invalidValue(`${path}.containers[${i}].args`, c.args, "must be a list of strings"));
    });
  }
  const volumeNames = new Set((spec.volumes ?? []).map((v: any) => v?.name));
  (containers ?? []).forEach((c: any, i: number) => {
    (c?.volumeMounts ?? []).forEach((m: any, j: number) => {
      if (!volumeNames.has(m?.name))
        problems.push({
          field: `${path}.containers[${i}].volumeMounts[${j}].name`,
          reason: "FieldValueNotFound",
          message: `Not found: ${show(m?.name)}`,
        });
    });
  });
  if (isJobTemplate) {
    if (spec.restartPolicy === undefined) problems.push(required(`${path}.restartPolicy`, 'valid values: "OnFailure", "Never"'));
    else if (!["OnFailure", "Never"].includes(spec.restartPolicy))
      problems.push(unsupported(`${path}.restartPolicy`, spec.restartPolicy, ["OnFailure", "Never"]));
  } else if (spec.restartPolicy !== undefined && !["Always", "OnFailure", "Never"].includes(spec.restartPolicy)) {
    problems.push(unsupported(`${path}.restartPolicy`, spec.restartPolicy, ["Always", "OnFailure", "Never"]));
  }
  return problems;
}

function isStringArray(value: unknown): boolean {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

function kindProblems(type: ResourceType, obj: KubeObject): Cause[] {
  switch (type.resource) {
    case "configmaps": {
      const problems: Cause[] = [];
      let size = 0;
      for (const field of ["data", "binaryData"] as const) {
        for (const [key, value] of Object.entries(obj[field] ?? {})) {
          if (!CONFIG_KEY.test(key))
            problems.push(
              invalidValue(
                `${field}[${key}]`,
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
              ),
            );
          if (typeof value !== "string") problems.push(invalidValue(`${field}[${key}]`, value, "must be a string"));
          else size += key.length + Buffer.byteLength(value);
        }
      }
      if (size > MAX_CONFIGMAP_BYTES)
        problems.push({ field: "[]", reason: "FieldValueTooLong", message: `Too long: must have at most ${MAX_CONFIGMAP_BYTES} bytes` });
      return problems;
    }
    case "pods":
      return podSpecProblems(obj.spec, "spec", false);
    case "jobs":
      return podSpecProblems(obj.spec?.template?.spec, "spec.template.spec", true);
    case "persistentvolumeclaims": {
      const problems: Cause[] = [];
      if (!Array.isArray(obj.spec?.accessModes) || obj.spec.accessModes.length === 0)
        problems.push(required("spec.accessModes", "at least 1 access mode is required"));
      else {
        const modes = ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];
        obj.spec.accessModes.forEach((m: unknown) => {
          if (!modes.includes(m as string)) problems.push(unsupported("spec.accessModes", m, modes));
        });
      }
      const storage = obj.spec?.resources?.requests?.storage;
      if (storage === undefined) problems.push(required("spec.resources[storage]"));
      else if (!/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/.test(String(storage))) {
        problems.push(
          invalidValue(
            "spec.resources.requests[storage]",
            storage,
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
          ),
        );
      }
      return problems;
    }
    case "roles":
    case "clusterroles":
      return (obj.rules ?? []).flatMap((rule: any, i: number) =>
        Array.isArray(rule?.verbs) && rule.verbs.length > 0 ? [] : [required(`rules[${i}].verbs`, "verbs must contain at least one value")],
      );
    case "rolebindings":
    case "clusterrolebindings": {
      const ref = obj.roleRef;
      const problems: Cause[] = [];
      if (!ref?.name) problems.push(required("roleRef.name"));
      const kinds = type.resource === "rolebindings" ? ["Role", "ClusterRole"] : ["ClusterRole"];
      if (!kinds.includes(ref?.kind)) problems.push(unsupported("roleRef.kind", ref?.kind ?? "", kinds));
      if (ref?.apiGroup !== "rbac.authorization.k8s.io")
        problems.push(unsupported("roleRef.apiGroup", ref?.apiGroup ?? "", ["rbac.authorization.k8s.io"]));
      (obj.subjects ?? []).forEach((s: any, i: number) => {
        if (!["User", "Group", "ServiceAccount"].includes(s?.kind))
          problems.push(unsupported(`subjects[${i}].kind`, s?.kind ?? "", ["ServiceAccount", "User", "Group"]));
        if (!s?.name) problems.push(required(`subjects[${i}].name`));
        if (s?.kind === "ServiceAccount" && type.resource === "clusterrolebindings" && !s.namespace)
          problems.push(required(`subjects[${i}].namespace`));
      });
      return problems;
    }
    default:
      return [];
  }
}

function throwIfProblems(type: ResourceType, obj: KubeObject, problems: Cause[]): void {
  if (problems.length > 0) throw invalid(type.kind, obj.metadata?.name ?? "", type.group, problems) as KubeStatusError;
}

/** Checks a new object (after defaulting). */
export function validateCreate(type: ResourceType, obj: KubeObject): void {
  const name = obj.metadata?.name;
  const problems = name ? nameProblems(type, name) : [required("metadata.name", "name or generateName is required")];
  problems.push(...metadataProblems(obj.metadata ?? {}), ...kindProblems(type, obj));
  throwIfProblems(type, obj, problems);
}

/** What an update's checks may look up in the store: a StorageClass, by name (a claim's resize). */
export interface UpdateLookups {
  storageClass?: (name: string) => KubeObject | undefined;
}

/**
 * A claim's new size, as the API server and its PersistentVolumeClaimResize admission plugin judge it: never smaller
 * (422), and larger only when the claim's StorageClass exists and has `allowVolumeExpansion: true` (403 Forbidden).
 */
function claimResizeProblems(previous: KubeObject, next: KubeObject, lookups: UpdateLookups): Cause[] {
  const before = previous.spec?.resources?.requests?.storage;
  const after = next.spec?.resources?.requests?.storage;
  if (before === undefined || after === undefined || quantityValue(String(after)) === quantityValue(String(before))) return [];
  if (quantityValue(String(after)) < quantityValue(String(before))) {
    return [
      {
        field: "spec.resources.requests.storage",
        reason: "FieldValueForbidden",
        message: "Forbidden: field can not be less than previous value",
      },
    ];
  }
  const className = previous.spec?.storageClassName;
  const storageClass = className ? lookups.storageClass?.(String(className)) : undefined;
  if ((storageClass as { allowVolumeExpansion?: unknown } | undefined)?.allowVolumeExpansion !== true) {
    const name = previous.metadata?.name ?? "";
    throw new KubeStatusError(
      failure(
        403,
        "Forbidden",
        `persistentvolumeclaims "${name}" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize`,
        {
          name,
          kind: "persistentvolumeclaims",
        },
      ),
    );
  }
  return [];
}

/** Checks an update: everything validateCreate checks, plus the fields that cannot change. */
export function validateUpdate(type: ResourceType, previous: KubeObject, next: KubeObject, lookups: UpdateLookups = {}): void {
  const problems = [...metadataProblems(next.metadata ?? {}), ...kindProblems(type, next)];
  const same = jsonEqual;
  if ((type.resource === "rolebindings" || type.resource === "clusterrolebindings") && !same(previous.roleRef, next.roleRef)) {
    problems.push(invalidValue("roleRef", next.roleRef, "cannot change roleRef"));
  }
  if (type.resource === "jobs") {
    if (!same(previous.spec?.template, next.spec?.template))
      problems.push(invalidValue("spec.template", next.spec?.template, "field is immutable"));
    if (!same(previous.spec?.selector, next.spec?.selector))
      problems.push(invalidValue("spec.selector", next.spec?.selector, "field is immutable"));
  }
  if (type.resource === "persistentvolumeclaims") {
    const strip = (spec: any) => ({ ...spec, resources: undefined, volumeAttributesClassName: undefined, volumeName: undefined });
    if (!same(strip(previous.spec), strip(next.spec))) {
      problems.push({
        field: "spec",
        reason: "FieldValueForbidden",
        message: "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
      });
    }
    problems.push(...claimResizeProblems(previous, next, lookups));
  }
  if (type.resource === "pods") {
    const strip = (spec: any) => ({
      ...spec,
      containers: (spec?.containers ?? []).map((c: any) => ({ ...c, image: undefined })),
      activeDeadlineSeconds: undefined,
      tolerations: undefined,
    });
    if (!same(strip(previous.spec), strip(next.spec))) {
      problems.push({
        field: "spec",
        reason: "FieldValueForbidden",
        message:
          "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
      });
    }
  }
  throwIfProblems(type, next, problems);
}

// ---- defaulting ----

function defaultContainer(c: any): any {
  const image = String(c?.image ?? "");
  const tag = image.includes("@") ? "digest" : image.slice(image.lastIndexOf("/") + 1).split(":")[1];
  return {
    ...c,
    imagePullPolicy: c?.imagePullPolicy ?? (tag === undefined || tag === "latest" ? "Always" : "IfNotPresent"),
    resources: c?.resources ?? {},
    terminationMessagePath: c?.terminationMessagePath ?? "/dev/termination-log",
    terminationMessagePolicy: c?.terminationMessagePolicy ?? "File",
  };
}

function defaultPodSpec(spec: any, restartPolicy: string | undefined): any {
  if (!spec || typeof spec !== "object") return spec;
  const serviceAccount = spec.serviceAccountName ?? spec.serviceAccount ?? "default";
  return {
    ...spec,
    containers: Array.isArray(spec.containers) ? spec.containers.map(defaultContainer) : spec.containers,
    ...(restartPolicy || spec.restartPolicy ? { restartPolicy: spec.restartPolicy ?? restartPolicy } : {}),
    dnsPolicy: spec.dnsPolicy ?? "ClusterFirst",
    schedulerName: spec.schedulerName ?? "default-scheduler",
    securityContext: spec.securityContext ?? {},
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds ?? 30,
    serviceAccountName: serviceAccount,
    serviceAccount,
  };
}

/** Guaranteed / Burstable / BestEffort, as the real server computes it. */
function qosClass(spec: any): string {
  const containers: any[] = spec?.containers ?? [];
  const all = containers.map((c) => ({ requests: c?.resources?.requests ?? {}, limits: c?.resources?.limits ?? {} }));
  if (all.every((c) => Object.keys(c.requests).length === 0 && Object.keys(c.limits).length === 0)) return "BestEffort";
  const guaranteed = all.every(
    (c) =>
      c.limits.cpu !== undefined &&
      c.limits.memory !== undefined &&
      (c.requests.cpu === undefined || String(c.requests.cpu) === String(c.limits.cpu)) &&
      (c.requests.memory === undefined || String(c.requests.memory) === String(c.limits.memory)),
  );
  return guaranteed ? "Guaranteed" : "Burstable";
}

/** A Secret's `stringData` written into `data` (base64), as the server stores it on create and update. */
export function foldStringData(secret: KubeObject): void {
  if (!secret.stringData) return;
  secret.data = { ...(secret.data ?? {}) };
  for (const [k, v] of Object.entries(secret.stringData)) secret.data[k] = Buffer.from(String(v)).toString("base64");
  delete secret.stringData;
}

/**
 * Fill in what the real server fills in on create. `uid` is the new object's uid (Jobs' selector uses it).
 */
export function applyCreateDefaults(type: ResourceType, obj: KubeObject, uid: string): KubeObject {
  const name = obj.metadata.name!;
  switch (type.resource) {
    case "namespaces":
      obj.metadata.labels = { ...(obj.metadata.labels ?? {}), "kubernetes.io/metadata.name": name };
      obj.spec = { finalizers: ["kubernetes"], ...(obj.spec ?? {}) };
      obj.status = { phase: "Active" };
      break;
    case "secrets":
      obj.type = obj.type ?? "Opaque";
      foldStringData(obj);
      break;
    case "persistentvolumeclaims":
      obj.spec = { volumeMode: "Filesystem", ...(obj.spec ?? {}) };
      obj.status = { phase: "Pending" };
      // StorageObjectInUseProtection: a claim a pod uses is not removed under it.
      if (!(obj.metadata.finalizers ?? []).includes("kubernetes.io/pvc-protection")) {
        obj.metadata.finalizers = [...(obj.metadata.finalizers ?? []), "kubernetes.io/pvc-protection"];
      }
      break;
    case "pods":
      obj.spec = defaultPodSpec(obj.spec ?? {}, "Always");
      if (obj.spec.enableServiceLinks === undefined) obj.spec.enableServiceLinks = true;
      obj.spec.priority = obj.spec.priority ?? 0;
      obj.spec.preemptionPolicy = obj.spec.preemptionPolicy ?? "PreemptLowerPriority";
      obj.status = { phase: "Pending", qosClass: qosClass(obj.spec) };
      break;
    case "jobs": {
      const spec = obj.spec ?? {};
      const selectorLabels = { "batch.kubernetes.io/controller-uid": uid };
      const podLabels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
      };
      const template = spec.template ?? {};
      obj.spec = {
        parallelism: 1,
        completions: 1,
        backoffLimit: 6,
        completionMode: "NonIndexed",
        suspend: false,
        podReplacementPolicy: "TerminatedOrFailed",
        manualSelector: undefined,
        ...spec,
        selector: spec.manualSelector ? spec.selector : { matchLabels: selectorLabels },
        template: {
          ...template,
          metadata: {
            ...(template.metadata ?? {}),
            labels: { ...(template.metadata?.labels ?? {}), ...(spec.manualSelector ? {} : podLabels) },
          },
          spec: defaultPodSpec(template.spec, undefined),
        },
      };
      if (obj.spec.manualSelector === undefined) delete obj.spec.manualSelector;
      obj.status = {};
      break;
    }
    case "rolebindings":
    case "clusterrolebindings":
      if (Array.isArray(obj.subjects)) {
        obj.subjects = obj.subjects.map((s: any) =>
          s?.kind === "ServiceAccount" ? { apiGroup: undefined, ...s } : { apiGroup: "rbac.authorization.k8s.io", ...s },
        );
        for (const s of obj.subjects) if (s.apiGroup === undefined) delete s.apiGroup;
      }
      break;
  }
  return obj;
}
