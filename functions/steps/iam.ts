/**
 * CreateIamResources: the launcher identity and, for Fusion, the workload role the head and compute
 * service accounts assume (IRSA through the cluster's OIDC provider, or EKS Pod Identity).
 *
 * Roles are per tenant and cluster (`<prefix>-<tenant>.<cluster>-launcher|workload`), so provisioning a
 * tenant on a second cluster never rewrites the policies its first environment relies on.
 *
 * Idempotent: a role that already exists is adopted only when its tags mark it as ours for this tenant
 * (its boundary, trust and inline policy are brought to the desired ones); one without our marks is an
 * OwnershipConflict. Everything created is tagged with this execution, so the compensator finds it even
 * when this step failed half-way, and deletes only what this execution created. What this run changed on
 * an adopted role or Pod Identity association is returned with the previous value (`changed`,
 * `changedAssociations`), and the compensator puts it back; when this step itself fails, it puts back
 * its own changes before rethrowing (the compensator then gets no `$.iam`).
 */
import {
  CreateRoleCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  GetUserCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  ListOpenIDConnectProvidersCommand,
  PutRolePermissionsBoundaryCommand,
  PutRolePolicyCommand,
  UpdateAssumeRolePolicyCommand,
  paginateListAttachedRolePolicies,
  paginateListRolePolicies,
  type IAMClient,
  type Role,
} from "@aws-sdk/client-iam";
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  UpdatePodIdentityAssociationCommand,
  paginateListPodIdentityAssociations,
  type EKSClient,
  type PodIdentityAssociation,
} from "@aws-sdk/client-eks";
import { parseArn } from "../lib/domain/arn.js";
import { eksClient, iamClient } from "../lib/aws/clients.js";
import { loadDeploymentConfig, type DeploymentConfig } from "../lib/domain/deploy-config.js";
import { IamNotYetConsistent, InvalidRequest, NotAllowed, OwnershipConflict } from "../lib/domain/errors.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import { iamPolicyName, iamRoleName, isOwnedBy, ownershipTags, tagsToRecord, wasCreatedBy } from "../lib/domain/naming.js";
import { ifExists, ignoreMissing, isAwsError } from "../lib/workflow/normalise-error.js";
import {
  fusionS3Policy,
  irsaTrustPolicy,
  launcherPermissionsPolicy,
  launcherTrustPolicy,
  oidcProviderArn,
  podIdentityTrustPolicy,
  type PolicyDocument,
} from "../lib/domain/policies.js";
import { safeParseRequest, serviceAccountsOf, type FusionStorage, type ProvisionRequest } from "../lib/domain/request.js";
import { requireCluster } from "../lib/workflow/require-cluster.js";
import type {
  CompensationResult,
  IamResult,
  IamRoleChange,
  PodIdentityAssociationChange,
  ResolvedCluster,
  WorkflowState,
} from "../lib/workflow/workflow-state.js";

export interface IamDeps {
  iam?: IAMClient;
  eks?: EKSClient;
  config?: DeploymentConfig;
}

interface Context {
  request: ProvisionRequest;
  cluster: ResolvedCluster;
  config: DeploymentConfig;
  executionName: string;
  iam: IAMClient;
  eks: EKSClient;
  partition: string;
  /** Adopted roles this run changed, recorded before each write (so a failure half-way can put them back) */
  changes: IamRoleChange[];
  changedAssociations: PodIdentityAssociationChange[];
}

/** What one role should look like. */
interface DesiredRole {
  roleName: string;
  description: string;
  trustPolicy: PolicyDocument;
  inlinePolicyName: string;
  inlinePolicy: PolicyDocument;
}

// ---------------------------------------------------------------- policy comparison

/** Policy documents compared by meaning: key order and one-element arrays vs scalars do not matter. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(canonical);
    return items.length === 1 ? items[0] : items.map((i) => JSON.stringify(i)).sort().map((i) => JSON.parse(i));
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** IAM returns policy documents URL-encoded. */
function decodePolicy(document: string | undefined): unknown {
  if (!document) return undefined;
  try {
    return JSON.parse(decodeURIComponent(document));
  } catch {
    return undefined;
  }
}

