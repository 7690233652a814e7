/**
 * Runs that end without their Catch (#15 point 2), in the sandbox: a run stopped half-way (after IAM, namespace and
 * cluster access, while ConfigureStorage is still running) is compensated once the grace has passed: the local Step
 * Functions puts the status-change event on the default bus, the sandbox's rule hands it to the stopped-run handler,
 * and the compensation state machine undoes what the run made (also what the step still running made after the
 * stop), records the environment failed, releases the lease and emits ComputeEnvironmentFailed.
 */
import { describe, expect, it } from "vitest";
import { ListExecutionsCommand, StopExecutionCommand, type SFNClient } from "@aws-sdk/client-sfn";
import { createExecutionStoppedHandler } from "../../functions/events/execution-stopped.js";
import { EXECUTION_STATUS_CHANGE } from "../../functions/lib/workflow/stopped-run.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import type { Sandbox } from "../../local/sandbox.js";
import { schemaProblems } from "../support/event-schemas.js";
import {
  FAST,
  finish,
  holdKubeCreates,
  kubeObject,
  postProvision,
  provision,
  pvcRequest,
  RUN_TIMEOUT_MS,
  settled,
  until,
  useSandbox,
  type Started,
} from "../support/sandbox-runs.js";
import { createEnvironment, deleteEnvironment, readEnvironment, teardown } from "../support/teardown-runs.js";

/** aws-auth's resourceVersion moves with any edit; the rest must be as before. */
function comparable(objects: KubeObject[]): KubeObject[] {
  return objects.map((o) =>
    o.kind === "ConfigMap" && o.metadata.name === "aws-auth" ? { ...o, metadata: { ...o.metadata, resourceVersion: "(edited)" } } : o,
  );
}

async function compensations(sfn: SFNClient, sandbox: Sandbox) {
  return (await sfn.send(new ListExecutionsCommand({ stateMachineArn: sandbox.compensationStateMachineArn }))).executions ?? [];
}

describe("a run stopped half-way", () => {
  let sandbox: Sandbox;
  let sfn: SFNClient;
  useSandbox({ ...FAST, stoppedRunGraceMs: 1_000 }, (started) => ({ sandbox, sfn } = started));

  it("is undone once the grace has passed: nothing remains, the record is failed, the lease is free, the event was emitted", async () => {
    // Prepare: ConfigureStorage held at its PVC create, so the run is stopped with that step still running
    await settled(sandbox);
    const before = sandbox.snapshot();
    let reached!: () => void;
    const atStorage = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const unhold = holdKubeCreates("PersistentVolumeClaim", async () => {
      reached();
      await released;
    });
    const request = pvcRequest("halted", { namespace: "halted" });
    const answer = await postProvision(sandbox, request);
    expect(answer.status).toBe(202);
    const started = answer.body as Started;
    await atStorage;

    // Act: the operator stops the run; the step still running finishes afterwards (its PVC and ConfigMap)
    await sfn.send(new StopExecutionCommand({ executionArn: started.executionArn, cause: "stopped by the on-call operator" }));
    release();
    const run = await finish(sandbox, started);
    await until("the step that was running has finished", () => kubeObject(sandbox, "PersistentVolumeClaim", "halted", "tower-scratch"));
    unhold();
    const failedEvent = await until(
      "ComputeEnvironmentFailed for the stopped run",
      () => sandbox.events({ detailType: "ComputeEnvironmentFailed" }).find((e) => (e.detail as { tenant?: string }).tenant === "halted"),
      RUN_TIMEOUT_MS,
    );
    const [compensation] = await compensations(sfn, sandbox);
    await sandbox.stepFunctions.waitFor(compensation!.executionArn!, { timeoutMs: RUN_TIMEOUT_MS });
    await settled(sandbox);

    // Assess: the run was aborted, and Step Functions told the default bus
    expect(run.execution.status).toBe("ABORTED");
    const statusChange = sandbox
      .events({ detailType: EXECUTION_STATUS_CHANGE, eventBusName: "default" })
      .find((e) => (e.detail as { executionArn: string }).executionArn === started.executionArn);
    expect(statusChange).toMatchObject({ source: "aws.states", detail: { status: "ABORTED", stateMachineArn: sandbox.stateMachineArn } });
    // nothing the run made remains (the PVC made after the stop included)
    const after = sandbox.snapshot();
    expect(after.aws).toStrictEqual(before.aws);
    expect(comparable(after.kube)).toStrictEqual(comparable(before.kube));
    // the event: the stop, the step it was in, what was undone; valid against its schema
    expect(failedEvent.detail).toMatchObject({
      tenant: "halted",
      failedStep: "ConfigureStorage",
      error: { name: "ExecutionAborted" },
      couldNotUndo: [],
    });
    expect((failedEvent.detail as { error: { message: string } }).error.message).toContain("stopped by the on-call operator");
    expect((failedEvent.detail as { undone: string[] }).undone).toEqual(
      expect.arrayContaining(["PersistentVolumeClaim halted/tower-scratch", "Namespace halted"]),
    );
    expect(schemaProblems("ComputeEnvironmentFailed", failedEvent.detail)).toEqual([]);
    // the compensation's first undo began only once the grace had passed since the stop
    const history = (await sandbox.stepFunctions.getExecutionHistory({ executionArn: compensation!.executionArn!, maxResults: 1000 }))
      .events!;
    const firstUndo = history.find((e) => e.stateEnteredEventDetails?.name === "UndoHeadJob")!;
    expect(firstUndo.timestamp!.getTime()).toBeGreaterThanOrEqual(run.execution.stopDate!.getTime() + 1_000);
    // the record says failed, and a new run for the environment starts (the lease is free) and succeeds
    const record = await fetch(`${sandbox.apiUrl}/environments/halted/eu-west-1/research`).then((r) => r.json());
    expect(record).toMatchObject({ status: "failed" });
    const rerun = await provision(sandbox, request);
    expect(rerun.execution.status).toBe("SUCCEEDED");
  });

  it("a second delivery of the status-change event starts no second compensation", async () => {
    // Prepare: the status-change event of the run the first test stopped, delivered again
    const statusChange = sandbox
      .events({ detailType: EXECUTION_STATUS_CHANGE })
      .find((e) => (e.detail as { status: string }).status === "ABORTED")!;
    const failedBefore = sandbox.events({ detailType: "ComputeEnvironmentFailed" }).length;
    const handler = createExecutionStoppedHandler();
    const event = {
      version: "0",
      id: statusChange.eventId,
      "detail-type": statusChange.detailType,
      source: statusChange.source,
      account: statusChange.account,
      time: statusChange.time.toISOString(),
      region: statusChange.region,
      resources: statusChange.resources,
      detail: statusChange.detail,
    };
    // Act
    const again = await (handler as unknown as (e: unknown, c: unknown) => Promise<{ outcome: string }>)(event, {});
    // Assess
    expect(again.outcome).toBe("compensation-already-started");
    expect(await compensations(sfn, sandbox)).toHaveLength(1);
    expect(sandbox.events({ detailType: "ComputeEnvironmentFailed" })).toHaveLength(failedBefore);
  });
});

