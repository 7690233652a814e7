import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { V1ConfigMap, V1ContainerStatus, V1Job, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { apply, check, compensate, headJobTimeoutMinutes, nextCheckSeconds } from "../../functions/steps/head-job.js";
import { headJobName } from "../../functions/lib/domain/manifests.js";
import { ownershipLabels } from "../../functions/lib/domain/naming.js";
import type { HeadJobResult, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { NS, OTHER_RUN, RUN, resolvedCluster, stepState, useFakeKube } from "../support/fixtures.js";

const JOB = headJobName("genomics", RUN);
const PARAMS = `${JOB}-params`;
/** The launch time: the clock is fixed there, and tests move it on. */
const T0 = new Date("2025-01-01T00:00:00Z");

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(T0);
});
afterEach(() => {
  vi.useRealTimers();
});

/** Move the clock to this many minutes after the launch. */
function minutesAfterLaunch(minutes: number): void {
  vi.setSystemTime(T0.getTime() + minutes * 60_000);
}

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

function launched(checks = 0, extra: Partial<HeadJobResult> = {}): HeadJobResult {
  return { jobName: JOB, namespace: NS, phase: "Pending", done: false, checks, launchedAt: T0.toISOString(), nextCheckSeconds: 10, paramsConfigMap: PARAMS, ...extra };
}

function paramsConfigMap(): V1ConfigMap | undefined {
  return kube().get<V1ConfigMap>("v1", "ConfigMap", PARAMS, NS);
}

function waiting(reason: string, message?: string): V1ContainerStatus[] {
  return [{ name: "nextflow", image: "nextflow/nextflow:24.10.4", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason, ...(message ? { message } : {}) } } }];
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

  it("puts the params in the job's own ConfigMap, created before the Job and mounted next to the shared nextflow.config", async () => {
    // Prepare
    const state = stateFor({ params: { input: "s3://bucket/samples.csv", outdir: "/scratch/results" } });
    // Act
    await apply(state);
    // Assess
    const params = paramsConfigMap()!;
    expect(params.metadata?.labels).toMatchObject(ownershipLabels("genomics", RUN));
    expect(JSON.parse(params.data?.["params.json"] ?? "")).toEqual({ input: "s3://bucket/samples.csv", outdir: "/scratch/results" });
    const creates = kube().callsOf("create").map((c) => `${c.kind}/${c.name}`);
    expect(creates).toEqual([`ConfigMap/${PARAMS}`, `Job/${JOB}`]);
    const pod = job()!.spec!.template.spec!;
    expect(pod.volumes?.[0]?.projected?.sources?.map((source) => source.configMap?.name)).toEqual(["nextflow-config", PARAMS]);
    expect(pod.containers[0]?.args).toContain("/etc/nextflow/params.json");
  });

  it("does not let another run's launch rewrite this run's params", async () => {
    // Prepare
    await apply(stateFor({ params: { genome: "GRCh38" } }));
    // Act
    await apply(stateFor({ params: { genome: "GRCm39" } }, OTHER_RUN));
    // Assess
    expect(JSON.parse(paramsConfigMap()!.data!["params.json"]!)).toEqual({ genome: "GRCh38" });
    const other = kube().get<V1ConfigMap>("v1", "ConfigMap", `${headJobName("genomics", OTHER_RUN)}-params`, NS)!;
    expect(JSON.parse(other.data!["params.json"]!)).toEqual({ genome: "GRCm39" });
  });

  it("refuses a params ConfigMap of that name another execution made, before creating the Job", async () => {
    // Prepare
    kube().seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: PARAMS, namespace: NS, labels: ownershipLabels("genomics", OTHER_RUN) }, data: { "params.json": "{}" } });
    // Act
    const outcome = apply(stateFor());
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining(`ConfigMap ${NS}/${PARAMS}`) });
    expect(job()).toBeUndefined();
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
    expect(kube().all("ConfigMap")).toHaveLength(1);
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
    minutesAfterLaunch(2);
    // Act
    const result = await check(stateFor({}, RUN, { headJob: launched(2) }));
    // Assess
    expect(result).toEqual(launched(3, { nextCheckSeconds: 80 }));
    expect(kube().callsOf("list", "Pod")[0]?.labelSelector).toBe(`job-name=${JOB}`);
  });

  it("is done when the head pod runs and the request waits for running", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    // Act
    const result = await check(stateFor({ waitFor: "running" }, RUN, { headJob: launched() }));
    // Assess
    expect(result).toEqual(launched(1, { phase: "Running", done: true, podName: `${JOB}-abcde`, nextCheckSeconds: 20 }));
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

  it("throws HeadJobFailed with the reason when the container config cannot be created", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Pending", containerStatuses: waiting("CreateContainerConfigError", 'secret "registry-creds" not found') });
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: "HeadJobFailed",
      message: expect.stringContaining('container nextflow CreateContainerConfigError: secret "registry-creds" not found'),
    });
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

  it("keeps waiting through a transient image pull back-off, noting since when, and forgets it once the image pulls", async () => {
    // Prepare
    await apply(stateFor());
    const pod = podOf(job()!, `${JOB}-abcde`, { phase: "Pending", containerStatuses: waiting("ImagePullBackOff") });
    minutesAfterLaunch(1);
    // Act
    const backingOff = await check(stateFor({}, RUN, { headJob: launched(6) }));
    minutesAfterLaunch(4);
    const stillBackingOff = await check(stateFor({}, RUN, { headJob: backingOff }));
    kube().seed({ ...pod, status: { phase: "Running" } });
    minutesAfterLaunch(7);
    const running = await check(stateFor({ waitFor: "completed" }, RUN, { headJob: stillBackingOff }));
    // Assess
    const since = new Date(T0.getTime() + 60_000).toISOString();
    expect(backingOff).toMatchObject({ phase: "Pending", done: false, imagePullFailingSince: since });
    // Checked at least every minute while the image does not pull, so the grace period is not overshot by much.
    expect(backingOff.nextCheckSeconds).toBe(60);
    expect(stillBackingOff).toMatchObject({ done: false, imagePullFailingSince: since });
    expect(running).toMatchObject({ phase: "Running", done: false });
    expect(running).not.toHaveProperty("imagePullFailingSince");
  });

  it.each(["ErrImagePull", "ImagePullBackOff"])("throws HeadJobFailed when %s lasts more than 5 minutes", async (reason) => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Pending", containerStatuses: waiting(reason, "pull access denied for nextflow/nextflw") });
    minutesAfterLaunch(1);
    const first = await check(stateFor({}, RUN, { headJob: launched() }));
    minutesAfterLaunch(6);
    const atFiveMinutes = await check(stateFor({}, RUN, { headJob: first }));
    minutesAfterLaunch(6.1);
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: atFiveMinutes }));
    // Assess
    expect(atFiveMinutes.done).toBe(false);
    await expect(outcome).rejects.toMatchObject({
      name: "HeadJobFailed",
      message: expect.stringMatching(new RegExp(`could not be pulled for more than 5 minutes: .*container nextflow ${reason}: pull access denied`)),
    });
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

