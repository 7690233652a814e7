import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  headJobManifest,
  headJobName,
  headJobParamsConfigMapManifest,
  headJobParamsConfigMapName,
  launcherRoleManifest,
  launcherUserRoleBinding,
  limitRangeManifest,
  namespaceManifest,
  networkPolicyManifest,
  nextflowConfigMapManifest,
  podSecurityLabels,
  resourceQuotaManifest,
  pvcManifest,
  serviceAccountManifest,
  serviceAccountRoleBinding,
  type ManifestContext,
} from "../../functions/lib/domain/manifests.js";
import {
  ANNOTATION_CREATED_BY,
  IRSA_ANNOTATION,
  isOwnedBy,
  launcherGroup,
  launcherUsername,
  ownershipLabels,
  wasCreatedBy,
} from "../../functions/lib/domain/naming.js";
import { isSystemName, parseRequest, type FusionStorage, type HeadJobSpec, type PvcStorage } from "../../functions/lib/domain/request.js";
import { markOf } from "../support/fixtures.js";
import { podSecurityViolations } from "../../local/kube/pod-security.js";

const RUN = "genomics-run-1";
const CTX: ManifestContext = {
  tenant: "genomics",
  namespace: "tower-nf",
  executionName: RUN,
  run: markOf(RUN),
  labels: { team: "genomics", "cost-centre": "42" },
};

function requestWith(extra: Record<string, unknown> = {}) {
  return parseRequest({
    tenant: "genomics",
    cluster: { name: "research", region: "eu-west-1" },
    launcher: { mode: "create", trustAccount: true },
    storage: { type: "pvc" },
    headJob: { pipeline: "nf-core/rnaseq" },
    ...extra,
  });
}
const PVC = requestWith().storage as PvcStorage;
const FUSION = requestWith({ storage: { type: "fusion", bucket: "genomics-work" } }).storage as FusionStorage;
const HEAD = (extra: Record<string, unknown> = {}) =>
  requestWith({ headJob: { pipeline: "nf-core/rnaseq", ...extra } }).headJob as HeadJobSpec;

describe("ownership marks on every object", () => {
  it("labels each manifest for the tenant and the execution, and records the execution name", () => {
    // Prepare
    const job = headJobManifest(CTX, HEAD(), {
      serviceAccount: "tower-launcher-sa",
      storage: PVC,
      configMap: "nextflow-config",
      paramsConfigMap: "nf-head-x-params",
      jobName: "nf-head-x",
    });
    // Act
    const objects = [
      namespaceManifest(CTX),
      serviceAccountManifest(CTX, "tower-launcher-sa"),
      launcherRoleManifest(CTX),
      serviceAccountRoleBinding(CTX, "tower-launcher-sa"),
      launcherUserRoleBinding(CTX),
      limitRangeManifest(CTX),
      resourceQuotaManifest(CTX, { cpu: "8" }),
      networkPolicyManifest(CTX),
      pvcManifest(CTX, PVC),
      nextflowConfigMapManifest(CTX, "process.executor = 'k8s'\n"),
      headJobParamsConfigMapManifest(CTX, "nf-head-x", { input: "s3://bucket/samples.csv" }),
      job,
    ];
    // Assess
    for (const object of objects) {
      expect(isOwnedBy(object.metadata!.labels, "genomics")).toBe(true);
      expect(wasCreatedBy(object.metadata!.labels, markOf(RUN))).toBe(true);
      // The request's labels go on every object but the Namespace (other tenants' NetworkPolicies select namespaces by label).
      if (object.kind === "Namespace") expect(object.metadata!.labels).not.toHaveProperty("team");
      else expect(object.metadata!.labels).toMatchObject({ team: "genomics", "cost-centre": "42" });
      expect(object.metadata!.annotations![ANNOTATION_CREATED_BY]).toBe(RUN);
      if (object.kind === "Namespace") expect(object.metadata!.namespace).toBeUndefined();
      else expect(object.metadata!.namespace).toBe("tower-nf");
    }
    expect(job.spec!.template.metadata!.labels).toMatchObject({ ...ownershipLabels("genomics", markOf(RUN)), "job-name": "nf-head-x" });
  });

  it("lets the ownership marks win over request labels with the same keys", () => {
    // Prepare
    const ctx = { ...CTX, labels: { "app.kubernetes.io/managed-by": "helm", "nf-eks-provisioner/tenant": "other" } };
    // Act
    const namespace = namespaceManifest(ctx);
    // Assess
    expect(namespace.metadata!.labels).toEqual({ ...podSecurityLabels("baseline"), ...ownershipLabels("genomics", markOf(RUN)) });
  });
});

