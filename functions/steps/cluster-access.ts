/**
 * GrantClusterAccess: let the launcher principal into the cluster as username `tower-launcher-user-<tenant>`
 * in group `tower-launcher-role-<tenant>` (the RBAC step binds that user to the namespace Role). The
 * identity is the tenant's own, so a launcher reaches only its tenant's namespace. An entry or mapping of
 * ours from an earlier version (the shared `tower-launcher-user`) is moved to the tenant's identity.
 *
 * - `API` / `API_AND_CONFIG_MAP` clusters: an EKS access entry (STANDARD, tagged with our marks). An
 *   existing entry is adopted only when its tags mark it ours for this tenant; otherwise OwnershipConflict.
 *   In `API_AND_CONFIG_MAP` EKS prefers an access entry to an aws-auth mapping of the same principal, so
 *   before creating one the step reads aws-auth (read only) and refuses a principal that aws-auth already
 *   maps, unless a run of this product recorded that mapping: our entry would silently replace what the
 *   mapping grants (a platform admin role in system:masters, a self-managed node role).
 * - `CONFIG_MAP` clusters: one entry in `kube-system/aws-auth`, which the node groups share. Read, edit the
 *   parsed YAML, replace with the read resourceVersion; on 409 re-read and redo. The ConfigMap is never
 *   created or deleted. The edit records, in an annotation on the ConfigMap, which execution added which
 *   ARN, so the compensator removes exactly this run's entry, found by its mark even when the step failed
 *   before returning. The data before the edit is kept in the step output only (Step Functions keeps it in
 *   the execution history): one copy on the shared ConfigMap could not be right for every tenant at once.
 */
import {
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  UpdateAccessEntryCommand,
  type AccessEntry,
  type EKSClient,
} from "@aws-sdk/client-eks";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { addMapping, awsAuthPrincipal, findMapping, parseAwsAuth, removeMapping, serializeAwsAuth, type AwsAuth, type AwsAuthMapping } from "../lib/kube/aws-auth.js";
import { parseArn } from "../lib/domain/arn.js";
import { eksClient } from "../lib/aws/clients.js";
import { IamNotYetConsistent, InvalidRequest, KubeConflict, NotAllowed, OwnershipConflict } from "../lib/domain/errors.js";
import { isKubeError, kubeClientFor, readObject, replaceObject, type KubeApi, type ObjectRef } from "../lib/kube/kube-client.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import {
  ANNOTATION_AWS_AUTH_MAPPINGS,
  ANNOTATION_PREVIOUS_AWS_AUTH,
  executionMark,
  isOwnedBy,
  launcherGroup,
  launcherUsername,
  ownershipTags,
  tagsToRecord,
  tenantOfLauncherUsername,
  wasCreatedBy,
} from "../lib/domain/naming.js";
import { ifExists, ignoreMissing, isAwsError, normaliseError } from "../lib/workflow/normalise-error.js";
import { parseRequest } from "../lib/domain/request.js";
import { requireCluster } from "../lib/workflow/require-cluster.js";
import type { AccessResult, CompensationResult, ResolvedCluster, WorkflowState } from "../lib/workflow/workflow-state.js";

const AWS_AUTH_REF: ObjectRef = { apiVersion: "v1", kind: "ConfigMap", namespace: "kube-system", name: "aws-auth" };
/** Read-edit-replace rounds before giving up with KubeConflict (the state machine then retries the step). */
export const AWS_AUTH_MAX_ATTEMPTS = 5;
/**
 * A Step Functions state holds at most 256 KiB, and this copy travels in the workflow state with the
 * request and every other step's result: a copy of an aws-auth larger than this (JSON characters, some
 * escaped to several bytes) is left out of the step output, keeping the state far below the limit (the
 * edit itself still proceeds; the compensator does not need the copy).
 */
export const MAX_PREVIOUS_COPY_CHARS = 32_000;

/** The Kubernetes identity a tenant's launcher is mapped to. */
interface LauncherIdentity {
  username: string;
  groups: string[];
}

function launcherIdentity(tenant: string): LauncherIdentity {
  return { username: launcherUsername(tenant), groups: [launcherGroup(tenant)] };
}

export interface ClusterAccessDeps {
  eks?: EKSClient;
  kube?: KubeApi;
}

interface Context {
  tenant: string;
  identity: LauncherIdentity;
  executionName: string;
  cluster: ResolvedCluster;
  principalArn: string;
  deps: ClusterAccessDeps;
}

