/**
 * Teardown in the sandbox, beyond the happy path: a permanent fault at each of the teardown's Task states (the table
 * is checked against statemachines/deprovision.asl.json, so a new step needs a row) leaves the environment `failed`
 * with exactly what remains, and a repeated DELETE finishes the job; a fault a later removal makes good (the namespace
 * takes a Job, the service accounts take their annotations) ends `removed` with nothing remaining; a namespace holding
 * someone else's object is kept and reported; one tenant's teardown leaves another tenant on the same cluster
 * untouched; 404 for an unknown environment, 409 while a run holds the lease; a ComputeEnvironmentRemovalRequested
 * event on the bus tears down.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { Sandbox } from "../../local/sandbox.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import { CONFIG_MAPS, DEPLOYMENTS, NAMESPACES, PERSISTENT_VOLUME_CLAIMS } from "../../local/kube/resources.js";
import { defineProductRole, withoutAction } from "../../local/aws/product-roles.js";
import { LABEL_TENANT } from "../../functions/lib/domain/naming.js";
import type { ProvisionRequestInput } from "../../functions/lib/domain/request.js";
import { TEARDOWN_INCOMPLETE } from "../../functions/steps/teardown-record.js";
import { allStates, type AslMachine } from "../support/asl-definition.js";
import {
  CLUSTER,
  clusterState,
  FAST,
  fusionRequest,
  holdKubeCreates,
  iamRole,
  kubeObject,
  kubeObjects,
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

/** Everything outside the tenant's namespace (a namespace kept on purpose, with its content, is compared apart). */
function outsideNamespace(objects: KubeObject[], namespace: string): KubeObject[] {
  return objects.filter((o) => o.metadata.namespace !== namespace && !(o.kind === "Namespace" && o.metadata.name === namespace));
}

const withHeadJob = (tenant: string) =>
  pvcRequest(tenant, { namespace: tenant, headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });

const HOLD = "example.com/hold";

/** Someone else's ConfigMap in the tenant's namespace: the teardown keeps the namespace, so what is in it stays unless removed. */
function keepNamespace(sandbox: Sandbox, namespace: string): void {
  sandbox.kube.store.create(CONFIG_MAPS, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "someone-elses-settings" } }, namespace);
}

/** A permanent error (AccessDenied / 403) on every call of `operation` until released. */
const permanent =
  (operation: string) =>
  (sandbox: Sandbox): (() => void) => {
    sandbox.faults.inject({ operation, kind: "permanent" });
    return () => sandbox.faults.clear();
  };

/** One of the product's Lambda roles without `action` until released (its sessions see the change at once). */
const withoutPermission =
  (roleKey: string, action: string) =>
  (sandbox: Sandbox): (() => void) => {
    const role = sandbox.productRoles.find((r) => r.key === roleKey);
    if (!role) throw new Error(`no product role ${roleKey}`);
    defineProductRole(sandbox.aws, role, withoutAction(role.statements, action));
    return () => defineProductRole(sandbox.aws, role);
  };

/** A finalizer nobody releases on the tenant's claim (as a CSI driver or a backup operator would hold it), until released. */
const finalizerOnClaim = (sandbox: Sandbox, tenant: string): (() => void) => {
  sandbox.kube.store.mutate(PERSISTENT_VOLUME_CLAIMS, tenant, "tower-scratch", (claim) => {
    claim.metadata.finalizers = [...(claim.metadata.finalizers ?? []), HOLD];
  });
  return () =>
    sandbox.kube.store.mutate(PERSISTENT_VOLUME_CLAIMS, tenant, "tower-scratch", (claim) => {
      claim.metadata.finalizers = (claim.metadata.finalizers ?? []).filter((f: string) => f !== HOLD);
    });
};

