/**
 * Re-runs and several tenants on one cluster, in the sandbox, in both authentication modes:
 *  - a re-run of the same request (a new execution: no idempotency key, or another key) succeeds and
 *    changes nothing at all (whole snapshots, resourceVersions included);
 *  - the same idempotency key answers with the same execution, a different body under it is 422;
 *  - two tenants side by side both succeed; a failed run (a third tenant's, or a re-run of the second's)
 *    is compensated without touching anything of the others.
 */
import { describe, expect, it } from "vitest";
import { ListExecutionsCommand, type SFNClient } from "@aws-sdk/client-sfn";
import type { Sandbox } from "../../local/sandbox.js";
import { fullHistory } from "../../functions/api/status.js";
import { summariseHistory } from "../../functions/lib/workflow/execution-summary.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import {
  ACCOUNT_ID,
  awsAuth,
  clusterState,
  FAST,
  kubeClientAs,
  mappedRoleArns,
  namespaceContent,
  postProvision,
  provision,
  pvcRequest,
  sessionArnOf,
  settled,
  statusOf,
  stepResult,
  taskPod,
  finish,
  useSandbox,
} from "../support/sandbox-runs.js";

/** The copy of aws-auth before an edit that earlier versions kept on the ConfigMap (now only in the step output). */
const PREVIOUS_AWS_AUTH = "nf-eks-provisioner/previous-aws-auth";

