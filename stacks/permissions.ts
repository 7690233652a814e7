/**
 * Least privilege, one place: the IAM statements each Lambda needs, derived from the SDK calls its
 * code makes (test/infra/sdk-calls.ts finds them; test/infra/stack-wiring.test.ts holds each Lambda to them) and
 * scoped to what it touches:
 *  - IAM role writes only under the product's own IAM path, `role/nf-eks-provisioner/<prefix>-*`: a path is set
 *    when a role is created and cannot change, so no role the product did not create is within reach, whatever
 *    its name or tags. Writes to an existing role also need the product's mark
 *    (`aws:ResourceTag/app.kubernetes.io/managed-by` = nf-eks-provisioner); CreateRole needs the request to put it.
 *  - Every write that can change what a role may do (CreateRole, PutRolePermissionsBoundary, PutRolePolicy,
 *    DeleteRolePolicy, DetachRolePolicy) requires the one tenant-role boundary (`iam:PermissionsBoundary`): the
 *    operator's, or the stack's own when the operator names none, never both. DeleteRolePermissionsBoundary is
 *    explicitly denied. IAM supplies no boundary key for UpdateAssumeRolePolicy, TagRole and DeleteRole: the
 *    path (and, for TagRole, `aws:TagKeys` limited to the product's keys) is their guard.
 *  - EKS actions only on the allowlisted clusters (`cluster/<name>`, `access-entry/<name>/*`,
 *    `podidentityassociation/<name>/*`); updates and deletes only of marked entries and associations,
 *    creates only with the mark.
 *  - `iam:PassRole` only where EKS Pod Identity needs it, only for the product's roles, only to EKS Pod Identity.
 *  - No `Resource: "*"` on an allowed write action. The one allowed `*` here is `iam:ListOpenIDConnectProviders`,
 *    a read-only list action IAM does not scope to resources.
 * Reads (Get/Describe/List) carry no ownership condition: the steps must see an object that is not theirs
 * to report an OwnershipConflict instead of failing with AccessDenied.
 *
 * The steps that talk to Kubernetes share ONE role (KubeStepsRole): the operator then maps a single
 * principal per cluster (one access entry, or one aws-auth line). Only the cluster-access steps call
 * EKS access-entry APIs, but because they also edit `aws-auth` through Kubernetes in CONFIG_MAP mode
 * they must be that same principal; the access-entry actions therefore sit on the shared role, still
 * scoped to the allowlisted clusters. The RBAC, storage and head-job steps need no AWS permission at
 * all: they reach the cluster endpoint from `$.cluster`, authenticated by an STS presigned URL (no
 * permission is needed to presign GetCallerIdentity).
 */
import { POD_IDENTITY_SERVICE_PRINCIPAL } from "../functions/lib/domain/policies.js";
import type { DeploymentConfig } from "../functions/lib/domain/deploy-config.js";
import { tenantRoleBoundary } from "../functions/lib/domain/deploy-config.js";
import { IAM_ROLE_PATH, OWNERSHIP_TAG_KEYS, PRODUCT, TAG_MANAGED_BY } from "../functions/lib/domain/naming.js";
import type { StepFunctionEntry } from "../functions/steps/catalog.js";

export interface PermissionScope {
  /** `aws`, `aws-cn`, ... (a token in a synthesized stack) */
  partition: string;
  /** The deployment's account: the allowlisted clusters and the created roles live there */
  account: string;
  /** With `permissionsBoundaryArn` the one tenant-role boundary (the operator's, or the stack's own) */
  config: DeploymentConfig;
}

/** The step modules that authenticate to Kubernetes and therefore run as the shared KubeStepsRole. */
export const KUBE_STEP_MODULES: ReadonlySet<string> = new Set([
  "rbac",
  "cluster-access/index",
  "storage",
  "head-job",
  "remove-unwanted",
  "namespace-removal",
]);

// ---------------------------------------------------------------- plain statements

/**
 * One IAM policy statement as plain JSON, as it appears in a policy document. This module builds only these (no
 * aws-cdk-lib here: the sandbox imports it at `npm start` to give each step its role); stacks/Provisioner.ts
 * turns them into CDK PolicyStatements.
 */
export interface PolicyStatementJson {
  Sid: string;
  Effect: "Allow" | "Deny";
  Action: string[];
  Resource: string[];
  Condition?: Conditions;
}

