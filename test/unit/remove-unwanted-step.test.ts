/**
 * RemoveUnwantedResources (steps/remove-unwanted.ts), built by createRemoveUnwantedStep around a fake cluster
 * (FakeKubeApi) and the fake EKS of test/support/fake-eks.ts: an update deletes what the previous generation owned and
 * the new one no longer wants, each only when it carries the tenant's marks. A namespace no longer used goes whole
 * when nothing in it is anyone else's; else it stays (said why) and the product's objects in it go one by one,
 * bindings first. A former launcher's access goes last. Anything without the marks is kept and said; a repeat finds
 * nothing left; a failure fails the step, named.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import { DeleteAccessEntryCommand, EKSClient } from "@aws-sdk/client-eks";
import type { KubernetesObject, V1ConfigMap } from "@kubernetes/client-node";
import type { ProvisionerError } from "../../functions/lib/domain/errors.js";
import { launcherGroup, launcherUsername, ownershipLabels, ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { ANNOTATION_AWS_AUTH_MAPPINGS } from "../../functions/lib/kube/aws-auth/index.js";
import type { AccessResult, KubeRef, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { createRemoveUnwantedStep } from "../../functions/steps/remove-unwanted.js";
import { useFakeEks } from "../support/fake-eks.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { ACCOUNT, NS, OTHER_RUN, RUN, TENANT, markOf, resolvedCluster, stepState, useFakeKube } from "../support/fixtures.js";

const { eks, entries, seedEntry } = useFakeEks();
/** The cluster client every handler would build from `$.cluster` when none is given. */
const kube = useFakeKube();
/** The step's handler, handed this test's fake cluster and an EKS client through the step's factory. */
const apply = (state: WorkflowState) =>
  createRemoveUnwantedStep({ kube: kube(), eks: new EKSClient({ region: "eu-west-1" }) }).apply(state);

/** The namespace of the previous generation (the update moves the tenant to NS). */
const OLD_NS = "tower-old";
const LAUNCHER = `arn:aws:iam::${ACCOUNT}:role/nf-eks-provisioner/nfeks-genomics.research-launcher`;
const FORMER_LAUNCHER = `arn:aws:iam::${ACCOUNT}:role/seqera-launcher-a`;
const RBAC_API = "rbac.authorization.k8s.io/v1";

function ref(kind: string, name: string, namespace?: string): KubeRef {
  return { apiVersion: kind === "Role" || kind === "RoleBinding" ? RBAC_API : "v1", kind, name, ...(namespace ? { namespace } : {}) };
}

/** The tenant's marks, as the run of the previous generation left them. */
const OURS = ownershipLabels(TENANT, markOf(OTHER_RUN));

/** What CreateNamespaceAndRbac makes in a namespace: the namespace, the launcher's ServiceAccount, Role and RoleBinding. */
function rbacObjects(namespace: string): KubeRef[] {
  return [
    ref("Namespace", namespace),
    ref("ServiceAccount", "tower-launcher-sa", namespace),
    ref("Role", "tower-launcher-role", namespace),
    ref("RoleBinding", "tower-launcher-role", namespace),
  ];
}

/** The object a ref names, in the cluster, with these labels. */
function seedRef(target: KubeRef, labels: Record<string, string> | undefined = OURS): void {
  kube().seed({
    apiVersion: target.apiVersion,
    kind: target.kind,
    metadata: { name: target.name, ...(target.namespace ? { namespace: target.namespace } : {}), ...(labels ? { labels } : {}) },
  } as KubernetesObject);
}

function access(principalArn: string, method: AccessResult["method"] = "access-entry"): AccessResult {
  return { method, principalArn, username: launcherUsername(TENANT), groups: [launcherGroup(TENANT)], created: true };
}

/**
 * An update run after its other steps: the new generation owns `current` (in NS, and the launcher's access unless
 * `access: undefined` is given); the previous one owned `previous` (and `previousAccess`).
 */
function updateState(opts: {
  previous: KubeRef[];
  current?: KubeRef[];
  previousAccess?: { method: string; principalArn: string };
  access?: AccessResult;
  authenticationMode?: "API" | "CONFIG_MAP";
}): WorkflowState {
  const current = opts.current ?? rbacObjects(NS);
  return stepState({}, RUN, {
    cluster: resolvedCluster({ authenticationMode: opts.authenticationMode ?? "API" }),
    iam: { launcherArn: LAUNCHER, launcherKind: "role", launcherCreated: false, created: [] },
    rbac: {
      namespace: NS,
      serviceAccount: "tower-launcher-sa",
      role: "tower-launcher-role",
      created: current,
      adopted: [],
    },
    ...("access" in opts ? (opts.access ? { access: opts.access } : {}) : { access: access(LAUNCHER) }),
    update: {
      previous: {
        spec: {},
        generation: 1,
        owned: {
          roles: [],
          podIdentityAssociations: [],
          kubernetes: opts.previous,
          ...(opts.previousAccess ? { clusterAccess: opts.previousAccess } : {}),
        },
      },
      generation: 2,
    },
  });
}