function samePolicy(current: string | undefined, desired: unknown): boolean {
  return JSON.stringify(canonical(decodePolicy(current))) === JSON.stringify(canonical(desired));
}

/** A document as IAM returned it, as plain JSON text (what the compensator writes back). */
function policyText(document: string): string {
  try {
    return decodeURIComponent(document);
  } catch {
    return document;
  }
}

/** A recorded previous document compared with the current one, by meaning. */
function sameAsRecorded(current: string | undefined, recorded: string): boolean {
  try {
    return samePolicy(current, JSON.parse(recorded));
  } catch {
    return current !== undefined && policyText(current) === recorded;
  }
}

// ---------------------------------------------------------------- roles

async function getRole(iam: IAMClient, roleName: string): Promise<Role | undefined> {
  return (await ifExists(iam.send(new GetRoleCommand({ RoleName: roleName })), "NoSuchEntity"))?.Role;
}

async function inlinePolicyDocument(iam: IAMClient, roleName: string, policyName: string): Promise<string | undefined> {
  return (await ifExists(iam.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: policyName })), "NoSuchEntity"))?.PolicyDocument;
}

/**
 * Bring an adopted role to the desired boundary, trust and inline policy; writes only what differs.
 * Each previous value goes into `change` before its write, so a write that fails (or half-succeeds)
 * is still put back. The boundary goes first: the product's own IAM permissions may allow
 * UpdateAssumeRolePolicy / PutRolePolicy only on roles that carry it.
 */
async function reconcileRole(ctx: Context, role: Role, desired: DesiredRole, change: IamRoleChange): Promise<void> {
  const boundary = ctx.config.permissionsBoundaryArn;
  const currentBoundary = role.PermissionsBoundary?.PermissionsBoundaryArn;
  if (boundary && currentBoundary !== boundary) {
    change.previousBoundary = currentBoundary ? { arn: currentBoundary } : {};
    await ctx.iam.send(new PutRolePermissionsBoundaryCommand({ RoleName: desired.roleName, PermissionsBoundary: boundary }));
  }
  if (!samePolicy(role.AssumeRolePolicyDocument, desired.trustPolicy)) {
    if (role.AssumeRolePolicyDocument) change.previousTrustPolicy = policyText(role.AssumeRolePolicyDocument);
    await ctx.iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: desired.roleName, PolicyDocument: JSON.stringify(desired.trustPolicy) }));
  }
  const current = await inlinePolicyDocument(ctx.iam, desired.roleName, desired.inlinePolicyName);
  if (!samePolicy(current, desired.inlinePolicy)) {
    change.previousInlinePolicy = { name: desired.inlinePolicyName, ...(current !== undefined ? { document: policyText(current) } : {}) };
    await ctx.iam.send(
      new PutRolePolicyCommand({ RoleName: desired.roleName, PolicyName: desired.inlinePolicyName, PolicyDocument: JSON.stringify(desired.inlinePolicy) }),
    );
  }
}

/** What a change record says was replaced, for logs and the compensation report. */
function describeChange(change: IamRoleChange): string[] {
  return [
    ...(change.previousBoundary ? ["permissions boundary"] : []),
    ...(change.previousTrustPolicy !== undefined ? ["trust policy"] : []),
    ...(change.previousInlinePolicy ? [`inline policy ${change.previousInlinePolicy.name}`] : []),
  ];
}

/**
 * Create the role, or adopt it when it is ours for this tenant. Returns its ARN and whether this run
 * created it. CreateRole carries the execution tag, so a failure right after it leaves a role the
 * compensator can find.
 */
