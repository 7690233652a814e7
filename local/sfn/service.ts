/**
 * The local runner behind Step Functions' own wire protocol (AWS JSON 1.0): `POST /` with
 * `X-Amz-Target: AWSStepFunctions.<Action>`, JSON in and out, dates as epoch seconds, errors as HTTP 400
 * `{"__type": "<Code>", "message": ...}`. So `@aws-sdk/client-sfn` (and the AWS CLI) with the endpoint
 * pointed here behave as against AWS, raising `ExecutionAlreadyExists`, `ExecutionDoesNotExist`, ... .
 *
 * With `authorize` (the sandbox passes the AWS emulator's), every call is authorized as Step Functions authorizes it:
 * the SigV4 signature checked against the emulator's keys, then `states:<Action>` on the resource the Service
 * Authorization Reference names (stepFunctionsChecks) decided by the caller's policies; a denial answers HTTP 400
 * `{"__type": "AccessDeniedException", "message": "User: ... is not authorized to perform: states:StartExecution
 * on resource: ..."}`. Without it (unit tests of the runner), requests are served unchecked.
 */
import { randomUUID } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import { closeServer, listen, readBody } from "../sandbox-http.js";
import type { AuthorizationCheck } from "../aws/authorizer.js";
import { refusalOf, type SignedServiceAuthorizer } from "../aws/signed-service-gate.js";
import type { LocalStepFunctions } from "./runner.js";

export interface SfnService {
  url: string;
  port: number;
  close(): Promise<void>;
}

const CONTENT_TYPE = "application/x-amz-json-1.0";
const TARGET_PREFIX = "AWSStepFunctions.";
const TARGET_NAMESPACE = "AWSStepFunctions";
const MAX_BODY_BYTES = 1024 * 1024;

// The runner validates what it reads (ARNs, names, page sizes), as the service does.
type Action = (runner: LocalStepFunctions, input: any) => Promise<unknown>;

const ACTIONS: Record<string, Action> = {
  StartExecution: (r, i) => r.startExecution(i),
  DescribeExecution: (r, i) => r.describeExecution(i),
  GetExecutionHistory: (r, i) => r.getExecutionHistory(i),
  ListExecutions: (r, i) => r.listExecutions(i),
  StopExecution: (r, i) => r.stopExecution(i),
  DescribeStateMachine: (r, i) => r.describeStateMachine(i),
  ListStateMachines: (r) => r.listStateMachines(),
};

const STATE_MACHINE_ARN = /^arn:[^:]+:states:[^:]+:\d{12}:stateMachine:[^:]+$/;
const EXECUTION_ARN = /^arn:[^:]+:states:[^:]+:\d{12}:execution:[^:]+:[^:]+$/;

/**
 * What Step Functions authorizes for each action served (the Service Authorization Reference's resource types):
 * StartExecution, ListExecutions and DescribeStateMachine on the state machine, DescribeExecution,
 * GetExecutionHistory and StopExecution on the execution, ListStateMachines on `*`. An ARN missing or of the
 * wrong shape gets no check: the runner refuses it (InvalidArn), as the service validates before it authorizes.
 */
export function stepFunctionsChecks(operation: string, input: Record<string, unknown>): AuthorizationCheck[] {
  const on = (field: string, shape: RegExp): AuthorizationCheck[] => {
    const arn = input[field];
    return typeof arn === "string" && shape.test(arn) ? [{ action: `states:${operation}`, resource: arn, context: {} }] : [];
  };
  switch (operation) {
    case "StartExecution":
    case "ListExecutions":
    case "DescribeStateMachine":
      return on("stateMachineArn", STATE_MACHINE_ARN);
    case "DescribeExecution":
    case "GetExecutionHistory":
    case "StopExecution":
      return on("executionArn", EXECUTION_ARN);
    case "ListStateMachines":
      return [{ action: "states:ListStateMachines", resource: "*", context: {} }];
    default:
      return [];
  }
}

/** Dates become epoch seconds (with milliseconds), as the JSON protocols send timestamps. */
function toWire(value: unknown): unknown {
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(toWire);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, toWire(v)]),
    );
  }
  return value;
}

function send(res: ServerResponse, status: number, body: unknown, requestId: string, errorType?: string): void {
  const text = JSON.stringify(toWire(body));
  res.writeHead(status, {
    "content-type": CONTENT_TYPE,
    "content-length": Buffer.byteLength(text),
    "x-amzn-requestid": requestId,
    ...(errorType ? { "x-amzn-errortype": errorType } : {}),
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, type: string, message: string, requestId: string): void {
  send(res, status, { __type: type, message }, requestId, type);
}

/** The SDK's service exceptions carry the AWS code as `name` and `$fault`; anything else is our fault. */
function isServiceError(error: unknown): error is Error & { $fault: "client" | "server"; $metadata?: { httpStatusCode?: number } } {
  return error instanceof Error && "$fault" in error;
}

export async function startSfnService(opts: {
  runner: LocalStepFunctions;
  port?: number;
  host?: string;
  /** authorize every call as the signer's role (the AWS emulator's authorizeSigned); default: none */
  authorize?: SignedServiceAuthorizer;
}): Promise<SfnService> {
  const { runner } = opts;
  const server = createServer(async (req, res) => {
    const requestId = randomUUID();
    try {
      if (req.method !== "POST") return sendError(res, 404, "UnknownOperationException", "Step Functions answers POST / only", requestId);
      const target = String(req.headers["x-amz-target"] ?? "");
      const action = target.startsWith(TARGET_PREFIX) ? ACTIONS[target.slice(TARGET_PREFIX.length)] : undefined;
      if (!action)
        return sendError(
          res,
          400,
          "UnknownOperationException",
          `unknown or unsupported operation: ${target || "(no X-Amz-Target)"}`,
          requestId,
        );
      let input: Record<string, unknown>;
      let body: Buffer;
      try {
        body = await readBody(req, MAX_BODY_BYTES, () => Object.assign(new Error("request body too large"), { tooLarge: true }));
        const text = body.toString("utf8");
        input = text.trim() ? (JSON.parse(text) as Record<string, unknown>) : {};
        if (!input || typeof input !== "object" || Array.isArray(input)) throw new Error("the body is not a JSON object");
      } catch (problem) {
        if ((problem as { tooLarge?: boolean }).tooLarge)
          return sendError(res, 413, "RequestEntityTooLargeException", "request body too large", requestId);
        return sendError(res, 400, "SerializationException", `could not read the request: ${(problem as Error).message}`, requestId);
      }
      if (opts.authorize) {
        const refusal = await refusalOf(opts.authorize, req, body, TARGET_NAMESPACE, (operation) => stepFunctionsChecks(operation, input));
        if (refusal) return sendError(res, refusal.status, refusal.code, refusal.message, requestId);
      }
      const output = await action(runner, input);
      send(res, 200, output ?? {}, requestId);
    } catch (error) {
      if (isServiceError(error)) {
        const status = error.$metadata?.httpStatusCode ?? (error.$fault === "server" ? 500 : 400);
        return sendError(res, status, error.name, error.message, requestId);
      }
      sendError(res, 500, "InternalFailure", error instanceof Error ? error.message : String(error), requestId);
    }
  });
  const port = await listen(server, opts.port ?? 0, opts.host ?? "127.0.0.1");
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    close: () => closeServer(server),
  };
}
