/**
 * The provisioning request: one schema for the HTTP API, the EventBridge entry and the workflow.
 * Every field is validated and an invalid request reports every problem at once, by field path.
 */
import * as z from "zod";
import { InvalidRequest, type Problem } from "./errors.js";
import { parseArn, validateBucketName } from "./arn.js";
import { quantityValue } from "./quantity.js";

export const DEFAULTS = {
  namespace: "tower-nf",
  serviceAccount: "tower-launcher-sa",
  roleName: "tower-launcher-role",
  claimName: "tower-scratch",
  mountPath: "/scratch",
  storageSize: "100Gi",
  nextflowImage: "nextflow/nextflow:24.10.4",
  headCpu: "1",
  headMemory: "2Gi",
  workDirPrefix: "work",
} as const;

export const PROTECTED_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease", "default"] as const;

/** `system:` in any case, after any whitespace: the Kubernetes-reserved prefix we never grant. */
export function isSystemName(value: string): boolean {
  return /^system:/i.test(value.replace(/\s+/g, ""));
}

/** A DNS-1123 label's characters (its length, at most 63, is checked apart). */
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/**
 * Kubernetes resource.Quantity: an optional sign, then digits with at most one decimal point ("5", "1.5",
 * "5.") or a leading-dot decimal (".5"), then an optional decimal exponent ("e3", "E-2") or SI suffix
 * (binary Ki..Ei, decimal n u m k M G T P E). "1.2.3Gi", "." and "1..5Gi" are not quantities.
 */
