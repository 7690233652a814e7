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
import {
  InvalidRequest,
  KubeConflict,
  NotAllowed,
  OwnershipConflict,
  RunInProgress,
  Throttled,
} from "../../functions/lib/domain/errors.js";
import {
  eventHandler,
  eventOutcomeOf,
  httpHandler,
  httpOutcomeOf,
  logKeysOf,
  logger,
  metrics,
  stepHandler,
} from "../../functions/lib/workflow/middleware.js";
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
    const original = new IAMServiceException({
      name: "Throttling",
      message: "Rate exceeded",
      $fault: "client",
      $metadata: { httpStatusCode: 400 },
    });
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

/** A minimal HTTP API event and answer, as the routes get and give them. */
interface HttpEvent {
  requestContext: { requestId: string };
}
interface HttpAnswer {
  statusCode: number;
  body: string;
}
const httpEvent: HttpEvent = { requestContext: { requestId: "api-req-7" } };
const answer500 = (error: Error, event: HttpEvent): HttpAnswer => ({
  statusCode: 500,
  body: JSON.stringify({ error: "InternalError", message: "could not do it", requestId: event.requestContext.requestId, seen: error.name }),
});

class BrokenInvariant extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BrokenInvariant";
  }
}

describe("httpHandler", () => {
  it("returns the route's answer and puts the route and request id on every log line", async () => {
    // Prepare
    const logs = captureLogs();
    const handler = httpHandler(
      "GET /things",
      async () => {
        logger.info("looking the thing up");
        return { statusCode: 200, body: "{}" };
      },
      answer500,
    );
    // Act
    const response = await handler(httpEvent);
    // Assess
    expect(response).toEqual({ statusCode: 200, body: "{}" });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ message: "looking the thing up", route: "GET /things", requestId: "api-req-7" });
  });

  it("answers a thrown error with the route's error answer, never rethrowing it nor showing its stack", async () => {
    // Prepare
    const logs = captureLogs();
    const handler = httpHandler(
      "GET /things",
      async (): Promise<HttpAnswer> => {
        throw new BrokenInvariant("the thing has no owner");
      },
      answer500,
    );
    // Act
    const response = await handler(httpEvent, {});
    // Assess
    expect(response.statusCode).toBe(500);
    expect(JSON.parse(response.body)).toEqual({
      error: "InternalError",
      message: "could not do it",
      requestId: "api-req-7",
      seen: "BrokenInvariant",
    });
    expect(response.body).not.toMatch(/\bat .+:\d+:\d+/);
    const errorLines = logs.filter((l) => l.level === "ERROR");
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toMatchObject({ errorName: "BrokenInvariant", statusCode: 500, route: "GET /things", requestId: "api-req-7" });
  });

  it("hands the error answer the named error (an SDK throttle as Throttled), and logs a refusal at info, not error", async () => {
    // Prepare
    const logs = captureLogs();
    const names: string[] = [];
    const handler = httpHandler(
      "POST /things",
      async (): Promise<HttpAnswer> => {
        throw new IAMServiceException({
          name: "Throttling",
          message: "Rate exceeded",
          $fault: "client",
          $metadata: { httpStatusCode: 400 },
        });
      },
      (error) => {
        names.push(error.name);
        return { statusCode: 429, body: "{}" };
      },
    );
    // Act
    const response = await handler(httpEvent);
    // Assess
    expect(response.statusCode).toBe(429);
    expect(names).toEqual(["Throttled"]);
    expect(logs.map((l) => l.level)).toEqual(["INFO"]);
  });

  it("counts each request as answered, refused or failed under its route", async () => {
    // Prepare
    const addMetric = vi.spyOn(metrics, "addMetric");
    const addDimension = vi.spyOn(metrics, "addDimension");
    const answering = (statusCode: number) => httpHandler("GET /things", async () => ({ statusCode, body: "{}" }), answer500);
    const throwing = httpHandler("GET /things", async (): Promise<HttpAnswer> => Promise.reject(new BrokenInvariant("no")), answer500);
    // Act
    await answering(200)(httpEvent);
    await answering(404)(httpEvent);
    await throwing(httpEvent);
    // Assess
    expect(addMetric.mock.calls.map((c) => c[0])).toEqual(["RequestAnswered", "RequestRefused", "RequestFailed"]);
    expect(addDimension).toHaveBeenCalledWith("route", "GET /things");
  });

  it("classifies answers by status code", () => {
    // Assess
    expect([200, 202, 302, 400, 409, 422, 500, 503, undefined].map(httpOutcomeOf)).toEqual([
      "RequestAnswered",
      "RequestAnswered",
      "RequestAnswered",
      "RequestRefused",
      "RequestRefused",
      "RequestRefused",
      "RequestFailed",
      "RequestFailed",
      "RequestFailed",
    ]);
  });

  it("does not leak one request's id into the next invocation's log lines", async () => {
    // Prepare
    const logs = captureLogs();
    const first = httpHandler("GET /things", async () => ({ statusCode: 200, body: "{}" }), answer500);
    const next = stepHandler("Report", async () => {
      logger.info("after the request");
      return null;
    });
    // Act
    await first(httpEvent);
    await next(state);
    // Assess
    expect(logs).toHaveLength(1);
    expect(logs[0]).not.toHaveProperty("requestId");
    expect(logs[0]).not.toHaveProperty("route");
  });
});