async function ensureRole(ctx: Context, desired: DesiredRole, attempt = 1): Promise<{ arn: string; created: boolean }> {
  const tenant = ctx.request.tenant;
  const existing = await getRole(ctx.iam, desired.roleName);
  if (existing) {
    if (!isOwnedBy(tagsToRecord(existing.Tags), tenant)) {
      throw new OwnershipConflict(
        `IAM role ${desired.roleName} already exists without the ownership tags for tenant ${tenant}; it is left untouched. Delete or rename it, or choose another IAM prefix.`,
      );
    }
    // Created by an earlier attempt of this same run (a retry): still this run's creation, which the
    // compensator deletes whole; only another run's role needs its previous documents kept.
    const created = wasCreatedBy(tagsToRecord(existing.Tags), ctx.executionName);
    const change: IamRoleChange = { roleName: desired.roleName };
    if (!created) ctx.changes.push(change);
    await reconcileRole(ctx, existing, desired, change);
    logger.info(created ? "found IAM role this run created" : "adopted IAM role", { roleName: desired.roleName, changed: describeChange(change) });
    return { arn: existing.Arn!, created };
  }

  let role: Role | undefined;
  try {
    role = (
      await ctx.iam.send(
        new CreateRoleCommand({
          RoleName: desired.roleName,
          Description: desired.description,
          AssumeRolePolicyDocument: JSON.stringify(desired.trustPolicy),
          Tags: ownershipTags(tenant, ctx.executionName),
          ...(ctx.config.permissionsBoundaryArn ? { PermissionsBoundary: ctx.config.permissionsBoundaryArn } : {}),
        }),
      )
    ).Role;
  } catch (error) {
    // Someone (a concurrent retry of this run) created it between our read and our write: decide again.
    if (isAwsError(error, "EntityAlreadyExists")) {
      // Created by someone between our GetRole and CreateRole: decide again once. If IAM still shows no
      // role, its reads lag its writes; the state machine retries later instead of this Lambda spinning.
      if (attempt >= 2) throw new IamNotYetConsistent(`IAM role ${desired.roleName} already exists (EntityAlreadyExists) but GetRole does not show it yet`, { cause: error });
      return ensureRole(ctx, desired, attempt + 1);
    }
    throw error;
  }
  await ctx.iam.send(
    new PutRolePolicyCommand({ RoleName: desired.roleName, PolicyName: desired.inlinePolicyName, PolicyDocument: JSON.stringify(desired.inlinePolicy) }),
  );
  logger.info("created IAM role", { roleName: desired.roleName });
  return { arn: role?.Arn ?? `arn:${ctx.partition}:iam::${ctx.cluster.accountId}:role/${desired.roleName}`, created: true };
}

// ---------------------------------------------------------------- launcher

/** The last path segment of `role/path/name` or `user/name`. */
function principalName(resource: string): { kind: "role" | "user"; name: string } {
  const [kind, ...rest] = resource.split("/");
  return { kind: kind === "user" ? "user" : "role", name: rest[rest.length - 1] };
}

async function verifyExistingPrincipal(ctx: Context, principalArn: string): Promise<"role" | "user"> {
  const arn = parseArn(principalArn)!;
  const { kind, name } = principalName(arn.resource);
  // IAM answers only for its own account: a principal in another allowlisted account is checked by EKS later.
  if (arn.accountId !== ctx.cluster.accountId) return kind;
  try {
    if (kind === "role") await ctx.iam.send(new GetRoleCommand({ RoleName: name }));
    else await ctx.iam.send(new GetUserCommand({ UserName: name }));
  } catch (error) {
    if (isAwsError(error, "NoSuchEntity")) {
      throw new InvalidRequest([{ path: "launcher.principalArn", message: `principal does not exist: ${principalArn}` }], { cause: error });
    }
    throw error;
  }
  return kind;
}

function launcherRole(ctx: Context): DesiredRole {
  const { iamPrefix } = ctx.config;
  const tenant = ctx.request.tenant;
  return {
    roleName: iamRoleName(iamPrefix, tenant, ctx.cluster.name, "launcher"),
    description: `nf-eks-provisioner: Seqera/Nextflow launcher for tenant ${tenant} on ${ctx.cluster.name}`,
    trustPolicy: launcherTrustPolicy(ctx.cluster.accountId, ctx.partition),
    inlinePolicyName: iamPolicyName(iamPrefix, tenant, ctx.cluster.name, "launcher"),
    inlinePolicy: launcherPermissionsPolicy([ctx.cluster.arn]),
  };
}

