/**
 * DynamoDB for the sandbox and the tests: dynalite (an implementation of DynamoDB's wire protocol, in memory),
 * which enforces DynamoDB's validation and conditional writes. It has no transactions and no TTL: the registry
 * uses neither (environment-registry.ts).
 */
import type { Server } from "node:http";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
// @ts-expect-error dynalite ships no type declarations
import dynalite from "dynalite";
import { BY_KIND_INDEX } from "../../functions/lib/workflow/environment-registry.js";

export interface LocalDynamoDb {
  url: string;
  close(): Promise<void>;
}

export async function startDynamoDb(opts: { port?: number } = {}): Promise<LocalDynamoDb> {
  const server = (dynalite as (o: object) => Server)({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The registry's table as the stack defines it (stacks/Provisioner.ts): `pk`, and the `byKind` index that lists. */
export async function createRegistryTable(endpoint: string, tableName: string, region = "eu-west-1"): Promise<void> {
  const client = new DynamoDBClient({ region, endpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } });
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [
          { AttributeName: "pk", AttributeType: "S" },
          { AttributeName: "kind", AttributeType: "S" },
        ],
        KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
        GlobalSecondaryIndexes: [
          {
            IndexName: BY_KIND_INDEX,
            KeySchema: [
              { AttributeName: "kind", KeyType: "HASH" },
              { AttributeName: "pk", KeyType: "RANGE" },
            ],
            Projection: { ProjectionType: "ALL" },
          },
        ],
      }),
    );
  } finally {
    client.destroy();
  }
}
