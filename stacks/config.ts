/**
 * Deploy-time configuration, read and validated when the stack is synthesized: a bad value stops
 * `sst deploy` before anything reaches CloudFormation, with every problem listed by the variable
 * that holds it. SST loads `.env`, `.env.<stage>` and `.env.<stage>.local` before synth, so a
 * per-stage configuration is simply a `.env.<stage>` file next to sst.config.ts.
 */
import { STSClient } from "@aws-sdk/client-sts";
import { VisibleError } from "sst/error.js";
import { checkDeploymentConfig, CONFIG_ENV, type DeploymentConfig } from "../functions/lib/domain/deploy-config.js";

/** What the operator sets (EVENT_BUS_NAME is not among them: the stack owns the bus and sets it). */
const DEPLOY_TIME_VARIABLES = [
  CONFIG_ENV.allowedClusters,
  CONFIG_ENV.allowedAccountIds,
  CONFIG_ENV.iamPrefix,
  CONFIG_ENV.permissionsBoundaryArn,
  CONFIG_ENV.kubeStepsVpcId,
  CONFIG_ENV.kubeStepsSubnetIds,
  CONFIG_ENV.kubeStepsSecurityGroupIds,
  CONFIG_ENV.onboardingEventSources,
  CONFIG_ENV.podSecurityLevel,
  CONFIG_ENV.allowPrivilegedNamespaces,
  CONFIG_ENV.namespaceQuota,
  CONFIG_ENV.eksTokenStsEndpoint,
  "DRIFT_SCHEDULE",
] as const;

