/**
 * Fusion tenants end to end in the sandbox, in both authentication modes: IRSA (the workload role trusts
 * the cluster's OIDC provider for exactly the tenant's service accounts, which carry the role-arn
 * annotation) with an existing launcher principal, and EKS Pod Identity (associations, no annotation)
 * with a created launcher. Then the launcher identity used for real against the emulated API server.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SANDBOX_EXISTING_LAUNCHER, SANDBOX_OIDC_ISSUER, type Sandbox } from "../../local/sandbox.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import {
  ACCOUNT_ID,
  awsAuth,
  clusterState,
  expectClusterAccess,
  expectLauncherConfinedTo,
  FAST,
  fusionRequest,
  iamRole,
  kubeObject,
  policyOf,
  provision,
  readyEventOf,
  recordedStepResult,
  settled,
  stepResult,
  useSandbox,
} from "../support/sandbox-runs.js";
import { updateTo } from "../support/teardown-runs.js";

const EXAMPLE = JSON.parse(readFileSync(new URL("../../examples/fusion-tenant.json", import.meta.url), "utf8"));
const ISSUER_HOST = SANDBOX_OIDC_ISSUER.replace(/^https:\/\//, "");
const S3_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"];

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("Fusion tenants on a %s cluster", (authenticationMode) => {
  let sandbox: Sandbox;
  let seededAwsAuth: KubeObject;

  useSandbox({ ...FAST, authenticationMode }, (started) => {
    sandbox = started.sandbox;
    seededAwsAuth = awsAuth(sandbox);
  });

  it("IRSA: a workload role trusted by the tenant's service accounts only, which are annotated with it", async () => {
    // Prepare: examples/fusion-tenant.json (an existing launcher role, a compute service account)
    const request = { ...EXAMPLE };

    // Act
    const run = await provision(sandbox, request);

    // Assess: the run, and no launcher role created (the given principal is used)
    expect(run.execution.status).toBe("SUCCEEDED");
    const workloadArn = `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-proteomics.research-workload`;
    expect(stepResult(run, "CreateIamResources")).toMatchObject({
      launcherArn: SANDBOX_EXISTING_LAUNCHER,
      launcherCreated: false,
      workloadRoleArn: workloadArn,
    });
    expect(iamRole(sandbox, "nfeks-proteomics.research-launcher")).toBeUndefined();

    // Assess: the workload role's trust is StringEquals on :sub (both SAs of this namespace) and :aud
    const workload = iamRole(sandbox, "nfeks-proteomics.research-workload");
    expect(workload?.tags).toEqual(expect.arrayContaining([{ Key: "nf-eks-provisioner/tenant", Value: "proteomics" }]));
    expect(policyOf(workload?.assumeRolePolicyDocument).Statement).toEqual([
      expect.objectContaining({
        Effect: "Allow",
        Principal: { Federated: `arn:aws:iam::${ACCOUNT_ID}:oidc-provider/${ISSUER_HOST}` },
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: {
          StringEquals: {
            [`${ISSUER_HOST}:sub`]: ["system:serviceaccount:tower-nf:tower-launcher-sa", "system:serviceaccount:tower-nf:tower-compute-sa"],
            [`${ISSUER_HOST}:aud`]: "sts.amazonaws.com",
          },
        },
      }),
    ]);
    const s3 = policyOf(workload?.inlinePolicies.get("nfeks-proteomics.research-fusion-s3")).Statement;
    // Issue #9: confined to the work directory (before: the whole bucket).
    expect(s3).toContainEqual(
      expect.objectContaining({
        Action: "s3:ListBucket",
        Resource: "arn:aws:s3:::proteomics-nextflow-work",
        Condition: { StringLike: { "s3:prefix": ["work/", "work/*"] } },
      }),
    );
    expect(s3).toContainEqual(expect.objectContaining({ Action: S3_ACTIONS, Resource: "arn:aws:s3:::proteomics-nextflow-work/work/*" }));
    expect(clusterState(sandbox).podIdentityAssociations.size).toBe(0);

    // Assess: both service accounts point at the workload role; the config uses Fusion on the bucket
    for (const sa of ["tower-launcher-sa", "tower-compute-sa"]) {
      const account = kubeObject(sandbox, "ServiceAccount", "tower-nf", sa);
      expect(account?.metadata.annotations?.["eks.amazonaws.com/role-arn"], sa).toBe(workloadArn);
      expect(account?.metadata.labels, sa).toMatchObject({ "nf-eks-provisioner/tenant": "proteomics", team: "proteomics" });
    }
    const config = kubeObject(sandbox, "ConfigMap", "tower-nf", "nextflow-config")?.data?.["nextflow.config"];
    expect(config).toContain("workDir = 's3://proteomics-nextflow-work/work'");
    // Unprivileged Fusion (the FUSE device plugin): the namespace enforces Pod Security baseline.
    expect(config).toMatch(/fusion \{\n\s+enabled = true\n\s+privileged = false\n\}/);
    expect(config).toContain("serviceAccount = 'tower-compute-sa'");
    expect(kubeObject(sandbox, "PersistentVolumeClaim", "tower-nf", "tower-scratch")).toBeUndefined();
    expect(stepResult(run, "ConfigureStorage")).toMatchObject({
      type: "fusion",
      annotated: [{ serviceAccount: "tower-launcher-sa" }, { serviceAccount: "tower-compute-sa" }],
    });

    // Assess: cluster access for the existing launcher, the event, and the launcher in use
    expectClusterAccess(sandbox, SANDBOX_EXISTING_LAUNCHER, "proteomics", seededAwsAuth);
    expect(readyEventOf(sandbox, run.started.executionName)).toMatchObject({
      tenant: "proteomics",
      serviceAccounts: { head: "tower-launcher-sa", compute: "tower-compute-sa" },
      roleArns: { launcher: SANDBOX_EXISTING_LAUNCHER, workload: workloadArn },
      storage: { type: "fusion", configMap: "nextflow-config" },
      nextflowConfig: config,
    });
    await expectLauncherConfinedTo(sandbox, SANDBOX_EXISTING_LAUNCHER, "tower-nf");
  });

  it("Pod Identity: a workload role for the Pod Identity agent and one association per service account", async () => {
    // Prepare: a created launcher, its own namespace
    const request = fusionRequest("metabolomics", { podIdentity: true, namespace: "metabolomics" });

    // Act
    const run = await provision(sandbox, request);

    // Assess
    expect(run.execution.status).toBe("SUCCEEDED");
    const launcherArn = `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-metabolomics.research-launcher`;
    const workloadArn = `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-metabolomics.research-workload`;
    // Issue #9: only for the tenant's service accounts, namespace and cluster, as the Pod Identity session tags say.
    expect(policyOf(iamRole(sandbox, "nfeks-metabolomics.research-workload")?.assumeRolePolicyDocument).Statement).toEqual([
      expect.objectContaining({
        Effect: "Allow",
        Principal: { Service: "pods.eks.amazonaws.com" },
        Action: ["sts:AssumeRole", "sts:TagSession"],
        Condition: {
          StringEquals: {
            "aws:RequestTag/eks-cluster-arn": `arn:aws:eks:eu-west-1:${ACCOUNT_ID}:cluster/research`,
            "aws:RequestTag/kubernetes-namespace": "metabolomics",
            "aws:RequestTag/kubernetes-service-account": ["tower-launcher-sa", "tower-compute-sa"],
          },
        },
      }),
    ]);
    const associations = [...clusterState(sandbox).podIdentityAssociations.values()].filter((a) => a.namespace === "metabolomics");
    expect(associations.map((a) => [a.serviceAccount, a.roleArn]).sort()).toEqual([
      ["tower-compute-sa", workloadArn],
      ["tower-launcher-sa", workloadArn],
    ]);
    for (const a of associations) expect(a.tags).toMatchObject({ "nf-eks-provisioner/tenant": "metabolomics" });
    expect(stepResult(run, "CreateIamResources").podIdentityAssociationIds).toEqual(
      expect.arrayContaining(associations.map((a) => a.associationId)),
    );
    // No IRSA annotation with Pod Identity.
    for (const sa of ["tower-launcher-sa", "tower-compute-sa"]) {
      expect(
        kubeObject(sandbox, "ServiceAccount", "metabolomics", sa)?.metadata.annotations?.["eks.amazonaws.com/role-arn"],
        sa,
      ).toBeUndefined();
    }
    expect(kubeObject(sandbox, "ConfigMap", "metabolomics", "nextflow-config")?.data?.["nextflow.config"]).toContain(
      "s3://metabolomics-nextflow-work/work",
    );

    expectClusterAccess(sandbox, launcherArn, "metabolomics", seededAwsAuth);
    expect(readyEventOf(sandbox, run.started.executionName)).toMatchObject({
      tenant: "metabolomics",
      roleArns: { launcher: launcherArn, workload: workloadArn },
    });
    await expectLauncherConfinedTo(sandbox, launcherArn, "metabolomics");
  });

  it("a failed run that changed the tenant's workload role (another namespace and bucket) puts its trust and S3 policy back", async () => {
    // Prepare: the tenant's environment, then a request of the same tenant for another namespace and bucket whose Report fails
    expect((await provision(sandbox, fusionRequest("genetics", { namespace: "genetics" }))).execution.status).toBe("SUCCEEDED");
    await settled(sandbox);
    const before = sandbox.snapshot().aws;
    const workload = "nfeks-genetics.research-workload";
    const trustBefore = iamRole(sandbox, workload)?.assumeRolePolicyDocument;
    const s3Before = iamRole(sandbox, workload)?.inlinePolicies.get("nfeks-genetics.research-fusion-s3");
    sandbox.faults.inject({ operation: "events:PutEvents", kind: "permanent", times: 1 });

    // Act
    const run = await updateTo(
      sandbox,
      fusionRequest("genetics", { namespace: "genetics-b", storage: { type: "fusion", bucket: "genetics-b-work", workDir: "work" } }),
    );

    // Assess: the role was pointed at the new namespace and bucket, and back again
    expect(run.execution.status).toBe("FAILED");
    expect(stepResult(run, "CreateIamResources")).not.toHaveProperty("changed"); // the previous documents stay out of the status route
    expect((await recordedStepResult(sandbox, run, "CreateIamResources")).changed).toEqual([
      {
        roleName: workload,
        previousTrustPolicy: expect.stringContaining("system:serviceaccount:genetics:"),
        previousInlinePolicy: { name: "nfeks-genetics.research-fusion-s3", document: expect.stringContaining("genetics-nextflow-work") },
        writtenTrustPolicy: expect.stringContaining("system:serviceaccount:genetics-b:"),
        writtenInlinePolicy: expect.stringContaining("genetics-b-work"),
      },
    ]);
    expect(stepResult(run, "UndoIamResources").undone).toEqual([
      `IAM role ${workload}: inline policy nfeks-genetics.research-fusion-s3 restored, trust policy restored`,
    ]);
    expect(iamRole(sandbox, workload)?.assumeRolePolicyDocument).toBe(trustBefore);
    expect(iamRole(sandbox, workload)?.inlinePolicies.get("nfeks-genetics.research-fusion-s3")).toBe(s3Before);
    await settled(sandbox);
    expect(sandbox.snapshot().aws).toStrictEqual(before);
  });
});
