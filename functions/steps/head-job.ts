/**
 * The Nextflow head job.
 *  - LaunchHeadJob (`apply`): the job's own params ConfigMap (`<jobName>-params`), then a batch/v1 Job
 *    running `nextflow run ...` as an argv array. Names are derived from tenant + execution, so a retried
 *    or re-run step finds what it already made.
 *  - CheckHeadJob (`check`): called in the workflow's Wait loop; reads the Job and its pods and says
 *    whether to stop waiting (`waitFor: running` → the head pod runs; `completed` → the Job succeeded)
 *    and how long to wait before the next check. A failed head job is HeadJobFailed, with the pod's
 *    reason and message; a head pod that cannot start is HeadPodCannotStart, with the cluster's reason and
 *    message: at once when waiting does not fix it (its claim is gone or its class cannot serve it, a config
 *    it needs is missing, an image name that cannot be parsed), after 5 minutes when it might (an image that
 *    does not pull, requests no node fits yet: a registry hiccup, an autoscaler adding a node). One that has
 *    not got there within `headJob.timeoutMinutes` is HeadJobTimedOut. All go to compensation.
 *  - UndoHeadJob (`compensate`): deletes the Job this execution created (pods cascade in the background),
 *    any of its pods still there (found by the `job-name` label) and its params ConfigMap, only when this
 *    execution made them.
 */
import type { KubernetesObject, V1ContainerStatus, V1Job, V1JobCondition, V1Pod } from "@kubernetes/client-node";
import { HeadJobFailed, HeadJobTimedOut, HeadPodCannotStart, InvalidRequest, OwnershipConflict } from "../lib/domain/errors.js";
import { describeRef, ensureObject, readObject, refOf, type KubeApi, type ObjectRef } from "../lib/kube/kube-client.js";
import { compensationResult } from "../lib/workflow/compensation.js";
import {
  compensationContext,
  deleteEachCreatedBy,
  kubeStepContext,
  listCreatedBy,
  uniqueRefs,
  type KubeStepDeps,
  type ReadObject,
} from "../lib/workflow/kube-step.js";
import {
  headJobManifest,
  headJobName,
  headJobParamsConfigMapManifest,
  headJobParamsConfigMapName,
  JOB_NAME_LABEL,
} from "../lib/domain/manifests.js";
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import { isTenantClaim, NEXTFLOW_CONFIGMAP } from "../lib/domain/naming.js";
import type { HeadJobSpec } from "../lib/domain/request.js";
import type { CompensationResult, HeadJobResult, WorkflowState } from "../lib/workflow/workflow-state.js";

type Phase = HeadJobResult["phase"];

/**
 * Waiting reasons a pod never recovers from on its own: report them instead of waiting for the timeout.
 * CreateContainerConfigError: the container spec cannot be made (a missing Secret/ConfigMap key in env,
 * runAsNonRoot with a root image); nothing in this workflow would fix it.
 */
const HOPELESS_WAITING_REASONS = new Set(["InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"]);
/** Image pull failures that may be transient (a registry hiccup, a throttled pull): fatal once they last. */
const IMAGE_PULL_WAITING_REASONS = new Set(["ErrImagePull", "ImagePullBackOff"]);
export const IMAGE_PULL_GRACE_MINUTES = 5;
/** How long the head pod may stay Unschedulable for a reason time may fix (Insufficient cpu, an unbound claim). */
export const UNSCHEDULABLE_GRACE_MINUTES = 5;
/** Scheduler messages waiting does not fix: the workflow made the claim before the Job, so a missing one is gone. */
const HOPELESS_UNSCHEDULABLE = [/persistentvolumeclaim "[^"]*" (not found|is being deleted)/, /provisioning failed for PVC/];
/** While the image does not pull, check at least this often, so the grace period is not overshot by much. */
const IMAGE_PULL_CHECK_SECONDS = 60;

/** How long the workflow waits for the head job when the request does not say (`headJob.timeoutMinutes`). */
export const DEFAULT_TIMEOUT_MINUTES = { running: 30, completed: 24 * 60 } as const;