/** The cluster after the update's other steps: the previous generation in OLD_NS, the new one in NS. */
function seedBothGenerations(): void {
  for (const target of [...rbacObjects(OLD_NS), ...rbacObjects(NS)]) seedRef(target);
}

/** `Kind namespace/name` of each object deleted, in order. */
function deletions(api: FakeKubeApi = kube()): string[] {
  return api.callsOf("delete").map((call) => `${call.kind} ${call.namespace ? `${call.namespace}/` : ""}${call.name}`);
}

describe("createRemoveUnwantedStep", () => {
  it("acts on the cluster client it is given, not one built from $.cluster", async () => {
    // Prepare
    const given = new FakeKubeApi();
    given.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: OLD_NS, labels: OURS } });
    const step = createRemoveUnwantedStep({ kube: given });

    // Act
    const result = await step.apply(updateState({ previous: [ref("Namespace", OLD_NS)] }));

    // Assess
    expect(result.removed).toEqual([`Namespace ${OLD_NS}`]);
    expect(given.inventory()).toEqual([]);
    expect(kube().calls).toEqual([]);
  });

  it("removes nothing, and asks no cluster, in a run that is not an update", async () => {
    // Prepare
    seedBothGenerations();
    const provision = updateState({ previous: rbacObjects(OLD_NS) });
    delete provision.update;

    // Act
    const result = await apply(provision);

    // Assess
    expect(result).toEqual({ removed: [], kept: [] });
    expect(kube().calls).toEqual([]);
  });
});

