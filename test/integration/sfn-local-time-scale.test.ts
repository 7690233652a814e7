/**
 * Fast mode in the local Step Functions runner (#13 point 5): time is scaled, not replaced. A Wait's Seconds and
 * SecondsPath last their value times the scale; SecondsPath is still read and anything but a non-negative integer
 * is an uncatchable States.Runtime; retries keep their backoff, MaxDelaySeconds cap and FULL jitter.
 */
import { describe, expect, it } from "vitest";
import type { HistoryEvent } from "@aws-sdk/client-sfn";
import { LocalStepFunctions } from "../../local/sfn/runner.js";
import { scaleDefinition, type TimeScale } from "../../local/sfn/time-scale.js";
import type { AslDefinition } from "../../local/sfn/definition.js";

const REGION = "eu-west-1";
const ACCOUNT = "111122223333";

async function run(definition: object, functions: Record<string, (event: any) => unknown>, timeScale: TimeScale, input: object = {}) {
  const local = new LocalStepFunctions({ region: REGION, accountId: ACCOUNT, functions, stateMachines: { m: definition }, timeScale });
  const started = Date.now();
  const { executionArn } = await local.startExecution({ stateMachineArn: local.stateMachineArn("m"), input: JSON.stringify(input) });
  const described = await local.waitFor(executionArn!, { timeoutMs: 20_000 });
  const elapsedMs = Date.now() - started;
  const events = (await local.getExecutionHistory({ executionArn, maxResults: 1000 })).events!;
  return { described, events, elapsedMs };
}

/** The milliseconds between each Wait's StateEntered and its StateExited. */
function waitDurations(events: HistoryEvent[]): number[] {
  const durations: number[] = [];
  let entered: Date | undefined;
  for (const e of events) {
    if (e.type === "WaitStateEntered") entered = e.timestamp;
    if (e.type === "WaitStateExited" && entered) durations.push(e.timestamp!.getTime() - entered.getTime());
  }
  return durations;
}

const POLL = {
  StartAt: "Launch",
  States: {
    Launch: { Type: "Task", Resource: "${LaunchFunctionArn}", ResultPath: "$.job", Next: "WaitForJob" },
    WaitForJob: { Type: "Wait", SecondsPath: "$.job.nextCheckSeconds", Next: "Check" },
    Check: { Type: "Task", Resource: "${CheckFunctionArn}", ResultPath: "$.job", Next: "IsDone" },
    IsDone: { Type: "Choice", Choices: [{ Variable: "$.job.done", BooleanEquals: true, Next: "Done" }], Default: "WaitForJob" },
    Done: { Type: "Succeed" },
  },
};

describe("Wait states scaled", () => {
  it("SecondsPath is read on every pass and scaled (10 s then 100 s at 2 ms a second: about 20 ms, then 200 ms)", async () => {
    // Prepare
    const at: number[] = [];
    const functions = {
      Launch: () => {
        at.push(Date.now());
        return { nextCheckSeconds: 10, done: false };
      },
      Check: () => {
        at.push(Date.now());
        return { nextCheckSeconds: 100, done: at.length >= 3 };
      },
    };

    // Act
    const { described, events } = await run(POLL, functions, { waitMs: 2, retryIntervalMs: 1 });

    // Assess: the gaps between the handlers' calls are the waits (a sleep never ends early)
    expect(described.status).toBe("SUCCEEDED");
    expect(waitDurations(events)).toHaveLength(2);
    const [first, second] = [at[1]! - at[0]!, at[2]! - at[1]!];
    expect(first).toBeGreaterThanOrEqual(19);
    expect(first).toBeLessThan(150);
    expect(second).toBeGreaterThanOrEqual(199); // the value read from the state, not a fixed override
  });

  it.each([
    ["a fraction", 1.5],
    ["a negative number", -1],
    ["a string", "10"],
  ])("SecondsPath that is %s fails the execution with States.Runtime, which no Catch takes", async (_label, value) => {
    // Prepare: a Catch on States.ALL around the Wait, which a catchable error would end in Caught (SUCCEEDED)
    const definition = {
      StartAt: "Guarded",
      States: {
        Guarded: {
          Type: "Parallel",
          Branches: [
            {
              StartAt: "Launch",
              States: {
                Launch: { Type: "Task", Resource: "${LaunchFunctionArn}", ResultPath: "$.job", Next: "WaitForJob" },
                WaitForJob: { Type: "Wait", SecondsPath: "$.job.nextCheckSeconds", End: true },
              },
            },
          ],
          Catch: [{ ErrorEquals: ["States.ALL"], Next: "Caught" }],
          Next: "Done",
        },
        Caught: { Type: "Succeed" },
        Done: { Type: "Succeed" },
      },
    };

    // Act
    const { described, events } = await run(definition, { Launch: () => ({ nextCheckSeconds: value }) }, { waitMs: 2, retryIntervalMs: 1 });

    // Assess
    expect(described.status).toBe("FAILED");
    expect(described.error).toBe("States.Runtime");
    expect(events.map((e) => e.type)).not.toContain("SucceedStateEntered");
  });

  it("Seconds is scaled, not replaced: 30 s and 60 s Waits keep their ratio", async () => {
    // Prepare
    const definition = {
      StartAt: "Short",
      States: {
        Short: { Type: "Wait", Seconds: 30, Next: "Long" },
        Long: { Type: "Wait", Seconds: 60, End: true },
      },
    };

    // Act
    const { described, events } = await run(definition, {}, { waitMs: 4, retryIntervalMs: 1 });

    // Assess
    expect(described.status).toBe("SUCCEEDED");
    const [short, long] = waitDurations(events);
    expect(short).toBeGreaterThanOrEqual(100);
    expect(long).toBeGreaterThanOrEqual(220);
    expect(long).toBeLessThan(1_000);
  });
});