/** A policy document holding `statements`, as IAM stores it. */
export function policyDocument(statements: PolicyStatementJson[]): { Version: "2012-10-17"; Statement: PolicyStatementJson[] } {
  return { Version: "2012-10-17", Statement: statements };
}

function statement(props: {
  sid: string;
  effect?: "Allow" | "Deny";
  actions: string[];
  resources: string[];
  conditions?: Conditions;
}): PolicyStatementJson {
  return {
    Sid: props.sid,
    Effect: props.effect ?? "Allow",
    Action: [...props.actions],
    Resource: [...props.resources],
    ...(props.conditions ? { Condition: props.conditions } : {}),
  };
}

// ---------------------------------------------------------------- resource ARNs

/** `arn:<partition>:eks:<region>:<account>:<type>/<cluster><suffix>` for each allowlisted cluster. */
function eksArns({ partition, account, config }: PermissionScope, type: string, suffix = ""): string[] {
  return config.allowedClusters.map((c) => `arn:${partition}:eks:${c.region}:${account}:${type}/${c.name}${suffix}`);
}

export function clusterArns(scope: PermissionScope): string[] {
  return eksArns(scope, "cluster");
}

function accessEntryArns(scope: PermissionScope): string[] {
  return eksArns(scope, "access-entry", "/*");
}

export function podIdentityAssociationArns(scope: PermissionScope): string[] {
  return eksArns(scope, "podidentityassociation", "/*");
}

/** Every role the product creates, `<prefix>-<tenant>.<cluster>-<purpose>`, under the product's IAM path. */
export function prefixedRoleArn({ partition, account, config }: PermissionScope): string {
  return `arn:${partition}:iam::${account}:role${IAM_ROLE_PATH}${config.iamPrefix}-*`;
}

/** Any role of the account, whatever its path: only for reads by name (GetRole), never for a write. */
function anyRoleArn({ partition, account }: PermissionScope): string {
  return `arn:${partition}:iam::${account}:role/*`;
}

// ---------------------------------------------------------------- conditions

type Conditions = Record<string, Record<string, string | string[]>>;

/** Condition key: the resource already carries the product's mark. */
export const RESOURCE_MARK_KEY = `aws:ResourceTag/${TAG_MANAGED_BY}`;
/** Condition key: the request puts the product's mark on what it creates. */
export const REQUEST_MARK_KEY = `aws:RequestTag/${TAG_MANAGED_BY}`;
/** The tag keys the product writes: a tagging call may set these and no others. */
export { OWNERSHIP_TAG_KEYS };

/** `StringEquals` on every key given, plus any further operators (all must hold). */
function allOf(equals: Record<string, string | undefined>, more: Conditions = {}): Conditions {
  const defined = Object.fromEntries(Object.entries(equals).filter((entry): entry is [string, string] => entry[1] !== undefined));
  return { StringEquals: defined, ...more };
}

/** Only with the one tenant-role boundary (the synth stops if there is none: no role may be left unbounded). */
function boundaryOf(config: DeploymentConfig): Record<string, string | undefined> {
  return { "iam:PermissionsBoundary": tenantRoleBoundary(config) };
}

/** Writes to something that already exists: only when it carries the product's mark (and, given a config, its boundary). */
function ownedOnly(boundaryFrom?: DeploymentConfig): Conditions {
  return allOf({ [RESOURCE_MARK_KEY]: PRODUCT, ...(boundaryFrom ? boundaryOf(boundaryFrom) : {}) });
}

/** Creates: only when the request marks the new object as the product's (and, given a config, sets its boundary). */
function markedAtCreation(boundaryFrom?: DeploymentConfig): Conditions {
  return allOf({ [REQUEST_MARK_KEY]: PRODUCT, ...(boundaryFrom ? boundaryOf(boundaryFrom) : {}) });
}

/**
 * Tagging, which IAM and EKS authorize separately when a create call carries tags: the new object has no tags
 * yet, so the mark must be in the request, and only the product's own tag keys may be written.
 */
function taggingAtCreation(): Conditions {
  return allOf({ [REQUEST_MARK_KEY]: PRODUCT }, { "ForAllValues:StringEquals": { "aws:TagKeys": [...OWNERSHIP_TAG_KEYS] } });
}

