/**
 * The sandbox: the whole product on one machine. Emulated AWS (IAM, STS, EKS, EventBridge; DynamoDB and
 * Step Functions behind the same authorization) and an emulated EKS cluster's Kubernetes API, the real state
 * machine run by the local Step Functions runner with the real step handlers, and the HTTP API on 127.0.0.1. The handlers run unchanged: only the
 * endpoints are overridden (`AWS_ENDPOINT_URL_<SERVICE>`), exactly as a deployed Lambda would read them.
 *
 * The handlers read their configuration from process.env, so one process holds one sandbox at a time.
 */
import type { TimeScale } from "./sfn/time-scale.js";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CreatePolicyCommand, CreateRoleCommand, IAMClient, TagRoleCommand } from "@aws-sdk/client-iam";
import { CreateAccessEntryCommand, EKSClient } from "@aws-sdk/client-eks";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { resetClients, type Signer } from "../functions/lib/aws/clients.js";
import { loadDeploymentConfig, onboardingEventPattern, removalEventPattern } from "../functions/lib/domain/deploy-config.js";
import { tenantRoleBoundaryPolicy } from "../functions/lib/domain/policies.js";
import { resetKubeClients, setKubeTokenCredentials } from "../functions/lib/kube/kube-client.js";
import { awsAuthMapRolesEntry, PROVISIONER_CLUSTERROLE_FILE, provisionerAccessEntry } from "../stacks/cluster-access-commands.js";
import type { AuthenticationMode } from "../functions/lib/workflow/workflow-state.js";
import { handler as provisionHandler } from "../functions/api/provision.js";
import { handler as statusHandler } from "../functions/api/status.js";
import {
  createHandler as createEnvironmentHandler,
  deleteHandler as deleteEnvironmentHandler,
  listHandler as listEnvironmentsHandler,
  readHandler as readEnvironmentHandler,
} from "../functions/api/environments.js";
import { handler as reconcileHandler } from "../functions/api/reconcile.js";
import { checkEnvironments, ENVIRONMENT_DRIFTED } from "../functions/events/drift-check.js";
import { updateHandler as updateEnvironmentHandler } from "../functions/api/update-environment.js";
import { handler as onboardingEventHandler } from "../functions/events/compute-environment-requested.js";
import { handler as removalEventHandler } from "../functions/events/compute-environment-removal-requested.js";
import { handler as executionStoppedHandler } from "../functions/events/execution-stopped.js";
import {
  COMPENSATION_STATE_MACHINE_ARN_ENV,
  STOPPED_RUN_GRACE_ENV,
  stoppedRunEventPattern,
} from "../functions/lib/workflow/stopped-run.js";
import { matchesPattern } from "./aws/event-pattern.js";
import { createRegistryTable, startDynamoDb, type LocalDynamoDb } from "./aws/dynamodb.js";
import { REGISTRY_TABLE_ENV } from "../functions/lib/workflow/environment-registry.js";
import { startAwsEmulator, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, type AwsEmulator } from "./aws/aws-emulator-server.js";
import { nodeAwsAuthConfigMap, startKubeApi, type KubeApiServer, type KubeObject } from "./kube/kube-apiserver.js";
import { eksAuthenticator } from "./kube/auth.js";
import { LocalStepFunctions } from "./sfn/runner.js";
import { roleSigners, stepSigners } from "./sfn/step-credentials.js";
import {
  defineProductRoles,
  KUBE_STEPS_ROLE_KEY,
  KUBE_STEPS_ROLE_NAME,
  LAMBDA_TRUST,
  ONBOARDING_EVENTS_ROLE_KEY,
  REMOVAL_EVENTS_ROLE_KEY,
  EXECUTION_STOPPED_ROLE_KEY,
  DRIFT_CHECK_ROLE_KEY,
  productRoles,
  type ProductRole,
  type RemovedPermission,
} from "./aws/product-roles.js";
import { withEntrySigner } from "./entry-credentials.js";
import { startSfnService, type SfnService } from "./sfn/service.js";
import { startDevServer, type DevServer, type HttpHandler, type Route } from "./dev-server.js";
import { FaultInjector, type FaultRule } from "./faults.js";
import { writeSandboxEnv } from "./sandbox-env.js";
import { openApiText } from "./write-openapi.js";
import { SANDBOX_TIME_SCALE } from "./kube/cluster-timing.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export const SANDBOX_CLUSTER = { name: "research", region: "eu-west-1", accountId: "111122223333", version: "1.31" } as const;
export const SANDBOX_OIDC_ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const SANDBOX_NODE_ROLE = `arn:aws:iam::${SANDBOX_CLUSTER.accountId}:role/research-node-role`;
/** An existing launcher role, as Seqera Platform's would be (examples/fusion-tenant.json uses it). */
export const SANDBOX_EXISTING_LAUNCHER = `arn:aws:iam::${SANDBOX_CLUSTER.accountId}:role/seqera-platform-launcher`;
const STATE_MACHINE_NAME = "provision";
/** The teardown workflow (statemachines/deprovision.asl.json), loaded by the runner beside the provisioning one. */
const DEPROVISION_STATE_MACHINE_NAME = "deprovision";
/** statemachines/compensate-stopped.asl.json: the compensation of runs that ended without their Catch */
const COMPENSATION_STATE_MACHINE_NAME = "compensate-stopped";
/** The longest step Lambda timeout (stacks/Provisioner.ts): how long a stopped run's compensation waits by default. */
const STOPPED_RUN_GRACE_MS = 120_000;
/** The sandbox's stand-in for the stack's KubeStepsRole: the identity every Kubernetes call of the steps is made as. */
export const SANDBOX_KUBE_STEPS_ROLE = KUBE_STEPS_ROLE_NAME;
export const EVENT_BUS_NAME = "nf-eks-provisioner";
export const REGISTRY_TABLE_NAME = "nf-eks-provisioner-environments";

