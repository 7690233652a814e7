/**
 * Least privilege, one place: the IAM statements each Lambda needs, derived from the SDK calls its
 * code makes (grep `Command(` in functions/) and scoped to what it touches:
 *  - IAM writes only on `role/<prefix>-*`; CreateRole / PutRolePermissionsBoundary only with the
 *    configured permissions boundary (condition `iam:PermissionsBoundary`).
 *  - EKS actions only on the allowlisted clusters (`cluster/<name>`, `access-entry/<name>/*`,
 *    `podidentityassociation/<name>/*`).
 *  - `iam:PassRole` only where EKS Pod Identity needs it, only for `role/<prefix>-*`, only to EKS Pod Identity.
 *  - No `Resource: "*"` on a write action. The one `*` here is `iam:ListOpenIDConnectProviders`, a
 *    read-only list action IAM does not scope to resources.
 *
 * The steps that talk to Kubernetes share ONE role (KubeStepsRole): the operator then maps a single
 * principal per cluster (one access entry, or one aws-auth line). Only the cluster-access steps call
 * EKS access-entry APIs, but because they also edit `aws-auth` through Kubernetes in CONFIG_MAP mode
 * they must be that same principal; the access-entry actions therefore sit on the shared role, still
 * scoped to the allowlisted clusters. The RBAC, storage and head-job steps need no AWS permission at
 * all: they reach the cluster endpoint from `$.cluster`, authenticated by an STS presigned URL (no
 * permission is needed to presign GetCallerIdentity).
 */
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { DeploymentConfig } from "../functions/lib/config.js";
import type { StepFunctionEntry } from "../functions/steps/catalog.js";

export interface PermissionScope {
  /** `aws`, `aws-cn`, ... (a token in a synthesized stack) */
  partition: string;
  /** The deployment's account: the allowlisted clusters and the created roles live there */
  account: string;
  config: DeploymentConfig;
}

/** The step modules that authenticate to Kubernetes and therefore run as the shared KubeStepsRole. */
export const KUBE_STEP_MODULES: ReadonlySet<string> = new Set(["rbac", "cluster-access", "storage", "head-job"]);

export const POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com";

// ---------------------------------------------------------------- resource ARNs

export function clusterArns({ partition, account, config }: PermissionScope): string[] {
  return config.allowedClusters.map((c) => `arn:${partition}:eks:${c.region}:${account}:cluster/${c.name}`);
}

export function accessEntryArns({ partition, account, config }: PermissionScope): string[] {
  return config.allowedClusters.map((c) => `arn:${partition}:eks:${c.region}:${account}:access-entry/${c.name}/*`);
}

export function podIdentityAssociationArns({ partition, account, config }: PermissionScope): string[] {
  return config.allowedClusters.map((c) => `arn:${partition}:eks:${c.region}:${account}:podidentityassociation/${c.name}/*`);
}

/** Every role the product creates: `<prefix>-<tenant>-launcher`, `<prefix>-<tenant>-workload`. */
export function prefixedRoleArn({ partition, account, config }: PermissionScope): string {
  return `arn:${partition}:iam::${account}:role/${config.iamPrefix}-*`;
}

// ---------------------------------------------------------------- per step

/** ResolveCluster: `eks:DescribeCluster`. */
export function resolveClusterStatements(scope: PermissionScope): PolicyStatement[] {
  return [new PolicyStatement({ sid: "DescribeAllowedClusters", actions: ["eks:DescribeCluster"], resources: clusterArns(scope) })];
}

/** CreateRole and PutRolePermissionsBoundary: only with the boundary when one is configured. */
function boundaryCondition(config: DeploymentConfig): Record<string, Record<string, string>> | undefined {
  return config.permissionsBoundaryArn ? { StringEquals: { "iam:PermissionsBoundary": config.permissionsBoundaryArn } } : undefined;
}