// ---------------------------------------------------------------- per step

/** ResolveCluster: `eks:DescribeCluster`. */
export function resolveClusterStatements(scope: PermissionScope): PolicyStatementJson[] {
  return [statement({ sid: "DescribeAllowedClusters", actions: ["eks:DescribeCluster"], resources: clusterArns(scope) })];
}

/**
 * Role names are unique in the account whatever the path: GetRole by name must see a same-named role elsewhere,
 * so the step reports an OwnershipConflict naming its path (instead of AccessDenied).
 */
function findRolesByNameStatement(scope: PermissionScope): PolicyStatementJson {
  return statement({ sid: "FindRolesByName", actions: ["iam:GetRole"], resources: [anyRoleArn(scope)] });
}

/** Never, on any role: a boundary, once set, stays (DeleteRolePermissionsBoundary would leave a role unbounded). */
function keepBoundariesStatement(): PolicyStatementJson {
  return statement({
    sid: "NeverRemoveABoundary",
    effect: "Deny",
    actions: ["iam:DeleteRolePermissionsBoundary"],
    resources: ["*"],
  });
}

/** Read the product's roles (ownership is decided by the step from their tags). */
function readProductRolesStatement(scope: PermissionScope, actions: string[]): PolicyStatementJson {
  return statement({ sid: "ReadProductRoles", actions, resources: [prefixedRoleArn(scope)] });
}

/** Hand a product role (under the product's path) to EKS Pod Identity (CreatePodIdentityAssociation / UpdatePodIdentityAssociation). */
function passOwnedRoleToPodIdentity(scope: PermissionScope): PolicyStatementJson {
  return statement({
    sid: "PassOwnedRolesToPodIdentity",
    actions: ["iam:PassRole"],
    resources: [prefixedRoleArn(scope)],
    // Only the service condition: IAM does not evaluate aws:ResourceTag for iam:PassRole (IAM User Guide,
    // "Granting a user permissions to pass a role"), so a tag condition here would deny every pass.
    conditions: allOf({ "iam:PassedToService": POD_IDENTITY_SERVICE_PRINCIPAL }),
  });
}

/**
 * CreateIamResources: launcher and workload roles (inline policies only), IRSA provider lookup, Pod Identity.
 * An adopted role (ours, for this tenant) is brought to the desired documents; when the step fails it puts back
 * what it changed, hence DeleteRolePolicy here too.
 */