export interface SandboxOptions {
  /** HTTP API port (default 0: any free port) */
  port?: number;
  awsPort?: number;
  kubePort?: number;
  sfnPort?: number;
  /** DynamoDB (dynalite) port (default 0) */
  dynamoDbPort?: number;
  /** the emulated cluster's authentication mode (default API_AND_CONFIG_MAP, as EKS creates clusters today) */
  authenticationMode?: AuthenticationMode;
  faults?: FaultRule[];
  /** a new IAM role is unknown to EKS/STS for this long (default 0) */
  propagationDelayMs?: number;
  /** fast mode: each nominal second of a Wait or a retry interval lasts this many ms (local/sfn/time-scale.ts) */
  timeScale?: TimeScale;
  /** every Wait state lasts this long instead of its Seconds (default: as defined; replaces, where timeScale scales) */
  waitMs?: number;
  /** every retrier waits this long between attempts instead of its backoff (default: as defined) */
  retryIntervalMs?: number;
  /**
   * The emulated cluster's one time factor (local/kube/cluster-timing.ts): real seconds × 1000 × clusterTimeScale =
   * sandbox milliseconds. Default SANDBOX_TIME_SCALE (a Terminating namespace with a running pod is gone in about
   * 10 s); tests use TEST_TIME_SCALE (about 1 s).
   */
  clusterTimeScale?: number;
  /** time between a head pod's phases (default: derived from clusterTimeScale) */
  kubeletStepMs?: number;
  /** head jobs fail instead of succeeding */
  failJobs?: boolean;
  /** write `env` and `kubeconfig` here (e.g. `.sandbox`); nothing is written when absent */
  stateDir?: string;
  /** deploy-time IAM name prefix (default nfeks) */
  iamPrefix?: string;
  permissionsBoundaryArn?: string;
  /**
   * Permissions taken away from the product's roles (`{role: "CreateIamResources", action: "iam:TagRole"}`; a role is
   * a step's state name, KubeSteps, an API route or ComputeEnvironmentRequested): the calls that need them are denied.
   */
  removePermissions?: RemovedPermission[];
  /** how long after a run stopped its compensation begins (default 120 s, the longest step Lambda timeout, as deployed) */
  stoppedRunGraceMs?: number;
}

