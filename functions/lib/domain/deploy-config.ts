/**
 * Deploy-time configuration, handed to every Lambda through its environment by the stack
 * (and to the sandbox by local/). Validated once: a bad value fails loudly at start, not mid-run.
 */
import * as z from "zod";
import { parseArn } from "./arn.js";
import { NotAllowed, type Problem } from "./errors.js";
import { PRODUCT } from "./naming.js";
import { EKS_CLUSTER_NAME, namespaceQuotaSchema, problemsOf, productMessage } from "./request.js";

/** AWS Region codes: eu-west-1, us-gov-west-1, cn-north-1, us-isob-east-1, ... (no wildcard, no spaces). */
export const AWS_REGION_CODE = /^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$/;

/**
 * Why an ARN cannot be the permissions boundary, or undefined when it can: an IAM managed policy
 * (`arn:<partition>:iam::<12-digit account | aws>:policy/<path/name>`). AWS managed policies (account `aws`)
 * may serve as boundaries too.
 */
export function permissionsBoundaryProblem(value: string): string | undefined {
  const arn = parseArn(value);
  if (!arn) return "not an ARN (arn:aws:iam::<account>:policy/<name>)";
  if (arn.service !== "iam") return `an IAM policy ARN is needed, this one is for service ${JSON.stringify(arn.service)}`;
  if (arn.region !== "") return "IAM policy ARNs have no region";
  if (!/^\d{12}$/.test(arn.accountId) && arn.accountId !== "aws")
    return "the account must be 12 digits (or aws, for an AWS managed policy)";
  if (!/^policy\/[\w+=,.@/-]+$/.test(arn.resource) || arn.resource.endsWith("/"))
    return "the resource must be policy/<name> (a managed policy)";
  return undefined;
}

const allowedCluster = z.object({
  name: z
    .string()
    .trim()
    .regex(EKS_CLUSTER_NAME, "an EKS cluster name is 1-100 letters, digits, '-' or '_', starting with a letter or digit"),
  region: z.string().trim().regex(AWS_REGION_CODE, "a region is an AWS Region code such as eu-west-1"),
});

const vpcId = z
  .string()
  .trim()
  .regex(/^vpc-[0-9a-f]{8}([0-9a-f]{9})?$/, "a VPC id is vpc- and 8 or 17 hex digits");
const subnetId = z
  .string()
  .trim()
  .regex(/^subnet-[0-9a-f]{8}([0-9a-f]{9})?$/, "a subnet id is subnet- and 8 or 17 hex digits");
const securityGroupId = z
  .string()
  .trim()
  .regex(/^sg-[0-9a-f]{8}([0-9a-f]{9})?$/, "a security group id is sg- and 8 or 17 hex digits");
/** EventBridge sources: 1-256 characters without whitespace; never the product's own (its events must not loop back). */
const eventSource = z
  .string()
  .trim()
  .regex(/^\S{1,256}$/, "an event source is 1-256 characters without spaces")
  .refine((source) => source !== PRODUCT, `"${PRODUCT}" is the product's own event source: its own events must never start a run`);
/** Pod Security Standards levels, least to most restrictive. */
export const POD_SECURITY_LEVELS = ["privileged", "baseline", "restricted"] as const;
export type PodSecurityLevel = (typeof POD_SECURITY_LEVELS)[number];

/**
 * How the namespaces the product creates are guarded: the Pod Security level they enforce (`baseline` unless the
 * deployment chooses; `privileged` only where it also allows privileged namespaces, which privileged Fusion needs).
 */
const namespaceSettingsShape = {
  podSecurityLevel: z.enum(POD_SECURITY_LEVELS).default("baseline"),
  allowPrivilegedNamespaces: z.boolean().default(false),
  /** Every namespace's ResourceQuota unless the request sizes it (field by field); none when absent. */
  namespaceQuota: namespaceQuotaSchema.optional(),
};

function privilegedOnlyWhereAllowed(
  settings: { podSecurityLevel?: PodSecurityLevel; allowPrivilegedNamespaces?: boolean },
  ctx: z.RefinementCtx,
): void {
  if (settings.podSecurityLevel === "privileged" && !settings.allowPrivilegedNamespaces) {
    ctx.addIssue({ code: "custom", path: ["podSecurityLevel"], message: "privileged namespaces need ALLOW_PRIVILEGED_NAMESPACES=true" });
  }
}

export const namespaceSettingsSchema = z.object(namespaceSettingsShape).superRefine(privilegedOnlyWhereAllowed);
export type NamespaceSettings = z.infer<typeof namespaceSettingsSchema>;