// ---------------------------------------------------------------- Fusion workload role

/** IRSA needs the cluster's OIDC issuer registered as an IAM OIDC provider. */
async function findOidcProvider(ctx: Context): Promise<string> {
  const issuer = ctx.cluster.oidcIssuer;
  if (!issuer) {
    throw new NotAllowed(`cluster ${ctx.cluster.name} has no OIDC issuer; Fusion with IRSA needs one (or ask for storage.podIdentity)`);
  }
  const expected = oidcProviderArn(ctx.cluster.accountId, issuer, ctx.partition);
  const providers = (await ctx.iam.send(new ListOpenIDConnectProvidersCommand({}))).OpenIDConnectProviderList ?? [];
  const found = providers.find((p) => p.Arn?.toLowerCase() === expected.toLowerCase());
  if (!found?.Arn) {
    throw new NotAllowed(
      `the OIDC issuer of cluster ${ctx.cluster.name} (${issuer}) is not registered as an IAM OIDC provider; ` +
        `associate it first: eksctl utils associate-iam-oidc-provider --cluster ${ctx.cluster.name} --region ${ctx.cluster.region} --approve`,
    );
  }
  return found.Arn;
}

async function workloadRole(ctx: Context, storage: FusionStorage): Promise<DesiredRole> {
  const { iamPrefix } = ctx.config;
  const tenant = ctx.request.tenant;
  const trustPolicy = storage.podIdentity
    ? podIdentityTrustPolicy()
    : irsaTrustPolicy({
        oidcProviderArn: await findOidcProvider(ctx),
        issuer: ctx.cluster.oidcIssuer!,
        namespace: ctx.request.namespace,
        serviceAccounts: serviceAccountsOf(ctx.request),
      });
  return {
    roleName: iamRoleName(iamPrefix, tenant, ctx.cluster.name, "workload"),
    description: `nf-eks-provisioner: Fusion workload role for tenant ${tenant} on ${ctx.cluster.name} (bucket ${storage.bucket})`,
    trustPolicy,
    inlinePolicyName: iamPolicyName(iamPrefix, tenant, ctx.cluster.name, "fusion-s3"),
    inlinePolicy: fusionS3Policy({ bucket: storage.bucket, partition: ctx.partition }),
  };
}

// ---------------------------------------------------------------- Pod Identity

async function describeAssociation(eks: EKSClient, clusterName: string, associationId: string): Promise<PodIdentityAssociation | undefined> {
  return (await ifExists(eks.send(new DescribePodIdentityAssociationCommand({ clusterName, associationId })), "ResourceNotFoundException"))?.association;
}

async function associationsFor(eks: EKSClient, clusterName: string, namespace: string, serviceAccount?: string): Promise<PodIdentityAssociation[]> {
  const found: PodIdentityAssociation[] = [];
  for await (const page of paginateListPodIdentityAssociations({ client: eks }, { clusterName, namespace, ...(serviceAccount ? { serviceAccount } : {}) })) {
    for (const summary of page.associations ?? []) {
      if (serviceAccount && summary.serviceAccount !== serviceAccount) continue;
      const association = summary.associationId ? await describeAssociation(eks, clusterName, summary.associationId) : undefined;
      if (association) found.push(association);
    }
  }
  return found;
}

