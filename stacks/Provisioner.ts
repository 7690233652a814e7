/**
 * The deployed product: one Lambda per workflow step (functions/steps/catalog.ts), the Standard state
 * machine from statemachines/provision.asl.json with each `${<Step>FunctionArn}` placeholder substituted,
 * the IAM-authorized HTTP API, the event bus with the ComputeEnvironmentRequested rule, the tenant-role
 * permissions boundary (unless the operator names one), and outputs that tell the operator what to run next
 * (the cluster-access commands).
 */
import fs from "node:fs";
import path from "node:path";
import { Duration } from "aws-cdk-lib";
import { Effect, ManagedPolicy, PolicyDocument, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { CfnSchedule } from "aws-cdk-lib/aws-scheduler";
import type { CfnFunction, Function as CdkFunction } from "aws-cdk-lib/aws-lambda";
import { BillingMode } from "aws-cdk-lib/aws-dynamodb";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { Rule } from "aws-cdk-lib/aws-events";
import { LambdaFunction } from "aws-cdk-lib/aws-events-targets";
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from "aws-cdk-lib/aws-stepfunctions";
import { Api, EventBus, Function as SstFunction, Table, type FunctionProps, type StackContext } from "sst/constructs";
import { useProject } from "sst/project.js";
import {
  COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED,
  COMPUTE_ENVIRONMENT_REQUESTED,
  configToEnv,
  DEPROVISION_STATE_MACHINE_ARN_ENV,
  kubeStepsPlacement,
  onboardingEventPattern,
  removalEventPattern,
  STATE_MACHINE_ARN_ENV,
  type KubeStepsPlacement,
} from "../functions/lib/domain/deploy-config.js";
import { PRODUCT } from "../functions/lib/domain/naming.js";
import { tenantRoleBoundaryPolicy } from "../functions/lib/domain/policies.js";
import { ALL_STEP_FUNCTIONS, DEPROVISION_STEP_FUNCTIONS, STEP_FUNCTIONS, type StepFunctionEntry } from "../functions/steps/catalog.js";
import { STEP_SIZING } from "../functions/steps/step-sizing.js";
import { BY_KIND_INDEX, REGISTRY_TABLE_ENV } from "../functions/lib/workflow/environment-registry.js";
import {
  COMPENSATION_STATE_MACHINE_ARN_ENV,
  STOPPED_RUN_GRACE_ENV,
  stoppedRunEventPattern,
} from "../functions/lib/workflow/stopped-run.js";
import { accessEntryCommand, awsAuthMapRolesEntry, clusterOutputSuffix, configMapAccessCommand } from "./cluster-access-commands.js";
import { assertIamPrefixClear, deploymentConfigForStage, driftScheduleForStage } from "./config.js";
import { KUBE_IDENTITY_ROLE_ENV } from "../functions/lib/workflow/drift-reader.js";
import {
  API_ROUTE_STATEMENTS,
  KUBE_STEP_MODULES,
  clusterArns,
  driftCheckStatements,
  kubeStepsStatements,
  runStarterStatements,
  stepFunctionStatements,
  type ApiRoute,
  stoppedRunStatements,
  startTeardownStatements,
  type PermissionScope,
  type PolicyStatementJson,
  type StackArns,
} from "./permissions.js";

export const DEFINITION_FILE = "statemachines/provision.asl.json";
/** The compensation of runs that ended without their Catch: provision's own Undo states and ReportFailure after a Wait. */
export const COMPENSATION_DEFINITION_FILE = "statemachines/compensate-stopped.asl.json";
export const DEPROVISION_DEFINITION_FILE = "statemachines/deprovision.asl.json";

/** Every Lambda: Node 22 on Graviton, one minified ESM bundle, X-Ray active. */
const FUNCTION_DEFAULTS: FunctionProps = {
  runtime: "nodejs22.x",
  architecture: "arm_64",
  memorySize: 256,
  timeout: 30,
  tracing: "active",
  // Errors are named (errors.ts), so stack traces into the bundle are rarely needed; no sourcemap
  // upload to SST's bootstrap bucket.
  nodejs: { format: "esm", minify: true, sourcemap: false },
};

/** The plain statements of stacks/permissions.ts as CDK statements (the one place they become CDK objects). */
export function cdkStatements(statements: PolicyStatementJson[]): PolicyStatement[] {
  return statements.map(
    (s) =>
      new PolicyStatement({
        sid: s.Sid,
        effect: s.Effect === "Deny" ? Effect.DENY : Effect.ALLOW,
        actions: s.Action,
        resources: s.Resource,
        ...(s.Condition ? { conditions: s.Condition } : {}),
      }),
  );
}

/** `ResolveClusterFunctionArn` → `ResolveClusterFunction` (the construct id). */
function stepFunctionId(entry: StepFunctionEntry): string {
  return entry.placeholder.replace(/Arn$/, "");
}

export function stepHandlerPath(entry: StepFunctionEntry): string {
  return `functions/steps/${entry.module}.${entry.handler}`;
}

/**
 * The ASL text, checked against the catalog: a placeholder with no function would deploy a broken
 * definition, and a function the definition never calls means the two have drifted apart.
 */
export function readProvisionDefinition(root: string): string {
  const file = path.join(root, DEFINITION_FILE);
  if (!fs.existsSync(file)) throw new Error(`${DEFINITION_FILE} is missing: the state machine definition is built from it`);
  const text = fs.readFileSync(file, "utf8");
  JSON.parse(text); // a syntax error here is clearer than CloudFormation's
  const used = new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
  const known = new Set(STEP_FUNCTIONS.map((e) => e.placeholder));
  const unknown = [...used].filter((p) => !known.has(p));
  const unused = [...known].filter((p) => !used.has(p));
  if (unknown.length || unused.length) {
    throw new Error(
      `${DEFINITION_FILE} and functions/steps/catalog.ts disagree:` +
        (unknown.length ? ` placeholders with no step function: ${unknown.join(", ")};` : "") +
        (unused.length ? ` step functions the definition never calls: ${unused.join(", ")}` : ""),
    );
  }
  return text;
}

/** The stopped-run compensation's ASL and the step placeholders it uses (each one a catalog step). */
export function readCompensationDefinition(root: string): { text: string; placeholders: string[] } {
  const file = path.join(root, COMPENSATION_DEFINITION_FILE);
  const text = fs.readFileSync(file, "utf8");
  JSON.parse(text);
  const placeholders = [...new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]))];
  const known = new Set(STEP_FUNCTIONS.map((e) => e.placeholder));
  const unknown = placeholders.filter((p) => !known.has(p));
  if (unknown.length) throw new Error(`${COMPENSATION_DEFINITION_FILE}: placeholders with no step function: ${unknown.join(", ")}`);
  return { text, placeholders };
}