describe("quotas and network isolation", () => {
  it("gives containers default requests and a memory limit, and no default CPU limit (below a task's request it would make the pod invalid)", () => {
    // Act
    const limits = limitRangeManifest(CTX).spec!.limits;
    // Assess
    expect(limits).toEqual([{ type: "Container", defaultRequest: { cpu: "250m", memory: "256Mi" }, _default: { memory: "1Gi" } }]);
  });

  it("sizes the quota from what it names only: CPU requests, memory requests and limits, pods", () => {
    // Act
    const full = resourceQuotaManifest(CTX, { cpu: "16", memory: "64Gi", pods: 200 });
    const podsOnly = resourceQuotaManifest(CTX, { pods: 10 });
    // Assess
    expect(full.spec!.hard).toEqual({ "requests.cpu": "16", "requests.memory": "64Gi", "limits.memory": "64Gi", pods: "200" });
    expect(podsOnly.spec!.hard).toEqual({ pods: "10" });
  });

  it("admits ingress from the namespace's own pods only", () => {
    // Act
    const policy = networkPolicyManifest(CTX);
    // Assess
    expect(policy.spec).toEqual({ podSelector: {}, policyTypes: ["Ingress"], ingress: [{ _from: [{ podSelector: {} }] }] });
  });
});

describe("Pod Security", () => {
  it("labels the namespace to enforce the given level (baseline by default), warning and auditing at restricted", () => {
    // Act
    const byDefault = namespaceManifest(CTX);
    const restricted = namespaceManifest(CTX, "restricted");
    // Assess
    expect(byDefault.metadata!.labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "baseline",
      "pod-security.kubernetes.io/enforce-version": "latest",
      "pod-security.kubernetes.io/warn": "restricted",
      "pod-security.kubernetes.io/warn-version": "latest",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/audit-version": "latest",
    });
    expect(restricted.metadata!.labels!["pod-security.kubernetes.io/enforce"]).toBe("restricted");
  });

  it("runs the head job without privilege: no escalation, every capability dropped, RuntimeDefault seccomp", () => {
    // Act
    const job = headJobManifest(CTX, HEAD(), {
      serviceAccount: "tower-launcher-sa",
      storage: PVC,
      configMap: "nextflow-config",
      paramsConfigMap: "nf-head-x-params",
      jobName: "nf-head-x",
    });
    const pod = job.spec!.template.spec!;
    // Assess
    expect(pod.securityContext).toEqual({ seccompProfile: { type: "RuntimeDefault" } });
    expect(pod.containers[0]!.securityContext).toEqual({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    // As the API server's Pod Security admission judges it: baseline passes; restricted wants only runAsNonRoot
    // (the Nextflow image runs as root).
    expect(podSecurityViolations("baseline", pod)).toBeUndefined();
    expect(podSecurityViolations("restricted", pod)).toBe(
      'runAsNonRoot != true (pod or container "nextflow" must set securityContext.runAsNonRoot=true)',
    );
  });
});

describe("RBAC (Seqera runbook)", () => {
  it("builds tower-launcher-role with exactly the runbook rules", () => {
    // Act
    const role = launcherRoleManifest(CTX);
    // Assess
    expect(role.apiVersion).toBe("rbac.authorization.k8s.io/v1");
    expect(role.kind).toBe("Role");
    expect(role.metadata!.name).toBe("tower-launcher-role");
    expect(role.rules).toEqual([
      { apiGroups: [""], resources: ["pods", "pods/status", "pods/log", "pods/exec"], verbs: ["get", "list", "watch", "create", "delete"] },
      { apiGroups: ["batch"], resources: ["jobs", "jobs/status"], verbs: ["get", "list", "watch", "create", "delete"] },
    ]);
  });

  it("never grants '*', update, patch or escalation verbs, and never secrets", () => {
    // Act
    const rules = launcherRoleManifest(CTX, "custom-role").rules!;
    // Assess
    const everything = rules.flatMap((r) => [...(r.apiGroups ?? []), ...(r.resources ?? []), ...r.verbs, ...(r.resourceNames ?? [])]);
    expect(everything).not.toContain("*");
    for (const forbidden of ["update", "patch", "escalate", "bind", "impersonate"])
      expect(rules.flatMap((r) => r.verbs)).not.toContain(forbidden);
    expect(rules.flatMap((r) => r.resources)).not.toContain("secrets");
    expect(rules.every((r) => r.nonResourceURLs === undefined)).toBe(true);
  });

  it("does not share rule arrays between manifests (a caller editing one cannot widen the next)", () => {
    // Prepare
    const first = launcherRoleManifest(CTX);
    // Act
    first.rules![0]!.verbs.push("*");
    // Assess
    expect(launcherRoleManifest(CTX).rules![0]!.verbs).not.toContain("*");
  });

  it("binds the head ServiceAccount of the namespace to the launcher Role", () => {
    // Act
    const binding = serviceAccountRoleBinding(CTX, "tower-launcher-sa");
    // Assess
    expect(binding).toMatchObject({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "tower-launcher-sa-binding", namespace: "tower-nf" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tower-launcher-role" },
      subjects: [{ kind: "ServiceAccount", name: "tower-launcher-sa", namespace: "tower-nf" }],
    });
    expect(binding.subjects).toHaveLength(1);
  });

  it("binds the tenant's own User tower-launcher-user-<tenant> (the launcher's mapped identity) with the RBAC apiGroup", () => {
    // Act
    const binding = launcherUserRoleBinding(CTX);
    const neighbours = launcherUserRoleBinding({ ...CTX, tenant: "proteomics" });
    // Assess
    expect(binding.metadata!.name).toBe("tower-launcher-user-genomics-binding");
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tower-launcher-role" });
    expect(binding.subjects).toEqual([{ kind: "User", name: "tower-launcher-user-genomics", apiGroup: "rbac.authorization.k8s.io" }]);
    expect(neighbours.subjects).toEqual([{ kind: "User", name: "tower-launcher-user-proteomics", apiGroup: "rbac.authorization.k8s.io" }]);
  });

  it("names a valid, never system:, per-tenant launcher user and group for every valid tenant, and refuses anything else", () => {
    // Prepare
    const tenant = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/);
    // Act + Assess
    fc.assert(
      fc.property(tenant, tenant, (a, b) => {
        for (const name of [launcherUsername(a), launcherGroup(a)]) {
          expect(name.length).toBeLessThanOrEqual(253);
          expect(isSystemName(name)).toBe(false);
          expect(name).toMatch(/^tower-launcher-(user|role)-[a-z0-9-]+$/);
        }
        expect(launcherUsername(a) === launcherUsername(b)).toBe(a === b);
        expect(launcherUserRoleBinding({ ...CTX, tenant: a }).metadata!.name!.length).toBeLessThanOrEqual(253);
      }),
    );
    for (const bad of ["", "Genomics", "-x", "x-", "a b", "system:masters", "x".repeat(64)]) {
      expect(() => launcherUsername(bad)).toThrow(expect.objectContaining({ name: "InvalidRequest" }));
      expect(() => launcherGroup(bad)).toThrow(expect.objectContaining({ name: "InvalidRequest" }));
    }
  });

  it("binds to a Role, never a ClusterRole, and keeps long binding names within 253 characters", () => {
    // Prepare
    const longSa = `sa-${"a".repeat(248)}`;
    // Act
    const bindings = [serviceAccountRoleBinding(CTX, longSa, "r"), launcherUserRoleBinding(CTX, "someone", "r")];
    // Assess
    for (const binding of bindings) {
      expect(binding.roleRef.kind).toBe("Role");
      expect(binding.metadata!.name!.length).toBeLessThanOrEqual(253);
      expect(binding.metadata!.name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    }
    expect(bindings[0]!.subjects![0]!.name).toBe(longSa);
  });

  it("annotates a ServiceAccount when asked (Fusion IRSA)", () => {
    // Act
    const sa = serviceAccountManifest(CTX, "tower-compute-sa", { [IRSA_ANNOTATION]: "arn:aws:iam::111122223333:role/w" });
    // Assess
    expect(sa).toMatchObject({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "tower-compute-sa", namespace: "tower-nf" } });
    expect(sa.metadata!.annotations).toEqual({ [IRSA_ANNOTATION]: "arn:aws:iam::111122223333:role/w", [ANNOTATION_CREATED_BY]: RUN });
  });
});