/**
 * The Wait between checks: 10 s after the launch, then doubling per check (20, 40, 80, 160 s), capped at
 * 5 minutes. Each round is about 9 history events (Wait entered/exited, Task entered/scheduled/started/
 * succeeded/exited, Choice entered/exited), so a day's wait is about 5 + (86 400 − 310) / 300 ≈ 292 rounds
 * ≈ 2,600 events, and the longest timeout (7 days) ≈ 2,020 rounds ≈ 18,200 events: below Step Functions'
 * 25,000-event history quota (a fixed 10 s wait would take ~78,000 events for one day).
 */
export const FIRST_CHECK_SECONDS = 10;
export const MAX_CHECK_SECONDS = 300;

export function headJobTimeoutMinutes(spec: Pick<HeadJobSpec, "waitFor" | "timeoutMinutes">): number {
  return spec.timeoutMinutes ?? DEFAULT_TIMEOUT_MINUTES[spec.waitFor];
}

/** Seconds until the next check after `checks` checks, never past the timeout (so it is noticed on time). */
export function nextCheckSeconds(checks: number, remainingSeconds: number = Infinity): number {
  const backoff = Math.min(MAX_CHECK_SECONDS, FIRST_CHECK_SECONDS * 2 ** Math.min(checks, 16));
  return Math.max(1, Math.min(backoff, Math.ceil(remainingSeconds)));
}

function jobRef(namespace: string, name: string): ObjectRef {
  return { apiVersion: "batch/v1", kind: "Job", namespace, name };
}

function configMapRef(namespace: string, name: string): ObjectRef {
  return { apiVersion: "v1", kind: "ConfigMap", namespace, name };
}

/** Create `desired`, or find the one an earlier attempt of this run made; another run's object is not ours to adopt. */
async function createOnly(api: KubeApi, desired: KubernetesObject, tenant: string): Promise<void> {
  if (!(await ensureObject(api, desired, tenant)).created) {
    throw new OwnershipConflict(`${describeRef(refOf(desired))} already exists and was created by another execution`);
  }
}

function headJobSpecOf(spec: HeadJobSpec | undefined): HeadJobSpec {
  if (!spec) throw new InvalidRequest([{ path: "headJob", message: "the request has no headJob; LaunchHeadJob should have been skipped" }]);
  return spec;
}

export async function launchHeadJob(state: WorkflowState, deps: KubeStepDeps = {}): Promise<HeadJobResult> {
  const { request, api, manifest, run } = await kubeStepContext(state, deps);
  const spec = headJobSpecOf(request.headJob);
  const jobName = headJobName(request.tenant, run);

  // The params first: the Job's pod mounts them, and they are this job's alone (other runs share only nextflow.config).
  const params = headJobParamsConfigMapManifest(manifest, jobName, spec.params);
  await createOnly(api, params, request.tenant);
  const desired = headJobManifest(manifest, spec, {
    serviceAccount: request.serviceAccount,
    storage: request.storage,
    configMap: state.storage?.configMap ?? NEXTFLOW_CONFIGMAP,
    paramsConfigMap: params.metadata!.name!,
    jobName,
  });
  await createOnly(api, desired, request.tenant);
  logger.info("head job launched", { jobName, namespace: request.namespace });
  return {
    jobName,
    namespace: request.namespace,
    phase: "Pending",
    done: false,
    checks: 0,
    launchedAt: new Date().toISOString(),
    nextCheckSeconds: FIRST_CHECK_SECONDS,
    paramsConfigMap: params.metadata!.name!,
  };
}

// ---------------------------------------------------------------- check

function conditionIs(conditions: V1JobCondition[] | undefined, type: string): V1JobCondition | undefined {
  return conditions?.find((c) => c.type === type && c.status === "True");
}

/** The newest pod: with backoffLimit 0 there is one, but a deleted pod may linger. */
function newestPod(pods: V1Pod[]): V1Pod | undefined {
  const time = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
  return [...pods].sort((a, b) => time(b) - time(a))[0];
}

function waitingFor(pod: V1Pod | undefined, reasons: Set<string>): V1ContainerStatus | undefined {
  return pod?.status?.containerStatuses?.find((c) => c.state?.waiting?.reason && reasons.has(c.state.waiting.reason));
}

function hopelessWaiting(pod: V1Pod | undefined): V1ContainerStatus | undefined {
  return waitingFor(pod, HOPELESS_WAITING_REASONS);
}

interface SchedulerRefusal {
  reason: string;
  message: string;
}