/** The same finalizer on the tenant's namespace object itself (metadata.finalizers), until released. */
const finalizerOnNamespace = (sandbox: Sandbox, tenant: string): (() => void) => {
  sandbox.kube.store.mutate(NAMESPACES, undefined, tenant, (namespace) => {
    namespace.metadata.finalizers = [...(namespace.metadata.finalizers ?? []), HOLD];
  });
  return () =>
    sandbox.kube.store.mutate(NAMESPACES, undefined, tenant, (namespace) => {
      namespace.metadata.finalizers = (namespace.metadata.finalizers ?? []).filter((f: string) => f !== HOLD);
    });
};

type Mode = "API_AND_CONFIG_MAP" | "CONFIG_MAP";

interface FaultCase {
  /** the teardown's Task state the fault hits */
  step: string;
  /** what fails there, for the test's name */
  fault: string;
  /** the environment created (default: a PVC tenant with a head job) */
  request?: (tenant: string) => ProvisionRequestInput;
  /** someone else's object keeps the namespace, so what the namespace would otherwise take with it stays */
  keptNamespace?: boolean;
  /** the fault, made permanent after the create; returns what takes it away again */
  inject: (sandbox: Sandbox, tenant: string) => () => void;
  /** the execution's error (default TeardownIncomplete) */
  error?: string;
  /** what the execution's cause must contain (default: the record's first remaining line) */
  causeContains?: string;
  /** what the record must say remains (one line each) */
  remaining: (tenant: string) => RegExp[];
  /** the leftover, read from the emulators (or the record, when only the record was not written) */
  left: (sandbox: Sandbox, tenant: string, record: any) => unknown;
}

const denied = (operation: string) => `NotAllowed: .*${operation.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`;

/** What a teardown whose ResolveCluster failed reports: everything the record names, each with that failure. */
function unresolvedLines(tenant: string, mode: Mode): RegExp[] {
  const because = ": ResolveCluster failed \\(NotAllowed: eks:DescribeCluster failed: AccessDeniedException: ";
  const objects = [
    `NetworkPolicy ${tenant}/deny-from-other-namespaces`,
    `Role ${tenant}/tower-launcher-role`,
    `RoleBinding ${tenant}/tower-launcher-sa-binding`,
    `RoleBinding ${tenant}/tower-launcher-user-${tenant}-binding`,
    `ConfigMap ${tenant}/nextflow-config`,
    `LimitRange ${tenant}/tenant-defaults`,
    `Namespace ${tenant}`,
    `PersistentVolumeClaim ${tenant}/tower-scratch`,
    `ServiceAccount ${tenant}/tower-launcher-sa`,
  ];
  const access =
    mode === "CONFIG_MAP"
      ? `aws-auth mapping for arn:aws:iam::111122223333:role/nfeks-${tenant}\\.research-launcher`
      : `EKS access entry for arn:aws:iam::111122223333:role/nf-eks-provisioner/nfeks-${tenant}\\.research-launcher`;
  return [...objects, access, `IAM role nfeks-${tenant}\\.research-launcher`].map((what) => new RegExp(`^${what}${because}`));
}

