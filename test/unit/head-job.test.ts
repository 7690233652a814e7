import { describe, expect, it } from "vitest";
import type { V1Job, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { apply, check, compensate } from "../../functions/steps/head-job.js";
import { headJobName } from "../../functions/lib/manifests.js";
import { ownershipLabels } from "../../functions/lib/naming.js";
import type { HeadJobResult, WorkflowState } from "../../functions/lib/state.js";
import { NS, OTHER_RUN, RUN, resolvedCluster, stepState, useFakeKube } from "../support/fixtures.js";

const JOB = headJobName("genomics", RUN);

function stateFor(headJob: Record<string, unknown> | null = {}, executionName = RUN, extra: Partial<WorkflowState> = {}): WorkflowState {
  const request = headJob ? { headJob: { pipeline: "nf-core/rnaseq", revision: "3.14.0", profiles: ["test", "docker"], ...headJob } } : {};
  return stepState(request, executionName, { cluster: resolvedCluster(), ...extra });
}

const kube = useFakeKube();

function job(): V1Job | undefined {
  return kube().get<V1Job>("batch/v1", "Job", JOB, NS);
}

/** A pod as the Job controller makes it: the template's labels, owned by the Job. */
function podOf(owner: V1Job, name: string, status: V1PodStatus, created = "2025-01-01T00:01:00Z"): V1Pod {
  return kube().seed<V1Pod>({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: NS,
      labels: { ...owner.spec?.template.metadata?.labels },
      creationTimestamp: new Date(created),
      ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: owner.metadata!.name!, uid: owner.metadata!.uid!, controller: true }],
    },
    spec: { containers: [{ name: "nextflow", image: "nextflow/nextflow:24.10.4" }] },
    status,
  });
}

function launched(checks = 0): HeadJobResult {
  return { jobName: JOB, namespace: NS, phase: "Pending", done: false, checks };
}

describe("LaunchHeadJob", () => {
  it("creates the Nextflow Job under a name derived from tenant and execution", async () => {
    // Prepare
    const state = stateFor({ params: { input: "s3://bucket/samples.csv" } });
    // Act
    const result = await apply(state);
    // Assess
    expect(result).toEqual(launched());
    expect(JOB).toMatch(/^nf-head-genomics-[0-9a-f]{8}$/);
    const created = job()!;
    expect(created.metadata?.labels).toMatchObject(ownershipLabels("genomics", RUN));
    const container = created.spec?.template.spec?.containers[0];
    expect(container?.command).toEqual(["nextflow"]);
    expect(container?.args?.slice(0, 6)).toEqual(["run", "nf-core/rnaseq", "-r", "3.14.0", "-profile", "test,docker"]);
    expect(created.spec?.template.spec?.serviceAccountName).toBe("tower-launcher-sa");
    expect(created.spec?.template.metadata?.labels?.["job-name"]).toBe(JOB);
  });

  it("finds its own Job when retried, without creating another", async () => {
    // Prepare
    await apply(stateFor());
    const mutations = kube().mutations;
    // Act
    const again = await apply(stateFor());
    // Assess
    expect(again).toEqual(launched());
    expect(kube().mutations).toBe(mutations);
    expect(kube().all("Job")).toHaveLength(1);
  });

  it("refuses a Job of that name another execution made", async () => {
    // Prepare
    kube().seed({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS, labels: ownershipLabels("genomics", OTHER_RUN) } });
    // Act
    const outcome = apply(stateFor());
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining(`Job ${NS}/${JOB}`) });
  });

  it("refuses a Job of that name without our marks", async () => {
    // Prepare
    kube().seed({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS } });
    // Act
    const outcome = apply(stateFor());
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict" });
  });

  it("a different execution launches a different Job", async () => {
    // Prepare
    await apply(stateFor({}, OTHER_RUN));
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(result.jobName).toBe(JOB);
    expect(kube().all("Job").map((j) => j.metadata?.name).sort()).toEqual([JOB, headJobName("genomics", OTHER_RUN)].sort());
  });
});

