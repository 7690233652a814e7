import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GetRoleCommand } from "@aws-sdk/client-iam";
import { DescribeClusterCommand } from "@aws-sdk/client-eks";
import {
  eksClient,
  eventBridgeClient,
  iamClient,
  MAX_ATTEMPTS,
  resetClients,
  sfnClient,
  signedWith,
  stsClient,
} from "../../functions/lib/aws/clients.js";
import { tracer } from "../../functions/lib/aws/powertools.js";
import { ClusterUnreachable, IamNotYetConsistent } from "../../functions/lib/domain/errors.js";
import { isAwsError, normaliseError } from "../../functions/lib/workflow/normalise-error.js";

const NO_SUCH_ENTITY = `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The role with name ghost cannot be found.</Message></Error>
  <RequestId>req-1</RequestId>
</ErrorResponse>`;

const savedEnv = { ...process.env };
let server: Server | undefined;
let requests: string[] = [];

async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeEach(() => {
  requests = [];
  resetClients();
});

afterEach(async () => {
  vi.restoreAllMocks();
  process.env = { ...savedEnv };
  resetClients();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

describe("SDK clients", () => {
  it("follow AWS_ENDPOINT_URL_IAM and name the failed call on the error", async () => {
    // Prepare
    const url = await listen((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      res.writeHead(404, { "content-type": "text/xml" }).end(NO_SUCH_ENTITY);
    });
    process.env.AWS_ENDPOINT_URL_IAM = url;
    // Act
    const error = await iamClient()
      .send(new GetRoleCommand({ RoleName: "ghost" }))
      .catch((e: unknown) => e);
    // Assess
    expect(requests).toHaveLength(1);
    expect(isAwsError(error, "NoSuchEntity")).toBe(true);
    const named = normaliseError(error);
    expect(named).toBeInstanceOf(IamNotYetConsistent);
    expect(named.message).toMatch(/^iam:GetRole failed: NoSuchEntity/);
  });

  it("retry a failing call at most MAX_ATTEMPTS times (the state machine retries the rest)", async () => {
    // Prepare
    const url = await listen((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      res.writeHead(503, { "content-type": "application/json", "x-amzn-errortype": "ServiceUnavailableException" }).end("{}");
    });
    process.env.AWS_ENDPOINT_URL_EKS = url;
    // Act
    const error = await eksClient("eu-west-1")
      .send(new DescribeClusterCommand({ name: "research" }))
      .catch((e: unknown) => e);
    // Assess
    expect(requests).toHaveLength(MAX_ATTEMPTS);
    expect(requests[0]).toBe("GET /clusters/research");
    expect(normaliseError(error)).toBeInstanceOf(ClusterUnreachable);
  });

  it("fail fast and named when the endpoint is unreachable", async () => {
    // Prepare: a port that was just free
    const url = await listen(() => undefined);
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    process.env.AWS_ENDPOINT_URL_EKS = url;
    const started = Date.now();
    // Act
    const error = await eksClient("eu-west-1")
      .send(new DescribeClusterCommand({ name: "research" }))
      .catch((e: unknown) => e);
    // Assess
    expect(normaliseError(error, "eks:DescribeCluster")).toBeInstanceOf(ClusterUnreachable);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("are memoised per region", () => {
    // Assess
    expect(eksClient("eu-west-1")).toBe(eksClient("eu-west-1"));
    expect(eksClient("eu-west-1")).not.toBe(eksClient("us-east-1"));
    expect(iamClient()).toBe(iamClient());
  });
});

describe("SDK clients: tracing", () => {
  it("are each captured by the tracer once, when created", () => {
    // Prepare: the real capture needs an X-Ray segment (Lambda); record what it is given instead
    const captured: unknown[] = [];
    vi.spyOn(tracer, "captureAWSv3Client").mockImplementation((client) => {
      captured.push(client);
      return client;
    });
    // Act
    const clients = [iamClient(), eksClient("eu-west-1"), stsClient("eu-west-1"), sfnClient(), eventBridgeClient(), iamClient()];
    // Assess
    expect(captured).toEqual(clients.slice(0, 5));
    expect(new Set(captured).size).toBe(5);
  });

  it("are left as they are while tracing is off (POWERTOOLS_TRACE_ENABLED=false), and still work", async () => {
    // Prepare
    const url = await listen((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ cluster: { name: "research" } }));
    });
    process.env.AWS_ENDPOINT_URL_EKS = url;
    // Act
    const client = eksClient("eu-west-1");
    const answer = await client.send(new DescribeClusterCommand({ name: "research" }));
    // Assess
    expect(tracer.isTracingEnabled()).toBe(false);
    expect(client.middlewareStack.identify().join(" ")).not.toMatch(/XRay/i);
    expect(answer.cluster?.name).toBe("research");
  });

  it("are signed with the signer given for a call (signedWith), kept apart per signer, the default chain outside", async () => {
    // Prepare: a server that records who signed each request
    const url = await listen((req, res) => {
      requests.push(/Credential=([^/]+)\//.exec(req.headers.authorization ?? "")?.[1] ?? "unsigned");
      res.writeHead(404, { "content-type": "text/xml" }).end(NO_SUCH_ENTITY);
    });
    process.env.AWS_ENDPOINT_URL_IAM = url;
    process.env.AWS_ACCESS_KEY_ID = "AKIADEFAULTCHAIN0000";
    const signer = (id: string) => ({
      id,
      credentials: async () => ({ accessKeyId: `ASIA${id.toUpperCase()}`, secretAccessKey: "s", sessionToken: "t" }),
    });
    const call = () =>
      iamClient()
        .send(new GetRoleCommand({ RoleName: "ghost" }))
        .catch(() => undefined);
    // Act
    const first = signedWith(signer("steprole1"), () => iamClient());
    await signedWith(signer("steprole1"), async () => {
      await Promise.resolve(); // the signer survives awaits
      await call();
    });
    await signedWith(signer("steprole2"), call);
    await call();
    // Assess
    expect(requests).toEqual(["ASIASTEPROLE1", "ASIASTEPROLE2", "AKIADEFAULTCHAIN0000"]);
    expect(signedWith(signer("steprole1"), () => iamClient())).toBe(first);
    expect(iamClient()).not.toBe(first);
  });
});
