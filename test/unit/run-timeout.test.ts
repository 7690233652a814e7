import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RUN_TIMEOUT_SECONDS } from "../../functions/lib/domain/run-timeout.js";
import { checkRequest, environmentIdOf, specOf, startProvisioning } from "../../functions/lib/entry/start-provisioning.js";
import { startTeardown, TEARDOWN_TIMEOUT_SECONDS } from "../../functions/lib/entry/start-teardown.js";
import { EnvironmentRegistry } from "../../functions/lib/workflow/environment-registry.js";
import { useLocalRegistry } from "../support/local-registry.js";
import { DEPLOYMENT_ENV, REQUEST, useEnv } from "../support/fixtures.js";
import { fakeStepFunctions, STATE_MACHINE_ARN } from "../support/sfn-fake.js";

const DEPROVISION_STATE_MACHINE_ARN = "arn:aws:states:eu-west-1:111122223333:stateMachine:nf-eks-deprovision";
const NOW = new Date("2025-06-01T12:00:00Z");

function timeoutOf(file: string): number | undefined {
  return (JSON.parse(readFileSync(file, "utf8")) as { TimeoutSeconds?: number }).TimeoutSeconds;
}

describe("the run's timeout", () => {
  it("is the state machine's TimeoutSeconds, so a lease never outlives the run it was taken for by less than the run", () => {
    // Prepare
    const timeout = timeoutOf("statemachines/provision.asl.json");
    // Act // Assess
    expect(timeout).toBe(RUN_TIMEOUT_SECONDS);
    // The longest head job wait (headJob.timeoutMinutes at most 10080) fits in it.
    expect(RUN_TIMEOUT_SECONDS).toBeGreaterThan(10080 * 60);
  });

  it("of a teardown is deprovision.asl.json's TimeoutSeconds", () => {
    // Prepare // Act
    const timeout = timeoutOf("statemachines/deprovision.asl.json");
    // Assess
    expect(timeout).toBe(TEARDOWN_TIMEOUT_SECONDS);
  });
});

describe("the lease a start writes", () => {
  const local = useLocalRegistry("lease");
  let registry: EnvironmentRegistry;
  let fake: ReturnType<typeof fakeStepFunctions>;
  const nowSeconds = NOW.getTime() / 1000;

  useEnv({ ...DEPLOYMENT_ENV, STATE_MACHINE_ARN });

  beforeEach(async () => {
    registry = new EnvironmentRegistry({ dynamodb: local.client(), tableName: await local.freshTable() });
    fake = fakeStepFunctions({ startAs: "RUNNING" });
    vi.useFakeTimers({ toFake: ["Date"], now: NOW });
  });
  afterEach(() => {
    vi.useRealTimers();
    fake.sfn.restore();
  });

  it("expires after the run's timeout (RUN_TIMEOUT_SECONDS) for a provisioning run", async () => {
    // Prepare
    const checked = checkRequest(REQUEST);
    if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
    // Act
    const started = await startProvisioning(checked.request, { registry });
    // Assess
    expect(started.outcome).toBe("started");
    const record = await registry.getEnvironment(environmentIdOf(checked.request));
    expect(record?.lease?.expiresAt).toBe(nowSeconds + RUN_TIMEOUT_SECONDS);
  });

  it("expires after the teardown's timeout (TEARDOWN_TIMEOUT_SECONDS) for a teardown", async () => {
    // Prepare: a ready environment
    const checked = checkRequest(REQUEST);
    if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
    const id = environmentIdOf(checked.request);
    await registry.createEnvironment(id, specOf(checked.request));
    // Act
    const started = await startTeardown(id, { registry, deprovisionStateMachineArn: DEPROVISION_STATE_MACHINE_ARN });
    // Assess
    expect(started.outcome).toBe("started");
    const record = await registry.getEnvironment(id);
    expect(record?.lease?.expiresAt).toBe(nowSeconds + TEARDOWN_TIMEOUT_SECONDS);
  });
});