export function iamApplyStatements(scope: PermissionScope): PolicyStatementJson[] {
  const roles = prefixedRoleArn(scope);
  const { partition, account, config } = scope;
  return [
    readProductRolesStatement(scope, ["iam:GetRole", "iam:GetRolePolicy"]),
    statement({ sid: "CreateMarkedProductRoles", actions: ["iam:CreateRole"], resources: [roles], conditions: markedAtCreation(config) }),
    // CreateRole is called with the ownership tags, which IAM authorizes as iam:TagRole on the new role.
    statement({ sid: "TagProductRolesAtCreation", actions: ["iam:TagRole"], resources: [roles], conditions: taggingAtCreation() }),
    statement({
      sid: "ManageOwnedProductRoles",
      actions: ["iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
      resources: [roles],
      conditions: ownedOnly(config),
    }),
    // IAM does not supply iam:PermissionsBoundary for UpdateAssumeRolePolicy (a boundary condition would deny
    // it always): the path and the mark. A trust policy grants no permissions; the boundary still caps the role.
    statement({ sid: "UpdateOwnedProductRoleTrust", actions: ["iam:UpdateAssumeRolePolicy"], resources: [roles], conditions: ownedOnly() }),
    findRolesByNameStatement(scope),
    // Read-only check that `launcher.principalArn` exists when it is a user of this account (a role: FindRolesByName).
    statement({
      sid: "VerifyGivenLauncherUser",
      actions: ["iam:GetUser"],
      resources: [`arn:${partition}:iam::${account}:user/*`],
    }),
    statement({
      sid: "FindClusterOidcProvider",
      // A list action: IAM supports no resource scoping for it.
      actions: ["iam:ListOpenIDConnectProviders"],
      resources: ["*"],
    }),
    statement({ sid: "ListPodIdentityAssociations", actions: ["eks:ListPodIdentityAssociations"], resources: clusterArns(scope) }),
    statement({
      sid: "CreateMarkedPodIdentityAssociations",
      actions: ["eks:CreatePodIdentityAssociation"],
      resources: clusterArns(scope),
      conditions: markedAtCreation(),
    }),
    // CreatePodIdentityAssociation is called with the ownership tags: eks:TagResource on the new association.
    statement({
      sid: "TagPodIdentityAssociationsAtCreation",
      actions: ["eks:TagResource"],
      resources: podIdentityAssociationArns(scope),
      conditions: taggingAtCreation(),
    }),
    statement({
      sid: "ReadPodIdentityAssociations",
      actions: ["eks:DescribePodIdentityAssociation"],
      resources: podIdentityAssociationArns(scope),
    }),
    statement({
      sid: "UpdateOwnedPodIdentityAssociations",
      actions: ["eks:UpdatePodIdentityAssociation"],
      resources: podIdentityAssociationArns(scope),
      conditions: ownedOnly(),
    }),
    passOwnedRoleToPodIdentity(scope),
    keepBoundariesStatement(),
  ];
}

/**
 * UndoIamResources: delete the product's roles and Pod Identity associations this run created, and put back
 * what it changed on adopted ones (inline policy, trust policy, an association's role).
 */
export function iamCompensateStatements(scope: PermissionScope): PolicyStatementJson[] {
  const roles = prefixedRoleArn(scope);
  return [
    readProductRolesStatement(scope, ["iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"]),
    findRolesByNameStatement(scope),
    statement({
      sid: "RestoreOrEmptyOwnedProductRoles",
      actions: ["iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:DetachRolePolicy"],
      resources: [roles],
      conditions: ownedOnly(scope.config),
    }),
    statement({
      sid: "RestoreOwnedProductRoleTrust",
      actions: ["iam:UpdateAssumeRolePolicy"],
      resources: [roles],
      conditions: ownedOnly(),
    }),
    statement({ sid: "DeleteOwnedProductRoles", actions: ["iam:DeleteRole"], resources: [roles], conditions: ownedOnly() }),
    statement({ sid: "ListPodIdentityAssociations", actions: ["eks:ListPodIdentityAssociations"], resources: clusterArns(scope) }),
    statement({
      sid: "ReadPodIdentityAssociations",
      actions: ["eks:DescribePodIdentityAssociation"],
      resources: podIdentityAssociationArns(scope),
    }),
    statement({
      sid: "RestoreOrDeleteOwnedPodIdentityAssociations",
      actions: ["eks:UpdatePodIdentityAssociation", "eks:DeletePodIdentityAssociation"],
      resources: podIdentityAssociationArns(scope),
      conditions: ownedOnly(),
    }),
    passOwnedRoleToPodIdentity(scope),
    keepBoundariesStatement(),
  ];
}

/**
 * RemoveUnwantedIdentities (update runs): delete the product's roles (on its path, marked as owned) and Pod Identity
 * associations (marked) the new generation no longer uses. Reads and deletes only: no restore, no creation.
 */
export function removeUnwantedIdentitiesStatements(scope: PermissionScope): PolicyStatementJson[] {
  const roles = prefixedRoleArn(scope);
  return [
    readProductRolesStatement(scope, ["iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"]),
    statement({
      sid: "EmptyOwnedProductRoles",
      actions: ["iam:DeleteRolePolicy", "iam:DetachRolePolicy"],
      resources: [roles],
      conditions: ownedOnly(scope.config),
    }),
    statement({ sid: "DeleteOwnedProductRoles", actions: ["iam:DeleteRole"], resources: [roles], conditions: ownedOnly() }),
    statement({
      sid: "ReadPodIdentityAssociations",
      actions: ["eks:DescribePodIdentityAssociation"],
      resources: podIdentityAssociationArns(scope),
    }),
    statement({
      sid: "DeleteOwnedPodIdentityAssociations",
      actions: ["eks:DeletePodIdentityAssociation"],
      resources: podIdentityAssociationArns(scope),
      conditions: ownedOnly(),
    }),
  ];
}

/**
 * The shared KubeStepsRole: the EKS access-entry calls of GrantClusterAccess / UndoClusterAccess
 * (API and API_AND_CONFIG_MAP clusters). Everything else those steps do goes to the Kubernetes API.
 */
export function kubeStepsStatements(scope: PermissionScope): PolicyStatementJson[] {
  return [
    statement({
      sid: "CreateMarkedAccessEntries",
      actions: ["eks:CreateAccessEntry"],
      resources: clusterArns(scope),
      conditions: markedAtCreation(),
    }),
    // CreateAccessEntry is called with the ownership tags: eks:TagResource on the new entry.
    statement({
      sid: "TagAccessEntriesAtCreation",
      actions: ["eks:TagResource"],
      resources: accessEntryArns(scope),
      conditions: taggingAtCreation(),
    }),
    statement({ sid: "ReadAccessEntries", actions: ["eks:DescribeAccessEntry"], resources: accessEntryArns(scope) }),
    // A teardown looks for every entry tagged as the tenant's (an update leaves an earlier launcher's entry to it).
    statement({ sid: "ListAccessEntries", actions: ["eks:ListAccessEntries"], resources: clusterArns(scope) }),
    statement({
      sid: "UpdateOrDeleteOwnedAccessEntries",
      actions: ["eks:UpdateAccessEntry", "eks:DeleteAccessEntry"],
      resources: accessEntryArns(scope),
      conditions: ownedOnly(),
    }),
  ];
}

/** Report / ReportFailure: one PutEvents on the product's bus. */
export function reportStatements(eventBusArn: string): PolicyStatementJson[] {
  return [statement({ sid: "PutEventsOnProductBus", actions: ["events:PutEvents"], resources: [eventBusArn] })];
}

/**
 * POST /provision and the EventBridge entry: start this state machine, read back its executions (idempotency),
 * and list its running executions (one run per tenant at a time).
 */
export function startProvisioningStatements(stateMachineArn: string, executionsArn: string): PolicyStatementJson[] {
  return [
    statement({ sid: "StartProvisioning", actions: ["states:StartExecution"], resources: [stateMachineArn] }),
    statement({ sid: "ListProvisioningRuns", actions: ["states:ListExecutions"], resources: [stateMachineArn] }),
    statement({ sid: "ReadProvisioningExecutions", actions: ["states:DescribeExecution"], resources: [executionsArn] }),
  ];
}

/** GET /executions/{id}: status and per-step history of this deployment's executions only (provisioning and teardown). */
export function executionStatusStatements(...executionsArns: string[]): PolicyStatementJson[] {
  return [
    statement({
      sid: "ReadProvisioningExecutions",
      actions: ["states:DescribeExecution", "states:GetExecutionHistory"],
      resources: executionsArns,
    }),
  ];
}

/**
 * The stopped-run handler: read the stopped provision execution's history, start the compensation state machine
 * (nothing else: the compensation's own role invokes the undo Lambdas, which hold their own permissions).
 */
export function stoppedRunStatements(
  arns: Pick<StackArns, "executionsArn" | "deprovisionExecutionsArn" | "registryTableArn"> & { compensationStateMachineArn: string },
): PolicyStatementJson[] {
  return [
    statement({
      sid: "ReadStoppedRunHistory",
      actions: ["states:GetExecutionHistory"],
      resources: [arns.executionsArn, arns.deprovisionExecutionsArn],
    }),
    statement({ sid: "StartCompensation", actions: ["states:StartExecution"], resources: [arns.compensationStateMachineArn] }),
    // A stopped teardown: its record read, then set failed with its lease released (one conditional write).
    ...registryGetStatements(arns.registryTableArn),
    ...registryOutcomeStatements(arns.registryTableArn),
  ];
}

// ---------------------------------------------------------------- drift (GET on an environment, the scheduled check)

/**
 * The live drift check (functions/lib/workflow/drift-reader.ts): get, list and describe only, of what the product owns.
 * DescribeCluster on the allowlisted clusters; the product's roles (their documents, inline and attached policies);
 * Pod Identity associations and access entries (with their access policies) on those clusters. On Kubernetes it reads
 * as the provisioner: a session of the KubeStepsRole (`kubeIdentityRoleArn`) whose session policy denies every AWS
 * action, so only its EKS token is of use (test/infra checks the code passes that policy).
 */
export function driftReadStatements(scope: PermissionScope, kubeIdentityRoleArn: string): PolicyStatementJson[] {
  return [
    statement({ sid: "DriftDescribeAllowedClusters", actions: ["eks:DescribeCluster"], resources: clusterArns(scope) }),
    statement({
      sid: "DriftReadProductRoles",
      actions: ["iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"],
      resources: [prefixedRoleArn(scope)],
    }),
    statement({ sid: "DriftListPodIdentityAssociations", actions: ["eks:ListPodIdentityAssociations"], resources: clusterArns(scope) }),
    statement({
      sid: "DriftReadPodIdentityAssociations",
      actions: ["eks:DescribePodIdentityAssociation"],
      resources: podIdentityAssociationArns(scope),
    }),
    statement({
      sid: "DriftReadAccessEntries",
      actions: ["eks:DescribeAccessEntry", "eks:ListAssociatedAccessPolicies"],
      resources: accessEntryArns(scope),
    }),
    statement({ sid: "DriftReadAsTheProvisioner", actions: ["sts:AssumeRole"], resources: [kubeIdentityRoleArn] }),
  ];
}

/** The scheduled drift check (functions/events/drift-check.ts): list the ready environments, read drift, put EnvironmentDrifted events. */
export function driftCheckStatements(
  scope: PermissionScope,
  arns: Pick<StackArns, "registryTableArn" | "eventBusArn" | "kubeStepsRoleArn">,
): PolicyStatementJson[] {
  return [
    ...registryListStatements(arns.registryTableArn),
    ...driftReadStatements(scope, arns.kubeStepsRoleArn),
    ...reportStatements(arns.eventBusArn),
  ];
}

// ---------------------------------------------------------------- the environment registry (DynamoDB)

/**
 * POST /provision and the EventBridge entry: read an environment or key, create it if absent, take and give back
 * the lease (conditional writes, one item each), remember a key. No Query: the listing (environment-registry.ts
 * listEnvironments) is not the registry class's, so the code that starts runs cannot reach it.
 */
export function registryStartStatements(tableArn: string): PolicyStatementJson[] {
  return [
    statement({ sid: "RegistryStartRuns", actions: ["dynamodb:PutItem", "dynamodb:UpdateItem"], resources: [tableArn] }),
    ...registryGetStatements(tableArn),
  ];
}

/** GET /environments/{tenant}/{region}/{cluster}: read one record. */
export function registryGetStatements(tableArn: string): PolicyStatementJson[] {
  return [statement({ sid: "RegistryReadEnvironment", actions: ["dynamodb:GetItem"], resources: [tableArn] })];
}

/** GET /environments: list the records through the table's index. */
export function registryListStatements(tableArn: string): PolicyStatementJson[] {
  return [statement({ sid: "RegistryListEnvironments", actions: ["dynamodb:Query"], resources: [tableArn, `${tableArn}/index/*`] })];
}

/** Report / ReportFailure: the run's outcome and the lease released, one conditional UpdateItem. */
export function registryOutcomeStatements(tableArn: string): PolicyStatementJson[] {
  return [statement({ sid: "RegistryRecordOutcome", actions: ["dynamodb:UpdateItem"], resources: [tableArn] })];
}

/** The statements of a step that also writes to the registry (Report, ReportFailure, RecordRemoval); none for the others. */
export function stepRegistryStatements(entry: StepFunctionEntry, tableArn: string): PolicyStatementJson[] {
  return entry.module === "report" || entry.module === "teardown-record" ? registryOutcomeStatements(tableArn) : [];
}

/**
 * DELETE /environments/{tenant}/{region}/{cluster} and the removal event: read the record, take the lease (and give it
 * back with the record as it was when the start fails), start the teardown state machine (only it). They hold
 * `EnvironmentRecords`, which never creates a record nor remembers a key: no PutItem.
 */
export function startTeardownStatements(deprovisionStateMachineArn: string, tableArn: string): PolicyStatementJson[] {
  return [
    statement({ sid: "StartTeardown", actions: ["states:StartExecution"], resources: [deprovisionStateMachineArn] }),
    statement({ sid: "RegistryTakeRemovalLease", actions: ["dynamodb:UpdateItem"], resources: [tableArn] }),
    ...registryGetStatements(tableArn),
  ];
}

/**
 * The statements of one step Lambda (`<module>.<handler>` from the catalog). A step the table does not
 * know stops the synth, so a new step cannot ship with no permissions, nor inherit someone else's.
 */
export function stepStatements(entry: StepFunctionEntry, scope: PermissionScope, eventBusArn: string): PolicyStatementJson[] {
  if (KUBE_STEP_MODULES.has(entry.module)) return []; // on the shared KubeStepsRole (kubeStepsStatements)
  switch (`${entry.module}.${entry.handler}`) {
    case "resolve-cluster.apply":
      return resolveClusterStatements(scope);
    case "iam/index.apply":
      return iamApplyStatements(scope);
    case "iam/index.compensate":
      return iamCompensateStatements(scope);
    case "remove-unwanted-identities.apply":
      return removeUnwantedIdentitiesStatements(scope);
    case "report.ready":
    case "report.failed":
    case "teardown-record.record": // and the registry (stepRegistryStatements)
      return reportStatements(eventBusArn);
    default:
      throw new Error(
        `stacks/permissions.ts has no permissions for step ${entry.module}.${entry.handler} (${entry.placeholder}); ` +
          `add the statements its SDK calls need, scoped to what it touches`,
      );
  }
}

// ---------------------------------------------------------------- per role (what each Lambda's role holds)

/** The ARNs of what the stack itself creates, which the roles' statements name. */
export interface StackArns {
  eventBusArn: string;
  registryTableArn: string;
  stateMachineArn: string;
  /** `arn:<partition>:states:<region>:<account>:execution:<state machine name>:*` */
  executionsArn: string;
  /** The teardown state machine (statemachines/deprovision.asl.json) and its executions */
  deprovisionStateMachineArn: string;
  deprovisionExecutionsArn: string;
  /** The KubeStepsRole: the drift readers reach Kubernetes as a session of it */
  kubeStepsRoleArn: string;
}

/**
 * The statements of one step Lambda's own role (a step that is not on the shared KubeStepsRole): its AWS calls
 * and, for Report / ReportFailure, the registry's outcome write.
 */
export function stepFunctionStatements(
  entry: StepFunctionEntry,
  scope: PermissionScope,
  arns: Pick<StackArns, "eventBusArn" | "registryTableArn">,
): PolicyStatementJson[] {
  return [...stepStatements(entry, scope, arns.eventBusArn), ...stepRegistryStatements(entry, arns.registryTableArn)];
}

/** What starts runs (POST /provision, POST /environments, the ComputeEnvironmentRequested function). */
export function runStarterStatements(
  arns: Pick<StackArns, "stateMachineArn" | "executionsArn" | "registryTableArn">,
): PolicyStatementJson[] {
  return [...startProvisioningStatements(arns.stateMachineArn, arns.executionsArn), ...registryStartStatements(arns.registryTableArn)];
}

/** The HTTP API's routes and what each route's Lambda may do. */
export const API_ROUTE_STATEMENTS = {
  "POST /provision": (arns: StackArns) => runStarterStatements(arns),
  "GET /executions/{id}": (arns: StackArns) => executionStatusStatements(arns.executionsArn, arns.deprovisionExecutionsArn),
  "POST /environments": (arns: StackArns) => runStarterStatements(arns),
  "GET /environments": (arns: StackArns) => registryListStatements(arns.registryTableArn),
  "GET /environments/{tenant}/{region}/{cluster}": (arns: StackArns, scope: PermissionScope) => [
    ...registryGetStatements(arns.registryTableArn),
    ...driftReadStatements(scope, arns.kubeStepsRoleArn),
  ],
  // PUT reads the record and starts the update run like a create (lease, idempotency key, StartExecution).
  "PUT /environments/{tenant}/{region}/{cluster}": (arns: StackArns) => runStarterStatements(arns),
  "POST /environments/{tenant}/{region}/{cluster}/reconcile": (arns: StackArns) => runStarterStatements(arns),
  "DELETE /environments/{tenant}/{region}/{cluster}": (arns: StackArns) =>
    startTeardownStatements(arns.deprovisionStateMachineArn, arns.registryTableArn),
} as const satisfies Record<string, (arns: StackArns, scope: PermissionScope) => PolicyStatementJson[]>;

export type ApiRoute = keyof typeof API_ROUTE_STATEMENTS;
