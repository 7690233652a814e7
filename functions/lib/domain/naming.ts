/**
 * Names and ownership marks. Everything the product creates carries the marks; an existing object is
 * adopted only when it carries them for the same tenant, otherwise it is an OwnershipConflict.
 * Every object also records the run that created it (its run mark: execution name and start time), so a
 * compensator can find (and delete) exactly what its own run created, even when the step failed half-way and
 * returned nothing, and never what an earlier run of the same name created.
 */
import { createHash } from "node:crypto";
import { InvalidRequest } from "./errors.js";
import { DNS1123_LABEL } from "./request.js";

export const PRODUCT = "nf-eks-provisioner";

/** Kubernetes label keys. */
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const LABEL_TENANT = "nf-eks-provisioner/tenant";
/** The run mark (runMark) of the execution that created the object (label values are at most 63 characters). */
export const LABEL_CREATED_BY = "nf-eks-provisioner/created-by";
/** Annotation holding the full execution name that created the object (for people; ownership goes by the run mark). */
export const ANNOTATION_CREATED_BY = "nf-eks-provisioner/created-by-execution";

/** IAM and EKS tag keys (the same marks). */
export const TAG_MANAGED_BY = "app.kubernetes.io/managed-by";
export const TAG_TENANT = "nf-eks-provisioner/tenant";
export const TAG_CREATED_BY = "nf-eks-provisioner/created-by";
/** Every tag key the product writes: a tagging call may set these and no others. */
export const OWNERSHIP_TAG_KEYS: readonly string[] = [TAG_MANAGED_BY, TAG_TENANT, TAG_CREATED_BY];

/** The marks on kube-system/aws-auth are named in functions/lib/kube/aws-auth/configmap-edit.ts. */

/** The head and compute ServiceAccounts' IRSA annotation. */
export const IRSA_ANNOTATION = "eks.amazonaws.com/role-arn";

/**
 * What tells one execution from every other, ever: its name and its start time (`$$.Execution.StartTime`, which a
 * redrive keeps). A name alone does not: Step Functions forgets it after 90 days, and a keyed execution's name
 * (`<tenant>_<key>`) comes back whenever a client reuses its idempotency key.
 */
export interface RunIdentity {
  name: string;
  startTime: string;
}

declare const RUN_MARK: unique symbol;
/** The created-by mark of one execution; only runMark makes one, so no caller can mark with a bare name. */
export type RunMark = string & { readonly [RUN_MARK]: true };

/** The state carries no start time (a definition older than the run marks): no mark can be told apart, so nothing is marked. */
export class ExecutionStartTimeMissing extends Error {
  constructor(executionName: string) {
    super(`the workflow state names execution ${executionName} but not its start time ($$.Execution.StartTime): no run mark can be made`);
    this.name = "ExecutionStartTimeMissing";
  }
}

/** A label-safe short hash of the execution's name and start time: the mark of everything this run creates. */
export function runMark(execution: RunIdentity): RunMark {
  if (!execution.startTime) throw new ExecutionStartTimeMissing(execution.name);
  // "\n" is in neither an execution name nor a timestamp, so distinct pairs hash distinctly.
  return createHash("sha256").update(`${execution.name}\n${execution.startTime}`).digest("hex").slice(0, 16) as RunMark;
}

export function ownershipLabels(tenant: string, run: RunMark): Record<string, string> {
  return { [LABEL_MANAGED_BY]: PRODUCT, [LABEL_TENANT]: tenant, [LABEL_CREATED_BY]: run };
}

export function ownershipTags(tenant: string, run: RunMark): Array<{ Key: string; Value: string }> {
  return [
    { Key: TAG_MANAGED_BY, Value: PRODUCT },
    { Key: TAG_TENANT, Value: tenant },
    { Key: TAG_CREATED_BY, Value: run },
  ];
}

/** True when Kubernetes labels (or IAM/EKS tags as a record) mark the object as ours for this tenant. */
export function isOwnedBy(marks: Record<string, string> | undefined, tenant: string): boolean {
  return marks?.[LABEL_MANAGED_BY] === PRODUCT && marks?.[LABEL_TENANT] === tenant;
}

/**
 * Everything the product made for one tenant, whichever of its runs made it: what a teardown may remove (a
 * compensation removes one run's work, by its {@link RunMark}).
 */
export interface TenantClaim {
  readonly tenant: string;
}

/** Whose work an undo removes: one run's (a compensation) or one tenant's, every run's (a teardown). */
export type Claim = RunMark | TenantClaim;

/** True for a teardown's claim (every run of the tenant), false for one run's. */
export function isTenantClaim(claim: Claim): claim is TenantClaim {
  return typeof claim !== "string";
}

/** True when a change recorded (on an object, in an annotation) under `mark` is within the claim. */
export function isClaimedMark(mark: string | undefined, claim: Claim): boolean {
  return mark !== undefined && (isTenantClaim(claim) || mark === claim);
}

