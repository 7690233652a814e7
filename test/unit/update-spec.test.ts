/** What an update may change (domain/spec-change.ts), how a PUT body becomes a request (api/update-environment.ts), and what an update removes (steps/remove-unwanted.ts). */
import { describe, expect, it } from "vitest";
import { specRequestOf } from "../../functions/api/update-environment.js";
import { claimChangeProblems } from "../../functions/lib/domain/spec-change.js";
import { parseRequest } from "../../functions/lib/domain/request.js";
import { previousOwned, unwantedOf } from "../../functions/steps/remove-unwanted.js";

const ID = { tenant: "genomics", region: "eu-west-1", cluster: "research" };
const base = {
  tenant: "genomics",
  cluster: { name: "research", region: "eu-west-1" },
  launcher: { mode: "create", trustAccount: true },
  storage: { type: "pvc", storageClass: "efs-sc", size: "100Gi" },
};

describe("claimChangeProblems", () => {
  it("refuses a kept claim that would shrink or change its StorageClass, each with a problem at its path", () => {
    // Prepare
    const next = parseRequest({ ...base, storage: { type: "pvc", storageClass: "gp2", size: "50Gi" } });
    // Act
    const problems = claimChangeProblems(base, next);
    // Assess
    expect(problems.map((p) => p.path)).toEqual(["storage.size", "storage.storageClass"]);
    expect(problems[0]!.message).toContain(
      "PersistentVolumeClaim tower-nf/tower-scratch holds 100Gi: a claim can only grow, not shrink to 50Gi",
    );
  });

  it("lets a claim grow (1Ti > 100Gi), and a smaller claim under another name or in another namespace be a new claim", () => {
    // Act
    const grown = claimChangeProblems(base, parseRequest({ ...base, storage: { ...base.storage, size: "1Ti" } }));
    const renamed = claimChangeProblems(base, parseRequest({ ...base, storage: { ...base.storage, size: "1Gi", claimName: "other" } }));
    const moved = claimChangeProblems(base, parseRequest({ ...base, namespace: "elsewhere", storage: { ...base.storage, size: "1Gi" } }));
    // Assess
    expect([grown, renamed, moved]).toEqual([[], [], []]);
  });
});

describe("specRequestOf", () => {
  it("fills tenant and cluster from the path, and names every body field that disagrees with it, and a head job", () => {
    // Act
    const { request, problems } = specRequestOf(
      { ...base, tenant: "other", cluster: { name: "x", region: "us-east-1" }, headJob: { pipeline: "p" } },
      ID,
    );
    // Assess
    expect(problems.map((p) => p.path)).toEqual(["tenant", "cluster.name", "cluster.region", "headJob"]);
    expect(request).toMatchObject({ tenant: "genomics", cluster: { name: "research", region: "eu-west-1" } });
    expect(request).not.toHaveProperty("headJob");
  });

  it("takes a body without tenant and cluster as the path's", () => {
    // Act
    const { request, problems } = specRequestOf({ storage: base.storage, launcher: base.launcher }, ID);
    // Assess
    expect(problems).toEqual([]);
    expect(parseRequest(request).tenant).toBe("genomics");
  });
});

describe("unwantedOf", () => {
  it("never names a role the new generation uses as its launcher (a created launcher role now named as an existing one)", () => {
    // Prepare
    const previous = previousOwned({
      roles: ["arn:launcher", "arn:workload"],
      podIdentityAssociations: ["a-1", "a-2"],
      clusterAccess: { method: "access-entry", principalArn: "arn:launcher" },
      kubernetes: [],
    });
    const current = previousOwned({
      roles: [],
      podIdentityAssociations: ["a-2"],
      clusterAccess: { method: "access-entry", principalArn: "arn:launcher" },
      kubernetes: [],
    });
    // Act
    const unwanted = unwantedOf(previous, current);
    // Assess
    expect(unwanted.roles).toEqual(["arn:workload"]);
    expect(unwanted.podIdentityAssociations).toEqual(["a-1"]);
    expect(unwanted.clusterAccess).toBeUndefined();
  });

  it("is what the previous generation owned and this one does not: Kubernetes objects, roles", () => {
    // Prepare
    const ns = (name: string) => ({ apiVersion: "v1", kind: "Namespace", name });
    const sa = (namespace: string, name: string) => ({ apiVersion: "v1", kind: "ServiceAccount", namespace, name });
    const previous = previousOwned({
      roles: ["arn:launcher", "arn:workload"],
      podIdentityAssociations: [],
      kubernetes: [ns("one"), sa("one", "a"), sa("two", "b"), { junk: true }],
    });
    const current = previousOwned({ roles: ["arn:launcher"], podIdentityAssociations: [], kubernetes: [ns("two"), sa("two", "b")] });
    // Act
    const unwanted = unwantedOf(previous, current);
    // Assess
    expect(unwanted.kubernetes).toEqual([ns("one"), sa("one", "a")]);
    expect(unwanted.roles).toEqual(["arn:workload"]);
    expect(unwanted.podIdentityAssociations).toEqual([]);
    expect(unwanted.clusterAccess).toBeUndefined();
  });

  it("names the former launcher's cluster access when the new generation's launcher is another principal, and only then", () => {
    // Prepare
    const owned = (principalArn?: string) =>
      previousOwned({
        roles: [],
        podIdentityAssociations: [],
        kubernetes: [],
        ...(principalArn ? { clusterAccess: { method: "aws-auth", principalArn } } : {}),
      });
    // Act
    const changed = unwantedOf(owned("arn:old"), owned("arn:new"));
    const same = unwantedOf(owned("arn:old"), owned("arn:old"));
    const noneNow = unwantedOf(owned("arn:old"), owned());
    // Assess
    expect(changed.clusterAccess).toEqual({ method: "aws-auth", principalArn: "arn:old" });
    expect(changed.roles).toEqual([]);
    expect(same.clusterAccess).toBeUndefined();
    expect(noneNow.clusterAccess).toBeUndefined();
  });
});
