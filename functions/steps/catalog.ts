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
    description:
      "Validate the request, refuse clusters and accounts not allowlisted, eks:DescribeCluster (endpoint, CA, OIDC issuer, authentication mode)",
  },
  {
    state: "CreateIamResources",
    module: "iam/index",
    handler: "apply",
    resultKey: "iam",
    description: "Launcher role (or the given principal); Fusion: workload role (IRSA trust or Pod Identity) and S3 policy",
  },
  {
    state: "UndoIamResources",
    module: "iam/index",
    handler: "compensate",
    description:
      "Delete the roles, policies and Pod Identity associations this run created; put back the previous documents of adopted roles and the previous role of adopted Pod Identity associations",
  },
  {
    state: "CreateNamespaceAndRbac",
    module: "rbac",
    handler: "apply",
    resultKey: "rbac",
    description:
      "Namespace, ServiceAccounts, Role tower-launcher-role, RoleBindings to the ServiceAccounts and to User tower-launcher-user-<tenant> (the tenant's own launcher identity)",
  },
  {
    state: "UndoNamespaceAndRbac",
    module: "rbac",
    handler: "compensate",
    description: "Delete the namespace, service accounts, Role and RoleBindings this run created",
  },
  {
    state: "GrantClusterAccess",
    module: "cluster-access/index",
    handler: "apply",
    resultKey: "access",
    description:
      "Map the launcher to username tower-launcher-user-<tenant> and group tower-launcher-role-<tenant> (one Kubernetes identity per tenant): EKS access entry (API modes) or a careful kube-system/aws-auth edit (CONFIG_MAP mode)",
  },
  {
    state: "UndoClusterAccess",
    module: "cluster-access/index",
    handler: "compensate",
    description:
      "Remove the access entry or aws-auth mapping this run added; put back the previous username and groups of an access entry or aws-auth mapping it adopted and changed",
  },
  {
    state: "ConfigureStorage",
    module: "storage",
    handler: "apply",
    resultKey: "storage",
    description: "ReadWriteMany PVC, or Fusion IRSA annotations on the service accounts; the tenant's nextflow.config ConfigMap",
  },
  {
    state: "UndoStorage",
    module: "storage",
    handler: "compensate",
    description:
      "Delete the PVC and ConfigMap this run created; restore the service account annotations and the ConfigMap content it changed",
  },
  {
    state: "LaunchHeadJob",
    module: "head-job",
    handler: "apply",
    resultKey: "headJob",
    description:
      "Create the head job's params ConfigMap, then the Nextflow head Job (argv array, params file and nextflow.config mounted from ConfigMaps, SA tower-launcher-sa, CPU/memory requests and limits)",
  },
  {
    state: "CheckHeadJob",
    module: "head-job",
    handler: "check",
    resultKey: "headJob",
    description: "Read the head Job's pod phase and set the next pause",
  },
  {
    state: "UndoHeadJob",
    module: "head-job",
    handler: "compensate",
    description: "Delete the head Job, its pods and its params ConfigMap (found by ownership marks; nothing when no job was launched)",
  },
  {
    state: "RemoveUnwantedResources",
    module: "remove-unwanted",
    handler: "apply",
    resultKey: "removed",
    description:
      "Update runs only: delete what the previous generation owned that the new spec no longer wants (objects that carry the tenant's ownership marks; a namespace only when nothing foreign is inside)",
  },
  {
    state: "RemoveUnwantedIdentities",
    module: "remove-unwanted-identities",
    handler: "apply",
    resultKey: "removedIdentities",
    description:
      "Update runs only, after RemoveUnwantedResources: delete the product's IAM roles and Pod Identity associations the new spec no longer uses (tagged as the tenant's; roles on the product's path)",
  },
  {
    state: "Report",
    module: "report",
    handler: "ready",
    resultKey: "report",
    description: "Emit ComputeEnvironmentReady on the event bus with the namespace, service accounts, role ARNs, claim and nextflow.config",
  },
  {
    state: "ReportFailure",
    module: "report",
    handler: "failed",
    resultKey: "failure",
    description: "Emit ComputeEnvironmentFailed; returns {error, cause}: the original error and what was (and could not be) undone",
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
    description:
      "Record the outcome in the registry and release the lease (one conditional write): removed, or failed with exactly what remains",
  },
];

export const DEPROVISION_STEP_FUNCTIONS: StepFunctionEntry[] = DEPROVISION_STEPS.map((step) => ({
  ...step,
  placeholder: placeholderOf(step.state),
}));

/** Every step Lambda of both workflows: one function each in the stack, one handler each in the local runner. */
export const ALL_STEP_FUNCTIONS: StepFunctionEntry[] = [...STEP_FUNCTIONS, ...DEPROVISION_STEP_FUNCTIONS];
