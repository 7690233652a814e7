/**
 * The HTTP API on 127.0.0.1, the way API Gateway (HTTP API, payload 2.0) serves it when deployed:
 * each request becomes an APIGatewayProxyEventV2 and goes to the same handler the deployed route calls.
 * Routes are the stack's routes; nothing here re-implements validation or the workflow start.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { lambdaContext } from "../functions/lib/workflow/lambda-context.js";
import { closeServer, flatHeaders, listen, readBody } from "./sandbox-http.js";

export type HttpHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2 | string | undefined>;

export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** API Gateway route syntax: `/executions/{id}` */
  path: string;
  handler: HttpHandler;
}

export interface DevServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 256 * 1024;

function routeMatcher(path: string): (actual: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const pattern = path.replace(/\{([A-Za-z0-9_]+)\}/g, (_, name: string) => {
    names.push(name);
    return "([^/]+)";
  });
  const re = new RegExp(`^${pattern}$`);
  return (actual) => {
    const m = re.exec(actual);
    if (!m) return undefined;
    // API Gateway hands path parameters to the Lambda URL-decoded.
    return Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1]!)]));
  };
}

function toApiGatewayEvent(
  req: IncomingMessage,
  url: URL,
  routeKey: string,
  pathParameters: Record<string, string>,
  body: string,
): APIGatewayProxyEventV2 {
  const headers = flatHeaders(req);
  const query = Object.fromEntries(url.searchParams.entries());
  const now = Date.now();
  return {
    version: "2.0",
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.searchParams.toString(),
    headers,
    queryStringParameters: Object.keys(query).length ? query : undefined,
    pathParameters: Object.keys(pathParameters).length ? pathParameters : undefined,
    body: body || undefined,
    isBase64Encoded: false,
    requestContext: {
      accountId: "000000000000",
      apiId: "local",
      domainName: url.host,
      domainPrefix: "local",
      http: {
        method: req.method ?? "GET",
        path: url.pathname,
        protocol: "HTTP/1.1",
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: `local-${now.toString(36)}`,
      routeKey,
      stage: "$default",
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(text);
}

export async function startDevServer(routes: Route[], opts: { port?: number; host?: string } = {}): Promise<DevServer> {
  const compiled = routes.map((r) => ({ ...r, match: routeMatcher(r.path) }));
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "127.0.0.1"}`);
    try {
      const candidates = compiled.map((r) => ({ r, params: r.match(url.pathname) })).filter((c) => c.params);
      if (candidates.length === 0) return send(res, 404, { message: "Not Found" });
      const found = candidates.find((c) => c.r.method === req.method);
      if (!found) return send(res, 405, { message: "Method Not Allowed" }, { allow: candidates.map((c) => c.r.method).join(", ") });
      const body = (
        await readBody(req, MAX_BODY_BYTES, () => Object.assign(new Error("request body too large"), { statusCode: 413 }))
      ).toString("utf8");
      const routeKey = `${found.r.method} ${found.r.path}`;
      const event = toApiGatewayEvent(req, url, routeKey, found.params!, body);
      const result = await found.r.handler(event, lambdaContext({ functionName: routeKey, timeoutMs: 30_000, memoryMB: 256 }));
      // Payload 2.0: a bare value is a 200 JSON body, as API Gateway does.
      if (result === undefined || typeof result === "string") return send(res, 200, result ?? "");
      const headers = Object.fromEntries(Object.entries(result.headers ?? {}).map(([k, v]) => [k, String(v)]));
      res.writeHead(result.statusCode ?? 200, { "content-type": "application/json", ...headers });
      res.end(result.body ?? "");
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode ?? 500;
      // The deployed API answers an unhandled error with a bare 500 too: no stack trace leaves the process.
      send(res, status, { message: status === 413 ? "Request body too large" : "Internal Server Error" });
      if (status === 500) console.error("dev server: handler failed:", error);
    }
  });
  const port = await listen(server, opts.port ?? 0, opts.host ?? "127.0.0.1");
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => closeServer(server),
  };
}
