/**
 * Who may do what on the emulated Kubernetes API server: 401 without a known token, RBAC through Roles and
 * RoleBindings (403 with upstream's messages elsewhere), the RBAC registry's escalation rule for Role and RoleBinding
 * writes (`escalate`, `bind`, or holding every rule granted), and TLS refused by a client that trusts another CA.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { request as httpsRequest } from "node:https";
import { ApiException, type V1Pod } from "@kubernetes/client-node";
import type { KubeApiServer } from "../../local/kube/kube-apiserver.js";
import {
  ADMIN_TOKEN,
  apiError,
  clientsFor,
  createNamespace,
  DELEGATE_TOKEN,
  LAUNCHER_TOKEN,
  useKubeEmulator,
} from "../support/kube-emulator-clients.js";

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
      expect(JSON.parse(bare.body)).toEqual({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "Unauthorized",
        reason: "Unauthorized",
        code: 401,
      });
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
      expect(configMaps.body.message).toBe(
        'configmaps "kube-root-ca.crt" is forbidden: User "tower-launcher-user" cannot get resource "configmaps" in API group "" in the namespace "team"',
      );
      expect(clusterScope.body.message).toBe(
        'namespaces is forbidden: User "tower-launcher-user" cannot list resource "namespaces" in API group "" at the cluster scope',
      );
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

  describe("privilege escalation (Role and RoleBinding writes)", () => {
    const RBAC = "rbac.authorization.k8s.io";
    const POD_RULES = [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "create", "delete"] }];
    /** Each test writes in a namespace of its own (the emulator is shared by the file). */
    let namespace = "";
    let namespaces = 0;
    beforeEach(async () => {
      namespace = `escalation-${++namespaces}`;
      await createNamespace(kube, namespace);
    });
    const role = (name: string, rules: unknown[] = []) => ({
      apiVersion: `${RBAC}/v1`,
      kind: "Role",
      metadata: { name, namespace },
      rules,
    });
    const binding = (name: string, roleName: string) => ({
      apiVersion: `${RBAC}/v1`,
      kind: "RoleBinding",
      metadata: { name, namespace },
      roleRef: { apiGroup: RBAC, kind: "Role", name: roleName },
      subjects: [{ apiGroup: RBAC, kind: "User", name: "someone" }],
    });

    /** The delegate may write Roles and RoleBindings, read pods, and escalate/bind one Role by name (the provisioner's shape). */
    function grantDelegate(): void {
      kube.seed({
        apiVersion: `${RBAC}/v1`,
        kind: "ClusterRole",
        metadata: { name: "delegate" },
        rules: [
          { apiGroups: [RBAC], resources: ["roles", "rolebindings"], verbs: ["get", "create", "update", "delete"] },
          { apiGroups: [RBAC], resources: ["roles"], resourceNames: ["tower-launcher-role"], verbs: ["escalate", "bind"] },
          { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
        ],
      });
      kube.seed({
        apiVersion: `${RBAC}/v1`,
        kind: "ClusterRoleBinding",
        metadata: { name: "delegate" },
        roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "delegate" },
        subjects: [{ apiGroup: RBAC, kind: "Group", name: "delegates" }],
      });
    }

    it("refuses a Role granting what its writer does not hold, with upstream's message (escalate is checked without a name on create)", async () => {
      // Prepare
      grantDelegate();
      const delegate = clientsFor(kube, DELEGATE_TOKEN);
      const before = kube.authorizations.length;
      // Act
      const refused = await apiError(delegate.objects.create(role("tower-launcher-role", POD_RULES)));
      // Assess
      expect(refused.code).toBe(403);
      expect(refused.body).toEqual({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message:
          'roles.rbac.authorization.k8s.io "tower-launcher-role" is forbidden: user "delegate" (groups=["delegates" "system:authenticated"]) ' +
          'is attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["create" "delete"]}',
        reason: "Forbidden",
        details: { name: "tower-launcher-role", group: RBAC, kind: "roles" },
        code: 403,
      });
      const escalate = kube.authorizations.slice(before).filter((a) => a.verb === "escalate");
      expect(escalate).toEqual([expect.objectContaining({ username: "delegate", resource: "roles", namespace, allowed: false })]);
      expect(escalate[0]!.name).toBeUndefined();
    });

    it("lets escalate limited by resourceNames through on an update of that Role only (create empty, then update)", async () => {
      // Prepare
      grantDelegate();
      const delegate = clientsFor(kube, DELEGATE_TOKEN);
      await delegate.objects.create(role("tower-launcher-role"));
      await delegate.objects.create(role("other-role"));
      // Act
      const updated = await delegate.objects.replace(role("tower-launcher-role", POD_RULES));
      const other = await apiError(delegate.objects.replace(role("other-role", POD_RULES)));
      // Assess
      expect(updated.rules).toEqual(POD_RULES);
      expect(other.code).toBe(403);
      expect(other.body.message).toContain('roles.rbac.authorization.k8s.io "other-role" is forbidden: user "delegate"');
      expect(kube.authorizations.filter((a) => a.verb === "escalate" && a.name === "tower-launcher-role").at(-1)?.allowed).toBe(true);
    });

    it("lets bind limited by resourceNames refer to that Role; another Role's rules must be held, and a missing one is 404", async () => {
      // Prepare
      grantDelegate();
      kube.seed(role("tower-launcher-role", POD_RULES) as never);
      kube.seed(role("pod-admin", POD_RULES) as never);
      kube.seed(role("pod-reader", [{ apiGroups: [""], resources: ["pods"], verbs: ["get"] }]) as never);
      const delegate = clientsFor(kube, DELEGATE_TOKEN);
      // Act
      const bound = await delegate.objects.create(binding("launcher-binding", "tower-launcher-role"));
      const escalating = await apiError(delegate.objects.create(binding("admin-binding", "pod-admin")));
      const held = await delegate.objects.create(binding("reader-binding", "pod-reader"));
      const missing = await apiError(delegate.objects.create(binding("missing-binding", "no-such-role")));
      // Assess
      expect(bound.metadata?.name).toBe("launcher-binding");
      expect(escalating.code).toBe(403);
      expect(escalating.body.message).toBe(
        'rolebindings.rbac.authorization.k8s.io "admin-binding" is forbidden: user "delegate" (groups=["delegates" "system:authenticated"]) ' +
          'is attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["create" "delete"]}',
      );
      expect(held.metadata?.name).toBe("reader-binding");
      expect(missing.code).toBe(404);
      expect(missing.body.message).toBe('roles.rbac.authorization.k8s.io "no-such-role" not found');
    });

    it("does not check system:masters", async () => {
      // Prepare
      const admin = clientsFor(kube, ADMIN_TOKEN);
      // Act
      const created = await admin.objects.create(role("anything", [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }]));
      // Assess
      expect(created.metadata?.name).toBe("anything");
    });
  });
});
