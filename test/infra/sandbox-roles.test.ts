/**
 * The sandbox's roles hold what the deployed roles hold (#12 point 3): the statements local/aws/product-roles.ts
 * gives each role equal, one for one, the statements the synthesized template attaches to that function's role
 * (one source: stacks/permissions.ts), and a started sandbox defines exactly those roles, one per Lambda.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Template } from "aws-cdk-lib/assertions";
import { loadDeploymentConfig } from "../../functions/lib/domain/deploy-config.js";
import { ALL_STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import {
  DRIFT_CHECK_ROLE_KEY,
  EXECUTION_STOPPED_ROLE_KEY,
  KUBE_STEPS_ROLE_KEY,
  ONBOARDING_EVENTS_ROLE_KEY,
  REMOVAL_EVENTS_ROLE_KEY,
  productRoles,
  type ProductRole,
} from "../../local/aws/product-roles.js";
import { startSandbox, type Sandbox } from "../../local/sandbox.js";
import { policyDocument, type PolicyStatementJson } from "../../stacks/permissions.js";
import { ACCOUNT, asList, BASE_ENV, flatten, resourcesOf, synthesize, useSstTestProject, type Json } from "../support/stack-template.js";

useSstTestProject();

/**
 * The Lambda whose construct id is `<id>` (CDK appends a hash): unbundled, every handler reads `index.placeholder`,
 * so functions are found by the ids stacks/Provisioner.ts gives them (`<State>Function`).
 */
function functionIdOf(template: Template, constructId: string): string {
  const ids = resourcesOf(template, "AWS::Lambda::Function")
    .map(([id]) => id)
    .filter((id) => new RegExp(`^${constructId}[0-9A-F]{8}$`).test(id));
  expect(ids, constructId).toHaveLength(1);
  return ids[0];
}

/** A statement with every intrinsic rendered (flatten), lists as lists, sorted by Sid: what both sides are compared as. */
function normalised(statement: Json): Json {
  const condition = statement.Condition
    ? Object.fromEntries(
        Object.entries(statement.Condition as Record<string, Record<string, Json>>).map(([op, keys]) => [
          op,
          Object.fromEntries(Object.entries(keys).map(([key, value]) => [key, Array.isArray(value) ? value.map(flatten) : flatten(value)])),
        ]),
      )
    : undefined;
  return {
    Sid: statement.Sid,
    Effect: statement.Effect,
    Action: asList<string>(statement.Action),
    Resource: asList<Json>(statement.Resource).map(flatten),
    ...(condition ? { Condition: condition } : {}),
  };
}

const bySid = (a: Json, b: Json) => String(a.Sid).localeCompare(String(b.Sid));

/** The logical id of one resource of a type (exactly one expected). */
/** The one resource of a type whose logical id starts with `prefix` (the stack has several state machines). */
function idStartingWith(template: Template, type: string, prefix: string): string {
  const ids = resourcesOf(template, type)
    .map(([id]) => id)
    .filter((id) => id.startsWith(prefix));
  expect(ids, `${type} ${prefix}*`).toHaveLength(1);
  return ids[0];
}

function onlyId(template: Template, type: string): string {
  const ids = resourcesOf(template, type).map(([id]) => id);
  expect(ids, type).toHaveLength(1);
  return ids[0];
}

/** The role (logical id) of the Lambda behind an HTTP API route. */
function routeRoleId(template: Template, route: string): string {
  const [, routeProps] = resourcesOf(template, "AWS::ApiGatewayV2::Route").find(([, p]) => p.RouteKey === route) ?? [];
  expect(routeProps, `route ${route}`).toBeDefined();
  const integrationId = routeProps.Target["Fn::Join"][1][1].Ref;
  const integration = template.toJSON().Resources[integrationId].Properties;
  return functionRoleId(template, integration.IntegrationUri["Fn::GetAtt"][0]);
}