/** Every row leaves the environment `failed` with what remains; a repeated DELETE finishes the job. */
const faultCases = (mode: Mode): FaultCase[] => [
  {
    step: "ResolveCluster",
    fault: "eks:DescribeCluster",
    request: (tenant) => pvcRequest(tenant, { namespace: tenant }),
    inject: permanent("eks:DescribeCluster"),
    remaining: (tenant) => unresolvedLines(tenant, mode),
    left: (sandbox, tenant) => kubeObject(sandbox, "Namespace", undefined, tenant) && iamRole(sandbox, `nfeks-${tenant}.research-launcher`),
  },
  {
    step: "RemoveHeadJobs",
    fault: "kube:DELETE jobs, namespace kept",
    keptNamespace: true,
    inject: permanent("kube:DELETE jobs"),
    remaining: (tenant) => [new RegExp(`^Job ${tenant}/nf-head-${tenant}-[0-9a-f]{8}: ${denied('cannot delete resource "jobs"')}`)],
    left: (sandbox, tenant) => kubeObjects(sandbox, "Job", tenant)[0],
  },
  {
    step: "RemoveStorage",
    fault: "kube:DELETE persistentvolumeclaims, namespace kept",
    keptNamespace: true,
    inject: permanent("kube:DELETE persistentvolumeclaims"),
    remaining: (tenant) => [
      new RegExp(`^PersistentVolumeClaim ${tenant}/tower-scratch: ${denied('cannot delete resource "persistentvolumeclaims"')}`),
    ],
    left: (sandbox, tenant) => kubeObject(sandbox, "PersistentVolumeClaim", tenant, "tower-scratch"),
  },
  {
    step: "RemoveStorage",
    fault: "kube:DELETE configmaps (nextflow-config), namespace kept",
    request: (tenant) => pvcRequest(tenant, { namespace: tenant }),
    keptNamespace: true,
    inject: permanent("kube:DELETE configmaps"),
    remaining: (tenant) => [new RegExp(`^ConfigMap ${tenant}/nextflow-config: ${denied('cannot delete resource "configmaps"')}`)],
    left: (sandbox, tenant) => kubeObject(sandbox, "ConfigMap", tenant, "nextflow-config"),
  },
  {
    step: "RemoveNamespaceAndRbac",
    fault: "kube:DELETE namespaces",
    inject: permanent("kube:DELETE namespaces"),
    remaining: (tenant) => [new RegExp(`^Namespace ${tenant}: NotAllowed: `)],
    left: (sandbox, tenant) => kubeObject(sandbox, "Namespace", undefined, tenant),
  },
  {
    step: "WaitForNamespaceRemoval",
    fault: `a foreign finalizer (${HOLD}) on the claim holds the namespace Terminating`,
    request: (tenant) => pvcRequest(tenant, { namespace: tenant }),
    inject: finalizerOnClaim,
    remaining: (tenant) => [
      new RegExp(
        `^WaitForNamespaceRemoval \\(NamespaceTerminating: Namespace ${tenant} is still Terminating \\(deleted at [^)]+\\), held by .*` +
          `condition NamespaceFinalizersRemaining \\(SomeFinalizersRemain\\): Some content in the namespace has finalizers remaining: ${HOLD} in 1 resource instances\\)$`,
      ),
    ],
    left: (sandbox, tenant) => kubeObject(sandbox, "Namespace", undefined, tenant)?.status?.phase === "Terminating" || undefined,
  },
  {
    step: "WaitForNamespaceRemoval",
    fault: `the namespace's own finalizer (${HOLD}) keeps it once it is empty`,
    request: (tenant) => pvcRequest(tenant, { namespace: tenant }),
    inject: finalizerOnNamespace,
    remaining: (tenant) => [
      new RegExp(
        `^WaitForNamespaceRemoval \\(NamespaceTerminating: Namespace ${tenant} is still Terminating \\(deleted at [^)]+\\), held by finalizers ${HOLD}\\)$`,
      ),
    ],
    left: (sandbox, tenant) => kubeObject(sandbox, "Namespace", undefined, tenant)?.status?.phase === "Terminating" || undefined,
  },
  mode === "CONFIG_MAP"
    ? {
        step: "RemoveClusterAccess",
        fault: "kube:PUT configmaps (aws-auth)",
        inject: permanent("kube:PUT configmaps"),
        remaining: (tenant) => [
          new RegExp(`^aws-auth mapping for arn:aws:iam::111122223333:role/nfeks-${tenant}\\.research-launcher: NotAllowed: `),
        ],
        left: (sandbox, tenant) =>
          JSON.stringify(kubeObject(sandbox, "ConfigMap", "kube-system", "aws-auth")?.data).includes(`nfeks-${tenant}.research-launcher`) ||
          undefined,
      }
    : {
        step: "RemoveClusterAccess",
        fault: "eks:DeleteAccessEntry",
        inject: permanent("eks:DeleteAccessEntry"),
        remaining: (tenant) => [
          new RegExp(
            `^EKS access entry arn:aws:iam::111122223333:role/nf-eks-provisioner/nfeks-${tenant}\\.research-launcher on research: NotAllowed: `,
          ),
        ],
        left: (sandbox, tenant) => JSON.stringify(sandbox.snapshot().aws).includes(`nfeks-${tenant}.research-launcher`) || undefined,
      },
  {
    step: "RemoveIamResources",
    fault: "iam:DeleteRole",
    inject: permanent("iam:DeleteRole"),
    remaining: (tenant) => [new RegExp(`^IAM role nfeks-${tenant}\\.research-launcher: NotAllowed: `)],
    left: (sandbox, tenant) => iamRole(sandbox, `nfeks-${tenant}.research-launcher`),
  },
  {
    step: "RemoveIamResources",
    fault: "eks:DeletePodIdentityAssociation",
    request: (tenant) => fusionRequest(tenant, { namespace: tenant, podIdentity: true }),
    inject: permanent("eks:DeletePodIdentityAssociation"),
    remaining: (tenant) =>
      ["tower-launcher-sa", "tower-compute-sa"].map(
        (sa) => new RegExp(`^Pod Identity association a-[0-9a-z]+ \\(${tenant}/${sa}\\): ${denied("eks:DeletePodIdentityAssociation")}`),
      ),
    left: (sandbox, tenant) =>
      JSON.stringify([...clusterState(sandbox).podIdentityAssociations.values()]).includes(`"${tenant}"`) || undefined,
  },
  {
    step: "RecordRemoval",
    fault: "dynamodb:UpdateItem denied to RecordRemoval",
    request: (tenant) => pvcRequest(tenant, { namespace: tenant }),
    inject: withoutPermission("RecordRemoval", "dynamodb:UpdateItem"),
    error: "RecordRemovalFailed",
    causeContains: "could not be recorded in the environment registry",
    // Every removal ran, but the record could not say what: the stopped-run rule records it failed, lease released.
    remaining: () => [/ended FAILED \(.*could not be recorded.*\) before it finished: .* a repeated DELETE finishes the job$/],
    left: (_sandbox, tenant, record) => record.owned.roles?.find((arn: string) => arn.endsWith(`/nfeks-${tenant}.research-launcher`)),
  },
];

