/**
 * The Nextflow head job.
 *  - LaunchHeadJob (`apply`): a batch/v1 Job running `nextflow run ...` as an argv array. Its name is
 *    derived from tenant + execution, so a retried or re-run step finds the Job it already made.
 *  - CheckHeadJob (`check`): called in the workflow's Wait loop; reads the Job and its pods and says
 *    whether to stop waiting (`waitFor: running` → the head pod runs; `completed` → the Job succeeded).
 *    A failed head job is HeadJobFailed, with the pod's reason and message.
 *  - UndoHeadJob (`compensate`): deletes the Job this execution created (pods cascade in the background)
 *    and any of its pods still there, found by the `job-name` label, only when this execution made them.
 */
import type { V1ContainerStatus, V1Job, V1JobCondition, V1Pod } from "@kubernetes/client-node";
import { HeadJobFailed, InvalidRequest, OwnershipConflict } from "../lib/errors.js";
import { describeRef, ensureObject, readObject, type KubeApi, type ObjectRef } from "../lib/kube.js";
import { compensationContext, deleteEachCreatedBy, kubeStepContext, uniqueRefs, type KubeStepDeps } from "../lib/kube-step.js";
import { headJobManifest, headJobName, JOB_NAME_LABEL } from "../lib/manifests.js";
import { logger, stepHandler } from "../lib/middleware.js";
import { NEXTFLOW_CONFIGMAP } from "../lib/naming.js";
import type { HeadJobSpec } from "../lib/request.js";
import type { CompensationResult, HeadJobResult, WorkflowState } from "../lib/state.js";

type Phase = HeadJobResult["phase"];

/** Waiting reasons a pod never recovers from on its own: report them instead of waiting forever. */
const HOPELESS_WAITING_REASONS = new Set(["InvalidImageName", "ErrImageNeverPull"]);

function jobRef(namespace: string, name: string): ObjectRef {
  return { apiVersion: "batch/v1", kind: "Job", namespace, name };
}

function headJobSpecOf(spec: HeadJobSpec | undefined): HeadJobSpec {
  if (!spec) throw new InvalidRequest([{ path: "headJob", message: "the request has no headJob; LaunchHeadJob should have been skipped" }]);
  return spec;
}

export async function launchHeadJob(state: WorkflowState, deps: KubeStepDeps = {}): Promise<HeadJobResult> {
  const { request, api, manifest, executionName } = await kubeStepContext(state, deps);
  const spec = headJobSpecOf(request.headJob);
  const jobName = headJobName(request.tenant, executionName);
  const desired = headJobManifest(manifest, spec, {
    serviceAccount: request.serviceAccount,
    storage: request.storage,
    configMap: state.storage?.configMap ?? NEXTFLOW_CONFIGMAP,
    jobName,
  });
  const { created } = await ensureObject(api, desired, request.tenant);
  // ensureObject says created for a Job an earlier attempt of this run made; another run's Job is not ours to adopt.
  if (!created) {
    throw new OwnershipConflict(`${describeRef(jobRef(request.namespace, jobName))} already exists and was created by another execution`);
  }
  logger.info("head job launched", { jobName, namespace: request.namespace });
  return { jobName, namespace: request.namespace, phase: "Pending", done: false, checks: 0 };
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

function hopelessWaiting(pod: V1Pod | undefined): V1ContainerStatus | undefined {
  return pod?.status?.containerStatuses?.find((c) => c.state?.waiting?.reason && HOPELESS_WAITING_REASONS.has(c.state.waiting.reason));
}

/** The head job's phase from the Job's own status first (authoritative), then from its pod. */
export function headJobPhase(job: V1Job, pod: V1Pod | undefined): Phase {
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
      return hopelessWaiting(pod) ? "Failed" : "Pending";
  }
}

/** What went wrong, from the pod (reason, container exit) or else the Job's Failed condition. */
export function failureDetail(job: V1Job, pod: V1Pod | undefined): string {
  const parts: string[] = [];
  if (pod) {
    const status = pod.status ?? {};
    const podLine = [status.reason, status.message].filter(Boolean).join(": ");
    parts.push(`pod ${pod.metadata?.name}${podLine ? ` ${podLine}` : ""}`);
    for (const c of status.containerStatuses ?? []) {
      const terminated = c.state?.terminated;
      const waiting = c.state?.waiting;
      if (terminated) {
        parts.push(`container ${c.name} ${terminated.reason ?? "terminated"} (exit code ${terminated.exitCode})${terminated.message ? `: ${terminated.message}` : ""}`);
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
  const { items } = await api.list<V1Pod>("v1", "Pod", namespace, undefined, undefined, undefined, undefined, `${JOB_NAME_LABEL}=${jobName}`);
  return items;
}

export async function checkHeadJob(state: WorkflowState, deps: KubeStepDeps = {}): Promise<HeadJobResult> {
  const { request, api, executionName } = await kubeStepContext(state, deps);
  const spec = headJobSpecOf(request.headJob);
  const namespace = state.headJob?.namespace ?? request.namespace;
  const jobName = state.headJob?.jobName ?? headJobName(request.tenant, executionName);
  const ref = jobRef(namespace, jobName);

  const job = await readObject<V1Job>(api, ref);
  if (!job) throw new HeadJobFailed(`head job ${describeRef(ref)} no longer exists (deleted while the workflow waited for it)`);
  const pod = newestPod(await podsOf(api, namespace, jobName));
  const phase = headJobPhase(job, pod);
  if (phase === "Failed") throw new HeadJobFailed(`head job ${namespace}/${jobName} failed: ${failureDetail(job, pod)}`);

  const done = spec.waitFor === "completed" ? phase === "Succeeded" : phase === "Running" || phase === "Succeeded";
  return {
    jobName,
    namespace,
    phase,
    done,
    ...(pod?.metadata?.name ? { podName: pod.metadata.name } : {}),
    checks: (state.headJob?.checks ?? 0) + 1,
  };
}

// ---------------------------------------------------------------- compensate

export async function undoHeadJob(state: WorkflowState, deps: KubeStepDeps = {}): Promise<CompensationResult> {
  const result: CompensationResult = { undone: [], kept: [] };
  const ctx = await compensationContext(state, deps);
  if (!ctx || !ctx.request.headJob) return result; // no head job asked for: nothing was launched
  const { request, api, executionName } = ctx;
  const namespace = request.namespace;
  const jobName = headJobName(request.tenant, executionName);

  // The Job first (its pods follow in the background), then whatever pods of it are still listed.
  const jobs = uniqueRefs([
    jobRef(namespace, jobName),
    ...(state.headJob?.jobName && state.headJob.namespace === namespace ? [jobRef(namespace, state.headJob.jobName)] : []),
  ]);
  await deleteEachCreatedBy(api, jobs, executionName, result);
  for (const job of jobs) {
    // deleteIfCreatedBy decides per pod: only pods carrying this run's mark go.
    const refs = (await podsOf(api, namespace, job.name)).map((pod): ObjectRef => ({ apiVersion: "v1", kind: "Pod", namespace, name: pod.metadata?.name ?? "" }));
    await deleteEachCreatedBy(api, refs, executionName, result);
  }
  logger.info("head job compensated", { ...result });
  return result;
}

export const apply = stepHandler<WorkflowState, HeadJobResult>("LaunchHeadJob", (state) => launchHeadJob(state));
export const check = stepHandler<WorkflowState, HeadJobResult>("CheckHeadJob", (state) => checkHeadJob(state));
export const compensate = stepHandler<WorkflowState, CompensationResult>("UndoHeadJob", (state) => undoHeadJob(state));