const QUANTITY = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;
const LABEL_KEY_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const LABEL_VALUE = /^(([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?)$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/;
/** EKS cluster names as CreateCluster accepts them: a letter or digit, then letters, digits, '-' or '_'; 1-100 characters. */
export const EKS_CLUSTER_NAME = /^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/;

/**
 * Size limits, in bytes of the request's JSON. The workflow carries the request in its state next to every
 * step's result, and Step Functions ends an execution whose state passes 256 KiB with
 * States.DataLimitExceeded, which no Catch can take (nothing would be compensated): the request keeps
 * well under it. Pipeline parameters are the one free-form part, so they get a budget of their own.
 */
export const MAX_PARAMS_BYTES = 16 * 1024;
export const MAX_REQUEST_BYTES = 32 * 1024;
/** One environment variable's value (the whole request's limit bounds how many). */
export const MAX_ENV_VALUE_LENGTH = 4096;

/** Bytes of `value` as JSON, or undefined when it has no JSON form (cycles, BigInt). */
function jsonBytes(value: unknown): number | undefined {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? undefined : Buffer.byteLength(text, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * String lengths are checked as refinements, which run on strings only: zod runs its own length checks on any value
 * that has a length, so an array sent for a string would be reported as too short or too long besides its type.
 */
const notEmpty =
  (message = "String must contain at least 1 character(s)") =>
  (v: string) =>
    v.length > 0 || message;

const notSystem = (what: string) => (v: string) => !isSystemName(v) || `${what} must not start with "system:"`;

function refineWith<T extends z.ZodTypeAny>(schema: T, ...checks: Array<(v: z.infer<T>) => true | string>) {
  return schema.superRefine((value, ctx) => {
    for (const check of checks) {
      const result = check(value);
      if (result !== true) ctx.addIssue({ code: z.ZodIssueCode.custom, message: result });
    }
  });
}

export const dnsLabel = (what: string, max = 63) =>
  refineWith(
    z.string(),
    notEmpty(`${what} must not be empty`),
    (v) => v.length <= max || `${what} must be at most ${max} characters`,
    (v) =>
      DNS1123_LABEL.test(v) || `${what} must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)`,
    notSystem(what),
  );

export const dnsSubdomain = (what: string) =>
  refineWith(
    z.string(),
    notEmpty(`${what} must not be empty`),
    (v) => v.length <= 253 || `${what} must be at most 253 characters`,
    (v) => DNS1123_SUBDOMAIN.test(v) || `${what} must be a DNS-1123 subdomain`,
    notSystem(what),
  );

export const quantity = (what: string) =>
  refineWith(
    z.string(),
    (v) => QUANTITY.test(v) || `${what} must be a Kubernetes quantity such as "2Gi" or "500m"`,
    (v) => !(QUANTITY.test(v) && v.startsWith("-")) || `${what} must not be negative`,
  );

const labelKey = refineWith(z.string(), (key) => {
  const [prefix, name, ...rest] = key.includes("/") ? key.split("/") : [undefined, key];
  if (rest.length) return `label key "${key}" has more than one "/"`;
  if (prefix !== undefined && (!DNS1123_SUBDOMAIN.test(prefix) || prefix.length > 253))
    return `label key prefix "${prefix}" must be a DNS-1123 subdomain`;
  if (prefix && /(^|\.)kubernetes\.io$|(^|\.)k8s\.io$/.test(prefix)) return `label key prefix "${prefix}" is reserved`;
  if (!name || name.length > 63 || !LABEL_KEY_NAME.test(name)) return `label key "${key}" is not a valid label name`;
  return true;
});
const labelValue = refineWith(
  z.string(),
  (v) => (v.length <= 63 && LABEL_VALUE.test(v)) || `label value "${v}" is not a valid label value`,
);

const principalArn = refineWith(z.string(), (v) => {
  const arn = parseArn(v);
  if (!arn) return "must be an ARN (arn:partition:service:region:account:resource)";
  if (arn.service !== "iam") return "must be an IAM role or user ARN";
  if (!/^(role|user)\/.+/.test(arn.resource)) return "must name an IAM role (role/...) or user (user/...)";
  if (!/^\d{12}$/.test(arn.accountId)) return "account ID must be 12 digits";
  return true;
});

const bucketName = refineWith(z.string(), (v) => validateBucketName(v) ?? true);

const workDirPrefix = refineWith(
  z.string(),
  (v) => !v.startsWith("/") || "workDir is a key prefix inside the bucket and must not start with '/'",
  (v) => !/(^|\/)\.\.?(\/|$)/.test(v) || "workDir must not contain '.' or '..' segments",
  (v) => v.length <= 512 || "workDir must be at most 512 characters",
  // The workload role's S3 policy is confined to this prefix, so it must be one.
  (v) => v.replace(/\/+$/, "") !== "" || "workDir must not be empty: the tenant's S3 access is confined to it",
  (v) => !/[*?$]/.test(v) || "workDir must not contain '*', '?' or '$': IAM reads them as wildcards and policy variables",
);

const mountPath = refineWith(
  z.string(),
  (v) => (v.startsWith("/") && v !== "/") || "mountPath must be an absolute path other than /",
  (v) => !/(^|\/)\.\.?(\/|$)/.test(v) || "mountPath must not contain '.' or '..' segments",
  (v) => !v.includes(":") || "mountPath must not contain ':'",
);

/** STS external IDs: 2-1224 characters of letters, digits and `+=,.@:/-_`. */
const externalId = refineWith(z.string(), (v) => /^[\w+=,.@:/-]{2,1224}$/.test(v) || "externalId is 2-1224 letters, digits or +=,.@:/-_");

/** Who may assume a created launcher role: these IAM roles or users, each presenting the external ID when one is given. */
const launcherTrustSchema = z
  .object({
    principals: z.array(principalArn).min(1, "name at least one principal").max(10, "at most 10 principals"),
    externalId: externalId.optional(),
  })
  .strict();

export const LAUNCHER_TRUST_REQUIRED =
  'say who may assume the launcher role: "trust": {"principals": [<IAM role or user ARN>, ...], "externalId": <optional>}, ' +
  'or "trustAccount": true to let any principal of the cluster\'s account whose IAM policies allow it';

/**
 * A created launcher trusts exactly whom the request names: `trust` (principals, optional external ID), or the
 * whole account only when asked in so many words (`trustAccount: true`). Neither, or both, is refused.
 */
const launcherSchema = refineWith(
  z.discriminatedUnion("mode", [
    z.object({ mode: z.literal("existing"), principalArn }).strict(),
    z.object({ mode: z.literal("create"), trust: launcherTrustSchema.optional(), trustAccount: z.literal(true).optional() }).strict(),
  ]),
  (launcher) => launcher.mode === "existing" || launcher.trust !== undefined || launcher.trustAccount === true || LAUNCHER_TRUST_REQUIRED,
  (launcher) =>
    launcher.mode === "existing" || !(launcher.trust && launcher.trustAccount) || 'give either "trust" or "trustAccount", not both',
);

const pvcStorageSchema = z
  .object({
    type: z.literal("pvc"),
    storageClass: dnsSubdomain("storageClass").optional(),
    size: quantity("size").default(DEFAULTS.storageSize),
    claimName: dnsSubdomain("claimName").default(DEFAULTS.claimName),
    mountPath: mountPath.default(DEFAULTS.mountPath),
  })
  .strict();

const fusionStorageSchema = z
  .object({
    type: z.literal("fusion"),
    bucket: bucketName,
    workDir: workDirPrefix.default(DEFAULTS.workDirPrefix),
    /** Use an EKS Pod Identity association instead of IRSA (OIDC trust). */
    podIdentity: z.boolean().default(false),
    /** Privileged Fusion task containers (else the FUSE device plugin); only where the deployment allows privileged namespaces. */
    privileged: z.boolean().optional(),
  })
  .strict();

const headJobSchema = z
  .object({
    pipeline: refineWith(
      z.string(),
      notEmpty(),
      (v) => v.length <= 512 || "pipeline must be at most 512 characters",
      (v) => !v.startsWith("-") || "pipeline must not start with '-'",
      (v) => !/[\s\0]/.test(v) || "pipeline must not contain whitespace",
    ),
    revision: refineWith(
      z.string(),
      notEmpty(),
      (v) => /^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$/.test(v) || "revision must be a branch, tag or commit",
    ).optional(),
    profiles: z
      .array(refineWith(z.string(), (v) => /^[A-Za-z0-9_-]+$/.test(v) || "profile names are letters, digits, '_' and '-'"))
      .default([]),
    params: z
      .record(z.string(), z.unknown())
      .default({})
      .superRefine((params, ctx) => {
        const bytes = jsonBytes(params);
        if (bytes === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: "params must be plain JSON" });
        else if (bytes > MAX_PARAMS_BYTES)
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            message: `params are ${bytes} bytes as JSON; at most ${MAX_PARAMS_BYTES} (16 KiB) are accepted`,
          });
      }),
    image: refineWith(z.string(), (v) => /^[a-z0-9]+([._/:@-][a-zA-Z0-9]+)*$/.test(v) || "image must be an OCI image reference").default(
      DEFAULTS.nextflowImage,
    ),
    cpu: quantity("cpu").default(DEFAULTS.headCpu),
    memory: quantity("memory").default(DEFAULTS.headMemory),
    env: z
      .record(
        z.string(),
        refineWith(z.string(), (v) => v.length <= MAX_ENV_VALUE_LENGTH || `env values must be at most ${MAX_ENV_VALUE_LENGTH} characters`),
      )
      .default({})
      .superRefine((env, ctx) => {
        for (const key of Object.keys(env))
          if (!ENV_NAME.test(key))
            ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `env name "${key}" is not a valid variable name` });
      }),
    /** `running`: the workflow ends when the head pod runs; `completed`: when the job succeeds. */
    waitFor: z.enum(["running", "completed"]).default("running"),
    /** How long the workflow waits for the head job to reach `waitFor` (running or completed), in minutes. */
    // Whole minutes checked as a refinement: zod's int() stops at a fraction (0.5 would not also be reported below 1)
    // and bounds integers to the safe range with a message of its own.
    timeoutMinutes: z.number().refine(Number.isInteger, "Expected integer, received float").min(1).max(10080).optional(),
  })
  .strict();

