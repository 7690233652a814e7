/**
 * ComputeEnvironmentRemovalRequested refuses a detail that names no environment in the product's own words (request.ts
 * productMessage), as every other entry point does, not in zod's, and asks the registry nothing. The teardown it starts
 * is covered end to end in test/integration/teardown-cases.test.ts.
 */
import type { EventBridgeEvent } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { createComputeEnvironmentRemovalRequestedHandler } from "../../functions/events/compute-environment-removal-requested.js";
import { COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED } from "../../functions/lib/domain/deploy-config.js";
import { InvalidRequest } from "../../functions/lib/domain/errors.js";
import type { EnvironmentRegistry } from "../../functions/lib/workflow/environment-registry.js";
import { rejection } from "../support/fixtures.js";

/** A registry that fails the test if the handler reaches it: a refused detail must start nothing. */
const untouchedRegistry = new Proxy({} as EnvironmentRegistry, {
  get(_target, property) {
    throw new Error(`the registry was asked for ${String(property)}`);
  },
});

const handler = createComputeEnvironmentRemovalRequestedHandler({ registry: untouchedRegistry });

function removalRequested(detail: unknown): EventBridgeEvent<string, unknown> {
  return {
    version: "0",
    id: "0d5bd4d6-3c0e-4d4e-9a3c-6f1c2b7a9e10",
    "detail-type": COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED,
    source: "acme.onboarding",
    account: "111122223333",
    time: "2025-01-31T12:00:00Z",
    region: "eu-west-1",
    resources: [],
    detail,
  };
}

describe("ComputeEnvironmentRemovalRequested", () => {
  it("refuses an invalid detail with the product's messages, one problem per path, and starts nothing", async () => {
    // Prepare
    const detail = { tenant: 42, region: "eu-west-1" };
    // Act
    const error = await rejection(handler(removalRequested(detail)));
    // Assess
    expect(error).toBeInstanceOf(InvalidRequest);
    expect((error as InvalidRequest).problems).toEqual([
      { path: "tenant", message: "Expected string, received number" },
      { path: "cluster", message: "Required" },
      { path: "", message: "Unrecognized key(s) in object: 'region'" },
    ]);
  });
});
