/**
 * A tenant re-run right after a compensated failure meets its namespace still Terminating: the run's claim carries a
 * finalizer a controller has not released yet (as a CSI driver's or a backup operator's would), so the namespace
 * controller cannot finish. CreateNamespaceAndRbac raises NamespaceTerminating, the state machine retries it on its
 * own schedule, and the run succeeds once the finalizer is released, the namespace gone and created again.
 */
import { GetExecutionHistoryCommand, type HistoryEvent, type SFNClient } from "@aws-sdk/client-sfn";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../local/sandbox.js";
import { PERSISTENT_VOLUME_CLAIMS } from "../../local/kube/resources.js";
import { FAST, finish, kubeObject, postProvision, provision, pvcRequest, settled, until, useSandbox } from "../support/sandbox-runs.js";

const HOLD = "backup.example.com/snapshot-pending";

async function failedAttempts(sfn: SFNClient, executionArn: string): Promise<string[]> {
  const events: HistoryEvent[] = (await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000 }))).events ?? [];
  return events.filter((e) => e.type === "LambdaFunctionFailed").map((e) => e.lambdaFunctionFailedEventDetails?.error ?? "?");
}

describe("a re-run while the namespace of a compensated run is still Terminating", () => {
  let sandbox: Sandbox;
  let sfn: SFNClient;
  // Retries 400 ms apart (8 attempts: 3.2 s): the definition's NamespaceTerminating schedule is about 3.5 minutes.
  useSandbox({ ...FAST, retryIntervalMs: 400 }, (started) => ({ sandbox, sfn } = started));

  it("retries NamespaceTerminating until the namespace is gone, then succeeds", async () => {
    // Prepare: a run that fails at its last step (Report) after its claim got a finalizer someone else releases later
    await settled(sandbox);
    const request = pvcRequest("phoenix", { namespace: "phoenix", headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });
    const unsubscribe = sandbox.kube.store.subscribe((e) => {
      if (e.type !== "ADDED" || e.resourceType !== PERSISTENT_VOLUME_CLAIMS || e.object.metadata.namespace !== "phoenix") return;
      setTimeout(
        () =>
          sandbox.kube.store.mutate(PERSISTENT_VOLUME_CLAIMS, "phoenix", e.object.metadata.name!, (c) => c.metadata.finalizers?.push(HOLD)),
        0,
      );
    });
    sandbox.faults.inject({ operation: "events:PutEvents", kind: "permanent", times: 1 });
    const failed = await provision(sandbox, request);
    unsubscribe();
    const terminating = await until(
      "the namespace controller to name the finalizer",
      () => {
        const ns = kubeObject(sandbox, "Namespace", undefined, "phoenix");
        return ns?.status?.conditions?.some(
          (c: { type: string; message: string }) => c.type === "NamespaceFinalizersRemaining" && c.message.includes(HOLD),
        )
          ? ns
          : undefined;
      },
      5_000,
    );

    // Act: re-run; once it has met the Terminating namespace, the finalizer is released
    const answer = await postProvision(sandbox, request);
    await until(
      "the re-run to meet the Terminating namespace",
      async () => (await failedAttempts(sfn, answer.body.executionArn)).includes("NamespaceTerminating"),
      10_000,
    );
    const claim = sandbox.kube.store.list(PERSISTENT_VOLUME_CLAIMS, { namespace: "phoenix" })[0]!;
    sandbox.kube.store.mutate(PERSISTENT_VOLUME_CLAIMS, "phoenix", claim.metadata.name!, (c) => {
      c.metadata.finalizers = (c.metadata.finalizers ?? []).filter((f: string) => f !== HOLD);
    });
    const rerun = await finish(sandbox, answer.body);

    // Assess
    expect(failed.execution.status).toBe("FAILED");
    expect(terminating.status?.phase).toBe("Terminating");
    expect(rerun.execution.status).toBe("SUCCEEDED");
    const errors = await failedAttempts(sfn, rerun.started.executionArn);
    expect(new Set(errors)).toEqual(new Set(["NamespaceTerminating"]));
    expect(rerun.view.steps.find((s) => s.name === "CreateNamespaceAndRbac")).toMatchObject({
      status: "succeeded",
      retries: errors.length,
    });
    const namespace = kubeObject(sandbox, "Namespace", undefined, "phoenix");
    expect(namespace?.status?.phase).toBe("Active");
    expect(namespace?.metadata.uid).not.toBe(terminating.metadata.uid);
  });
});