describe("retries scaled", () => {
  const RETRYING = (retrier: object) => ({
    StartAt: "Flaky",
    States: { Flaky: { Type: "Task", Resource: "${FlakyFunctionArn}", Retry: [{ ErrorEquals: ["Throttled"], ...retrier }], End: true } },
  });
  const failingTimes = (n: number, at: number[]) => {
    let calls = 0;
    return () => {
      at.push(Date.now());
      if (++calls <= n) throw Object.assign(new Error("slow down"), { name: "Throttled" });
      return { ok: true };
    };
  };
  const gaps = (at: number[]) => at.slice(1).map((t, i) => t - at[i]!);

  it("keep their backoff and MaxDelaySeconds cap (JitterStrategy NONE): 1, 2, 4, 4 s at 40 ms a second", async () => {
    // Prepare
    const at: number[] = [];

    // Act
    const { described } = await run(
      RETRYING({ IntervalSeconds: 1, BackoffRate: 2, MaxAttempts: 4, MaxDelaySeconds: 4 }),
      { Flaky: failingTimes(4, at) },
      { waitMs: 1, retryIntervalMs: 40 },
    );

    // Assess
    expect(described.status).toBe("SUCCEEDED");
    const [a, b, c, d] = gaps(at);
    expect(a).toBeGreaterThanOrEqual(38);
    expect(b).toBeGreaterThanOrEqual(78);
    expect(c).toBeGreaterThanOrEqual(158);
    expect(d).toBeGreaterThanOrEqual(158);
    expect(d).toBeLessThan(c! + 120); // capped at 4 s (160 ms), not 8 s (320 ms)
  });

  it("keep FULL jitter: each wait is somewhere between 0 and the backoff, not always the backoff", async () => {
    // Prepare
    const at: number[] = [];

    // Act
    const { described } = await run(
      RETRYING({ IntervalSeconds: 2, BackoffRate: 1, MaxAttempts: 12, JitterStrategy: "FULL" }),
      { Flaky: failingTimes(12, at) },
      { waitMs: 1, retryIntervalMs: 50 },
    );

    // Assess: 12 waits of up to 100 ms; all at the full 100 ms would be jitter ignored
    expect(described.status).toBe("SUCCEEDED");
    const waits = gaps(at);
    expect(Math.max(...waits)).toBeLessThan(180);
    expect(waits.filter((w) => w < 90).length).toBeGreaterThan(0);
  });
});

describe("scaleDefinition", () => {
  it("scales every Wait's Seconds and every retrier's IntervalSeconds (default 1) and MaxDelaySeconds, nested branches too", () => {
    // Prepare
    const definition: AslDefinition = {
      StartAt: "P",
      States: {
        P: {
          Type: "Parallel",
          Branches: [{ StartAt: "W", States: { W: { Type: "Wait", Seconds: 10, End: true } } }],
          Retry: [{ ErrorEquals: ["X"], MaxDelaySeconds: 30, BackoffRate: 3 }],
          End: true,
        },
      },
    };

    // Act
    const scaled = scaleDefinition(definition, { waitMs: 5, retryIntervalMs: 100 });

    // Assess
    expect(scaled.States.P!.Branches![0]!.States.W!.Seconds).toBeCloseTo(0.05);
    expect(scaled.States.P!.Retry).toEqual([{ ErrorEquals: ["X"], IntervalSeconds: 0.1, MaxDelaySeconds: 3, BackoffRate: 3 }]);
    expect(definition.States.P!.Branches![0]!.States.W!.Seconds).toBe(10); // the original untouched
  });
});
