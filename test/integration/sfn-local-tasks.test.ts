/**
 * Tasks in the local Step Functions runner, each with a definition of its own: a Task past its TimeoutSeconds
 * (and an execution past its own), and a catalog Task bound to the real functions/steps handler, with the
 * definitions the runner refuses (a Task nothing implements, unresolved placeholders). Also the 256 KiB quota on
 * every state's input and output, Tasks or not, inside Parallel branches and Map iterations too.
 */
import "aws-sdk-client-mock-vitest/extend";
import { afterAll, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { HistoryEvent } from "@aws-sdk/client-sfn";
import { LocalStepFunctions } from "../../local/sfn/runner.js";

const REGION = "eu-west-1";
const ACCOUNT = "111122223333";

describe("timeouts", () => {
  it("reports a Task past its TimeoutSeconds as LambdaFunctionTimedOut, and an execution past its TimeoutSeconds as TIMED_OUT", async () => {
    // Prepare
    const local = new LocalStepFunctions({
      region: REGION,
      accountId: ACCOUNT,
      functions: { Slow: () => new Promise((resolve) => setTimeout(() => resolve({ late: true }), 1_500)) },
      stateMachines: {
        slow: {
          TimeoutSeconds: 2,
          StartAt: "SlowTask",
          States: {
            SlowTask: {
              Type: "Task",
              Resource: "${SlowFunctionArn}",
              TimeoutSeconds: 1,
              Catch: [{ ErrorEquals: ["States.Timeout"], ResultPath: "$.timeout", Next: "Linger" }],
              End: true,
            },
            Linger: { Type: "Wait", Seconds: 30, End: true },
          },
        },
      },
    });
    // Act
    const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("slow"), name: "slow-1", input: "{}" });
    const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });
    const events = (await local.getExecutionHistory({ executionArn, maxResults: 1000 })).events!;
    // Assess
    expect(described.status).toBe("TIMED_OUT");
    expect(events.find((e) => e.type === "LambdaFunctionTimedOut")).toMatchObject({
      lambdaFunctionTimedOutEventDetails: { error: "States.Timeout" },
    });
    expect(events.find((e) => e.type === "LambdaFunctionScheduled")!.lambdaFunctionScheduledEventDetails!.timeoutInSeconds).toBe(1);
    expect(events.map((e) => e.type).slice(-2)).toEqual(["WaitStateAborted", "ExecutionTimedOut"]);
  });
});

describe("binding Tasks to functions/steps", () => {
  const events = mockClient(EventBridgeClient);

  afterAll(() => events.restore());

  it("runs the catalog's handler for a ${...FunctionArn} Task (Report → functions/steps/report.ts ready)", async () => {
    // Prepare
    events.reset();
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "e-1" }] });
    const local = new LocalStepFunctions({
      region: REGION,
      accountId: ACCOUNT,
      stateMachines: { report: { StartAt: "Report", States: { Report: { Type: "Task", Resource: "${ReportFunctionArn}", End: true } } } },
    });
    const input = {
      request: { tenant: "genomics", cluster: { name: "research", region: REGION }, storage: { type: "pvc" } },
      execution: { name: "r-1", id: "x" },
    };
    // Act
    const { executionArn } = await local.startExecution({
      stateMachineArn: local.stateMachineArn("report"),
      name: "r-1",
      input: JSON.stringify(input),
    });
    const described = await local.waitFor(executionArn!);
    // Assess
    expect({ status: described.status, error: described.error, cause: described.cause }).toEqual({ status: "SUCCEEDED" });
    expect(events).toHaveReceivedCommandWith(PutEventsCommand, {
      Entries: [expect.objectContaining({ DetailType: "ComputeEnvironmentReady", Source: "nf-eks-provisioner" })],
    });
    expect(JSON.parse(described.output!).detail.tenant).toBe("genomics");
  });

  it("refuses a Task that no catalog entry or override implements, and unresolved placeholders", () => {
    // Act + Assess
    expect(
      () =>
        new LocalStepFunctions({
          stateMachines: { x: { StartAt: "Mystery", States: { Mystery: { Type: "Task", Resource: "${MysteryFunctionArn}", End: true } } } },
        }),
    ).toThrow(/Task Mystery.*no handler/);
    expect(
      () =>
        new LocalStepFunctions({
          stateMachines: { x: { StartAt: "P", States: { P: { Type: "Pass", Result: "${BucketName}", End: true } } } },
        }),
    ).toThrow(/unresolved placeholders.*\$\{BucketName\}/);
  });
});

