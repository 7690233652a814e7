/**
 * DynamoDB (the environment registry, dynalite) and Step Functions (the local runner's API) authorize like the AWS
 * emulator's other services (#12): the SigV4 signature checked against the emulator's keys, the calling role's
 * policies (stacks/permissions.ts, as deployed) deciding `dynamodb:<Operation>` on the table or its index and
 * `states:<Action>` on the state machine or execution, a denial answered in each service's AccessDenied shape. So a
 * registry or Step Functions permission missing from a product role fails in the sandbox as in a customer's account.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { DynamoDBClient, ListTablesCommand, QueryCommand } from "@aws-sdk/client-dynamodb";
import { ListExecutionsCommand, ListStateMachinesCommand, SFNClient } from "@aws-sdk/client-sfn";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity } from "@smithy/types";
import { describe, expect, it } from "vitest";
import { EnvironmentRegistry, BY_KIND_INDEX } from "../../functions/lib/workflow/environment-registry.js";
import { defineProductRole, withoutAction } from "../../local/aws/product-roles.js";
import { REGISTRY_TABLE_NAME, type Sandbox } from "../../local/sandbox.js";
import { ACCOUNT_ID, CLUSTER, FAST, provision, pvcRequest, settled, useSandbox, type Run } from "../support/sandbox-runs.js";

const TABLE_ARN = `arn:aws:dynamodb:${CLUSTER.region}:${ACCOUNT_ID}:table/${REGISTRY_TABLE_NAME}`;
const LIST_ROUTE = "GET /environments";
const CREATE_ROUTE = "POST /environments";
const DELETE_ROUTE = "DELETE /environments/{tenant}/{region}/{cluster}";

/** The credentials a product role's Lambdas sign with (a session of the role, as Lambda gets one). */
async function roleCredentials(sandbox: Sandbox, key: string): Promise<AwsCredentialIdentity> {
  return sandbox.signers.get(key)!.credentials();
}

/** The ARN a product role's session calls as (the session is named after the role key). */
function sessionArn(sandbox: Sandbox, key: string): string {
  const role = sandbox.productRoles.find((r) => r.key === key)!;
  return `arn:aws:sts::${ACCOUNT_ID}:assumed-role/${role.roleName}/${key.replace(/[^\w+=,.@-]+/g, "-").replace(/^-|-$/g, "")}`;
}

/** One AWS JSON 1.0 call signed as an SDK signs it, answered raw (status, error header, body). */
async function signedCall(
  url: string,
  service: "dynamodb" | "states",
  target: string,
  body: unknown,
  credentials: AwsCredentialIdentity,
): Promise<{ status: number; errorType: string | null; body: any }> {
  const { hostname, port } = new URL(url);
  const text = JSON.stringify(body);
  const request = new HttpRequest({
    method: "POST",
    protocol: "http:",
    hostname,
    port: Number(port),
    path: "/",
    headers: { host: `${hostname}:${port}`, "content-type": "application/x-amz-json-1.0", "x-amz-target": target },
    body: text,
  });
  const signed = await new SignatureV4({ credentials, region: CLUSTER.region, service, sha256: Sha256 }).sign(request);
  const res = await fetch(url, { method: "POST", headers: signed.headers as Record<string, string>, body: text });
  return { status: res.status, errorType: res.headers.get("x-amzn-errortype"), body: await res.json() };
}

/** Gives a product role its statements again, minus `action` when given (its sessions see the change at once). */
function redefine(sandbox: Sandbox, key: string, action?: string): void {
  const role = sandbox.productRoles.find((r) => r.key === key)!;
  defineProductRole(sandbox.aws, role, action ? withoutAction(role.statements, action) : role.statements);
}

