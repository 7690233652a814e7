/**
 * The AWS emulator authorizes like AWS: every call is checked against the calling principal's identity policies and
 * its permissions boundary, and refused with each protocol's AccessDenied shape (checked on the wire with raw signed
 * requests, and as the AWS CLI prints it when one is installed). Driven by the real SDK v3 clients. The request
 * context the policies see: aws-authz-request-context.test.ts; STS and its sessions: aws-authz-sts.test.ts.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CreatePolicyCommand, CreateRoleCommand, GetRoleCommand, IAMServiceException } from "@aws-sdk/client-iam";
import { AccessDeniedException as EksAccessDenied, DescribeClusterCommand, ListClustersCommand } from "@aws-sdk/client-eks";
import { AccessDeniedException as EventsAccessDenied, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { NotAllowed } from "../../functions/lib/domain/errors.js";
import { normaliseError } from "../../functions/lib/workflow/normalise-error.js";
import {
  ACCOUNT,
  admin,
  allow,
  aws,
  CLUSTER_ARN,
  clientsAs,
  denial,
  policy,
  PRODUCT,
  REGION,
  rejection,
  sessionOf,
  signedFetch,
  TRUST_ACCOUNT,
  useAuthzEmulator,
} from "../support/aws-authz-sessions.js";

useAuthzEmulator();

// ---------------------------------------------------------------- allowed and denied, each protocol's shape

describe("every call is checked against the caller's policies", () => {
  it("allows what the role's policy allows, on the resources it names, and nothing else", async () => {
    // Prepare
    await admin.iam.send(
      new CreateRoleCommand({ RoleName: "nfeks-genomics-launcher", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) }),
    );
    await admin.iam.send(new CreateRoleCommand({ RoleName: "other-team", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) }));
    const keys = await sessionOf("reader", { read: policy(allow("iam:GetRole", `arn:aws:iam::${ACCOUNT}:role/nfeks-*`)) });
    const { iam } = clientsAs(keys);
    // Act
    const allowed = await iam.send(new GetRoleCommand({ RoleName: "nfeks-genomics-launcher" }));
    const otherRole = await rejection(iam.send(new GetRoleCommand({ RoleName: "other-team" })));
    // Assess
    expect(allowed.Role?.RoleName).toBe("nfeks-genomics-launcher");
    expect(otherRole.name).toBe("AccessDenied");
    expect(otherRole.message).toBe(denial(keys.arn, "iam:GetRole", `arn:aws:iam::${ACCOUNT}:role/other-team`));
  });

  it("denies IAM with the query protocol's AccessDenied: HTTP 403, <ErrorResponse>, Type Sender; the SDK raises AccessDenied", async () => {
    // Prepare
    const keys = await sessionOf("nobody", {});
    const { iam } = clientsAs(keys);
    const form = new URLSearchParams({
      Action: "CreateRole",
      Version: "2010-05-08",
      RoleName: "x",
      AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT),
    }).toString();
    const expected = denial(keys.arn, "iam:CreateRole", `arn:aws:iam::${ACCOUNT}:role/x`);
    const escaped = expected.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    // Act
    const error = await rejection(
      iam.send(new CreateRoleCommand({ RoleName: "x", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) })),
    );
    const raw = await signedFetch(keys, "iam", {
      method: "POST",
      path: "/",
      headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
      body: form,
    });
    // Assess
    expect(error).toBeInstanceOf(IAMServiceException);
    expect(error.name).toBe("AccessDenied");
    expect(error.$metadata?.httpStatusCode).toBe(403);
    expect(error.message).toBe(expected);
    expect(normaliseError(error, "iam:CreateRole")).toBeInstanceOf(NotAllowed);
    expect(raw.status).toBe(403);
    expect(raw.body).toMatch(
      new RegExp(
        `^<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code>` +
          `<Message>${escaped}</Message></Error><RequestId>[0-9a-f-]{36}</RequestId></ErrorResponse>$`,
      ),
    );
    expect(aws.state.iam.roles.has("x")).toBe(false);
  });

  it("denies EKS with REST JSON's AccessDeniedException: HTTP 403, {message}, x-amzn-ErrorType", async () => {
    // Prepare
    const keys = await sessionOf("nobody", {});
    const { eks } = clientsAs(keys);
    const expected = denial(keys.arn, "eks:DescribeCluster", CLUSTER_ARN);
    // Act
    const error = await rejection(eks.send(new DescribeClusterCommand({ name: "research" })));
    const raw = await signedFetch(keys, "eks", { method: "GET", path: "/clusters/research" });
    // Assess
    expect(error).toBeInstanceOf(EksAccessDenied);
    expect(error.$metadata?.httpStatusCode).toBe(403);
    expect(error.message).toBe(expected);
    expect(normaliseError(error, "eks:DescribeCluster")).toBeInstanceOf(NotAllowed);
    expect(raw.status).toBe(403);
    expect(raw.headers.get("x-amzn-errortype")).toBe("AccessDeniedException");
    expect(JSON.parse(raw.body)).toEqual({ message: expected });
  });

  it("denies EventBridge with JSON 1.1's AccessDeniedException: HTTP 400, {__type, message}", async () => {
    // Prepare
    const keys = await sessionOf("nobody", {});
    const { events } = clientsAs(keys);
    const entry = { Source: PRODUCT, DetailType: "ComputeEnvironmentReady", Detail: "{}", EventBusName: PRODUCT };
    const busArn = `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${PRODUCT}`;
    const expected = denial(keys.arn, "events:PutEvents", busArn);
    // Act
    const error = await rejection(events.send(new PutEventsCommand({ Entries: [entry] })));
    const raw = await signedFetch(keys, "events", {
      method: "POST",
      path: "/",
      headers: { "content-type": "application/x-amz-json-1.1", "x-amz-target": "AWSEvents.PutEvents" },
      body: JSON.stringify({ Entries: [entry] }),
    });
    // Assess
    expect(error).toBeInstanceOf(EventsAccessDenied);
    expect(error.$metadata?.httpStatusCode).toBe(400);
    expect(error.message).toBe(expected);
    expect(normaliseError(error, "events:PutEvents")).toBeInstanceOf(NotAllowed);
    expect(raw.status).toBe(400);
    expect(JSON.parse(raw.body)).toEqual({ __type: "AccessDeniedException", message: expected });
    expect(aws.events()).toEqual([]);
  });

  it("lets an explicit deny win over an allow", async () => {
    // Prepare
    const keys = await sessionOf("careful", {
      all: policy(allow("eks:*")),
      never: policy({ Effect: "Deny", Action: "eks:ListClusters", Resource: "*" }),
    });
    const { eks } = clientsAs(keys);
    // Act
    const described = await eks.send(new DescribeClusterCommand({ name: "research" }));
    const error = await rejection(eks.send(new ListClustersCommand({})));
    // Assess
    expect(described.cluster?.name).toBe("research");
    expect(error.message).toBe(
      `User: ${keys.arn} is not authorized to perform: eks:ListClusters on resource: * with an explicit deny in an identity-based policy`,
    );
  });
});

// ---------------------------------------------------------------- permissions boundaries

describe("a permissions boundary caps what the identity policies allow", () => {
  async function boundary(name: string, document: object): Promise<string> {
    const { Policy } = await admin.iam.send(new CreatePolicyCommand({ PolicyName: name, PolicyDocument: JSON.stringify(document) }));
    return Policy!.Arn!;
  }

  it("denies an action the identity policy allows but the boundary does not", async () => {
    // Prepare
    const onlyReads = await boundary("only-reads", policy(allow(["iam:Get*", "iam:List*"])));
    const keys = await sessionOf("capped", { everything: policy(allow("iam:*")) }, { permissionsBoundaryArn: onlyReads });
    const { iam } = clientsAs(keys);
    // Act
    const read = await iam.send(new GetRoleCommand({ RoleName: "capped" }));
    const error = await rejection(
      iam.send(new CreateRoleCommand({ RoleName: "escalated", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) })),
    );
    // Assess
    expect(read.Role?.PermissionsBoundary?.PermissionsBoundaryArn).toBe(onlyReads);
    expect(error.name).toBe("AccessDenied");
    expect(error.message).toBe(
      denial(
        keys.arn,
        "iam:CreateRole",
        `arn:aws:iam::${ACCOUNT}:role/escalated`,
        "because no permissions boundary allows the iam:CreateRole action",
      ),
    );
    expect(aws.state.iam.roles.has("escalated")).toBe(false);
  });

  it("names the boundary whose explicit deny refused the call", async () => {
    // Prepare
    const noRoles = await boundary("no-role-writes", policy(allow("*"), { Effect: "Deny", Action: "iam:CreateRole", Resource: "*" }));
    const keys = await sessionOf("denied-by-boundary", { everything: policy(allow("*")) }, { permissionsBoundaryArn: noRoles });
    const { iam } = clientsAs(keys);
    // Act
    const error = await rejection(
      iam.send(new CreateRoleCommand({ RoleName: "escalated", AssumeRolePolicyDocument: JSON.stringify(TRUST_ACCOUNT) })),
    );
    // Assess
    expect(error.message).toBe(
      denial(
        keys.arn,
        "iam:CreateRole",
        `arn:aws:iam::${ACCOUNT}:role/escalated`,
        `with an explicit deny in a permissions boundary: ${noRoles}`,
      ),
    );
  });
});

// ---------------------------------------------------------------- a denial, as the AWS CLI shows it

const execFileAsync = promisify(execFile);

async function cliOnPath(): Promise<boolean> {
  try {
    await execFileAsync("aws", ["--version"], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

const cliInstalled = await cliOnPath();

describe.skipIf(!cliInstalled)(`the AWS CLI ${cliInstalled ? "" : "(skipped: no aws on PATH)"}`.trim(), () => {
  it("prints the AccessDenied of a call the role's keys may not make", async () => {
    // Prepare
    const keys = await sessionOf("cli-reader", { read: policy(allow("iam:GetRole")) });
    const home = mkdtempSync(join(tmpdir(), "aws-cli-"));
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      AWS_ACCESS_KEY_ID: keys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
      AWS_SESSION_TOKEN: keys.sessionToken!,
      AWS_DEFAULT_REGION: REGION,
      AWS_EC2_METADATA_DISABLED: "true",
    };
    const args = [
      "--endpoint-url",
      aws.url,
      "iam",
      "create-role",
      "--role-name",
      "from-cli",
      "--assume-role-policy-document",
      JSON.stringify(TRUST_ACCOUNT),
    ];
    // Act
    const failure = await execFileAsync("aws", args, { env, timeout: 25_000 }).then(
      () => undefined,
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    rmSync(home, { recursive: true, force: true });
    // Assess
    const denied = denial(keys.arn, "iam:CreateRole", `arn:aws:iam::${ACCOUNT}:role/from-cli`);
    expect(failure).toContain(`An error occurred (AccessDenied) when calling the CreateRole operation: ${denied}`);
  });
});
