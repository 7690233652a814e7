/**
 * One place that names every step Lambda: the Task state it runs as (the name the console shows, the
 * step's log key and metric dimension), the ASL placeholder it fills, where it stores its result, and the
 * module and export that implement it. The stack builds one function per entry, the local runner binds
 * each Task to the same handler, ReportFailure takes the run order from it, and test/unit/step-catalog.test.ts
 * checks the ASL, each step's `stepHandler("<state>", …)` and the README's table against it.
 */
import type { WorkflowState } from "../lib/workflow/workflow-state.js";

export interface StepFunctionEntry {
  /** The Task state in statemachines/provision.asl.json, also the name given to `stepHandler` */
  state: string;
  /** `${Placeholder}` in statemachines/provision.asl.json: always `<state>FunctionArn` */
  placeholder: string;
  /** file in functions/steps/ (without extension) */
  module: string;
  /** the exported handler */
  handler: string;
  /**
   * Where the state machine stores the result (`ResultPath: $.<resultKey>`); a compensator's goes to
   * `$.compensation.<state>` instead.
   */
  resultKey?: keyof WorkflowState | "report" | "failure" | "outcome";
  /** what it does, for the console and the README */
  description: string;
}

type CatalogLine = Omit<StepFunctionEntry, "placeholder">;

/** In run order: the steps that build the environment first, each followed by its compensator. */
const STEPS: CatalogLine[] = [
  {
    state: "ResolveCluster",
    module: "resolve-cluster",
    handler: "apply",
    resultKey: "cluster",
    description: "Validate the request, check the allowlist, DescribeCluster",
  },
  {
    state: "CreateIamResources",
    module: "iam/index",
    handler: "apply",
    resultKey: "iam",
    description: "Launcher role, Fusion workload role and S3 policy, Pod Identity",
  },
  {
    state: "UndoIamResources",
    module: "iam/index",
    handler: "compensate",
    description:
      "Delete the IAM resources this run created; put back the previous documents of adopted roles and the previous role of adopted Pod Identity associations",
  },
  {
    state: "CreateNamespaceAndRbac",
    module: "rbac",
    handler: "apply",
    resultKey: "rbac",
    description: "Namespace, ServiceAccounts, Role, RoleBindings",
  },
  { state: "UndoNamespaceAndRbac", module: "rbac", handler: "compensate", description: "Delete the Kubernetes objects this run created" },
  {
    state: "GrantClusterAccess",
    module: "cluster-access/index",
    handler: "apply",
    resultKey: "access",
    description: "EKS access entry or aws-auth mapping for the launcher",
  },
  {
    state: "UndoClusterAccess",
    module: "cluster-access/index",
    handler: "compensate",
    description: "Remove exactly the entry this run added",
  },
  {
    state: "ConfigureStorage",
    module: "storage",
    handler: "apply",
    resultKey: "storage",
    description: "PVC or Fusion IRSA annotations, nextflow.config ConfigMap",
  },
  { state: "UndoStorage", module: "storage", handler: "compensate", description: "Delete / un-annotate what this run did" },
  { state: "LaunchHeadJob", module: "head-job", handler: "apply", resultKey: "headJob", description: "Create the Nextflow head Job" },
  { state: "CheckHeadJob", module: "head-job", handler: "check", resultKey: "headJob", description: "Read the head Job's pod phase" },
  { state: "UndoHeadJob", module: "head-job", handler: "compensate", description: "Delete the Job, its pods and its params ConfigMap" },
  {
    state: "RemoveUnwantedResources",
    module: "remove-unwanted",
    handler: "apply",
    resultKey: "removed",
    description: "Update runs only, last: delete what the previous generation owned and the new spec no longer wants",
  },
  {
    state: "RemoveUnwantedIdentities",
    module: "remove-unwanted-identities",
    handler: "apply",
    resultKey: "removedIdentities",
    description:
      "Update runs only, after RemoveUnwantedResources: delete the product's roles and Pod Identity associations the new spec no longer uses",
  },
  { state: "Report", module: "report", handler: "ready", resultKey: "report", description: "Emit ComputeEnvironmentReady" },
  {
    state: "ReportFailure",
    module: "report",
    handler: "failed",
    resultKey: "failure",
    description: "Emit ComputeEnvironmentFailed and summarise what failed and what could not be undone",
  },
];

/** The placeholder the ASL writes for a step's function ARN. */
export function placeholderOf(state: string): string {
  return `${state}FunctionArn`;
}

export const STEP_FUNCTIONS: StepFunctionEntry[] = STEPS.map((step) => ({ ...step, placeholder: placeholderOf(step.state) }));

/**
 * The teardown's own Lambdas (statemachines/deprovision.asl.json). Its other Tasks run the provisioning workflow's
 * compensators (`Undo*`) and ResolveCluster, each under its own placeholder: a teardown is "undo everything the
 * product owns there", the same code with the tenant's claim instead of one run's (workflow/compensation.ts claimOf).
 */
const DEPROVISION_STEPS: CatalogLine[] = [
  {
    state: "WaitForNamespaceRemoval",
    module: "namespace-removal",
    handler: "check",
    description: "Wait until the deleted namespace is gone; name the finalizers and conditions that hold it",
  },
  {
    state: "RecordRemoval",
    module: "teardown-record",
    handler: "record",
    resultKey: "outcome",
    description: "Record removed (or failed, with what remains) in the registry and release the lease",
  },
];

export const DEPROVISION_STEP_FUNCTIONS: StepFunctionEntry[] = DEPROVISION_STEPS.map((step) => ({
  ...step,
  placeholder: placeholderOf(step.state),
}));

/** Every step Lambda of both workflows: one function each in the stack, one handler each in the local runner. */
export const ALL_STEP_FUNCTIONS: StepFunctionEntry[] = [...STEP_FUNCTIONS, ...DEPROVISION_STEP_FUNCTIONS];