describe("RemoveUnwantedResources removes", () => {
  it("the namespace the new generation no longer uses, whole (its objects go with it), and nothing the new generation owns", async () => {
    // Prepare
    seedBothGenerations();

    // Act
    const result = await apply(updateState({ previous: rbacObjects(OLD_NS) }));

    // Assess
    expect(result).toEqual({ removed: [`Namespace ${OLD_NS}`], kept: [] });
    expect(deletions()).toEqual([`Namespace ${OLD_NS}`]);
    expect(kube().inventory()).toEqual([
      `Namespace/${NS}`,
      `Role/${NS}/tower-launcher-role`,
      `RoleBinding/${NS}/tower-launcher-role`,
      `ServiceAccount/${NS}/tower-launcher-sa`,
    ]);
  });

  it("objects no longer wanted in the namespace that stays, one by one, bindings first whatever the record's order", async () => {
    // Prepare: the previous generation also had a compute ServiceAccount, its binding and a quota
    const leftovers = [
      ref("ResourceQuota", "tower-quota", NS),
      ref("ServiceAccount", "tower-compute-sa", NS),
      ref("RoleBinding", "tower-compute-binding", NS),
    ];
    seedBothGenerations();
    for (const target of leftovers) seedRef(target);

    // Act
    const result = await apply(updateState({ previous: [...rbacObjects(NS), ...leftovers] }));

    // Assess
    const expected = [
      `RoleBinding ${NS}/tower-compute-binding`,
      `ServiceAccount ${NS}/tower-compute-sa`,
      `ResourceQuota ${NS}/tower-quota`,
    ];
    expect(result).toEqual({ removed: expected, kept: [] });
    expect(deletions()).toEqual(expected);
    expect(
      kube()
        .all("ServiceAccount", NS)
        .map((sa) => sa.metadata?.name),
    ).toEqual(["tower-launcher-sa"]);
  });

  it("a namespace already Terminating as removed, without deleting it or its objects again", async () => {
    // Prepare
    seedBothGenerations();
    kube().seed({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: OLD_NS, labels: OURS, deletionTimestamp: new Date("2025-03-03T09:30:00.000Z") },
    });

    // Act
    const result = await apply(updateState({ previous: rbacObjects(OLD_NS) }));

    // Assess
    expect(result).toEqual({ removed: [`Namespace ${OLD_NS} (terminating)`], kept: [] });
    expect(deletions()).toEqual([]);
  });

  it("the former launcher's access entry (tagged as the tenant's), last, and never the new launcher's", async () => {
    // Prepare
    seedBothGenerations();
    const tags = tagsToRecord(ownershipTags(TENANT, markOf(OTHER_RUN)));
    seedEntry(FORMER_LAUNCHER, { username: launcherUsername(TENANT), tags });
    seedEntry(LAUNCHER, { username: launcherUsername(TENANT), tags: tagsToRecord(ownershipTags(TENANT, markOf(RUN))) });

    // Act
    const result = await apply(
      updateState({ previous: rbacObjects(OLD_NS), previousAccess: { method: "access-entry", principalArn: FORMER_LAUNCHER } }),
    );

    // Assess
    expect(result).toEqual({ removed: [`Namespace ${OLD_NS}`, `EKS access entry ${FORMER_LAUNCHER} on research`], kept: [] });
    expect([...entries.keys()]).toEqual([LAUNCHER]);
    expect(eks).toHaveReceivedCommandTimes(DeleteAccessEntryCommand, 1);
  });

  it("the former launcher's aws-auth mapping our run recorded, through the cluster client it is given; other mappings stay", async () => {
    // Prepare
    const mapping = (arn: string) =>
      `- rolearn: ${arn}\n  username: ${launcherUsername(TENANT)}\n  groups:\n  - ${launcherGroup(TENANT)}\n`;
    const byHand = `arn:aws:iam::${ACCOUNT}:role/platform-admins`;
    kube().seed<V1ConfigMap>({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "aws-auth",
        namespace: "kube-system",
        annotations: { [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [FORMER_LAUNCHER]: markOf(OTHER_RUN), [LAUNCHER]: markOf(RUN) }) },
      },
      data: {
        mapRoles: `- rolearn: ${byHand}\n  username: admin\n  groups:\n  - platform-admins\n${mapping(FORMER_LAUNCHER)}${mapping(LAUNCHER)}`,
      },
    });

    // Act
    const result = await apply(
      updateState({
        previous: [],
        current: [],
        authenticationMode: "CONFIG_MAP",
        previousAccess: { method: "aws-auth", principalArn: FORMER_LAUNCHER },
        access: access(LAUNCHER, "aws-auth"),
      }),
    );

    // Assess
    const mapRoles = kube().get<V1ConfigMap>("v1", "ConfigMap", "aws-auth", "kube-system")?.data?.mapRoles ?? "";
    expect(result).toEqual({ removed: [`aws-auth mapping for ${FORMER_LAUNCHER}`], kept: [] });
    expect(mapRoles).not.toContain(FORMER_LAUNCHER);
    expect(mapRoles).toContain(LAUNCHER);
    expect(mapRoles).toContain(byHand);
  });

  it("no launcher's access when the new run granted none (that says nothing about the launcher)", async () => {
    // Prepare
    seedEntry(FORMER_LAUNCHER, { tags: tagsToRecord(ownershipTags(TENANT, markOf(OTHER_RUN))) });

    // Act
    const result = await apply(
      updateState({
        previous: [],
        current: [],
        access: undefined,
        previousAccess: { method: "access-entry", principalArn: FORMER_LAUNCHER },
      }),
    );

    // Assess
    expect(result).toEqual({ removed: [], kept: [] });
    expect(entries.has(FORMER_LAUNCHER)).toBe(true);
    expect(eks.calls()).toHaveLength(0);
  });

  it("nothing more on a repeat: what is already gone is done", async () => {
    // Prepare
    seedBothGenerations();
    const tags = tagsToRecord(ownershipTags(TENANT, markOf(OTHER_RUN)));
    seedEntry(FORMER_LAUNCHER, { tags });
    const state = updateState({
      previous: [...rbacObjects(OLD_NS), ref("ServiceAccount", "tower-compute-sa", NS)],
      previousAccess: { method: "access-entry", principalArn: FORMER_LAUNCHER },
    });
    seedRef(ref("ServiceAccount", "tower-compute-sa", NS));
    await apply(state);
    const before = kube().mutations;

    // Act
    const repeat = await apply(state);

    // Assess
    expect(repeat).toEqual({ removed: [], kept: [] });
    expect(kube().mutations).toBe(before);
    expect(eks).toHaveReceivedCommandTimes(DeleteAccessEntryCommand, 1);
  });
});

