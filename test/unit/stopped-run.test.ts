/**
 * Runs that end without their Catch: the compensation state machine runs provision's own Undo states, and the
 * stopped-run handler starts it once per stopped run, with the state rebuilt from the run's history, only for the
 * provision state machine's runs whose own Catch did not report.
 */
import "aws-sdk-client-mock-vitest/extend";
import { readFileSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import {
  ExecutionAlreadyExists,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { compensateStoppedRun } from "../../functions/events/execution-stopped.js";
import type { EventBridgeEvent } from "aws-lambda";
import {
  compensationInput,
  EXECUTION_STATUS_CHANGE,
  type ExecutionStatusChange,
  recordedItsRemoval,
  reportedItsOutcome,
  stateFromHistory,
  stopError,
} from "../../functions/lib/workflow/stopped-run.js";

const provision = JSON.parse(readFileSync("statemachines/provision.asl.json", "utf8"));
const compensation = JSON.parse(readFileSync("statemachines/compensate-stopped.asl.json", "utf8"));

const MACHINE = "arn:aws:states:eu-west-1:111122223333:stateMachine:provision";
const COMPENSATION = "arn:aws:states:eu-west-1:111122223333:stateMachine:compensate-stopped";
const EXECUTION = "arn:aws:states:eu-west-1:111122223333:execution:provision:genomics_k1";
const STOPPED_AT = Date.parse("2026-12-05T08:00:00.000Z");
const START = {
  request: { tenant: "genomics", cluster: { name: "research", region: "eu-west-1" } },
  execution: { name: "genomics_k1", id: EXECUTION, startTime: "2026-12-05T07:59:00.000Z" },
};

let nextId = 1;
function entered(name: string, input: unknown = {}): HistoryEvent {
  return {
    id: nextId++,
    type: "TaskStateEntered",
    timestamp: new Date(STOPPED_AT - 1000),
    stateEnteredEventDetails: { name, input: JSON.stringify(input) },
  };
}
function exited(name: string, output: unknown, type: HistoryEvent["type"] = "TaskStateExited"): HistoryEvent {
  return { id: nextId++, type, timestamp: new Date(STOPPED_AT - 500), stateExitedEventDetails: { name, output: JSON.stringify(output) } };
}

/** A run stopped in ConfigureStorage: Start, both Parallel branches and GrantClusterAccess recorded their results. */
function stoppedHistory(): HistoryEvent[] {
  nextId = 1;
  return [
    { id: nextId++, type: "ExecutionStarted", timestamp: new Date(STOPPED_AT - 2000) },
    entered("Start"),
    exited("Start", START, "PassStateExited"),
    entered("CreateIamResources"),
    exited("CreateIamResources", { ...START, iam: { launcherArn: "arn:aws:iam::111122223333:role/l" } }),
    entered("CreateNamespaceAndRbac"),
    exited("CreateNamespaceAndRbac", { ...START, rbac: { namespace: "tower-nf" } }),
    entered("GrantClusterAccess"),
    exited("GrantClusterAccess", {
      ...START,
      iam: { launcherArn: "arn:aws:iam::111122223333:role/l" },
      rbac: { namespace: "tower-nf" },
      access: { method: "access-entry" },
    }),
    entered("ConfigureStorage"),
    { id: nextId++, type: "LambdaFunctionScheduled", previousEventId: nextId - 2, timestamp: new Date(STOPPED_AT - 100) },
    { id: nextId++, type: "ExecutionAborted", timestamp: new Date(STOPPED_AT), executionAbortedEventDetails: { cause: "operator" } },
  ];
}

function statusChange(status: string, stateMachineArn = MACHINE): EventBridgeEvent<string, ExecutionStatusChange> {
  return {
    version: "0",
    id: "e-1",
    "detail-type": EXECUTION_STATUS_CHANGE,
    source: "aws.states",
    account: "111122223333",
    time: new Date(STOPPED_AT).toISOString(),
    region: "eu-west-1",
    resources: [EXECUTION],
    detail: { executionArn: EXECUTION, stateMachineArn, name: "genomics_k1", status, startDate: STOPPED_AT - 2000, stopDate: STOPPED_AT },
  };
}

describe("statemachines/compensate-stopped.asl.json", () => {
  it("waits until the time it is given, then runs provision's own Undo states and ReportFailure, unchanged", () => {
    // Prepare
    const shared = [
      "UndoHeadJob",
      "UndoStorage",
      "UndoClusterAccess",
      "UndoNamespaceAndRbac",
      "UndoIamResources",
      "ReportFailure",
      "FailWithoutReport",
      "Failed",
    ];
    // Assess
    expect(compensation.StartAt).toBe("WaitForRunningSteps");
    expect(compensation.States.WaitForRunningSteps).toMatchObject({ Type: "Wait", TimestampPath: "$.waitUntil", Next: "RestoreRunState" });
    expect(compensation.States.RestoreRunState).toMatchObject({ Type: "Pass", OutputPath: "$.state", Next: "UndoHeadJob" });
    for (const name of shared) expect(compensation.States[name], name).toEqual(provision.States[name]);
    expect(Object.keys(compensation.States).sort()).toEqual(["WaitForRunningSteps", "RestoreRunState", ...shared].sort());
  });
});

describe("the state rebuilt from a stopped run's history", () => {
  it("holds every result recorded, both Parallel branches', and says how and where the run stopped", () => {
    // Act
    const input = compensationInput(statusChange("ABORTED").detail, stoppedHistory(), 120)!;
    // Assess
    expect(input.waitUntil).toBe("2026-12-05T08:02:00.000Z");
    expect(input.state).toMatchObject({
      ...START,
      iam: { launcherArn: expect.any(String) },
      rbac: { namespace: "tower-nf" },
      access: { method: "access-entry" },
      failedStep: "ConfigureStorage",
    });
    expect(input.state.error).toEqual({
      Error: "ExecutionAborted",
      Cause: "The execution was stopped: operator; its undo steps had not run.",
    });
    expect(input.state).not.toHaveProperty("storage");
  });

  it("a run stopped before its Start state has nothing to undo", () => {
    // Act
    const input = compensationInput(statusChange("ABORTED").detail, stoppedHistory().slice(0, 2), 120);
    // Assess
    expect(input).toBeUndefined();
    expect(stateFromHistory(stoppedHistory().slice(0, 3))).toEqual(START);
  });

  it("names a timeout States.Timeout and keeps a failure's own error", () => {
    // Prepare
    const failed: HistoryEvent = {
      id: 99,
      type: "ExecutionFailed",
      timestamp: new Date(STOPPED_AT),
      executionFailedEventDetails: { error: "States.DataLimitExceeded", cause: "too big" },
    };
    // Act
    const timedOut = stopError(statusChange("TIMED_OUT").detail, stoppedHistory());
    const failure = stopError(statusChange("FAILED").detail, [...stoppedHistory().slice(0, -1), failed]);
    // Assess
    expect(timedOut.Error).toBe("States.Timeout");
    expect(failure).toEqual({ Error: "States.DataLimitExceeded", Cause: "too big" });
  });

  it("a FAILED run whose ReportFailure reported is done; one that failed past it (FailWithoutReport) is not", () => {
    // Prepare
    const reported = [...stoppedHistory(), entered("ReportFailure"), entered("Failed")];
    const notReported = [...stoppedHistory(), entered("ReportFailure"), entered("FailWithoutReport"), entered("Failed")];
    // Assess
    expect(reportedItsOutcome(reported)).toBe(true);
    expect(reportedItsOutcome(notReported)).toBe(false);
    expect(reportedItsOutcome(stoppedHistory())).toBe(false);
  });
});

describe("whether a teardown recorded its own removal", () => {
  const lambda = (type: HistoryEvent["type"]): HistoryEvent => ({ id: nextId++, type, timestamp: new Date(STOPPED_AT - 700) });
  const ranStep = (name: string, outcome: HistoryEvent["type"]) => [entered(name), lambda(outcome), exited(name, {})];

  it("only when RecordRemoval's Lambda succeeded: one that could not write the registry exits through its Catch, unrecorded", () => {
    // Prepare
    const removals = [
      ...ranStep("RemoveClusterAccess", "LambdaFunctionSucceeded"),
      ...ranStep("RemoveIamResources", "LambdaFunctionSucceeded"),
    ];
    const recorded = [...removals, ...ranStep("RecordRemoval", "LambdaFunctionSucceeded"), entered("WasEverythingRemoved")];
    const recordFailed = [...removals, ...ranStep("RecordRemoval", "LambdaFunctionFailed"), entered("RecordFailed")];
    // Assess
    expect(recordedItsRemoval(recorded)).toBe(true);
    expect(recordedItsRemoval(recordFailed)).toBe(false);
    expect(recordedItsRemoval(removals)).toBe(false);
  });
});

describe("the stopped-run handler", () => {
  const client = new SFNClient({ region: "eu-west-1" });
  const sfn = mockClient(client);
  const deps = { sfn: client, stateMachineArn: MACHINE, compensationStateMachineArn: COMPENSATION, graceSeconds: 120 };

  beforeEach(() => {
    sfn.reset();
    sfn.on(GetExecutionHistoryCommand).resolves({ events: stoppedHistory() });
    sfn.on(StartExecutionCommand).resolves({ executionArn: `${COMPENSATION}:x`, startDate: new Date() });
  });

  it("starts the compensation for the stopped run, named after it, beginning after the grace", async () => {
    // Act
    const outcome = await compensateStoppedRun(statusChange("ABORTED"), deps);
    // Assess
    expect(outcome).toMatchObject({ outcome: "compensation-started", waitUntil: "2026-12-05T08:02:00.000Z" });
    const input = sfn.commandCalls(StartExecutionCommand)[0].args[0].input;
    expect(input.stateMachineArn).toBe(COMPENSATION);
    expect(input.name).toMatch(/^undo-genomics_k1-[0-9a-f]{12}$/);
    expect(JSON.parse(input.input!).state.execution.id).toBe(EXECUTION);
  });

  it("a second delivery finds the compensation already started (same name) and starts nothing else", async () => {
    // Prepare
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: "Execution Already Exists", $metadata: {} }));
    // Act
    const outcome = await compensateStoppedRun(statusChange("TIMED_OUT"), deps);
    // Assess
    expect(outcome.outcome).toBe("compensation-already-started");
  });

  it("ignores another state machine's runs and runs whose own Catch reported", async () => {
    // Prepare
    const other = await compensateStoppedRun(statusChange("ABORTED", `${MACHINE}-other`), deps);
    sfn.on(GetExecutionHistoryCommand).resolves({ events: [...stoppedHistory(), entered("ReportFailure"), entered("Failed")] });
    // Act
    const reported = await compensateStoppedRun(statusChange("FAILED"), deps);
    const succeeded = await compensateStoppedRun(statusChange("SUCCEEDED"), deps);
    // Assess
    expect([other.outcome, reported.outcome, succeeded.outcome]).toEqual(["ignored", "ignored", "ignored"]);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });
});
