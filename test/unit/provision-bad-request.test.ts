/**
 * The problems in a 400 answer of POST /provision are the parser's, word for word (request-refusal-messages.test.ts
 * pins those), and a bad Idempotency-Key header is one of them.
 */
import { describe, expect, it } from "vitest";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { createProvisionHandler } from "../../functions/api/provision.js";
import { loadDeploymentConfig } from "../../functions/lib/domain/deploy-config.js";
import { REQUEST as MINIMAL } from "../support/fixtures.js";
import { LAUNCHER_TRUST, problemsFor } from "../support/request-problems.js";

describe("the problems in a 400 answer of POST /provision", () => {
  const handler = createProvisionHandler({
    config: loadDeploymentConfig({ ALLOWED_CLUSTERS: "research@eu-west-1", ALLOWED_ACCOUNT_IDS: "111122223333" }),
  });

  async function post(body: unknown, headers: Record<string, string> = {}) {
    const event = {
      version: "2.0",
      routeKey: "POST /provision",
      rawPath: "/provision",
      rawQueryString: "",
      headers: { "content-type": "application/json", ...headers },
      requestContext: { requestId: "req-1", http: { method: "POST", path: "/provision" } },
      body: JSON.stringify(body),
      isBase64Encoded: false,
    } as unknown as APIGatewayProxyEventV2;
    const response = (await handler(event)) as APIGatewayProxyStructuredResultV2;
    return { status: response.statusCode, body: JSON.parse(String(response.body)) as unknown };
  }

  it("are the parser's problems, unchanged", async () => {
    // Prepare
    const body = { tenant: 42, cluster: {}, storage: { type: "s3" }, headJob: { pipeline: "", waitFor: "done" }, extra: true };
    // Act
    const response = await post(body);
    // Assess
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: "InvalidRequest", problems: problemsFor(body) });
    expect(response.body).toEqual({
      error: "InvalidRequest",
      problems: [
        { path: "tenant", message: "Expected string, received number" },
        { path: "cluster.name", message: "Required" },
        { path: "cluster.region", message: "Required" },
        LAUNCHER_TRUST,
        { path: "storage.type", message: "Invalid discriminator value. Expected 'pvc' | 'fusion'" },
        { path: "headJob.pipeline", message: "String must contain at least 1 character(s)" },
        { path: "headJob.waitFor", message: "Invalid enum value. Expected 'running' | 'completed', received 'done'" },
        { path: "", message: "Unrecognized key(s) in object: 'extra'" },
      ],
    });
  });

  it("name a bad Idempotency-Key header as idempotencyKey", async () => {
    // Act
    const response = await post(MINIMAL, { "Idempotency-Key": "not a key!" });
    // Assess
    expect(response).toEqual({
      status: 400,
      body: {
        error: "InvalidRequest",
        problems: [{ path: "idempotencyKey", message: "idempotencyKey is 1-64 letters, digits, '_' or '-'" }],
      },
    });
  });
});