function usesAccessEntries(cluster: ResolvedCluster): boolean {
  return cluster.authenticationMode === "API" || cluster.authenticationMode === "API_AND_CONFIG_MAP";
}

function eksFor(ctx: { cluster: ResolvedCluster; deps: ClusterAccessDeps }): EKSClient {
  return ctx.deps.eks ?? eksClient(ctx.cluster.region);
}

async function kubeFor(ctx: { cluster: ResolvedCluster; deps: ClusterAccessDeps }): Promise<KubeApi> {
  return ctx.deps.kube ?? kubeClientFor(ctx.cluster);
}

function sameGroups(current: string[] | undefined, desired: string[]): boolean {
  return JSON.stringify([...(current ?? [])].sort()) === JSON.stringify([...desired].sort());
}

// ---------------------------------------------------------------- access entries

async function describeAccessEntry(eks: EKSClient, clusterName: string, principalArn: string): Promise<AccessEntry | undefined> {
  return (await ifExists(eks.send(new DescribeAccessEntryCommand({ clusterName, principalArn })), "ResourceNotFoundException"))?.accessEntry;
}

function accessResult(ctx: Context, created: boolean): AccessResult {
  return { method: "access-entry", principalArn: ctx.principalArn, username: ctx.identity.username, groups: [...ctx.identity.groups], created };
}

/**
 * Ours for this tenant: keep it, bringing username and groups to the tenant's if they differ (changed by
 * hand, or the shared `tower-launcher-user` an earlier version mapped every tenant to).
 */
async function adoptAccessEntry(ctx: Context, entry: AccessEntry): Promise<AccessResult> {
  if (!isOwnedBy(entry.tags, ctx.tenant)) {
    throw new OwnershipConflict(
      `an EKS access entry for ${ctx.principalArn} already exists on cluster ${ctx.cluster.name} without the ownership tags for tenant ${ctx.tenant}; ` +
        `it is left untouched (username ${JSON.stringify(entry.username)}, groups ${JSON.stringify(entry.kubernetesGroups ?? [])})`,
    );
  }
  const { username, groups } = ctx.identity;
  if (entry.username !== username || !sameGroups(entry.kubernetesGroups, groups)) {
    await eksFor(ctx).send(
      new UpdateAccessEntryCommand({ clusterName: ctx.cluster.name, principalArn: ctx.principalArn, username, kubernetesGroups: [...groups] }),
    );
    logger.info("updated our EKS access entry to the tenant's launcher username and groups", { principalArn: ctx.principalArn, from: entry.username, to: username });
  }
  // Created by an earlier attempt of this same run: still this run's creation.
  return accessResult(ctx, wasCreatedBy(entry.tags, ctx.executionName));
}

/**
 * API_AND_CONFIG_MAP: an access entry takes precedence over an aws-auth mapping of the same principal,
 * so creating ours would demote whatever aws-auth grants it, silently. Read aws-auth (never written
 * here; absent is fine in this mode) and refuse a principal it maps (roles path-insensitively, an
 * assumed-role ARN as its role) unless a run of this product recorded that mapping for this tenant.
 */
