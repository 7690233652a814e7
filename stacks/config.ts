/**
 * Deploy-time configuration, read and validated when the stack is synthesized: a bad value stops
 * `sst deploy` before anything reaches CloudFormation, with every problem listed by the variable
 * that holds it. SST loads `.env`, `.env.<stage>` and `.env.<stage>.local` before synth, so a
 * per-stage configuration is simply a `.env.<stage>` file next to sst.config.ts.
 */
import { VisibleError } from "sst/error.js";
import {
  CONFIG_ENV,
  deploymentConfigInput,
  deploymentConfigSchema,
  type DeploymentConfig,
} from "../functions/lib/config.js";
import { problemsOf } from "../functions/lib/request.js";

/** What the operator sets (EVENT_BUS_NAME is not among them: the stack owns the bus and sets it). */
export const DEPLOY_TIME_VARIABLES = [
  CONFIG_ENV.allowedClusters,
  CONFIG_ENV.allowedAccountIds,
  CONFIG_ENV.iamPrefix,
  CONFIG_ENV.permissionsBoundaryArn,
] as const;

/** `allowedClusters.0.region` → `ALLOWED_CLUSTERS[0].region`, so the operator knows which variable to fix. */
export function describeConfigPath(path: string): string {
  const [key, ...rest] = path.split(".");
  const variable = CONFIG_ENV[key as keyof typeof CONFIG_ENV] ?? key;
  return variable + rest.map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`)).join("");
}

/** Every problem with the configuration, one line each; empty when it is valid. */
export function deploymentConfigProblems(env: NodeJS.ProcessEnv): string[] {
  let input: unknown;
  try {
    input = deploymentConfigInput(env);
  } catch (error) {
    // parseClusterList throws on malformed JSON.
    return [`${CONFIG_ENV.allowedClusters}: not a valid list (${(error as Error).message})`];
  }
  const result = deploymentConfigSchema.safeParse(input);
  if (result.success) return [];
  return problemsOf(result.error).map((problem) => `${describeConfigPath(problem.path)}: ${problem.message}`);
}

/** The validated configuration for this stage, or a synth-stopping error that lists what to fix. */
export function deploymentConfigForStage(stage: string, env: NodeJS.ProcessEnv = process.env): DeploymentConfig {
  const problems = deploymentConfigProblems(env);
  if (problems.length) {
    throw new VisibleError(
      `nf-eks-provisioner: the deploy-time configuration for stage "${stage}" is invalid:`,
      ...problems.map((problem) => `  - ${problem}`),
      `Set ${DEPLOY_TIME_VARIABLES.join(", ")} in the environment or in .env.${stage}`,
      `(e.g. ${CONFIG_ENV.allowedClusters}=research@eu-west-1 ${CONFIG_ENV.allowedAccountIds}=111122223333 ${CONFIG_ENV.iamPrefix}=nfeks).`,
    );
  }
  return deploymentConfigSchema.parse(deploymentConfigInput(env));
}