export const deploymentConfigSchema = z
  .object({
    /** Clusters the product may touch: name + region */
    allowedClusters: z.array(allowedCluster).min(1),
    /** Account IDs a launcher principal may belong to (the deployment's own account is always allowed) */
    allowedAccountIds: z.array(
      z
        .string()
        .trim()
        .regex(/^\d{12}$/, "account IDs are 12 digits"),
    ),
    /** Prefix of every IAM role and policy name the product creates */
    iamPrefix: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9+=,.@_-]{1,20}$/, "iamPrefix is 1-20 characters of [A-Za-z0-9+=,.@_-]"),
    /**
     * The permissions boundary every role the product creates carries. The operator's when given; else the stack
     * creates its own tenant-role boundary and hands its ARN to the Lambdas here (never both: one boundary is allowed).
     */
    permissionsBoundaryArn: z
      .string()
      .trim()
      .superRefine((value, ctx) => {
        const problem = permissionsBoundaryProblem(value);
        if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
      })
      .optional(),
    /** The product's event bus (ComputeEnvironmentReady / ComputeEnvironmentFailed) */
    eventBusName: z.string().min(1).default("default"),
    /** The Kubernetes-facing Lambdas run in this VPC (with the two settings below; all three or none): private endpoints */
    kubeStepsVpcId: vpcId.optional(),
    kubeStepsSubnetIds: z.array(subnetId).optional(),
    kubeStepsSecurityGroupIds: z.array(securityGroupId).optional(),
    /** The event sources whose ComputeEnvironmentRequested events start a run (none: onboarding by event is off) */
    onboardingEventSources: z.array(eventSource).optional(),
    // Checked here when the stack is synthesized; the Kubernetes steps read them with loadNamespaceSettings (defaults applied).
    podSecurityLevel: z.enum(POD_SECURITY_LEVELS).optional(),
    allowPrivilegedNamespaces: z.boolean().optional(),
    namespaceQuota: namespaceQuotaSchema.optional(),
    /** The STS endpoint EKS bearer tokens are presigned for, instead of the regional one (functions/lib/aws/eks-token.ts) */
    eksTokenStsEndpoint: z
      .string()
      .trim()
      .refine(
        (value) => /^https:\/\/[^/?#]+\/?$/.test(value),
        "an https:// STS endpoint with no path, e.g. https://sts-fips.us-east-1.amazonaws.com",
      )
      .optional(),
  })
  .superRefine((config, ctx) => {
    const given = [config.kubeStepsVpcId !== undefined, !!config.kubeStepsSubnetIds?.length, !!config.kubeStepsSecurityGroupIds?.length];
    if (given.some(Boolean) && !given.every(Boolean)) {
      const path = [["kubeStepsVpcId"], ["kubeStepsSubnetIds"], ["kubeStepsSecurityGroupIds"]][given.indexOf(false)]!;
      ctx.addIssue({
        code: "custom",
        path,
        message: `set ${VPC_VARIABLES.join(", ")} together (the Lambdas' VPC, subnets and security groups), or none`,
      });
    }
    privilegedOnlyWhereAllowed(config, ctx);
  });

export type DeploymentConfig = z.infer<typeof deploymentConfigSchema>;

export const CONFIG_ENV = {
  allowedClusters: "ALLOWED_CLUSTERS", // JSON: [{"name":"research","region":"eu-west-1"}] or "research@eu-west-1,..."
  allowedAccountIds: "ALLOWED_ACCOUNT_IDS", // comma-separated
  iamPrefix: "IAM_PREFIX",
  permissionsBoundaryArn: "PERMISSIONS_BOUNDARY_ARN",
  eventBusName: "EVENT_BUS_NAME",
  kubeStepsVpcId: "KUBE_STEPS_VPC_ID",
  kubeStepsSubnetIds: "KUBE_STEPS_SUBNET_IDS", // comma-separated
  kubeStepsSecurityGroupIds: "KUBE_STEPS_SECURITY_GROUP_IDS", // comma-separated
  onboardingEventSources: "ONBOARDING_EVENT_SOURCES", // comma-separated
  podSecurityLevel: "POD_SECURITY_LEVEL", // baseline (default), restricted, privileged
  allowPrivilegedNamespaces: "ALLOW_PRIVILEGED_NAMESPACES", // true | false (default)
  namespaceQuota: "NAMESPACE_QUOTA", // JSON: {"cpu":"16","memory":"64Gi","pods":200}
  eksTokenStsEndpoint: "EKS_TOKEN_STS_ENDPOINT", // https://sts-fips.<region>.amazonaws.com (default: the regional endpoint)
} as const;

const VPC_VARIABLES = [CONFIG_ENV.kubeStepsVpcId, CONFIG_ENV.kubeStepsSubnetIds, CONFIG_ENV.kubeStepsSecurityGroupIds];