/** One association per service account: adopt ours, refuse others', create the missing one (tagged). */
async function ensurePodIdentityAssociation(ctx: Context, serviceAccount: string, roleArn: string, attempt = 1): Promise<{ id: string; arn: string; created: boolean }> {
  const { request, cluster, eks } = ctx;
  const [existing] = await associationsFor(eks, cluster.name, request.namespace, serviceAccount);
  if (existing) {
    if (!isOwnedBy(existing.tags, request.tenant)) {
      throw new OwnershipConflict(
        `a Pod Identity association for ${request.namespace}/${serviceAccount} already exists (${existing.associationId}) without the ownership tags for tenant ${request.tenant}`,
      );
    }
    const created = wasCreatedBy(existing.tags, ctx.executionName);
    if (existing.roleArn !== roleArn) {
      // Another run's association: keep its role so the compensator can point it back (recorded before the write).
      if (!created && existing.roleArn) ctx.changedAssociations.push({ associationId: existing.associationId!, previousRoleArn: existing.roleArn });
      await eks.send(new UpdatePodIdentityAssociationCommand({ clusterName: cluster.name, associationId: existing.associationId!, roleArn }));
    }
    return { id: existing.associationId!, arn: existing.associationArn ?? "", created };
  }
  try {
    const { association } = await eks.send(
      new CreatePodIdentityAssociationCommand({
        clusterName: cluster.name,
        namespace: request.namespace,
        serviceAccount,
        roleArn,
        tags: tagsToRecord(ownershipTags(request.tenant, ctx.executionName)),
      }),
    );
    // A role created seconds ago may be refused as "cannot be assumed": normaliseError names that
    // IamNotYetConsistent and the state machine retries.
    return { id: association?.associationId ?? "", arn: association?.associationArn ?? "", created: true };
  } catch (error) {
    if (isAwsError(error, "ResourceInUseException")) {
      // Same race for the association: look again once, then let the state machine retry (named Throttled).
      if (attempt >= 2) throw error;
      return ensurePodIdentityAssociation(ctx, serviceAccount, roleArn, attempt + 1);
    }
    throw error;
  }
}

// ---------------------------------------------------------------- apply

function contextFor(state: WorkflowState, deps: IamDeps): Context {
  const { request, cluster } = requireCluster(state);
  return {
    request,
    cluster,
    config: deps.config ?? loadDeploymentConfig(),
    executionName: state.execution.name,
    iam: deps.iam ?? iamClient(),
    eks: deps.eks ?? eksClient(cluster.region),
    partition: parseArn(cluster.arn)?.partition ?? "aws",
    changes: [],
    changedAssociations: [],
  };
}

export async function createIamResources(state: WorkflowState, deps: IamDeps = {}): Promise<IamResult> {
  const ctx = contextFor(state, deps);
  try {
    const result = await applyIam(ctx);
    const changed = changesMade(ctx);
    if (changed.length) result.changed = changed;
    if (ctx.changedAssociations.length) result.changedAssociations = ctx.changedAssociations;
    return result;
  } catch (error) {
    // A failed step returns nothing, so the compensator would never learn the previous documents: put them back now.
    await putBackChanges(ctx);
    throw error;
  }
}

async function applyIam(ctx: Context): Promise<IamResult> {
  const { request } = ctx;
  const created: string[] = [];
  const result: IamResult = { launcherArn: "", launcherKind: "role", launcherCreated: false, created };

  if (request.launcher.mode === "existing") {
    result.launcherKind = await verifyExistingPrincipal(ctx, request.launcher.principalArn);
    result.launcherArn = request.launcher.principalArn;
  } else {
    const launcher = await ensureRole(ctx, launcherRole(ctx));
    result.launcherArn = launcher.arn;
    result.launcherCreated = launcher.created;
    if (launcher.created) created.push(launcher.arn);
  }

  if (request.storage.type === "fusion") {
    const workload = await ensureRole(ctx, await workloadRole(ctx, request.storage));
    result.workloadRoleArn = workload.arn;
    if (workload.created) created.push(workload.arn);
    if (request.storage.podIdentity) {
      result.podIdentityAssociationIds = [];
      for (const serviceAccount of serviceAccountsOf(request)) {
        const association = await ensurePodIdentityAssociation(ctx, serviceAccount, workload.arn);
        result.podIdentityAssociationIds.push(association.id);
        if (association.created) created.push(association.arn || association.id);
      }
    }
  }
  return result;
}

/** The adopted roles this run wrote to (a role found already as desired has an empty record). */
function changesMade(ctx: Context): IamRoleChange[] {
  return ctx.changes.filter((change) => describeChange(change).length > 0);
}

