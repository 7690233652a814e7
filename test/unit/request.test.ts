import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  DEFAULTS,
  isSystemName,
  MAX_PARAMS_BYTES,
  MAX_REQUEST_BYTES,
  parseRequest,
  safeParseRequest,
} from "../../functions/lib/domain/request.js";
import { InvalidRequest } from "../../functions/lib/domain/errors.js";

/** The smallest valid request (a created launcher must say whom it trusts: here the account, explicitly). */
const minimal = {
  tenant: "genomics",
  cluster: { name: "research", region: "eu-west-1" },
  launcher: { mode: "create", trustAccount: true },
  storage: { type: "pvc" },
};

function problemsFor(input: unknown): Array<{ path: string; message: string }> {
  const result = safeParseRequest(input);
  if (result.ok) throw new Error("expected the request to be refused");
  return result.problems;
}

describe("provision request schema", () => {
  it("fills the Seqera runbook defaults", () => {
    // Act
    const request = parseRequest({ ...minimal, headJob: { pipeline: "nf-core/rnaseq" } });
    // Assess
    expect(request.namespace).toBe("tower-nf");
    expect(request.serviceAccount).toBe("tower-launcher-sa");
    expect(request.launcher).toEqual({ mode: "create", trustAccount: true });
    expect(request.storage).toEqual({ type: "pvc", size: DEFAULTS.storageSize, claimName: "tower-scratch", mountPath: "/scratch" });
    expect(request.headJob).toMatchObject({ pipeline: "nf-core/rnaseq", cpu: "1", memory: "2Gi", waitFor: "running", profiles: [] });
  });

  it("accepts a Fusion tenant with an existing launcher role", () => {
    // Act
    const request = parseRequest({
      ...minimal,
      launcher: { mode: "existing", principalArn: "arn:aws:iam::111122223333:role/seqera/launcher" },
      storage: { type: "fusion", bucket: "my-work.bucket-1", workDir: "runs/genomics" },
      computeServiceAccount: "tower-compute-sa",
    });
    // Assess
    expect(request.storage).toEqual({ type: "fusion", bucket: "my-work.bucket-1", workDir: "runs/genomics", podIdentity: false });
    expect(request.computeServiceAccount).toBe("tower-compute-sa");
  });

  it("lists every problem at once, by field path", () => {
    // Prepare
    const bad = {
      tenant: "Bad_Tenant",
      cluster: { name: "", region: "mars-1" },
      namespace: "kube-system",
      serviceAccount: "system:evil",
      launcher: { mode: "existing", principalArn: "arn:aws:s3:::bucket" },
      storage: { type: "fusion", bucket: "Not..A.Bucket" },
      headJob: { pipeline: "-oops", cpu: "lots", memory: "2 GB", env: { "1BAD": "x" } },
      labels: { "kubernetes.io/x": "y", "nf-eks-provisioner/tenant": "z" },
    };
    // Act
    const paths = problemsFor(bad).map((p) => p.path);
    // Assess
    for (const path of [
      "tenant",
      "cluster.name",
      "cluster.region",
      "namespace",
      "serviceAccount",
      "launcher.principalArn",
      "storage.bucket",
      "headJob.pipeline",
      "headJob.cpu",
      "headJob.memory",
      "headJob.env.1BAD",
      "labels.kubernetes.io/x",
      "labels.nf-eks-provisioner/tenant",
    ])
      expect(paths).toContain(path);
  });

  it.each(["kube-system", "kube-public", "kube-node-lease", "default"])("refuses the protected namespace %s", (namespace) => {
    expect(problemsFor({ ...minimal, namespace })).toEqual([
      expect.objectContaining({ path: "namespace", message: expect.stringContaining("protected") }),
    ]);
  });

  it.each(["system:masters", "SYSTEM:masters", " system:nodes", "sys tem:x", "System :x"])(
    "refuses the system: name %j as a service account",
    (name) => {
      expect(problemsFor({ ...minimal, serviceAccount: name }).some((p) => p.path === "serviceAccount")).toBe(true);
      expect(isSystemName(name)).toBe(true);
    },
  );

  it.each([
    ["arn:aws:iam::123:role/x", "12 digits"],
    ["arn:aws:iam::111122223333:group/x", "role"],
    ["arn:aws:sts::111122223333:assumed-role/x/y", "IAM role or user"],
    ["not-an-arn", "must be an ARN"],
  ])("refuses the launcher principal %s", (principalArn, message) => {
    const problems = problemsFor({ ...minimal, launcher: { mode: "existing", principalArn } });
    expect(problems).toEqual([expect.objectContaining({ path: "launcher.principalArn", message: expect.stringContaining(message) })]);
  });

  it.each(["ab", "a".repeat(64), "UPPER", "192.168.1.1", "xn--bucket", "bucket-s3alias", "-bucket", "a..b"])(
    "refuses the bucket name %s",
    (bucket) => {
      expect(problemsFor({ ...minimal, storage: { type: "fusion", bucket } }).map((p) => p.path)).toEqual(["storage.bucket"]);
    },
  );

  it("refuses unknown fields instead of ignoring them", () => {
    expect(problemsFor({ ...minimal, clusterRole: "cluster-admin" })[0].message).toMatch(/clusterRole/);
  });

  it("refuses a compute service account equal to the head one", () => {
    expect(problemsFor({ ...minimal, computeServiceAccount: "tower-launcher-sa" }).map((p) => p.path)).toEqual(["computeServiceAccount"]);
  });

  it("parseRequest throws InvalidRequest carrying the problems", () => {
    // Act
    const attempt = () => parseRequest({ tenant: "x" });
    // Assess
    expect(attempt).toThrow(InvalidRequest);
    try {
      attempt();
    } catch (e) {
      expect((e as InvalidRequest).name).toBe("InvalidRequest");
      expect((e as InvalidRequest).problems.map((p) => p.path)).toEqual(expect.arrayContaining(["cluster", "storage"]));
    }
  });

  it("never throws on arbitrary input: either a request or a list of problems", () => {
    fc.assert(
      fc.property(fc.anything(), (input) => {
        const result = safeParseRequest(input);
        if (!result.ok) {
          expect(result.problems.length).toBeGreaterThan(0);
          for (const p of result.problems) expect(typeof p.message).toBe("string");
        }
      }),
      { numRuns: 300 },
    );
  });

  it("accepts only DNS-1123 tenants (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 50 }), (tenant) => {
        const ok = safeParseRequest({ ...minimal, tenant }).ok;
        expect(ok).toBe(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(tenant) && tenant.length <= 40);
      }),
      { numRuns: 500 },
    );
  });
});