/** Where the Kubernetes-facing Lambdas run: in a VPC of the account (subnets, security groups), or outside any VPC. */
export type KubeStepsPlacement = { vpcId: string; subnetIds: string[]; securityGroupIds: string[] } | undefined;

export function kubeStepsPlacement(config: DeploymentConfig): KubeStepsPlacement {
  const { kubeStepsVpcId: vpcId, kubeStepsSubnetIds: subnetIds, kubeStepsSecurityGroupIds: securityGroupIds } = config;
  return vpcId && subnetIds?.length && securityGroupIds?.length ? { vpcId, subnetIds, securityGroupIds } : undefined;
}

/** The variable the stack hands the entry Lambdas (provision, status, events): this deployment's state machine. */
export const STATE_MACHINE_ARN_ENV = "STATE_MACHINE_ARN";
/** The teardown workflow (statemachines/deprovision.asl.json) the DELETE route and the removal event start. */
export const DEPROVISION_STATE_MACHINE_ARN_ENV = "DEPROVISION_STATE_MACHINE_ARN";
/** The detail-type of the event that asks for an environment's removal (the stack's rule matches it, the handler checks it). */
export const COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED = "ComputeEnvironmentRemovalRequested";

/** The detail-type of the event that asks for a compute environment (the stack's rule matches it, the handler checks it). */
export const COMPUTE_ENVIRONMENT_REQUESTED = "ComputeEnvironmentRequested";

/**
 * The onboarding rule's event pattern: ComputeEnvironmentRequested from the allowed sources only, or undefined
 * when none is allowed (then there is no rule). The product's own source is never allowed (the schema refuses it).
 */
export function onboardingEventPattern(config: DeploymentConfig): { source: string[]; detailType: string[] } | undefined {
  if (!config.onboardingEventSources?.length) return undefined;
  return { source: [...config.onboardingEventSources], detailType: [COMPUTE_ENVIRONMENT_REQUESTED] };
}

/** The rule for removal events: the same sources as onboarding (ONBOARDING_EVENT_SOURCES); none, no rule. */
export function removalEventPattern(config: DeploymentConfig): { source: string[]; detailType: string[] } | undefined {
  if (!config.onboardingEventSources?.length) return undefined;
  return { source: [...config.onboardingEventSources], detailType: [COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED] };
}

/**
 * `research@eu-west-1, genomics@us-east-1` or a JSON list of {name, region}. Throws on malformed JSON and on an
 * entry with more than one `@` (which half is the region is then a guess); the schema judges names and regions.
 */
export function parseClusterList(value: string): Array<{ name: string; region?: string }> {
  const trimmed = value.trim();
  if (trimmed.startsWith("[")) return JSON.parse(trimmed);
  return trimmed
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [name, region, ...extra] = entry.split("@");
      if (extra.length) throw new Error(`${JSON.stringify(entry)} has more than one "@": write each cluster as <name>@<region>`);
      return { name: name.trim(), region: region?.trim() };
    });
}

