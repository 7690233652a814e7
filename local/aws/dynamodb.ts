/**
 * DynamoDB for the sandbox and the tests: dynalite (an implementation of DynamoDB's wire protocol, in memory),
 * which enforces DynamoDB's validation and conditional writes. It has no transactions and no TTL: the registry
 * uses neither (environment-registry.ts).
 *
 * With `authorize` (the sandbox passes the AWS emulator's), dynalite sits behind a front server that authorizes
 * every call as DynamoDB does: the SigV4 signature checked against the emulator's keys, the caller's role's
 * policies deciding `dynamodb:<Operation>` on the table's ARN (`<table ARN>/index/<IndexName>` for a Query or Scan
 * of an index), a denial answered as DynamoDB answers it (HTTP 400, `com.amazon.coral.service#AccessDeniedException`).
 * Allowed calls are passed to dynalite as sent.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
// @ts-expect-error dynalite ships no type declarations
import dynalite from "dynalite";
import { BY_KIND_INDEX } from "../../functions/lib/workflow/environment-registry.js";
import { closeServer, listen, readBody } from "../sandbox-http.js";
import type { AuthorizationCheck } from "./authorizer.js";
import { DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY } from "./aws-emulator-server.js";
import type { Caller } from "./protocol.js";
import { refusalOf, type ServiceRefusal, type SignedServiceAuthorizer } from "./signed-service-gate.js";

/** DynamoDB's JSON 1.0 target prefix (`X-Amz-Target: DynamoDB_20120810.PutItem`). */
const TARGET_PREFIX = "DynamoDB_20120810";
/** The sandbox admin's keys, which the registry table is created with. */
const ADMIN_CREDENTIALS = { accessKeyId: DEFAULT_ACCESS_KEY_ID, secretAccessKey: DEFAULT_SECRET_ACCESS_KEY };

export interface LocalDynamoDb {
  url: string;
  close(): Promise<void>;
}

/** A table's ARN, from a TableName that is a name or already an ARN (DynamoDB takes both). */
function tableArn(table: string, caller: Caller, region: string): string {
  return table.startsWith("arn:") ? table : `arn:aws:dynamodb:${region}:${caller.accountId}:table/${table}`;
}

const TABLE_NAME = /^(arn:[^:]+:dynamodb:[^:]*:\d{12}:table\/)?[a-zA-Z0-9_.-]{3,255}$/;

/** The tables a Batch*Item call names (its RequestItems' keys). */
function requestItemTables(body: Record<string, unknown>): string[] {
  const items = body.RequestItems;
  return items && typeof items === "object" && !Array.isArray(items) ? Object.keys(items) : [];
}

/**
 * What DynamoDB authorizes for each operation dynalite serves: `dynamodb:<Operation>` on the table the request names
 * (each table of a batch), on `<table>/index/<IndexName>` for a Query or Scan of an index, on the resource ARN for
 * the tagging calls, on `*` for ListTables. A request whose table name is not one DynamoDB takes gets no check:
 * dynalite refuses it (ValidationException), as DynamoDB validates before it authorizes.
 */
export function dynamoDbChecks(operation: string, body: Record<string, unknown>, caller: Caller, region: string): AuthorizationCheck[] {
  const action = `dynamodb:${operation}`;
  const on = (resource: string): AuthorizationCheck => ({ action, resource, context: {} });
  const table =
    typeof body.TableName === "string" && TABLE_NAME.test(body.TableName) ? tableArn(body.TableName, caller, region) : undefined;
  switch (operation) {
    case "ListTables":
      return [on("*")];
    case "BatchGetItem":
    case "BatchWriteItem":
      return requestItemTables(body)
        .filter((t) => TABLE_NAME.test(t))
        .map((t) => on(tableArn(t, caller, region)));
    case "TagResource":
    case "UntagResource":
    case "ListTagsOfResource":
      return typeof body.ResourceArn === "string" && TABLE_NAME.test(body.ResourceArn) ? [on(body.ResourceArn)] : [];
    case "Query":
    case "Scan":
      if (!table) return [];
      return [on(typeof body.IndexName === "string" && body.IndexName ? `${table}/index/${body.IndexName}` : table)];
    case "CreateTable":
    case "DeleteTable":
    case "DescribeTable":
    case "UpdateTable":
    case "DescribeTimeToLive":
    case "GetItem":
    case "PutItem":
    case "UpdateItem":
    case "DeleteItem":
      return table ? [on(table)] : [];
    default:
      return []; // not an operation dynalite serves: it answers UnknownOperationException
  }
}

function sendRefusal(res: ServerResponse, refusal: ServiceRefusal): void {
  // DynamoDB words AccessDenied with a capital `Message` (as dynalite's own tests record it), the others with `message`.
  const key = refusal.code === "AccessDeniedException" ? "Message" : "message";
  const text = JSON.stringify({ __type: `com.amazon.coral.service#${refusal.code}`, [key]: refusal.message });
  res.writeHead(refusal.status, {
    "content-type": "application/x-amz-json-1.0",
    "content-length": Buffer.byteLength(text),
    "x-amzn-errortype": refusal.code,
  });
  res.end(text);
}

/** The request, as sent, to dynalite; its answer back as it came. */
function forward(req: IncomingMessage, body: Buffer, res: ServerResponse, port: number): void {
  const upstream = httpRequest({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 500, answer.headers);
    answer.pipe(res);
  });
  upstream.on("error", (error) => {
    if (res.headersSent) return void res.destroy();
    const text = JSON.stringify({ __type: "com.amazon.coral.service#InternalFailure", message: error.message });
    res.writeHead(500, { "content-type": "application/x-amz-json-1.0", "content-length": Buffer.byteLength(text) });
    res.end(text);
  });
  upstream.end(body);
}

/** A front server that authorizes each request before dynalite (on `innerPort`) serves it. */
function authorizingFront(authorize: SignedServiceAuthorizer, innerPort: number): Server {
  return createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const refusal = await refusalOf(authorize, req, body, TARGET_PREFIX, dynamoDbChecks);
      if (refusal) return sendRefusal(res, refusal);
      forward(req, body, res, innerPort);
    })().catch((error: unknown) => {
      if (res.headersSent) return void res.destroy();
      const text = JSON.stringify({
        __type: "com.amazon.coral.service#InternalFailure",
        message: error instanceof Error ? error.message : String(error),
      });
      res.writeHead(500, { "content-type": "application/x-amz-json-1.0", "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  });
}

export async function startDynamoDb(opts: { port?: number; authorize?: SignedServiceAuthorizer } = {}): Promise<LocalDynamoDb> {
  const server = (dynalite as (o: object) => Server)({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const innerPort = opts.authorize ? 0 : (opts.port ?? 0);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(innerPort, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as { port: number };
  const closeDynalite = () => new Promise<void>((resolve) => server.close(() => resolve()));
  if (!opts.authorize) return { url: `http://127.0.0.1:${port}`, close: closeDynalite };
  const front = authorizingFront(opts.authorize, port);
  const frontPort = await listen(front, opts.port ?? 0, "127.0.0.1");
  return {
    url: `http://127.0.0.1:${frontPort}`,
    close: async () => {
      await closeServer(front);
      await closeDynalite();
    },
  };
}

/** The registry's table as the stack defines it (stacks/Provisioner.ts): `pk`, and the `byKind` index that lists. Created as the sandbox admin. */
export async function createRegistryTable(endpoint: string, tableName: string, region = "eu-west-1"): Promise<void> {
  const client = new DynamoDBClient({ region, endpoint, credentials: ADMIN_CREDENTIALS });
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