/**
 * True when the object is within the claim: created by this run (so this run's compensator may delete it), or, for a
 * teardown, marked as the product's for the claim's tenant.
 */
export function wasCreatedBy(marks: Record<string, string> | undefined, claim: Claim): boolean {
  return isTenantClaim(claim) ? isOwnedBy(marks, claim.tenant) : marks?.[LABEL_CREATED_BY] === claim;
}

export function tagsToRecord(tags: Array<{ Key?: string; Value?: string }> | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).filter((t) => t.Key).map((t) => [t.Key!, t.Value ?? ""]));
}

/**
 * The IAM path of every role the product creates. A path is fixed when a role is created and nobody can
 * create a role under it but a principal allowed to: the product's IAM permissions write only to
 * `role/nf-eks-provisioner/<prefix>-*`, so no pre-existing role (whatever its name or tags) is ever within reach.
 */
export const IAM_ROLE_PATH = `/${PRODUCT}/`;

/** The ARN of a product role: under IAM_ROLE_PATH (what IAM evaluates; access entries and Pod Identity take it whole). */
export function productRoleArn(partition: string, accountId: string, roleName: string): string {
  return `arn:${partition}:iam::${accountId}:role${IAM_ROLE_PATH}${roleName}`;
}

/**
 * IAM role names: `<prefix>-<tenant>.<cluster>-<purpose>`, at most 64 characters. One role per tenant AND
 * cluster: a role shared by a tenant's environments on two clusters would have its policies narrowed to
 * the last cluster provisioned, breaking the others.
 */
export function iamRoleName(prefix: string, tenant: string, cluster: string, purpose: "launcher" | "workload"): string {
  return boundedName(prefix, tenant, cluster, purpose, 64);
}

/** Inline policy names: `<prefix>-<tenant>.<cluster>-<purpose>`, at most 128 characters. */
export function iamPolicyName(prefix: string, tenant: string, cluster: string, purpose: string): string {
  return boundedName(prefix, tenant, cluster, purpose, 128);
}

/**
 * `<prefix>-<tenant>.<cluster>-<purpose>`. The `.` is in neither a tenant (DNS label) nor an EKS cluster name,
 * so tenant `genomics` on cluster `prod-eu` and tenant `genomics-prod` on cluster `eu` never share a name.
 * When that is longer than `limit`, the tenant and cluster are shortened (each keeps at least half the room,
 * or all it needs) and a hash of both keeps the name unique.
 */
function boundedName(prefix: string, tenant: string, cluster: string, purpose: string, limit: number): string {
  const name = `${prefix}-${tenant}.${cluster}-${purpose}`;
  if (name.length <= limit) return name;
  // "\n" is in neither a tenant nor a cluster name, so distinct pairs hash distinctly.
  const hash = createHash("sha256").update(`${tenant}\n${cluster}`).digest("hex").slice(0, 8);
  const room = Math.max(2, limit - prefix.length - purpose.length - hash.length - 4);
  const tenantRoom = Math.max(1, room - Math.min(cluster.length, Math.floor(room / 2)));
  const clusterRoom = Math.max(1, room - Math.min(tenant.length, tenantRoom));
  return `${prefix}-${tenant.slice(0, tenantRoom)}.${cluster.slice(0, clusterRoom)}-${hash}-${purpose}`;
}

/**
 * The Kubernetes identity a tenant's launcher principal maps to: the Seqera runbook names with the tenant
 * appended. One per tenant because users and groups are cluster-wide: a shared one, bound in every tenant's
 * namespace, would let each tenant's launcher into all the others'. The tenant is a DNS-1123 label of at
 * most 40 characters (the request schema), so these are at most 60 and never start with `system:`.
 */
export function launcherUsername(tenant: string): string {
  return `${LAUNCHER_USERNAME_PREFIX}${checkedTenant(tenant)}`;
}

export function launcherGroup(tenant: string): string {
  return `tower-launcher-role-${checkedTenant(tenant)}`;
}

const LAUNCHER_USERNAME_PREFIX = "tower-launcher-user-";

/** The tenant whose launcher username this is, or undefined for any other username. */
export function tenantOfLauncherUsername(username: unknown): string | undefined {
  return typeof username === "string" && username.startsWith(LAUNCHER_USERNAME_PREFIX)
    ? username.slice(LAUNCHER_USERNAME_PREFIX.length)
    : undefined;
}

/** Names that grant cluster access are never built from anything but a valid tenant (the schema already checks it). */
function checkedTenant(tenant: string): string {
  if (tenant.length > 63 || !DNS1123_LABEL.test(tenant)) {
    throw new InvalidRequest([
      { path: "tenant", message: `${JSON.stringify(tenant)} is not a DNS-1123 label; no Kubernetes identity is made from it` },
    ]);
  }
  return tenant;
}

/** The namespaced Role and ServiceAccount keep the runbook's names: being per namespace, they are per tenant already. */
export const LAUNCHER_ROLE = "tower-launcher-role";
export const NEXTFLOW_CONFIGMAP = "nextflow-config";
