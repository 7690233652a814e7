/**
 * The emulated Kubernetes API server (local/kube/) through @kubernetes/client-node v1: objects created, read,
 * replaced and deleted with server-set metadata, the Status answers (NotFound, AlreadyExists, Conflict, Invalid)
 * in the real server's shapes and messages, resourceVersion checks, selectors, paging, watches, and snapshot().
 */
import { describe, expect, it } from "vitest";
import { Watch, type KubernetesObject, type V1ConfigMap } from "@kubernetes/client-node";
import type { KubeApiServer } from "../../local/kube/kube-apiserver.js";
import { until } from "../support/sandbox-runs.js";
import {
  apiError,
  AWS_AUTH,
  configMap,
  createNamespace,
  useKubeEmulator,
  WAIT_MS,
  type Clients,
} from "../support/kube-emulator-clients.js";

describe("emulated Kubernetes API server", () => {
  let kube: KubeApiServer;
  let admin: Clients;
  useKubeEmulator((started) => ({ kube, admin } = started));

  describe("objects through KubernetesObjectApi", () => {
    it("creates, reads, replaces and deletes with server-set metadata", async () => {
      // Prepare
      const desired = configMap("crud", "team", { app: "demo" });
      // Act
      const created = await admin.objects.create(desired);
      const read = await admin.objects.read<V1ConfigMap>({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "crud", namespace: "team" },
      });
      const replaced = await admin.objects.replace({ ...read, data: { key: "changed" } });
      const deleted = await admin.objects.delete({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "crud", namespace: "team" } });
      const afterDelete = await apiError(
        admin.objects.read({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "crud", namespace: "team" } }),
      );
      // Assess
      expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.metadata?.resourceVersion).toMatch(/^\d+$/);
      expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
      expect(read.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
      expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
      expect((replaced as V1ConfigMap).data).toEqual({ key: "changed" });
      expect(replaced.metadata?.uid).toBe(created.metadata?.uid);
      expect(deleted).toMatchObject({
        kind: "Status",
        status: "Success",
        details: { name: "crud", kind: "configmaps", uid: created.metadata?.uid },
      });
      expect(afterDelete.code).toBe(404);
    });

    it("answers a missing object with the real NotFound Status", async () => {
      // Act
      const error = await apiError(
        admin.objects.read({ apiVersion: "batch/v1", kind: "Job", metadata: { name: "nope", namespace: "team" } }),
      );
      // Assess
      expect(error.code).toBe(404);
      expect(error.body).toEqual({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: 'jobs.batch "nope" not found',
        reason: "NotFound",
        details: { name: "nope", group: "batch", kind: "jobs" },
        code: 404,
      });
    });

    it("answers a duplicate create with 409 AlreadyExists", async () => {
      // Prepare
      await admin.objects.create(configMap("twice", "team"));
      // Act
      const error = await apiError(admin.objects.create(configMap("twice", "team")));
      // Assess
      expect(error.code).toBe(409);
      expect(error.body).toEqual({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: 'configmaps "twice" already exists',
        reason: "AlreadyExists",
        details: { name: "twice", kind: "configmaps" },
        code: 409,
      });
    });

    it("refuses to create in a namespace that does not exist (404 namespaces not found)", async () => {
      // Act
      const error = await apiError(admin.objects.create(configMap("orphan", "missing")));
      // Assess
      expect(error.code).toBe(404);
      expect(error.body).toMatchObject({
        reason: "NotFound",
        message: 'namespaces "missing" not found',
        details: { name: "missing", kind: "namespaces" },
      });
    });

    it("rejects a replace with a stale resourceVersion with upstream's Conflict, and accepts one without", async () => {
      // Prepare
      const ref = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "aws-auth", namespace: "kube-system" } };
      const stale = await admin.objects.read<V1ConfigMap>(ref);
      await admin.objects.replace({ ...stale, data: { ...stale.data, mapUsers: "[]\n" } });
      // Act
      const error = await apiError(admin.objects.replace({ ...stale, data: { mapRoles: "[]\n" } }));
      const { resourceVersion: _dropped, ...unconditionalMeta } = stale.metadata!;
      const unconditional = await admin.objects.replace<V1ConfigMap>({ ...stale, metadata: unconditionalMeta, data: stale.data });
      // Assess
      expect(error.code).toBe(409);
      expect(error.body).toEqual({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message:
          'Operation cannot be fulfilled on configmaps "aws-auth": the object has been modified; please apply your changes to the latest version and try again',
        reason: "Conflict",
        details: { name: "aws-auth", kind: "configmaps" },
        code: 409,
      });
      expect(unconditional.data).toEqual(AWS_AUTH.data);
    });

    it("keeps the resourceVersion when a write changes nothing, as the real server does", async () => {
      // Prepare
      const created = await admin.objects.create(configMap("steady", "team"));
      // Act
      const rewritten = await admin.objects.replace(created);
      // Assess
      expect(rewritten.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    });

    it("validates names and labels like the API server (422 Invalid)", async () => {
      // Act
      const badName = await apiError(admin.objects.create(configMap("Bad_Name", "team")));
      const badLabel = await apiError(admin.objects.create(configMap("bad-label", "team", { tenant: "x".repeat(64) })));
      // Assess
      expect(badName.code).toBe(422);
      expect(badName.body).toMatchObject({ reason: "Invalid", details: { name: "Bad_Name", kind: "ConfigMap" } });
      expect(badName.body.message).toMatch(
        /^ConfigMap "Bad_Name" is invalid: metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
      );
      expect(badLabel.code).toBe(422);
      expect(badLabel.body.message).toContain("must be no more than 63 characters");
    });

    it("lists with label selectors (=, ==, !=, in, notin, exists, !exists) and a metadata.name field selector", async () => {
      // Prepare
      await createNamespace(kube, "selectors");
      await admin.objects.create(configMap("a", "selectors", { tier: "web", env: "prod" }));
      await admin.objects.create(configMap("b", "selectors", { tier: "db", env: "prod" }));
      await admin.objects.create(configMap("c", "selectors", { tier: "web" }));
      const names = async (labelSelector?: string, fieldSelector?: string) => {
        const list = await admin.objects.list(
          "v1",
          "ConfigMap",
          "selectors",
          undefined,
          undefined,
          undefined,
          fieldSelector,
          labelSelector,
        );
        return list.items.map((i) => i.metadata?.name).filter((n) => n !== "kube-root-ca.crt");
      };
      // Act
      const results = {
        eq: await names("tier=web"),
        eqeq: await names("tier==db"),
        ne: await names("env!=prod"),
        in: await names("tier in (db, cache)"),
        notin: await names("tier notin (web)"),
        exists: await names("env"),
        absent: await names("!env"),
        and: await names("tier=web,env=prod"),
        field: await names(undefined, "metadata.name=b"),
      };
      // Assess
      expect(results).toEqual({
        eq: ["a", "c"],
        eqeq: ["b"],
        ne: ["c"],
        in: ["b"],
        notin: ["b"],
        exists: ["a", "b"],
        absent: ["c"],
        and: ["a"],
        field: ["b"],
      });
    });

    it("pages a list with limit and continue", async () => {
      // Prepare
      await createNamespace(kube, "paged");
      for (const name of ["p1", "p2", "p3"]) await admin.objects.create(configMap(name, "paged"));
      // Act
      const first = await admin.core.listNamespacedConfigMap({ namespace: "paged", limit: 2 });
      const rest = await admin.core.listNamespacedConfigMap({ namespace: "paged", limit: 2, _continue: first.metadata?._continue });
      // Assess
      expect(first.items.map((i) => i.metadata?.name)).toEqual(["kube-root-ca.crt", "p1"]);
      expect(first.metadata?.remainingItemCount).toBe(2);
      expect(rest.items.map((i) => i.metadata?.name)).toEqual(["p2", "p3"]);
      expect(rest.metadata?._continue).toBeUndefined();
    });

    it("streams changes to a client-node Watch", async () => {
      // Prepare
      const seen: Array<{ phase: string; name: string }> = [];
      const controller = await new Watch(admin.config).watch(
        "/api/v1/namespaces/team/configmaps",
        { labelSelector: "watched=yes" },
        (phase, obj: KubernetesObject) => seen.push({ phase, name: obj.metadata?.name ?? "" }),
        () => undefined,
      );
      // Act
      await admin.objects.create(configMap("watched", "team", { watched: "yes" }));
      await admin.objects.delete({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "watched", namespace: "team" } });
      await until("two watch events", () => seen.length >= 2, WAIT_MS);
      controller.abort();
      // Assess
      expect(seen).toEqual([
        { phase: "ADDED", name: "watched" },
        { phase: "DELETED", name: "watched" },
      ]);
    });
  });

  it("snapshot() is a sorted deep copy of every object", () => {
    // Act
    const snapshot = kube.snapshot();
    const again = kube.snapshot();
    snapshot[0]!.metadata.name = "mutated";
    // Assess
    const keys = again.map((o) => `${o.apiVersion}|${o.kind}|${o.metadata.namespace ?? ""}|${o.metadata.name}`);
    expect(again.some((o) => o.kind === "ConfigMap" && o.metadata.name === "aws-auth")).toBe(true);
    expect(kube.snapshot()[0]!.metadata.name).not.toBe("mutated");
    expect(keys).toEqual(kube.snapshot().map((o) => `${o.apiVersion}|${o.kind}|${o.metadata.namespace ?? ""}|${o.metadata.name}`));
    expect(new Set(keys).size).toBe(keys.length);
  });
});