/** Best effort, newest first: a write that fails here is logged, and the step's own error is what the run reports. */
async function putBackChanges(ctx: Context): Promise<void> {
  const tenant = ctx.request.tenant;
  for (const change of [...ctx.changedAssociations].reverse()) {
    try {
      await restoreAssociation(ctx.eks, ctx.cluster.name, change, tenant);
    } catch (error) {
      logger.error("could not point an adopted Pod Identity association back at its previous role", { change, error });
    }
  }
  for (const change of changesMade(ctx).reverse()) {
    try {
      await restoreRole(ctx.iam, change, tenant);
    } catch (error) {
      logger.error("could not put back the previous documents of an adopted IAM role", { change, error });
    }
  }
}

// ---------------------------------------------------------------- compensate

interface Restored {
  undone?: string;
  kept?: string;
}

/**
 * Put an adopted role's inline policy and trust policy back as this run found them; writes only what
 * still differs, so running twice changes nothing the second time. The inline policy goes first, while
 * the boundary the product's IAM permissions may require is still on the role. The boundary itself stays:
 * the deployment requires it on every product role, and loosening one is not something the product may do.
 */
async function restoreRole(iam: IAMClient, change: IamRoleChange, tenant: string, read?: Role): Promise<Restored> {
  const label = `IAM role ${change.roleName}`;
  const role = read ?? (await getRole(iam, change.roleName));
  if (!role) return { kept: `${label}: gone, nothing to put back` };
  if (!isOwnedBy(tagsToRecord(role.Tags), tenant)) return { kept: `${label}: no longer carries this tenant's marks, left untouched` };
  const restored: string[] = [];
  const inline = change.previousInlinePolicy;
  if (inline) {
    const current = await inlinePolicyDocument(iam, change.roleName, inline.name);
    if (inline.document === undefined) {
      if (current !== undefined) {
        await ignoreMissing(iam.send(new DeleteRolePolicyCommand({ RoleName: change.roleName, PolicyName: inline.name })), "NoSuchEntity");
        restored.push(`inline policy ${inline.name} removed`);
      }
    } else if (!sameAsRecorded(current, inline.document)) {
      await iam.send(new PutRolePolicyCommand({ RoleName: change.roleName, PolicyName: inline.name, PolicyDocument: inline.document }));
      restored.push(`inline policy ${inline.name} restored`);
    }
  }
  if (change.previousTrustPolicy !== undefined && !sameAsRecorded(role.AssumeRolePolicyDocument, change.previousTrustPolicy)) {
    await iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: change.roleName, PolicyDocument: change.previousTrustPolicy }));
    restored.push("trust policy restored");
  }
  const kept = change.previousBoundary
    ? `${label}: permissions boundary left at ${role.PermissionsBoundary?.PermissionsBoundaryArn ?? "none"} (was ${change.previousBoundary.arn ?? "none"}): the deployment requires it`
    : restored.length === 0
      ? `${label}: not created by this run; its previous documents are in place`
      : undefined;
  return { ...(restored.length ? { undone: `${label}: ${restored.join(", ")}` } : {}), ...(kept ? { kept } : {}) };
}

/** Point an adopted association back at the role it had; nothing when it already does or is gone. */
async function restoreAssociation(
  eks: EKSClient,
  clusterName: string,
  change: PodIdentityAssociationChange,
  tenant: string,
  read?: PodIdentityAssociation,
): Promise<Restored> {
  const label = `Pod Identity association ${change.associationId}`;
  const association = read ?? (await describeAssociation(eks, clusterName, change.associationId));
  if (!association) return {};
  if (!isOwnedBy(association.tags, tenant)) return { kept: `${label}: no longer carries this tenant's marks, left untouched` };
  if (association.roleArn === change.previousRoleArn) return { kept: `${label}: not created by this run; its previous role is in place` };
  await eks.send(new UpdatePodIdentityAssociationCommand({ clusterName, associationId: change.associationId, roleArn: change.previousRoleArn }));
  return { undone: `${label} (${association.namespace}/${association.serviceAccount}): role restored to ${change.previousRoleArn}` };
}