/** The longest step Lambda timeout (seconds): how long a stopped run's compensation waits for a step still running. */
export function longestStepTimeoutSeconds(): number {
  return Math.max(...Object.values(STEP_SIZING).map((s) => s.timeout));
}

/**
 * The teardown's ASL text, checked against the catalog: it may run any step Lambda (the compensators under their
 * teardown names), and must run each of the teardown's own.
 */
export function readDeprovisionDefinition(root: string): string {
  const file = path.join(root, DEPROVISION_DEFINITION_FILE);
  if (!fs.existsSync(file)) throw new Error(`${DEPROVISION_DEFINITION_FILE} is missing: the teardown state machine is built from it`);
  const text = fs.readFileSync(file, "utf8");
  JSON.parse(text);
  const used = new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
  const unknown = [...used].filter((p) => !ALL_STEP_FUNCTIONS.some((e) => e.placeholder === p));
  const unused = DEPROVISION_STEP_FUNCTIONS.map((e) => e.placeholder).filter((p) => !used.has(p));
  if (unknown.length || unused.length) {
    throw new Error(
      `${DEPROVISION_DEFINITION_FILE} and functions/steps/catalog.ts disagree:` +
        (unknown.length ? ` placeholders with no step function: ${unknown.join(", ")};` : "") +
        (unused.length ? ` teardown functions the definition never calls: ${unused.join(", ")}` : ""),
    );
  }
  return text;
}

/**
 * Private cluster endpoints: the Kubernetes-facing Lambdas run in the deployment's subnets with its security groups
 * (KUBE_STEPS_*), and their role gets the policy Lambda needs for the network interfaces. Nothing without a placement.
 */
export function placeInVpc(functions: CdkFunction[], role: Role, placement: KubeStepsPlacement): void {
  if (!placement) return;
  role.addManagedPolicy(ManagedPolicy.fromAwsManagedPolicyName("service-role/AWSLambdaVPCAccessExecutionRole"));
  for (const fn of functions) {
    (fn.node.defaultChild as CfnFunction).vpcConfig = { subnetIds: placement.subnetIds, securityGroupIds: placement.securityGroupIds };
  }
}

