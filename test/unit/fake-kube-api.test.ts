/** The in-memory Kubernetes API the step tests use must behave like the API server where the steps rely on it. */
import { describe, expect, it } from "vitest";
import { ApiException, PatchStrategy, type V1ConfigMap, type V1Job } from "@kubernetes/client-node";
import { isKubeError } from "../../functions/lib/kube/kube-client.js";
import { kubeErrorReason } from "../../functions/lib/kube/kube-errors.js";
import { normaliseError } from "../../functions/lib/workflow/normalise-error.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";

const CM: V1ConfigMap = {
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: "settings", namespace: "team", labels: { app: "x" } },
  data: { a: "1" },
};

describe("FakeKubeApi", () => {
  it("answers a duplicate create with the client's ApiException: 409 AlreadyExists", async () => {
    // Prepare
    const kube = new FakeKubeApi();
    await kube.create(CM);
    // Act
    const error = await kube.create(CM).catch((e: unknown) => e);
    // Assess
    expect(error).toBeInstanceOf(ApiException);
    expect(isKubeError(error, 409)).toBe(true);
    expect(kubeErrorReason(error)).toBe("AlreadyExists");
    expect(normaliseError(error).name).toBe("KubeConflict");
  });

  it("answers a read of a missing object with 404 NotFound", async () => {
    // Prepare
    const kube = new FakeKubeApi();
    // Act
    const error = await kube
      .read({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "nope", namespace: "team" } })
      .catch((e: unknown) => e);
    // Assess
    expect(isKubeError(error, 404)).toBe(true);
    expect(kubeErrorReason(error)).toBe("NotFound");
  });

  it("refuses a replace with a stale resourceVersion and keeps the version on a no-op write", async () => {
    // Prepare
    const kube = new FakeKubeApi();
    const created = await kube.create(CM);
    const updated = await kube.replace({ ...created, data: { a: "2" } });
    // Act
    const stale = await kube.replace({ ...created, data: { a: "3" } }).catch((e: unknown) => e);
    const same = await kube.replace(updated);
    // Assess
    expect(isKubeError(stale, 409)).toBe(true);
    expect(Number(updated.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
    expect(same.metadata?.resourceVersion).toBe(updated.metadata?.resourceVersion);
    expect(kube.mutations).toBe(2);
  });

  it("applies a merge patch where null removes a key, and a patch that changes nothing keeps the version", async () => {
    // Prepare
    const kube = new FakeKubeApi();
    // Built objects often carry undefined fields, which the server never stores.
    const created = await kube.create({ ...CM, metadata: { ...CM.metadata, annotations: { keep: "1", drop: "2" } }, immutable: undefined });
    const patchOf = (annotations: Record<string, string | null>): V1ConfigMap => ({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "settings", namespace: "team", annotations: annotations as Record<string, string> },
    });
    // Act
    const unchanged = await kube.patch(patchOf({ keep: "1" }), undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
    await kube.patch(patchOf({ drop: null, add: "3" }), undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
    // Assess
    expect(kube.get("v1", "ConfigMap", "settings", "team")?.metadata?.annotations).toEqual({ keep: "1", add: "3" });
    expect(unchanged.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    expect(kube.mutations).toBe(2);
  });

  it("lists by label selector like the API server, and answers a malformed one with 400", async () => {
    // Prepare
    const kube = new FakeKubeApi();
    await kube.create({ ...CM, metadata: { ...CM.metadata, labels: { app: "x", tier: "web" } } });
    const matches = async (selector: string) =>
      (await kube.list("v1", "ConfigMap", "team", undefined, undefined, undefined, undefined, selector)).items.length === 1;
    // Act
    const selected = await Promise.all(["app=x,tier", "app==x,!missing", "app in (y, x),tier notin (db)"].map(matches));
    const rejected = await Promise.all(["app!=x", "tier in (db)", "missing"].map(matches));
    const malformed = await kube
      .list("v1", "ConfigMap", "team", undefined, undefined, undefined, undefined, "tier in web")
      .catch((e: unknown) => e);
    // Assess
    expect(selected).toEqual([true, true, true]);
    expect(rejected).toEqual([false, false, false]);
    expect(isKubeError(malformed, 400)).toBe(true);
    expect(kubeErrorReason(malformed)).toBe("BadRequest");
  });

  it("orphans a Job's pods unless the delete asks for propagation", async () => {
    // Prepare
    const kube = new FakeKubeApi();
    const jobs = ["orphaning", "cascading"].map((name) =>
      kube.seed<V1Job>({ apiVersion: "batch/v1", kind: "Job", metadata: { name, namespace: "team" } }),
    );
    for (const job of jobs) {
      kube.seed({
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: `${job.metadata!.name}-pod`,
          namespace: "team",
          ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: job.metadata!.name!, uid: job.metadata!.uid! }],
        },
      });
    }
    // Act
    await kube.delete({ apiVersion: "batch/v1", kind: "Job", metadata: { name: "orphaning", namespace: "team" } });
    await kube.delete(
      { apiVersion: "batch/v1", kind: "Job", metadata: { name: "cascading", namespace: "team" } },
      undefined,
      undefined,
      undefined,
      undefined,
      "Background",
    );
    // Assess
    expect(kube.inventory()).toEqual(["Pod/team/orphaning-pod"]);
  });

  it("injects faults by the sandbox's operation names", async () => {
    // Prepare
    const kube = new FakeKubeApi();
    kube.faults.inject({ operation: "kube:POST configmaps", kind: "5xx", times: 1 });
    // Act
    const first = await kube.create(CM).catch((e: unknown) => e);
    const second = await kube.create(CM);
    // Assess
    expect(normaliseError(first).name).toBe("ClusterUnreachable");
    expect(second.metadata?.name).toBe("settings");
  });
});