/** aws-auth without its resourceVersion (an undo is a write of its own); everything else, annotations included. */
function awsAuthContent(sandbox: Sandbox): KubeObject {
  const current = awsAuth(sandbox);
  const { resourceVersion: _version, ...metadata } = current.metadata;
  return { ...current, metadata };
}

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("on a %s cluster", (authenticationMode) => {
  let sandbox: Sandbox;
  let sfn: SFNClient;

  useSandbox({ ...FAST, authenticationMode }, (started) => ({ sandbox, sfn } = started));

  describe("re-running", () => {
    it("the same request again (a new execution) succeeds and changes nothing", async () => {
      // Prepare: a first run, its effects settled (no head job: a new execution would rightly make a new one)
      const request = pvcRequest("rerun", { namespace: "rerun" });
      const first = await provision(sandbox, request);
      expect(first.execution.status).toBe("SUCCEEDED");
      await settled(sandbox);
      const before = sandbox.snapshot();

      // Act: without a key (a fresh name), then under a key of its own
      const second = await provision(sandbox, request);
      await settled(sandbox);
      const afterSecond = sandbox.snapshot();
      const third = await provision(sandbox, request, { "Idempotency-Key": "retry-after-outage" });
      await settled(sandbox);

      // Assess: new executions, both succeeded, and not one write anywhere
      expect(new Set([first.started.executionName, second.started.executionName, third.started.executionName]).size).toBe(3);
      expect(third.started.executionName).toBe("rerun_retry-after-outage");
      for (const run of [second, third]) {
        expect(run.execution.status).toBe("SUCCEEDED");
        expect(stepResult(run, "CreateIamResources")).toMatchObject({ launcherCreated: false, created: [] });
        expect(stepResult(run, "CreateNamespaceAndRbac").created).toEqual([]);
        expect(stepResult(run, "CreateNamespaceAndRbac").adopted).toHaveLength(7);
        expect(stepResult(run, "GrantClusterAccess")).toMatchObject({ created: false });
        expect(stepResult(run, "ConfigureStorage").created).toEqual([]);
      }
      expect(afterSecond).toStrictEqual(before);
      expect(sandbox.snapshot()).toStrictEqual(before);
    });

    it("the same idempotency key answers with the same execution; another body under it is refused", async () => {
      // Prepare
      const request = pvcRequest("keyed", { namespace: "keyed", headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });
      const key = { "Idempotency-Key": "onboarding-42" };

      // Act: twice at once (the first still running), then again once it has finished
      const [a, b] = await Promise.all([postProvision(sandbox, request, key), postProvision(sandbox, request, key)]);
      const run = await finish(sandbox, a.body);
      const c = await postProvision(sandbox, request, key);
      const other = await postProvision(sandbox, { ...request, labels: { team: "someone-else" } }, key);

      // Assess
      expect([a.status, b.status, c.status]).toEqual([202, 202, 202]);
      expect(b.body).toEqual(a.body);
      expect(c.body).toEqual(a.body);
      expect(a.body.executionName).toBe("keyed_onboarding-42");
      expect(run.execution.status).toBe("SUCCEEDED");
      expect(other.status).toBe(422);
      expect(other.body.error).toBe("IdempotencyKeyReused");
      const listed = await sfn.send(new ListExecutionsCommand({ stateMachineArn: sandbox.stateMachineArn }));
      expect(listed.executions?.filter((e) => e.name?.startsWith("keyed"))).toHaveLength(1);
    });
  });

  describe("two tenants on one cluster", () => {
    const tenants = ["alpha", "beta"] as const;
    const launcherOf = (tenant: string) => `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/nfeks-${tenant}.research-launcher`;
    /** aws-auth holds role ARNs without their path (EKS matches them so). */
    const mappedArnOf = (tenant: string) => `arn:aws:iam::${ACCOUNT_ID}:role/nfeks-${tenant}.research-launcher`;

    it("both succeed, each in its own namespace with its own launcher", async () => {
      // Act
      const runs = [];
      for (const tenant of tenants) runs.push(await provision(sandbox, pvcRequest(tenant, { namespace: tenant })));

      // Assess
      expect(runs.map((r) => r.execution.status)).toEqual(["SUCCEEDED", "SUCCEEDED"]);
      for (const tenant of tenants) {
        const content = namespaceContent(sandbox, tenant).filter((o) => o.metadata.labels?.["nf-eks-provisioner/tenant"] === tenant);
        expect(content.map((o) => o.kind).sort()).toEqual([
          "ConfigMap",
          "LimitRange",
          "Namespace",
          "NetworkPolicy",
          "PersistentVolumeClaim",
          "Role",
          "RoleBinding",
          "RoleBinding",
          "ServiceAccount",
        ]);
        expect(sandbox.aws.state.iam.roles.has(`nfeks-${tenant}.research-launcher`)).toBe(true);
      }
      if (authenticationMode === "CONFIG_MAP") {
        expect(mappedRoleArns(sandbox)).toEqual(expect.arrayContaining(tenants.map(mappedArnOf)));
      } else {
        for (const tenant of tenants) expect(clusterState(sandbox).accessEntries.has(launcherOf(tenant))).toBe(true);
      }
    });

    it("a failed run of a third tenant is compensated and leaves the first two intact", async () => {
      // Prepare: everything of the third tenant is made, then Report fails
      await settled(sandbox);
      const before = sandbox.snapshot();
      const awsAuthBefore = awsAuthContent(sandbox);
      sandbox.faults.inject({ operation: "events:PutEvents", kind: "permanent", times: 1 });

      // Act
      const run = await provision(
        sandbox,
        pvcRequest("gamma", { namespace: "gamma", headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } }),
      );

      // Assess
      expect(run.execution.status).toBe("FAILED");
      expect(run.view.failedStep).toBe("Report");
      await settled(sandbox);
      const after = sandbox.snapshot();
      expect(after.aws).toStrictEqual(before.aws);
      const others = (objects: KubeObject[]) => objects.filter((o) => !(o.kind === "ConfigMap" && o.metadata.name === "aws-auth"));
      expect(others(after.kube)).toStrictEqual(others(before.kube));
      // The shared aws-auth keeps both tenants' mappings and the node role's, exactly.
      expect(awsAuthContent(sandbox)).toStrictEqual(awsAuthBefore);
    });

    it("a failed re-run of the second tenant removes nothing: not its earlier run's work, not the first tenant's", async () => {
      // Prepare
      await settled(sandbox);
      const before = sandbox.snapshot();
      sandbox.faults.inject({ operation: "events:PutEvents", kind: "permanent", times: 1 });

      // Act
      const run = await provision(sandbox, pvcRequest("beta", { namespace: "beta" }));

      // Assess: compensation kept everything it did not create
      expect(run.execution.status).toBe("FAILED");
      const kept = (step: string) => stepResult<{ undone: string[]; kept: string[] } | undefined>(run, step) ?? { undone: [], kept: [] };
      expect(kept("UndoNamespaceAndRbac").undone).toEqual([]);
      expect(kept("UndoNamespaceAndRbac").kept).toContain("Namespace beta: not created by this run");
      expect(kept("UndoIamResources")).toEqual({ undone: [], kept: ["IAM role nfeks-beta.research-launcher: not created by this run"] });
      await settled(sandbox);
      expect(sandbox.snapshot()).toStrictEqual(before);
    });

    // With other tenants' mappings in place, the undo leaves aws-auth exactly as before: the copy of the
    // previous content lives in the step output, not in an annotation shared by every tenant's edits.
    it.runIf(authenticationMode === "CONFIG_MAP")(
      "a failed run beside other tenants puts aws-auth back exactly, annotations included",
      async () => {
        // Prepare
        await settled(sandbox);
        const before = awsAuthContent(sandbox);
        sandbox.faults.inject({ operation: "kube:POST persistentvolumeclaims", kind: "permanent", times: 1 });

        // Act
        const run = await provision(sandbox, pvcRequest("delta", { namespace: "delta" }));

        // Assess
        expect(run.execution.status).toBe("FAILED");
        // The copy is in the step's output, for the undo; the status response leaves it out (every tenant's mappings).
        expect(stepResult(run, "GrantClusterAccess")).not.toHaveProperty("previousAwsAuth");
        const granted = summariseHistory(await fullHistory(sfn, run.started.executionArn)).steps.find(
          (s) => s.name === "GrantClusterAccess",
        );
        expect((granted?.result as { previousAwsAuth?: unknown } | undefined)?.previousAwsAuth).toEqual(before.data);
        expect(awsAuthContent(sandbox)).toStrictEqual(before);
        expect(awsAuth(sandbox).metadata.annotations?.[PREVIOUS_AWS_AUTH]).toBeUndefined();
      },
    );

    // Each tenant's launcher is mapped to a Kubernetes user of its own (tower-launcher-user-<tenant>),
    // and only that user is bound in the tenant's namespace.
    it("one tenant's launcher cannot create pods in another tenant's namespace", async () => {
      // Prepare
      const beta = await kubeClientAs(sandbox, sessionArnOf(launcherOf("beta")));

      // Act
      const inOwn = await statusOf(beta.createNamespacedPod({ namespace: "beta", body: taskPod("beta-own") }));
      const inAlpha = await statusOf(beta.createNamespacedPod({ namespace: "alpha", body: taskPod("beta-intruder") }));

      // Assess
      expect(inOwn).toBe(200);
      expect(inAlpha).toBe(403);
    });
  });
});