describe("RemoveUnwantedResources keeps, and says why", () => {
  it("a namespace holding someone else's object; the product's objects in it go one by one, bindings first", async () => {
    // Prepare
    seedBothGenerations();
    kube().seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "their-data", namespace: OLD_NS } });

    // Act
    const result = await apply(updateState({ previous: rbacObjects(OLD_NS) }));

    // Assess
    expect(result.kept).toEqual([
      `Namespace ${OLD_NS}: no longer used, but kept: holds objects that are not the product's (ConfigMap their-data)`,
    ]);
    expect(result.removed).toEqual([
      `RoleBinding ${OLD_NS}/tower-launcher-role`,
      `Role ${OLD_NS}/tower-launcher-role`,
      `ServiceAccount ${OLD_NS}/tower-launcher-sa`,
    ]);
    expect(deletions()).toEqual(result.removed);
    expect(
      kube()
        .inventory()
        .filter((line) => line.includes(OLD_NS)),
    ).toEqual([`ConfigMap/${OLD_NS}/their-data`, `Namespace/${OLD_NS}`]);
  });

  it("a namespace holding a kind the provisioner may not list (it cannot tell what is there)", async () => {
    // Prepare
    seedBothGenerations();
    kube().notListable.add("/secrets");

    // Act
    const result = await apply(updateState({ previous: rbacObjects(OLD_NS) }));

    // Assess
    expect(result.kept).toEqual([`Namespace ${OLD_NS}: no longer used, but kept: the provisioner may not list secrets there`]);
    expect(kube().get("v1", "Namespace", OLD_NS)).toBeDefined();
  });

  it("a namespace without the tenant's ownership marks; the objects that have them go one by one", async () => {
    // Prepare
    seedBothGenerations();
    seedRef(ref("Namespace", OLD_NS), ownershipLabels("proteomics", markOf(OTHER_RUN)));

    // Act
    const result = await apply(updateState({ previous: rbacObjects(OLD_NS) }));

    // Assess
    expect(result.kept).toEqual([`Namespace ${OLD_NS}: does not carry the ownership marks for tenant ${TENANT}`]);
    expect(result.removed).toHaveLength(3);
    expect(
      kube()
        .inventory()
        .filter((line) => line.includes(OLD_NS)),
    ).toEqual([`Namespace/${OLD_NS}`]);
  });

  it("an object that no longer carries the tenant's marks (someone relabelled it)", async () => {
    // Prepare
    seedBothGenerations();
    seedRef(ref("ServiceAccount", "tower-compute-sa", NS), { team: "theirs" });

    // Act
    const result = await apply(updateState({ previous: [ref("ServiceAccount", "tower-compute-sa", NS)] }));

    // Assess
    expect(result).toEqual({
      removed: [],
      kept: [`ServiceAccount ${NS}/tower-compute-sa: no longer carries the ownership marks for tenant ${TENANT}`],
    });
    expect(kube().get("v1", "ServiceAccount", "tower-compute-sa", NS)).toBeDefined();
  });

  it("the former launcher's access entry when it is not tagged as the tenant's", async () => {
    // Prepare
    seedEntry(FORMER_LAUNCHER, { username: "platform-admin" });

    // Act
    const result = await apply(
      updateState({ previous: [], current: [], previousAccess: { method: "access-entry", principalArn: FORMER_LAUNCHER } }),
    );

    // Assess
    expect(result).toEqual({
      removed: [],
      kept: [`EKS access entry ${FORMER_LAUNCHER} on research: not marked as the product's for tenant ${TENANT}`],
    });
    expect(entries.has(FORMER_LAUNCHER)).toBe(true);
  });
});

describe("RemoveUnwantedResources on errors", () => {
  it("fails the step on an unreachable API server (named ClusterUnreachable, transient); the retry finishes the work", async () => {
    // Prepare
    seedBothGenerations();
    kube().faults.inject({ operation: "kube:DELETE namespaces", kind: "5xx", times: 1 });
    const state = updateState({ previous: rbacObjects(OLD_NS) });

    // Act
    const failure = await apply(state).catch((error: unknown) => error);
    const retry = await apply(state);

    // Assess
    expect((failure as Error).name).toBe("ClusterUnreachable");
    expect((failure as ProvisionerError).transient).toBe(true);
    expect(retry).toEqual({ removed: [`Namespace ${OLD_NS}`], kept: [] });
  });

  it("fails the step on a refused delete (named NotAllowed, permanent): deletions cannot be undone, the run compensates", async () => {
    // Prepare
    seedBothGenerations();
    kube().faults.inject({ operation: "kube:DELETE serviceaccounts", kind: "permanent" });
    seedRef(ref("ServiceAccount", "tower-compute-sa", NS));

    // Act
    const failure = await apply(updateState({ previous: [ref("ServiceAccount", "tower-compute-sa", NS)] })).catch(
      (error: unknown) => error,
    );

    // Assess
    expect((failure as Error).name).toBe("NotAllowed");
    expect((failure as ProvisionerError).transient).toBe(false);
    expect(kube().get("v1", "ServiceAccount", "tower-compute-sa", NS)).toBeDefined();
  });
});