export interface DeadLetter {
  eventId: string;
  detailType: string;
  error: { name: string; message: string };
}

export interface Sandbox {
  apiUrl: string;
  awsUrl: string;
  kubeUrl: string;
  sfnUrl: string;
  /** DynamoDB (dynalite): the environment registry's table */
  dynamoDbUrl: string;
  stateMachineArn: string;
  /** The teardown workflow's state machine */
  deprovisionStateMachineArn: string;
  /** the compensation of runs that ended without their Catch (statemachines/compensate-stopped.asl.json) */
  compensationStateMachineArn: string;
  /** the events on the emulated buses (the product's, and Step Functions' status changes on `default`), optionally filtered */
  events: AwsEmulator["events"];
  /** the bus events a rule's handler refused, with its named error: what the deployed dead-letter queue keeps (no retries here) */
  deadLetters: DeadLetter[];
  cluster: typeof SANDBOX_CLUSTER & { authenticationMode: AuthenticationMode };
  aws: AwsEmulator;
  kube: KubeApiServer;
  stepFunctions: LocalStepFunctions;
  faults: FaultInjector;
  /** the environment the handlers run with (also what `.sandbox/env` exports) */
  env: Record<string, string>;
  /** every emulated resource, for before/after comparisons */
  snapshot(): { aws: unknown; kube: KubeObject[] };
  /** the product's roles as defined in the emulated account (their statements from stacks/permissions.ts) */
  productRoles: ProductRole[];
  /** each product role's ARN, by key (a step's state name, KubeSteps, an API route, ComputeEnvironmentRequested) */
  productRoleArns: Map<string, string>;
  /** who each product role's Lambdas sign as, by key (`signedWith(signer, () => iamClient())` is the client a step uses) */
  signers: ReadonlyMap<string, Signer>;
  /** paths written when `stateDir` was given */
  files: { env?: string; kubeconfig?: string };
  close(): Promise<void>;
}