/** The configuration as the environment spells it, not yet validated. */
export function deploymentConfigInput(env: NodeJS.ProcessEnv = process.env): Record<keyof typeof CONFIG_ENV, unknown> {
  return {
    allowedClusters: parseClusterList(env[CONFIG_ENV.allowedClusters] ?? ""),
    allowedAccountIds: (env[CONFIG_ENV.allowedAccountIds] ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    iamPrefix: env[CONFIG_ENV.iamPrefix]?.trim() || "nfeks",
    permissionsBoundaryArn: env[CONFIG_ENV.permissionsBoundaryArn]?.trim() || undefined,
    eventBusName: env[CONFIG_ENV.eventBusName] || undefined,
    kubeStepsVpcId: env[CONFIG_ENV.kubeStepsVpcId]?.trim() || undefined,
    kubeStepsSubnetIds: commaList(env[CONFIG_ENV.kubeStepsSubnetIds]),
    kubeStepsSecurityGroupIds: commaList(env[CONFIG_ENV.kubeStepsSecurityGroupIds]),
    onboardingEventSources: commaList(env[CONFIG_ENV.onboardingEventSources]),
    eksTokenStsEndpoint: env[CONFIG_ENV.eksTokenStsEndpoint]?.trim() || undefined,
    ...namespaceSettingsInput(env),
  };
}

/** A comma-separated list; unset or empty: undefined (the setting is not given). */
function commaList(value: string | undefined): string[] | undefined {
  const items = (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length > 0 ? items : undefined;
}

/** `true`/`false` as booleans; anything else is left for the schema to name. */
function booleanInput(value: string | undefined): unknown {
  const trimmed = value?.trim().toLowerCase();
  if (!trimmed) return undefined;
  return trimmed === "true" ? true : trimmed === "false" ? false : value;
}

/** JSON, or the text itself when it is not JSON (the schema then says what was expected). */
function jsonInput(value: string | undefined): unknown {
  if (!value?.trim()) return undefined;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function namespaceSettingsInput(env: NodeJS.ProcessEnv): Record<keyof typeof namespaceSettingsShape, unknown> {
  return {
    podSecurityLevel: env[CONFIG_ENV.podSecurityLevel]?.trim() || undefined,
    allowPrivilegedNamespaces: booleanInput(env[CONFIG_ENV.allowPrivilegedNamespaces]),
    namespaceQuota: jsonInput(env[CONFIG_ENV.namespaceQuota]),
  };
}

/** The namespace settings alone (what the Kubernetes steps read), validated like the whole configuration. */
export function loadNamespaceSettings(env: NodeJS.ProcessEnv = process.env): NamespaceSettings {
  const result = namespaceSettingsSchema.safeParse(namespaceSettingsInput(env), { error: productMessage });
  if (result.success) return result.data;
  throw new Error(
    `Invalid deployment configuration: ${problemsOf(result.error)
      .map((p) => `${p.path}: ${p.message}`)
      .join("; ")}`,
  );
}

/**
 * The validated configuration, or what is wrong with it: `listError` when the cluster list cannot be read at all
 * (malformed JSON, an entry with two `@`), else every problem the schema finds, by path. Callers word the report.
 */
export type DeploymentConfigCheck = { config: DeploymentConfig } | { listError: Error } | { problems: Problem[] };

export function checkDeploymentConfig(env: NodeJS.ProcessEnv = process.env): DeploymentConfigCheck {
  let input: Record<keyof typeof CONFIG_ENV, unknown>;
  try {
    input = deploymentConfigInput(env);
  } catch (error) {
    return { listError: error as Error };
  }
  const result = deploymentConfigSchema.safeParse(input, { error: productMessage });
  return result.success ? { config: result.data } : { problems: problemsOf(result.error) };
}

export function loadDeploymentConfig(env: NodeJS.ProcessEnv = process.env): DeploymentConfig {
  const checked = checkDeploymentConfig(env);
  if ("config" in checked) return checked.config;
  if ("listError" in checked) {
    throw new Error(`Invalid deployment configuration: allowedClusters: ${checked.listError.message}`, { cause: checked.listError });
  }
  const problems = checked.problems.map((problem) => `${problem.path}: ${problem.message}`).join("; ");
  throw new Error(`Invalid deployment configuration: ${problems}`);
}

/**
 * The one permissions boundary every tenant role carries. The deployed stack always sets it (the operator's or its
 * own); without it the IAM step refuses to create or change a role rather than leave one unbounded.
 */
export function tenantRoleBoundary(config: DeploymentConfig): string {
  if (config.permissionsBoundaryArn) return config.permissionsBoundaryArn;
  throw new NotAllowed(
    `this deployment sets no ${CONFIG_ENV.permissionsBoundaryArn}: the product creates no IAM role without a permissions boundary ` +
      "(the stack sets its own tenant-role boundary when the operator names none; redeploy it)",
  );
}

export function configToEnv(config: DeploymentConfig): Record<string, string> {
  const env: Record<string, string> = {
    [CONFIG_ENV.allowedClusters]: JSON.stringify(config.allowedClusters),
    [CONFIG_ENV.allowedAccountIds]: config.allowedAccountIds.join(","),
    [CONFIG_ENV.iamPrefix]: config.iamPrefix,
    [CONFIG_ENV.eventBusName]: config.eventBusName,
  };
  if (config.permissionsBoundaryArn) env[CONFIG_ENV.permissionsBoundaryArn] = config.permissionsBoundaryArn;
  const placement = kubeStepsPlacement(config);
  if (placement) {
    env[CONFIG_ENV.kubeStepsVpcId] = placement.vpcId;
    env[CONFIG_ENV.kubeStepsSubnetIds] = placement.subnetIds.join(",");
    env[CONFIG_ENV.kubeStepsSecurityGroupIds] = placement.securityGroupIds.join(",");
  }
  if (config.onboardingEventSources?.length) env[CONFIG_ENV.onboardingEventSources] = config.onboardingEventSources.join(",");
  if (config.podSecurityLevel) env[CONFIG_ENV.podSecurityLevel] = config.podSecurityLevel;
  if (config.allowPrivilegedNamespaces !== undefined) env[CONFIG_ENV.allowPrivilegedNamespaces] = String(config.allowPrivilegedNamespaces);
  if (config.namespaceQuota) env[CONFIG_ENV.namespaceQuota] = JSON.stringify(config.namespaceQuota);
  if (config.eksTokenStsEndpoint) env[CONFIG_ENV.eksTokenStsEndpoint] = config.eksTokenStsEndpoint;
  return env;
}
