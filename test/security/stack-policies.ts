/**
 * The IAM policies of the synthesized stack as IAM would hold them once deployed: the app is synthesized as
 * `sst deploy` does (no bundling: IAM does not depend on the bundles), and each Lambda's role gets its identity
 * policies with every CloudFormation intrinsic resolved to the ARN it would be (the stack's own boundary, state
 * machine, bus, queue), so `@cloud-copilot/iam-simulate` can decide requests against them.
 */
import type { Template } from "aws-cdk-lib/assertions";
import { Template as TemplateOf } from "aws-cdk-lib/assertions";
import { App, getStack } from "sst/constructs";
import { initProject } from "sst/project.js";
import { vi } from "vitest";
import sstConfig from "../../sst.config.js";
import { Provisioner } from "../../stacks/Provisioner.js";

/** The deployment simulated: the unit fixtures' account and cluster, so the steps' real requests can be replayed. */
export const ACCOUNT = "111122223333";
export const REGION = "eu-west-1";
export const PREFIX = "nfeks";
export const OPERATOR_BOUNDARY = `arn:aws:iam::${ACCOUNT}:policy/platform-boundary`;
export const DEFAULT_ENV = {
  ALLOWED_CLUSTERS: `research@${REGION}`,
  ALLOWED_ACCOUNT_IDS: "444455556666",
  IAM_PREFIX: PREFIX,
  PERMISSIONS_BOUNDARY_ARN: "",
};

export interface PolicyDocument {
  Version: string;
  Statement: unknown[];
}

/**
 * One Lambda of the product: its construct id (`CreateIamResourcesFunction`, `ApiLambdaPOSTprovision`; without
 * bundling the template holds placeholder handlers, so the id names it), its role and that role's identity
 * policies, resolved.
 */
export interface LambdaIdentity {
  id: string;
  roleArn: string;
  policies: Array<{ name: string; policy: PolicyDocument }>;
}

export interface DeployedPolicies {
  lambdas: LambdaIdentity[];
  /** The boundary the IAM Lambdas require (the stack's TenantRoleBoundary, or the operator's) */
  boundaryArn: string;
  /** The stack's own TenantRoleBoundary document, when the stack creates one */
  ownBoundary?: PolicyDocument;
  stateMachineArn: string;
  /** the compensation of runs that ended without their Catch */
  compensationStateMachineArn: string;
  eventBusArn: string;
  /** the deprovision (teardown) state machine */
  deprovisionStateMachineArn: string;
  /** the environment registry's table */
  registryTableArn: string;
  /** the shared role of the Kubernetes-facing steps (the drift readers assume it) */
  kubeStepsRoleArn: string;
}

export class UnresolvedIntrinsic extends Error {
  constructor(value: unknown) {
    super(`test/security cannot resolve ${JSON.stringify(value)}: add it to stack-policies.ts`);
    this.name = "UnresolvedIntrinsic";
  }
}

/**
 * AWS managed policies the Lambda roles carry, as AWS defines them (AWSLambdaBasicExecutionRole: CloudWatch Logs
 * only). Any other one stops the test: its document would have to be known to decide anything.
 */
const AWS_MANAGED = {
  "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], Resource: "*" }],
  },
} as Record<string, PolicyDocument>;

type Json = any; // CloudFormation JSON

