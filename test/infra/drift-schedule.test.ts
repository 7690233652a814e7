/**
 * The scheduled drift check as deployed (#16 point 3): an EventBridge Scheduler schedule (DRIFT_SCHEDULE, daily by
 * default) invoking the drift-check Lambda; the drift readers (it and GET on an environment) read only, and reach
 * Kubernetes as the provisioner by assuming the KubeStepsRole, which trusts exactly them.
 */
import type { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DRIFT_SCHEDULE, driftScheduleProblem } from "../../stacks/config.js";
import { BASE_ENV, asList, flatten, isReadOnly, resourcesOf, roleActions, synthesize, type Json, useSstTestProject } from "../support/stack-template.js";

useSstTestProject();

/** Unbundled, a Lambda's handler is SST's placeholder: found by its logical ID instead. */
const DRIFT_CHECK = /^DriftCheckFunction[0-9A-F]{8}$/;
const READ_ROUTE = /^ApiLambdaGETenvironmentstenantregioncluster[0-9A-F]{8}$/;

function functionId(template: Template, id: RegExp): string {
  const matches = resourcesOf(template, "AWS::Lambda::Function").filter(([logicalId]) => id.test(logicalId));
  expect(matches, String(id)).toHaveLength(1);
  return matches[0]![0];
}

describe("the scheduled drift check", () => {
  let template: Template;
  beforeAll(async () => {
    template = await synthesize(BASE_ENV, { bundle: false });
  }, 300_000);

  it("runs daily by default, on EventBridge Scheduler, invoking the drift-check Lambda through a role that may only invoke it", () => {
    // Prepare
    const schedules = resourcesOf(template, "AWS::Scheduler::Schedule").map(([, props]) => props);
    const checkId = functionId(template, DRIFT_CHECK);
    // Assess
    expect(schedules).toHaveLength(1);
    expect(schedules[0]).toMatchObject({ ScheduleExpression: DEFAULT_DRIFT_SCHEDULE, FlexibleTimeWindow: { Mode: "OFF" } });
    expect(DEFAULT_DRIFT_SCHEDULE).toBe("rate(1 day)");
    expect(flatten(schedules[0].Target.Arn)).toBe(`<${checkId}.Arn>`);
    const schedulerRoleId = flatten(schedules[0].Target.RoleArn).replace(/^<(.*)\.Arn>$/, "$1");
    const role = (template.findResources("AWS::IAM::Role") as Json)[schedulerRoleId].Properties;
    expect(JSON.stringify(role.AssumeRolePolicyDocument)).toContain("scheduler.amazonaws.com");
    const policies = Object.values(template.findResources("AWS::IAM::Policy") as Json).filter((p: any) =>
      asList(p.Properties.Roles).some((r: Json) => flatten(r) === `<${schedulerRoleId}>`),
    );
    const actions = policies.flatMap((p: any) => p.Properties.PolicyDocument.Statement.flatMap((s: Json) => asList(s.Action)));
    expect([...new Set(actions)]).toEqual(["lambda:InvokeFunction"]);
  });

  it("lets the drift readers read and put events, nothing else, and reach Kubernetes only by assuming the KubeStepsRole", () => {
    // Prepare
    const checkActions = roleActions(template, functionId(template, DRIFT_CHECK));
    const readActions = roleActions(template, functionId(template, READ_ROUTE));
    const kubeSteps = resourcesOf(template, "AWS::IAM::Role").find(([id]) => id.startsWith("KubeStepsRole"))!;
    const trusted = kubeSteps[1].AssumeRolePolicyDocument.Statement.flatMap((s: Json) => asList(s.Principal?.AWS).map(flatten));
    // Assess: writes are the bus (the check) and the assume-role only
    const reads = (a: string) => isReadOnly(a) || a === "dynamodb:Query";
    expect(checkActions.filter((a) => !reads(a)).sort()).toEqual(["events:PutEvents", "sts:AssumeRole"]);
    expect(readActions.filter((a) => !reads(a)).sort()).toEqual(["sts:AssumeRole"]);
    expect(readActions).toEqual(expect.arrayContaining(["eks:DescribeAccessEntry", "eks:ListAssociatedAccessPolicies", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies"]));
    const assumeStatements = [DRIFT_CHECK, READ_ROUTE].flatMap((pattern) => {
      const fn = (template.findResources("AWS::Lambda::Function") as Json)[functionId(template, pattern)];
      const roleId = fn.Properties.Role["Fn::GetAtt"][0];
      return resourcesOf(template, "AWS::IAM::Policy")
        .filter(([, p]) => p.Roles.some((r: Json) => r.Ref === roleId))
        .flatMap(([, p]) => p.PolicyDocument.Statement)
        .filter((s: Json) => asList(s.Action).includes("sts:AssumeRole"));
    });
    expect(assumeStatements.length).toBeGreaterThanOrEqual(2);
    for (const statement of assumeStatements) expect(asList(statement.Resource).map(flatten)).toEqual([`<${kubeSteps[0]}.Arn>`]);
    expect(trusted).toHaveLength(2);
  });
});

describe("DRIFT_SCHEDULE", () => {
  it("sets the schedule at deploy time", async () => {
    // Act
    const template = await synthesize({ ...BASE_ENV, DRIFT_SCHEDULE: "rate(6 hours)" }, { bundle: false });
    // Assess
    expect(resourcesOf(template, "AWS::Scheduler::Schedule").map(([, p]) => p.ScheduleExpression)).toEqual(["rate(6 hours)"]);
  });

  it("takes rate() and cron() expressions only, and a bad one stops the synth", async () => {
    // Assess
    expect(driftScheduleProblem("rate(1 day)")).toBeUndefined();
    expect(driftScheduleProblem("rate(12 hours)")).toBeUndefined();
    expect(driftScheduleProblem("cron(0 3 * * ? *)")).toBeUndefined();
    expect(driftScheduleProblem("rate(1 days)")).toMatch(/DRIFT_SCHEDULE/);
    expect(driftScheduleProblem("daily")).toMatch(/expected rate/);
    await expect(synthesize({ ...BASE_ENV, DRIFT_SCHEDULE: "every day" }, { bundle: false })).rejects.toThrow(/DRIFT_SCHEDULE "every day"/);
  });
});