/**
 * A namespace's ResourceQuota, as the request (or the deployment's NAMESPACE_QUOTA) sizes it: CPU (requests), memory
 * (requests and limits) and the number of pods. The namespace's LimitRange supplies what a pod does not ask for.
 */
export const namespaceQuotaSchema = z
  .object({
    cpu: quantity("quota.cpu").optional(),
    memory: quantity("quota.memory").optional(),
    pods: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();
export type NamespaceQuota = z.output<typeof namespaceQuotaSchema>;

/** The namespace's quota: the request's sizes over the deployment's NAMESPACE_QUOTA, field by field; none when neither sizes one. */
export function effectiveNamespaceQuota(
  requested: NamespaceQuota | undefined,
  deploymentDefault: NamespaceQuota | undefined,
): NamespaceQuota | undefined {
  return requested || deploymentDefault ? { ...deploymentDefault, ...requested } : undefined;
}

/**
 * Why the namespace's quota cannot hold the head pod (its requests equal its limits), one problem per resource; none
 * when it fits. A size the request gives is its `quota.<resource>`; one from the deployment's NAMESPACE_QUOTA is the
 * head job's to fit (`headJob.<resource>`), since the caller cannot change the deployment.
 */
export function headPodQuotaProblems(
  head: { cpu: string; memory: string } | undefined,
  requested: NamespaceQuota | undefined,
  deploymentDefault?: NamespaceQuota,
): Problem[] {
  const quota = effectiveNamespaceQuota(requested, deploymentDefault);
  if (!quota || !head) return [];
  const problems: Problem[] = [];
  for (const resource of ["cpu", "memory"] as const) {
    const limit = quota[resource];
    if (limit === undefined || quantityValue(head[resource]) <= quantityValue(limit)) continue;
    problems.push(
      requested?.[resource] !== undefined
        ? { path: `quota.${resource}`, message: `the quota's ${resource} (${limit}) cannot hold the head pod's ${head[resource]}` }
        : {
            path: `headJob.${resource}`,
            message: `the head pod's ${head[resource]} does not fit this deployment's namespace quota (${resource} ${limit})`,
          },
    );
  }
  return problems;
}

const clusterRefSchema = z
  .object({
    name: refineWith(z.string(), (v) => EKS_CLUSTER_NAME.test(v) || "cluster name is 1-100 letters, digits, '-' or '_'"),
    region: refineWith(z.string(), (v) => REGION.test(v) || "region must be an AWS region such as eu-west-1"),
  })
  .strict();

/** Which environment: the tenant and its cluster, as a request names them (the removal event's detail). */
export const environmentRefSchema = z.object({ tenant: dnsLabel("tenant", 40), cluster: clusterRefSchema }).strict();

export const provisionRequestSchema = z
  .object({
    tenant: dnsLabel("tenant", 40),
    cluster: clusterRefSchema,
    namespace: dnsLabel("namespace")
      .refine((v) => !(PROTECTED_NAMESPACES as readonly string[]).includes(v), {
        message: "namespace is protected (kube-system, kube-public, kube-node-lease, default)",
      })
      .default(DEFAULTS.namespace),
    // prefault, not default: an absent launcher is a created one, and is checked as one (it must say whom it trusts).
    launcher: launcherSchema.prefault({ mode: "create" }),
    serviceAccount: dnsSubdomain("serviceAccount").default(DEFAULTS.serviceAccount),
    computeServiceAccount: dnsSubdomain("computeServiceAccount").optional(),
    storage: z.discriminatedUnion("type", [pvcStorageSchema, fusionStorageSchema]),
    headJob: headJobSchema.optional(),
    /** The namespace's ResourceQuota (over the deployment's NAMESPACE_QUOTA, field by field). */
    quota: namespaceQuotaSchema.optional(),
    labels: z
      .record(z.string(), labelValue)
      .default({})
      .superRefine((labels, ctx) => {
        for (const key of Object.keys(labels)) {
          const r = labelKey.safeParse(key);
          if (!r.success) for (const i of r.error.issues) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: i.message });
          if (key.startsWith("nf-eks-provisioner") || key.startsWith("app.kubernetes.io/managed-by"))
            ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `label "${key}" is reserved for ownership marks` });
        }
      }),
    idempotencyKey: refineWith(
      z.string(),
      (v) => /^[A-Za-z0-9_-]{1,64}$/.test(v) || "idempotencyKey is 1-64 letters, digits, '_' or '-'",
    ).optional(),
  })
  .strict()
  .superRefine((req, ctx) => {
    if (req.computeServiceAccount && req.computeServiceAccount === req.serviceAccount)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["computeServiceAccount"],
        message: "computeServiceAccount must differ from serviceAccount",
      });
    for (const problem of headPodQuotaProblems(req.headJob, req.quota)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: problem.path.split("."), message: problem.message });
    }
  });

