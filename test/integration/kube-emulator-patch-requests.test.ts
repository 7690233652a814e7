/**
 * The emulated Kubernetes API server's PATCH through @kubernetes/client-node v1: server-side apply, JSON merge
 * patch, strategic merge patch and RFC 6902 JSON patch as the real server applies them, and a stale
 * resourceVersion refused with 409 Conflict. (The patch functions themselves: test/unit/kube-emulator-patch.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { PatchStrategy, setHeaderOptions, type V1ConfigMap, type V1Pod } from "@kubernetes/client-node";
import { apiError, configMap, useKubeEmulator, type Clients } from "../support/kube-emulator-clients.js";

describe("emulated Kubernetes API server", () => {
  let admin: Clients;
  useKubeEmulator((started) => ({ admin } = started));

  describe("PATCH", () => {
    it("creates with server-side apply (apply-patch+yaml), then merges a second apply", async () => {
      // Prepare
      const applied = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "ssa", namespace: "team", labels: { a: "1" } },
        data: { x: "1" },
      };
      // Act
      const created = await admin.objects.patch<V1ConfigMap>(
        applied,
        undefined,
        undefined,
        "provisioner",
        undefined,
        PatchStrategy.ServerSideApply,
      );
      const updated = await admin.objects.patch<V1ConfigMap>(
        { ...applied, data: { y: "2" } },
        undefined,
        undefined,
        "provisioner",
        undefined,
        PatchStrategy.ServerSideApply,
      );
      // Assess
      expect(created.data).toEqual({ x: "1" });
      expect(updated.metadata?.uid).toBe(created.metadata?.uid);
      expect(updated.data).toEqual({ x: "1", y: "2" });
    });

    it("applies a JSON merge patch: maps merge, null removes", async () => {
      // Prepare
      await admin.objects.create(configMap("merge", "team", { keep: "1", drop: "2" }, { a: "1", b: "2" }));
      // Act
      const patched = await admin.objects.patch<V1ConfigMap>(
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "merge", namespace: "team", labels: { drop: null as unknown as string, added: "3" } },
          data: { b: "changed" },
        },
        undefined,
        undefined,
        undefined,
        undefined,
        PatchStrategy.MergePatch,
      );
      // Assess
      expect(patched.metadata?.labels).toEqual({ keep: "1", added: "3" });
      expect(patched.data).toEqual({ a: "1", b: "changed" });
    });

    it("applies a strategic merge patch: containers merge by name, labels merge", async () => {
      // Prepare
      const pod: V1Pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "two-containers", namespace: "team", labels: { app: "x" } },
        spec: {
          restartPolicy: "Always",
          containers: [
            { name: "main", image: "busybox:1.36" },
            { name: "sidecar", image: "envoy:1.0" },
          ],
        },
      };
      await admin.objects.create(pod);
      // Act
      const patched = await admin.objects.patch<V1Pod>(
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "two-containers", namespace: "team", labels: { patched: "yes" } },
          spec: { containers: [{ name: "sidecar", image: "envoy:2.0" }] },
        },
        undefined,
        undefined,
        undefined,
        undefined,
        PatchStrategy.StrategicMergePatch,
      );
      // Assess
      expect(patched.metadata?.labels).toEqual({ app: "x", patched: "yes" });
      expect(patched.spec?.containers.map((c) => [c.name, c.image])).toEqual([
        ["main", "busybox:1.36"],
        ["sidecar", "envoy:2.0"],
      ]);
    });

    it("applies an RFC 6902 JSON patch and refuses the whole patch when a test fails (422)", async () => {
      // Prepare
      await admin.objects.create(configMap("json", "team", undefined, { a: "1", b: "2" }));
      const asJsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
      // Act
      const patched = await admin.core.patchNamespacedConfigMap(
        {
          name: "json",
          namespace: "team",
          body: [
            { op: "test", path: "/data/a", value: "1" },
            { op: "replace", path: "/data/a", value: "one" },
            { op: "remove", path: "/data/b" },
            { op: "add", path: "/metadata/labels", value: {} },
            { op: "add", path: "/metadata/labels/nf-eks-provisioner~1tenant", value: "genomics" },
          ],
        },
        asJsonPatch,
      );
      const refused = await apiError(
        admin.core.patchNamespacedConfigMap(
          {
            name: "json",
            namespace: "team",
            body: [
              { op: "replace", path: "/data/a", value: "two" },
              { op: "test", path: "/data/a", value: "never" },
            ],
          },
          asJsonPatch,
        ),
      );
      const after = await admin.core.readNamespacedConfigMap({ name: "json", namespace: "team" });
      // Assess
      expect(patched.data).toEqual({ a: "one" });
      expect(patched.metadata?.labels).toEqual({ "nf-eks-provisioner/tenant": "genomics" });
      expect(refused.code).toBe(422);
      expect(after.data).toEqual({ a: "one" });
    });

    it("rejects a patch carrying a stale resourceVersion with 409 Conflict", async () => {
      // Prepare
      const created = await admin.objects.create(configMap("guarded", "team"));
      await admin.objects.patch(
        { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "guarded", namespace: "team" }, data: { key: "v2" } },
        undefined,
        undefined,
        undefined,
        undefined,
        PatchStrategy.MergePatch,
      );
      // Act
      const error = await apiError(
        admin.objects.patch(
          {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: "guarded", namespace: "team", resourceVersion: created.metadata?.resourceVersion },
            data: { key: "v3" },
          },
          undefined,
          undefined,
          undefined,
          undefined,
          PatchStrategy.MergePatch,
        ),
      );
      // Assess
      expect(error.code).toBe(409);
      expect(error.body.reason).toBe("Conflict");
    });
  });
});