export function Provisioner({ stack, app }: StackContext) {
  const operatorConfig = deploymentConfigForStage(app.stage);
  // The product's IAM scope, role/nf-eks-provisioner/<prefix>-*, must not reach this stack's own roles.
  assertIamPrefixClear(operatorConfig, stack.stackName);
  // Every tenant role carries one boundary: the operator's, or else the stack's own (never both allowed).
  const allowedClusterArns = clusterArns({ partition: stack.partition, account: stack.account, config: operatorConfig });
  const ownBoundary = operatorConfig.permissionsBoundaryArn
    ? undefined
    : new ManagedPolicy(stack, "TenantRoleBoundary", {
        description: `${PRODUCT} (${app.stage}): the permissions boundary of every tenant role the product creates`,
        document: PolicyDocument.fromJson(tenantRoleBoundaryPolicy(allowedClusterArns, stack.partition)),
      });
  const config = { ...operatorConfig, permissionsBoundaryArn: operatorConfig.permissionsBoundaryArn ?? ownBoundary!.managedPolicyArn };
  const scope: PermissionScope = { partition: stack.partition, account: stack.account, config };

  const bus = new EventBus(stack, "Bus");
  // The environment registry: one item per environment and per idempotency key. On-demand, point-in-time recovery
  // on; `expiresAt` only tidies with TTL (the code treats an expired lease or key as absent by itself).
  const registry = new Table(stack, "Environments", {
    fields: { pk: "string", kind: "string" },
    primaryIndex: { partitionKey: "pk" },
    globalIndexes: { [BY_KIND_INDEX]: { partitionKey: "kind", sortKey: "pk" } },
    timeToLiveAttribute: "expiresAt",
    cdk: { table: { pointInTimeRecovery: true, billingMode: BillingMode.PAY_PER_REQUEST } },
  });
  stack.setDefaultFunctionProps({
    ...FUNCTION_DEFAULTS,
    environment: {
      ...configToEnv({ ...config, eventBusName: bus.eventBusName }),
      POWERTOOLS_SERVICE_NAME: PRODUCT,
      [REGISTRY_TABLE_ENV]: registry.tableName,
    },
  });

  // ------------------------------------------------------------ steps
  const kubeStepsRole = new Role(stack, "KubeStepsRole", {
    assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
    description: `${PRODUCT} (${app.stage}): the Lambdas that act on Kubernetes; map this role on every allowed cluster`,
    managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName("service-role/AWSLambdaBasicExecutionRole")],
  });
  for (const statement of cdkStatements(kubeStepsStatements(scope))) kubeStepsRole.addToPolicy(statement);

  const stepFunctions = ALL_STEP_FUNCTIONS.map((entry) => {
    const sizing = STEP_SIZING[entry.module];
    if (!sizing) throw new Error(`stacks/Provisioner.ts has no memory/timeout for step module ${entry.module}`);
    const isKube = KUBE_STEP_MODULES.has(entry.module);
    const fn = new SstFunction(stack, stepFunctionId(entry), {
      handler: stepHandlerPath(entry),
      description: `${PRODUCT}: ${entry.description}`.slice(0, 256),
      ...sizing,
      ...(isKube ? { role: kubeStepsRole } : {}),
    });
    const statements = stepFunctionStatements(entry, scope, { eventBusArn: bus.eventBusArn, registryTableArn: registry.tableArn });
    if (statements.length) fn.attachPermissions(cdkStatements(statements));
    return { entry, fn, isKube };
  });
  placeInVpc(
    stepFunctions.filter(({ isKube }) => isKube).map(({ fn }) => fn),
    kubeStepsRole,
    kubeStepsPlacement(config),
  );

  const provisionFunctions = stepFunctions.filter(({ entry }) => STEP_FUNCTIONS.includes(entry));

  // ------------------------------------------------------------ state machine
  const stateMachineName = app.logicalPrefixedName("provision");
  const logGroup = new LogGroup(stack, "ProvisionLogs", {
    // The /aws/vendedlogs/ prefix keeps CloudWatch Logs' resource policy from growing per log group.
    logGroupName: `/aws/vendedlogs/states/${stateMachineName}`,
    retention: RetentionDays.THREE_MONTHS,
  });
  const stateMachine = new StateMachine(stack, "ProvisionStateMachine", {
    stateMachineName,
    stateMachineType: StateMachineType.STANDARD,
    definitionBody: DefinitionBody.fromString(readProvisionDefinition(useProject().paths.root)),
    definitionSubstitutions: Object.fromEntries(provisionFunctions.map(({ entry, fn }) => [entry.placeholder, fn.functionArn])),
    // Errors only, and never the execution data: requests and results name tenants, roles and buckets.
    logs: { destination: logGroup, level: LogLevel.ERROR, includeExecutionData: false },
    tracingEnabled: true,
  });
  for (const { fn } of provisionFunctions) fn.grantInvoke(stateMachine);
  const executionsArn = `arn:${stack.partition}:states:${stack.region}:${stack.account}:execution:${stateMachineName}:*`;

  // The teardown: the compensators (the tenant's claim) and its own two steps, in statemachines/deprovision.asl.json.
  const deprovisionName = app.logicalPrefixedName("deprovision");
  const deprovisionText = readDeprovisionDefinition(useProject().paths.root);
  const deprovisionFunctions = stepFunctions.filter(({ entry }) => deprovisionText.includes(`\${${entry.placeholder}}`));
  const deprovisionStateMachine = new StateMachine(stack, "DeprovisionStateMachine", {
    stateMachineName: deprovisionName,
    stateMachineType: StateMachineType.STANDARD,
    definitionBody: DefinitionBody.fromString(deprovisionText),
    definitionSubstitutions: Object.fromEntries(deprovisionFunctions.map(({ entry, fn }) => [entry.placeholder, fn.functionArn])),
    logs: {
      destination: new LogGroup(stack, "DeprovisionLogs", {
        logGroupName: `/aws/vendedlogs/states/${deprovisionName}`,
        retention: RetentionDays.THREE_MONTHS,
      }),
      level: LogLevel.ERROR,
      includeExecutionData: false,
    },
    tracingEnabled: true,
  });
  for (const { fn } of deprovisionFunctions) fn.grantInvoke(deprovisionStateMachine);
  const deprovisionExecutionsArn = `arn:${stack.partition}:states:${stack.region}:${stack.account}:execution:${deprovisionName}:*`;
  const arns: StackArns = {
    eventBusArn: bus.eventBusArn,
    registryTableArn: registry.tableArn,
    stateMachineArn: stateMachine.stateMachineArn,
    executionsArn,
    deprovisionStateMachineArn: deprovisionStateMachine.stateMachineArn,
    deprovisionExecutionsArn,
    kubeStepsRoleArn: kubeStepsRole.roleArn,
  };

  // ------------------------------------------------------------ entry points
  const entryEnvironment = { [STATE_MACHINE_ARN_ENV]: stateMachine.stateMachineArn };
  const teardownEnvironment = { [DEPROVISION_STATE_MACHINE_ARN_ENV]: deprovisionStateMachine.stateMachineArn };
  const api = new Api(stack, "Api", {
    // Both state machines' ARNs: the DELETE route starts the teardown, the status route reads its runs (by ARN).
    defaults: { authorizer: "iam", function: { environment: { ...entryEnvironment, ...teardownEnvironment }, timeout: 29 } },
    routes: {
      "POST /provision": "functions/api/provision.handler",
      "GET /executions/{id}": "functions/api/status.handler",
      "POST /environments": "functions/api/environments.createHandler",
      "GET /environments": "functions/api/environments.listHandler",
      "GET /environments/{tenant}/{region}/{cluster}": "functions/api/environments.readHandler",
      "POST /environments/{tenant}/{region}/{cluster}/reconcile": "functions/api/reconcile.handler",
      "PUT /environments/{tenant}/{region}/{cluster}": "functions/api/update-environment.updateHandler",
      "DELETE /environments/{tenant}/{region}/{cluster}": "functions/api/environments.deleteHandler",
    },
  });
  for (const [route, statements] of Object.entries(API_ROUTE_STATEMENTS) as Array<
    [ApiRoute, (a: StackArns, s: PermissionScope) => PolicyStatementJson[]]
  >) {
    api.attachPermissionsToRoute(route, cdkStatements(statements(arns, scope)));
  }

  // ------------------------------------------------------------ the scheduled drift check
  const driftCheck = new SstFunction(stack, "DriftCheckFunction", {
    handler: "functions/events/drift-check.handler",
    description: `${PRODUCT}: check every ready environment for drift; EnvironmentDrifted events for those that differ`,
    timeout: 300,
    environment: { [KUBE_IDENTITY_ROLE_ENV]: kubeStepsRole.roleArn },
  });
  driftCheck.attachPermissions(cdkStatements(driftCheckStatements(scope, arns)));
  // The drift readers sign EKS tokens as the provisioner (a session that may do nothing in AWS: drift-reader.ts).
  const readRoute = api.getFunction("GET /environments/{tenant}/{region}/{cluster}")!;
  readRoute.addEnvironment(KUBE_IDENTITY_ROLE_ENV, kubeStepsRole.roleArn);
  const driftReaders = [readRoute, driftCheck];
  for (const reader of driftReaders) {
    kubeStepsRole.assumeRolePolicy?.addStatements(
      new PolicyStatement({ sid: `DriftReader${driftReaders.indexOf(reader)}`, actions: ["sts:AssumeRole"], principals: [reader.role!] }),
    );
  }
  const schedulerRole = new Role(stack, "DriftScheduleRole", {
    assumedBy: new ServicePrincipal("scheduler.amazonaws.com"),
    description: `${PRODUCT} (${app.stage}): EventBridge Scheduler invokes the drift check`,
  });
  driftCheck.grantInvoke(schedulerRole);
  new CfnSchedule(stack, "DriftSchedule", {
    description: `${PRODUCT}: the scheduled drift check (DRIFT_SCHEDULE)`,
    scheduleExpression: driftScheduleForStage(app.stage),
    flexibleTimeWindow: { mode: "OFF" },
    target: {
      arn: driftCheck.functionArn,
      roleArn: schedulerRole.roleArn,
      input: JSON.stringify({ id: "<aws.scheduler.execution-id>", source: "aws.scheduler", schedule: "<aws.scheduler.schedule-arn>" }),
      retryPolicy: { maximumRetryAttempts: 2 },
    },
  });

  // Events that cannot be delivered, or whose handler kept failing, end up here instead of vanishing.
  const deadLetters = new Queue(stack, "OnboardingDeadLetters", {
    retentionPeriod: Duration.days(14),
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
  });
  const onRequested = new SstFunction(stack, "ComputeEnvironmentRequestedFunction", {
    handler: "functions/events/compute-environment-requested.handler",
    description: `${PRODUCT}: start provisioning for a ${COMPUTE_ENVIRONMENT_REQUESTED} event`,
    environment: entryEnvironment,
    retryAttempts: 2,
    deadLetterQueue: deadLetters,
  });
  onRequested.attachPermissions(cdkStatements(runStarterStatements(arns)));
  // Only the sources the deployment allows (never the product's own, so its events cannot loop back); none: no rule.
  const onboardingPattern = onboardingEventPattern(config);
  if (onboardingPattern) {
    bus.addRules(stack, {
      computeEnvironmentRequested: {
        pattern: onboardingPattern,
        targets: {
          startProvisioning: {
            function: onRequested,
            cdk: { target: { deadLetterQueue: deadLetters, retryAttempts: 4, maxEventAge: Duration.hours(2) } },
          },
        },
      },
    });
  }

  // ------------------------------------------------------------ runs that end without their Catch
  // Step Functions puts "Execution Status Change" events on the account's default bus. This rule sends the provision
  // runs that timed out, were stopped or failed to ExecutionStoppedFunction, which starts the compensation state
  // machine for that run: a Wait until the stop plus the longest step timeout, then provision's Undo states and
  // ReportFailure (record failed, release the lease, ComputeEnvironmentFailed). See functions/events/execution-stopped.ts.
  const compensationName = app.logicalPrefixedName("compensate-stopped");
  const compensationDefinition = readCompensationDefinition(useProject().paths.root);
  const compensationLogs = new LogGroup(stack, "CompensateStoppedLogs", {
    logGroupName: `/aws/vendedlogs/states/${compensationName}`,
    retention: RetentionDays.THREE_MONTHS,
  });
  const compensationMachine = new StateMachine(stack, "CompensateStoppedStateMachine", {
    stateMachineName: compensationName,
    stateMachineType: StateMachineType.STANDARD,
    definitionBody: DefinitionBody.fromString(compensationDefinition.text),
    definitionSubstitutions: Object.fromEntries(
      stepFunctions
        .filter(({ entry }) => compensationDefinition.placeholders.includes(entry.placeholder))
        .map(({ entry, fn }) => [entry.placeholder, fn.functionArn]),
    ),
    logs: { destination: compensationLogs, level: LogLevel.ERROR, includeExecutionData: false },
    tracingEnabled: true,
  });
  for (const { entry, fn } of stepFunctions)
    if (compensationDefinition.placeholders.includes(entry.placeholder)) fn.grantInvoke(compensationMachine);
  const stoppedRunDeadLetters = new Queue(stack, "StoppedRunDeadLetters", {
    retentionPeriod: Duration.days(14),
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
  });
  const onStopped = new SstFunction(stack, "ExecutionStoppedFunction", {
    handler: "functions/events/execution-stopped.handler",
    description: `${PRODUCT}: compensate a provision run that timed out, was stopped or failed past its Catch; record a stopped teardown`,
    environment: {
      [STATE_MACHINE_ARN_ENV]: stateMachine.stateMachineArn,
      [DEPROVISION_STATE_MACHINE_ARN_ENV]: deprovisionStateMachine.stateMachineArn,
      [COMPENSATION_STATE_MACHINE_ARN_ENV]: compensationMachine.stateMachineArn,
      [STOPPED_RUN_GRACE_ENV]: String(longestStepTimeoutSeconds()),
    },
    retryAttempts: 2,
    deadLetterQueue: stoppedRunDeadLetters,
  });
  onStopped.attachPermissions(
    cdkStatements(stoppedRunStatements({ ...arns, compensationStateMachineArn: compensationMachine.stateMachineArn })),
  );
  new Rule(stack, "StoppedRunsRule", {
    description: `${PRODUCT}: provision runs and teardowns that ended without their Catch (timed out, stopped, failed)`,
    eventPattern: (({ source, "detail-type": detailType, detail }) => ({ source, detailType, detail }))(
      stoppedRunEventPattern(stateMachine.stateMachineArn, deprovisionStateMachine.stateMachineArn),
    ),
    targets: [new LambdaFunction(onStopped, { deadLetterQueue: stoppedRunDeadLetters, retryAttempts: 4, maxEventAge: Duration.hours(2) })],
  });

  // The same sources may ask for a removal: the same teardown as DELETE, the same dead-letter queue.
  const onRemovalRequested = new SstFunction(stack, "ComputeEnvironmentRemovalRequestedFunction", {
    handler: "functions/events/compute-environment-removal-requested.handler",
    description: `${PRODUCT}: start a teardown for a ${COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED} event`,
    environment: teardownEnvironment,
    retryAttempts: 2,
    deadLetterQueue: deadLetters,
  });
  onRemovalRequested.attachPermissions(cdkStatements(startTeardownStatements(deprovisionStateMachine.stateMachineArn, registry.tableArn)));
  const removalPattern = removalEventPattern(config);
  if (removalPattern) {
    bus.addRules(stack, {
      computeEnvironmentRemovalRequested: {
        pattern: removalPattern,
        targets: {
          startTeardown: {
            function: onRemovalRequested,
            cdk: { target: { deadLetterQueue: deadLetters, retryAttempts: 4, maxEventAge: Duration.hours(2) } },
          },
        },
      },
    });
  }

  // ------------------------------------------------------------ what the operator runs next
  const taken = new Set<string>();
  const clusterOutputs: Record<string, string> = {};
  for (const cluster of config.allowedClusters) {
    const suffix = clusterOutputSuffix(cluster, taken);
    clusterOutputs[`ClusterAccess${suffix}`] = accessEntryCommand(cluster, kubeStepsRole.roleArn);
    clusterOutputs[`ClusterAccessConfigMap${suffix}`] = configMapAccessCommand(cluster, kubeStepsRole.roleArn);
  }
  stack.addOutputs({
    ApiUrl: api.url,
    StateMachineArn: stateMachine.stateMachineArn,
    DeprovisionStateMachineArn: deprovisionStateMachine.stateMachineArn,
    EventBusName: bus.eventBusName,
    RegistryTableName: registry.tableName,
    KubeStepsRoleArn: kubeStepsRole.roleArn,
    TenantRoleBoundaryArn: config.permissionsBoundaryArn,
    AwsAuthMapRolesEntry: awsAuthMapRolesEntry(kubeStepsRole.roleArn),
    OnboardingDeadLetterQueueUrl: deadLetters.queueUrl,
    CompensateStoppedStateMachineArn: compensationMachine.stateMachineArn,
    StoppedRunDeadLetterQueueUrl: stoppedRunDeadLetters.queueUrl,
    DriftCheckFunctionName: driftCheck.functionName,
    ...clusterOutputs,
  });

  return { api, bus, stateMachine, compensationMachine, deprovisionStateMachine, kubeStepsRole, tenantRoleBoundary: ownBoundary, registry };
}
