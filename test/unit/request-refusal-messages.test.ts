/**
 * The exact problems (path and message) of a refused provisioning request, as the parser reports them and as users
 * read them in a 400 answer. These words are the product's: written down before zod 4 (whose built-in messages differ)
 * so that a dependency move cannot change what users read. One case per kind of failure the schemas can produce.
 * The 400 answer of POST /provision: provision-bad-request.test.ts; the deploy configuration's: deploy-config-messages.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { Problem } from "../../functions/lib/domain/errors.js";
import { REQUEST as MINIMAL } from "../support/fixtures.js";
import { LAUNCHER_TRUST, problemsFor } from "../support/request-problems.js";

const withHeadJob = (headJob: unknown) => ({ ...MINIMAL, headJob });

type Refusal = [name: string, body: unknown, problems: Problem[]];

const REQUEST_REFUSALS: Record<string, Refusal[]> = {
  "a body that is no object": [
    ["null body", null, [{ path: "", message: "Expected object, received null" }]],
    ["array body", [], [{ path: "", message: "Expected object, received array" }]],
    ["string body", "tenant", [{ path: "", message: "Expected object, received string" }]],
  ],
  "a required field missing": [
    [
      "empty object",
      {},
      [
        { path: "tenant", message: "Required" },
        { path: "cluster", message: "Required" },
        LAUNCHER_TRUST,
        { path: "storage", message: "Required" },
      ],
    ],
    [
      "cluster missing fields",
      { ...MINIMAL, cluster: {} },
      [
        { path: "cluster.name", message: "Required" },
        { path: "cluster.region", message: "Required" },
      ],
    ],
    ["storage missing", { ...MINIMAL, storage: undefined }, [{ path: "storage", message: "Required" }]],
    [
      "launcher missing (a created one that names no one to trust)",
      { tenant: "genomics", cluster: MINIMAL.cluster, storage: { type: "pvc" } },
      [LAUNCHER_TRUST],
    ],
    [
      "launcher existing without principal",
      { ...MINIMAL, launcher: { mode: "existing" } },
      [{ path: "launcher.principalArn", message: "Required" }],
    ],
    ["storage fusion missing bucket", { ...MINIMAL, storage: { type: "fusion" } }, [{ path: "storage.bucket", message: "Required" }]],
    ["headJob missing pipeline", withHeadJob({}), [{ path: "headJob.pipeline", message: "Required" }]],
  ],
  "a value of the wrong type": [
    ["tenant wrong type", { ...MINIMAL, tenant: 42 }, [{ path: "tenant", message: "Expected string, received number" }]],
    ["cluster wrong type", { ...MINIMAL, cluster: "research" }, [{ path: "cluster", message: "Expected object, received string" }]],
    ["namespace null", { ...MINIMAL, namespace: null }, [{ path: "namespace", message: "Expected string, received null" }]],
    [
      "boolean for string",
      { ...MINIMAL, serviceAccount: true },
      [{ path: "serviceAccount", message: "Expected string, received boolean" }],
    ],
    ["launcher wrong type", { ...MINIMAL, launcher: "create" }, [{ path: "launcher", message: "Expected object, received string" }]],
    [
      "principal wrong type",
      { ...MINIMAL, launcher: { mode: "existing", principalArn: 5 } },
      [{ path: "launcher.principalArn", message: "Expected string, received number" }],
    ],
    [
      "storage fusion podIdentity wrong type",
      { ...MINIMAL, storage: { type: "fusion", bucket: "my-bucket", podIdentity: "yes" } },
      [{ path: "storage.podIdentity", message: "Expected boolean, received string" }],
    ],
    [
      "storage pvc size wrong type",
      { ...MINIMAL, storage: { type: "pvc", size: 100 } },
      [{ path: "storage.size", message: "Expected string, received number" }],
    ],
    ["headJob wrong type", withHeadJob("nf-core/rnaseq"), [{ path: "headJob", message: "Expected object, received string" }]],
    [
      "headJob profiles not array",
      withHeadJob({ pipeline: "p", profiles: "test" }),
      [{ path: "headJob.profiles", message: "Expected array, received string" }],
    ],
    [
      "headJob profile wrong type",
      withHeadJob({ pipeline: "p", profiles: ["ok", 5] }),
      [{ path: "headJob.profiles.1", message: "Expected string, received number" }],
    ],
    [
      "headJob params array",
      withHeadJob({ pipeline: "p", params: [1] }),
      [{ path: "headJob.params", message: "Expected object, received array" }],
    ],
    [
      "headJob params string",
      withHeadJob({ pipeline: "p", params: "x=1" }),
      [{ path: "headJob.params", message: "Expected object, received string" }],
    ],
    [
      "headJob env value number",
      withHeadJob({ pipeline: "p", env: { A: 1 } }),
      [{ path: "headJob.env.A", message: "Expected string, received number" }],
    ],
    [
      "headJob cpu wrong type",
      withHeadJob({ pipeline: "p", cpu: 2 }),
      [{ path: "headJob.cpu", message: "Expected string, received number" }],
    ],
    [
      "headJob timeout string",
      withHeadJob({ pipeline: "p", timeoutMinutes: "30" }),
      [{ path: "headJob.timeoutMinutes", message: "Expected number, received string" }],
    ],
    [
      "headJob timeout NaN-ish",
      withHeadJob({ pipeline: "p", timeoutMinutes: null }),
      [{ path: "headJob.timeoutMinutes", message: "Expected number, received null" }],
    ],
    ["labels wrong type", { ...MINIMAL, labels: ["a"] }, [{ path: "labels", message: "Expected object, received array" }]],
    ["labels value number", { ...MINIMAL, labels: { team: 1 } }, [{ path: "labels.team", message: "Expected string, received number" }]],
    [
      "idempotencyKey wrong type",
      { ...MINIMAL, idempotencyKey: 7 },
      [{ path: "idempotencyKey", message: "Expected string, received number" }],
    ],
  ],
  "an enum value or a union's discriminator that is not one of the choices": [
    [
      "headJob waitFor bad enum",
      withHeadJob({ pipeline: "p", waitFor: "done" }),
      [{ path: "headJob.waitFor", message: "Invalid enum value. Expected 'running' | 'completed', received 'done'" }],
    ],
    [
      "headJob waitFor wrong type",
      withHeadJob({ pipeline: "p", waitFor: 1 }),
      [{ path: "headJob.waitFor", message: "Expected 'running' | 'completed', received number" }],
    ],
    [
      "launcher missing mode",
      { ...MINIMAL, launcher: {} },
      [{ path: "launcher.mode", message: "Invalid discriminator value. Expected 'existing' | 'create'" }],
    ],
    [
      "launcher bad mode",
      { ...MINIMAL, launcher: { mode: "assume" } },
      [{ path: "launcher.mode", message: "Invalid discriminator value. Expected 'existing' | 'create'" }],
    ],
    [
      "storage bad type",
      { ...MINIMAL, storage: { type: "s3" } },
      [{ path: "storage.type", message: "Invalid discriminator value. Expected 'pvc' | 'fusion'" }],
    ],
    [
      "storage missing type",
      { ...MINIMAL, storage: { bucket: "b" } },
      [{ path: "storage.type", message: "Invalid discriminator value. Expected 'pvc' | 'fusion'" }],
    ],
  ],
  "a string too short or too long, a number out of bounds": [
    [
      "tenant empty",
      { ...MINIMAL, tenant: "" },
      [
        { path: "tenant", message: "tenant must not be empty" },
        {
          path: "tenant",
          message: "tenant must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)",
        },
      ],
    ],
    ["tenant too long", { ...MINIMAL, tenant: "a".repeat(41) }, [{ path: "tenant", message: "tenant must be at most 40 characters" }]],
    [
      "empty namespace",
      { ...MINIMAL, namespace: "" },
      [
        { path: "namespace", message: "namespace must not be empty" },
        {
          path: "namespace",
          message: "namespace must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)",
        },
      ],
    ],
    [
      "headJob empty pipeline",
      withHeadJob({ pipeline: "" }),
      [{ path: "headJob.pipeline", message: "String must contain at least 1 character(s)" }],
    ],
    [
      "headJob empty revision",
      withHeadJob({ pipeline: "p", revision: "" }),
      [
        { path: "headJob.revision", message: "String must contain at least 1 character(s)" },
        { path: "headJob.revision", message: "revision must be a branch, tag or commit" },
      ],
    ],
    [
      "headJob env value too long",
      withHeadJob({ pipeline: "p", env: { A: "x".repeat(4097) } }),
      [{ path: "headJob.env.A", message: "env values must be at most 4096 characters" }],
    ],
    [
      "labels value too long",
      { ...MINIMAL, labels: { team: "x".repeat(64) } },
      [
        {
          path: "labels.team",
          message: 'label value "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" is not a valid label value',
        },
      ],
    ],
    [
      "headJob timeout zero",
      withHeadJob({ pipeline: "p", timeoutMinutes: 0 }),
      [{ path: "headJob.timeoutMinutes", message: "Number must be greater than or equal to 1" }],
    ],
    [
      "headJob timeout too big",
      withHeadJob({ pipeline: "p", timeoutMinutes: 10081 }),
      [{ path: "headJob.timeoutMinutes", message: "Number must be less than or equal to 10080" }],
    ],
    [
      "headJob timeout fraction",
      withHeadJob({ pipeline: "p", timeoutMinutes: 1.5 }),
      [{ path: "headJob.timeoutMinutes", message: "Expected integer, received float" }],
    ],
    [
      "headJob timeout a fraction below the minimum",
      withHeadJob({ pipeline: "p", timeoutMinutes: 0.5 }),
      [
        { path: "headJob.timeoutMinutes", message: "Expected integer, received float" },
        { path: "headJob.timeoutMinutes", message: "Number must be greater than or equal to 1" },
      ],
    ],
    [
      "headJob timeout past the safe integers",
      withHeadJob({ pipeline: "p", timeoutMinutes: 1e20 }),
      [{ path: "headJob.timeoutMinutes", message: "Number must be less than or equal to 10080" }],
    ],
    [
      "an array for a string with a length bound (its type only, no length problem)",
      { ...MINIMAL, namespace: [], headJob: { pipeline: [], revision: [], env: { A: Array(4097).fill(0) } } },
      [
        { path: "namespace", message: "Expected string, received array" },
        { path: "headJob.pipeline", message: "Expected string, received array" },
        { path: "headJob.revision", message: "Expected string, received array" },
        { path: "headJob.env.A", message: "Expected string, received array" },
      ],
    ],
  ],
  "a key the schema does not know": [
    [
      "root unknown keys",
      { ...MINIMAL, extra: 1, another: true },
      [{ path: "", message: "Unrecognized key(s) in object: 'extra', 'another'" }],
    ],
    [
      "cluster unknown key",
      { ...MINIMAL, cluster: { name: "research", region: "eu-west-1", account: "1" } },
      [{ path: "cluster", message: "Unrecognized key(s) in object: 'account'" }],
    ],
    [
      "launcher create with principal",
      { ...MINIMAL, launcher: { mode: "create", principalArn: "arn:aws:iam::111122223333:role/x" } },
      // Issue #9: a created launcher without trust is also told whom it must name.
      [{ path: "launcher", message: "Unrecognized key(s) in object: 'principalArn'" }, LAUNCHER_TRUST],
    ],
    [
      "storage pvc unknown key",
      { ...MINIMAL, storage: { type: "pvc", bucket: "my-bucket" } },
      [{ path: "storage", message: "Unrecognized key(s) in object: 'bucket'" }],
    ],
    [
      "headJob unknown key",
      withHeadJob({ pipeline: "p", command: "rm" }),
      [{ path: "headJob", message: "Unrecognized key(s) in object: 'command'" }],
    ],
  ],
  "the product's own checks (patterns and refinements)": [
    [
      "idempotencyKey bad",
      { ...MINIMAL, idempotencyKey: "a b" },
      [{ path: "idempotencyKey", message: "idempotencyKey is 1-64 letters, digits, '_' or '-'" }],
    ],
    [
      "computeServiceAccount same",
      { ...MINIMAL, computeServiceAccount: "tower-launcher-sa" },
      [{ path: "computeServiceAccount", message: "computeServiceAccount must differ from serviceAccount" }],
    ],
    [
      "protected namespace that is no DNS label",
      { ...MINIMAL, namespace: "Default" },
      [
        {
          path: "namespace",
          message: "namespace must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)",
        },
      ],
    ],
    [
      "bucket and workDir bad",
      { ...MINIMAL, storage: { type: "fusion", bucket: "Bad_Bucket", workDir: "/../x" } },
      [
        { path: "storage.bucket", message: "bucket name may hold only lower-case letters, digits, '.' and '-'" },
        { path: "storage.workDir", message: "workDir is a key prefix inside the bucket and must not start with '/'" },
        { path: "storage.workDir", message: "workDir must not contain '.' or '..' segments" },
      ],
    ],
    [
      "quantity negative and not a quantity",
      { ...MINIMAL, storage: { type: "pvc", size: "-1Gi" }, headJob: { pipeline: "p", cpu: "two" } },
      [
        { path: "storage.size", message: "size must not be negative" },
        { path: "headJob.cpu", message: 'cpu must be a Kubernetes quantity such as "2Gi" or "500m"' },
      ],
    ],
  ],
  "several problems at once, in the order they are reported": [
    [
      "missing field and unknown key together",
      { tenant: "genomics", storage: { type: "pvc" }, extra: 1 },
      [{ path: "cluster", message: "Required" }, LAUNCHER_TRUST, { path: "", message: "Unrecognized key(s) in object: 'extra'" }],
    ],
    [
      "bad field and unknown key in one object",
      withHeadJob({ pipeline: "p", waitFor: "later", timeoutMinutes: 0, command: "rm" }),
      [
        { path: "headJob.waitFor", message: "Invalid enum value. Expected 'running' | 'completed', received 'later'" },
        { path: "headJob.timeoutMinutes", message: "Number must be greater than or equal to 1" },
        { path: "headJob", message: "Unrecognized key(s) in object: 'command'" },
      ],
    ],
    [
      "refinement problems beside a same-account problem",
      { ...MINIMAL, tenant: "Bad_Tenant", computeServiceAccount: "tower-launcher-sa" },
      [
        {
          path: "tenant",
          message: "tenant must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)",
        },
        { path: "computeServiceAccount", message: "computeServiceAccount must differ from serviceAccount" },
      ],
    ],
    [
      "wrong type beside a same-account problem",
      { ...MINIMAL, tenant: 42, computeServiceAccount: "tower-launcher-sa" },
      [{ path: "tenant", message: "Expected string, received number" }],
    ],
    [
      "env: bad value and bad name",
      withHeadJob({ pipeline: "p", env: { "1BAD": 1, GOOD: "x".repeat(4097) } }),
      [
        { path: "headJob.env.1BAD", message: "Expected string, received number" },
        { path: "headJob.env.GOOD", message: "env values must be at most 4096 characters" },
      ],
    ],
    [
      "labels: bad value and reserved key",
      { ...MINIMAL, labels: { "nf-eks-provisioner/x": 1, "kubernetes.io/y": "ok" } },
      [{ path: "labels.nf-eks-provisioner/x", message: "Expected string, received number" }],
    ],
    [
      "many problems across the body",
      {
        tenant: "",
        cluster: { name: "*", region: 1 },
        launcher: { mode: "existing" },
        storage: { type: "fusion" },
        headJob: { pipeline: 1, profiles: [""], params: null, waitFor: null },
        labels: null,
        idempotencyKey: "",
      },
      [
        { path: "tenant", message: "tenant must not be empty" },
        {
          path: "tenant",
          message: "tenant must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)",
        },
        { path: "cluster.name", message: "cluster name is 1-100 letters, digits, '-' or '_'" },
        { path: "cluster.region", message: "Expected string, received number" },
        { path: "launcher.principalArn", message: "Required" },
        { path: "storage.bucket", message: "Required" },
        { path: "headJob.pipeline", message: "Expected string, received number" },
        { path: "headJob.profiles.0", message: "profile names are letters, digits, '_' and '-'" },
        { path: "headJob.params", message: "Expected object, received null" },
        { path: "headJob.waitFor", message: "Expected 'running' | 'completed', received null" },
        { path: "labels", message: "Expected object, received null" },
        { path: "idempotencyKey", message: "idempotencyKey is 1-64 letters, digits, '_' or '-'" },
      ],
    ],
  ],
};

describe("the problems of a refused provisioning request, word for word", () => {
  for (const [kind, refusals] of Object.entries(REQUEST_REFUSALS)) {
    describe(kind, () => {
      it.each(refusals)("%s", (_name, body, problems) => {
        // Act
        const reported = problemsFor(body);
        // Assess
        expect(reported).toEqual(problems);
      });
    });
  }
});