async function api(sandbox: Sandbox, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sandbox.apiUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

const environmentOf = (tenant: string) =>
  new EnvironmentRegistry().getEnvironment({ tenant, region: CLUSTER.region, cluster: CLUSTER.name });
const environmentPath = (tenant: string) => `/environments/${tenant}/${CLUSTER.region}/${CLUSTER.name}`;

describe("the sandbox's DynamoDB and Step Functions authorize each call as the caller's role", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => (sandbox = started.sandbox));

  it("DynamoDB: a role's Query on the index it holds is served; an UpdateItem it does not hold is denied in DynamoDB's shape", async () => {
    // Prepare
    const credentials = await roleCredentials(sandbox, LIST_ROUTE);
    const query = {
      TableName: REGISTRY_TABLE_NAME,
      IndexName: BY_KIND_INDEX,
      KeyConditionExpression: "kind = :k",
      ExpressionAttributeValues: { ":k": { S: "environment" } },
    };
    const update = {
      TableName: REGISTRY_TABLE_NAME,
      Key: { pk: { S: "x" } },
      UpdateExpression: "SET a = :a",
      ExpressionAttributeValues: { ":a": { S: "1" } },
    };

    // Act
    const listed = await signedCall(sandbox.dynamoDbUrl, "dynamodb", "DynamoDB_20120810.Query", query, credentials);
    const denied = await signedCall(sandbox.dynamoDbUrl, "dynamodb", "DynamoDB_20120810.UpdateItem", update, credentials);

    // Assess
    expect(listed.status).toBe(200);
    expect(listed.body).toHaveProperty("Items");
    expect(denied).toEqual({
      status: 400,
      errorType: "AccessDeniedException",
      body: {
        __type: "com.amazon.coral.service#AccessDeniedException",
        Message:
          `User: ${sessionArn(sandbox, LIST_ROUTE)} is not authorized to perform: dynamodb:UpdateItem on resource: ${TABLE_ARN} ` +
          "because no identity-based policy allows the dynamodb:UpdateItem action",
      },
    });
  });

  it("DynamoDB: a Query on the index is decided on `<table>/index/<name>`; a role that holds only the table is denied there", async () => {
    // Prepare: the GET /environments role with Query on the table alone
    const role = sandbox.productRoles.find((r) => r.key === LIST_ROUTE)!;
    defineProductRole(sandbox.aws, role, [{ Sid: "TableOnly", Effect: "Allow", Action: ["dynamodb:Query"], Resource: [TABLE_ARN] }]);
    const dynamo = new DynamoDBClient({
      region: CLUSTER.region,
      endpoint: sandbox.dynamoDbUrl,
      credentials: await roleCredentials(sandbox, LIST_ROUTE),
    });
    const byKey = { TableName: REGISTRY_TABLE_NAME, KeyConditionExpression: "pk = :p", ExpressionAttributeValues: { ":p": { S: "x" } } };
    const byKind = {
      TableName: REGISTRY_TABLE_NAME,
      IndexName: BY_KIND_INDEX,
      KeyConditionExpression: "kind = :k",
      ExpressionAttributeValues: { ":k": { S: "environment" } },
    };

    // Act
    let onIndex: unknown;
    let onTable: unknown;
    try {
      onTable = await dynamo.send(new QueryCommand(byKey));
      onIndex = await dynamo.send(new QueryCommand(byKind)).catch((error: unknown) => error);
    } finally {
      redefine(sandbox, LIST_ROUTE);
      dynamo.destroy();
    }

    // Assess
    expect(onTable).toHaveProperty("Items");
    expect(onIndex).toMatchObject({ name: "AccessDeniedException", $metadata: { httpStatusCode: 400 } });
    expect((onIndex as Error).message).toContain(
      `not authorized to perform: dynamodb:Query on resource: ${TABLE_ARN}/index/${BY_KIND_INDEX}`,
    );
  });

  it("Step Functions: a role's StartExecution on another state machine is denied in Step Functions' shape; its reads are served", async () => {
    // Prepare: the status route reads executions and starts nothing
    const credentials = await roleCredentials(sandbox, "GET /executions/{id}");
    const executionArn = `arn:aws:states:${CLUSTER.region}:${ACCOUNT_ID}:execution:provision:nobody`;

    // Act
    const started = await signedCall(
      sandbox.sfnUrl,
      "states",
      "AWSStepFunctions.StartExecution",
      { stateMachineArn: sandbox.stateMachineArn, input: "{}" },
      credentials,
    );
    const described = await signedCall(sandbox.sfnUrl, "states", "AWSStepFunctions.DescribeExecution", { executionArn }, credentials);

    // Assess
    expect(started).toEqual({
      status: 400,
      errorType: "AccessDeniedException",
      body: {
        __type: "AccessDeniedException",
        message:
          `User: ${sessionArn(sandbox, "GET /executions/{id}")} is not authorized to perform: states:StartExecution on resource: ${sandbox.stateMachineArn} ` +
          "because no identity-based policy allows the states:StartExecution action",
      },
    });
    // Through authorization to the runner, which knows no such execution.
    expect(described).toMatchObject({ status: 400, body: { __type: "ExecutionDoesNotExist" } });
  });

  it("both refuse a key they do not know and a wrong secret; the sandbox admin's keys are served as before", async () => {
    // Prepare
    const unknown = { accessKeyId: "AKIAUNKNOWNKEY000000", secretAccessKey: "nothing" };
    const admin = { accessKeyId: sandbox.env.AWS_ACCESS_KEY_ID!, secretAccessKey: sandbox.env.AWS_SECRET_ACCESS_KEY! };
    const wrongSecret = { ...admin, secretAccessKey: "not-the-secret" };
    const dynamo = new DynamoDBClient({ region: CLUSTER.region, endpoint: sandbox.dynamoDbUrl, credentials: admin });
    const sfn = new SFNClient({ region: CLUSTER.region, endpoint: sandbox.sfnUrl, credentials: admin });

    // Act
    const answers = {
      dynamoUnknown: await signedCall(sandbox.dynamoDbUrl, "dynamodb", "DynamoDB_20120810.ListTables", {}, unknown),
      dynamoWrong: await signedCall(sandbox.dynamoDbUrl, "dynamodb", "DynamoDB_20120810.ListTables", {}, wrongSecret),
      sfnUnknown: await signedCall(sandbox.sfnUrl, "states", "AWSStepFunctions.ListStateMachines", {}, unknown),
      sfnWrong: await signedCall(sandbox.sfnUrl, "states", "AWSStepFunctions.ListStateMachines", {}, wrongSecret),
    };
    const tables = await dynamo.send(new ListTablesCommand({}));
    const machines = await sfn.send(new ListStateMachinesCommand({}));
    dynamo.destroy();
    sfn.destroy();

    // Assess
    expect(answers.dynamoUnknown).toMatchObject({ status: 400, body: { __type: "com.amazon.coral.service#UnrecognizedClientException" } });
    expect(answers.dynamoWrong).toMatchObject({ status: 400, body: { __type: "com.amazon.coral.service#InvalidSignatureException" } });
    expect(answers.sfnUnknown).toMatchObject({ status: 400, body: { __type: "UnrecognizedClientException" } });
    expect(answers.sfnWrong).toMatchObject({ status: 400, body: { __type: "InvalidSignatureException" } });
    expect(tables.TableNames).toContain(REGISTRY_TABLE_NAME);
    expect(machines.stateMachines?.map((m) => m.stateMachineArn)).toContain(sandbox.stateMachineArn);
  });
});

