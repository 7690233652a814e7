/**
 * Teardown in the sandbox, beyond the happy path: a permanent fault at each removal leaves the environment `failed`
 * with exactly what remains (and a repeated DELETE finishes the job); a namespace holding someone else's object is
 * kept and reported; one tenant's teardown leaves another tenant on the same cluster untouched; 404 for an unknown
 * environment, 409 while a run holds the lease; a ComputeEnvironmentRemovalRequested event on the bus tears down.
 */
import { describe, expect, it } from "vitest";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { Sandbox } from "../../local/sandbox.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import { DEPLOYMENTS } from "../../local/kube/resources.js";
import {
  CLUSTER,
  FAST,
  holdKubeCreates,
  iamRole,
  kubeObject,
  pvcRequest,
  RUN_TIMEOUT_MS,
  settled,
  until,
  useSandbox,
} from "../support/sandbox-runs.js";
import { createEnvironment, deleteEnvironment, postEnvironment, readEnvironment, teardown } from "../support/teardown-runs.js";

function withoutAwsAuthVersion(objects: KubeObject[]): KubeObject[] {
  return objects.map((o) =>
    o.kind === "ConfigMap" && o.metadata.namespace === "kube-system" && o.metadata.name === "aws-auth"
      ? { ...o, metadata: { ...o.metadata, resourceVersion: "(edited)" } }
      : o,
  );
}

const withHeadJob = (tenant: string) =>
  pvcRequest(tenant, { namespace: tenant, headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });

interface FaultCase {
  step: string;
  operation: string;
  /** what the record must say remains (one line each) */
  remaining: (tenant: string) => RegExp[];
  /** the leftover, read from the emulators */
  left: (sandbox: Sandbox, tenant: string) => unknown;
}

