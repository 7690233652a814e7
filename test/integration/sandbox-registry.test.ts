/**
 * The environment registry in the sandbox: dynalite started with the other emulators, its endpoint and the table in
 * `.sandbox/env`, and the registry's behaviour through the product's own entry points.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { readSandboxEnv } from "../../local/sandbox-env.js";
import type { Sandbox } from "../../local/sandbox.js";
import { CLUSTER, FAST, useSandbox } from "../support/sandbox-runs.js";

describe("the sandbox's DynamoDB", () => {
  let sandbox: Sandbox;
  let stateDir: string;
  useSandbox(
    () => ({ ...FAST, stateDir: (stateDir = mkdtempSync(join(tmpdir(), "nf-eks-registry-"))) }),
    (started) => ({ sandbox } = started),
  );
  afterAll(() => {
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it("is named in .sandbox/env with the table, beside AWS_DEFAULT_REGION, and holds the registry's table", async () => {
    // Prepare
    const env = readSandboxEnv(sandbox.files.env!);

    // Act
    const client = new DynamoDBClient({ region: env.AWS_DEFAULT_REGION!, endpoint: env.AWS_ENDPOINT_URL_DYNAMODB! });
    const table = await client.send(new DescribeTableCommand({ TableName: env.REGISTRY_TABLE_NAME! }));
    client.destroy();

    // Assess
    expect(env.AWS_ENDPOINT_URL_DYNAMODB).toBe(sandbox.dynamoDbUrl);
    expect(env.AWS_DEFAULT_REGION).toBe(CLUSTER.region);
    expect(table.Table?.TableStatus).toBe("ACTIVE");
    expect(table.Table?.KeySchema).toEqual([{ AttributeName: "pk", KeyType: "HASH" }]);
  });
});