/** The scheduler's refusal, when the head pod has one: PodScheduled False, reason Unschedulable, and its message. */
function unschedulable(pod: V1Pod | undefined): SchedulerRefusal | undefined {
  const condition = pod?.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable");
  return condition ? { reason: "Unschedulable", message: condition.message ?? "" } : undefined;
}

function cannotStart(
  namespace: string,
  jobName: string,
  pod: V1Pod | undefined,
  reason: string,
  detail: string,
  why: string,
): HeadPodCannotStart {
  return new HeadPodCannotStart(
    `head job ${namespace}/${jobName}: its pod ${pod?.metadata?.name ?? ""} cannot start${why}: ${reason}: ${detail}`,
    reason,
    detail,
  );
}

/** The head job's phase from the Job's own status first (authoritative), then from its pod. */
function headJobPhase(job: V1Job, pod: V1Pod | undefined): Phase {
  const status = job.status ?? {};
  if (conditionIs(status.conditions, "Failed") || (status.failed ?? 0) > 0) return "Failed";
  if (conditionIs(status.conditions, "Complete") || (status.succeeded ?? 0) > 0) return "Succeeded";
  switch (pod?.status?.phase) {
    case "Failed":
      return "Failed";
    case "Succeeded":
      return "Succeeded";
    case "Running":
      return "Running";
    default:
      return "Pending";
  }
}

/** What went wrong, from the pod (reason, container exit) or else the Job's Failed condition. */
function failureDetail(job: V1Job, pod: V1Pod | undefined): string {
  const parts: string[] = [];
  if (pod) {
    const status = pod.status ?? {};
    const podLine = [status.reason, status.message].filter(Boolean).join(": ");
    parts.push(`pod ${pod.metadata?.name}${podLine ? ` ${podLine}` : ""}`);
    for (const c of status.containerStatuses ?? []) {
      const terminated = c.state?.terminated;
      const waiting = c.state?.waiting;
      if (terminated) {
        parts.push(
          `container ${c.name} ${terminated.reason ?? "terminated"} (exit code ${terminated.exitCode})${terminated.message ? `: ${terminated.message}` : ""}`,
        );
      } else if (waiting?.reason) {
        parts.push(`container ${c.name} ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`);
      }
    }
  }
  const failed = conditionIs(job.status?.conditions, "Failed");
  if (failed) parts.push(`job ${[failed.reason, failed.message].filter(Boolean).join(": ")}`);
  return parts.join("; ") || "no reason reported";
}

async function podsOf(api: KubeApi, namespace: string, jobName: string): Promise<V1Pod[]> {
  const { items } = await api.list<V1Pod>(
    "v1",
    "Pod",
    namespace,
    undefined,
    undefined,
    undefined,
    undefined,
    `${JOB_NAME_LABEL}=${jobName}`,
  );
  return items;
}

const MINUTE_MS = 60_000;