const faultCases = (mode: "API_AND_CONFIG_MAP" | "CONFIG_MAP"): FaultCase[] => [
  {
    step: "RemoveNamespaceAndRbac",
    operation: "kube:DELETE namespaces",
    remaining: (tenant) => [new RegExp(`^Namespace ${tenant}: NotAllowed: `)],
    left: (sandbox, tenant) => kubeObject(sandbox, "Namespace", undefined, tenant),
  },
  mode === "CONFIG_MAP"
    ? {
        step: "RemoveClusterAccess",
        operation: "kube:PUT configmaps",
        remaining: (tenant) => [
          new RegExp(`^aws-auth mapping for arn:aws:iam::111122223333:role/nfeks-${tenant}\\.research-launcher: NotAllowed: `),
        ],
        left: (sandbox, tenant) =>
          JSON.stringify(kubeObject(sandbox, "ConfigMap", "kube-system", "aws-auth")?.data).includes(`nfeks-${tenant}.research-launcher`) ||
          undefined,
      }
    : {
        step: "RemoveClusterAccess",
        operation: "eks:DeleteAccessEntry",
        remaining: (tenant) => [
          new RegExp(
            `^EKS access entry arn:aws:iam::111122223333:role/nf-eks-provisioner/nfeks-${tenant}\\.research-launcher on research: NotAllowed: `,
          ),
        ],
        left: (sandbox, tenant) => JSON.stringify(sandbox.snapshot().aws).includes(`nfeks-${tenant}.research-launcher`) || undefined,
      },
  {
    step: "RemoveIamResources",
    operation: "iam:DeleteRole",
    remaining: (tenant) => [new RegExp(`^IAM role nfeks-${tenant}\\.research-launcher: NotAllowed: `)],
    left: (sandbox, tenant) => iamRole(sandbox, `nfeks-${tenant}.research-launcher`),
  },
];

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("teardown faults on a %s cluster", (authenticationMode) => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode }, (started) => (sandbox = started.sandbox));

  it.each(faultCases(authenticationMode).map((c, i) => ({ ...c, tenant: `fault-${i}` })))(
    "a permanent fault at $step ($operation): failed, with exactly what remains; a repeated DELETE finishes the job",
    async ({ operation, remaining, left, tenant }) => {
      // Prepare
      await settled(sandbox);
      const before = sandbox.snapshot();
      await createEnvironment(sandbox, withHeadJob(tenant));
      sandbox.faults.inject({ operation, kind: "permanent" });

      // Act
      const failed = await teardown(sandbox, tenant);
      sandbox.faults.clear();

      // Assess: the execution and the record say what remains, and that is what the emulators still hold
      expect(failed.execution).toMatchObject({ status: "FAILED", error: "TeardownIncomplete" });
      const record = (await readEnvironment(sandbox, tenant)).body;
      expect(record.status).toBe("failed");
      expect(record.lease).toBeUndefined();
      const expected = remaining(tenant);
      expect(record.owned.remaining).toHaveLength(expected.length);
      for (const [i, pattern] of expected.entries()) expect(record.owned.remaining[i]).toMatch(pattern);
      expect(failed.execution.cause).toContain(record.owned.remaining[0]);
      await settled(sandbox);
      expect(left(sandbox, tenant)).toBeDefined();

      // Act: the same DELETE again
      const again = await teardown(sandbox, tenant);

      // Assess: everything is gone now
      expect(again.execution.status).toBe("SUCCEEDED");
      expect((await readEnvironment(sandbox, tenant)).body).toMatchObject({ status: "removed", owned: {} });
      await settled(sandbox);
      const after = sandbox.snapshot();
      expect(after.aws).toStrictEqual(before.aws);
      expect(withoutAwsAuthVersion(after.kube)).toStrictEqual(withoutAwsAuthVersion(before.kube));
    },
  );

  it("a permanent fault deleting the head Job: the namespace goes and takes the Job with it, so nothing remains", async () => {
    // Prepare
    await settled(sandbox);
    const before = sandbox.snapshot();
    await createEnvironment(sandbox, withHeadJob("healed"));
    sandbox.faults.inject({ operation: "kube:DELETE jobs", kind: "permanent" });

    // Act
    const removed = await teardown(sandbox, "healed");

    // Assess
    expect(sandbox.faults.fired.some((f) => f.operation === "kube:DELETE jobs")).toBe(true);
    expect(removed.execution.status).toBe("SUCCEEDED");
    expect((await readEnvironment(sandbox, "healed")).body).toMatchObject({ status: "removed", owned: {} });
    await settled(sandbox);
    expect(withoutAwsAuthVersion(sandbox.snapshot().kube)).toStrictEqual(withoutAwsAuthVersion(before.kube));
  });
});

