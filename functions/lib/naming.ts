/**
 * Names and ownership marks. Everything the product creates carries the marks; an existing object is
 * adopted only when it carries them for the same tenant, otherwise it is an OwnershipConflict.
 * Every object also records the execution that created it, so a compensator can find (and delete)
 * exactly what its own run created, even when the step failed half-way and returned nothing.
 */
import { createHash } from "node:crypto";

export const PRODUCT = "nf-eks-provisioner";

/** Kubernetes label keys. */
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const LABEL_TENANT = "nf-eks-provisioner/tenant";
/** Hash of the execution name that created the object (label values are at most 63 characters). */
export const LABEL_CREATED_BY = "nf-eks-provisioner/created-by";
/** Annotation holding the full execution name that created the object. */
export const ANNOTATION_CREATED_BY = "nf-eks-provisioner/created-by-execution";

/** IAM and EKS tag keys (the same marks). */
export const TAG_MANAGED_BY = "app.kubernetes.io/managed-by";
export const TAG_TENANT = "nf-eks-provisioner/tenant";
export const TAG_CREATED_BY = "nf-eks-provisioner/created-by";

/** kube-system/aws-auth: the ConfigMap's data before our last edit (JSON), kept beside it for the operator. */
export const ANNOTATION_PREVIOUS_AWS_AUTH = "nf-eks-provisioner/previous-aws-auth";
/** kube-system/aws-auth: which execution (executionMark) added which principal ARN (JSON {arn: mark}). */
export const ANNOTATION_AWS_AUTH_MAPPINGS = "nf-eks-provisioner/mappings";

/** The head and compute ServiceAccounts' IRSA annotation. */
export const IRSA_ANNOTATION = "eks.amazonaws.com/role-arn";

/** A label-safe, stable short id of an execution name. */
export function executionMark(executionName: string): string {
  return createHash("sha256").update(executionName).digest("hex").slice(0, 16);
}

export function ownershipLabels(tenant: string, executionName: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: PRODUCT, [LABEL_TENANT]: tenant, [LABEL_CREATED_BY]: executionMark(executionName) };
}

export function ownershipTags(tenant: string, executionName: string): Array<{ Key: string; Value: string }> {
  return [
    { Key: TAG_MANAGED_BY, Value: PRODUCT },
    { Key: TAG_TENANT, Value: tenant },
    { Key: TAG_CREATED_BY, Value: executionMark(executionName) },
  ];
}

/** True when Kubernetes labels (or IAM/EKS tags as a record) mark the object as ours for this tenant. */
export function isOwnedBy(marks: Record<string, string> | undefined, tenant: string): boolean {
  return marks?.[LABEL_MANAGED_BY] === PRODUCT && marks?.[LABEL_TENANT] === tenant;
}

/** True when the object was created by this execution (so this execution's compensator may delete it). */
export function wasCreatedBy(marks: Record<string, string> | undefined, executionName: string): boolean {
  return marks?.[LABEL_CREATED_BY] === executionMark(executionName);
}

export function tagsToRecord(tags: Array<{ Key?: string; Value?: string }> | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).filter((t) => t.Key).map((t) => [t.Key!, t.Value ?? ""]));
}

/** IAM role names: `<prefix>-<tenant>-<purpose>`, at most 64 characters. */
export function iamRoleName(prefix: string, tenant: string, purpose: "launcher" | "workload"): string {
  const name = `${prefix}-${tenant}-${purpose}`;
  if (name.length <= 64) return name;
  // Keep it unique and within the limit: shorten the tenant part and add a hash.
  const hash = createHash("sha256").update(tenant).digest("hex").slice(0, 6);
  const room = 64 - prefix.length - purpose.length - hash.length - 3;
  return `${prefix}-${tenant.slice(0, Math.max(1, room))}${hash}-${purpose}`;
}

export function iamPolicyName(prefix: string, tenant: string, purpose: string): string {
  return `${prefix}-${tenant}-${purpose}`.slice(0, 128);
}

/** The Kubernetes identity the launcher principal maps to (Seqera runbook names). */
export const LAUNCHER_USERNAME = "tower-launcher-user";
export const LAUNCHER_GROUP = "tower-launcher-role";
export const LAUNCHER_ROLE = "tower-launcher-role";
export const NEXTFLOW_CONFIGMAP = "nextflow-config";