describe("storage", () => {
  it("asks for a ReadWriteMany claim of the requested size, with the storage class only when given", () => {
    // Act
    const defaultClass = pvcManifest(CTX, PVC);
    const efs = pvcManifest(CTX, { ...PVC, storageClass: "efs-sc", size: "500Gi", claimName: "shared" });
    // Assess
    expect(defaultClass.metadata!.name).toBe("tower-scratch");
    expect(defaultClass.spec).toEqual({ accessModes: ["ReadWriteMany"], resources: { requests: { storage: "100Gi" } } });
    expect(efs.spec).toEqual({ accessModes: ["ReadWriteMany"], storageClassName: "efs-sc", resources: { requests: { storage: "500Gi" } } });
    expect(efs.metadata!.name).toBe("shared");
  });

  it("puts only nextflow.config into the shared nextflow-config ConfigMap (no run's params)", () => {
    // Act
    const configMap = nextflowConfigMapManifest(CTX, "process.executor = 'k8s'\n");
    // Assess
    expect(configMap.metadata!.name).toBe("nextflow-config");
    expect(configMap.data).toEqual({ "nextflow.config": "process.executor = 'k8s'\n" });
  });

  it("puts a head job's params as JSON into that job's own ConfigMap <jobName>-params", () => {
    // Prepare
    const params = { input: "s3://bucket/samplesheet.csv", outdir: "/scratch/out; rm -rf /", nested: { x: [1, "two"] } };
    // Act
    const configMap = headJobParamsConfigMapManifest(CTX, "nf-head-genomics-1234abcd", params);
    const empty = headJobParamsConfigMapManifest(CTX, "nf-head-genomics-1234abcd");
    // Assess
    expect(configMap).toMatchObject({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "nf-head-genomics-1234abcd-params", namespace: "tower-nf" },
    });
    expect(headJobParamsConfigMapName("nf-head-genomics-1234abcd")).toBe("nf-head-genomics-1234abcd-params");
    expect(Object.keys(configMap.data!)).toEqual(["params.json"]);
    expect(JSON.parse(configMap.data!["params.json"]!)).toEqual(params);
    expect(JSON.parse(empty.data!["params.json"]!)).toEqual({});
  });
});

