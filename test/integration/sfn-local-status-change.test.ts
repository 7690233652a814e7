/**
 * The local Step Functions tells EventBridge when an execution ends, as Step Functions does ("Step Functions
 * Execution Status Change", source aws.states): a run that times out, one that is stopped, one that succeeds. A Wait
 * until a timestamp keeps its time when the runner shortens Waits (the stopped-run compensation's grace).
 */
import { describe, expect, it } from "vitest";
import { type ExecutionStatusChangeEvent, LocalStepFunctions } from "../../local/sfn/runner.js";

const REGION = "eu-west-1";
const ACCOUNT = "111122223333";

function runner(heard: ExecutionStatusChangeEvent[]): LocalStepFunctions {
  return new LocalStepFunctions({
    region: REGION,
    accountId: ACCOUNT,
    waitMs: 10,
    onStatusChange: (event) => heard.push(event),
    stateMachines: {
      lingering: { TimeoutSeconds: 1, StartAt: "Linger", States: { Linger: { Type: "Wait", TimestampPath: "$.until", End: true } } },
      quick: { StartAt: "Pause", States: { Pause: { Type: "Wait", Seconds: 60, End: true } } },
    },
  });
}

async function heardFor(heard: ExecutionStatusChangeEvent[], executionArn: string): Promise<ExecutionStatusChangeEvent> {
  for (let i = 0; i < 100; i++) {
    const found = heard.find((e) => e.detail.executionArn === executionArn);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no status change for ${executionArn}`);
}

describe("execution status changes", () => {
  it("a run past its TimeoutSeconds is announced TIMED_OUT (its Wait until a timestamp was not shortened)", async () => {
    // Prepare
    const heard: ExecutionStatusChangeEvent[] = [];
    const local = runner(heard);
    const until = new Date(Date.now() + 60_000).toISOString();
    // Act
    const { executionArn } = await local.startExecution({
      stateMachineArn: local.stateMachineArn("lingering"),
      name: "l-1",
      input: JSON.stringify({ until }),
    });
    const described = await local.waitFor(executionArn!, { timeoutMs: 10_000 });
    const event = await heardFor(heard, executionArn!);
    // Assess
    expect(described.status).toBe("TIMED_OUT");
    expect(event).toMatchObject({
      source: "aws.states",
      detailType: "Step Functions Execution Status Change",
      resources: [executionArn],
      detail: {
        executionArn,
        stateMachineArn: local.stateMachineArn("lingering"),
        name: "l-1",
        status: "TIMED_OUT",
        error: "States.Timeout",
      },
    });
    expect(event.detail.stopDate).toBe(described.stopDate!.getTime());
  });

  it("a stopped run is announced ABORTED with its stop time; a run that ends well SUCCEEDED", async () => {
    // Prepare
    const heard: ExecutionStatusChangeEvent[] = [];
    const local = runner(heard);
    const lingering = await local.startExecution({
      stateMachineArn: local.stateMachineArn("lingering"),
      name: "l-2",
      input: JSON.stringify({ until: new Date(Date.now() + 60_000).toISOString() }),
    });
    // Act
    const { stopDate } = await local.stopExecution({ executionArn: lingering.executionArn, cause: "operator" });
    const quick = await local.startExecution({ stateMachineArn: local.stateMachineArn("quick"), name: "q-1", input: "{}" });
    await local.waitFor(quick.executionArn!, { timeoutMs: 5_000 });
    // Assess
    expect(await heardFor(heard, lingering.executionArn!)).toMatchObject({ detail: { status: "ABORTED", stopDate: stopDate!.getTime() } });
    expect(await heardFor(heard, quick.executionArn!)).toMatchObject({ detail: { status: "SUCCEEDED", output: "{}" } });
  });
});
