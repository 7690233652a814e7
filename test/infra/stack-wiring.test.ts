/**
 * The deployable infrastructure, proved offline: the SST app is synthesized exactly as `sst deploy`
 * synthesizes it (the step Lambdas bundled by SST's esbuild) and the CloudFormation template is
 * asserted on. No AWS credentials are used: in test mode SST skips its bootstrap lookups.
 *
 * This file holds what needs the bundled synth (about half a minute: one esbuild bundle per Lambda; only
 * after it does each Lambda carry its handler): the Lambdas (runtime, size, bundle, the actions their code
 * calls), the state machines, routes, rules and outputs wired to them. One synth for the whole file, so one
 * process runs it. What IAM statements allow and require, on a synth without bundling (IAM does not
 * depend on the bundles): stack-iam-scope.test.ts; the invalid configurations: stack-config-validation.test.ts;
 * the checks that need no synth: stack-guards.test.ts. The synth and the template readers:
 * test/support/stack-template.ts.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Template } from "aws-cdk-lib/assertions";
import { useProject } from "sst/project.js";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ALL_STEP_FUNCTIONS, STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import { STEP_SIZING } from "../../functions/steps/step-sizing.js";
import { KUBE_STEP_MODULES } from "../../stacks/permissions.js";
import { DEFINITION_FILE } from "../../stacks/Provisioner.js";
import {
  ALLOWED,
  allStatements,
  asList,
  BASE_ENV,
  bundleDirectories,
  flatten,
  functionIdByHandler,
  type Json,
  PREFIX,
  resourcesOf,
  roleActions,
  stepHandler,
  synthesizeStack,
  useSstTestProject,
} from "../support/stack-template.js";
import { createSdkCallScanner, type SdkCallScanner } from "./sdk-calls.js";
import { ROUTE_HANDLERS } from "../support/api-routes.js";

/**
 * Actions AWS authorizes alongside a call the code makes. The code always passes the ownership tags to its
 * creates (IAM and EKS then also authorize tagging the new object), and a Pod Identity association hands a role
 * to EKS (iam:PassRole).
 */
const AUTHORIZED_ALONGSIDE: Record<string, string[]> = {
  "iam:CreateRole": ["iam:TagRole"],
  "eks:CreateAccessEntry": ["eks:TagResource"],
  "eks:CreatePodIdentityAssociation": ["eks:TagResource", "iam:PassRole"],
  "eks:UpdatePodIdentityAssociation": ["iam:PassRole"],
};

/** Calls no IAM permission governs (the EKS token is a presigned GetCallerIdentity; STS needs no grant for it). */
const NEEDS_NO_PERMISSION = new Set(["sts:GetCallerIdentity"]);

/** Reads the handlers' code (built once: a TypeScript program over functions/). */
let sdkCalls: SdkCallScanner;

/** What a Lambda (`functions/<dir>/<module>.<export>`) needs: its code's SDK calls and what AWS authorizes with them. */
function neededActions(handler: string, props: Json): Set<string> {
  const dot = handler.lastIndexOf(".");
  const needed = new Set<string>();
  for (const call of sdkCalls.actionsOf(`${handler.slice(0, dot)}.ts`, handler.slice(dot + 1))) {
    if (NEEDS_NO_PERMISSION.has(call)) continue;
    needed.add(call);
    for (const alongside of AUTHORIZED_ALONGSIDE[call] ?? []) needed.add(alongside);
  }
  // Lambda delivers failed asynchronous events to the function's dead-letter queue with the function's own role.
  if (props.DeadLetterConfig?.TargetArn) needed.add("sqs:SendMessage");
  return needed;
}

useSstTestProject();

// ---------------------------------------------------------------- the stack as deployed

