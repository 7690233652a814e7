/**
 * The shape of the workflow's state as it flows through `statemachines/provision.asl.json`.
 * Each step receives the whole state and returns its own result, which the state machine stores
 * at `$.<key>` (ResultPath). Compensators receive the whole state (with `$.error`) and find what
 * their step created by its marks, so they also work when the step failed half-way and returned nothing.
 */
import type { ResolvedCluster } from "../domain/cluster.js";
import type { ProvisionRequestInput } from "../domain/request.js";
import type { EnvironmentStatus } from "./environment-registry.js";

export type { AuthenticationMode, ResolvedCluster } from "../domain/cluster.js";

export interface ExecutionRef {
  /** `$$.Execution.Name` */
  name: string;
  /** `$$.Execution.Id`: the execution ARN. */
  id: string;
  /** `$$.Execution.StartTime` (ISO 8601): with the name, what the run mark is made of (naming.ts runMark). */
  startTime: string;
}

/** CreateIamResources → `$.iam` */
export interface IamResult {
  launcherArn: string;
  launcherKind: "role" | "user";
  /** true when this run created the launcher role (false: given by the request, or adopted) */
  launcherCreated: boolean;
  /**
   * The launcher role's IAM CreateDate (ISO, whole seconds as IAM gives it) when IAM shows it (a role of the
   * cluster's account): GrantClusterAccess replaces an access entry made before it (made for an earlier role of
   * the same ARN, which EKS no longer honours).
   */
  launcherCreateDate?: string;
  /** Fusion: the workload role the head/compute service accounts assume */
  workloadRoleArn?: string;
  /** Fusion with podIdentity: association ids created for the service accounts */
  podIdentityAssociationIds?: string[];
  /** What this run created (role/policy ARNs, association ids), for the operator and the compensator */
  created: string[];
  /** Adopted roles whose documents this run replaced, with the previous ones (the compensator puts them back) */
  changed?: IamRoleChange[];
  /** Adopted Pod Identity associations this run pointed at another role, with the previous role */
  changedAssociations?: PodIdentityAssociationChange[];
}

/** The documents of an adopted role before this run replaced them; only what this run changed is present. */
export interface IamRoleChange {
  roleName: string;
  /** The trust policy (JSON text) */
  previousTrustPolicy?: string;
  /** The trust policy this run wrote (JSON text): the previous one is put back only while the role's is still this one */
  writtenTrustPolicy?: string;
  /** The inline policy of that name (JSON text); no document: the role had no such policy */
  previousInlinePolicy?: { name: string; document?: string };
  /** The inline policy this run wrote (JSON text): the previous one is put back only while the role's is still this one */
  writtenInlinePolicy?: string;
  /** The permissions boundary; no arn: the role had none */
  previousBoundary?: { arn?: string };
}

export interface PodIdentityAssociationChange {
  associationId: string;
  previousRoleArn: string;
  /** The role this run pointed it at: the previous role is put back only while the association still has this one */
  roleArn?: string;
}

export interface KubeRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** CreateNamespaceAndRbac → `$.rbac` */
export interface RbacResult {
  namespace: string;
  serviceAccount: string;
  computeServiceAccount?: string;
  role: string;
  /** Objects this run created (not the adopted ones) */
  created: KubeRef[];
  adopted: KubeRef[];
}

/** GrantClusterAccess → `$.access` */
export interface AccessResult {
  method: "access-entry" | "aws-auth";
  principalArn: string;
  username: string;
  groups: string[];
  /** true when this run added the entry (false: it was already there, ours) */
  created: boolean;
  /** aws-auth: the ConfigMap's data before this run's edit (kept here only; left out when too large for a state) */
  previousAwsAuth?: Record<string, string>;
  /** access entry: the username and groups of an adopted entry before this run changed them (the undo puts them back) */
  previousIdentity?: { username?: string; groups: string[] };
  /**
   * access entry: an entry of ours made before the launcher role's CreateDate (for a deleted and recreated role of
   * the same ARN, which EKS no longer honours) was deleted and made again; its creation time is given here
   */
  replacedStaleEntry?: { createdAt: string };
}

/** ConfigureStorage → `$.storage` */
export interface StorageResult {
  type: "pvc" | "fusion";
  claimName?: string;
  mountPath?: string;
  /** Fusion (IRSA): service accounts this run annotated, with the annotation value before (absent = none) */
  annotated: Array<{ serviceAccount: string; previous?: string }>;
  configMap: string;
  nextflowConfig: string;
  created: KubeRef[];
  /** Objects that were there already, ours for this tenant (an update's claim and ConfigMap): owned as much as the created ones */
  adopted?: KubeRef[];
  /** Claims this run grew (an update): a claim cannot shrink, so a growth is never undone */
  grown?: ClaimGrowth[];
}

export interface ClaimGrowth {
  claim: string;
  namespace: string;
  from: string;
  to: string;
}