/** A string of `bytes` bytes as a JSON value ('"' + n×"x" + '"'). */
const filler = (bytes: number) => "x".repeat(bytes - 2);
const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

describe("launcher trust (who may assume a created launcher role)", () => {
  const principals = ["arn:aws:iam::111122223333:role/seqera-platform", "arn:aws:iam::444455556666:user/ci"];

  it("refuses a created launcher that names no one to trust, saying what to give (400)", () => {
    // Act
    const problems = problemsFor({ ...minimal, launcher: { mode: "create" } });
    const omitted = problemsFor({ tenant: "genomics", cluster: minimal.cluster, storage: { type: "pvc" } });
    // Assess
    for (const found of [problems, omitted]) {
      expect(found).toEqual([{ path: "launcher", message: expect.stringContaining('"trust": {"principals"') }]);
      expect(found[0]!.message).toContain('"trustAccount": true');
    }
  });

  it("accepts named principals with an optional external ID, or trustAccount: true", () => {
    // Act
    const named = parseRequest({ ...minimal, launcher: { mode: "create", trust: { principals, externalId: "genomics-seqera" } } });
    const account = parseRequest({ ...minimal, launcher: { mode: "create", trustAccount: true } });
    // Assess
    expect(named.launcher).toEqual({ mode: "create", trust: { principals, externalId: "genomics-seqera" } });
    expect(account.launcher).toEqual({ mode: "create", trustAccount: true });
  });

  it.each([
    [
      "both trust and trustAccount",
      { mode: "create", trust: { principals }, trustAccount: true },
      "launcher",
      /either "trust" or "trustAccount", not both/,
    ],
    ["trustAccount: false", { mode: "create", trustAccount: false }, "launcher.trustAccount", /true/],
    ["no principals", { mode: "create", trust: { principals: [] } }, "launcher.trust.principals", /at least one principal/],
    [
      "a principal that is not an IAM role or user",
      { mode: "create", trust: { principals: ["arn:aws:iam::111122223333:root"] } },
      "launcher.trust.principals.0",
      /role \(role\/\.\.\.\) or user/,
    ],
    [
      "an external ID with a space",
      { mode: "create", trust: { principals, externalId: "a b" } },
      "launcher.trust.externalId",
      /externalId/,
    ],
    [
      "trust on an existing launcher",
      { mode: "existing", principalArn: principals[0], trust: { principals } },
      "launcher",
      /Unrecognized key/,
    ],
  ])("refuses %s", (_what, launcher, path, message) => {
    // Act
    const problems = problemsFor({ ...minimal, launcher });
    // Assess
    expect(problems).toContainEqual({ path, message: expect.stringMatching(message) });
  });
});