/** A kubeconfig whose user gets its EKS token from an exec plugin, as `aws eks update-kubeconfig` writes one. */
function execKubeconfig(kube: KubeApiServer, env: Record<string, string>): string {
  const tsx = join(ROOT, "node_modules", ".bin", "tsx");
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: SANDBOX_CLUSTER.name, cluster: { server: kube.url, "certificate-authority-data": kube.caData } }],
    contexts: [{ name: SANDBOX_CLUSTER.name, context: { cluster: SANDBOX_CLUSTER.name, user: "sandbox-admin", namespace: "tower-nf" } }],
    "current-context": SANDBOX_CLUSTER.name,
    users: [
      {
        name: "sandbox-admin",
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: tsx,
            args: [join(ROOT, "local", "kubectl-exec-credential.ts"), SANDBOX_CLUSTER.name, SANDBOX_CLUSTER.region],
            env: [
              // tsx runs on the node@22 devDependency, not whatever node the shell has.
              { name: "PATH", value: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH ?? "/usr/bin:/bin"}` },
              ...Object.entries(env)
                .filter(([k]) => k.startsWith("AWS_"))
                .map(([name, value]) => ({ name, value })),
            ],
            interactiveMode: "Never",
            provideClusterInfo: false,
          },
        },
      },
    ],
  };
  return JSON.stringify(config, null, 2);
}

/** The stack's TenantRoleBoundary, made in the emulated account (returns its ARN). */
async function createTenantRoleBoundary(iam: IAMClient): Promise<string> {
  const clusterArn = `arn:aws:eks:${SANDBOX_CLUSTER.region}:${SANDBOX_CLUSTER.accountId}:cluster/${SANDBOX_CLUSTER.name}`;
  const document = JSON.stringify(tenantRoleBoundaryPolicy([clusterArn]));
  const name = "nf-eks-provisioner-tenant-role-boundary";
  const { Policy } = await iam.send(new CreatePolicyCommand({ PolicyName: name, PolicyDocument: document }));
  return Policy!.Arn!;
}

/**
 * The operator's once-per-cluster step, done as the README and the stack outputs say: the KubeSteps role mapped to
 * `nf-eks-provisioner` (an access entry with the group and no access policy, or an aws-auth entry in CONFIG_MAP mode)
 * and deploy/provisioner-clusterrole.yaml applied. Returns the role's ARN.
 */
async function grantProvisionerAccess(
  aws: AwsEmulator,
  kube: KubeApiServer,
  mode: AuthenticationMode,
  awsAuth: KubeObject,
): Promise<string> {
  // Its policies are given with the other product roles' (defineProductRoles), once the boundary exists.
  const description = "the sandbox's KubeStepsRole";
  const roleArn = aws.defineRole({ roleName: SANDBOX_KUBE_STEPS_ROLE, trustPolicy: LAMBDA_TRUST, description });
  if (mode === "CONFIG_MAP") {
    // What `eksctl create iamidentitymapping` writes: the entry in block style, keys sorted, after the node role's.
    const entry = parseYaml(awsAuthMapRolesEntry(roleArn))[0] as { rolearn: string; username: string; groups: string[] };
    const groups = entry.groups.map((g) => `  - ${g}`);
    const block = ["- groups:", ...groups, `  rolearn: ${entry.rolearn}`, `  username: ${entry.username}`, ""].join("\n");
    kube.seed({ ...awsAuth, data: { ...awsAuth.data, mapRoles: `${awsAuth.data.mapRoles}${block}` } });
  } else {
    const credentials = { accessKeyId: DEFAULT_ACCESS_KEY_ID, secretAccessKey: DEFAULT_SECRET_ACCESS_KEY };
    const eks = new EKSClient({ region: SANDBOX_CLUSTER.region, endpoint: aws.url, credentials });
    await eks.send(new CreateAccessEntryCommand({ clusterName: SANDBOX_CLUSTER.name, ...provisionerAccessEntry(roleArn) }));
    eks.destroy();
  }
  for (const document of parseAllDocuments(readFileSync(join(ROOT, PROVISIONER_CLUSTERROLE_FILE), "utf8"))) {
    kube.seed(document.toJS() as KubeObject);
  }
  return roleArn;
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const authenticationMode = opts.authenticationMode ?? "API_AND_CONFIG_MAP";
  const faults = new FaultInjector();
  for (const rule of opts.faults ?? []) faults.inject(rule);

  const aws = await startAwsEmulator({
    port: opts.awsPort ?? 0,
    faults,
    accountId: SANDBOX_CLUSTER.accountId,
    propagationDelayMs: opts.propagationDelayMs ?? 0,
  });
  const kube = await startKubeApi({
    port: opts.kubePort ?? 0,
    faults,
    authenticate: eksAuthenticator(aws, SANDBOX_CLUSTER.name, { region: SANDBOX_CLUSTER.region }),
    kubelet: {
      timeScale: opts.clusterTimeScale ?? SANDBOX_TIME_SCALE,
      stepMs: opts.kubeletStepMs,
      failJobs: opts.failJobs ? () => true : undefined,
    },
  });
  // What eksctl writes for a managed node group, templated username included.
  const awsAuth = nodeAwsAuthConfigMap(SANDBOX_NODE_ROLE);
  kube.seed(awsAuth);
  aws.seedCluster({
    name: SANDBOX_CLUSTER.name,
    region: SANDBOX_CLUSTER.region,
    endpoint: kube.url,
    certificateAuthority: kube.caData,
    authenticationMode,
    oidcIssuer: SANDBOX_OIDC_ISSUER,
    version: SANDBOX_CLUSTER.version,
    nodeRoleArn: SANDBOX_NODE_ROLE,
  });

  await grantProvisionerAccess(aws, kube, authenticationMode, awsAuth);

  // Each Lambda signs as its own role (filled below, once the roles exist; read when a handler first runs).
  const signers = new Map<string, Signer>();
  const stepFunctions = new LocalStepFunctions({
    region: SANDBOX_CLUSTER.region,
    accountId: SANDBOX_CLUSTER.accountId,
    timeScale: opts.timeScale,
    waitMs: opts.waitMs,
    retryIntervalMs: opts.retryIntervalMs,
    stepSigner: stepSigners(signers),
    // Step Functions tells the account's default bus when an execution ends, as in AWS.
    onStatusChange: (change) => aws.putServiceEvent({ ...change, region: SANDBOX_CLUSTER.region }),
  });
  const stateMachineArn = stepFunctions.stateMachineArn(STATE_MACHINE_NAME);
  const deprovisionStateMachineArn = stepFunctions.stateMachineArn(DEPROVISION_STATE_MACHINE_NAME);
  const compensationStateMachineArn = stepFunctions.stateMachineArn(COMPENSATION_STATE_MACHINE_NAME);
  // Step Functions and DynamoDB authorize every call as the AWS emulator does (the signer's role's policies).
  const sfn: SfnService = await startSfnService({ runner: stepFunctions, port: opts.sfnPort ?? 0, authorize: aws.authorizeSigned });
  const dynamoDb: LocalDynamoDb = await startDynamoDb({ port: opts.dynamoDbPort ?? 0, authorize: aws.authorizeSigned });
  await createRegistryTable(dynamoDb.url, REGISTRY_TABLE_NAME, SANDBOX_CLUSTER.region);

  const env: Record<string, string> = {
    AWS_REGION: SANDBOX_CLUSTER.region,
    // The AWS CLI reads this one (the SDK reads AWS_REGION).
    AWS_DEFAULT_REGION: SANDBOX_CLUSTER.region,
    AWS_ACCESS_KEY_ID: DEFAULT_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: DEFAULT_SECRET_ACCESS_KEY,
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_ENDPOINT_URL_IAM: aws.url,
    AWS_ENDPOINT_URL_STS: aws.url,
    AWS_ENDPOINT_URL_EKS: aws.url,
    AWS_ENDPOINT_URL_EVENTBRIDGE: aws.url,
    AWS_ENDPOINT_URL_SFN: sfn.url,
    AWS_ENDPOINT_URL_DYNAMODB: dynamoDb.url,
    [REGISTRY_TABLE_ENV]: REGISTRY_TABLE_NAME,
    ALLOWED_CLUSTERS: JSON.stringify([{ name: SANDBOX_CLUSTER.name, region: SANDBOX_CLUSTER.region }]),
    ALLOWED_ACCOUNT_IDS: SANDBOX_CLUSTER.accountId,
    IAM_PREFIX: opts.iamPrefix ?? "nfeks",
    // The onboarding system of examples/onboarding-event.json is the one allowed to request onboarding.
    ONBOARDING_EVENT_SOURCES: "com.example.onboarding",
    EVENT_BUS_NAME,
    STATE_MACHINE_ARN: stateMachineArn,
    DEPROVISION_STATE_MACHINE_ARN: deprovisionStateMachineArn,
    [COMPENSATION_STATE_MACHINE_ARN_ENV]: compensationStateMachineArn,
    [STOPPED_RUN_GRACE_ENV]: String((opts.stoppedRunGraceMs ?? STOPPED_RUN_GRACE_MS) / 1000),
  };
  // The session token of the shell that started us must not leak into signing with the sandbox keys.
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
  Object.assign(process.env, env);
  resetClients();
  resetKubeClients();

  // The launcher role a platform team already has (examples/fusion-tenant.json), created through the API.
  const iam = new IAMClient({ region: SANDBOX_CLUSTER.region, endpoint: aws.url });
  await iam.send(
    new CreateRoleCommand({
      RoleName: "seqera-platform-launcher",
      AssumeRolePolicyDocument: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${SANDBOX_CLUSTER.accountId}:root` }, Action: "sts:AssumeRole" }],
      }),
    }),
  );
  await iam.send(new TagRoleCommand({ RoleName: "seqera-platform-launcher", Tags: [{ Key: "team", Value: "platform" }] }));
  // Every tenant role carries a boundary: the operator's when given, else the sandbox's own, as the stack creates it.
  env.PERMISSIONS_BOUNDARY_ARN = opts.permissionsBoundaryArn ?? (await createTenantRoleBoundary(iam));
  process.env.PERMISSIONS_BOUNDARY_ARN = env.PERMISSIONS_BOUNDARY_ARN;
  iam.destroy();

  // The product's roles, with the statements the stack gives them (stacks/permissions.ts), for this deployment.
  const { accountId, region } = SANDBOX_CLUSTER;
  const roles = productRoles(
    { partition: "aws", account: accountId, config: loadDeploymentConfig() },
    {
      eventBusArn: `arn:aws:events:${region}:${accountId}:event-bus/${EVENT_BUS_NAME}`,
      registryTableArn: `arn:aws:dynamodb:${region}:${accountId}:table/${REGISTRY_TABLE_NAME}`,
      stateMachineArn,
      executionsArn: `arn:aws:states:${region}:${accountId}:execution:${STATE_MACHINE_NAME}:*`,
      kubeStepsRoleArn: `arn:aws:iam::${accountId}:role/${KUBE_STEPS_ROLE_NAME}`,
      deprovisionStateMachineArn,
      deprovisionExecutionsArn: `arn:aws:states:${region}:${accountId}:execution:${DEPROVISION_STATE_MACHINE_NAME}:*`,
      compensationStateMachineArn,
    },
  );
  const productRoleArns = defineProductRoles(aws, roles, opts.removePermissions);
  for (const [key, signer] of roleSigners(aws, productRoleArns)) signers.set(key, signer);
  // The steps' Kubernetes calls are made as the KubeSteps role, as deployed (their EKS tokens are signed by it).
  setKubeTokenCredentials(signers.get(KUBE_STEPS_ROLE_KEY)!.credentials);

  // Each route's Lambda signs as its route's role, as deployed.
  const routes: Route[] = (
    [
      { method: "POST", path: "/provision", handler: provisionHandler as unknown as HttpHandler },
      { method: "GET", path: "/executions/{id}", handler: statusHandler as unknown as HttpHandler },
      { method: "POST", path: "/environments", handler: createEnvironmentHandler as unknown as HttpHandler },
      { method: "GET", path: "/environments", handler: listEnvironmentsHandler as unknown as HttpHandler },
      { method: "GET", path: "/environments/{tenant}/{region}/{cluster}", handler: readEnvironmentHandler as unknown as HttpHandler },
      { method: "DELETE", path: "/environments/{tenant}/{region}/{cluster}", handler: deleteEnvironmentHandler as unknown as HttpHandler },
      { method: "POST", path: "/environments/{tenant}/{region}/{cluster}/reconcile", handler: reconcileHandler as unknown as HttpHandler },
      { method: "PUT", path: "/environments/{tenant}/{region}/{cluster}", handler: updateEnvironmentHandler as unknown as HttpHandler },
    ] as Route[]
  ).map((route) => ({ ...route, handler: withEntrySigner(route.handler, signers.get(`${route.method} ${route.path}`)) }));
  /** The scheduled drift check, run now as its own role (POST /sandbox/drift-check): its summary and the events it put on the bus. */
  const driftCheck = withEntrySigner(async (_event: unknown, _context: unknown) => checkEnvironments(), signers.get(DRIFT_CHECK_ROLE_KEY));
  async function driftCheckNow() {
    const before = aws.events({ detailType: ENVIRONMENT_DRIFTED }).length;
    const summary = await driftCheck({}, {});
    const events = aws.events({ detailType: ENVIRONMENT_DRIFTED }).slice(before);
    return { statusCode: 200, headers: { "content-type": "application/json" }, body: JSON.stringify({ ...summary, events }) };
  }
  routes.push(
    // The sandbox only (not deployed): what the drift schedule does, run now, and the EnvironmentDrifted events it put.
    { method: "POST", path: "/sandbox/drift-check", handler: async () => driftCheckNow() },
    // The API's own description, generated from the same schemas as openapi.json.
    {
      method: "GET",
      path: "/openapi.json",
      handler: async () => ({ statusCode: 200, headers: { "content-type": "application/json" }, body: openApiText() }),
    },
  );
  const api: DevServer = await startDevServer(routes, { port: opts.port ?? 0 });
  env.NF_EKS_API_URL = api.url;

  // The bus's rules: ComputeEnvironmentRequested (RemovalRequested) from an allowed source starts the workflow (the
  // teardown) through its events handler, as deployed.
  const deadLetters: DeadLetter[] = [];
  const stopRouting = aws.onEvent?.((event) => {
    const config = loadDeploymentConfig();
    const rules = [
      { pattern: onboardingEventPattern(config), handler: onboardingEventHandler, signer: signers.get(ONBOARDING_EVENTS_ROLE_KEY) },
      { pattern: removalEventPattern(config), handler: removalEventHandler, signer: signers.get(REMOVAL_EVENTS_ROLE_KEY) },
    ];
    const rule = rules.find(({ pattern }) => pattern?.detailType.includes(event.detailType) && pattern.source.includes(event.source));
    if (!rule) return;
    void withEntrySigner(rule.handler as unknown as (e: unknown, c: unknown) => Promise<unknown>, rule.signer)(
      {
        version: "0",
        id: event.eventId,
        "detail-type": event.detailType,
        source: event.source,
        account: SANDBOX_CLUSTER.accountId,
        time: new Date().toISOString(),
        region: SANDBOX_CLUSTER.region,
        resources: [],
        detail: event.detail,
      },
      {},
    ).catch((error: unknown) => {
      const { name, message } = error as Error;
      deadLetters.push({ eventId: event.eventId, detailType: event.detailType, error: { name, message } });
      console.error(`${event.detailType} event ${event.eventId} was refused: ${name}: ${message}`);
    });
  });

  // The default bus's rule: the provision runs and teardowns that timed out, were stopped or failed past their Catch
  // go to the stopped-run handler, the pattern matched as EventBridge matches it.
  const stoppedRunPattern = stoppedRunEventPattern(stateMachineArn, deprovisionStateMachineArn);
  const stopStoppedRuns = aws.onEvent((event) => {
    const asRuleSeesIt = {
      source: event.source,
      "detail-type": event.detailType,
      detail: event.detail,
      resources: event.resources,
      account: event.account,
      region: event.region,
    };
    if (event.eventBusName !== "default" || !matchesPattern(asRuleSeesIt, stoppedRunPattern)) return;
    void withEntrySigner(
      executionStoppedHandler as unknown as (e: unknown, c: unknown) => Promise<unknown>,
      signers.get(EXECUTION_STOPPED_ROLE_KEY),
    )(
      {
        version: "0",
        id: event.eventId,
        "detail-type": event.detailType,
        source: event.source,
        account: event.account,
        time: event.time.toISOString(),
        region: event.region,
        resources: event.resources,
        detail: event.detail,
      },
      {},
    ).catch((error: unknown) => console.error(`status-change event ${event.eventId} could not be handled: ${(error as Error).message}`));
  });

  const files: Sandbox["files"] = {};
  if (opts.stateDir) {
    mkdirSync(opts.stateDir, { recursive: true });
    files.kubeconfig = join(resolve(opts.stateDir), "kubeconfig");
    files.env = join(resolve(opts.stateDir), "env");
    writeFileSync(files.kubeconfig, execKubeconfig(kube, env), { mode: 0o600 });
    writeSandboxEnv(files.env, { ...env, KUBECONFIG: files.kubeconfig });
  }

  let closed = false;
  return {
    apiUrl: api.url,
    awsUrl: aws.url,
    kubeUrl: kube.url,
    sfnUrl: sfn.url,
    dynamoDbUrl: dynamoDb.url,
    stateMachineArn,
    deprovisionStateMachineArn,
    compensationStateMachineArn,
    events: (filter) => aws.events(filter),
    deadLetters,
    cluster: { ...SANDBOX_CLUSTER, authenticationMode },
    aws,
    kube,
    stepFunctions,
    faults,
    env,
    productRoles: roles,
    productRoleArns,
    signers,
    files,
    snapshot: () => ({ aws: aws.snapshot(), kube: kube.snapshot() }),
    async close() {
      if (closed) return;
      closed = true;
      stopRouting?.();
      stopStoppedRuns();
      await api.close();
      await stepFunctions.shutdown();
      await sfn.close();
      await dynamoDb.close();
      await kube.close();
      await aws.close();
      resetClients();
      setKubeTokenCredentials();
    },
  };
}
