/**
 * The HTTP API's OpenAPI 3.1 document, generated from the zod schemas: the request is the workflow's own schema
 * (request.ts), the answers are described here. `openapi.json` at the root is this document, written by
 * `npx tsx local/write-openapi.ts`; a test fails when the two differ, and another lints it with Redocly.
 */
import * as z from "zod";
import { provisionRequestSchema } from "../lib/domain/request.js";

const problem = z.object({ path: z.string(), message: z.string() });
const refusal = z.object({ error: z.string(), message: z.string().optional(), problems: z.array(problem).optional() });
const started = z.object({
  executionArn: z.string(),
  executionName: z.string(),
  statusUrl: z.string(),
  environmentUrl: z.string().optional(),
});
const runInProgress = z.object({ error: z.literal("RunInProgress"), message: z.string(), executionArn: z.string(), statusUrl: z.string() });
const environmentExists = z.object({
  error: z.literal("EnvironmentExists"),
  message: z.string(),
  environmentUrl: z.string(),
  updateUrl: z.string(),
});
/** A create's 409: a run holds the lease (try again once it ended), or the environment exists with another spec (PUT it). */
const startConflict = z.union([runInProgress, environmentExists]);
const execution = z.object({ name: z.string(), arn: z.string(), statusUrl: z.string() });
const difference = z.object({ path: z.string(), expected: z.unknown(), actual: z.unknown() });
const drift = z.object({
  checkedAt: z.string(),
  status: z.enum(["in-sync", "drifted", "unknown"]),
  reason: z.string().optional(),
  resources: z.array(
    z.object({
      kind: z.string(),
      name: z.string(),
      arn: z.string().optional(),
      state: z.enum(["present", "missing", "changed"]),
      differences: z.array(difference),
    }),
  ),
});
const environment = z.object({
  tenant: z.string(),
  region: z.string(),
  cluster: z.string(),
  spec: z.record(z.string(), z.unknown()),
  generation: z.number().int(),
  status: z.enum(["provisioning", "ready", "failed", "updating", "removing", "removed"]),
  lastExecution: execution.optional(),
  owned: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
  updatedAt: z.string(),
  lease: z.object({ holder: z.string(), expiresAt: z.string() }).optional(),
  lastFailure: z.object({ error: z.string(), cause: z.string(), at: z.string(), generation: z.number().int() }).optional(),
  url: z.string(),
  /** GET on one environment: the live check of what it owns (absent with ?drift=false, and for a removed one) */
  drift: drift.optional(),
});
const executionStatus = z.object({
  executionArn: z.string(),
  name: z.string(),
  status: z.string(),
  startDate: z.string(),
  stopDate: z.string().optional(),
  currentStep: z.string().optional(),
  failedStep: z.string().optional(),
  steps: z.array(z.record(z.string(), z.unknown())),
  retries: z.number().int(),
  error: z.string().optional(),
  cause: z.string().optional(),
});

const updateStarted = started.extend({ generation: z.number().int() });
const environmentRefusal = z.object({
  error: z.string(),
  message: z.string(),
  environmentUrl: z.string().optional(),
  executionArn: z.string().optional(),
  statusUrl: z.string().optional(),
});

const SCHEMAS = {
  ProvisionRequest: provisionRequestSchema,
  Refusal: refusal,
  Started: started,
  RunInProgress: runInProgress,
  EnvironmentExists: environmentExists,
  StartConflict: startConflict,
  Environment: environment,
  EnvironmentCreated: z.object({ environment, lastExecution: execution.nullable() }),
  UpdateStarted: updateStarted,
  EnvironmentRefusal: environmentRefusal,
  EnvironmentPage: z.object({ items: z.array(environment), next: z.string().optional() }),
  Drift: drift,
  EnvironmentRemoved: z.object({ environment, message: z.string() }),
  ExecutionStatus: executionStatus,
} as const;

function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
  return rest;
}

const ref = (name: keyof typeof SCHEMAS) => ({ content: { "application/json": { schema: { $ref: `#/components/schemas/${name}` } } } });
const answer = (description: string, name: keyof typeof SCHEMAS) => ({ description, ...ref(name) });
const refused = (description: string) => answer(description, "Refusal");
const pathParameter = (name: string, description: string) => ({
  name,
  in: "path",
  required: true,
  description,
  schema: { type: "string" },
});
const queryParameter = (name: string, description: string, schema: Record<string, unknown> = { type: "string" }) => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});
const idempotencyKey = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description: "A repeat under the same key answers with the same run",
  schema: { type: "string" },
};

