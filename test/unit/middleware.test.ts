import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// The logger reads its level when it is created: turn logging on before the module loads.
const previousLogLevel = vi.hoisted(() => {
  const previous = process.env.POWERTOOLS_LOG_LEVEL;
  process.env.POWERTOOLS_LOG_LEVEL = "DEBUG";
  return previous;
});
afterAll(() => {
  if (previousLogLevel === undefined) delete process.env.POWERTOOLS_LOG_LEVEL;
  else process.env.POWERTOOLS_LOG_LEVEL = previousLogLevel;
});

import { ApiException } from "@kubernetes/client-node";
import { IAMServiceException } from "@aws-sdk/client-iam";
import { KubeConflict, OwnershipConflict, Throttled } from "../../functions/lib/domain/errors.js";
import { logKeysOf, logger, metrics, stepHandler } from "../../functions/lib/workflow/middleware.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { stepState } from "../support/fixtures.js";

const state = stepState();

/** Collect the JSON lines Powertools writes (stdout and stderr) instead of printing them. */
let lines: Array<Record<string, unknown>> = [];
function captureLogs(): Array<Record<string, unknown>> {
  return lines;
}

beforeEach(() => {
  lines = [];
  const collect = (chunk: unknown) => {
    for (const line of String(chunk).split("\n").filter(Boolean)) {
      try {
        lines.push(JSON.parse(line));
      } catch {
        // not a log line
      }
    }
    return true;
  };
  vi.spyOn(process.stdout, "write").mockImplementation(collect);
  vi.spyOn(process.stderr, "write").mockImplementation(collect);
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("stepHandler", () => {
  it("returns the step's result when called directly with a minimal context", async () => {
    // Prepare
    const handler = stepHandler("ResolveCluster", async (event: WorkflowState) => ({ tenant: event.request.tenant }));
    // Act
    const result = await handler(state, { awsRequestId: "req-1" });
    // Assess
    expect(result).toEqual({ tenant: "genomics" });
  });

  it("works with no context at all and hands the step a Lambda-like one", async () => {
    // Prepare
    const seen: string[] = [];
    const handler = stepHandler("Report", async (_event: WorkflowState, context) => {
      seen.push(context.functionName, typeof context.getRemainingTimeInMillis());
      return "ok";
    });
    // Act
    const result = await handler(state);
    // Assess
    expect(result).toBe("ok");
    expect(seen).toEqual(["Report", "number"]);
  });

  it("puts execution name, tenant and step on every log line of the invocation", async () => {
    // Prepare
    const logs = captureLogs();
    const handler = stepHandler("CreateIamResources", async () => {
      logger.info("creating the launcher role");
      return null;
    });
    // Act
    await handler(state, {});
    // Assess
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({
      message: "creating the launcher role",
      execution: "genomics-run-1",
      tenant: "genomics",
      step: "CreateIamResources",
    });
  });

  it("derives the log keys from whatever event it gets, without failing on odd ones", () => {
    // Assess
    expect(logKeysOf("S", state)).toEqual({ step: "S", execution: "genomics-run-1", tenant: "genomics" });
    expect(logKeysOf("S", undefined)).toEqual({ step: "S" });
    expect(logKeysOf("S", { request: { tenant: 42 } })).toEqual({ step: "S" });
  });

  it("rethrows SDK errors as named errors, logged once with their name", async () => {
    // Prepare
    const logs = captureLogs();
    const original = new IAMServiceException({ name: "Throttling", message: "Rate exceeded", $fault: "client", $metadata: { httpStatusCode: 400 } });
    const handler = stepHandler("CreateIamResources", async () => {
      throw original;
    });
    // Act
    const thrown = await handler(state, {}).catch((e: unknown) => e);
    // Assess
    expect(thrown).toBeInstanceOf(Throttled);
    expect((thrown as Error).name).toBe("Throttled");
    expect((thrown as Error).cause).toBe(original);
    const errorLines = logs.filter((l) => l.level === "ERROR");
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toMatchObject({ errorName: "Throttled", execution: "genomics-run-1", tenant: "genomics" });
  });

  it("rethrows Kubernetes conflicts as KubeConflict", async () => {
    // Prepare
    const handler = stepHandler("GrantClusterAccess", async () => {
      throw new ApiException(409, "conflict", { message: "the object has been modified" }, {});
    });
    // Act / Assess
    await expect(handler(state, {})).rejects.toBeInstanceOf(KubeConflict);
  });

  it("counts each step's outcome as a metric, failures under the error's name", async () => {
    // Prepare
    const addMetric = vi.spyOn(metrics, "addMetric");
    const addMetadata = vi.spyOn(metrics, "addMetadata");
    const ok = stepHandler("ConfigureStorage", async () => ({ done: true }));
    const failing = stepHandler("ConfigureStorage", async () => {
      throw new OwnershipConflict("PVC tower-scratch exists without our marks");
    });
    // Act
    await ok(state, {});
    await failing(state, {}).catch(() => undefined);
    // Assess
    expect(addMetric.mock.calls.map((c) => c[0])).toEqual(["StepSucceeded", "StepFailed"]);
    expect(addMetadata).toHaveBeenCalledWith("errorName", "OwnershipConflict");
    addMetric.mockRestore();
    addMetadata.mockRestore();
  });

  it("passes named errors through untouched", async () => {
    // Prepare
    const original = new OwnershipConflict("role exists without our marks");
    const handler = stepHandler("CreateIamResources", async () => {
      throw original;
    });
    // Act / Assess
    await expect(handler(state, {})).rejects.toBe(original);
  });

  it("does not leak one invocation's keys into the next", async () => {
    // Prepare
    const logs = captureLogs();
    const first = stepHandler("A", async () => null);
    const next = stepHandler("B", async () => {
      logger.info("second invocation");
      return null;
    });
    // Act
    await first(state, {});
    await next({ execution: { name: "other-run", id: "x" } } as WorkflowState, {});
    // Assess
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ step: "B", execution: "other-run" });
    expect(logs[0]).not.toHaveProperty("tenant");
  });
});
