/**
 * Teardown in the sandbox (DELETE /environments/{tenant}/{region}/{cluster}, statemachines/deprovision.asl.json):
 * a create then a delete gives back the emulators' state from before the create (every IAM role and policy, access
 * entry, association, aws-auth and every Kubernetes object, as whole snapshots; the registry's records aside), in
 * both authentication modes, PVC with a head job and Fusion (IRSA, Pod Identity).
 */
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../local/sandbox.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import type { ProvisionRequestInput } from "../../functions/lib/domain/request.js";
import { FAST, fusionRequest, pvcRequest, settled, useSandbox } from "../support/sandbox-runs.js";
import { createEnvironment, deleteEnvironment, readEnvironment, teardown } from "../support/teardown-runs.js";
import { EVENT_SOURCE, REMOVED_DETAIL_TYPE } from "../../functions/lib/domain/product-events.js";
import { schemaProblems } from "../support/event-schemas.js";

/** aws-auth is edited and edited back in CONFIG_MAP mode: its resourceVersion moves on, nothing else may differ. */
function withoutAwsAuthVersion(objects: KubeObject[]): KubeObject[] {
  return objects.map((o) =>
    o.kind === "ConfigMap" && o.metadata.namespace === "kube-system" && o.metadata.name === "aws-auth"
      ? { ...o, metadata: { ...o.metadata, resourceVersion: "(edited)" } }
      : o,
  );
}

const cases: Array<{ name: string; request: (tenant: string) => ProvisionRequestInput }> = [
  {
    name: "PVC with a running head job",
    request: (tenant) => pvcRequest(tenant, { namespace: tenant, headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } }),
  },
  { name: "Fusion with IRSA", request: (tenant) => fusionRequest(tenant, { namespace: tenant }) },
  { name: "Fusion with Pod Identity", request: (tenant) => fusionRequest(tenant, { namespace: tenant, podIdentity: true }) },
];

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("teardown on a %s cluster", (authenticationMode) => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode }, (started) => (sandbox = started.sandbox));

  it.each(cases.map((c, i) => ({ ...c, tenant: `gone-${i}` })))(
    "create then delete ($name) leaves the emulators as they were before the create",
    async ({ request, tenant }) => {
      // Prepare
      await settled(sandbox);
      const before = sandbox.snapshot();
      const created = await createEnvironment(sandbox, request(tenant));
      expect(created.execution.status).toBe("SUCCEEDED");
      await settled(sandbox);
      expect(sandbox.snapshot()).not.toStrictEqual(before);

      // Act
      const removed = await teardown(sandbox, tenant);

      // Assess
      expect(removed.execution.status).toBe("SUCCEEDED");
      await settled(sandbox);
      const after = sandbox.snapshot();
      expect(after.aws).toStrictEqual(before.aws);
      expect(withoutAwsAuthVersion(after.kube)).toStrictEqual(withoutAwsAuthVersion(before.kube));
      const record = await readEnvironment(sandbox, tenant);
      expect(record.body).toMatchObject({ status: "removed", owned: {} });
      expect(record.body.lease).toBeUndefined();
      // ComputeEnvironmentRemoved, once, for this tenant, as its schema says, naming what went
      const removedEvents = sandbox.aws
        .events({ source: EVENT_SOURCE })
        .filter((e) => e.detailType === REMOVED_DETAIL_TYPE && (e.detail as { tenant: string }).tenant === tenant);
      expect(removedEvents).toHaveLength(1);
      expect(schemaProblems(REMOVED_DETAIL_TYPE, removedEvents[0]!.detail)).toEqual([]);
      expect((removedEvents[0]!.detail as { removed: string[] }).removed.length).toBeGreaterThan(0);
    },
  );

  it("a repeated DELETE of a removed environment is harmless: 200, nothing started", async () => {
    // Prepare
    await createEnvironment(sandbox, pvcRequest("twice", { namespace: "twice" }));
    await teardown(sandbox, "twice");
    await settled(sandbox);
    const before = sandbox.snapshot();
    const executions = (await sandbox.stepFunctions.listExecutions({ stateMachineArn: sandbox.deprovisionStateMachineArn })).executions
      ?.length;

    // Act
    const again = await deleteEnvironment(sandbox, "twice");

    // Assess
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ environment: { status: "removed" }, message: "already removed: nothing to do" });
    expect((await sandbox.stepFunctions.listExecutions({ stateMachineArn: sandbox.deprovisionStateMachineArn })).executions?.length).toBe(
      executions,
    );
    expect(sandbox.snapshot()).toStrictEqual(before);
  });
});
