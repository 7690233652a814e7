/**
 * Tasks in the local Step Functions runner, each with a definition of its own: a Task past its TimeoutSeconds
 * (and an execution past its own), and a catalog Task bound to the real functions/steps handler, with the
 * definitions the runner refuses (a Task nothing implements, unresolved placeholders).
 */
import "aws-sdk-client-mock-vitest/extend";
import { afterAll, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
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
