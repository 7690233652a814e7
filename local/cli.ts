/**
 * `npm start`: the sandbox, in the foreground, until Ctrl-C.
 * `npm run demo`: posts an example request to a running sandbox (or to one it starts itself), narrates
 * the run step by step as the Step Functions console would show it, then summarises what now exists.
 */
import { SANDBOX_TIME_SCALE, TEST_TIME_SCALE } from "./kube/cluster-timing.js";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseFaultFlag, type FaultRule } from "./faults.js";
import { readSandboxEnv } from "./sandbox-env.js";
import type { AuthenticationMode } from "../functions/lib/workflow/workflow-state.js";

// Before any handler module loads (Powertools reads these when it is constructed): no X-Ray daemon and no
// CloudWatch on this machine, so traces and EMF metric lines would only be noise on the console.
process.env.POWERTOOLS_TRACE_ENABLED ??= "false";
process.env.POWERTOOLS_METRICS_DISABLED ??= "true";

const AUTH_MODES: AuthenticationMode[] = ["API", "API_AND_CONFIG_MAP", "CONFIG_MAP"];

const USAGE = `usage:
  npm start -- [options]          start the sandbox (emulated AWS + EKS, the workflow, the HTTP API)
  npm run demo -- [--example FILE] [--api URL] [--drift] [--update] [--teardown]

start options:
  --port N                 HTTP API port (default 8787; 0 = any free port)
  --aws-port N             emulated AWS (IAM, STS, EKS, EventBridge) port (default 0)
  --kube-port N            emulated Kubernetes API port (default 0)
  --sfn-port N             local Step Functions port (default 0)
  --dynamodb-port N        DynamoDB (dynalite: the environment registry) port (default 0)
  --auth-mode MODE         API | API_AND_CONFIG_MAP | CONFIG_MAP (default API_AND_CONFIG_MAP)
  --fault OP=KIND[:ms][*n] inject a fault, repeatable: iam:CreateRole=throttle*2, "kube:PUT configmaps=conflict"
  --propagation-delay S    new IAM roles stay unknown to EKS/STS for S seconds
  --fail-jobs              head jobs fail (to watch compensation)
  --remove-permission ROLE=ACTION
                           take one permission from one product role, repeatable: CreateIamResources=iam:TagRole
                           (roles: a step's state name, KubeSteps, an API route, ComputeEnvironmentRequested)
  --fast                   Wait states and retry intervals scaled to 1/100 (backoff, jitter, caps kept)
  --time-scale F           the cluster's clock: real durations x F (default 0.3, 0.03 with --fast)
  --stopped-run-grace S    a stopped or timed-out run is compensated S seconds after it stopped (default 120, the
                           longest step timeout, as deployed; 2 with --fast)
  --state-dir DIR          where env and kubeconfig are written (default .sandbox)`;

function fail(message: string): never {
  console.error(`error: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function portOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--${name} must be a port number (0-65535), got "${value}"`);
  return port;
}