describe("the 256 KiB quota on every state's input and output (#13 point 5)", () => {
  const KIB = 1024;
  const blob = (kib: number) => "x".repeat(kib * KIB);
  const CATCH_ALL = [{ ErrorEquals: ["States.ALL"], Next: "Caught" }];

  async function runToEnd(definition: object, functions: Record<string, (event: any) => unknown> = {}, input: object = {}) {
    const local = new LocalStepFunctions({ region: REGION, accountId: ACCOUNT, functions, stateMachines: { m: definition } });
    const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("m"), input: JSON.stringify(input) });
    const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });
    const events = (await local.getExecutionHistory({ executionArn, maxResults: 1000 })).events!;
    return { described, events, types: events.map((e) => e.type) };
  }

  /** The history stays one a reader can follow: ids 1..n, each pointing back to an earlier event, one terminal event last. */
  function expectWellFormed(events: HistoryEvent[]) {
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    for (const e of events) expect(e.previousEventId!).toBeLessThan(e.id!);
    expect(events.filter((e) => e.type!.startsWith("Execution") && e.type !== "ExecutionStarted")).toHaveLength(1);
  }

  it("fails a Parallel whose two 150 KiB branch results make 300 KiB, which its Catch on States.ALL does not take", async () => {
    // Prepare: each branch's result is under the quota; only the Parallel's output is over it
    const branch = (name: string) => ({
      StartAt: name,
      States: { [name]: { Type: "Task", Resource: `\${${name}FunctionArn}`, End: true } },
    });
    const definition = {
      StartAt: "Both",
      States: {
        Both: { Type: "Parallel", Branches: [branch("Left"), branch("Right")], Catch: CATCH_ALL, End: true },
        Caught: { Type: "Succeed" },
      },
    };
    const half = () => ({ blob: blob(150) });

    // Act
    const { described, events, types } = await runToEnd(definition, { Left: half, Right: half });

    // Assess
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("States.DataLimitExceeded");
    expect(described.cause).toMatch(/'Both' has an output with a size exceeding/);
    expect(types).not.toContain("SucceedStateEntered");
    expect(types.slice(-2)).toEqual(["ParallelStateFailed", "ExecutionFailed"]);
    expect(events.at(-1)!.executionFailedEventDetails!.error).toBe("States.DataLimitExceeded");
    expectWellFormed(events);
  });

  it("fails a Task whose small result makes the state too large, which its Catch on States.ALL does not take", async () => {
    // Prepare: each result is 150 KiB, under the quota; the second makes the state 300 KiB
    const definition = {
      StartAt: "First",
      States: {
        First: { Type: "Task", Resource: "${FirstFunctionArn}", ResultPath: "$.first", Next: "Second" },
        Second: { Type: "Task", Resource: "${SecondFunctionArn}", ResultPath: "$.second", Catch: CATCH_ALL, End: true },
        Caught: { Type: "Succeed" },
      },
    };
    const half = () => ({ blob: blob(150) });

    // Act
    const { described, events } = await runToEnd(definition, { First: half, Second: half });

    // Assess
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("States.DataLimitExceeded");
    expect(described.cause).toMatch(/'Second' has an output with a size exceeding/);
    expect(events.filter((e) => e.type === "LambdaFunctionSucceeded")).toHaveLength(2); // the Lambda itself answered
    expectWellFormed(events);
  });

  it("fails a Pass state whose 300 KiB Result is its output", async () => {
    // Prepare
    const definition = { StartAt: "Big", States: { Big: { Type: "Pass", Result: { blob: blob(300) }, End: true } } };

    // Act
    const { described, events } = await runToEnd(definition);

    // Assess
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("States.DataLimitExceeded");
    expect(described.cause).toMatch(/'Big' has an output with a size exceeding/);
    expectWellFormed(events);
  });

  it("fails a Task whose Parameters make a 300 KiB input before its Lambda runs, past its Catch", async () => {
    // Prepare: the state's input is 150 KiB; the Lambda's payload would hold it twice
    let invoked = false;
    const definition = {
      StartAt: "Doubled",
      States: {
        Doubled: {
          Type: "Task",
          Resource: "${DoubledFunctionArn}",
          Parameters: { "a.$": "$.blob", "b.$": "$.blob" },
          Catch: CATCH_ALL,
          End: true,
        },
        Caught: { Type: "Succeed" },
      },
    };
    const doubled = () => {
      invoked = true;
      return {};
    };

    // Act
    const { described, events } = await runToEnd(definition, { Doubled: doubled }, { blob: blob(150) });

    // Assess
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("States.DataLimitExceeded");
    expect(described.cause).toMatch(/'Doubled' has an input with a size exceeding/);
    expect(invoked).toBe(false);
    expectWellFormed(events);
  });

  it("fails a state inside a Parallel branch that goes over, though the branch ends small again", async () => {
    // Prepare: Grow makes the branch's state 300 KiB, Shrink replaces it: only Grow's own output is over the quota
    const definition = {
      StartAt: "Outer",
      States: {
        Outer: {
          Type: "Parallel",
          Branches: [
            {
              StartAt: "Start",
              States: {
                Start: { Type: "Pass", Result: blob(150), ResultPath: "$.first", Next: "Grow" },
                Grow: { Type: "Pass", Result: blob(150), ResultPath: "$.second", Next: "Shrink" },
                Shrink: { Type: "Pass", Result: { small: true }, End: true },
              },
            },
          ],
          Retry: [{ ErrorEquals: ["States.ALL"], MaxAttempts: 2 }],
          Catch: CATCH_ALL,
          End: true,
        },
        Caught: { Type: "Succeed" },
      },
    };

    // Act
    const { described, events, types } = await runToEnd(definition);

    // Assess: neither retried nor caught
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("States.DataLimitExceeded");
    expect(described.cause).toMatch(/'Grow' has an output with a size exceeding/);
    expect(types.filter((t) => t === "ParallelStateStarted")).toHaveLength(1);
    expect(types).not.toContain("SucceedStateEntered");
    expect(types.filter((t) => t === "PassStateExited")).toHaveLength(1); // Start only
    expectWellFormed(events);
  });

  it("fails a state inside a Map iteration that goes over, past the Map's Catch", async () => {
    // Prepare
    const definition = {
      StartAt: "Each",
      States: {
        Each: {
          Type: "Map",
          ItemsPath: "$.items",
          ItemProcessor: { StartAt: "Inflate", States: { Inflate: { Type: "Pass", Result: blob(300), End: true } } },
          Catch: CATCH_ALL,
          End: true,
        },
        Caught: { Type: "Succeed" },
      },
    };

    // Act
    const { described, events } = await runToEnd(definition, {}, { items: [1] });

    // Assess
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("States.DataLimitExceeded");
    expect(described.cause).toMatch(/'Inflate' has an output with a size exceeding/);
    expectWellFormed(events);
  });

  it("measures a Task's output after its ResultSelector: a 200 KiB result cut down on a 100 KiB state succeeds", async () => {
    // Prepare: the input with the raw result at ResultPath would be 300 KiB; with the selected part it is 100 KiB
    const definition = {
      StartAt: "Select",
      States: {
        Select: { Type: "Task", Resource: "${SelectFunctionArn}", ResultSelector: { "n.$": "$.n" }, ResultPath: "$.picked", End: true },
      },
    };

    // Act
    const { described } = await runToEnd(definition, { Select: () => ({ n: 1, blob: blob(200) }) }, { blob: blob(100) });

    // Assess
    expect(described.status).toBe("SUCCEEDED");
    expect(JSON.parse(described.output!).picked).toEqual({ n: 1 });
  });

  it("lets 200 KiB through every state: a Task's result, its Parallel's output and a Pass after", async () => {
    // Prepare
    const definition = {
      StartAt: "Wrap",
      States: {
        Wrap: {
          Type: "Parallel",
          Branches: [{ StartAt: "Produce", States: { Produce: { Type: "Task", Resource: "${ProduceFunctionArn}", End: true } } }],
          Next: "Keep",
        },
        Keep: { Type: "Pass", End: true },
      },
    };

    // Act
    const { described } = await runToEnd(definition, { Produce: () => ({ blob: blob(200) }) });

    // Assess
    expect(described.status).toBe("SUCCEEDED");
    expect(JSON.parse(described.output!)[0].blob).toHaveLength(200 * KIB);
  });
});