describe("CheckHeadJob", () => {
  it("is Pending, not done, while no pod runs yet, and counts its checks", async () => {
    // Prepare
    await apply(stateFor());
    // Act
    const result = await check(stateFor({}, RUN, { headJob: launched(2) }));
    // Assess
    expect(result).toEqual({ ...launched(), checks: 3 });
    expect(kube().callsOf("list", "Pod")[0]?.labelSelector).toBe(`job-name=${JOB}`);
  });

  it("is done when the head pod runs and the request waits for running", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    // Act
    const result = await check(stateFor({ waitFor: "running" }, RUN, { headJob: launched() }));
    // Assess
    expect(result).toEqual({ jobName: JOB, namespace: NS, phase: "Running", done: true, podName: `${JOB}-abcde`, checks: 1 });
  });

  it("keeps waiting on a running pod when the request waits for completion, and is done when the Job completes", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    const state = stateFor({ waitFor: "completed" }, RUN, { headJob: launched() });
    // Act
    const running = await check(state);
    kube().setStatus("batch/v1", "Job", JOB, NS, { succeeded: 1, conditions: [{ type: "Complete", status: "True" }] });
    const completed = await check({ ...state, headJob: running });
    // Assess
    expect(running).toMatchObject({ phase: "Running", done: false, checks: 1 });
    expect(completed).toMatchObject({ phase: "Succeeded", done: true, checks: 2 });
  });

  it("reads the newest pod when an older one lingers", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-old`, { phase: "Pending" }, "2025-01-01T00:01:00Z");
    podOf(job()!, `${JOB}-new`, { phase: "Running" }, "2025-01-01T00:05:00Z");
    // Act
    const result = await check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    expect(result).toMatchObject({ phase: "Running", podName: `${JOB}-new` });
  });

  it("throws HeadJobFailed with the pod's reason when the head pod fails", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, {
      phase: "Failed",
      containerStatuses: [
        {
          name: "nextflow",
          image: "nextflow/nextflow:24.10.4",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 1, reason: "Error", message: "Unknown project `nf-core/rnaseqq`" } },
        },
      ],
    });
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: "HeadJobFailed",
      message: expect.stringMatching(/pod nf-head-genomics-\w+-abcde.*container nextflow Error \(exit code 1\): Unknown project `nf-core\/rnaseqq`/),
    });
  });

  it("throws HeadJobFailed with the Job's condition when the Job failed without a pod to show", async () => {
    // Prepare
    await apply(stateFor());
    kube().setStatus("batch/v1", "Job", JOB, NS, {
      failed: 1,
      conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" }],
    });
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "HeadJobFailed", message: expect.stringContaining("BackoffLimitExceeded: Job has reached the specified backoff limit") });
  });

  it("throws HeadJobFailed for an image name that can never be pulled", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, {
      phase: "Pending",
      containerStatuses: [
        { name: "nextflow", image: "x", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "InvalidImageName", message: "couldn't parse image name" } } },
      ],
    });
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "HeadJobFailed", message: expect.stringContaining("InvalidImageName") });
  });

  it("keeps waiting through a transient image pull back-off", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, {
      phase: "Pending",
      containerStatuses: [{ name: "nextflow", image: "x", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ImagePullBackOff" } } }],
    });
    // Act
    const result = await check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    expect(result).toMatchObject({ phase: "Pending", done: false });
  });

  it("throws HeadJobFailed when the Job was deleted while the workflow waited", async () => {
    // Prepare
    const state = stateFor({}, RUN, { headJob: launched() });
    // Act
    const outcome = check(state);
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "HeadJobFailed", message: expect.stringContaining("no longer exists") });
  });
});

describe("UndoHeadJob", () => {
  it("deletes the Job with cascading propagation and its pods, and can run twice", async () => {
    // Prepare
    const headJob = await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    const otherJob = await apply(stateFor({}, OTHER_RUN));
    const otherOwner = kube().get<V1Job>("batch/v1", "Job", otherJob.jobName, NS)!;
    podOf(otherOwner, `${otherJob.jobName}-zzzzz`, { phase: "Running" });
    // Act
    const first = await compensate(stateFor({}, RUN, { headJob }));
    const second = await compensate(stateFor({}, RUN, { headJob }));
    // Assess
    expect(first.undone).toContain(`Job ${NS}/${JOB}`);
    expect(kube().callsOf("delete", "Job").map((c) => c.propagationPolicy)).toEqual([expect.stringMatching(/^(Background|Foreground)$/)]);
    expect(kube().all("Pod").map((p) => p.metadata?.name)).toEqual([`${otherJob.jobName}-zzzzz`]);
    expect(kube().all("Job").map((j) => j.metadata?.name)).toEqual([otherJob.jobName]);
    expect(second).toEqual({ undone: [], kept: [] });
  });

  it("deletes pods left behind by an orphaning delete", async () => {
    // Prepare
    await apply(stateFor());
    const pod = podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    // The Job is already gone (someone deleted it without propagation), its pod is orphaned.
    await kube().delete({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS } });
    expect(kube().get("v1", "Pod", pod.metadata!.name!, NS)).toBeDefined();
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result.undone).toEqual([`Pod ${NS}/${JOB}-abcde`]);
    expect(kube().all("Pod")).toEqual([]);
  });

  it("finds the Job by its derived name after a half-way failure ($.headJob empty)", async () => {
    // Prepare: the Job was created but the step's answer was lost (the Lambda timed out after the POST).
    await apply(stateFor());
    const state = stateFor();
    expect(state.headJob).toBeUndefined();
    // Act
    const result = await compensate(state);
    // Assess
    expect(result.undone).toEqual([`Job ${NS}/${JOB}`]);
    expect(job()).toBeUndefined();
  });

  it("keeps a Job of that name it did not create", async () => {
    // Prepare
    kube().seed({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS, labels: ownershipLabels("genomics", OTHER_RUN) } });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result).toEqual({ undone: [], kept: [`Job ${NS}/${JOB}: not created by this run`] });
    expect(job()).toBeDefined();
  });

  it("leaves a pod carrying the Job's name label that this run did not create", async () => {
    // Prepare
    await apply(stateFor());
    kube().seed({ apiVersion: "v1", kind: "Pod", metadata: { name: "lookalike", namespace: NS, labels: { "job-name": JOB } } });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(kube().all("Pod").map((p) => p.metadata?.name)).toEqual(["lookalike"]);
    expect(result).toEqual({ undone: [`Job ${NS}/${JOB}`], kept: [`Pod ${NS}/lookalike: not created by this run`] });
  });

  it("does nothing when the request has no head job", async () => {
    // Prepare
    const state = stateFor(null);
    expect(state.request.headJob).toBeUndefined();
    // Act
    const result = await compensate(state);
    // Assess
    expect(result).toEqual({ undone: [], kept: [] });
    expect(kube().calls).toEqual([]);
  });
});
