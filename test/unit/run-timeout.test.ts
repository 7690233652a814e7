import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { RUN_TIMEOUT_SECONDS } from "../../functions/lib/domain/run-timeout.js";

describe("the run's timeout", () => {
  it("is the state machine's TimeoutSeconds, so a lease never outlives the run it was taken for by less than the run", () => {
    // Prepare
    const definition = JSON.parse(readFileSync("statemachines/provision.asl.json", "utf8")) as { TimeoutSeconds?: number };
    // Act // Assess
    expect(definition.TimeoutSeconds).toBe(RUN_TIMEOUT_SECONDS);
    // The longest head job wait (headJob.timeoutMinutes at most 10080) fits in it.
    expect(RUN_TIMEOUT_SECONDS).toBeGreaterThan(10080 * 60);
  });
});
