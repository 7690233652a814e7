/**
 * ConfigureStorage: where Nextflow keeps its work directory, and the tenant's nextflow.config.
 *  - `pvc`: a ReadWriteMany PersistentVolumeClaim the head and task pods share.
 *  - `fusion` with IRSA: the head and compute ServiceAccounts get `eks.amazonaws.com/role-arn` = the
 *    workload role from CreateIamResources (a merge patch guarded by resourceVersion). With Pod Identity
 *    the associations made by the IAM step are all it takes.
 *  - both: the `nextflow-config` ConfigMap with the tenant's nextflow.config, shared by the runs in the
 *    namespace (a head job's params.json is its own ConfigMap, made by LaunchHeadJob).
 *
 * Re-running changes nothing: objects that exist and carry our marks are adopted, an annotation that
 * already has the value is left alone, and our ConfigMap is rewritten only when its content differs.
 *
 * Every change to an object this run did not create is recorded on the object itself (an annotation with
 * this execution's mark and the previous value), so UndoStorage restores it even when this step failed
 * half-way and `$.storage` is empty. UndoStorage deletes what this run created, restores what it changed
 * (only where the current value is still the one it set), and can run twice.
 */
import {
  PatchStrategy,
  type V1ConfigMap,
  type V1ObjectMeta,
  type V1PersistentVolumeClaim,
  type V1ServiceAccount,
  type V1StorageClass,
} from "@kubernetes/client-node";
import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { InvalidRequest, OwnershipConflict, VolumeExpansionNotAllowed } from "../lib/domain/errors.js";
import { quantityValue } from "../lib/domain/quantity.js";
import { describeRef, ensureObject, readObject, refOf, replaceObject, type KubeApi, type ObjectRef } from "../lib/kube/kube-client.js";
import { compensationResult, recordUndo, undoOne } from "../lib/workflow/compensation.js";
import {
  compensationContext,
  deleteEachCreatedBy,
  kubeStepContext,
  uniqueRefs,
  type KubeStepContext,
  type KubeStepDeps,
} from "../lib/workflow/kube-step.js";
import { nextflowConfigMapManifest, pvcManifest } from "../lib/domain/manifests.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import {
  type Claim,
  IRSA_ANNOTATION,
  isClaimedMark,
  isOwnedBy,
  isTenantClaim,
  NEXTFLOW_CONFIGMAP,
  wasCreatedBy,
} from "../lib/domain/naming.js";
import { buildNextflowConfig } from "../lib/domain/nextflow-config.js";
import { serviceAccountsOf } from "../lib/domain/request.js";
import type { ClaimGrowth, CompensationResult, KubeRef, StorageResult, WorkflowState } from "../lib/workflow/workflow-state.js";

/** On a ServiceAccount: which execution set the IRSA annotation, to what, and what it was before. */
export const IRSA_CHANGE_ANNOTATION = "nf-eks-provisioner/role-arn-change";
/** On the ConfigMap (when this run updated one it did not create): which execution, and the data before. */
export const CONFIG_CHANGE_ANNOTATION = "nf-eks-provisioner/config-change";

/** On a claim an update grew: which execution, from what size, to what (a growth is never undone: a claim cannot shrink). */
export const GROWTH_ANNOTATION = "nf-eks-provisioner/storage-growth";

export interface GrowthRecord {
  execution: string;
  from: string;
  to: string;
}

export interface IrsaChange {
  /** the run mark of the run that set the annotation */
  execution: string;
  /** the value it set */
  value: string;
  /** the value before (absent: there was none) */
  previous?: string;
}

export interface ConfigChange {
  execution: string;
  previous: Record<string, string>;
  /** sha256 of the data this run wrote ({@link dataDigest}): the undo restores only while the data is still that */
  written?: string;
}

/** A digest of ConfigMap data, byte-exact in every key and value (order of keys aside). */
export function dataDigest(data: Record<string, string> | undefined): string {
  return createHash("sha256")
    .update(JSON.stringify(Object.entries(data ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))))
    .digest("hex");
}