describe("the Provisioner stack (allowlist of two clusters, no permissions boundary, bundled)", () => {
  let template: Template;
  let bundles: Map<string, string>;
  let synthSeconds = 0;

  beforeAll(async () => {
    sdkCalls = createSdkCallScanner(useProject().paths.root);
    const started = Date.now();
    const synthesized = await synthesizeStack(BASE_ENV, { bundle: true });
    synthSeconds = (Date.now() - started) / 1000;
    template = synthesized.template;
    bundles = bundleDirectories(synthesized.stack);
  }, 300_000);

  it("has one bundled Lambda per workflow step: Node 22, arm64, sized for what it does", () => {
    // Assess
    expect(synthSeconds).toBeGreaterThan(0);
    for (const entry of STEP_FUNCTIONS) {
      const id = functionIdByHandler(template, stepHandler(entry));
      const props = (template.findResources("AWS::Lambda::Function")[id] as Json).Properties;
      expect(props.Runtime, entry.placeholder).toBe("nodejs22.x");
      expect(props.Architectures, entry.placeholder).toEqual(["arm64"]);
      expect(props.Code.S3Key, `${entry.placeholder} is an uploaded bundle, not inline code`).toMatch(/\.zip$/);
      expect(props.MemorySize).toBeGreaterThanOrEqual(256);
      expect(props.MemorySize).toBeLessThanOrEqual(512);
      expect(props.TracingConfig).toEqual({ Mode: "Active" });
      if (KUBE_STEP_MODULES.has(entry.module)) {
        expect(props.Timeout, `${entry.placeholder} waits on the Kubernetes API`).toBeGreaterThanOrEqual(60);
        expect(props.Timeout).toBeLessThanOrEqual(120);
        expect(props.Role["Fn::GetAtt"][0], `${entry.placeholder} runs as the shared KubeStepsRole`).toMatch(/^KubeStepsRole/);
      } else {
        expect(props.Role["Fn::GetAtt"][0]).not.toMatch(/^KubeStepsRole/);
      }
      const env = props.Environment.Variables;
      expect(JSON.parse(env.ALLOWED_CLUSTERS)).toEqual(ALLOWED.map(({ name, region }) => ({ name, region })));
      expect(env.ALLOWED_ACCOUNT_IDS).toBe("111122223333");
      expect(env.IAM_PREFIX).toBe(PREFIX);
      expect(env.POWERTOOLS_SERVICE_NAME).toBe("nf-eks-provisioner");
      expect(flatten(env.EVENT_BUS_NAME)).toMatch(/^<BusEventBus/);
      // Issue #9: no operator boundary, so the stack's own (before: none, and roles could be created unbounded).
      expect(flatten(env.PERMISSIONS_BOUNDARY_ARN)).toMatch(/^<TenantRoleBoundary/);
    }
  });

  it("gives each step Lambda the timeout and memory STEP_SIZING names for its module, and STEP_SIZING no other module", () => {
    // Prepare: the table the local runner times handlers out by (functions/steps/step-sizing.ts)
    const lambdas = template.findResources("AWS::Lambda::Function");
    // Assess
    for (const entry of ALL_STEP_FUNCTIONS) {
      const props = (lambdas[functionIdByHandler(template, stepHandler(entry))] as Json).Properties;
      const sizing = STEP_SIZING[entry.module];
      expect(sizing, `STEP_SIZING has a row for ${entry.module}`).toBeDefined();
      expect({ timeout: props.Timeout, memorySize: props.MemorySize }, `${entry.state} (${entry.module})`).toEqual({
        timeout: sizing?.timeout,
        memorySize: sizing?.memorySize,
      });
    }
    expect(Object.keys(STEP_SIZING).sort()).toEqual([...new Set(ALL_STEP_FUNCTIONS.map((entry) => entry.module))].sort());
  });

  it("bundles every Lambda into an ES module that loads on Node and exports its handler", () => {
    // Prepare: the product's Lambdas (SST's own custom-resource handler is inline code, not a bundle)
    const lambdas = resourcesOf(template, "AWS::Lambda::Function").filter(([, props]) => props.Handler.startsWith("functions/"));
    const checks = lambdas.map(([id, props]) => {
      const [file, exported] = [
        props.Handler.slice(0, props.Handler.lastIndexOf(".")),
        props.Handler.slice(props.Handler.lastIndexOf(".") + 1),
      ];
      return { file: path.resolve(bundles.get(id)!, `${file}.mjs`), exported };
    });
    const script =
      "const checks = JSON.parse(process.argv[1]); const found = [];" +
      "for (const c of checks) { const m = await import(c.file); found.push(typeof m[c.exported]); }" +
      "console.log(JSON.stringify(found));";
    // Act: a fresh Node process, as Lambda would load it (no vitest transform in between)
    const output = execFileSync(process.execPath, ["--input-type=module", "-e", script, JSON.stringify(checks)], {
      encoding: "utf8",
      timeout: 120_000,
    });
    // Assess
    // Six entry points, the stopped-run handler, the reconcile, update and delete routes, the scheduled drift check and the removal event handler.
    expect(lambdas).toHaveLength(ALL_STEP_FUNCTIONS.length + 12);
    for (const check of checks)
      expect(fs.readFileSync(check.file, "utf8").split("\n").length, `${check.file} is minified`).toBeLessThan(1000);
    expect(JSON.parse(output.trim().split("\n").pop()!)).toEqual(checks.map(() => "function"));
  }, 180_000);

  it("builds the Standard state machine from the ASL file with every placeholder bound to its step Lambda", () => {
    // Prepare
    const asl = fs.readFileSync(DEFINITION_FILE, "utf8");
    const [[, machine]] = resourcesOf(template, "AWS::StepFunctions::StateMachine");
    // Assess
    expect(machine.StateMachineType).toBe("STANDARD");
    expect(JSON.parse(machine.DefinitionString)).toEqual(JSON.parse(asl));
    expect(Object.keys(machine.DefinitionSubstitutions).sort()).toEqual(STEP_FUNCTIONS.map((e) => e.placeholder).sort());
    for (const entry of STEP_FUNCTIONS) {
      expect(machine.DefinitionString).toContain(`\${${entry.placeholder}}`);
      expect(machine.DefinitionSubstitutions[entry.placeholder]).toEqual({
        "Fn::GetAtt": [functionIdByHandler(template, stepHandler(entry)), "Arn"],
      });
    }
    const invokable = allStatements(template)
      .filter(
        ({ policy, statement }) =>
          policy.startsWith("ProvisionStateMachineRole") && asList(statement.Action).includes("lambda:InvokeFunction"),
      )
      .flatMap(({ statement }) => asList(statement.Resource).map(flatten));
    for (const entry of STEP_FUNCTIONS) expect(invokable).toContain(`<${functionIdByHandler(template, stepHandler(entry))}.Arn>`);
  });

  it("logs the state machine at ERROR without execution data, and traces it with X-Ray", () => {
    // Prepare
    const [[, machine]] = resourcesOf(template, "AWS::StepFunctions::StateMachine");
    // Assess
    expect(machine.LoggingConfiguration.Level).toBe("ERROR");
    expect(machine.LoggingConfiguration.IncludeExecutionData).toBe(false);
    expect(flatten(machine.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn)).toMatch(/^<ProvisionLogs.*\.Arn>$/);
    expect(machine.TracingConfiguration).toEqual({ Enabled: true });
    // sst.config.ts: stages other than prod delete their log groups on `sst remove`.
    for (const logGroup of Object.values(template.findResources("AWS::Logs::LogGroup")))
      expect((logGroup as Json).DeletionPolicy).toBe("Delete");
  });

  it("derives each handler's AWS calls from its own code, not from its module's", () => {
    // Act
    const iamApply = sdkCalls.actionsOf("functions/steps/iam/index.ts", "apply");
    const iamCompensate = sdkCalls.actionsOf("functions/steps/iam/index.ts", "compensate");
    const status = sdkCalls.actionsOf("functions/api/status.ts", "handler");
    // Assess: followed through imports (paginators included), but only what each export reaches
    expect(iamApply).toContain("iam:CreateRole");
    expect(iamApply).not.toContain("iam:DeleteRole");
    expect(iamCompensate).toContain("iam:DeleteRole");
    expect(iamCompensate).toContain("iam:ListRolePolicies");
    expect(iamCompensate).not.toContain("iam:CreateRole");
    expect(status).toContain("states:GetExecutionHistory");
    expect(status).not.toContain("states:StartExecution");
    expect(sdkCalls.actionsOf("functions/steps/rbac.ts", "apply").size).toBe(0);
    // A step built by a factory (`export const { apply, compensate } = createClusterAccessStep()`): each export its own calls
    const accessApply = sdkCalls.actionsOf("functions/steps/cluster-access/index.ts", "apply");
    const accessCompensate = sdkCalls.actionsOf("functions/steps/cluster-access/index.ts", "compensate");
    expect(accessApply).toContain("eks:CreateAccessEntry");
    // #13 point 1: the grant deletes our entry made for an earlier instance of the launcher role before recreating it
    expect(accessApply).toContain("eks:DeleteAccessEntry");
    expect(accessCompensate).toContain("eks:DeleteAccessEntry");
    expect(accessCompensate).not.toContain("eks:CreateAccessEntry");
  });

  it("gives each Lambda every action its code calls, and no action beyond them", () => {
    // Prepare: what each of the product's Lambdas needs, from its code (plus what AWS authorizes alongside)
    const lambdas = resourcesOf(template, "AWS::Lambda::Function").filter(([, props]) => props.Handler.startsWith("functions/"));
    const needs = new Map(lambdas.map(([id, props]) => [id, neededActions(props.Handler, props)]));
    const byRole = new Map<string, string[]>();
    for (const [id, props] of lambdas) byRole.set(props.Role["Fn::GetAtt"][0], [...(byRole.get(props.Role["Fn::GetAtt"][0]) ?? []), id]);
    // Assess: nothing needed is missing
    // Six entry points, the stopped-run handler, the reconcile, update and delete routes, the scheduled drift check and the removal event handler.
    expect(lambdas).toHaveLength(ALL_STEP_FUNCTIONS.length + 12);
    for (const [id, props] of lambdas) {
      const granted = new Set(roleActions(template, id));
      const missing = [...needs.get(id)!].filter((a) => !granted.has(a));
      expect(missing, `${props.Handler} calls these but its role lacks them`).toEqual([]);
    }
    // Assess: no role may do anything, read or write, beyond what the Lambdas running as it need (the shared
    // KubeStepsRole: their union): e.g. the routes that start runs may not Query the registry, only the listing does.
    for (const [roleId, ids] of byRole) {
      const needed = new Set(ids.flatMap((id) => [...needs.get(id)!]));
      const extra = roleActions(template, ids[0]).filter((a) => !needed.has(a));
      expect(extra, `${roleId} (${ids.join(", ")}) may act beyond what its code calls`).toEqual([]);
    }
    // The entry points also list running executions (one run per tenant at a time).
    expect(needs.get(functionIdByHandler(template, "functions/api/provision.handler"))).toContain("states:ListExecutions");
  });

  it("keeps the environment registry in an on-demand DynamoDB table with point-in-time recovery, TTL on expiresAt", () => {
    // Prepare
    const tables = resourcesOf(template, "AWS::DynamoDB::Table").map(([, props]) => props);
    // Assess
    expect(tables).toHaveLength(1);
    expect(tables[0]).toMatchObject({
      BillingMode: "PAY_PER_REQUEST",
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
    });
    expect(JSON.stringify(tables[0])).toMatch(/"PointInTimeRecoveryEnabled":true/);
  });

  it("puts every HTTP API route behind IAM authorization, each on its handler", () => {
    // Prepare
    const routes = resourcesOf(template, "AWS::ApiGatewayV2::Route").map(([, props]) => props);
    const integrations = template.findResources("AWS::ApiGatewayV2::Integration") as Json;
    // Assess
    expect(routes.map((r) => r.RouteKey).sort()).toEqual([
      "DELETE /environments/{tenant}/{region}/{cluster}",
      "GET /environments",
      "GET /environments/{tenant}/{region}/{cluster}",
      "GET /executions/{id}",
      "POST /environments",
      "POST /environments/{tenant}/{region}/{cluster}/reconcile",
      "POST /provision",
      "PUT /environments/{tenant}/{region}/{cluster}",
    ]);
    for (const route of routes) {
      expect(route.AuthorizationType, route.RouteKey).toBe("AWS_IAM");
      const integrationId = flatten(route.Target).replace(/^integrations\/<(.*)>$/, "$1");
      const handler = ROUTE_HANDLERS[route.RouteKey]!;
      expect(flatten(integrations[integrationId].Properties.IntegrationUri)).toBe(`<${functionIdByHandler(template, handler)}.Arn>`);
    }
    const env = (template.findResources("AWS::Lambda::Function")[functionIdByHandler(template, "functions/api/provision.handler")] as Json)
      .Properties.Environment.Variables;
    expect(flatten(env.STATE_MACHINE_ARN)).toMatch(/^<ProvisionStateMachine/);
  });

  it("starts the workflow from ComputeEnvironmentRequested events of the allowed sources on the product's bus, with retries and a dead-letter queue", () => {
    // Prepare
    // The rules on the product's bus (the stopped-run rule is on the default bus, below).
    const rules = resourcesOf(template, "AWS::Events::Rule")
      .map(([, props]) => props)
      .filter((props) => props.EventBusName !== undefined);
    const onRequested = functionIdByHandler(template, "functions/events/compute-environment-requested.handler");
    // Assess
    // Issue #15: a second rule, for removals (asserted below).
    expect(rules).toHaveLength(2);
    const rule = rules.find((r) => r.EventPattern["detail-type"][0] === "ComputeEnvironmentRequested")!;
    expect(rule.EventPattern).toEqual({ source: ["com.example.onboarding"], "detail-type": ["ComputeEnvironmentRequested"] });
    expect(flatten(rule.EventBusName)).toMatch(/^<BusEventBus/);
    expect(rule.Targets).toHaveLength(1);
    expect(rule.Targets[0].Arn).toEqual({ "Fn::GetAtt": [onRequested, "Arn"] });
    expect(flatten(rule.Targets[0].DeadLetterConfig.Arn)).toMatch(/^<OnboardingDeadLetters.*\.Arn>$/);
    expect(rule.Targets[0].RetryPolicy.MaximumRetryAttempts).toBeGreaterThan(0);
    template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", { FunctionName: { Ref: onRequested }, MaximumRetryAttempts: 2 });
    const handlerEnv = (template.findResources("AWS::Lambda::Function")[onRequested] as Json).Properties.Environment.Variables;
    expect(flatten(handlerEnv.STATE_MACHINE_ARN)).toMatch(/^<ProvisionStateMachine/);
  });

  it("sends the provision runs that ended without their Catch, from the default bus, to the stopped-run handler", () => {
    // Prepare
    const rules = resourcesOf(template, "AWS::Events::Rule")
      .map(([, props]) => props)
      .filter((props) => props.EventBusName === undefined);
    const onStopped = functionIdByHandler(template, "functions/events/execution-stopped.handler");
    const machines = resourcesOf(template, "AWS::StepFunctions::StateMachine");
    const [, compensation] = machines.find(([id]) => id.startsWith("CompensateStoppedStateMachine"))!;
    // Assess: the rule (the account's default bus: no EventBusName), its pattern and its target
    expect(rules).toHaveLength(1);
    const [rule] = rules;
    expect(rule.EventPattern.source).toEqual(["aws.states"]);
    expect(rule.EventPattern["detail-type"]).toEqual(["Step Functions Execution Status Change"]);
    expect(rule.EventPattern.detail.status).toEqual(["TIMED_OUT", "ABORTED", "FAILED"]);
    // provision runs are compensated, teardowns recorded failed with their lease released (#15 point 2)
    expect(rule.EventPattern.detail.stateMachineArn.map(flatten)).toEqual([
      expect.stringMatching(/^<ProvisionStateMachine/),
      expect.stringMatching(/^<DeprovisionStateMachine/),
    ]);
    expect(rule.Targets).toHaveLength(1);
    expect(rule.Targets[0].Arn).toEqual({ "Fn::GetAtt": [onStopped, "Arn"] });
    expect(flatten(rule.Targets[0].DeadLetterConfig.Arn)).toMatch(/^<StoppedRunDeadLetters.*\.Arn>$/);
    // the handler knows both machines and waits the longest step timeout
    const env = (template.findResources("AWS::Lambda::Function")[onStopped] as Json).Properties.Environment.Variables;
    expect(flatten(env.STATE_MACHINE_ARN)).toMatch(/^<ProvisionStateMachine/);
    expect(flatten(env.COMPENSATION_STATE_MACHINE_ARN)).toMatch(/^<CompensateStoppedStateMachine/);
    expect(flatten(env.DEPROVISION_STATE_MACHINE_ARN)).toMatch(/^<DeprovisionStateMachine/);
    const timeouts = resourcesOf(template, "AWS::Lambda::Function")
      .filter(([, props]) => STEP_FUNCTIONS.some((e) => props.Handler === stepHandler(e)))
      .map(([, props]) => props.Timeout as number);
    expect(Number(env.STOPPED_RUN_GRACE_SECONDS)).toBe(Math.max(...timeouts));
    // the compensation machine: its ASL file, each placeholder bound to its step Lambda
    const asl = fs.readFileSync("statemachines/compensate-stopped.asl.json", "utf8");
    expect(JSON.parse(compensation.DefinitionString)).toEqual(JSON.parse(asl));
    for (const [placeholder, arn] of Object.entries(compensation.DefinitionSubstitutions)) {
      const entry = STEP_FUNCTIONS.find((e) => e.placeholder === placeholder)!;
      expect(arn).toEqual({ "Fn::GetAtt": [functionIdByHandler(template, stepHandler(entry)), "Arn"] });
    }
    expect(Object.keys(compensation.DefinitionSubstitutions).sort()).toEqual(
      [
        "ReportFailureFunctionArn",
        "UndoClusterAccessFunctionArn",
        "UndoHeadJobFunctionArn",
        "UndoIamResourcesFunctionArn",
        "UndoNamespaceAndRbacFunctionArn",
        "UndoStorageFunctionArn",
      ].sort(),
    );
  });

  it("starts the teardown from ComputeEnvironmentRemovalRequested events of the same sources, with retries and the same dead-letter queue", () => {
    // Prepare
    const rules = resourcesOf(template, "AWS::Events::Rule").map(([, props]) => props);
    const onRemoval = functionIdByHandler(template, "functions/events/compute-environment-removal-requested.handler");
    // Assess
    const rule = rules.find((r) => r.EventPattern["detail-type"][0] === "ComputeEnvironmentRemovalRequested");
    expect(rule?.EventPattern).toEqual({ source: ["com.example.onboarding"], "detail-type": ["ComputeEnvironmentRemovalRequested"] });
    expect(rule.Targets).toHaveLength(1);
    expect(rule.Targets[0].Arn).toEqual({ "Fn::GetAtt": [onRemoval, "Arn"] });
    expect(flatten(rule.Targets[0].DeadLetterConfig.Arn)).toMatch(/^<OnboardingDeadLetters.*\.Arn>$/);
    template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", { FunctionName: { Ref: onRemoval }, MaximumRetryAttempts: 2 });
    const env = (template.findResources("AWS::Lambda::Function")[onRemoval] as Json).Properties.Environment.Variables;
    expect(flatten(env.DEPROVISION_STATE_MACHINE_ARN)).toMatch(/^<DeprovisionStateMachine/);
  });

  it("builds the teardown state machine from deprovision.asl.json, each placeholder bound to its Lambda, which it may invoke", () => {
    // Prepare
    const asl = fs.readFileSync("statemachines/deprovision.asl.json", "utf8");
    const machine = resourcesOf(template, "AWS::StepFunctions::StateMachine").find(([id]) => id.startsWith("DeprovisionStateMachine"))![1];
    const placeholders = [...new Set([...asl.matchAll(/\$\{([A-Za-z]+)\}/g)].map((m) => m[1]!))].sort();
    const invokable = allStatements(template)
      .filter(
        ({ policy, statement }) =>
          policy.startsWith("DeprovisionStateMachineRole") && asList(statement.Action).includes("lambda:InvokeFunction"),
      )
      .flatMap(({ statement }) => asList(statement.Resource).map(flatten));
    // Assess
    expect(machine.StateMachineType).toBe("STANDARD");
    expect(JSON.parse(machine.DefinitionString)).toEqual(JSON.parse(asl));
    expect(Object.keys(machine.DefinitionSubstitutions).sort()).toEqual(placeholders);
    for (const placeholder of placeholders) {
      const entry = ALL_STEP_FUNCTIONS.find((e) => e.placeholder === placeholder)!;
      expect(machine.DefinitionSubstitutions[placeholder]).toEqual({
        "Fn::GetAtt": [functionIdByHandler(template, stepHandler(entry)), "Arn"],
      });
      expect(invokable).toContain(`<${functionIdByHandler(template, stepHandler(entry))}.Arn>`);
    }
    expect(invokable.filter((arn) => !arn.endsWith(":*"))).toHaveLength(placeholders.length);
  });

  it("prints what the operator needs: API URL, state machine, bus, the step role and one access command per cluster", () => {
    // Prepare
    const outputs = template.toJSON().Outputs as Record<string, { Value: Json }>;
    const value = (key: string) => flatten(outputs[key]?.Value);
    const roleArn = value("KubeStepsRoleArn");
    // Assess
    expect(roleArn).toMatch(/^<KubeStepsRole.*\.Arn>$/);
    expect(value("ApiUrl")).toMatch(/^<Api.*\.ApiEndpoint>$/);
    expect(value("StateMachineArn")).toMatch(/^<ProvisionStateMachine/);
    expect(value("EventBusName")).toMatch(/^<BusEventBus/);
    for (const cluster of ALLOWED) {
      const target = `--cluster-name ${cluster.name} --region ${cluster.region} --principal-arn ${roleArn}`;
      const kubeconfig = `aws eks update-kubeconfig --name ${cluster.name} --region ${cluster.region}`;
      // The group only (no EKS access policy), then the narrow ClusterRole bound to it: never cluster-admin.
      expect(value(`ClusterAccess${cluster.outputSuffix}`)).toBe(
        `aws eks create-access-entry ${target} --username nf-eks-provisioner --kubernetes-groups nf-eks-provisioner && ` +
          `${kubeconfig} && kubectl apply -f deploy/provisioner-clusterrole.yaml`,
      );
      expect(value(`ClusterAccessConfigMap${cluster.outputSuffix}`)).toBe(
        `${kubeconfig} && eksctl create iamidentitymapping --cluster ${cluster.name} --region ${cluster.region} --arn ${roleArn} ` +
          `--username nf-eks-provisioner --group nf-eks-provisioner && kubectl apply -f deploy/provisioner-clusterrole.yaml`,
      );
    }
    for (const output of Object.values(outputs)) {
      expect(flatten(output.Value)).not.toMatch(/AmazonEKSClusterAdminPolicy|cluster-admin|system:masters/);
    }
    const [entry] = parseYaml(value("AwsAuthMapRolesEntry"));
    expect(entry).toEqual({ rolearn: roleArn, username: "nf-eks-provisioner", groups: ["nf-eks-provisioner"] });
    expect(entry.groups.some((g: string) => g.startsWith("system:"))).toBe(false);
  });
});