/** Faults a later removal makes good: the teardown succeeds and nothing of the tenant's remains. */
const healedFaultCases: Array<Omit<FaultCase, "error" | "causeContains" | "remaining" | "left"> & { operation: string }> = [
  {
    step: "RemoveHeadJobs",
    fault: "kube:DELETE jobs: the namespace goes and takes the Job with it",
    operation: "kube:DELETE jobs",
    inject: permanent("kube:DELETE jobs"),
  },
  {
    step: "RemoveStorage",
    fault: "kube:PATCH serviceaccounts (IRSA annotations put back), namespace kept: the service accounts go next",
    request: (tenant) => fusionRequest(tenant, { namespace: tenant }),
    keptNamespace: true,
    operation: "kube:PATCH serviceaccounts",
    inject: permanent("kube:PATCH serviceaccounts"),
  },
];

const deprovisionTaskStates = (): string[] => {
  const definition = JSON.parse(readFileSync(new URL("../../statemachines/deprovision.asl.json", import.meta.url), "utf8")) as AslMachine;
  return [...allStates(definition).entries()].filter(([, located]) => located.state.Type === "Task").map(([name]) => name);
};

describe("the teardown fault table", () => {
  it.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("has a row for every Task state of deprovision.asl.json (%s)", (mode) => {
    // Prepare
    const tasks = deprovisionTaskStates();
    // Act
    const covered = new Set(faultCases(mode).map((c) => c.step));
    // Assess
    expect(tasks.length).toBeGreaterThan(5);
    expect(tasks.filter((task) => !covered.has(task))).toEqual([]);
    expect([...covered].filter((step) => !tasks.includes(step))).toEqual([]);
  });
});

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("teardown faults on a %s cluster", (authenticationMode) => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode }, (started) => (sandbox = started.sandbox));

  it.each(faultCases(authenticationMode).map((c, i) => ({ ...c, tenant: `fault-${i}` })))(
    "a permanent fault at $step ($fault): failed, with exactly what remains; a repeated DELETE finishes the job",
    async ({ request = withHeadJob, keptNamespace, inject, error = TEARDOWN_INCOMPLETE, causeContains, remaining, left, tenant }) => {
      // Prepare
      await settled(sandbox);
      const before = sandbox.snapshot();
      await createEnvironment(sandbox, request(tenant));
      if (keptNamespace) keepNamespace(sandbox, tenant);
      const release = inject(sandbox, tenant);

      try {
        // Act
        const failed = await teardown(sandbox, tenant);

        // Assess: the execution and the record say what remains, and that is what the emulators (or the record) still hold
        expect(failed.execution).toMatchObject({ status: "FAILED", error });
        const record = await until("the record to say failed", async () => {
          const body = (await readEnvironment(sandbox, tenant)).body;
          return body.status === "failed" ? body : undefined;
        });
        expect(record.lease).toBeUndefined();
        const expected = remaining(tenant);
        expect(record.owned.remaining).toHaveLength(expected.length);
        for (const [i, pattern] of expected.entries()) expect(record.owned.remaining[i]).toMatch(pattern);
        expect(failed.execution.cause).toContain(causeContains ?? record.owned.remaining[0]);
        expect(left(sandbox, tenant, record)).toBeDefined();
      } finally {
        release();
      }

      // Act: the same DELETE again
      const again = await teardown(sandbox, tenant);

      // Assess: everything of the tenant's is gone now (a namespace kept on purpose holds nothing of the product's)
      expect(again.execution).toMatchObject({ status: "SUCCEEDED" });
      const removed = (await readEnvironment(sandbox, tenant)).body;
      expect(removed.status).toBe("removed");
      expect(removed.owned.remaining).toBeUndefined();
      await settled(sandbox);
      const after = sandbox.snapshot();
      expect(after.aws).toStrictEqual(before.aws);
      expect(withoutAwsAuthVersion(outsideNamespace(after.kube, tenant))).toStrictEqual(
        withoutAwsAuthVersion(outsideNamespace(before.kube, tenant)),
      );
      const productsLeft = after.kube.filter((o) => o.metadata.namespace === tenant && o.metadata.labels?.[LABEL_TENANT] === tenant);
      expect(productsLeft).toEqual([]);
      expect(kubeObject(sandbox, "Namespace", undefined, tenant) !== undefined).toBe(keptNamespace === true);
    },
  );

  it.each(healedFaultCases.map((c, i) => ({ ...c, tenant: `healed-${i}` })))(
    "a permanent fault at $step ($fault): removed, nothing remains",
    async ({ request = withHeadJob, keptNamespace, inject, operation, tenant }) => {
      // Prepare
      await settled(sandbox);
      const before = sandbox.snapshot();
      await createEnvironment(sandbox, request(tenant));
      if (keptNamespace) keepNamespace(sandbox, tenant);
      const release = inject(sandbox, tenant);

      // Act
      let removed: Awaited<ReturnType<typeof teardown>>;
      let fired: string[];
      try {
        removed = await teardown(sandbox, tenant);
        fired = sandbox.faults.fired.map((f) => f.operation);
      } finally {
        release();
      }

      // Assess
      expect(fired).toContain(operation);
      expect(removed.execution).toMatchObject({ status: "SUCCEEDED" });
      const record = (await readEnvironment(sandbox, tenant)).body;
      expect(record.status).toBe("removed");
      expect(record.owned.remaining).toBeUndefined();
      await settled(sandbox);
      const after = sandbox.snapshot();
      expect(after.aws).toStrictEqual(before.aws);
      expect(withoutAwsAuthVersion(outsideNamespace(after.kube, tenant))).toStrictEqual(
        withoutAwsAuthVersion(outsideNamespace(before.kube, tenant)),
      );
      expect(after.kube.filter((o) => o.metadata.namespace === tenant && o.metadata.labels?.[LABEL_TENANT] === tenant)).toEqual([]);
    },
  );
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