function functionRoleId(template: Template, functionId: string): string {
  return template.toJSON().Resources[functionId].Properties.Role["Fn::GetAtt"][0];
}

/** The role each product role stands for in the template, by key. */
function templateRoleId(template: Template, role: ProductRole): string {
  if (role.key === KUBE_STEPS_ROLE_KEY)
    return resourcesOf(template, "AWS::IAM::Role")
      .map(([id]) => id)
      .find((id) => id.startsWith("KubeStepsRole"))!;
  if (role.key === ONBOARDING_EVENTS_ROLE_KEY)
    return functionRoleId(template, functionIdOf(template, "ComputeEnvironmentRequestedFunction"));
  if (role.key === REMOVAL_EVENTS_ROLE_KEY)
    return functionRoleId(template, functionIdOf(template, "ComputeEnvironmentRemovalRequestedFunction"));
  if (role.key === DRIFT_CHECK_ROLE_KEY) return functionRoleId(template, functionIdOf(template, "DriftCheckFunction"));
  if (role.key === EXECUTION_STOPPED_ROLE_KEY) return functionRoleId(template, functionIdOf(template, "ExecutionStoppedFunction"));
  const step = ALL_STEP_FUNCTIONS.find((entry) => entry.state === role.key);
  if (step) return functionRoleId(template, functionIdOf(template, `${step.state}Function`));
  return routeRoleId(template, role.key);
}

/** Every statement the template attaches to a role (its AWS::IAM::Policy resources). */
function templateStatements(template: Template, roleId: string): Json[] {
  return resourcesOf(template, "AWS::IAM::Policy")
    .filter(([, props]) => props.Roles.some((r: Json) => r.Ref === roleId))
    .flatMap(([, props]) => props.PolicyDocument.Statement as Json[]);
}

describe("the sandbox's product roles against the synthesized stack (no permissions boundary, two clusters)", () => {
  let template: Template;
  let roles: ProductRole[];

  beforeAll(async () => {
    template = await synthesize(BASE_ENV, { bundle: false });
    // The same deployment the template was synthesized for (BASE_ENV is stubbed until the file ends), its ARNs as the
    // template renders them: the stack's own boundary, bus, table and state machine.
    const boundary = onlyId(template, "AWS::IAM::ManagedPolicy");
    const stateMachine = idStartingWith(template, "AWS::StepFunctions::StateMachine", "ProvisionStateMachine");
    const stateMachineName = template.toJSON().Resources[stateMachine].Properties.StateMachineName;
    const deprovision = idStartingWith(template, "AWS::StepFunctions::StateMachine", "DeprovisionStateMachine");
    const config = { ...loadDeploymentConfig(), permissionsBoundaryArn: `<${boundary}>` };
    roles = productRoles(
      { partition: "aws", account: ACCOUNT, config },
      {
        eventBusArn: `<${onlyId(template, "AWS::Events::EventBus")}.Arn>`,
        registryTableArn: `<${onlyId(template, "AWS::DynamoDB::Table")}.Arn>`,
        stateMachineArn: `<${stateMachine}>`,
        executionsArn: `arn:aws:states:eu-west-1:${ACCOUNT}:execution:${stateMachineName}:*`,
        kubeStepsRoleArn: `<${resourcesOf(template, "AWS::IAM::Role")
          .map(([id]) => id)
          .find((id) => id.startsWith("KubeStepsRole"))}.Arn>`,
        compensationStateMachineArn: `<${idStartingWith(template, "AWS::StepFunctions::StateMachine", "CompensateStoppedStateMachine")}>`,
        deprovisionStateMachineArn: `<${deprovision}>`,
        deprovisionExecutionsArn: `arn:aws:states:eu-west-1:${ACCOUNT}:execution:${template.toJSON().Resources[deprovision].Properties.StateMachineName}:*`,
      },
    );
  }, 120_000);

  it("gives each role exactly the statements the template attaches to that function's role", () => {
    // Prepare
    const compared = roles.map((role) => ({ role, roleId: templateRoleId(template, role) }));
    // Act
    const differences = compared.flatMap(({ role, roleId }) => {
      const deployed = templateStatements(template, roleId)
        .filter((s) => s.Sid)
        .map(normalised)
        .sort(bySid);
      const sandbox = role.statements.map(normalised).sort(bySid);
      return JSON.stringify(deployed) === JSON.stringify(sandbox) ? [] : [{ role: role.key, deployed, sandbox }];
    });
    // Assess
    expect(compared.length).toBe(new Set(compared.map((c) => c.roleId)).size); // one template role per sandbox role
    expect(compared.find((c) => c.role.key === "CreateIamResources")?.role.statements.length).toBeGreaterThan(10);
    expect(differences).toEqual([]);
  });

  it("leaves out only what CDK adds beside the product's statements: X-Ray and the dead-letter queue", () => {
    // Prepare
    const roleIds = roles.map((role) => templateRoleId(template, role));
    // Act
    const unnamed = roleIds
      .flatMap((roleId) => templateStatements(template, roleId).filter((s) => !s.Sid))
      .flatMap((s) => asList<string>(s.Action));
    // Assess
    expect(unnamed.length).toBeGreaterThan(0);
    expect([...new Set(unnamed)].sort()).toEqual(["sqs:SendMessage", "xray:PutTelemetryRecords", "xray:PutTraceSegments"]);
  });

  it("covers every Lambda of the stack but CDK's own custom-resource handler", () => {
    // Prepare
    const covered = new Set(roles.map((role) => templateRoleId(template, role)));
    // Act
    const uncovered = resourcesOf(template, "AWS::Lambda::Function")
      .map(([id, props]) => ({ id, roleId: props.Role["Fn::GetAtt"][0] as string }))
      .filter((fn) => !covered.has(fn.roleId));
    // Assess
    expect(covered.size).toBe(roles.length);
    expect(uncovered.map((fn) => fn.id)).toEqual([expect.stringMatching(/^CustomResourceHandler/)]);
  });
});