async function start(args: string[]): Promise<void> {
  const started = performance.now();
  // biome-ignore lint/suspicious/noImplicitAnyLet: parseArgs' result, typed by its options, is assigned in the try
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        port: { type: "string" },
        "aws-port": { type: "string" },
        "kube-port": { type: "string" },
        "sfn-port": { type: "string" },
        "dynamodb-port": { type: "string" },
        "auth-mode": { type: "string" },
        fault: { type: "string", multiple: true },
        "propagation-delay": { type: "string" },
        "fail-jobs": { type: "boolean" },
        "remove-permission": { type: "string", multiple: true },
        fast: { type: "boolean" },
        "time-scale": { type: "string" },
        "stopped-run-grace": { type: "string" },
        "state-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const authenticationMode = (values["auth-mode"] ?? "API_AND_CONFIG_MAP").toUpperCase() as AuthenticationMode;
  if (!AUTH_MODES.includes(authenticationMode)) fail(`--auth-mode must be one of ${AUTH_MODES.join(", ")}`);
  let faults: FaultRule[] = [];
  try {
    faults = (values.fault ?? []).map(parseFaultFlag);
  } catch (error) {
    fail((error as Error).message);
  }
  const clockScale = values["time-scale"] === undefined ? undefined : Number(values["time-scale"]);
  if (clockScale !== undefined && (!Number.isFinite(clockScale) || clockScale < 0))
    fail(`--time-scale is a non-negative number, got "${values["time-scale"]}"`);
  const delay = values["propagation-delay"] === undefined ? 0 : Number(values["propagation-delay"]);
  if (!Number.isFinite(delay) || delay < 0) fail(`--propagation-delay is a number of seconds, got "${values["propagation-delay"]}"`);
  const grace = values["stopped-run-grace"] === undefined ? (values.fast ? 2 : 120) : Number(values["stopped-run-grace"]);
  if (!Number.isFinite(grace) || grace < 0) fail(`--stopped-run-grace is a number of seconds, got "${values["stopped-run-grace"]}"`);
  const stateDir = values["state-dir"] ?? ".sandbox";
  // Loaded here, not at the top: `npm run demo` against a running sandbox needs none of it.
  const { parseRemovedPermission, UnknownPermission } = await import("./aws/product-roles.js");
  let removePermissions: ReturnType<typeof parseRemovedPermission>[] = [];
  try {
    removePermissions = (values["remove-permission"] ?? []).map(parseRemovedPermission);
  } catch (error) {
    fail((error as Error).message);
  }

  // Loaded here, not at the top: `npm run demo` against a running sandbox needs none of it.
  const { startSandbox } = await import("./sandbox.js");
  let sandbox: Awaited<ReturnType<typeof startSandbox>>;
  try {
    sandbox = await startSandbox({
      port: portOption(values.port, "port", 8787),
      awsPort: portOption(values["aws-port"], "aws-port", 0),
      kubePort: portOption(values["kube-port"], "kube-port", 0),
      sfnPort: portOption(values["sfn-port"], "sfn-port", 0),
      dynamoDbPort: portOption(values["dynamodb-port"], "dynamodb-port", 0),
      authenticationMode,
      faults,
      propagationDelayMs: delay * 1000,
      failJobs: values["fail-jobs"] ?? false,
      removePermissions,
      // Scaled, never replaced (local/sfn/time-scale.ts): the head job's first 10 s check takes 2 s, or 100 ms with --fast.
      timeScale: values.fast ? { waitMs: 10, retryIntervalMs: 10 } : { waitMs: 200, retryIntervalMs: 1000 },
      // The cluster's clock too: a Terminating namespace is gone in about 10 s, or about 1 s with --fast.
      clusterTimeScale: clockScale ?? (values.fast ? TEST_TIME_SCALE : SANDBOX_TIME_SCALE),
      stoppedRunGraceMs: grace * 1000,
      stateDir,
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { port?: number };
    if (error instanceof UnknownPermission) fail(e.message);
    if (e.code === "EADDRINUSE")
      fail(`port ${e.port} is already in use (another npm start?); pick another with --port, or 0 for any free port`);
    throw error;
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping the sandbox...`);
    await sandbox.close();
    console.log("stopped.");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));

  const example = resolve("examples/pvc-tenant.json");
  console.log(`nf-eks-provisioner sandbox (cluster ${sandbox.cluster.name} in ${sandbox.cluster.region}, ${sandbox.cluster.authenticationMode})
  HTTP API         ${sandbox.apiUrl}   POST /provision, GET /executions/{id}
  emulated AWS     ${sandbox.awsUrl}   IAM, STS, EKS, EventBridge
  Kubernetes API   ${sandbox.kubeUrl}
  Step Functions   ${sandbox.sfnUrl}
  DynamoDB         ${sandbox.dynamoDbUrl}   the environment registry (dynalite)
  ${removePermissions.length ? `removed          ${removePermissions.map((r) => `${r.action} from ${r.role}`).join(", ")} (the calls that need them are denied)\n  ` : ""}${faults.length ? `faults           ${faults.map((f) => `${f.operation}=${f.kind}`).join(", ")}\n  ` : ""}env              source ${sandbox.files.env}   (then: kubectl get ns; aws --endpoint-url "$AWS_ENDPOINT_URL_EKS" eks list-clusters)

Try it:
  curl -s -X POST ${sandbox.apiUrl}/provision -H 'content-type: application/json' --data @${example}
  npm run demo          # narrates a run, step by step

sandbox ready in ${((performance.now() - started) / 1000).toFixed(2)} s. Ctrl-C stops it.`);
}

async function demo(args: string[]): Promise<void> {
  // biome-ignore lint/suspicious/noImplicitAnyLet: parseArgs' result, typed by its options, is assigned in the try
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        example: { type: "string" },
        api: { type: "string" },
        "state-dir": { type: "string" },
        drift: { type: "boolean" },
        teardown: { type: "boolean" },
        update: { type: "boolean" },
      },
      strict: true,
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  const examplePath = resolve(values.example ?? "examples/pvc-tenant.json");
  if (!existsSync(examplePath)) fail(`no such example: ${examplePath}`);
  const envFile = resolve(values["state-dir"] ?? ".sandbox", "env");
  const sandboxEnv = existsSync(envFile) ? readSandboxEnv(envFile) : undefined;
  // Before demo.js loads (its imports build the handlers' Powertools logger, which reads the level once and
  // resets to it on every invocation): when the demo starts its own sandbox, the step handlers run in this
  // process and their INFO lines would be raw JSON in the middle of the narration. Against a running
  // sandbox nothing in this process logs, so this only ever quiets that path. A level the user set wins.
  process.env.POWERTOOLS_LOG_LEVEL ??= "WARN";
  const { runDemo } = await import("./demo.js");
  await runDemo({
    examplePath,
    apiUrl: values.api ?? (sandboxEnv?.NF_EKS_API_URL || undefined),
    envFile,
    sandboxEnv,
    drift: values.drift === true,
    teardown: values.teardown === true,
    update: values.update === true,
  });
}

const [command, ...rest] = process.argv.slice(2);
if (command === "start") await start(rest);
else if (command === "demo") await demo(rest);
else fail(command ? `unknown command "${command}"` : "a command is needed");
