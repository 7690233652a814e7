/**
 * A PVC tenant end to end in the sandbox, in both authentication modes: POST /provision on the real HTTP
 * API, the real state machine and step handlers, then what the emulated account and cluster hold, the
 * ComputeEnvironmentReady event, and the launcher identity used for real (an EKS token signed with the
 * launcher's credentials against the emulated API server).
 */
import { describe, expect, it } from "vitest";
import { SANDBOX_KUBE_STEPS_ROLE, type Sandbox } from "../../local/sandbox.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import {
  ACCOUNT_ID,
  awsAuth,
  clusterState,
  expectClusterAccess,
  expectLauncherConfinedTo,
  FAST,
  iamRole,
  kubeObject,
  kubeObjects,
  mappedRoleArns,
  policyOf,
  provision,
  pvcRequest,
  readyEventOf,
  stepResult,
  useSandbox,
} from "../support/sandbox-runs.js";

const OWNED = { "app.kubernetes.io/managed-by": "nf-eks-provisioner" };

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("a PVC tenant on a %s cluster", (authenticationMode) => {
  let sandbox: Sandbox;
  let seededAwsAuth: KubeObject;

  useSandbox({ ...FAST, authenticationMode }, (started) => {
    sandbox = started.sandbox;
    seededAwsAuth = awsAuth(sandbox);
  });

  it("creates the namespace, RBAC, PVC, nextflow config and a head job it waits for until it runs", async () => {
    // Prepare
    const request = pvcRequest("genomics", {
      headJob: { pipeline: "nextflow-io/hello", revision: "master", params: { outdir: "/scratch/results" }, waitFor: "running" },
    });

    // Act
    const run = await provision(sandbox, request);

    // Assess: the run
    expect(run.execution.status).toBe("SUCCEEDED");
    expect(run.view.steps.map((s) => [s.name, s.status])).toEqual([
      ["ResolveCluster", "succeeded"],
      ["CreateIamResources", "succeeded"],
      ["CreateNamespaceAndRbac", "succeeded"],
      ["GrantClusterAccess", "succeeded"],
      ["ConfigureStorage", "succeeded"],
      ["LaunchHeadJob", "succeeded"],
      ["CheckHeadJob", "succeeded"],
      ["Report", "succeeded"],
    ]);
    const headJob = stepResult(run, "CheckHeadJob");
    expect(headJob).toMatchObject({ namespace: "tower-nf", done: true });
    expect(["Running", "Succeeded"]).toContain(headJob.phase);

    // Assess: Kubernetes objects, each with the ownership marks and the request's labels
    const labels = { ...OWNED, "nf-eks-provisioner/tenant": "genomics", team: "genomics" };
    const namespace = kubeObject(sandbox, "Namespace", undefined, "tower-nf");
    // The Namespace carries the marks and Pod Security, never the request's labels (NetworkPolicies select namespaces by label).
    expect(namespace?.metadata.labels).toMatchObject({
      ...OWNED,
      "nf-eks-provisioner/tenant": "genomics",
      "pod-security.kubernetes.io/enforce": "baseline",
    });
    expect(namespace?.metadata.labels).not.toHaveProperty("team");
    expect(namespace?.metadata.annotations?.["nf-eks-provisioner/created-by-execution"]).toBe(run.started.executionName);
    const ours = (kind: string) =>
      kubeObjects(sandbox, kind, "tower-nf").filter((o) => o.metadata.labels?.["nf-eks-provisioner/tenant"] === "genomics");
    expect(ours("ServiceAccount").map((o) => o.metadata.name)).toEqual(["tower-launcher-sa"]);
    for (const kind of [
      "ServiceAccount",
      "Role",
      "RoleBinding",
      "LimitRange",
      "NetworkPolicy",
      "PersistentVolumeClaim",
      "ConfigMap",
      "Job",
    ]) {
      for (const o of ours(kind)) expect(o.metadata.labels, `${kind} ${o.metadata.name}`).toMatchObject(labels);
    }
    const role = kubeObject(sandbox, "Role", "tower-nf", "tower-launcher-role");
    expect(role?.rules).toEqual([
      { apiGroups: [""], resources: ["pods", "pods/status", "pods/log", "pods/exec"], verbs: ["get", "list", "watch", "create", "delete"] },
      { apiGroups: ["batch"], resources: ["jobs", "jobs/status"], verbs: ["get", "list", "watch", "create", "delete"] },
    ]);
    const bindings: Record<string, KubeObject> = Object.fromEntries(ours("RoleBinding").map((b) => [b.metadata.name, b]));
    expect(Object.keys(bindings).sort()).toEqual(["tower-launcher-sa-binding", "tower-launcher-user-genomics-binding"]);
    expect(bindings["tower-launcher-sa-binding"]!.subjects).toEqual([
      { kind: "ServiceAccount", name: "tower-launcher-sa", namespace: "tower-nf" },
    ]);
    expect(bindings["tower-launcher-user-genomics-binding"]!.subjects).toEqual([
      { kind: "User", name: "tower-launcher-user-genomics", apiGroup: "rbac.authorization.k8s.io" },
    ]);
    for (const b of Object.values(bindings))
      expect(b.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tower-launcher-role" });
    expect(kubeObjects(sandbox, "ClusterRoleBinding").filter((o) => o.metadata.labels?.["app.kubernetes.io/managed-by"])).toEqual([]);
    expect(kubeObjects(sandbox, "ClusterRole").filter((o) => o.metadata.labels?.["app.kubernetes.io/managed-by"])).toEqual([]);

    const pvc = kubeObject(sandbox, "PersistentVolumeClaim", "tower-nf", "tower-scratch");
    expect(pvc?.spec).toMatchObject({
      accessModes: ["ReadWriteMany"],
      storageClassName: "efs-sc",
      resources: { requests: { storage: "100Gi" } },
    });
    const config = kubeObject(sandbox, "ConfigMap", "tower-nf", "nextflow-config");
    expect(config?.data?.["nextflow.config"]).toContain("storageClaimName = 'tower-scratch'");
    expect(config?.data?.["nextflow.config"]).toContain("workDir = '/scratch/work'");
    // The params are the head job's own ConfigMap (mounted next to nextflow.config), not the shared one.
    expect(config?.data?.["params.json"]).toBeUndefined();
    const params = kubeObject(sandbox, "ConfigMap", "tower-nf", `${headJob.jobName}-params`);
    expect(params?.metadata.labels).toMatchObject(labels);
    expect(JSON.parse(params?.data?.["params.json"] ?? "{}")).toEqual({ outdir: "/scratch/results" });

    const job = kubeObject(sandbox, "Job", "tower-nf", headJob.jobName);
    const pod = job?.spec?.template?.spec;
    expect(pod?.serviceAccountName).toBe("tower-launcher-sa");
    expect(pod?.containers?.[0]?.command).toEqual(["nextflow"]);
    expect(pod?.containers?.[0]?.args?.slice(0, 4)).toEqual(["run", "nextflow-io/hello", "-r", "master"]);
    expect(kubeObjects(sandbox, "Pod", "tower-nf").filter((p) => p.metadata.labels?.["job-name"] === headJob.jobName)).toHaveLength(1);

    // Assess: IAM
    const launcher = iamRole(sandbox, "nfeks-genomics.research-launcher");
    // Issue #9: under the product's IAM path, with the deployment's boundary, trusting whom the request named (the account).
    const launcherArn = `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-genomics.research-launcher`;
    expect(launcher?.arn).toBe(launcherArn);
    expect(launcher?.permissionsBoundaryArn).toBe(sandbox.env.PERMISSIONS_BOUNDARY_ARN);
    expect(launcher?.tags).toEqual(expect.arrayContaining([{ Key: "nf-eks-provisioner/tenant", Value: "genomics" }]));
    expect(policyOf(launcher?.assumeRolePolicyDocument).Statement).toEqual([
      expect.objectContaining({ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT_ID}:root` }, Action: "sts:AssumeRole" }),
    ]);
    expect(policyOf(launcher?.inlinePolicies.get("nfeks-genomics.research-launcher")).Statement).toContainEqual(
      expect.objectContaining({ Action: "eks:DescribeCluster", Resource: [`arn:aws:eks:eu-west-1:${ACCOUNT_ID}:cluster/research`] }),
    );
    expect(stepResult(run, "CreateIamResources")).toMatchObject({ launcherArn, launcherKind: "role", launcherCreated: true });

    // Assess: cluster access, the event, and the launcher identity in use
    expectClusterAccess(sandbox, launcherArn, "genomics", seededAwsAuth);
    expect(stepResult(run, "GrantClusterAccess")).toMatchObject({
      method: authenticationMode === "CONFIG_MAP" ? "aws-auth" : "access-entry",
      username: "tower-launcher-user-genomics",
      groups: ["tower-launcher-role-genomics"],
      created: true,
    });
    const ready = readyEventOf(sandbox, run.started.executionName);
    expect(ready).toMatchObject({
      tenant: "genomics",
      namespace: "tower-nf",
      serviceAccounts: { head: "tower-launcher-sa" },
      roleArns: { launcher: launcherArn },
      claim: "tower-scratch",
      storage: { type: "pvc", mountPath: "/scratch", configMap: "nextflow-config" },
      headJob: { jobName: headJob.jobName },
    });
    expect(ready.nextflowConfig).toBe(config?.data?.["nextflow.config"]);
    await expectLauncherConfinedTo(sandbox, launcherArn, "tower-nf");
  });

  it("waits for a head job with waitFor: completed until the Job succeeded", async () => {
    // Prepare: a second tenant in its own namespace
    const request = pvcRequest("genomics-wgs", {
      namespace: "genomics-wgs",
      headJob: { pipeline: "nf-core/sarek", revision: "3.5.1", profiles: ["test"], waitFor: "completed" },
    });

    // Act
    const run = await provision(sandbox, request);

    // Assess
    expect(run.execution.status).toBe("SUCCEEDED");
    const headJob = stepResult(run, "CheckHeadJob");
    expect(headJob).toMatchObject({ namespace: "genomics-wgs", phase: "Succeeded", done: true });
    const job = kubeObject(sandbox, "Job", "genomics-wgs", headJob.jobName);
    expect(job?.status?.conditions).toContainEqual(expect.objectContaining({ type: "Complete", status: "True" }));
    const pods = kubeObjects(sandbox, "Pod", "genomics-wgs").filter((p) => p.metadata.labels?.["job-name"] === headJob.jobName);
    expect(pods.map((p) => p.status?.phase)).toEqual(["Succeeded"]);
    expect(job?.spec?.template?.spec?.containers?.[0]?.args).toEqual(expect.arrayContaining(["-profile", "test"]));
    expect(readyEventOf(sandbox, run.started.executionName)).toMatchObject({ tenant: "genomics-wgs", headJob: { phase: "Succeeded" } });

    // Both tenants' launchers are in the cluster.
    const launcherArn = `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-genomics-wgs.research-launcher`;
    expectClusterAccess(sandbox, launcherArn, "genomics-wgs", seededAwsAuth);
    if (authenticationMode === "CONFIG_MAP") {
      // aws-auth holds role ARNs without their path (EKS matches them so).
      expect(mappedRoleArns(sandbox)).toEqual([
        `arn:aws:iam::${ACCOUNT_ID}:role/research-node-role`,
        // The provisioner's own mapping, as the operator adds it (stack output ClusterAccessConfigMap*).
        `arn:aws:iam::${ACCOUNT_ID}:role/${SANDBOX_KUBE_STEPS_ROLE}`,
        `arn:aws:iam::${ACCOUNT_ID}:role/nfeks-genomics.research-launcher`,
        `arn:aws:iam::${ACCOUNT_ID}:role/nfeks-genomics-wgs.research-launcher`,
      ]);
    }
    await expectLauncherConfinedTo(sandbox, launcherArn, "genomics-wgs");
  });

  it.runIf(authenticationMode === "API_AND_CONFIG_MAP")(
    "refuses an existing launcher that aws-auth already maps: its access entry would silently replace the mapping (OwnershipConflict)",
    async () => {
      // Prepare: the platform team maps its own launcher role in aws-auth
      const launcherArn = `arn:aws:iam::${ACCOUNT_ID}:role/seqera-platform-launcher`;
      const mapRoles = `${seededAwsAuth.data.mapRoles}- rolearn: ${launcherArn}\n  username: platform-admin\n  groups:\n  - platform-admins\n`;
      sandbox.kube.seed({ ...seededAwsAuth, data: { ...seededAwsAuth.data, mapRoles } });
      try {
        // Act
        const run = await provision(
          sandbox,
          pvcRequest("mapped", { namespace: "mapped", launcher: { mode: "existing", principalArn: launcherArn } }),
        );

        // Assess
        expect(run.execution.status).toBe("FAILED");
        expect(run.execution.error).toBe("OwnershipConflict");
        expect(run.execution.cause).toContain('username "platform-admin"');
        expect(clusterState(sandbox).accessEntries.has(launcherArn)).toBe(false);
        expect(awsAuth(sandbox).data.mapRoles).toBe(mapRoles);
      } finally {
        sandbox.kube.seed(seededAwsAuth);
      }
    },
  );
});