export type ProvisionRequestInput = z.input<typeof provisionRequestSchema>;
export type ProvisionRequest = z.output<typeof provisionRequestSchema>;
export type PvcStorage = z.output<typeof pvcStorageSchema>;
export type FusionStorage = z.output<typeof fusionStorageSchema>;
export type HeadJobSpec = z.output<typeof headJobSchema>;

export function problemsOf(error: z.ZodError): Problem[] {
  return error.issues.map((issue) => ({ path: issue.path.join("."), message: issue.message }));
}

/** What a JSON value is, in the words of the problems ("array" and "null" apart from "object"). */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

const quoted = (values: readonly unknown[], separator: string) => values.map((v) => `'${String(v)}'`).join(separator);

/**
 * The product's words for the problems zod finds by itself (a missing field, a wrong type, a bound, an unknown key):
 * users read them in 400 answers and operators in the deploy-config report, so they must not change with zod's own
 * wording, which differs between majors. They are the words the API has always answered with. Messages a schema sets
 * (`min(1, "...")`, refinements) come first and are left alone; anything not listed keeps zod's message.
 */
export function productMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return "Required";
      return `Expected ${issue.expected === "record" ? "object" : issue.expected}, received ${kindOf(issue.input)}`;
    case "invalid_value":
      if (typeof issue.input !== "string") return `Expected ${quoted(issue.values, " | ")}, received ${kindOf(issue.input)}`;
      return `Invalid enum value. Expected ${quoted(issue.values, " | ")}, received '${issue.input}'`;
    case "invalid_union":
      if (!issue.discriminator || !("options" in issue) || !Array.isArray(issue.options)) return undefined;
      return `Invalid discriminator value. Expected ${quoted(issue.options, " | ")}`;
    case "unrecognized_keys":
      return `Unrecognized key(s) in object: ${quoted(issue.keys, ", ")}`;
    case "too_small":
      return boundMessage(issue.origin, "at least", "greater than", issue.minimum, issue.inclusive);
    case "too_big":
      return boundMessage(issue.origin, "at most", "less than", issue.maximum, issue.inclusive);
    default:
      return undefined;
  }
}

