/**
 * A Lambda invocation context for code that runs a handler outside Lambda: a step called directly (tests),
 * the local Step Functions runner, the sandbox's HTTP API. Shaped like the real one, so Powertools and middy
 * find what they read.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Context } from "aws-lambda";

export interface LambdaContextOptions {
  functionName: string;
  /** default: a local ARN naming the function */
  functionArn?: string;
  /** the function's timeout, which getRemainingTimeInMillis counts down from (default: Lambda's longest, 15 min) */
  timeoutMs?: number;
  memoryMB?: number;
}

export function lambdaContext({ functionName, functionArn, timeoutMs = 900_000, memoryMB = 512 }: LambdaContextOptions): Context {
  const started = new Date();
  const day = started.toISOString().slice(0, 10).replace(/-/g, "/");
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: functionArn ?? `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: String(memoryMB),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `${day}/[$LATEST]${randomBytes(16).toString("hex")}`,
    getRemainingTimeInMillis: () => Math.max(0, started.getTime() + timeoutMs - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