describe("a registry or Step Functions permission missing from one product role", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => (sandbox = started.sandbox));

  it("without dynamodb:UpdateItem, Report is denied: the run fails there and is undone, and the record says failed with no lease", async () => {
    // Prepare
    await settled(sandbox);
    const before = sandbox.snapshot();
    redefine(sandbox, "Report", "dynamodb:UpdateItem");

    // Act
    let run: Run;
    try {
      run = await provision(sandbox, pvcRequest("no-report", { namespace: "no-report" }));
    } finally {
      redefine(sandbox, "Report");
    }
    await settled(sandbox);

    // Assess
    expect(run.execution.status).toBe("FAILED");
    expect(run.view).toMatchObject({ status: "FAILED", failedStep: "Report", error: "NotAllowed" });
    expect(run.execution.cause).toMatch(/AccessDenied/);
    expect(run.execution.cause).toContain(`not authorized to perform: dynamodb:UpdateItem on resource: ${TABLE_ARN}`);
    expect(sandbox.snapshot()).toStrictEqual(before);
    const record = await environmentOf("no-report");
    expect(record).toMatchObject({ status: "failed", owned: {} });
    expect(record?.lease).toBeUndefined();
  });

  it("without states:StartExecution, POST /environments answers a plain 500 (no stack, no run), leaves the new record failed and free, and a repeat starts the run", async () => {
    // Prepare
    const request = pvcRequest("no-start", { namespace: "no-start" });
    redefine(sandbox, CREATE_ROUTE, "states:StartExecution");

    // Act
    let refused: { status: number; body: any };
    try {
      refused = await api(sandbox, "POST", "/environments", request);
    } finally {
      redefine(sandbox, CREATE_ROUTE);
    }
    const record = await environmentOf("no-start");
    const sfn = new SFNClient({ region: CLUSTER.region, endpoint: sandbox.sfnUrl });
    const runs = await sfn.send(new ListExecutionsCommand({ stateMachineArn: sandbox.stateMachineArn }));
    sfn.destroy();
    const repeated = await api(sandbox, "POST", "/environments", request);

    // Assess: the route's error answer, nothing started, the record it created put back as failed (no run named), the lease given back
    expect(refused.status).toBe(500);
    expect(refused.body).toEqual({ error: "InternalError", message: expect.stringMatching(/^could not /), requestId: expect.anything() });
    expect(JSON.stringify(refused.body)).not.toMatch(/\n\s+at |AccessDenied/);
    expect(runs.executions?.filter((e) => e.name?.startsWith("no-start"))).toEqual([]);
    expect(record).toMatchObject({ status: "failed", generation: 0 });
    expect(record?.lastExecution).toBeUndefined();
    expect(record?.lease).toBeUndefined();
    // the repeat is not answered "nothing to do" with a run that never existed: it starts one
    expect(repeated.status).toBe(202);
    await settled(sandbox);
  });

  it("without states:StartExecution on the teardown, DELETE answers a plain 500 and the environment stays as it was, lease free", async () => {
    // Prepare: a ready environment
    const run = await provision(sandbox, pvcRequest("keep-me", { namespace: "keep-me" }));
    expect(run.execution.status).toBe("SUCCEEDED");
    await settled(sandbox);
    redefine(sandbox, DELETE_ROUTE, "states:StartExecution");

    // Act
    let refused: { status: number; body: any };
    try {
      refused = await api(sandbox, "DELETE", environmentPath("keep-me"));
    } finally {
      redefine(sandbox, DELETE_ROUTE);
    }

    // Assess
    expect(refused.status).toBe(500);
    expect(refused.body).toMatchObject({ error: "InternalError", message: "could not start the teardown workflow" });
    const record = await environmentOf("keep-me");
    expect(record).toMatchObject({ status: "ready" });
    expect(record?.lease).toBeUndefined();
  });
});

describe("SandboxOptions.removePermissions: GET /environments without dynamodb:Query", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, removePermissions: [{ role: LIST_ROUTE, action: "dynamodb:Query" }] }, (started) => (sandbox = started.sandbox));

  it("fails clearly (500 could not read the environment registry), and the admin's Query on the same index is served", async () => {
    // Prepare
    const admin = new DynamoDBClient({ region: CLUSTER.region, endpoint: sandbox.dynamoDbUrl });
    const byKind = {
      TableName: REGISTRY_TABLE_NAME,
      IndexName: BY_KIND_INDEX,
      KeyConditionExpression: "kind = :k",
      ExpressionAttributeValues: { ":k": { S: "environment" } },
    };

    // Act
    const listed = await api(sandbox, "GET", "/environments");
    const queried = await admin.send(new QueryCommand(byKind));
    admin.destroy();

    // Assess
    expect(listed.status).toBe(500);
    expect(listed.body).toMatchObject({ error: "InternalError", message: "could not read the environment registry" });
    expect(queried.Items).toEqual([]);
  });
});