function boundMessage(origin: string, count: string, compare: string, limit: number | bigint, inclusive = false): string | undefined {
  if (origin === "string") return `String must contain ${count} ${limit} character(s)`;
  if (origin === "array") return `Array must contain ${count} ${limit} element(s)`;
  if (origin === "number" || origin === "int") return `Number must be ${compare} ${inclusive ? "or equal to " : ""}${limit}`;
  return undefined;
}

/**
 * The whole request's size: of the request as the workflow stores it (defaults filled in, so a request the
 * entry accepts is accepted again by every step), or of what was sent when it does not parse, so the size is
 * reported beside the schema's problems.
 */
function sizeProblems(measured: unknown): Problem[] {
  const bytes = jsonBytes(measured);
  if (bytes === undefined || bytes <= MAX_REQUEST_BYTES) return [];
  return [{ path: "", message: `the request is ${bytes} bytes as JSON; at most ${MAX_REQUEST_BYTES} (32 KiB) are accepted` }];
}

/** Validate and apply defaults, or list every problem. */
export function safeParseRequest(input: unknown): { ok: true; request: ProvisionRequest } | { ok: false; problems: Problem[] } {
  const result = provisionRequestSchema.safeParse(input, { error: productMessage });
  const problems = [...sizeProblems(result.success ? result.data : input), ...(result.success ? [] : problemsOf(result.error))];
  return result.success && problems.length === 0 ? { ok: true, request: result.data } : { ok: false, problems };
}

/** Validate and apply defaults, or throw InvalidRequest naming every problem. */
export function parseRequest(input: unknown): ProvisionRequest {
  const result = safeParseRequest(input);
  if (!result.ok) throw new InvalidRequest(result.problems);
  return result.request;
}

/** The head SA and, when asked, the compute SA (in that order). */
export function serviceAccountsOf(request: ProvisionRequest): string[] {
  return [request.serviceAccount, ...(request.computeServiceAccount ? [request.computeServiceAccount] : [])];
}
