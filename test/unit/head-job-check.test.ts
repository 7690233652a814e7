import { describe, expect, it } from "vitest";
import { headJobTimeoutMinutes, nextCheckSeconds } from "../../functions/steps/head-job.js";
import type { HeadJobResult } from "../../functions/lib/workflow/workflow-state.js";
import { NS, RUN } from "../support/fixtures.js";
import { JOB, launched, minutesAfterLaunch, stateFor, T0, useHeadJobCluster, waiting } from "../support/head-job-cluster.js";

/* CheckHeadJob: reading the head job's state in the workflow's wait loop, and how long it waits. */

const { kube, apply, check, job, podOf } = useHeadJobCluster();

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
      message: expect.stringMatching(
        /pod nf-head-genomics-\w+-abcde.*container nextflow Error \(exit code 1\): Unknown project `nf-core\/rnaseqq`/,
      ),
    });
  });

  it("throws HeadJobFailed with the Job's condition when the Job failed without a pod to show", async () => {
    // Prepare
    await apply(stateFor());
    kube().setStatus("batch/v1", "Job", JOB, NS, {
      failed: 1,
      conditions: [
        { type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" },
      ],
    });
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: "HeadJobFailed",
      message: expect.stringContaining("BackoffLimitExceeded: Job has reached the specified backoff limit"),
    });
  });

  it("throws HeadPodCannotStart with the reason when the container config cannot be created", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, {
      phase: "Pending",
      containerStatuses: waiting("CreateContainerConfigError", 'secret "registry-creds" not found'),
    });
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: "HeadPodCannotStart",
      reason: "CreateContainerConfigError",
      detail: 'secret "registry-creds" not found',
      message: expect.stringContaining('cannot start: CreateContainerConfigError: secret "registry-creds" not found'),
    });
  });

  it("throws HeadPodCannotStart for an image name that can never be pulled", async () => {
    // Prepare
    await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, {
      phase: "Pending",
      containerStatuses: [
        {
          name: "nextflow",
          image: "x",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "InvalidImageName", message: "couldn't parse image name" } },
        },
      ],
    });
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: "HeadPodCannotStart",
      reason: "InvalidImageName",
      detail: "couldn't parse image name",
    });
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

  it.each(["ErrImagePull", "ImagePullBackOff"])("throws HeadPodCannotStart when %s lasts more than 5 minutes", async (reason) => {
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
      name: "HeadPodCannotStart",
      reason,
      detail: "pull access denied for nextflow/nextflw",
      message: expect.stringMatching(
        new RegExp(`could not be pulled for more than 5 minutes; .*container nextflow ${reason}: pull access denied`),
      ),
    });
  });

  const unschedulablePod = (message: string) =>
    podOf(job()!, `${JOB}-abcde`, {
      phase: "Pending",
      conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message }],
    });

  it.each([
    '0/3 nodes are available: persistentvolumeclaim "scratch" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.',
    'running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC "scratch"',
  ])("throws HeadPodCannotStart at once when the scheduler says waiting will not help: %s", async (message) => {
    // Prepare
    await apply(stateFor());
    unschedulablePod(message);
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: launched() }));
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "HeadPodCannotStart", reason: "Unschedulable", detail: message, transient: false });
  });

  it("waits 5 minutes for an Unschedulable head pod that a new node might fit, then throws HeadPodCannotStart", async () => {
    // Prepare
    const message =
      "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
    await apply(stateFor());
    unschedulablePod(message);
    minutesAfterLaunch(1);
    const first = await check(stateFor({}, RUN, { headJob: launched() }));
    minutesAfterLaunch(6);
    const atFiveMinutes = await check(stateFor({}, RUN, { headJob: first }));
    minutesAfterLaunch(6.1);
    // Act
    const outcome = check(stateFor({}, RUN, { headJob: atFiveMinutes }));
    // Assess
    expect(first).toMatchObject({
      done: false,
      phase: "Pending",
      unschedulableSince: new Date(T0.getTime() + 60_000).toISOString(),
      nextCheckSeconds: 20,
    });
    expect(atFiveMinutes.done).toBe(false);
    await expect(outcome).rejects.toMatchObject({
      name: "HeadPodCannotStart",
      reason: "Unschedulable",
      detail: message,
      message: expect.stringContaining("unschedulable for more than 5 minutes"),
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
    await expect(outcome).rejects.toMatchObject({
      name: "HeadJobTimedOut",
      message: expect.stringContaining("was still Running after 1440 minutes"),
    });
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
