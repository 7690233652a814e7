/**
 * The environment registry against dynalite (real DynamoDB validation and conditional writes), started on port 0.
 */
import { beforeEach, describe, expect, it } from "vitest";
import {
  EnvironmentRegistry,
  environmentKey,
  IDEMPOTENCY_KEY_TTL_SECONDS,
  listEnvironments,
  RegistryNotConfigured,
} from "../../functions/lib/workflow/environment-registry.js";
import { useLocalRegistry } from "../support/local-registry.js";

const ENV = { tenant: "genomics", region: "eu-west-1", cluster: "research" };
const SPEC = { tenant: "genomics", cluster: { name: "research", region: "eu-west-1" }, namespace: "genomics" };
const RUN_A = { name: "genomics_a", arn: "arn:aws:states:eu-west-1:111122223333:execution:provision:genomics_a" };
const RUN_B = { name: "genomics_b", arn: "arn:aws:states:eu-west-1:111122223333:execution:provision:genomics_b" };

const local = useLocalRegistry("registry");
let now = 1_000_000;
let registry: EnvironmentRegistry;
let tableName: string;

beforeEach(async () => {
  tableName = await local.freshTable();
  now = 1_000_000;
  registry = new EnvironmentRegistry({ dynamodb: local.client(), tableName, nowSeconds: () => now });
});

describe("environment records", () => {
  it("keys an environment by tenant, region and cluster", () => {
    // Prepare // Act // Assess
    expect(environmentKey(ENV)).toBe("ENV#genomics#eu-west-1#research");
  });

  it("refuses to work without a table", () => {
    // Prepare
    const saved = process.env.REGISTRY_TABLE_NAME;
    delete process.env.REGISTRY_TABLE_NAME;
    // Act // Assess
    try {
      expect(() => new EnvironmentRegistry({ dynamodb: local.client() })).toThrow(RegistryNotConfigured);
    } finally {
      if (saved !== undefined) process.env.REGISTRY_TABLE_NAME = saved;
    }
  });

  it("creates a record once; a second create finds the first", async () => {
    // Prepare
    const first = await registry.createEnvironment(ENV, SPEC);

    // Act
    const second = await registry.createEnvironment(ENV, { ...SPEC, namespace: "other" });

    // Assess
    expect(first).toMatchObject({ created: true, record: { ...ENV, spec: SPEC, generation: 0, status: "provisioning", owned: {} } });
    expect(second).toMatchObject({ created: false, record: { spec: SPEC } });
    expect(await registry.getEnvironment(ENV)).toEqual(first.record);
  });

  it("lists environments a page at a time", async () => {
    // Prepare
    for (const tenant of ["a", "b", "c"]) await registry.createEnvironment({ ...ENV, tenant }, SPEC);
    await registry.rememberKey({ tenant: "a", key: "k", executionName: "a_k", executionArn: "arn", request: {} });

    // Act
    const first = await listEnvironments({ dynamodb: local.client(), tableName }, { limit: 2 });
    const second = await listEnvironments({ dynamodb: local.client(), tableName }, { limit: 2, cursor: first.next });

    // Assess: keys are not environments
    expect(first.items.map((r) => r.tenant)).toEqual(["a", "b"]);
    expect(second.items.map((r) => r.tenant)).toEqual(["c"]);
    expect(second.next).toBeUndefined();
  });
});