describe("eventHandler", () => {
  const event = { id: "evt-1", source: "acme.onboarding", detail: {} };

  it("returns the handler's result and puts the event id and source on every log line", async () => {
    // Prepare
    const logs = captureLogs();
    const handler = eventHandler("SomethingHappened", async () => {
      logger.info("handling it");
      return "started";
    });
    // Act
    const result = await handler(event);
    // Assess
    expect(result).toBe("started");
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ message: "handling it", eventId: "evt-1", source: "acme.onboarding" });
  });

  it("rethrows a permanent error named, logged once at error level with its problems", async () => {
    // Prepare
    const logs = captureLogs();
    const original = new InvalidRequest([{ path: "tenant", message: "required" }]);
    const handler = eventHandler("SomethingHappened", async () => {
      throw original;
    });
    // Act
    const thrown = await handler(event, {}).catch((e: unknown) => e);
    // Assess
    expect(thrown).toBe(original);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({
      level: "ERROR",
      errorName: "InvalidRequest",
      eventId: "evt-1",
      error: { problems: [{ path: "tenant", message: "required" }] },
    });
  });

  it("rethrows SDK errors named, and logs a transient one as a warning (Lambda retries the event)", async () => {
    // Prepare
    const logs = captureLogs();
    const handler = eventHandler("SomethingHappened", async () => {
      throw new IAMServiceException({ name: "Throttling", message: "Rate exceeded", $fault: "client", $metadata: { httpStatusCode: 400 } });
    });
    // Act
    const thrown = await handler(event).catch((e: unknown) => e);
    // Assess
    expect(thrown).toBeInstanceOf(Throttled);
    expect(logs.map((l) => [l.level, l.errorName])).toEqual([["WARN", "Throttled"]]);
  });

  it("counts each event as accepted, deferred or refused", async () => {
    // Prepare
    const addMetric = vi.spyOn(metrics, "addMetric");
    const addDimension = vi.spyOn(metrics, "addDimension");
    const outcomes = [
      async () => "ok",
      async () => Promise.reject(new RunInProgress("a run is under way", "arn:aws:states:eu-west-1:1:execution:sm:run")),
      async () => Promise.reject(new NotAllowed("cluster not allowed")),
      async () => Promise.reject(new BrokenInvariant("unexpected")),
    ];
    // Act
    for (const outcome of outcomes) await eventHandler("SomethingHappened", outcome)(event).catch(() => undefined);
    // Assess
    expect(addMetric.mock.calls.map((c) => c[0])).toEqual(["EventAccepted", "EventDeferred", "EventRefused", "EventRefused"]);
    expect(addDimension).toHaveBeenCalledWith("event", "SomethingHappened");
    expect(eventOutcomeOf(undefined)).toBe("EventAccepted");
  });
});
