/**
 * A head pod that cannot start fails the run with HeadPodCannotStart, carrying the cluster's reason and message, and
 * the run is compensated:
 *  - the request asks for its shared (ReadWriteMany) work volume from gp3, an EBS class that serves ReadWriteOnce
 *    only, so the claim is never provisioned and the scheduler cannot place the head pod (fatal at once);
 *  - the head job's image is not in the sandbox's image registry, so the kubelet's pulls fail (ErrImagePull, then
 *    ImagePullBackOff); the product waits out its grace period (IMAGE_PULL_GRACE_MINUTES, on the wall clock, which
 *    the test moves on once the product has seen the pull failing) and then gives up.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Sandbox } from "../../local/sandbox.js";
import { IMAGE_PULL_GRACE_MINUTES } from "../../functions/steps/head-job.js";
import { summariseHistory } from "../../functions/lib/workflow/execution-summary.js";
import { resetKubeClients } from "../../functions/lib/kube/kube-client.js";
import {
  FAST,
  finish,
  kubeObject,
  kubeObjects,
  postProvision,
  provision,
  pvcRequest,
  settled,
  until,
  useSandbox,
  type Started,
} from "../support/sandbox-runs.js";

describe("a head pod that cannot start", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => (sandbox = started.sandbox));

  it("fails the run with HeadPodCannotStart (the scheduler's reason and message) and undoes it", async () => {
    // Prepare
    await settled(sandbox);
    const request = pvcRequest("ebs-shared", {
      namespace: "ebs-shared",
      storage: { type: "pvc", storageClass: "gp3", size: "100Gi" },
      headJob: { pipeline: "nextflow-io/hello", waitFor: "running" },
    });

    // Act
    const run = await provision(sandbox, request);

    // Assess
    expect(run.execution.status).toBe("FAILED");
    expect(run.execution.error).toBe("HeadPodCannotStart");
    expect(run.view).toMatchObject({ status: "FAILED", failedStep: "CheckHeadJob", error: "HeadPodCannotStart" });
    expect(run.execution.cause).toContain(
      'cannot start: Unschedulable: running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC',
    );
    expect(run.execution.cause).toMatch(/Undone: /);
    await until("the namespace to be gone", () => kubeObject(sandbox, "Namespace", undefined, "ebs-shared") === undefined, 10_000);
  });

  describe("whose image the registry does not have", () => {
    afterEach(() => {
      vi.useRealTimers();
      // Clients cached under the moved clock hold tokens dated in its future.
      resetKubeClients();
    });

    /** The last CheckHeadJob result the run's history holds, once the product has seen the image pull failing. */
    async function pullFailingSeen(started: Started): Promise<{ imagePullFailingSince: string } | undefined> {
      const { events } = await sandbox.stepFunctions.getExecutionHistory({ executionArn: started.executionArn, maxResults: 1000 });
      const check = summariseHistory(events ?? []).steps.find((step) => step.name === "CheckHeadJob");
      const result = check?.result as { imagePullFailingSince?: string } | undefined;
      return result?.imagePullFailingSince ? { imagePullFailingSince: result.imagePullFailingSince } : undefined;
    }

    it("fails the run at CheckHeadJob with HeadPodCannotStart naming the image and the waiting reason, and undoes everything", async () => {
      // Prepare
      await settled(sandbox);
      const before = sandbox.snapshot();
      const image = "ghcr.io/acme/nextflow-pipelines:2.1";
      expect(sandbox.kube.images.has(image)).toBe(false);
      const request = pvcRequest("no-image", {
        namespace: "no-image",
        headJob: { pipeline: "nextflow-io/hello", image, waitFor: "running" },
      });
      // Date (not the timers the emulators and the runner wait with) follows the wall clock until the test moves it.
      vi.useFakeTimers({ toFake: ["Date"], shouldAdvanceTime: true });

      // Act
      const answer = await postProvision(sandbox, request);
      expect(answer.status).toBe(202);
      const started = answer.body as Started;
      await until("the head pod to wait for its image", () => {
        const pod = kubeObjects(sandbox, "Pod", "no-image")[0];
        const reason = pod?.status?.containerStatuses?.[0]?.state?.waiting?.reason;
        return (reason === "ErrImagePull" || reason === "ImagePullBackOff") && reason;
      });
      await until("the product to see the pull failing", () => pullFailingSeen(started));
      vi.setSystemTime(Date.now() + (IMAGE_PULL_GRACE_MINUTES + 1) * 60_000);
      const run = await finish(sandbox, started);
      await until("the namespace to be gone", () => kubeObject(sandbox, "Namespace", undefined, "no-image") === undefined, 10_000);

      // Assess
      expect(run.execution.status).toBe("FAILED");
      expect(run.execution.error).toBe("HeadPodCannotStart");
      expect(run.view).toMatchObject({ status: "FAILED", failedStep: "CheckHeadJob", error: "HeadPodCannotStart" });
      // The cause names a head-job step (the report names the launch for the head job's own errors), not a later one.
      expect(run.execution.cause).toMatch(
        /^Step (LaunchHeadJob|CheckHeadJob) failed: HeadPodCannotStart: head job no-image\/nf-head-no-image-/,
      );
      expect(run.execution.cause).toContain(`(its image ${image} could not be pulled for more than ${IMAGE_PULL_GRACE_MINUTES} minutes; `);
      expect(run.execution.cause).toMatch(/\): (ErrImagePull|ImagePullBackOff): /);
      expect(run.execution.cause).toMatch(/Undone: /);
      await settled(sandbox);
      const after = sandbox.snapshot();
      expect(after.aws).toStrictEqual(before.aws);
      expect(after.kube).toStrictEqual(before.kube);
    });
  });
});