/** CreateIamResources: launcher and workload roles (inline policies only), IRSA provider lookup, Pod Identity. */
export function iamApplyStatements(scope: PermissionScope): PolicyStatement[] {
  const roles = prefixedRoleArn(scope);
  const { partition, account } = scope;
  return [
    new PolicyStatement({
      sid: "CreateProductRoles",
      actions: ["iam:CreateRole", "iam:PutRolePermissionsBoundary"],
      resources: [roles],
      conditions: boundaryCondition(scope.config),
    }),
    new PolicyStatement({
      sid: "ManageProductRoles",
      // TagRole: CreateRole is called with the ownership tags.
      actions: ["iam:TagRole", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:GetRole", "iam:GetRolePolicy"],
      resources: [roles],
    }),
    new PolicyStatement({
      sid: "VerifyGivenLauncherPrincipal",
      // Read-only check that `launcher.principalArn` exists when it is in this account.
      actions: ["iam:GetRole", "iam:GetUser"],
      resources: [`arn:${partition}:iam::${account}:role/*`, `arn:${partition}:iam::${account}:user/*`],
    }),
    new PolicyStatement({
      sid: "FindClusterOidcProvider",
      // A list action: IAM supports no resource scoping for it.
      actions: ["iam:ListOpenIDConnectProviders"],
      resources: ["*"],
    }),
    new PolicyStatement({
      sid: "CreatePodIdentityAssociations",
      actions: ["eks:ListPodIdentityAssociations", "eks:CreatePodIdentityAssociation"],
      resources: clusterArns(scope),
    }),
    new PolicyStatement({
      sid: "ManagePodIdentityAssociations",
      // TagResource: CreatePodIdentityAssociation is called with the ownership tags.
      actions: ["eks:DescribePodIdentityAssociation", "eks:UpdatePodIdentityAssociation", "eks:TagResource"],
      resources: podIdentityAssociationArns(scope),
    }),
    new PolicyStatement({
      sid: "PassWorkloadRoleToPodIdentity",
      actions: ["iam:PassRole"],
      resources: [roles],
      conditions: { StringEquals: { "iam:PassedToService": POD_IDENTITY_SERVICE } },
    }),
  ];
}

/** UndoIamResources: delete the product's roles this run created, and its Pod Identity associations. */
export function iamCompensateStatements(scope: PermissionScope): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: "DeleteProductRoles",
      actions: [
        "iam:GetRole",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:DeleteRolePolicy",
        "iam:DetachRolePolicy",
        "iam:DeleteRole",
      ],
      resources: [prefixedRoleArn(scope)],
    }),
    new PolicyStatement({ sid: "ListPodIdentityAssociations", actions: ["eks:ListPodIdentityAssociations"], resources: clusterArns(scope) }),
    new PolicyStatement({
      sid: "DeletePodIdentityAssociations",
      actions: ["eks:DescribePodIdentityAssociation", "eks:DeletePodIdentityAssociation"],
      resources: podIdentityAssociationArns(scope),
    }),
  ];
}

/**
 * The shared KubeStepsRole: the EKS access-entry calls of GrantClusterAccess / UndoClusterAccess
 * (API and API_AND_CONFIG_MAP clusters). Everything else those steps do goes to the Kubernetes API.
 */
export function kubeStepsStatements(scope: PermissionScope): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: "CreateAccessEntries",
      actions: ["eks:CreateAccessEntry"],
      resources: clusterArns(scope),
    }),
    new PolicyStatement({
      sid: "ManageAccessEntries",
      // TagResource: CreateAccessEntry is called with the ownership tags.
      actions: ["eks:DescribeAccessEntry", "eks:UpdateAccessEntry", "eks:DeleteAccessEntry", "eks:TagResource"],
      resources: accessEntryArns(scope),
    }),
  ];
}

/** Report / ReportFailure: one PutEvents on the product's bus. */
export function reportStatements(eventBusArn: string): PolicyStatement[] {
  return [new PolicyStatement({ sid: "PutEventsOnProductBus", actions: ["events:PutEvents"], resources: [eventBusArn] })];
}

/** POST /provision and the EventBridge entry: start this state machine, read back its executions (idempotency). */
export function startProvisioningStatements(stateMachineArn: string, executionsArn: string): PolicyStatement[] {
  return [
    new PolicyStatement({ sid: "StartProvisioning", actions: ["states:StartExecution"], resources: [stateMachineArn] }),
    new PolicyStatement({ sid: "ReadProvisioningExecutions", actions: ["states:DescribeExecution"], resources: [executionsArn] }),
  ];
}

/** GET /executions/{id}: status and per-step history of this state machine's executions only. */
export function executionStatusStatements(executionsArn: string): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: "ReadProvisioningExecutions",
      actions: ["states:DescribeExecution", "states:GetExecutionHistory"],
      resources: [executionsArn],
    }),
  ];
}

/**
 * The statements of one step Lambda (`<module>.<handler>` from the catalog). A step the table does not
 * know stops the synth, so a new step cannot ship with no permissions, nor inherit someone else's.
 */
export function stepStatements(entry: StepFunctionEntry, scope: PermissionScope, eventBusArn: string): PolicyStatement[] {
  if (KUBE_STEP_MODULES.has(entry.module)) return []; // on the shared KubeStepsRole (kubeStepsStatements)
  switch (`${entry.module}.${entry.handler}`) {
    case "resolve-cluster.apply":
      return resolveClusterStatements(scope);
    case "iam.apply":
      return iamApplyStatements(scope);
    case "iam.compensate":
      return iamCompensateStatements(scope);
    case "report.ready":
    case "report.failed":
      return reportStatements(eventBusArn);
    default:
      throw new Error(
        `stacks/permissions.ts has no permissions for step ${entry.module}.${entry.handler} (${entry.placeholder}); ` +
          `add the statements its SDK calls need, scoped to what it touches`,
      );
  }
}