describe("head job", () => {
  const options = {
    serviceAccount: "tower-launcher-sa",
    storage: PVC,
    configMap: "nextflow-config",
    paramsConfigMap: "nf-head-genomics-1234abcd-params",
    jobName: "nf-head-genomics-1234abcd",
  };

  it("runs `nextflow run` as an argv array with params from the ConfigMap, never a shell", () => {
    // Prepare
    const spec = HEAD({ revision: "3.14.0", profiles: ["test", "docker"], params: { outdir: "$(reboot)" } });
    // Act
    const job = headJobManifest(CTX, spec, options);
    // Assess
    const container = job.spec!.template.spec!.containers[0]!;
    expect(container.name).toBe("nextflow");
    expect(container.image).toBe("nextflow/nextflow:24.10.4");
    expect(container.command).toEqual(["nextflow"]);
    expect(container.args).toEqual([
      "run",
      "nf-core/rnaseq",
      "-r",
      "3.14.0",
      "-profile",
      "test,docker",
      "-params-file",
      "/etc/nextflow/params.json",
      "-c",
      "/etc/nextflow/nextflow.config",
    ]);
    const argv = [...container.command!, ...container.args!];
    expect(argv.filter((a) => /^(\/bin\/)?(ba)?sh$/.test(a))).toEqual([]);
    expect(JSON.stringify(argv)).not.toContain("reboot");
  });

  it("leaves out -r and -profile when they are not asked for", () => {
    // Act
    const job = headJobManifest(CTX, HEAD(), options);
    // Assess
    expect(job.spec!.template.spec!.containers[0]!.args).toEqual([
      "run",
      "nf-core/rnaseq",
      "-params-file",
      "/etc/nextflow/params.json",
      "-c",
      "/etc/nextflow/nextflow.config",
    ]);
  });

  it("does not retry, runs as the launcher ServiceAccount, and has equal requests and limits", () => {
    // Act
    const job = headJobManifest(CTX, HEAD({ cpu: "2", memory: "4Gi", env: { NXF_VER: "24.10.4" } }), options);
    // Assess
    expect(job).toMatchObject({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "nf-head-genomics-1234abcd", namespace: "tower-nf" },
    });
    expect(job.spec!.backoffLimit).toBe(0);
    expect(job.spec!.ttlSecondsAfterFinished).toBeUndefined();
    const pod = job.spec!.template.spec!;
    expect(pod.restartPolicy).toBe("Never");
    expect(pod.serviceAccountName).toBe("tower-launcher-sa");
    expect(pod.containers[0]!.resources).toEqual({ requests: { cpu: "2", memory: "4Gi" }, limits: { cpu: "2", memory: "4Gi" } });
    expect(pod.containers[0]!.env).toEqual([
      { name: "NXF_ANSI_LOG", value: "false" },
      { name: "NXF_VER", value: "24.10.4" },
    ]);
  });

  it("lets the request's env override NXF_ANSI_LOG without a duplicate variable", () => {
    // Act
    const env = headJobManifest(CTX, HEAD({ env: { NXF_ANSI_LOG: "true" } }), options).spec!.template.spec!.containers[0]!.env!;
    // Assess
    expect(env).toEqual([{ name: "NXF_ANSI_LOG", value: "true" }]);
  });

  it("mounts nextflow.config from the shared ConfigMap and params.json from the job's own, read-only at /etc/nextflow, and the claim at its mount path (pvc)", () => {
    // Act
    const pod = headJobManifest(CTX, HEAD(), { ...options, storage: { ...PVC, claimName: "shared", mountPath: "/data" } }).spec!.template
      .spec!;
    // Assess
    expect(pod.volumes).toEqual([
      {
        name: "nextflow-config",
        projected: {
          sources: [
            { configMap: { name: "nextflow-config", items: [{ key: "nextflow.config", path: "nextflow.config" }] } },
            { configMap: { name: "nf-head-genomics-1234abcd-params", items: [{ key: "params.json", path: "params.json" }] } },
          ],
        },
      },
      { name: "scratch", persistentVolumeClaim: { claimName: "shared" } },
    ]);
    expect(pod.containers[0]!.volumeMounts).toEqual([
      { name: "nextflow-config", mountPath: "/etc/nextflow", readOnly: true },
      { name: "scratch", mountPath: "/data" },
    ]);
  });

  it("mounts no claim with Fusion (the work directory is in S3)", () => {
    // Act
    const pod = headJobManifest(CTX, HEAD(), { ...options, storage: FUSION }).spec!.template.spec!;
    // Assess
    expect(pod.volumes!.map((v) => v.name)).toEqual(["nextflow-config"]);
    expect(pod.containers[0]!.volumeMounts!.map((m) => m.mountPath)).toEqual(["/etc/nextflow"]);
  });
});

describe("headJobName", () => {
  it("is deterministic per tenant and execution and distinct across executions", () => {
    // Act
    const name = headJobName("genomics", markOf(RUN));
    // Assess
    expect(name).toBe(`nf-head-genomics-${markOf(RUN).slice(0, 8)}`);
    expect(headJobName("genomics", markOf(RUN))).toBe(name);
    expect(headJobName("genomics", markOf("genomics-run-2"))).not.toBe(name);
  });

  it("is always a DNS-1123 label of at most 63 characters", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?$/),
        fc.string({ minLength: 1, maxLength: 80 }),
        (tenant, execution) => {
          // Act
          const name = headJobName(tenant, markOf(execution));
          // Assess
          expect(name.length).toBeLessThanOrEqual(63);
          expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
          expect(name.endsWith(markOf(execution).slice(0, 8))).toBe(true);
        },
      ),
    );
  });
});
