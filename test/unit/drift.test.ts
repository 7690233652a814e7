/**
 * The pure drift comparison (functions/lib/workflow/drift.ts): the spec as built against what is there, by meaning.
 */
import { describe, expect, it } from "vitest";
import type { KubernetesObject } from "@kubernetes/client-node";
import { compareEnvironment, desiredEnvironment, differencesOf, driftedResources, type LiveEnvironment, type LiveRole } from "../../functions/lib/workflow/drift.js";
import { parseRequest } from "../../functions/lib/domain/request.js";
import type { DeploymentConfig, NamespaceSettings } from "../../functions/lib/domain/deploy-config.js";
import type { ResolvedCluster } from "../../functions/lib/domain/cluster.js";

const CLUSTER: ResolvedCluster = {
  name: "research",
  region: "eu-west-1",
  arn: "arn:aws:eks:eu-west-1:111122223333:cluster/research",
  accountId: "111122223333",
  endpoint: "https://example",
  certificateAuthority: "",
  oidcIssuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC",
  authenticationMode: "API",
  version: "1.31",
};
const CONFIG = {
  allowedClusters: [{ name: "research", region: "eu-west-1" }],
  allowedAccountIds: ["111122223333"],
  iamPrefix: "nfeks",
  eventBusName: "bus",
  permissionsBoundaryArn: "arn:aws:iam::111122223333:policy/boundary",
} as unknown as DeploymentConfig;
const SETTINGS = { podSecurityLevel: "baseline", allowPrivilegedNamespaces: false } as NamespaceSettings;
const NOW = new Date("2026-12-05T08:00:00Z");

function desired() {
  const request = parseRequest({
    tenant: "acme",
    cluster: { name: "research", region: "eu-west-1" },
    launcher: { mode: "create", trustAccount: true },
    storage: { type: "pvc", storageClass: "efs-sc", size: "100Gi" },
  });
  return desiredEnvironment(request, CLUSTER, CONFIG, SETTINGS);
}

/** What the services would answer for an environment exactly as built, with what servers add on top. */
function liveAsBuilt(d: ReturnType<typeof desired>): LiveEnvironment {
  const roles: LiveRole[] = d.roles.map((role) => ({
    name: role.name,
    exists: true,
    path: role.path,
    boundaryArn: role.boundaryArn,
    // IAM gives documents back with its own key order, and one-element arrays as they were written
    trustPolicy: { Statement: role.trustPolicy.Statement.map((s) => ({ ...s, Action: [s.Action].flat() })), Version: "2012-10-17" },
    inlinePolicy: JSON.parse(JSON.stringify(role.inlinePolicy)),
    otherInlinePolicies: [],
    attachedPolicyArns: [],
  }));
  const kubernetes = d.kubernetes.map((object): KubernetesObject => {
    const copy = structuredClone(object) as KubernetesObject & Record<string, any>;
    copy.metadata = { ...copy.metadata, uid: "u-1", resourceVersion: "42", labels: { ...copy.metadata?.labels, "nf-eks-provisioner/created-by": "another-run" } };
    if (copy.kind === "PersistentVolumeClaim") copy.spec = { ...copy.spec, volumeMode: "Filesystem", volumeName: "pv-1" };
    return copy;
  });
  return {
    roles,
    podIdentity: [],
    clusterAccess: { identity: { username: d.clusterAccess.username, groups: [...d.clusterAccess.groups] }, accessPolicies: [] },
    kubernetes,
  };
}

describe("drift", () => {
  it("finds an environment as built in sync, whatever the servers add and however IAM orders a document", () => {
    // Prepare
    const d = desired();
    // Act
    const report = compareEnvironment(d, liveAsBuilt(d), NOW);
    // Assess
    expect(report.status).toBe("in-sync");
    expect(report.checkedAt).toBe(NOW.toISOString());
    expect(report.resources.every((r) => r.state === "present" && r.differences.length === 0)).toBe(true);
    expect(report.resources.map((r) => r.kind)).toEqual(expect.arrayContaining(["IAMRole", "AccessEntry", "Namespace", "RoleBinding", "PersistentVolumeClaim"]));
  });

  it("names what is missing and what changed, with the path, the expected and the actual value", () => {
    // Prepare
    const d = desired();
    const live = liveAsBuilt(d);
    const bindingIndex = d.kubernetes.findIndex((o) => o.kind === "RoleBinding");
    live.kubernetes[bindingIndex] = undefined;
    const claim = live.kubernetes.find((o) => o?.kind === "PersistentVolumeClaim") as any;
    claim.spec.resources.requests.storage = "50Gi";
    live.roles[0]!.attachedPolicyArns = ["arn:aws:iam::aws:policy/AdministratorAccess"];
    live.clusterAccess = { identity: { username: "someone-else", groups: [...d.clusterAccess.groups] }, accessPolicies: [] };

    // Act
    const report = compareEnvironment(d, live, NOW);

    // Assess
    expect(report.status).toBe("drifted");
    const drifted = driftedResources(report);
    expect(drifted).toContainEqual({ kind: "RoleBinding", name: `${d.kubernetes[bindingIndex]!.metadata!.namespace}/${d.kubernetes[bindingIndex]!.metadata!.name}`, state: "missing", differences: [] });
    expect(drifted.find((r) => r.kind === "PersistentVolumeClaim")?.differences).toEqual([{ path: "storage", expected: "100Gi", actual: "50Gi" }]);
    expect(drifted.find((r) => r.kind === "IAMRole")?.differences).toEqual([{ path: "attachedPolicies", expected: [], actual: ["arn:aws:iam::aws:policy/AdministratorAccess"] }]);
    expect(drifted.find((r) => r.kind === "AccessEntry")?.differences).toEqual([{ path: "username", expected: "tower-launcher-user-acme", actual: "someone-else" }]);
    expect(drifted).toHaveLength(4);
  });

  it("reports a role that is gone as missing, and a label the product sets that was changed", () => {
    // Prepare
    const d = desired();
    const live = liveAsBuilt(d);
    live.roles[0] = { name: d.roles[0]!.name, exists: false, otherInlinePolicies: [], attachedPolicyArns: [] };
    const namespace = live.kubernetes[0]!;
    namespace.metadata!.labels!["pod-security.kubernetes.io/enforce"] = "privileged";

    // Act
    const drifted = driftedResources(compareEnvironment(d, live, NOW));

    // Assess
    expect(drifted).toEqual([
      { kind: "IAMRole", name: d.roles[0]!.name, arn: d.roles[0]!.arn, state: "missing", differences: [] },
      { kind: "Namespace", name: namespace.metadata!.name, state: "changed", differences: [{ path: "metadata.labels.pod-security.kubernetes.io/enforce", expected: "baseline", actual: "privileged" }] },
    ]);
  });

  it("descends to the smallest part that differs", () => {
    // Act // Assess
    expect(differencesOf("a", { b: [1, { c: 2 }], d: "x" }, { b: [1, { c: 3 }], d: "x" })).toEqual([{ path: "a.b[1].c", expected: 2, actual: 3 }]);
    expect(differencesOf("a", [1, 2], [1])).toEqual([{ path: "a", expected: [1, 2], actual: [1] }]);
    expect(differencesOf("a", { b: 1 }, {})).toEqual([{ path: "a.b", expected: 1, actual: null }]);
    expect(differencesOf("a", { b: 1 }, { b: 1 })).toEqual([]);
  });
});
