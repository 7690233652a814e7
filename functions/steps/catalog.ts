/**
 * One place that names every step Lambda: the ASL placeholder it fills, the module and export that
 * implement it. The stack builds one function per entry, the local runner binds each Task to the same
 * handler, and the ASL tests check the definition against this list.
 */
export interface StepFunctionEntry {
  /** `${Placeholder}` in statemachines/provision.asl.json */
  placeholder: string;
  /** file in functions/steps/ (without extension) */
  module: string;
  /** the exported handler */
  handler: string;
  /** what it does, for the console and the README */
  description: string;
}

export const STEP_FUNCTIONS: StepFunctionEntry[] = [
  { placeholder: "ResolveClusterFunctionArn", module: "resolve-cluster", handler: "apply", description: "Validate the request, check the allowlist, DescribeCluster" },
  { placeholder: "CreateIamResourcesFunctionArn", module: "iam/index", handler: "apply", description: "Launcher role, Fusion workload role and S3 policy, Pod Identity" },
  { placeholder: "UndoIamResourcesFunctionArn", module: "iam/index", handler: "compensate", description: "Delete the IAM resources this run created" },
  { placeholder: "CreateNamespaceAndRbacFunctionArn", module: "rbac", handler: "apply", description: "Namespace, ServiceAccounts, Role, RoleBindings" },
  { placeholder: "UndoNamespaceAndRbacFunctionArn", module: "rbac", handler: "compensate", description: "Delete the Kubernetes objects this run created" },
  { placeholder: "GrantClusterAccessFunctionArn", module: "cluster-access/index", handler: "apply", description: "EKS access entry or aws-auth mapping for the launcher" },
  { placeholder: "UndoClusterAccessFunctionArn", module: "cluster-access/index", handler: "compensate", description: "Remove exactly the entry this run added" },
  { placeholder: "ConfigureStorageFunctionArn", module: "storage", handler: "apply", description: "PVC or Fusion IRSA annotations, nextflow.config ConfigMap" },
  { placeholder: "UndoStorageFunctionArn", module: "storage", handler: "compensate", description: "Delete / un-annotate what this run did" },
  { placeholder: "LaunchHeadJobFunctionArn", module: "head-job", handler: "apply", description: "Create the Nextflow head Job" },
  { placeholder: "CheckHeadJobFunctionArn", module: "head-job", handler: "check", description: "Read the head Job's pod phase" },
  { placeholder: "UndoHeadJobFunctionArn", module: "head-job", handler: "compensate", description: "Delete the Job and its pods" },
  { placeholder: "ReportFunctionArn", module: "report", handler: "ready", description: "Emit ComputeEnvironmentReady" },
  { placeholder: "ReportFailureFunctionArn", module: "report", handler: "failed", description: "Emit ComputeEnvironmentFailed and summarise what failed and what could not be undone" },
];

