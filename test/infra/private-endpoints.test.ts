/**
 * Private cluster endpoints and onboarding sources, without a synth of the whole stack: the Kubernetes-facing
 * Lambdas go into the deployment's subnets (KUBE_STEPS_*), with the VPC access policy on their role; the settings
 * come all three or none; the onboarding rule matches the allowed sources only, never the product's own.
 */
import { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Code, Function as CdkFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { describe, expect, it } from "vitest";
import {
  COMPUTE_ENVIRONMENT_REQUESTED,
  configToEnv,
  kubeStepsPlacement,
  loadDeploymentConfig,
  onboardingEventPattern,
} from "../../functions/lib/domain/deploy-config.js";
import { PRODUCT } from "../../functions/lib/domain/naming.js";
import { EVENT_SOURCE } from "../../functions/steps/report.js";
import { placeInVpc } from "../../stacks/Provisioner.js";
import { DEPLOYMENT_ENV } from "../support/fixtures.js";

const IN_VPC = {
  KUBE_STEPS_VPC_ID: "vpc-0123456789abcdef0",
  KUBE_STEPS_SUBNET_IDS: "subnet-0123456789abcdef0, subnet-0123456789abcdef1",
  KUBE_STEPS_SECURITY_GROUP_IDS: "sg-0123456789abcdef0",
};

function stackWithTwoFunctions(): { stack: Stack; role: Role; fns: CdkFunction[] } {
  const stack = new Stack(new App(), "Test");
  const role = new Role(stack, "KubeStepsRole", { assumedBy: new ServicePrincipal("lambda.amazonaws.com") });
  const fns = ["Kube", "Other"].map(
    (id) =>
      new CdkFunction(stack, id, { runtime: Runtime.NODEJS_22_X, handler: "index.handler", code: Code.fromInline("export {}"), role }),
  );
  return { stack, role, fns };
}

describe("the Kubernetes-facing Lambdas in the deployment's VPC", () => {
  it("puts the given functions in the subnets with the security groups, and gives their role the VPC access policy", () => {
    // Prepare
    const { stack, role, fns } = stackWithTwoFunctions();
    // Act
    placeInVpc([fns[0]!], role, kubeStepsPlacement(loadDeploymentConfig({ ...DEPLOYMENT_ENV, ...IN_VPC })));
    // Assess
    const template = Template.fromStack(stack);
    const functions = template.findResources("AWS::Lambda::Function");
    const kube = Object.entries(functions).find(([id]) => id.startsWith("Kube"))![1] as { Properties: Record<string, unknown> };
    const other = Object.entries(functions).find(([id]) => id.startsWith("Other"))![1] as { Properties: Record<string, unknown> };
    expect(kube.Properties.VpcConfig).toEqual({
      SubnetIds: ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
      SecurityGroupIds: ["sg-0123456789abcdef0"],
    });
    expect(other.Properties.VpcConfig).toBeUndefined();
    expect(JSON.stringify(template.findResources("AWS::IAM::Role"))).toContain("service-role/AWSLambdaVPCAccessExecutionRole");
  });

  it("changes nothing without the settings", () => {
    // Prepare
    const { stack, role, fns } = stackWithTwoFunctions();
    // Act
    placeInVpc(fns, role, kubeStepsPlacement(loadDeploymentConfig(DEPLOYMENT_ENV)));
    // Assess
    const template = JSON.stringify(Template.fromStack(stack).toJSON());
    expect(template).not.toContain("VpcConfig");
    expect(template).not.toContain("AWSLambdaVPCAccessExecutionRole");
  });

  it("hands the settings to every Lambda's environment, so ResolveCluster knows where the steps run", () => {
    // Act
    const env = configToEnv(loadDeploymentConfig({ ...DEPLOYMENT_ENV, ...IN_VPC }));
    // Assess
    expect(loadDeploymentConfig(env)).toMatchObject({
      kubeStepsVpcId: IN_VPC.KUBE_STEPS_VPC_ID,
      kubeStepsSubnetIds: ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
      kubeStepsSecurityGroupIds: ["sg-0123456789abcdef0"],
    });
  });

  it.each([
    [
      "the VPC alone",
      { KUBE_STEPS_VPC_ID: IN_VPC.KUBE_STEPS_VPC_ID },
      /kubeStepsSubnetIds: set KUBE_STEPS_VPC_ID, KUBE_STEPS_SUBNET_IDS, KUBE_STEPS_SECURITY_GROUP_IDS together/,
    ],
    [
      "subnets without security groups",
      { KUBE_STEPS_VPC_ID: IN_VPC.KUBE_STEPS_VPC_ID, KUBE_STEPS_SUBNET_IDS: IN_VPC.KUBE_STEPS_SUBNET_IDS },
      /kubeStepsSecurityGroupIds: set/,
    ],
    ["a malformed subnet id", { ...IN_VPC, KUBE_STEPS_SUBNET_IDS: "subnet-xyz" }, /kubeStepsSubnetIds\.0: a subnet id is subnet-/],
  ])("refuses %s", (_what, settings, message) => {
    // Act + Assess
    expect(() => loadDeploymentConfig({ ...DEPLOYMENT_ENV, ...settings })).toThrow(message);
  });
});

describe("the onboarding rule's sources", () => {
  it("matches ComputeEnvironmentRequested from the allowed sources only", () => {
    // Act
    const pattern = onboardingEventPattern(
      loadDeploymentConfig({ ...DEPLOYMENT_ENV, ONBOARDING_EVENT_SOURCES: "com.example.onboarding, acme.portal" }),
    );
    // Assess
    expect(pattern).toEqual({ source: ["com.example.onboarding", "acme.portal"], detailType: [COMPUTE_ENVIRONMENT_REQUESTED] });
  });

  it("has no rule when no source is allowed (onboarding by event is off)", () => {
    // Assess
    expect(onboardingEventPattern(loadDeploymentConfig(DEPLOYMENT_ENV))).toBeUndefined();
  });

  it("never allows the product's own source, so its own events cannot start a run", () => {
    // Assess
    expect(EVENT_SOURCE).toBe(PRODUCT);
    expect(() => loadDeploymentConfig({ ...DEPLOYMENT_ENV, ONBOARDING_EVENT_SOURCES: `acme.portal,${EVENT_SOURCE}` })).toThrow(
      /onboardingEventSources\.1: "nf-eks-provisioner" is the product's own event source/,
    );
  });
});