const environmentPath = [
  pathParameter("tenant", "The tenant"),
  pathParameter("region", "The cluster's region"),
  pathParameter("cluster", "The cluster's name"),
];

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: a data literal with no logic (the paths, in the README's HTTP API table order); split, one route's entry would span several functions
function paths(): Record<string, unknown> {
  const start = { required: true, ...ref("ProvisionRequest") };
  const startAnswers = {
    "400": refused("InvalidJson or InvalidRequest, with every problem"),
    "403": refused("NotAllowed: the cluster is not on this deployment's allowlist"),
    "409": answer("RunInProgress: another run of the environment holds its lease", "RunInProgress"),
    "422": refused("IdempotencyKeyReused: the key started a run for a different request"),
    "503": refused("Throttled or unreachable: try again"),
  };
  return {
    "/provision": {
      post: {
        operationId: "provision",
        summary: "Start a provisioning run",
        parameters: [idempotencyKey],
        requestBody: start,
        responses: {
          "202": answer(
            "Started (also for the recorded spec of an existing environment: a re-run), or the same request's existing run",
            "Started",
          ),
          ...startAnswers,
          "409": answer(
            "RunInProgress, or EnvironmentExists: the environment exists with another spec, which only PUT changes",
            "StartConflict",
          ),
        },
      },
    },
    "/executions/{id}": {
      get: {
        operationId: "getExecution",
        summary: "A run's status, current step and per-step results",
        parameters: [pathParameter("id", "The execution name or its URL-encoded ARN")],
        responses: {
          "200": answer("The run", "ExecutionStatus"),
          "400": refused("Not an execution id"),
          "404": refused("ExecutionNotFound"),
        },
      },
    },
    "/environments": {
      post: {
        operationId: "createEnvironment",
        summary: "Create an environment (its first run)",
        parameters: [idempotencyKey],
        requestBody: start,
        responses: {
          "200": answer("It exists with the same spec: nothing started", "EnvironmentCreated"),
          "202": answer("Created: its first run started", "Started"),
          ...startAnswers,
          "409": answer(
            "RunInProgress, or EnvironmentExists: the environment exists with another spec, which only PUT changes",
            "StartConflict",
          ),
        },
      },
      get: {
        operationId: "listEnvironments",
        summary: "List environments, a page at a time",
        parameters: [
          queryParameter("cluster", "Only this cluster's"),
          queryParameter("region", "Only this region's"),
          queryParameter("status", "Only those with this status"),
          queryParameter("limit", "At most this many (1-100, default 50)", { type: "integer", minimum: 1, maximum: 100 }),
          queryParameter("cursor", "The previous page's next"),
        ],
        responses: { "200": answer("A page", "EnvironmentPage"), "400": refused("A bad limit or cursor") },
      },
    },
    "/environments/{tenant}/{region}/{cluster}": {
      get: {
        operationId: "getEnvironment",
        summary: "An environment's record",
        parameters: [
          ...environmentPath,
          queryParameter("drift", "false: the record only, without the live drift check (default true)", {
            type: "string",
            enum: ["true", "false"],
          }),
        ],
        responses: {
          "200": answer(
            "The record, with `drift`: each owned resource present as built, missing, or changed (and what differs); `unknown` with the reason when a read failed",
            "Environment",
          ),
          "400": refused("A bad drift option"),
          "404": refused("EnvironmentNotFound"),
        },
      },
      put: {
        operationId: "updateEnvironment",
        summary: "Replace the environment's spec (a new generation) and start the update run that converges to it",
        description:
          "The body is the spec: a create's body without headJob; tenant and cluster may be left out (the path names them) and must match it when given. " +
          "A claim the new spec keeps can only grow (where its StorageClass allows volume expansion, checked by the run) and keeps its StorageClass. " +
          "What the previous generation owned and the new one does not want is removed last; a failed update puts the previous generation back.",
        parameters: [
          pathParameter("tenant", "The tenant"),
          pathParameter("region", "The cluster's region"),
          pathParameter("cluster", "The cluster's name"),
          idempotencyKey,
        ],
        requestBody: start,
        responses: {
          "200": answer("The spec is the recorded one: nothing to do, nothing started", "EnvironmentCreated"),
          "202": answer("The update run started; the record holds the new generation, status updating", "UpdateStarted"),
          ...startAnswers,
          "400": refused("InvalidJson or InvalidRequest, with every problem (a claim that would shrink included)"),
          "404": refused("EnvironmentNotFound"),
          "409": answer("RunInProgress (a run holds the lease), EnvironmentNotReady or EnvironmentChanged", "EnvironmentRefusal"),
        },
      },
      delete: {
        operationId: "deleteEnvironment",
        summary: "Tear an environment down: everything the product owns there (statemachines/deprovision.asl.json)",
        parameters: environmentPath,
        responses: {
          "200": answer("Already removed: nothing to do", "EnvironmentRemoved"),
          "202": answer("The teardown started (status removing; then removed, or failed with what remains)", "Started"),
          "404": refused("EnvironmentNotFound"),
          "409": answer("RunInProgress: another run of the environment holds its lease", "RunInProgress"),
          "503": refused("Throttled or unreachable: try again"),
        },
      },
    },
    "/environments/{tenant}/{region}/{cluster}/reconcile": {
      post: {
        operationId: "reconcileEnvironment",
        summary: "Re-apply the recorded spec as a run (lease, retries, compensation)",
        parameters: [...environmentPath, idempotencyKey],
        responses: {
          "202": answer("The run started", "Started"),
          "400": refused("The recorded spec no longer validates"),
          "403": refused("NotAllowed: the cluster is no longer on this deployment's allowlist"),
          "404": refused("EnvironmentNotFound"),
          "409": answer("RunInProgress (another run holds the lease), or EnvironmentRemoved", "Refusal"),
          "422": refused("IdempotencyKeyReused"),
          "503": refused("Throttled or unreachable: try again"),
        },
      },
    },
  };
}

/** The whole document, as openapi.json holds it. */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "nf-eks-provisioner",
      version: "0.1.0",
      description: "Onboard a tenant onto an existing Amazon EKS cluster for Nextflow: one call, one workflow run.",
      license: { name: "UNLICENSED", identifier: "UNLICENSED" },
    },
    servers: [{ url: "http://127.0.0.1:8787", description: "the sandbox (npm start)" }],
    security: [{ sigv4: [] }],
    paths: paths(),
    components: {
      schemas: Object.fromEntries(Object.entries(SCHEMAS).map(([name, schema]) => [name, jsonSchemaOf(schema)])),
      securitySchemes: {
        sigv4: { type: "apiKey", in: "header", name: "Authorization", description: "AWS Signature Version 4 (IAM authorization)" },
      },
    },
  };
}
