/**
 * A head pod that cannot start fails the run with HeadPodCannotStart, carrying the cluster's reason and message, and
 * the run is compensated: here the request asks for its shared (ReadWriteMany) work volume from gp3, an EBS class that
 * serves ReadWriteOnce only, so the claim is never provisioned and the scheduler cannot place the head pod.
 */
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../local/sandbox.js";
import { FAST, kubeObject, provision, pvcRequest, settled, until, useSandbox } from "../support/sandbox-runs.js";

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
});
