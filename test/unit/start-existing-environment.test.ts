/**
 * startProvisioning against the registry (dynalite) when the environment exists: the verdict on another spec
 * (workflow/existing-environment.ts) holds even when the record moves on between the start's read and its lease.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkRequest, environmentIdOf, specOf, startProvisioning } from "../../functions/lib/entry/start-provisioning.js";
import { EnvironmentRegistry, type EnvironmentId, type EnvironmentRecord } from "../../functions/lib/workflow/environment-registry.js";
import type { ProvisionRequest } from "../../functions/lib/domain/request.js";
import { useLocalRegistry } from "../support/local-registry.js";
import { DEPLOYMENT_ENV, REQUEST, useEnv } from "../support/fixtures.js";
import { fakeStepFunctions, STATE_MACHINE_ARN } from "../support/sfn-fake.js";

const OTHER_RUN = { name: "genomics_other", arn: `${STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:")}:genomics_other` };

/** A registry that lets `meanwhile` happen right after the next read: another run, between a start's read and its lease. */
class InterleavedRegistry extends EnvironmentRegistry {
  meanwhile?: () => Promise<void>;
  override async getEnvironment(id: EnvironmentId): Promise<EnvironmentRecord | undefined> {
    const read = await super.getEnvironment(id);
    const other = this.meanwhile;
    this.meanwhile = undefined;
    if (other) await other();
    return read;
  }
}

function requestIn(namespace: string): ProvisionRequest {
  const checked = checkRequest({ ...REQUEST, namespace });
  if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
  return checked.request;
}

const local = useLocalRegistry("existing");
let registry: InterleavedRegistry;
let fake: ReturnType<typeof fakeStepFunctions>;

useEnv({ ...DEPLOYMENT_ENV, STATE_MACHINE_ARN });

beforeEach(async () => {
  registry = new InterleavedRegistry({ dynamodb: local.client(), tableName: await local.freshTable() });
  fake = fakeStepFunctions();
});

afterEach(() => {
  fake.sfn.restore();
});

describe("a create of another spec", () => {
  it("is refused when, after it read a failed create that owns nothing, another run made the environment live", async () => {
    // Prepare: a failed create (owns nothing) of namespace one
    const first = requestIn("one");
    const id = environmentIdOf(first);
    await registry.createEnvironment(id, specOf(first));
    await registry.takeLease(id, { owner: OTHER_RUN, expiresAt: Math.floor(Date.now() / 1000) + 60, spec: specOf(first) });
    await registry.recordOutcome(id, OTHER_RUN.arn, { status: "failed", owned: {} });
    // ...and, right after the next start has read it, a run of namespace one that succeeds
    registry.meanwhile = async () => {
      await registry.takeLease(id, { owner: OTHER_RUN, expiresAt: Math.floor(Date.now() / 1000) + 60, spec: specOf(first) });
      await registry.recordOutcome(id, OTHER_RUN.arn, { status: "ready", owned: { roles: ["arn:aws:iam::111122223333:role/x"] } });
    };
    const live = async () => (await registry.getEnvironment(id))!;

    // Act: a create of namespace two
    const started = await startProvisioning(requestIn("two"), { registry });

    // Assess: refused as the live environment it now is; nothing started, the record as the other run left it
    expect(started).toEqual({ outcome: "environment-exists", environmentUrl: "/environments/genomics/eu-west-1/research" });
    expect(fake.startInputs()).toEqual([]);
    expect(await live()).toMatchObject({ status: "ready", spec: { namespace: "one" }, generation: 2 });
    expect((await live()).lease).toBeUndefined();
  });

  it("starts on a failed create that owns nothing, and the record then holds the new spec", async () => {
    // Prepare
    const first = requestIn("one");
    const id = environmentIdOf(first);
    await registry.createEnvironment(id, specOf(first));
    await registry.takeLease(id, { owner: OTHER_RUN, expiresAt: Math.floor(Date.now() / 1000) + 60, spec: specOf(first) });
    await registry.recordOutcome(id, OTHER_RUN.arn, { status: "failed", owned: {} });

    // Act
    const started = await startProvisioning(requestIn("two"), { registry });

    // Assess
    expect(started.outcome).toBe("started");
    expect(await registry.getEnvironment(id)).toMatchObject({ status: "provisioning", spec: { namespace: "two" }, generation: 2 });
  });
});