/** A recorded change, or undefined when the annotation is absent or not ours to read. */
function parseChange<T extends { execution: string }>(raw: string | undefined): T | undefined {
  if (!raw) return undefined;
  try {
    const value = JSON.parse(raw) as T;
    return value && typeof value === "object" && typeof value.execution === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

function serviceAccountRef(namespace: string, name: string): ObjectRef {
  return { apiVersion: "v1", kind: "ServiceAccount", namespace, name };
}

function configMapRef(namespace: string): ObjectRef {
  return { apiVersion: "v1", kind: "ConfigMap", namespace, name: NEXTFLOW_CONFIGMAP };
}

/** Merge-patch the annotations (`null` removes one); resourceVersion makes a concurrent edit answer 409. */
async function patchAnnotations(api: KubeApi, current: V1ServiceAccount, annotations: Record<string, string | null>): Promise<void> {
  const patch: V1ServiceAccount = {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: {
      name: current.metadata!.name,
      namespace: current.metadata!.namespace,
      resourceVersion: current.metadata!.resourceVersion,
      annotations: annotations as V1ObjectMeta["annotations"],
    },
  };
  await api.patch(patch, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
}

/**
 * Point one ServiceAccount at the workload role. Returns what this run changed (with the value before),
 * or undefined when it changed nothing. The previous value is kept from the first attempt of this run,
 * so a retried step still knows what to restore.
 */
async function annotateServiceAccount(
  ctx: KubeStepContext,
  name: string,
  roleArn: string,
): Promise<{ serviceAccount: string; previous?: string } | undefined> {
  const { api, request, run: mark } = ctx;
  const ref = serviceAccountRef(request.namespace, name);
  const sa = await readObject<V1ServiceAccount>(api, ref);
  if (!sa) throw new InvalidRequest(`${describeRef(ref)} does not exist; CreateNamespaceAndRbac must run first`);
  const annotations = sa.metadata?.annotations ?? {};
  const current = annotations[IRSA_ANNOTATION];
  const recorded = parseChange<IrsaChange>(annotations[IRSA_CHANGE_ANNOTATION]);

  if (current === roleArn) {
    // Already pointing at the role: set by an earlier attempt of this run (still ours to undo), or not by us.
    return recorded?.execution === mark
      ? { serviceAccount: name, ...(recorded.previous !== undefined ? { previous: recorded.previous } : {}) }
      : undefined;
  }
  if (current !== undefined && !isOwnedBy(sa.metadata?.labels, request.tenant)) {
    throw new OwnershipConflict(
      `${describeRef(ref)} already has ${IRSA_ANNOTATION}=${current} and does not carry the ownership labels for tenant ${request.tenant}; it is left untouched`,
    );
  }
  const change: IrsaChange = { execution: mark, value: roleArn, ...(current !== undefined ? { previous: current } : {}) };
  await patchAnnotations(api, sa, { [IRSA_ANNOTATION]: roleArn, [IRSA_CHANGE_ANNOTATION]: JSON.stringify(change) });
  logger.info("annotated service account for IRSA", { serviceAccount: name, roleArn, previous: current });
  return { serviceAccount: name, ...(current !== undefined ? { previous: current } : {}) };
}

/**
 * Create the ConfigMap, or bring ours up to date when its content differs (keeping the data before in an
 * annotation). Returns whether this run created it.
 */
async function ensureConfigMap(ctx: KubeStepContext, desired: V1ConfigMap): Promise<boolean> {
  const { api, request, run: mark } = ctx;
  const { object, created } = await ensureObject(api, desired, request.tenant);
  if (created || isDeepStrictEqual(object.data ?? {}, desired.data ?? {})) return created;

  const annotations = object.metadata?.annotations ?? {};
  const recorded = parseChange<ConfigChange>(annotations[CONFIG_CHANGE_ANNOTATION]);
  // A retry of this run keeps the content from before the run's first write.
  const previous = recorded?.execution === mark ? recorded.previous : (object.data ?? {});
  const change: ConfigChange = { execution: mark, previous, written: dataDigest(desired.data) };
  await replaceObject<V1ConfigMap>(api, {
    ...object,
    metadata: { ...object.metadata, annotations: { ...annotations, [CONFIG_CHANGE_ANNOTATION]: JSON.stringify(change) } },
    data: desired.data,
  });
  logger.info("updated nextflow ConfigMap", { configMap: describeRef(refOf(desired)) });
  return false;
}

/**
 * Grow an adopted claim to `size` (an update): only upward, and only where its StorageClass allows volume expansion
 * (checked here, before the claim is changed: the API cannot read the cluster). The size before is recorded on the claim
 * (GROWTH_ANNOTATION), so a retry of this run and its compensator know this run grew it. A smaller size is refused.
 */
async function growClaim(
  ctx: KubeStepContext,
  ref: ObjectRef,
  claim: V1PersistentVolumeClaim,
  size: string,
): Promise<ClaimGrowth | undefined> {
  const { api, run } = ctx;
  const current = claim.spec?.resources?.requests?.storage;
  const recorded = parseChange<GrowthRecord>(claim.metadata?.annotations?.[GROWTH_ANNOTATION]);
  const growth = (from: string): ClaimGrowth => ({ claim: ref.name, namespace: ref.namespace ?? "", from, to: size });
  if (current === undefined || quantityValue(size) === quantityValue(String(current))) {
    return recorded?.execution === run ? growth(recorded.from) : undefined;
  }
  if (quantityValue(size) < quantityValue(String(current))) {
    throw new InvalidRequest([
      { path: "storage.size", message: `${describeRef(ref)} holds ${current}: a claim can only grow, not shrink to ${size}` },
    ]);
  }
  const className = claim.spec?.storageClassName;
  const storageClass = className
    ? await readObject<V1StorageClass>(api, { apiVersion: "storage.k8s.io/v1", kind: "StorageClass", name: className })
    : undefined;
  if (storageClass?.allowVolumeExpansion !== true) {
    const why = !className
      ? "it has no StorageClass"
      : !storageClass
        ? `its StorageClass ${className} does not exist`
        : `its StorageClass ${className} does not allow volume expansion (allowVolumeExpansion)`;
    throw new VolumeExpansionNotAllowed(`${describeRef(ref)} cannot grow from ${current} to ${size}: ${why}`);
  }
  const from = recorded?.execution === run ? recorded.from : String(current);
  const record: GrowthRecord = { execution: run, from, to: size };
  const patch: V1PersistentVolumeClaim = {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: {
      name: ref.name,
      namespace: ref.namespace,
      resourceVersion: claim.metadata?.resourceVersion,
      annotations: { [GROWTH_ANNOTATION]: JSON.stringify(record) },
    },
    spec: { resources: { requests: { storage: size } } },
  };
  await api.patch(patch, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
  logger.info("grew the claim", { claim: describeRef(ref), from, to: size });
  return growth(from);
}

export async function configureStorage(state: WorkflowState, deps: KubeStepDeps = {}): Promise<StorageResult> {
  const ctx = await kubeStepContext(state, deps);
  const { request, api, manifest } = ctx;
  const storage = request.storage;
  const created: KubeRef[] = [];
  const adopted: KubeRef[] = [];
  const grown: ClaimGrowth[] = [];
  const annotated: StorageResult["annotated"] = [];

  if (storage.type === "pvc") {
    const desired = pvcManifest(manifest, storage);
    const ref = refOf(desired);
    const { object, created: isNew } = await ensureObject<V1PersistentVolumeClaim>(api, desired, request.tenant);
    if (isNew) created.push(ref);
    else {
      adopted.push(ref);
      const growth = await growClaim(ctx, ref, object, storage.size);
      if (growth) grown.push(growth);
    }
  } else if (!storage.podIdentity) {
    const roleArn = state.iam?.workloadRoleArn;
    if (!roleArn)
      throw new InvalidRequest("the Fusion workload role ($.iam.workloadRoleArn) is missing; CreateIamResources must run first");
    for (const serviceAccount of serviceAccountsOf(request)) {
      const change = await annotateServiceAccount(ctx, serviceAccount, roleArn);
      if (change) annotated.push(change);
    }
  }

  const nextflowConfig = buildNextflowConfig(request, { workloadRoleArn: state.iam?.workloadRoleArn });
  const configMap = nextflowConfigMapManifest(manifest, nextflowConfig);
  ((await ensureConfigMap(ctx, configMap)) ? created : adopted).push(refOf(configMap));

  return {
    type: storage.type,
    ...(storage.type === "pvc" ? { claimName: storage.claimName, mountPath: storage.mountPath } : {}),
    annotated,
    configMap: NEXTFLOW_CONFIGMAP,
    nextflowConfig,
    created,
    ...(adopted.length ? { adopted } : {}),
    ...(grown.length ? { grown } : {}),
  };
}

// ---------------------------------------------------------------- compensate

/** Put the IRSA annotation back as it was, if this run set it and nobody changed it since (else: reported as not undone). */
async function restoreAnnotation(api: KubeApi, ref: ObjectRef, run: Claim, result: CompensationResult): Promise<void> {
  const sa = await readObject<V1ServiceAccount>(api, ref);
  const annotations = sa?.metadata?.annotations ?? {};
  const recorded = parseChange<IrsaChange>(annotations[IRSA_CHANGE_ANNOTATION]);
  if (!sa || !recorded || !isClaimedMark(recorded.execution, run)) return; // nothing of this run's here
  const what = `${IRSA_ANNOTATION} on ${describeRef(ref)}`;
  if (annotations[IRSA_ANNOTATION] !== recorded.value) {
    result.failed = [...(result.failed ?? []), `${what}: changed since this run set it, so the value before was not put back`];
    return;
  }
  await patchAnnotations(api, sa, { [IRSA_ANNOTATION]: recorded.previous ?? null, [IRSA_CHANGE_ANNOTATION]: null });
  result.undone.push(recorded.previous === undefined ? `${what} (removed)` : `${what} (restored ${recorded.previous})`);
}

/**
 * Delete the ConfigMap if this run created it, or restore the content it had before this run updated it: only while
 * the data is still, byte for byte, what this run wrote (changed since, it is left as it is and reported as not undone).
 */
async function undoConfigMap(api: KubeApi, ref: ObjectRef, run: Claim, result: CompensationResult): Promise<void> {
  const configMap = await readObject<V1ConfigMap>(api, ref);
  if (!configMap) return;
  if (wasCreatedBy(configMap.metadata?.labels, run)) {
    await deleteEachCreatedBy(api, [{ ref, object: configMap }], run, result);
    return;
  }
  const annotations = configMap.metadata?.annotations ?? {};
  const recorded = parseChange<ConfigChange>(annotations[CONFIG_CHANGE_ANNOTATION]);
  if (!recorded || !isClaimedMark(recorded.execution, run)) {
    recordUndo(result, describeRef(ref), "kept", run);
    return;
  }
  // A record of an earlier version (no `written`) cannot tell, and is put back as before.
  if (recorded.written !== undefined && recorded.written !== dataDigest(configMap.data)) {
    result.failed = [
      ...(result.failed ?? []),
      `${describeRef(ref)}: changed since this run wrote it, so the content before was not put back`,
    ];
    return;
  }
  const { [CONFIG_CHANGE_ANNOTATION]: _ours, ...rest } = annotations;
  await replaceObject<V1ConfigMap>(api, { ...configMap, metadata: { ...configMap.metadata, annotations: rest }, data: recorded.previous });
  result.undone.push(`${describeRef(ref)} (restored the previous content)`);
}

/** A claim this run grew stays grown (a claim cannot shrink): said under `kept`, never pretended undone. True when it was one. */
async function keepGrowth(api: KubeApi, ref: ObjectRef, undoing: Claim, result: CompensationResult): Promise<boolean> {
  // A teardown deletes the claim whatever its size: only one run's compensation keeps its growth.
  if (isTenantClaim(undoing)) return false;
  const pvc = await readObject<V1PersistentVolumeClaim>(api, ref);
  const recorded = parseChange<GrowthRecord>(pvc?.metadata?.annotations?.[GROWTH_ANNOTATION]);
  if (!pvc || recorded?.execution !== undoing || wasCreatedBy(pvc.metadata?.labels, undoing)) return false;
  result.kept.push(
    `${describeRef(ref)}: grown from ${recorded.from} to ${recorded.to} by this run; a claim cannot shrink, so the growth is not undone`,
  );
  return true;
}

export async function undoStorage(state: WorkflowState, deps: KubeStepDeps = {}): Promise<CompensationResult> {
  const result = compensationResult();
  const ctx = await compensationContext(state, deps);
  if (!ctx) return result;
  const { request, api, claim } = ctx;
  const namespace = request.namespace;

  const cmRef = configMapRef(namespace);
  await undoOne(result, describeRef(cmRef), claim, () => undoConfigMap(api, cmRef, claim, result));

  // The claim the request names, and anything else the step reported creating (marks decide).
  const reported = (state.storage?.created ?? []).filter((ref) => ref.namespace === namespace && ref.kind === "PersistentVolumeClaim");
  const claims: ObjectRef[] = uniqueRefs([
    ...(request.storage.type === "pvc"
      ? [{ apiVersion: "v1", kind: "PersistentVolumeClaim", namespace, name: request.storage.claimName }]
      : []),
    ...reported,
  ]);
  const notGrown: ObjectRef[] = [];
  for (const ref of claims) if (!(await keepGrowth(api, ref, claim, result))) notGrown.push(ref);
  await deleteEachCreatedBy(api, notGrown, claim, result);

  if (request.storage.type === "fusion") {
    for (const serviceAccount of serviceAccountsOf(request)) {
      const ref = serviceAccountRef(namespace, serviceAccount);
      await undoOne(result, `${IRSA_ANNOTATION} on ${describeRef(ref)}`, claim, () => restoreAnnotation(api, ref, claim, result));
    }
  }
  logger.info("storage compensated", { ...result });
  return result;
}

/** The step's handlers, with the cluster client given (tests) or built per call from `$.cluster`. */
export function createStorageStep(deps: KubeStepDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, StorageResult>("ConfigureStorage", (state) => configureStorage(state, deps)),
    compensate: stepHandler<WorkflowState, CompensationResult>("UndoStorage", (state) => undoStorage(state, deps)),
  };
}

export const { apply, compensate } = createStorageStep();
