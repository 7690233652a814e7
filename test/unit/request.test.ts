import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DEFAULTS, isSystemName, parseRequest, safeParseRequest } from "../../functions/lib/request.js";
import { InvalidRequest } from "../../functions/lib/errors.js";

const minimal = { tenant: "genomics", cluster: { name: "research", region: "eu-west-1" }, storage: { type: "pvc" } };

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
    expect(request.launcher).toEqual({ mode: "create" });
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
    expect(problemsFor({ ...minimal, namespace })).toEqual([expect.objectContaining({ path: "namespace", message: expect.stringContaining("protected") })]);
  });

  it.each(["system:masters", "SYSTEM:masters", " system:nodes", "sys tem:x", "System :x"])("refuses the system: name %j as a service account", (name) => {
    expect(problemsFor({ ...minimal, serviceAccount: name }).some((p) => p.path === "serviceAccount")).toBe(true);
    expect(isSystemName(name)).toBe(true);
  });

  it.each([
    ["arn:aws:iam::123:role/x", "12 digits"],
    ["arn:aws:iam::111122223333:group/x", "role"],
    ["arn:aws:sts::111122223333:assumed-role/x/y", "IAM role or user"],
    ["not-an-arn", "must be an ARN"],
  ])("refuses the launcher principal %s", (principalArn, message) => {
    const problems = problemsFor({ ...minimal, launcher: { mode: "existing", principalArn } });
    expect(problems).toEqual([expect.objectContaining({ path: "launcher.principalArn", message: expect.stringContaining(message) })]);
  });

  it.each(["ab", "a".repeat(64), "UPPER", "192.168.1.1", "xn--bucket", "bucket-s3alias", "-bucket", "a..b"])("refuses the bucket name %s", (bucket) => {
    expect(problemsFor({ ...minimal, storage: { type: "fusion", bucket } }).map((p) => p.path)).toEqual(["storage.bucket"]);
  });

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