/** The ARN a resource's Ref (or GetAtt Arn) resolves to, by its type. */
function arnOf(resources: Record<string, Json>, id: string): string {
  const resource = resources[id];
  const props = resource?.Properties ?? {};
  switch (resource?.Type) {
    case "AWS::IAM::ManagedPolicy":
      return `arn:aws:iam::${ACCOUNT}:policy/${id}`;
    case "AWS::IAM::Role":
      return `arn:aws:iam::${ACCOUNT}:role/${id}`;
    case "AWS::StepFunctions::StateMachine":
      return `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${props.StateMachineName}`;
    case "AWS::Events::EventBus":
      return `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${props.Name}`;
    case "AWS::SQS::Queue":
      return `arn:aws:sqs:${REGION}:${ACCOUNT}:${id}`;
    case "AWS::DynamoDB::Table":
      return `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${props.TableName ?? id}`;
    case "AWS::Lambda::Function":
      return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${id}`;
    default:
      throw new UnresolvedIntrinsic({ Ref: id });
  }
}

/** Every intrinsic in `value` replaced by what CloudFormation would put there. */
export function resolveIntrinsics(value: Json, resources: Record<string, Json>): Json {
  if (Array.isArray(value)) return value.map((item) => resolveIntrinsics(item, resources));
  if (value === null || typeof value !== "object") return value;
  if ("Ref" in value) {
    const pseudo: Record<string, string> = {
      "AWS::Partition": "aws",
      "AWS::Region": REGION,
      "AWS::AccountId": ACCOUNT,
      "AWS::URLSuffix": "amazonaws.com",
    };
    return pseudo[value.Ref] ?? arnOf(resources, value.Ref);
  }
  if ("Fn::GetAtt" in value) {
    const [id, attribute] = value["Fn::GetAtt"];
    if (attribute !== "Arn") throw new UnresolvedIntrinsic(value);
    return arnOf(resources, id);
  }
  if ("Fn::Join" in value) {
    const [separator, parts] = value["Fn::Join"];
    return parts.map((part: Json) => resolveIntrinsics(part, resources)).join(separator);
  }
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolveIntrinsics(item, resources)]));
}

function roleIdentity(resources: Record<string, Json>, id: string, roleId: string): LambdaIdentity {
  const role = resources[roleId].Properties;
  const policies: LambdaIdentity["policies"] = [];
  for (const [id, resource] of Object.entries(resources)) {
    if (resource.Type !== "AWS::IAM::Policy" || !resource.Properties.Roles.some((r: Json) => r.Ref === roleId)) continue;
    policies.push({ name: id, policy: resolveIntrinsics(resource.Properties.PolicyDocument, resources) });
  }
  for (const inline of role.Policies ?? [])
    policies.push({ name: inline.PolicyName, policy: resolveIntrinsics(inline.PolicyDocument, resources) });
  for (const managed of role.ManagedPolicyArns ?? []) {
    const arn = resolveIntrinsics(managed, resources);
    if (!AWS_MANAGED[arn]) throw new UnresolvedIntrinsic(managed);
    policies.push({ name: arn, policy: AWS_MANAGED[arn] });
  }
  return { id, roleArn: arnOf(resources, roleId), policies };
}

/** Synthesizes the app with this deploy-time environment (stage "test"), once per file: about 20 seconds. */
export async function synthesize(env: Record<string, string>): Promise<Template> {
  vi.stubEnv("NODE_ENV", "test"); // else SST looks up its bootstrap stack in a real account
  await initProject({ stage: "test" });
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  const { name } = await sstConfig.config({ stage: "test" });
  const app = new App({ mode: "deploy", stage: "test", name, region: REGION, account: ACCOUNT });
  await sstConfig.stacks(app);
  return TemplateOf.fromStack(getStack(Provisioner));
}

/** What IAM would hold for the product's Lambdas once this template is deployed. */
export function deployedPolicies(template: Template): DeployedPolicies {
  const resources = template.toJSON().Resources as Record<string, Json>;
  // The product's Lambdas: all but SST's own custom-resource handler. A logical ID is the construct id and a hash.
  const lambdas = Object.entries(resources)
    .filter(([id, r]) => r.Type === "AWS::Lambda::Function" && !id.startsWith("CustomResourceHandler"))
    .map(([id, r]) => roleIdentity(resources, id.replace(/[0-9A-F]{8}$/, ""), r.Properties.Role["Fn::GetAtt"][0]));
  const outputs = template.toJSON().Outputs as Record<string, { Value: Json }>;
  const [ownBoundary] = Object.values(resources).filter((r) => r.Type === "AWS::IAM::ManagedPolicy");
  const machines = Object.keys(resources).filter((id) => resources[id].Type === "AWS::StepFunctions::StateMachine");
  const stateMachineId = machines.find((id) => id.startsWith("ProvisionStateMachine"))!;
  const compensationId = machines.find((id) => id.startsWith("CompensateStoppedStateMachine"))!;
  const deprovisionId = machines.find((id) => id.startsWith("DeprovisionStateMachine"))!;
  const [busId] = Object.keys(resources).filter((id) => resources[id].Type === "AWS::Events::EventBus");
  const [tableId] = Object.keys(resources).filter((id) => resources[id].Type === "AWS::DynamoDB::Table");
  const kubeStepsRoleId = Object.keys(resources).find((id) => resources[id].Type === "AWS::IAM::Role" && id.startsWith("KubeStepsRole"))!;
  return {
    lambdas,
    boundaryArn: resolveIntrinsics(outputs.TenantRoleBoundaryArn.Value, resources),
    ...(ownBoundary ? { ownBoundary: resolveIntrinsics(ownBoundary.Properties.PolicyDocument, resources) } : {}),
    stateMachineArn: arnOf(resources, stateMachineId),
    compensationStateMachineArn: arnOf(resources, compensationId),
    eventBusArn: arnOf(resources, busId),
    deprovisionStateMachineArn: arnOf(resources, deprovisionId),
    registryTableArn: arnOf(resources, tableId),
    kubeStepsRoleArn: arnOf(resources, kubeStepsRoleId),
  };
}

/** The Lambda with this construct id (`CreateIamResourcesFunction`, ...). */
export function lambdaOf(deployed: DeployedPolicies, id: string): LambdaIdentity {
  const found = deployed.lambdas.filter((lambda) => lambda.id === id);
  if (found.length !== 1)
    throw new Error(`expected one Lambda ${id}, found ${found.length} among ${deployed.lambdas.map((l) => l.id).join(", ")}`);
  return found[0]!;
}
