/**
 * Who may do what on the emulated Kubernetes API server: 401 without a known token, RBAC through Roles and
 * RoleBindings (403 with upstream's messages elsewhere), and TLS refused by a client that trusts another CA.
 */
import { describe, expect, it } from "vitest";
import { request as httpsRequest } from "node:https";
import { ApiException, type V1Pod } from "@kubernetes/client-node";
import type { KubeApiServer } from "../../local/kube/kube-apiserver.js";
import { ADMIN_TOKEN, apiError, clientsFor, LAUNCHER_TOKEN, useKubeEmulator } from "../support/kube-emulator-clients.js";

describe("emulated Kubernetes API server", () => {
  let kube: KubeApiServer;
  useKubeEmulator((started) => ({ kube } = started));

  describe("authentication and RBAC", () => {
    it("answers 401 Unauthorized without a token and with an unknown one", async () => {
      // Act
      const bare = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(`${kube.url}/api/v1/namespaces`, { ca: kube.caPem }, (res) => {
          let body = "";
          res.on("data", (chunk) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.end();
      });
      const unknown = await apiError(clientsFor(kube, "who-am-i").core.listNamespace());
      // Assess
      expect(bare.status).toBe(401);
      expect(JSON.parse(bare.body)).toEqual({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: "Unauthorized", reason: "Unauthorized", code: 401 });
      expect(unknown.code).toBe(401);
    });

    it("lets a user bound to a Role create pods in its namespace only (403 with upstream's message elsewhere)", async () => {
      // Prepare
      kube.seed({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "tower-launcher-role", namespace: "team" },
        rules: [{ apiGroups: [""], resources: ["pods", "pods/log"], verbs: ["get", "list", "watch", "create", "delete"] }],
      });
      kube.seed({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "tower-launcher-user-binding", namespace: "team" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tower-launcher-role" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "tower-launcher-user" }],
      });
      const launcher = clientsFor(kube, LAUNCHER_TOKEN);
      const pod = (namespace: string): V1Pod => ({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "launched", namespace },
        spec: { restartPolicy: "Never", containers: [{ name: "c", image: "busybox" }] },
      });
      // Act
      const allowed = await launcher.core.createNamespacedPod({ namespace: "team", body: pod("team") });
      const elsewhere = await apiError(launcher.core.createNamespacedPod({ namespace: "other", body: pod("other") }));
      const configMaps = await apiError(launcher.core.readNamespacedConfigMap({ name: "kube-root-ca.crt", namespace: "team" }));
      const clusterScope = await apiError(launcher.core.listNamespace());
      // Assess
      expect(allowed.metadata?.name).toBe("launched");
      expect(elsewhere.code).toBe(403);
      expect(elsewhere.body).toEqual({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: 'pods is forbidden: User "tower-launcher-user" cannot create resource "pods" in API group "" in the namespace "other"',
        reason: "Forbidden",
        details: { kind: "pods" },
        code: 403,
      });
      expect(configMaps.body.message).toBe('configmaps "kube-root-ca.crt" is forbidden: User "tower-launcher-user" cannot get resource "configmaps" in API group "" in the namespace "team"');
      expect(clusterScope.body.message).toBe('namespaces is forbidden: User "tower-launcher-user" cannot list resource "namespaces" in API group "" at the cluster scope');
    });

    it("refuses TLS when the client trusts another CA", async () => {
      // Prepare: the server's own leaf certificate is not the CA that signed it
      const { readFile } = await import("node:fs/promises");
      const leaf = await readFile(new URL("../../local/kube/tls/server.crt", import.meta.url));
      const wrongCa = clientsFor(kube, ADMIN_TOKEN, leaf.toString("base64"));
      // Act
      const error = await wrongCa.core.listNamespace().then(
        () => undefined,
        (e: unknown) => e as Error & { cause?: { code?: string } },
      );
      // Assess
      expect(error).toBeInstanceOf(Error);
      expect(error).not.toBeInstanceOf(ApiException);
      expect(`${error!.message} ${error!.cause?.code ?? ""}`).toMatch(/certificate|verify|UNABLE_TO/i);
    });
  });
});
