/**
 * What GET /executions/{id} shows of each step's result: an allowlist, field by field. A step result carries what
 * its compensator needs, and some of that is nobody else's business (an adopted role's previous policy documents,
 * every tenant's aws-auth mappings), so a field is shown only when it is listed as shown here. Each table is typed
 * over every field of its result type: a field added to a result type without a decision here does not compile, and
 * test/unit/status-result-fields.test.ts checks the same at run time (each result type's fields, read with the
 * TypeScript checker, against its table) and every field of a sample of each result against the tables.
 * A step without a table, or a field without a decision, shows nothing.
 */
import type {
  AccessResult,
  CompensationResult,
  HeadJobResult,
  IamResult,
  NamespaceRemoval,
  RbacResult,
  RemovalOutcome,
  RemovalResult,
  ResolvedCluster,
  StorageResult,
} from "./workflow-state.js";

/** Shown as returned, or withheld (with the reason, for whoever reads this table). */
export type FieldDecision = "shown" | `withheld: ${string}`;
/** A decision for every field of a result type, optional fields included. */
export type FieldPolicy<T> = { [K in keyof Required<T>]: FieldDecision };

const CLUSTER: FieldPolicy<ResolvedCluster> = {
  name: "shown",
  region: "shown",
  arn: "shown",
  accountId: "shown",
  endpoint: "shown",
  certificateAuthority: "shown",
  oidcIssuer: "shown",
  authenticationMode: "shown",
  version: "shown",
};

const IAM: FieldPolicy<IamResult> = {
  launcherArn: "shown",
  launcherKind: "shown",
  launcherCreated: "shown",
  launcherCreateDate: "shown",
  workloadRoleArn: "shown",
  podIdentityAssociationIds: "shown",
  created: "shown",
  changed: "withheld: adopted roles' previous trust and inline policy documents, for the undo only",
  changedAssociations: "shown",
};

const RBAC: FieldPolicy<RbacResult> = {
  namespace: "shown",
  serviceAccount: "shown",
  computeServiceAccount: "shown",
  role: "shown",
  created: "shown",
  adopted: "shown",
};

const ACCESS: FieldPolicy<AccessResult> = {
  method: "shown",
  principalArn: "shown",
  username: "shown",
  groups: "shown",
  created: "shown",
  previousAwsAuth: "withheld: the cluster's whole aws-auth before the edit, every tenant's mappings",
  previousIdentity: "shown",
  replacedStaleEntry: "shown",
};

const STORAGE: FieldPolicy<StorageResult> = {
  type: "shown",
  claimName: "shown",
  mountPath: "shown",
  annotated: "shown",
  configMap: "shown",
  nextflowConfig: "shown",
  created: "shown",
  adopted: "shown",
  grown: "shown",
};

const HEAD_JOB: FieldPolicy<HeadJobResult> = {
  jobName: "shown",
  namespace: "shown",
  phase: "shown",
  done: "shown",
  podName: "shown",
  checks: "shown",
  launchedAt: "shown",
  nextCheckSeconds: "shown",
  imagePullFailingSince: "shown",
  unschedulableSince: "shown",
  paramsConfigMap: "shown",
};

const REMOVAL: FieldPolicy<RemovalResult> = { removed: "shown", kept: "shown" };

const COMPENSATION: FieldPolicy<CompensationResult> = { undone: "shown", kept: "shown", failed: "shown" };

/** Report's result (functions/steps/report.ts): the bus and the ComputeEnvironmentReady detail it published. */
const REPORT: FieldPolicy<{ eventBusName: string; detail: unknown }> = { eventBusName: "shown", detail: "shown" };
/** ReportFailure's result (FailureSummary): the error and the cause the execution fails with. */
const REPORT_FAILURE: FieldPolicy<{ error: string; cause: string }> = { error: "shown", cause: "shown" };

/** WaitForNamespaceRemoval's result (functions/steps/teardown.ts). */
const NAMESPACE_REMOVAL: FieldPolicy<NamespaceRemoval> = { namespace: "shown", gone: "shown" };
/** RecordRemoval's result: the teardown's outcome as the registry records it. */
const REMOVAL_OUTCOME: FieldPolicy<RemovalOutcome> = {
  status: "shown",
  undone: "shown",
  kept: "shown",
  remaining: "shown",
  error: "shown",
  cause: "shown",
};

/** Every Task state of statemachines/provision.asl.json (the step catalog's states), with its result's table. */
export const STEP_RESULT_FIELDS: Readonly<Record<string, Readonly<Record<string, FieldDecision>>>> = {
  ResolveCluster: CLUSTER,
  CreateIamResources: IAM,
  UndoIamResources: COMPENSATION,
  CreateNamespaceAndRbac: RBAC,
  UndoNamespaceAndRbac: COMPENSATION,
  GrantClusterAccess: ACCESS,
  UndoClusterAccess: COMPENSATION,
  ConfigureStorage: STORAGE,
  UndoStorage: COMPENSATION,
  LaunchHeadJob: HEAD_JOB,
  CheckHeadJob: HEAD_JOB,
  UndoHeadJob: COMPENSATION,
  RemoveUnwantedResources: REMOVAL,
  RemoveUnwantedIdentities: REMOVAL,
  Report: REPORT,
  ReportFailure: REPORT_FAILURE,
  // statemachines/deprovision.asl.json: the compensators under their teardown names, and the teardown's own steps.
  RemoveHeadJobs: COMPENSATION,
  RemoveStorage: COMPENSATION,
  RemoveNamespaceAndRbac: COMPENSATION,
  WaitForNamespaceRemoval: NAMESPACE_REMOVAL,
  RemoveClusterAccess: COMPENSATION,
  RemoveIamResources: COMPENSATION,
  RecordRemoval: REMOVAL_OUTCOME,
};

/** A step's result with only the fields its table shows (undefined: nothing to show). */
export function shownResult(step: string, result: unknown): Record<string, unknown> | undefined {
  const fields = STEP_RESULT_FIELDS[step];
  if (!fields || !result || typeof result !== "object" || Array.isArray(result)) return undefined;
  return Object.fromEntries(Object.entries(result).filter(([field]) => fields[field] === "shown"));
}