describe("a started sandbox", () => {
  let sandbox: Sandbox;

  beforeAll(async () => {
    sandbox = await startSandbox({});
  });

  afterAll(async () => {
    await sandbox?.close();
  });

  it("defines every product role in its account with its statements as its one inline policy, trusted by Lambda", () => {
    // Prepare
    const expected = sandbox.productRoles;
    // Act
    const held = expected.map((role) => {
      const stored = sandbox.aws.state.iam.roles.get(role.roleName);
      const documents = [...(stored?.inlinePolicies.values() ?? [])].map((text) => JSON.parse(text));
      return {
        key: role.key,
        documents,
        trust: JSON.parse(stored?.assumeRolePolicyDocument ?? "{}"),
        attached: stored?.attachedPolicyArns,
      };
    });
    // Assess
    expect(expected.map((r) => r.key)).toEqual(
      expect.arrayContaining([
        KUBE_STEPS_ROLE_KEY,
        "ResolveCluster",
        "CreateIamResources",
        "UndoIamResources",
        "Report",
        "ReportFailure",
        "POST /provision",
        ONBOARDING_EVENTS_ROLE_KEY,
      ]),
    );
    for (const [i, role] of expected.entries()) {
      expect(held[i].documents, role.key).toEqual(role.statements.length ? [policyDocument(role.statements as PolicyStatementJson[])] : []);
      expect(held[i].trust.Statement, role.key).toEqual([
        { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
      ]);
      expect(held[i].attached, role.key).toEqual([]);
    }
    // The sandbox's deployment: its one cluster, its account.
    const resolve = expected.find((r) => r.key === "ResolveCluster")!;
    expect(resolve.statements[0].Resource).toEqual([`arn:aws:eks:eu-west-1:111122223333:cluster/research`]);
  });
});