describe("the run lease", () => {
  it("goes to the first run; a second is told who holds it", async () => {
    // Prepare
    await registry.createEnvironment(ENV, SPEC);

    // Act
    const [a, b] = await Promise.all([
      registry.takeLease(ENV, { owner: RUN_A, expiresAt: now + 3600, spec: SPEC }),
      registry.takeLease(ENV, { owner: RUN_B, expiresAt: now + 3600, spec: SPEC }),
    ]);

    // Assess: exactly one holds it
    const taken = [a, b].filter((r) => r.taken);
    expect(taken).toHaveLength(1);
    const holder = (await registry.getEnvironment(ENV))!.lease!.owner;
    expect([RUN_A.arn, RUN_B.arn]).toContain(holder);
    expect([a, b].find((r) => !r.taken)).toEqual({ taken: false, holder });
  });

  it("is taken again by its own holder (a repeat), bumping the generation each time it is taken", async () => {
    // Prepare
    await registry.createEnvironment(ENV, SPEC);
    await registry.takeLease(ENV, { owner: RUN_A, expiresAt: now + 3600, spec: SPEC });

    // Act
    const again = await registry.takeLease(ENV, { owner: RUN_A, expiresAt: now + 3600, spec: SPEC });

    // Assess
    expect(again).toEqual({ taken: true });
    expect(await registry.getEnvironment(ENV)).toMatchObject({
      generation: 2,
      lastExecution: RUN_A,
      lease: { owner: RUN_A.arn, expiresAt: now + 3600 },
    });
  });

  it("counts an expired lease as free", async () => {
    // Prepare
    await registry.createEnvironment(ENV, SPEC);
    await registry.takeLease(ENV, { owner: RUN_A, expiresAt: now + 60, spec: SPEC });
    const before = await registry.takeLease(ENV, { owner: RUN_B, expiresAt: now + 3600, spec: SPEC });

    // Act
    now += 60;
    const after = await registry.takeLease(ENV, { owner: RUN_B, expiresAt: now + 3600, spec: SPEC });

    // Assess
    expect(before).toEqual({ taken: false, holder: RUN_A.arn });
    expect(after).toEqual({ taken: true });
  });

  it("cannot be taken on an environment with no record", async () => {
    // Prepare // Act
    const result = await registry.takeLease(ENV, { owner: RUN_A, expiresAt: now + 60, spec: SPEC });

    // Assess
    expect(result).toEqual({ taken: false, holder: "" });
    expect(await registry.getEnvironment(ENV)).toBeUndefined();
  });

  it("is released only by its owner, with the run's outcome", async () => {
    // Prepare
    await registry.createEnvironment(ENV, SPEC);
    await registry.takeLease(ENV, { owner: RUN_A, expiresAt: now + 3600, spec: SPEC });

    // Act
    const byOther = await registry.recordOutcome(ENV, RUN_B.arn, { status: "ready", owned: { namespace: "x" } });
    const byOwner = await registry.recordOutcome(ENV, RUN_A.arn, { status: "ready", owned: { namespace: "genomics" } });
    const twice = await registry.releaseLease(ENV, RUN_A.arn);

    // Assess
    expect([byOther, byOwner, twice]).toEqual([false, true, false]);
    const record = await registry.getEnvironment(ENV);
    expect(record).toMatchObject({ status: "ready", owned: { namespace: "genomics" }, generation: 1 });
    expect(record?.lease).toBeUndefined();
  });
});

describe("idempotency keys", () => {
  const KEY = { tenant: "genomics", key: "k1", executionName: "genomics_k1", executionArn: RUN_A.arn, request: SPEC };

  it("are remembered once, and found again within their expiry", async () => {
    // Prepare
    const first = await registry.rememberKey(KEY);

    // Act
    const second = await registry.rememberKey({ ...KEY, executionArn: RUN_B.arn });

    // Assess
    expect(first).toEqual({ remembered: true });
    expect(second).toEqual({ remembered: false, existing: { ...KEY, expiresAt: now + IDEMPOTENCY_KEY_TTL_SECONDS } });
  });

  it("count as absent once expired, whether or not TTL has removed them", async () => {
    // Prepare
    await registry.rememberKey(KEY);

    // Act
    now += IDEMPOTENCY_KEY_TTL_SECONDS;
    const found = await registry.findKey(KEY.tenant, KEY.key);
    const again = await registry.rememberKey({ ...KEY, executionArn: RUN_B.arn });

    // Assess
    expect(found).toBeUndefined();
    expect(again).toEqual({ remembered: true });
    expect(await registry.findKey(KEY.tenant, KEY.key)).toMatchObject({ executionArn: RUN_B.arn });
  });
});

describe("a start that started nothing", () => {
  it("puts the record back as it was before the lease (spec, generation, status, last run) and frees it; only the lease's owner can", async () => {
    // Prepare: generation 1 ready after RUN_A, then RUN_B leases it for a new spec and its start fails
    await registry.createEnvironment(ENV, SPEC);
    await registry.takeLease(ENV, { owner: RUN_A, expiresAt: now + 60, spec: SPEC });
    await registry.recordOutcome(ENV, RUN_A.arn, { status: "ready", owned: {} });
    const previous = (await registry.getEnvironment(ENV))!;
    const changed = { ...SPEC, namespace: "elsewhere" };
    await registry.takeLease(ENV, { owner: RUN_B, expiresAt: now + 60, spec: changed, status: "updating", generation: 1 });

    // Act
    const byOther = await registry.putBackAfterFailedStart(ENV, RUN_A.arn, previous, false);
    const byOwner = await registry.putBackAfterFailedStart(ENV, RUN_B.arn, previous, false);

    // Assess
    expect([byOther, byOwner]).toEqual([false, true]);
    const record = await registry.getEnvironment(ENV);
    expect(record).toMatchObject({ status: "ready", generation: 1, spec: SPEC, lastExecution: RUN_A });
    expect(record?.lease).toBeUndefined();
  });

  it("leaves a record the start created failed, naming no run (a repeat of the create starts again)", async () => {
    // Prepare
    const made = await registry.createEnvironment(ENV, SPEC);
    await registry.takeLease(ENV, { owner: RUN_A, expiresAt: now + 60, spec: SPEC });

    // Act
    await registry.putBackAfterFailedStart(ENV, RUN_A.arn, made.record, true);

    // Assess
    const record = await registry.getEnvironment(ENV);
    expect(record).toMatchObject({ status: "failed", generation: 0 });
    expect(record?.lastExecution).toBeUndefined();
    expect(record?.lease).toBeUndefined();
  });
});
