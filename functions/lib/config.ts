/**
 * Deploy-time configuration, handed to every Lambda through its environment by the stack
 * (and to the sandbox by local/). Validated once: a bad value fails loudly at start, not mid-run.
 */
import { z } from "zod";

export const deploymentConfigSchema = z.object({
  /** Clusters the product may touch: name + region */
  allowedClusters: z.array(z.object({ name: z.string().min(1), region: z.string().min(1) })).min(1),
  /** Account IDs a launcher principal may belong to (the deployment's own account is always allowed) */
  allowedAccountIds: z.array(z.string().regex(/^\d{12}$/, "account IDs are 12 digits")),
  /** Prefix of every IAM role and policy name the product creates */
  iamPrefix: z
    .string()
    .regex(/^[A-Za-z0-9+=,.@_-]{1,20}$/, "iamPrefix is 1-20 characters of [A-Za-z0-9+=,.@_-]"),
  /** When set, every role the product creates carries this permissions boundary */
  permissionsBoundaryArn: z.string().startsWith("arn:").optional(),
  /** The product's event bus (ComputeEnvironmentReady / ComputeEnvironmentFailed) */
  eventBusName: z.string().min(1).default("default"),
});

export type DeploymentConfig = z.infer<typeof deploymentConfigSchema>;

export const CONFIG_ENV = {
  allowedClusters: "ALLOWED_CLUSTERS", // JSON: [{"name":"research","region":"eu-west-1"}] or "research@eu-west-1,..."
  allowedAccountIds: "ALLOWED_ACCOUNT_IDS", // comma-separated
  iamPrefix: "IAM_PREFIX",
  permissionsBoundaryArn: "PERMISSIONS_BOUNDARY_ARN",
  eventBusName: "EVENT_BUS_NAME",
} as const;

export function parseClusterList(value: string): Array<{ name: string; region: string }> {
  const trimmed = value.trim();
  if (trimmed.startsWith("[")) return JSON.parse(trimmed);
  return trimmed
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [name, region] = entry.split("@");
      return { name, region };
    });
}

/** The configuration as the environment spells it, not yet validated (the stack reports problems per variable). */
export function deploymentConfigInput(env: NodeJS.ProcessEnv = process.env): Record<keyof typeof CONFIG_ENV, unknown> {
  return {
    allowedClusters: parseClusterList(env[CONFIG_ENV.allowedClusters] ?? ""),
    allowedAccountIds: (env[CONFIG_ENV.allowedAccountIds] ?? "").split(",").map((s) => s.trim()).filter(Boolean),
    iamPrefix: env[CONFIG_ENV.iamPrefix] ?? "nfeks",
    permissionsBoundaryArn: env[CONFIG_ENV.permissionsBoundaryArn] || undefined,
    eventBusName: env[CONFIG_ENV.eventBusName] || undefined,
  };
}

export function loadDeploymentConfig(env: NodeJS.ProcessEnv = process.env): DeploymentConfig {
  const result = deploymentConfigSchema.safeParse(deploymentConfigInput(env));
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`Invalid deployment configuration: ${problems}`);
  }
  return result.data;
}

export function configToEnv(config: DeploymentConfig): Record<string, string> {
  const env: Record<string, string> = {
    [CONFIG_ENV.allowedClusters]: JSON.stringify(config.allowedClusters),
    [CONFIG_ENV.allowedAccountIds]: config.allowedAccountIds.join(","),
    [CONFIG_ENV.iamPrefix]: config.iamPrefix,
    [CONFIG_ENV.eventBusName]: config.eventBusName,
  };
  if (config.permissionsBoundaryArn) env[CONFIG_ENV.permissionsBoundaryArn] = config.permissionsBoundaryArn;
  return env;
}