/**
 * An update run's input beside the request (PUT /environments/...): the generation it replaces, as the registry
 * recorded it. RemoveUnwantedResources removes what `previous.owned` lists and the new run does not own; a failed update
 * records `previous` back as the desired generation.
 */
export interface UpdateContext {
  previous: { spec: Record<string, unknown>; generation: number; owned: Record<string, unknown> };
  /** the generation this run converges to */
  generation: number;
}

/**
 * A re-run's input beside the request (the recorded spec again, through POST /provision or /environments, or a
 * reconcile): the record as it was before this run took the lease. Its compensation undoes only what this run created,
 * so the environment is still what the record said: a failed re-run puts that back (status, owned, spec, generation) and
 * keeps its own failure on the record (`lastFailure`). Absent for a create, and where the record owned nothing.
 */
export interface RerunContext {
  previous: { spec: Record<string, unknown>; generation: number; status: EnvironmentStatus; owned: Record<string, unknown> };
}

/** RemoveUnwantedResources → `$.removed`; RemoveUnwantedIdentities → `$.removedIdentities` */
export interface RemovalResult {
  /** What was deleted, one line each (cannot be undone) */
  removed: string[];
  /** What the previous generation owned and the new one does not want, left in place, with the reason */
  kept: string[];
}

/** LaunchHeadJob / CheckHeadJob → `$.headJob` */
export interface HeadJobResult {
  jobName: string;
  namespace: string;
  /** Pending | Running | Succeeded | Failed */
  phase: "Pending" | "Running" | "Succeeded" | "Failed";
  /** true when the state machine should stop waiting */
  done: boolean;
  podName?: string;
  checks: number;
  /** When LaunchHeadJob launched it (ISO 8601; or the first check's time): the timeout counts from here. */
  launchedAt: string;
  /** Seconds the workflow's Wait pauses before the next check (WaitForHeadJob's SecondsPath): grows, capped. */
  nextCheckSeconds: number;
  /** The head pod's image could not be pulled since this check (ISO 8601); cleared once it pulls. */
  imagePullFailingSince?: string;
  /** The head pod has been Unschedulable since this check (ISO 8601); cleared once it is scheduled. */
  unschedulableSince?: string;
  /** The per-job ConfigMap holding params.json */
  paramsConfigMap?: string;
}

/** WaitForNamespaceRemoval → `$.namespaceRemoval` (deprovision.asl.json) */
export interface NamespaceRemoval {
  namespace: string;
  /** false: the namespace is still there and not being deleted (kept on purpose: RemoveNamespaceAndRbac says why) */
  gone: boolean;
}

/** RecordRemoval → `$.outcome` (deprovision.asl.json) */
export interface RemovalOutcome {
  status: "removed" | "failed";
  undone: string[];
  kept: string[];
  /** What could not be removed, each with why */
  remaining: string[];
  /** A failed teardown: the execution's error and cause */
  error?: string;
  cause?: string;
}

/** Step Functions' Catch output at `$.error` */
export interface CaughtError {
  Error: string;
  Cause?: string;
}

/**
 * A teardown (statemachines/deprovision.asl.json): the environment and what its record says the product owns there.
 * Its presence turns the compensators' claim from this run's work into the tenant's (kube-step.ts claimOf).
 */
export interface RemovalScope {
  environment: { tenant: string; region: string; cluster: string };
  owned: Record<string, unknown>;
}

/** What a compensator returns (stored at `$.compensation.<step>`); the contract it keeps: compensation.ts. */
export interface CompensationResult {
  /** What was deleted or put back, one line each (e.g. "Namespace tower-nf", "ConfigMap tower-nf/nextflow-config (restored the previous content)"). */
  undone: string[];
  /** Things deliberately left alone, with the reason (e.g. "Namespace tower-nf: not created by this run"). */
  kept: string[];
  /** What the compensator tried to undo and could not, with the reason; absent when nothing failed. ReportFailure lists it under "Could not undo". */
  failed?: string[];
}

export interface WorkflowState {
  request: ProvisionRequestInput;
  execution: ExecutionRef;
  cluster?: ResolvedCluster;
  iam?: IamResult;
  rbac?: RbacResult;
  access?: AccessResult;
  storage?: StorageResult;
  headJob?: HeadJobResult;
  /** Update runs only (from the execution input) */
  update?: UpdateContext;
  /** Re-runs of an environment that owns something (from the execution input) */
  rerun?: RerunContext;
  removed?: RemovalResult;
  /** RemoveUnwantedIdentities → `$.removedIdentities` (update runs) */
  removedIdentities?: RemovalResult;
  error?: CaughtError;
  /** The step whose failure `$.error` is, when the state machine knows it (a failed Parallel branch records its Task's name) */
  failedStep?: string;
  compensation?: Record<string, CompensationResult | CaughtError>;
  removal?: RemovalScope;
  /** WaitForNamespaceRemoval's result (deprovision.asl.json) */
  namespaceRemoval?: NamespaceRemoval;
}
