/**
 * The registry's table on dynalite (real DynamoDB validation and conditional writes), started on port 0 once per
 * file (or describe block), with a fresh table for each test that asks: what the registry's unit tests share.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll } from "vitest";
import { createRegistryTable, type LocalDynamoDb, startDynamoDb } from "../../local/aws/dynamodb.js";

export interface LocalRegistry {
  /** A client of the dynalite server (started in beforeAll). */
  client(): DynamoDBClient;
  /** Create a new, empty registry table and return its name (`<prefix>-<n>`). */
  freshTable(): Promise<string>;
}

export function useLocalRegistry(prefix: string): LocalRegistry {
  let dynamo: LocalDynamoDb | undefined;
  let client: DynamoDBClient | undefined;
  let tables = 0;
  beforeAll(async () => {
    dynamo = await startDynamoDb();
    client = new DynamoDBClient({ region: "eu-west-1", endpoint: dynamo.url });
  });
  afterAll(async () => {
    client?.destroy();
    await dynamo?.close();
  });
  const started = () => {
    if (!dynamo || !client) throw new Error("useLocalRegistry: dynalite is not started (use it inside a test or hook)");
    return { dynamo, client };
  };
  return {
    client: () => started().client,
    async freshTable() {
      tables += 1;
      const tableName = `${prefix}-${tables}`;
      await createRegistryTable(started().dynamo.url, tableName);
      return tableName;
    },
  };
}