describe("a teardown stopped half-way", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, stoppedRunGraceMs: 1_000 }, (started) => (sandbox = started.sandbox));

  it("is recorded failed with its lease released at once, saying it was stopped; a repeated DELETE finishes the job", async () => {
    // Prepare: a ready environment; its teardown kept retrying in RemoveHeadJobs (every Job list throttled)
    await settled(sandbox);
    const before = sandbox.snapshot();
    const created = await createEnvironment(sandbox, pvcRequest("halted-rm", { namespace: "halted-rm" }));
    expect(created.execution.status).toBe("SUCCEEDED");
    sandbox.faults.inject({ operation: "kube:GET jobs", kind: "throttle" });
    const answer = await deleteEnvironment(sandbox, "halted-rm");
    expect(answer.status).toBe(202);
    await until(
      "the teardown is retrying its Job list",
      () => sandbox.faults.fired.some((f) => f.operation === "kube:GET jobs") || undefined,
    );

    // Act: the operator stops the teardown
    await sandbox.stepFunctions.stopExecution({ executionArn: answer.body.executionArn, cause: "stopped by the on-call operator" });
    sandbox.faults.clear();
    const stopped = await sandbox.stepFunctions.waitFor(answer.body.executionArn, { timeoutMs: RUN_TIMEOUT_MS });
    const record = await until("the record says failed", async () => {
      const body = (await readEnvironment(sandbox, "halted-rm")).body;
      return body.status === "failed" ? body : undefined;
    });

    // Assess: failed, the lease free, what it named kept, and why
    expect(stopped.status).toBe("ABORTED");
    expect(record.lease).toBeUndefined();
    expect(record.owned.roles).toEqual([expect.stringContaining("nfeks-halted-rm.research-launcher")]);
    expect(record.owned.remaining).toEqual([
      expect.stringMatching(/ended ABORTED \(stopped by the on-call operator\) before it finished: .* a repeated DELETE finishes the job$/),
    ]);

    // Act: DELETE again, at once (no waiting out the stopped teardown's lease)
    const again = await teardown(sandbox, "halted-rm");

    // Assess: removed, and the emulators as they were before the create
    expect(again.execution.status).toBe("SUCCEEDED");
    expect((await readEnvironment(sandbox, "halted-rm")).body).toMatchObject({ status: "removed", owned: {} });
    await settled(sandbox);
    const after = sandbox.snapshot();
    expect(after.aws).toStrictEqual(before.aws);
    expect(comparable(after.kube)).toStrictEqual(comparable(before.kube));
  });
});