describe("teardown, entry points and neighbours", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST }, (started) => (sandbox = started.sandbox));

  it("answers 404 EnvironmentNotFound for an environment the registry does not know, and starts nothing", async () => {
    // Act
    const answer = await deleteEnvironment(sandbox, "nobody");
    // Assess
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ error: "EnvironmentNotFound" });
    expect((await sandbox.stepFunctions.listExecutions({ stateMachineArn: sandbox.deprovisionStateMachineArn })).executions).toEqual([]);
  });

  it("answers 409 RunInProgress while a run holds the environment's lease, naming that run", async () => {
    // Prepare: the create run is held before its head Job
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const undo = holdKubeCreates("Job", () => released);
    try {
      const created = await postEnvironment(sandbox, withHeadJob("busy"));
      expect(created.status).toBe(202);
      await until(
        "the run to reach its head job",
        async () =>
          (await readEnvironment(sandbox, "busy")).body.lease !== undefined &&
          kubeObject(sandbox, "PersistentVolumeClaim", "busy", "tower-scratch"),
      );

      // Act
      const answer = await deleteEnvironment(sandbox, "busy");

      // Assess
      expect(answer.status).toBe(409);
      expect(answer.body).toMatchObject({ error: "RunInProgress", executionArn: created.body.executionArn });
      expect((await readEnvironment(sandbox, "busy")).body.status).toBe("provisioning");
      release();
      await sandbox.stepFunctions.waitFor(created.body.executionArn, { timeoutMs: RUN_TIMEOUT_MS });
    } finally {
      release();
      undo();
    }
    const removed = await teardown(sandbox, "busy");
    expect(removed.execution.status).toBe("SUCCEEDED");
  });

  it("deleting one tenant leaves another tenant on the same cluster untouched", async () => {
    // Prepare
    await createEnvironment(sandbox, withHeadJob("stays"));
    await createEnvironment(sandbox, withHeadJob("leaves"));
    await settled(sandbox);
    const staying = (state: ReturnType<Sandbox["snapshot"]>) => ({
      kube: state.kube.filter(
        (o) => o.metadata.namespace === "stays" || o.metadata.name === "stays" || JSON.stringify(o).includes("-stays"),
      ),
      aws: JSON.stringify(state.aws)
        .match(/[^"]*nfeks-stays[^"]*/g)
        ?.sort(),
    });
    const before = staying(sandbox.snapshot());

    // Act
    const removed = await teardown(sandbox, "leaves");

    // Assess
    expect(removed.execution.status).toBe("SUCCEEDED");
    await settled(sandbox);
    const after = sandbox.snapshot();
    expect(staying(after)).toStrictEqual(before);
    expect(before.kube.length).toBeGreaterThan(5);
    expect(after.kube.filter((o) => o.metadata.namespace === "leaves")).toEqual([]);
    expect((await readEnvironment(sandbox, "stays")).body.status).toBe("ready");
  });

  it("keeps a namespace holding someone else's object, reports it, and removes the rest", async () => {
    // Prepare
    await createEnvironment(sandbox, pvcRequest("shared", { namespace: "shared" }));
    sandbox.kube.store.create(
      DEPLOYMENTS,
      { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "someone-elses-app" } },
      "shared",
    );

    // Act
    const removed = await teardown(sandbox, "shared");

    // Assess
    expect(removed.execution.status).toBe("SUCCEEDED");
    const record = (await readEnvironment(sandbox, "shared")).body;
    expect(record.status).toBe("removed");
    expect(record.owned.kept).toEqual([
      "Namespace shared: the product's for tenant shared but now holds objects it did not create (Deployment someone-elses-app)",
    ]);
    await settled(sandbox);
    expect(kubeObject(sandbox, "Namespace", undefined, "shared")).toBeDefined();
    expect(kubeObject(sandbox, "Deployment", "shared", "someone-elses-app")).toBeDefined();
    expect(kubeObject(sandbox, "PersistentVolumeClaim", "shared", "tower-scratch")).toBeUndefined();
    expect(kubeObject(sandbox, "Role", "shared", "tower-launcher-role")).toBeUndefined();
    expect(iamRole(sandbox, "nfeks-shared.research-launcher")).toBeUndefined();
  });

  it("a ComputeEnvironmentRemovalRequested event on the bus tears the environment down", async () => {
    // Prepare
    await createEnvironment(sandbox, pvcRequest("evented", { namespace: "evented" }));
    const events = new EventBridgeClient({ region: CLUSTER.region, endpoint: sandbox.awsUrl });

    // Act
    const put = await events.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: "nf-eks-provisioner",
            Source: "com.example.onboarding",
            DetailType: "ComputeEnvironmentRemovalRequested",
            Detail: JSON.stringify({ tenant: "evented", cluster: { ...CLUSTER } }),
          },
        ],
      }),
    );
    events.destroy();

    // Assess
    expect(put.FailedEntryCount).toBe(0);
    await until(
      "the teardown to be recorded",
      async () => (await readEnvironment(sandbox, "evented")).body.status === "removed",
      RUN_TIMEOUT_MS,
    );
    await settled(sandbox);
    expect(kubeObject(sandbox, "Namespace", undefined, "evented")).toBeUndefined();
    expect(iamRole(sandbox, "nfeks-evented.research-launcher")).toBeUndefined();
  });
});