/** `allowedClusters.0.region` → `ALLOWED_CLUSTERS[0].region`, so the operator knows which variable to fix. */
export function describeConfigPath(path: string): string {
  const [key, ...rest] = path.split(".");
  const variable = CONFIG_ENV[key as keyof typeof CONFIG_ENV] ?? key;
  return variable + rest.map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`)).join("");
}

/** The validated configuration for this stage, or a synth-stopping error that lists what to fix, one line per problem. */
export function deploymentConfigForStage(stage: string, env: NodeJS.ProcessEnv = process.env): DeploymentConfig {
  const checked = checkDeploymentConfig(env);
  if ("config" in checked) return checked.config;
  const problems =
    "listError" in checked
      ? [`${CONFIG_ENV.allowedClusters}: not a valid list (${checked.listError.message})`]
      : checked.problems.map((problem) => `${describeConfigPath(problem.path)}: ${problem.message}`);
  throw new VisibleError(
    `nf-eks-provisioner: the deploy-time configuration for stage "${stage}" is invalid:`,
    ...problems.map((problem) => `  - ${problem}`),
    `Set ${DEPLOY_TIME_VARIABLES.join(", ")} in the environment or in .env.${stage}`,
    `(e.g. ${CONFIG_ENV.allowedClusters}=research@eu-west-1 ${CONFIG_ENV.allowedAccountIds}=111122223333 ${CONFIG_ENV.iamPrefix}=nfeks).`,
  );
}

// ---------------------------------------------------------------- the scheduled drift check

/** When the scheduled drift check runs: an EventBridge Scheduler expression, `rate(...)` or `cron(...)`. */
export const DRIFT_SCHEDULE_ENV = "DRIFT_SCHEDULE";
export const DEFAULT_DRIFT_SCHEDULE = "rate(1 day)";

const RATE = /^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)$/;
/** cron(minutes hours day-of-month month day-of-week year): six fields. */
const CRON = /^cron\(\S+( \S+){5}\)$/;

/** Why the value is not a schedule expression EventBridge Scheduler takes, or undefined when it is. */
export function driftScheduleProblem(value: string): string | undefined {
  if (RATE.test(value) || CRON.test(value)) return undefined;
  return `${DRIFT_SCHEDULE_ENV} ${JSON.stringify(value)}: expected rate(<n> <minute(s)|hour(s)|day(s)>) or cron(<6 fields>), e.g. ${JSON.stringify(DEFAULT_DRIFT_SCHEDULE)}`;
}

/** The stage's drift schedule (daily unless DRIFT_SCHEDULE says otherwise); a bad one stops the synth. */
export function driftScheduleForStage(stage: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[DRIFT_SCHEDULE_ENV]?.trim() || DEFAULT_DRIFT_SCHEDULE;
  const problem = driftScheduleProblem(value);
  if (problem)
    throw new VisibleError(`nf-eks-provisioner: the deploy-time configuration for stage "${stage}" is invalid:`, `  - ${problem}`);
  return value;
}

// ---------------------------------------------------------------- the IAM prefix and this stack's own roles

/**
 * Role names the product must never reach through `role/<prefix>-*`: CDK's bootstrap roles (`cdk-<qualifier>-...`,
 * one of them the CloudFormation execution role), SST's bootstrap stack (`SSTBootstrap-...`), and AWS's own roles
 * (service-linked roles under `role/aws-service-role/`, IAM Identity Center's under `role/aws-reserved/`).
 */
export const RESERVED_ROLE_NAME_STARTS = ["cdk", "SSTBootstrap", "aws"] as const;

/**
 * Why the product's IAM scope `role/<prefix>-*` could cover a role it must never touch, or undefined when it cannot.
 * CloudFormation names this stack's roles `<stack name, shortened when long>-<logical id>-<suffix>`: a prefix that
 * begins the stack name, or whose part before a '-' does, would put the stack's own Lambda roles (which hold the
 * IAM permissions) within the IAM step's reach. Compared without case, as IAM compares role names.
 */
export function iamPrefixClash(prefix: string, stackName: string): string | undefined {
  const lower = prefix.toLowerCase();
  const heads = [lower, ...[...lower].flatMap((char, i) => (char === "-" ? [lower.slice(0, i)] : []))];
  const clashing = heads.find((head) => head && stackName.toLowerCase().startsWith(head));
  if (clashing !== undefined) {
    return (
      `${CONFIG_ENV.iamPrefix} ${JSON.stringify(prefix)}: the product may write to role/${prefix}-*, and this stack's own roles are named ` +
      `${stackName}-... (CloudFormation may shorten the stack name), so "${clashing}" would reach them; choose a prefix that does not begin ${JSON.stringify(stackName)}`
    );
  }
  const reserved = RESERVED_ROLE_NAME_STARTS.find((start) => lower.split("-")[0] === start.toLowerCase());
  if (reserved) {
    return `${CONFIG_ENV.iamPrefix} ${JSON.stringify(prefix)}: role/${prefix}-* would cover the ${reserved}-... roles (bootstrap or AWS-managed); choose another prefix`;
  }
  return undefined;
}

/** Stops the synth when the IAM prefix could reach this stack's (or the account's bootstrap) roles. */
export function assertIamPrefixClear(config: DeploymentConfig, stackName: string): void {
  const clash = iamPrefixClash(config.iamPrefix, stackName);
  if (clash) throw new VisibleError("nf-eks-provisioner: the deploy-time configuration is unsafe:", `  - ${clash}`);
}

// ---------------------------------------------------------------- region

/**
 * The region to deploy to, as the AWS CLI would pick it: `--region`, then AWS_REGION, AWS_DEFAULT_REGION, then the
 * profile's `region` (the `--profile` given to sst, else AWS_PROFILE, else default). Without one SST v2 would fall
 * back to us-east-1 whatever the profile says, so no region is an error rather than a silent guess.
 */
export async function deployRegion(input: { region?: string; profile?: string }): Promise<string> {
  const explicit = input.region || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
  if (explicit) return explicit;
  const client = new STSClient({ ...(input.profile ? { profile: input.profile } : {}) });
  try {
    return await client.config.region();
  } catch {
    throw new VisibleError(
      "nf-eks-provisioner: no AWS region to deploy to.",
      "Pass --region (npx sst deploy --stage <stage> --region eu-west-1), set AWS_REGION, or set region in your AWS profile.",
    );
  } finally {
    client.destroy();
  }
}