describe("CheckHeadJob: how long it waits", () => {
  it("waits 30 minutes for a pod to run and 24 hours for a job to complete, unless headJob.timeoutMinutes says otherwise", () => {
    // Act
    const timeouts = [
      headJobTimeoutMinutes({ waitFor: "running" }),
      headJobTimeoutMinutes({ waitFor: "completed" }),
      headJobTimeoutMinutes({ waitFor: "completed", timeoutMinutes: 4320 }),
    ];
    // Assess
    expect(timeouts).toEqual([30, 1440, 4320]);
  });

  it("pauses longer after each check: 10 s after the launch, doubling, capped at 5 minutes, never past the timeout", () => {
    // Act
    const pauses = [0, 1, 2, 3, 4, 5, 6, 50, 5000].map((checks) => nextCheckSeconds(checks));
    // Assess
    expect(pauses).toEqual([10, 20, 40, 80, 160, 300, 300, 300, 300]);
    expect(nextCheckSeconds(8, 42.5)).toBe(43);
    expect(nextCheckSeconds(8, 0.2)).toBe(1);
  });

  it("a day-long wait for completion stays far below the 25,000-event execution history", () => {
    // Prepare
    let elapsed = 0;
    let rounds = 0;
    // Act: the Wait loop's rounds until the 24-hour timeout
    while (elapsed < 24 * 3600) elapsed += nextCheckSeconds(rounds++, 24 * 3600 - elapsed);
    // Assess: ~9 history events a round (Wait, Task, Choice entered/exited and the Task's scheduled/started/succeeded)
    expect(rounds).toBeLessThan(300);
    expect(rounds * 9).toBeLessThan(25_000 / 5);
  });

  it("throws HeadJobTimedOut for a pod that is not running 30 minutes after the launch (waitFor running)", async () => {
    // Prepare
    await apply(stateFor());
    minutesAfterLaunch(29);
    const before = await check(stateFor({}, RUN, { headJob: launched(9) }));
    minutesAfterLaunch(30);
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: before }));
    // Assess
    expect(before).toMatchObject({ done: false, nextCheckSeconds: 60 });
    await expect(outcome).rejects.toMatchObject({
      name: "HeadJobTimedOut",
      message: expect.stringMatching(new RegExp(`head job ${NS}/${JOB} was still Pending after 30 minutes .*timeout 30 minutes`)),
    });
  });

  it("keeps waiting for a long-running job to complete well past 30 minutes, and times out after 24 hours (waitFor completed)", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    const state = stateFor({ waitFor: "completed" }, RUN, { headJob: launched(40) });
    minutesAfterLaunch(6 * 60);
    // Act
    const sixHoursIn = await check(state);
    minutesAfterLaunch(24 * 60);
    const outcome = check({ ...state, headJob: sixHoursIn });
    // Assess
    expect(sixHoursIn).toMatchObject({ phase: "Running", done: false, nextCheckSeconds: 300 });
    await expect(outcome).rejects.toMatchObject({ name: "HeadJobTimedOut", message: expect.stringContaining("was still Running after 1440 minutes") });
  });

  it("uses the request's headJob.timeoutMinutes", async () => {
    // Prepare
    await apply(stateFor());
    minutesAfterLaunch(5);
    // Act
    const outcome = check(stateFor({ timeoutMinutes: 5 }, RUN, { headJob: launched(3) }));
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "HeadJobTimedOut", message: expect.stringContaining("timeout 5 minutes") });
  });

  it("is done, not timed out, when the job got there by the time of a late check", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    minutesAfterLaunch(45);
    // Act
    const result = await check(stateFor({}, RUN, { headJob: launched(12) }));
    // Assess
    expect(result).toMatchObject({ phase: "Running", done: true });
  });

  it("counts from its first check when the state has no launch time", async () => {
    // Prepare
    await apply(stateFor());
    minutesAfterLaunch(90);
    const { launchedAt: _none, ...withoutLaunchTime } = launched(3);
    // Act
    const result = await check(stateFor({}, RUN, { headJob: withoutLaunchTime as HeadJobResult }));
    // Assess
    expect(result).toMatchObject({ done: false, launchedAt: new Date(T0.getTime() + 90 * 60_000).toISOString() });
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
    expect(first.undone.at(-1)).toBe(`ConfigMap ${NS}/${PARAMS}`);
    expect(kube().all("ConfigMap").map((c) => c.metadata?.name)).toEqual([`${otherJob.jobName}-params`]);
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
    expect(result.undone).toEqual([`Pod ${NS}/${JOB}-abcde`, `ConfigMap ${NS}/${PARAMS}`]);
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
    expect(result.undone).toEqual([`Job ${NS}/${JOB}`, `ConfigMap ${NS}/${PARAMS}`]);
    expect(job()).toBeUndefined();
    expect(paramsConfigMap()).toBeUndefined();
  });

  it("keeps a Job and a params ConfigMap of those names it did not create", async () => {
    // Prepare
    kube().seed({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS, labels: ownershipLabels("genomics", OTHER_RUN) } });
    kube().seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: PARAMS, namespace: NS, labels: ownershipLabels("genomics", OTHER_RUN) } });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result).toEqual({ undone: [], kept: [`Job ${NS}/${JOB}: not created by this run`, `ConfigMap ${NS}/${PARAMS}: not created by this run`] });
    expect(job()).toBeDefined();
    expect(paramsConfigMap()).toBeDefined();
  });

  it("deletes the params ConfigMap when the launch failed before the Job was created", async () => {
    // Prepare: the ConfigMap was created, then the Job's create failed for good.
    kube().seed({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS } });
    await expect(apply(stateFor())).rejects.toMatchObject({ name: "OwnershipConflict" });
    expect(paramsConfigMap()).toBeDefined();
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result).toEqual({ undone: [`ConfigMap ${NS}/${PARAMS}`], kept: [`Job ${NS}/${JOB}: not created by this run`] });
    expect(paramsConfigMap()).toBeUndefined();
  });

  it("leaves a pod carrying the Job's name label that this run did not create", async () => {
    // Prepare
    await apply(stateFor());
    kube().seed({ apiVersion: "v1", kind: "Pod", metadata: { name: "lookalike", namespace: NS, labels: { "job-name": JOB } } });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(kube().all("Pod").map((p) => p.metadata?.name)).toEqual(["lookalike"]);
    expect(result).toEqual({ undone: [`Job ${NS}/${JOB}`, `ConfigMap ${NS}/${PARAMS}`], kept: [`Pod ${NS}/lookalike: not created by this run`] });
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