async function refuseShadowingAwsAuthMapping(ctx: Context): Promise<void> {
  const principal = awsAuthPrincipal(ctx.principalArn);
  if (!principal) return; // not something aws-auth can map
  const configMap = await readObject<V1ConfigMap>(await kubeFor(ctx), AWS_AUTH_REF);
  if (!configMap) return;
  // Content that does not parse throws AwsAuthUnparseable: we cannot tell what the entry would shadow.
  const { existing, recordedBy, otherTenant } = mappingState(configMap, principal.arn);
  if (!existing) return;
  if (recordedBy !== undefined && (otherTenant === undefined || otherTenant === ctx.tenant)) return;
  throw new OwnershipConflict(
    `kube-system/aws-auth already maps ${ctx.principalArn} to username ${JSON.stringify(existing.username)} and groups ${JSON.stringify(existing.groups ?? [])}` +
      `${otherTenant !== undefined && otherTenant !== ctx.tenant ? ` (tenant ${otherTenant}'s launcher)` : " and it was not added by this product"}; ` +
      `on this API_AND_CONFIG_MAP cluster an access entry for the same principal would take precedence and silently replace that mapping, ` +
      `so none is created. Use another launcher principal, or move the mapping to an access entry yourself.`,
  );
}

/** A principal in another account that EKS calls invalid: IAM propagation is not why (we never create it). */
function isForeignPrincipalRefusal(ctx: Context, error: unknown): boolean {
  const account = parseArn(ctx.principalArn)?.accountId;
  return account !== undefined && account !== ctx.cluster.accountId && normaliseError(error) instanceof IamNotYetConsistent;
}

async function grantViaAccessEntry(ctx: Context): Promise<AccessResult> {
  const eks = eksFor(ctx);
  const existing = await describeAccessEntry(eks, ctx.cluster.name, ctx.principalArn);
  if (existing) return adoptAccessEntry(ctx, existing);
  if (ctx.cluster.authenticationMode === "API_AND_CONFIG_MAP") await refuseShadowingAwsAuthMapping(ctx);
  try {
    await eks.send(
      new CreateAccessEntryCommand({
        clusterName: ctx.cluster.name,
        principalArn: ctx.principalArn,
        type: "STANDARD",
        username: ctx.identity.username,
        kubernetesGroups: [...ctx.identity.groups],
        tags: tagsToRecord(ownershipTags(ctx.tenant, ctx.executionName)),
      }),
    );
  } catch (error) {
    // Created between our read and our write (a concurrent attempt): decide on what is there now.
    if (isAwsError(error, "ResourceInUseException")) {
      const now = await describeAccessEntry(eks, ctx.cluster.name, ctx.principalArn);
      if (now) return adoptAccessEntry(ctx, now);
    }
    if (isForeignPrincipalRefusal(ctx, error)) {
      throw new InvalidRequest(
        [{ path: "launcher.principalArn", message: `EKS refuses ${ctx.principalArn} as an access entry principal: it does not exist or cannot be used (${(error as Error).message})` }],
        { cause: error },
      );
    }
    // A role created seconds ago may be refused as an invalid principal: normaliseError names that
    // IamNotYetConsistent and the state machine retries.
    throw error;
  }
  logger.info("created EKS access entry", { principalArn: ctx.principalArn });
  return accessResult(ctx, true);
}

// ---------------------------------------------------------------- aws-auth

type Marks = Record<string, string>;

/** The {arn: executionMark} record on the ConfigMap; unreadable content counts as none (and is rewritten). */
function readMappingMarks(configMap: V1ConfigMap): Marks {
  const raw = configMap.metadata?.annotations?.[ANNOTATION_AWS_AUTH_MAPPINGS];
  if (!raw) return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === "string"));
  } catch {
    logger.warn(`ignoring unreadable ${ANNOTATION_AWS_AUTH_MAPPINGS} annotation on kube-system/aws-auth`);
    return {};
  }
}

/** What aws-auth holds for one principal: its entry, the run of this product that recorded it, whose launcher it maps to. */
interface MappingState {
  auth: AwsAuth;
  marks: Marks;
  existing: Record<string, unknown> | undefined;
  /** The executionMark recorded for the existing entry (undefined without one, or without an entry). */
  recordedBy: string | undefined;
  /** The tenant whose launcher username the existing entry maps to. */
  otherTenant: string | undefined;
}

/** Throws AwsAuthUnparseable when mapRoles/mapUsers do not parse. */
function mappingState(configMap: V1ConfigMap, principalArn: string): MappingState {
  const auth = parseAwsAuth(configMap.data);
  const marks = readMappingMarks(configMap);
  const existing = findMapping(auth, principalArn);
  return {
    auth,
    marks,
    existing,
    recordedBy: existing !== undefined ? marks[principalArn] : undefined,
    otherTenant: tenantOfLauncherUsername(existing?.username),
  };
}

/** The data before an edit, for the step output; left out when too large for a Step Functions state. */
function previousCopy(data: Record<string, string> | undefined): { previousAwsAuth?: Record<string, string> } {
  const copy = { ...(data ?? {}) };
  if (JSON.stringify(copy).length > MAX_PREVIOUS_COPY_CHARS) {
    logger.warn("kube-system/aws-auth is too large to copy into the step output; the edit proceeds without the copy");
    return {};
  }
  return { previousAwsAuth: copy };
}