/** Parse an ISO time from the state; undefined when absent or unreadable. */
function timeOf(value: string | undefined): number | undefined {
  const ms = value === undefined ? NaN : Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** What one check saw: the Job, its newest pod and the phase they add up to. */
interface HeadJobSighting {
  namespace: string;
  jobName: string;
  job: V1Job;
  pod: V1Pod | undefined;
  phase: Phase;
}

/**
 * Throws at once for what waiting does not fix: a failed Job, a container that can never start, a scheduler refusal
 * no new node resolves. Returns the scheduler's refusal otherwise, which may still clear (see {@link failWhenGraceIsOver}).
 */
function failWhenHopeless({ namespace, jobName, job, pod, phase }: HeadJobSighting): SchedulerRefusal | undefined {
  if (phase === "Failed") throw new HeadJobFailed(`head job ${namespace}/${jobName} failed: ${failureDetail(job, pod)}`);
  if (phase !== "Pending") return undefined;
  const hopeless = hopelessWaiting(pod);
  if (hopeless) {
    throw cannotStart(
      namespace,
      jobName,
      pod,
      hopeless.state!.waiting!.reason!,
      hopeless.state?.waiting?.message ?? failureDetail(job, pod),
      "",
    );
  }
  const refusal = unschedulable(pod);
  if (refusal && HOPELESS_UNSCHEDULABLE.some((re) => re.test(refusal.message)))
    throw cannotStart(namespace, jobName, pod, refusal.reason, refusal.message, "");
  return refusal;
}

/** Since when each problem time may fix has been seen (epoch ms), carried from check to check in `$.headJob`. */
interface GracePeriods {
  pullFailing: V1ContainerStatus | undefined;
  pullFailingSince: number | undefined;
  unschedulableSince: number | undefined;
}

/**
 * Problems time may fix (an image that does not pull yet, requests no node fits yet) are waited out for a grace
 * period from when first seen, then thrown as HeadPodCannotStart. Returns since when each has been seen.
 */
function failWhenGraceIsOver(
  sighting: HeadJobSighting,
  refusal: SchedulerRefusal | undefined,
  previous: HeadJobResult | undefined,
  spec: HeadJobSpec,
  now: number,
): GracePeriods {
  const { namespace, jobName, job, pod } = sighting;
  // An image that does not pull may be a registry hiccup; one that has not pulled for 5 minutes will not.
  const pullFailing = waitingFor(pod, IMAGE_PULL_WAITING_REASONS);
  const pullFailingSince = pullFailing ? (timeOf(previous?.imagePullFailingSince) ?? now) : undefined;
  if (pullFailingSince !== undefined && now - pullFailingSince > IMAGE_PULL_GRACE_MINUTES * MINUTE_MS) {
    throw cannotStart(
      namespace,
      jobName,
      pod,
      pullFailing!.state!.waiting!.reason!,
      pullFailing!.state?.waiting?.message ?? failureDetail(job, pod),
      ` (its image ${pullFailing!.image ?? spec.image} could not be pulled for more than ${IMAGE_PULL_GRACE_MINUTES} minutes; ${failureDetail(job, pod)})`,
    );
  }
  // Requests no node fits may fit once an autoscaler adds one; refused for 5 minutes, they will not.
  const unschedulableSince = refusal ? (timeOf(previous?.unschedulableSince) ?? now) : undefined;
  if (unschedulableSince !== undefined && now - unschedulableSince > UNSCHEDULABLE_GRACE_MINUTES * MINUTE_MS) {
    throw cannotStart(
      namespace,
      jobName,
      pod,
      refusal!.reason,
      refusal!.message,
      ` (unschedulable for more than ${UNSCHEDULABLE_GRACE_MINUTES} minutes)`,
    );
  }
  return { pullFailing, pullFailingSince, unschedulableSince };
}

/** The job has not got there within `headJob.timeoutMinutes` of its launch. */
function timedOut(
  { namespace, jobName, job, pod, phase }: HeadJobSighting,
  spec: HeadJobSpec,
  launchedAt: number,
  now: number,
): HeadJobTimedOut {
  return new HeadJobTimedOut(
    `head job ${namespace}/${jobName} was still ${phase} after ${Math.round((now - launchedAt) / MINUTE_MS)} minutes ` +
      `(waiting for it to be ${spec.waitFor === "completed" ? "completed" : "running"}, timeout ${headJobTimeoutMinutes(spec)} minutes; see headJob.timeoutMinutes)` +
      (pod ? `: ${failureDetail(job, pod)}` : ""),
  );
}

/** A job that is done waits out nothing. */
const NOTHING_WAITED_OUT: GracePeriods = { pullFailing: undefined, pullFailingSince: undefined, unschedulableSince: undefined };

/**
 * One check in the workflow's Wait loop. The timeout is decided here, from the launch time (or, for a
 * state without one, this first check's time), so the state machine only loops until `done` or an error.
 */
export async function checkHeadJob(state: WorkflowState, deps: KubeStepDeps = {}): Promise<HeadJobResult> {
  const { request, api, run } = await kubeStepContext(state, deps);
  const spec = headJobSpecOf(request.headJob);
  const namespace = state.headJob?.namespace ?? request.namespace;
  const jobName = state.headJob?.jobName ?? headJobName(request.tenant, run);
  const ref = jobRef(namespace, jobName);
  const now = Date.now();
  const launchedAt = timeOf(state.headJob?.launchedAt) ?? now;
  const checks = (state.headJob?.checks ?? 0) + 1;

  const job = await readObject<V1Job>(api, ref);
  if (!job) throw new HeadJobFailed(`head job ${describeRef(ref)} no longer exists (deleted while the workflow waited for it)`);
  const pod = newestPod(await podsOf(api, namespace, jobName));
  const phase = headJobPhase(job, pod);
  const sighting: HeadJobSighting = { namespace, jobName, job, pod, phase };
  const refusal = failWhenHopeless(sighting);
  const done = spec.waitFor === "completed" ? phase === "Succeeded" : phase === "Running" || phase === "Succeeded";
  // Once done, a container still waiting no longer matters: no grace period runs and no timeout applies.
  const grace = done ? NOTHING_WAITED_OUT : failWhenGraceIsOver(sighting, refusal, state.headJob, spec, now);
  const remainingMs = launchedAt + headJobTimeoutMinutes(spec) * MINUTE_MS - now;
  if (!done && remainingMs <= 0) throw timedOut(sighting, spec, launchedAt, now);

  const next = nextCheckSeconds(checks, remainingMs / 1000);
  return {
    jobName,
    namespace,
    phase,
    done,
    ...(pod?.metadata?.name ? { podName: pod.metadata.name } : {}),
    checks,
    launchedAt: new Date(launchedAt).toISOString(),
    nextCheckSeconds: grace.pullFailing || refusal ? Math.min(next, IMAGE_PULL_CHECK_SECONDS) : next,
    ...(grace.pullFailingSince !== undefined ? { imagePullFailingSince: new Date(grace.pullFailingSince).toISOString() } : {}),
    ...(grace.unschedulableSince !== undefined ? { unschedulableSince: new Date(grace.unschedulableSince).toISOString() } : {}),
    paramsConfigMap: state.headJob?.paramsConfigMap ?? headJobParamsConfigMapName(jobName),
  };
}

// ---------------------------------------------------------------- compensate

export async function undoHeadJob(state: WorkflowState, deps: KubeStepDeps = {}): Promise<CompensationResult> {
  const result = compensationResult();
  const ctx = await compensationContext(state, deps);
  if (!ctx) return result;
  const { request, api, run, claim } = ctx;
  const namespace = request.namespace;
  let jobs: ObjectRef[];
  if (isTenantClaim(claim)) {
    // A teardown: every head job of the tenant in its namespace, whichever run launched it.
    jobs = await listCreatedBy(api, { apiVersion: "batch/v1", kind: "Job", namespace }, request.tenant, claim);
  } else {
    if (!request.headJob) return result; // no head job asked for: nothing was launched
    jobs = uniqueRefs([
      jobRef(namespace, headJobName(request.tenant, run)),
      ...(state.headJob?.jobName && state.headJob.namespace === namespace ? [jobRef(namespace, state.headJob.jobName)] : []),
    ]);
  }

  // The Job first (propagationPolicy Background: the garbage collector deletes its pods, none is orphaned), then
  // whatever pods of it are still listed.
  await deleteEachCreatedBy(api, jobs, claim, result);
  for (const job of jobs) {
    // deleteIfCreatedBy decides per pod: only pods carrying this run's mark go.
    const pods = (await podsOf(api, namespace, job.name)).map(
      (pod): ReadObject => ({ ref: { apiVersion: "v1", kind: "Pod", namespace, name: pod.metadata?.name ?? "" }, object: pod }),
    );
    await deleteEachCreatedBy(api, pods, claim, result);
  }
  // Then the params the pod mounted (only this run's: the marks decide).
  const params = uniqueRefs(jobs.map((job) => configMapRef(namespace, headJobParamsConfigMapName(job.name))));
  await deleteEachCreatedBy(api, params, claim, result);
  logger.info("head job compensated", { ...result });
  return result;
}

/** The step's handlers, with the cluster client given (tests) or built per call from `$.cluster`. */
export function createHeadJobStep(deps: KubeStepDeps = {}) {
  return {
    apply: stepHandler<WorkflowState, HeadJobResult>("LaunchHeadJob", (state) => launchHeadJob(state, deps)),
    check: stepHandler<WorkflowState, HeadJobResult>("CheckHeadJob", (state) => checkHeadJob(state, deps)),
    compensate: stepHandler<WorkflowState, CompensationResult>("UndoHeadJob", (state) => undoHeadJob(state, deps)),
  };
}

export const { apply, check, compensate } = createHeadJobStep();
