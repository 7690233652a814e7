/**
 * Contract: RBAC's escalation rule (#13 point 7), against the sandbox (default) or a real cluster (TARGET=aws). A
 * user bound to a Role that may create Roles, but holds only some rules, may create a Role granting rules it holds;
 * one granting a rule it lacks is refused (403, "is attempting to grant RBAC permissions not currently held", the
 * missing rule listed). The lesser user is the admin impersonating `<prefix>-delegate` (Impersonate-User), which
 * works in both targets. Creates the namespace `<prefix>-rbac` with a Role and a RoleBinding; deletes it afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RbacAuthorizationV1Api, type V1Role } from "@kubernetes/client-node";
import {
  cleanUp,
  clusterMs,
  createNamespace,
  deleteNamespace,
  eventually,
  openTarget,
  refusal,
  testTimeout,
  type ContractTarget,
} from "./target.js";

const RBAC = "rbac.authorization.k8s.io";

let target: ContractTarget;
let namespace: string;
let delegate: string;
let asDelegate: RbacAuthorizationV1Api;

beforeAll(async () => {
  target = await openTarget();
  namespace = `${target.prefix}-rbac`;
  delegate = `${target.prefix}-delegate`;
  await createNamespace(target, namespace);
  // The delegate may write Roles and read ConfigMaps in the namespace, nothing more.
  const admin = target.admin.makeApiClient(RbacAuthorizationV1Api);
  const writer = `${target.prefix}-role-writer`;
  await admin.createNamespacedRole({
    namespace,
    body: {
      metadata: { name: writer, namespace },
      rules: [
        { apiGroups: [RBAC], resources: ["roles"], verbs: ["create", "get", "list", "delete"] },
        { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] },
      ],
    },
  });
  await admin.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: writer, namespace },
      roleRef: { apiGroup: RBAC, kind: "Role", name: writer },
      subjects: [{ apiGroup: RBAC, kind: "User", name: delegate }],
    },
  });
  asDelegate = target.impersonating(delegate).makeApiClient(RbacAuthorizationV1Api);
});

afterAll(async () => {
  await cleanUp(
    async () => namespace && (await deleteNamespace(target, namespace)),
    async () => target?.close(),
  );
});

function role(name: string, rules: V1Role["rules"]): V1Role {
  return { apiVersion: `${RBAC}/v1`, kind: "Role", metadata: { name, namespace }, rules };
}

describe("a user who may create Roles", () => {
  it(
    "creates one granting rules it holds",
    async () => {
      // Prepare
      const name = `${target.prefix}-held`;

      // Act (a real cluster's authorizer sees the new binding within moments)
      const created = await eventually(
        `${delegate} allowed to create Role ${name}`,
        () =>
          asDelegate.createNamespacedRole({
            namespace,
            body: role(name, [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get"] }]),
          }),
        clusterMs(60),
      );

      // Assess
      expect(created.metadata?.name).toBe(name);
      expect(created.rules).toEqual([{ apiGroups: [""], resources: ["configmaps"], verbs: ["get"] }]);
    },
    testTimeout(60),
  );

  it("is refused one granting a rule it lacks (403, the missing rule listed)", async () => {
    // Prepare
    const name = `${target.prefix}-more`;

    // Act
    const { code, body } = await refusal(
      asDelegate.createNamespacedRole({
        namespace,
        body: role(name, [{ apiGroups: [""], resources: ["configmaps", "secrets"], verbs: ["get"] }]),
      }),
    );

    // Assess
    expect(code).toBe(403);
    expect(body).toMatchObject({
      kind: "Status",
      reason: "Forbidden",
      message:
        `roles.rbac.authorization.k8s.io "${name}" is forbidden: user "${delegate}" (groups=["system:authenticated"]) ` +
        `is attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`,
      details: { name, group: RBAC, kind: "roles" },
    });
    await expect(target.admin.makeApiClient(RbacAuthorizationV1Api).readNamespacedRole({ name, namespace })).rejects.toMatchObject({
      code: 404,
    });
  });
});