/** Delete a role this execution created: inline policies, attached policies, then the role. */
async function deleteRole(iam: IAMClient, roleName: string): Promise<void> {
  for await (const page of paginateListRolePolicies({ client: iam }, { RoleName: roleName })) {
    for (const policyName of page.PolicyNames ?? []) await iam.send(new DeleteRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
  }
  for await (const page of paginateListAttachedRolePolicies({ client: iam }, { RoleName: roleName })) {
    for (const policy of page.AttachedPolicies ?? []) await iam.send(new DetachRolePolicyCommand({ RoleName: roleName, PolicyArn: policy.PolicyArn }));
  }
  await iam.send(new DeleteRoleCommand({ RoleName: roleName }));
}

export async function undoIamResources(state: WorkflowState, deps: IamDeps = {}): Promise<CompensationResult> {
  const undone: string[] = [];
  const kept: string[] = [];
  const parsed = safeParseRequest(state.request);
  if (!parsed.ok) return { undone, kept }; // the step never ran with this request
  const request = parsed.request;
  const config = deps.config ?? loadDeploymentConfig();
  const iam = deps.iam ?? iamClient();
  const executionName = state.execution.name;
  const note = ({ undone: u, kept: k }: Restored) => {
    if (u) undone.push(u);
    if (k) kept.push(k);
  };
  // What this run changed on adopted objects: only in `$.iam`, i.e. when the step succeeded (a failed step put its changes back itself).
  const roleChanges = new Map((state.iam?.changed ?? []).map((c) => [c.roleName, c]));
  const associationChanges = new Map((state.iam?.changedAssociations ?? []).map((c) => [c.associationId, c]));

  // Pod Identity associations first: they reference the workload role.
  if (state.cluster && request.storage.type === "fusion" && request.storage.podIdentity) {
    const eks = deps.eks ?? eksClient(state.cluster.region);
    for (const serviceAccount of serviceAccountsOf(request)) {
      for (const association of await associationsFor(eks, state.cluster.name, request.namespace, serviceAccount)) {
        const label = `Pod Identity association ${association.associationId} (${request.namespace}/${serviceAccount})`;
        if (!wasCreatedBy(association.tags, executionName)) {
          const change = associationChanges.get(association.associationId!);
          if (change) note(await restoreAssociation(eks, state.cluster.name, change, request.tenant, association));
          else kept.push(`${label}: not created by this run`);
          continue;
        }
        // Gone already: an earlier attempt deleted it.
        await ignoreMissing(
          eks.send(new DeletePodIdentityAssociationCommand({ clusterName: state.cluster.name, associationId: association.associationId! })),
          "ResourceNotFoundException",
        );
        undone.push(label);
      }
    }
  }

  // Every role this step could have created; the execution tag decides, whatever the step returned.
  const clusterName = state.cluster?.name ?? request.cluster.name;
  for (const purpose of ["workload", "launcher"] as const) {
    const roleName = iamRoleName(config.iamPrefix, request.tenant, clusterName, purpose);
    const role = await getRole(iam, roleName);
    if (!role) continue; // never created, or already undone
    if (!wasCreatedBy(tagsToRecord(role.Tags), executionName)) {
      const change = roleChanges.get(roleName);
      if (change) note(await restoreRole(iam, change, request.tenant, role));
      else kept.push(`IAM role ${roleName}: not created by this run`);
      continue;
    }
    // Gone already: a previous compensation attempt got this far.
    await ignoreMissing(deleteRole(iam, roleName), "NoSuchEntity");
    undone.push(`IAM role ${roleName}`);
  }
  return { undone, kept };
}

export const apply = stepHandler<WorkflowState, IamResult>("CreateIamResources", (state) => createIamResources(state));
export const compensate = stepHandler<WorkflowState, CompensationResult>("UndoIamResources", (state) => undoIamResources(state));