describe("storage.workDir (the workload role's S3 access is confined to it)", () => {
  const fusion = (workDir: string) => ({ ...minimal, storage: { type: "fusion", bucket: "shared-work", workDir } });

  it.each([
    ["", /must not be empty/],
    ["/", /must not start with '\/'/],
    ["work/*", /'\*', '\?' or '\$'/],
    ["wo?k", /'\*', '\?' or '\$'/],
    ["${aws:username}", /'\*', '\?' or '\$'/],
  ])("refuses %j", (workDir, message) => {
    // Act
    const problems = problemsFor(fusion(workDir));
    // Assess
    expect(problems).toContainEqual({ path: "storage.workDir", message: expect.stringMatching(message) });
  });

  it("accepts a nested prefix, with or without a trailing '/'", () => {
    // Act + Assess
    expect(parseRequest(fusion("teams/genomics/")).storage).toMatchObject({ workDir: "teams/genomics/" });
    expect(parseRequest(fusion("teams/genomics")).storage).toMatchObject({ workDir: "teams/genomics" });
  });
});

describe("headJob.timeoutMinutes", () => {
  it.each([1, 90, 10080])("accepts %i minutes", (timeoutMinutes) => {
    // Act
    const request = parseRequest({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", timeoutMinutes } });
    // Assess
    expect(request.headJob?.timeoutMinutes).toBe(timeoutMinutes);
  });

  it("is optional, with no default", () => {
    expect(parseRequest({ ...minimal, headJob: { pipeline: "nf-core/rnaseq" } }).headJob).not.toHaveProperty("timeoutMinutes");
  });

  it.each([0, -5, 10081, 1.5, "60"])("refuses %j", (timeoutMinutes) => {
    expect(problemsFor({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", timeoutMinutes } }).map((p) => p.path)).toEqual([
      "headJob.timeoutMinutes",
    ]);
  });
});

describe("Kubernetes quantities (resource.Quantity grammar)", () => {
  const withCpu = (cpu: string) => ({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", cpu } });

  it.each(["1", "500m", "2Gi", "0.5", "1.5Gi", ".5", "5.", "+1", "1e3", "1E-3", "12e+2", "100M", "1E", "250n", "3Ki", "0"])(
    "accepts %j",
    (cpu) => {
      expect(safeParseRequest(withCpu(cpu)).ok).toBe(true);
    },
  );

  it.each([
    "1.2.3Gi",
    ".",
    "1..5Gi",
    "",
    "Gi",
    "1Gib",
    "1 Gi",
    "1e",
    "1e1.5",
    "1e3Gi",
    "--1",
    "+-1",
    "1KI",
    "1gi",
    "0x10",
    "1.5.",
    "e3",
    "1,5",
    " 1",
    "1\n",
  ])("refuses %j", (cpu) => {
    expect(problemsFor(withCpu(cpu)).map((p) => p.path)).toEqual(["headJob.cpu"]);
  });

  it("refuses a negative quantity although the grammar has a sign", () => {
    expect(problemsFor({ ...minimal, storage: { type: "pvc", size: "-10Gi" } })).toEqual([
      { path: "storage.size", message: "size must not be negative" },
    ]);
  });

  it("accepts every quantity the grammar builds (property)", () => {
    const digits = fc.stringMatching(/^[0-9]{1,6}$/);
    const number = fc.oneof(
      digits,
      fc.tuple(digits, fc.stringMatching(/^[0-9]{0,4}$/)).map(([a, b]) => `${a}.${b}`),
      digits.map((d) => `.${d}`),
    );
    const suffix = fc.oneof(
      fc.constantFrom("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"),
      fc.tuple(fc.constantFrom("e", "E"), fc.constantFrom("", "+", "-"), digits).map((parts) => parts.join("")),
    );
    fc.assert(
      fc.property(fc.constantFrom("", "+"), number, suffix, (sign, n, suf) => {
        expect(safeParseRequest(withCpu(`${sign}${n}${suf}`)).ok).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses any number with more than one decimal point (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[0-9]{0,3}$/), { minLength: 3, maxLength: 5 }),
        fc.constantFrom("", "Gi", "m", "e3"),
        (parts, suffix) => {
          expect(safeParseRequest(withCpu(`${parts.join(".")}${suffix}`)).ok).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("the namespace's quota", () => {
  it("is refused at validation when it cannot hold the head pod (its requests equal its limits)", () => {
    // Act
    const tooSmall = safeParseRequest({
      ...minimal,
      quota: { cpu: "500m", memory: "1Gi" },
      headJob: { pipeline: "nf-core/rnaseq", cpu: "2", memory: "2Gi" },
    });
    const fits = safeParseRequest({
      ...minimal,
      quota: { cpu: "2", memory: "2048Mi", pods: 50 },
      headJob: { pipeline: "nf-core/rnaseq", cpu: "2000m", memory: "2Gi" },
    });
    // Assess
    expect(tooSmall).toEqual({
      ok: false,
      problems: [
        { path: "quota.cpu", message: "the quota's cpu (500m) cannot hold the head pod's 2" },
        { path: "quota.memory", message: "the quota's memory (1Gi) cannot hold the head pod's 2Gi" },
      ],
    });
    expect(fits.ok).toBe(true);
  });

  it("takes Kubernetes quantities and a positive pod count, nothing else", () => {
    // Act
    const bad = safeParseRequest({ ...minimal, quota: { cpu: "lots", pods: 0, gpus: 1 } });
    // Assess
    expect(bad.ok).toBe(false);
    expect(bad.ok ? [] : bad.problems.map((p) => p.path)).toEqual(expect.arrayContaining(["quota.cpu", "quota.pods"]));
  });
});

describe("request size limits", () => {
  it(`refuses headJob.params over ${MAX_PARAMS_BYTES} bytes of JSON, by path, beside the other problems`, () => {
    // Prepare
    const params = { blob: filler(MAX_PARAMS_BYTES) };
    // Act
    const problems = problemsFor({ ...minimal, tenant: "Bad_Tenant", headJob: { pipeline: "nf-core/rnaseq", params } });
    // Assess
    expect(problems.map((p) => p.path).sort()).toEqual(["headJob.params", "tenant"]);
    expect(problems.find((p) => p.path === "headJob.params")!.message).toMatch(/16 KiB/);
  });

  it("accepts params of exactly the limit", () => {
    // Prepare: {"blob":"x…"} is 9 bytes of wrapping plus the string
    const params = { blob: filler(MAX_PARAMS_BYTES - 9) };
    expect(jsonBytes(params)).toBe(MAX_PARAMS_BYTES);
    // Act
    const result = safeParseRequest({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", params } });
    // Assess
    expect(result.ok).toBe(true);
  });

  it("refuses a ~160 KB request (the audit's case) whose every field is within its own bounds", () => {
    // Prepare: many labels and env variables, each valid on its own
    const labels = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`team-${i}.example.com/owner-${i}`, "v".repeat(63)]));
    const env = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`VAR_${i}`, "e".repeat(1000)]));
    const request = { ...minimal, labels, headJob: { pipeline: "nf-core/rnaseq", env } };
    expect(jsonBytes(request)).toBeGreaterThan(150_000);
    // Act
    const problems = problemsFor(request);
    // Assess
    expect(problems).toEqual([{ path: "", message: expect.stringMatching(/at most 32768 \(32 KiB\)/) }]);
  });

  it("reports the size beside the schema's problems in one list", () => {
    // Prepare
    const env = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`VAR_${i}`, "e".repeat(4000)]));
    // Act
    const problems = problemsFor({ ...minimal, namespace: "kube-system", headJob: { pipeline: "nf-core/rnaseq", env } });
    // Assess
    expect(problems.map((p) => p.path).sort()).toEqual(["", "namespace"]);
  });

  it("measures the request as the workflow stores it, so what the entry accepts every step accepts again", () => {
    // Prepare: as large as accepted, defaults included
    const base = parseRequest({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", env: { A: "" } } });
    const room = MAX_REQUEST_BYTES - jsonBytes(base);
    const env = Object.fromEntries(Array.from({ length: Math.ceil(room / 4000) }, (_, i) => [`V${i}`, ""]));
    let left = MAX_REQUEST_BYTES - jsonBytes(parseRequest({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", env } }));
    for (const key of Object.keys(env)) {
      env[key] = "e".repeat(Math.min(4000, left));
      left -= env[key]!.length;
    }
    // Act
    const accepted = parseRequest({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", env } });
    const tooBig = safeParseRequest({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", env: { ...env, Z: "" } } });
    // Assess
    expect(jsonBytes(accepted)).toBe(MAX_REQUEST_BYTES);
    expect(parseRequest(JSON.parse(JSON.stringify(accepted)))).toEqual(accepted);
    expect(tooBig.ok).toBe(false);
  });

  it("bounds each env value", () => {
    expect(problemsFor({ ...minimal, headJob: { pipeline: "nf-core/rnaseq", env: { BIG: "e".repeat(4097) } } }).map((p) => p.path)).toEqual(
      ["headJob.env.BIG"],
    );
  });
});