/** The ConfigMap with new data and our marks annotation; everything else (labels, owners, other annotations) as read. */
function edited(configMap: V1ConfigMap, data: Record<string, string>, marks: Marks): V1ConfigMap {
  const annotations: Record<string, string> = { ...(configMap.metadata?.annotations ?? {}) };
  // Ours, from an earlier version: a copy shared by every tenant's edits that goes stale (see naming.ts).
  delete annotations[ANNOTATION_PREVIOUS_AWS_AUTH];
  if (Object.keys(marks).length > 0) annotations[ANNOTATION_AWS_AUTH_MAPPINGS] = JSON.stringify(marks);
  else delete annotations[ANNOTATION_AWS_AUTH_MAPPINGS];
  return { ...configMap, metadata: { ...configMap.metadata, annotations }, data };
}

function missingAwsAuth(clusterName: string): never {
  throw new NotAllowed(
    `cluster ${clusterName} uses the CONFIG_MAP authentication mode but has no kube-system/aws-auth ConfigMap; ` +
      `this product edits aws-auth but never creates it (EKS creates it when a managed node group joins). ` +
      `Create it, or switch the cluster to the API_AND_CONFIG_MAP authentication mode to use access entries.`,
  );
}

/**
 * Read → edit → replace with the read resourceVersion; a 409 means someone wrote in between, so read
 * their version and redo the edit on it. `edit` leaves out `write` when there is nothing to write;
 * `missing` answers when the ConfigMap does not exist (it is never created).
 */
async function editAwsAuth<R>(
  api: KubeApi,
  edit: (configMap: V1ConfigMap) => { write?: V1ConfigMap; result: R },
  missing: () => R,
): Promise<R> {
  for (let attempt = 1; attempt <= AWS_AUTH_MAX_ATTEMPTS; attempt++) {
    const configMap = await readObject<V1ConfigMap>(api, AWS_AUTH_REF);
    if (!configMap) return missing();
    const { write, result } = edit(configMap);
    if (!write) return result;
    try {
      await replaceObject(api, write);
      return result;
    } catch (error) {
      if (!isKubeError(error, 409)) throw error;
      logger.info("kube-system/aws-auth changed under us; reading it again", { attempt });
    }
  }
  throw new KubeConflict(`kube-system/aws-auth kept changing under us (${AWS_AUTH_MAX_ATTEMPTS} attempts); retrying later`);
}

async function grantViaAwsAuth(ctx: Context): Promise<AccessResult> {
  const principal = awsAuthPrincipal(ctx.principalArn);
  if (!principal) throw new InvalidRequest(`launcher ${ctx.principalArn} is not an IAM role or user ARN that aws-auth can map`);
  // aws-auth matches roles without their path: the canonical ARN is the key of our mark as well.
  const { username, groups } = ctx.identity;
  const mapping: AwsAuthMapping = { kind: principal.kind, arn: principal.arn, username, groups: [...groups] };
  const mark = executionMark(ctx.executionName);
  const base = { method: "aws-auth" as const, principalArn: principal.arn, username, groups: [...groups] };

  const api = await kubeFor(ctx);
  return editAwsAuth<AccessResult>(
    api,
    (configMap) => {
      const { auth: current, marks, existing, recordedBy, otherTenant } = mappingState(configMap, principal.arn);
      const existedBefore = existing !== undefined;
      if (otherTenant !== undefined && otherTenant !== ctx.tenant) {
        // A principal maps to one Kubernetes user: taking it over would lock the other tenant out.
        throw new OwnershipConflict(
          `aws-auth already maps ${principal.arn} to tenant ${otherTenant}'s launcher user ${JSON.stringify(existing!.username)}; ` +
            `an IAM principal can be the launcher of one tenant only, so it is left unchanged`,
        );
      }
      // An entry for this ARN that a run of this product recorded may be brought to the tenant's mapping
      // (changed by hand, or the shared username of an earlier version); anyone else's entry with a
      // different mapping makes addMapping throw OwnershipConflict.
      const { auth, changed } = addMapping(current, mapping, { replaceOwned: recordedBy !== undefined });
      if (!changed) {
        // Already there: added by this run earlier (a retry), by another run, or by hand (then never ours to remove).
        const createdHere = recordedBy === mark;
        // A retry whose first attempt wrote but never returned: the content before it is today's without
        // this run's entry (exactly what the compensator will leave).
        const previous = createdHere ? previousCopy(serializeAwsAuth(removeMapping(current, principal.arn, ctx.identity).auth)) : {};
        return { result: { ...base, created: createdHere, ...previous } };
      }
      // A new entry is this run's (a stale mark for an entry removed by hand is replaced); an adjusted one
      // stays with the run that added it.
      const nextMarks = existedBefore ? marks : { ...marks, [principal.arn]: mark };
      return {
        write: edited(configMap, serializeAwsAuth(auth), nextMarks),
        result: { ...base, created: !existedBefore || recordedBy === mark, ...previousCopy(configMap.data) },
      };
    },
    () => missingAwsAuth(ctx.cluster.name),
  );
}

