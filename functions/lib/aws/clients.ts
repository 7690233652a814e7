/**
 * AWS SDK v3 clients, one per service and region, created on first use and kept for the life of the
 * Lambda container. Endpoints are NOT set here: the SDK itself reads `AWS_ENDPOINT_URL_<SERVICE>` and
 * `AWS_ENDPOINT_URL` (that is how the sandbox points the real clients at its emulators), so deployed
 * Lambdas talk to AWS and local runs talk to 127.0.0.1 with the same code.
 *
 * Retries are few on purpose: the state machine owns retrying (with backoff and jitter), so a Lambda
 * fails fast with a named error instead of burning its timeout. Short connection/request timeouts make
 * a call that escapes to an unreachable endpoint fail in seconds.
 *
 * Every client is traced (an X-Ray subsegment per call, under the handler's segment) when the tracer is on.
 *
 * Who signs: deployed, the SDK's default chain (the Lambda's own role). A caller that runs several "Lambdas" in
 * one process (the sandbox's runner gives each step its own role) runs a handler inside `signedWith(signer, ...)`:
 * every client the handler asks for there is one signed with that signer's credentials, kept apart from the others.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EKSClient } from "@aws-sdk/client-eks";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { IAMClient } from "@aws-sdk/client-iam";
import { SFNClient } from "@aws-sdk/client-sfn";
import { STSClient } from "@aws-sdk/client-sts";
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { assertInvocationLive } from "./invocation.js";
import { tracer } from "./powertools.js";

/** One SDK attempt plus one quick retry; Step Functions retries the rest. */
export const MAX_ATTEMPTS = 2;
export const CONNECTION_TIMEOUT_MS = 3_000;
export const REQUEST_TIMEOUT_MS = 10_000;

/** The operation an SDK error came from (`iam:CreateRole`), stamped by the middleware below for normaliseError. */
export const OPERATION_KEY = "$operation";

/** An identity to sign with instead of the default chain: `id` keeps its clients apart (one role, one id). */
export interface Signer {
  id: string;
  credentials: AwsCredentialIdentityProvider;
}

const signing = new AsyncLocalStorage<Signer>();

/**
 * Runs `fn` (a handler invocation) with every client of this module signed by `signer`; what `fn` starts, awaited
 * or not, keeps the signer. Nested calls take the innermost. Without it, clients use the default chain.
 */
export function signedWith<T>(signer: Signer, fn: () => T): T {
  return signing.run(signer, fn);
}

/** The signer of the current call, if one was given (undefined deployed). */
export function currentSigner(): Signer | undefined {
  return signing.getStore();
}

interface CommonConfig {
  region: string;
  maxAttempts: number;
  requestHandler: { connectionTimeout: number; requestTimeout: number };
  credentials?: AwsCredentialIdentityProvider;
}

function commonConfig(region: string): CommonConfig {
  const signer = signing.getStore();
  return {
    ...(signer ? { credentials: signer.credentials } : {}),
    region,
    maxAttempts: MAX_ATTEMPTS,
    // An options object: the SDK builds its own NodeHttpHandler from it (no extra dependency).
    requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
  };
}

function defaultRegion(): string {
  return process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || "us-east-1";
}

/** Short service prefix as IAM policies spell it: IAMClient → iam, EventBridgeClient → events. */
const SERVICE_PREFIX: Record<string, string> = {
  IAMClient: "iam",
  EKSClient: "eks",
  STSClient: "sts",
  SFNClient: "states",
  EventBridgeClient: "events",
  DynamoDBClient: "dynamodb",
};

interface MiddlewareStackLike {
  add(
    middleware: (
      next: (args: unknown) => Promise<unknown>,
      context: { clientName?: string; commandName?: string },
    ) => (args: unknown) => Promise<unknown>,
    options: { step: "initialize" | "finalizeRequest"; priority?: "high" | "normal" | "low"; name: string; override?: boolean },
  ): void;
}

/** Stamp every error with the call that failed, so the named error says "iam:CreateRole failed: ...". */
function withOperationNames<C extends { middlewareStack: unknown }>(client: C): C {
  (client.middlewareStack as MiddlewareStackLike).add(
    (next, context) => async (args) => {
      try {
        // A handler its runner has stopped (past its timeout) makes no further call (invocation.ts).
        assertInvocationLive();
        return await next(args);
      } catch (error) {
        if (error && typeof error === "object" && !(OPERATION_KEY in error)) {
          const service = SERVICE_PREFIX[context.clientName ?? ""] ?? context.clientName ?? "aws";
          const action = (context.commandName ?? "").replace(/Command$/, "");
          Object.defineProperty(error, OPERATION_KEY, { value: `${service}:${action}`, enumerable: false, configurable: true });
        }
        throw error;
      }
    },
    { step: "initialize", name: "nfEksOperationName", override: true },
  );
  return client;
}

/**
 * A call's every attempt checks its invocation is live: the SDK's retry (finalizeRequest, high priority) runs the
 * lower-priority middleware of that step once per attempt, so an attempt due after the invocation was stopped (a
 * retry of a request sent in time) is not sent. The check at initialize (above) spares a stopped invocation's call
 * the rest (its credentials too); the request in flight then is left to end, as a frozen Lambda's would.
 */
function withLiveAttempts<C extends { middlewareStack: unknown }>(client: C): C {
  (client.middlewareStack as MiddlewareStackLike).add(
    (next) => async (args) => {
      assertInvocationLive();
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "nfEksInvocationLiveAttempt", override: true },
  );
  return client;
}

/** What every client gets: failed calls named, stopped invocations cut off, each call traced (a no-op while off). */
function prepared<C extends { middlewareStack: unknown }>(client: C): C {
  return tracer.captureAWSv3Client(withLiveAttempts(withOperationNames(client)));
}

const cache = new Map<string, unknown>();

function memoised<T>(name: string, create: () => T): T {
  const signer = signing.getStore();
  const key = signer ? `${name}@${signer.id}` : name;
  if (!cache.has(key)) cache.set(key, create());
  return cache.get(key) as T;
}

/** IAM is global; the region only picks the partition's endpoint. */
export function iamClient(): IAMClient {
  return memoised("iam", () => prepared(new IAMClient(commonConfig(defaultRegion()))));
}

export function eksClient(region: string = defaultRegion()): EKSClient {
  return memoised(`eks:${region}`, () => prepared(new EKSClient(commonConfig(region))));
}

export function stsClient(region: string = defaultRegion()): STSClient {
  return memoised(`sts:${region}`, () => prepared(new STSClient(commonConfig(region))));
}

export function sfnClient(): SFNClient {
  return memoised("sfn", () => prepared(new SFNClient(commonConfig(defaultRegion()))));
}

export function eventBridgeClient(): EventBridgeClient {
  return memoised("events", () => prepared(new EventBridgeClient(commonConfig(defaultRegion()))));
}

/** The environment registry's table (AWS_ENDPOINT_URL_DYNAMODB points it at the sandbox's dynalite). */
export function dynamoDbClient(): DynamoDBClient {
  return memoised("dynamodb", () => prepared(new DynamoDBClient(commonConfig(defaultRegion()))));
}

/** Forget every client (tests that change the environment between cases). */
export function resetClients(): void {
  for (const client of cache.values()) (client as { destroy?: () => void }).destroy?.();
  cache.clear();
}