// ---------------------------------------------------------------- apply

function contextFor(state: WorkflowState, deps: ClusterAccessDeps): Context {
  const { request, cluster } = requireCluster(state);
  if (!state.iam?.launcherArn) throw new InvalidRequest("the launcher principal ($.iam.launcherArn) is missing; CreateIamResources must run first");
  return {
    tenant: request.tenant,
    identity: launcherIdentity(request.tenant),
    executionName: state.execution.name,
    cluster,
    principalArn: state.iam.launcherArn,
    deps,
  };
}

export async function grantClusterAccess(state: WorkflowState, deps: ClusterAccessDeps = {}): Promise<AccessResult> {
  const ctx = contextFor(state, deps);
  return usesAccessEntries(ctx.cluster) ? grantViaAccessEntry(ctx) : grantViaAwsAuth(ctx);
}

// ---------------------------------------------------------------- compensate

async function undoAccessEntry(state: WorkflowState, cluster: ResolvedCluster, deps: ClusterAccessDeps): Promise<CompensationResult> {
  const undone: string[] = [];
  const kept: string[] = [];
  const principalArn = state.access?.principalArn ?? state.iam?.launcherArn;
  if (!principalArn) return { undone, kept }; // no launcher: this step never ran
  const eks = eksFor({ cluster, deps });
  const entry = await describeAccessEntry(eks, cluster.name, principalArn);
  const label = `EKS access entry ${principalArn} on ${cluster.name}`;
  if (!entry) return { undone, kept };
  if (!wasCreatedBy(entry.tags, state.execution.name)) {
    kept.push(`${label}: not created by this run`);
    return { undone, kept };
  }
  // Gone already: an earlier attempt deleted it.
  await ignoreMissing(eks.send(new DeleteAccessEntryCommand({ clusterName: cluster.name, principalArn })), "ResourceNotFoundException");
  undone.push(label);
  return { undone, kept };
}

async function undoAwsAuth(state: WorkflowState, cluster: ResolvedCluster, deps: ClusterAccessDeps): Promise<CompensationResult> {
  const mark = executionMark(state.execution.name);
  const identity = launcherIdentity(parseRequest(state.request).tenant);
  const api = await kubeFor({ cluster, deps });
  return editAwsAuth<CompensationResult>(
    api,
    (configMap) => {
      const undone: string[] = [];
      const kept: string[] = [];
      const marks = readMappingMarks(configMap);
      const ours = Object.keys(marks).filter((arn) => marks[arn] === mark);
      if (ours.length === 0) {
        const launcher = state.access?.principalArn ?? state.iam?.launcherArn;
        if (launcher && state.access) kept.push(`aws-auth mapping for ${launcher}: not added by this run`);
        return { result: { undone, kept } };
      }
      let auth = parseAwsAuth(configMap.data);
      const remaining = { ...marks };
      for (const arn of ours) {
        // Only our exact mapping: an entry someone changed after us is theirs now.
        const removal = removeMapping(auth, arn, identity);
        auth = removal.auth;
        delete remaining[arn];
        if (removal.removed) undone.push(`aws-auth mapping for ${arn}`);
        else kept.push(`aws-auth mapping for ${arn}: changed or removed since this run added it`);
      }
      return { write: edited(configMap, serializeAwsAuth(auth), remaining), result: { undone, kept } };
    },
    () => ({ undone: [], kept: ["kube-system/aws-auth: absent, nothing to remove"] }),
  );
}

export async function undoClusterAccess(state: WorkflowState, deps: ClusterAccessDeps = {}): Promise<CompensationResult> {
  const cluster = state.cluster;
  if (!cluster) return { undone: [], kept: [] }; // ResolveCluster failed: nothing was granted
  return usesAccessEntries(cluster) ? undoAccessEntry(state, cluster, deps) : undoAwsAuth(state, cluster, deps);
}

export const apply = stepHandler<WorkflowState, AccessResult>("GrantClusterAccess", (state) => grantClusterAccess(state));
export const compensate = stepHandler<WorkflowState, CompensationResult>("UndoClusterAccess", (state) => undoClusterAccess(state));
