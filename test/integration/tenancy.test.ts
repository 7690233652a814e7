/**
 * Least Kubernetes power, in the sandbox (whose API server enforces RBAC, the escalation rule and Pod Security):
 *  - the provisioner's identity is mapped exactly as the stack outputs tell operators to map it, holds the ClusterRole
 *    of deploy/provisioner-clusterrole.yaml and nothing else, and is refused the rest with the real 403 Status;
 *  - what a tenant's identities can do stays inside the tenant's namespace.
 */
import { describe, expect, it } from "vitest";
import { AuthenticationV1Api, KubernetesObjectApi, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { SANDBOX_KUBE_STEPS_ROLE, type Sandbox } from "../../local/sandbox.js";
import { apiError } from "../support/kube-emulator-clients.js";
import { ACCOUNT_ID, clusterState, FAST, kubeConfigAs, sessionArnOf, taskPod, useSandbox } from "../support/sandbox-runs.js";

const KUBE_STEPS_ROLE_ARN = `arn:aws:iam::${ACCOUNT_ID}:role/${SANDBOX_KUBE_STEPS_ROLE}`;
const RBAC = "rbac.authorization.k8s.io";

describe("the provisioner's own Kubernetes identity", () => {
  let sandbox: Sandbox;
  useSandbox(FAST, (started) => ({ sandbox } = started));

  it("is mapped as the deployment instructions say: user and group nf-eks-provisioner, no access policy, not an admin", async () => {
    // Prepare
    const config = await kubeConfigAs(sandbox, sessionArnOf(KUBE_STEPS_ROLE_ARN, "kube-steps"));
    // Act
    const review = await config.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });
    // Assess
    expect(review.status?.userInfo?.username).toBe("nf-eks-provisioner");
    expect(review.status?.userInfo?.groups).toEqual(["nf-eks-provisioner", "system:authenticated"]);
    const entry = clusterState(sandbox).accessEntries.get(KUBE_STEPS_ROLE_ARN);
    expect(entry).toMatchObject({ username: "nf-eks-provisioner", kubernetesGroups: ["nf-eks-provisioner"] });
    expect(entry!.accessPolicies.size).toBe(0);
  });

  it("is refused a write outside its ClusterRole with the API server's 403 Status", async () => {
    // Prepare
    const config = await kubeConfigAs(sandbox, sessionArnOf(KUBE_STEPS_ROLE_ARN, "kube-steps"));
    const objects = KubernetesObjectApi.makeApiClient(config);
    const rbac = config.makeApiClient(RbacAuthorizationV1Api);
    // Act
    const pod = await apiError(objects.create({ ...taskPod("not-mine"), metadata: { name: "not-mine", namespace: "default" } }));
    const clusterAdmin = await apiError(
      rbac.createClusterRoleBinding({
        body: { metadata: { name: "take-over" }, roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "cluster-admin" }, subjects: [{ apiGroup: RBAC, kind: "Group", name: "nf-eks-provisioner" }] },
      }),
    );
    const rootCa = await apiError(objects.replace({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "kube-root-ca.crt", namespace: "kube-system" }, data: {} }));
    // Assess
    expect(pod).toMatchObject({ code: 403 });
    expect(pod.body).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'pods is forbidden: User "nf-eks-provisioner" cannot create resource "pods" in API group "" in the namespace "default"',
      reason: "Forbidden",
      details: { kind: "pods" },
      code: 403,
    });
    expect(clusterAdmin.body.message).toBe(
      'clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "nf-eks-provisioner" cannot create resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope',
    );
    // update on ConfigMaps is granted for aws-auth and nextflow-config only
    expect(rootCa.body.message).toBe(
      'configmaps "kube-root-ca.crt" is forbidden: User "nf-eks-provisioner" cannot update resource "configmaps" in API group "" in the namespace "kube-system"',
    );
  });

  it("cannot grant what it does not hold: a Role with rules is refused unless it is the tenant Role, updated by name", async () => {
    // Prepare
    const config = await kubeConfigAs(sandbox, sessionArnOf(KUBE_STEPS_ROLE_ARN, "kube-steps"));
    const objects = KubernetesObjectApi.makeApiClient(config);
    const role = (name: string, rules: unknown[]) => ({ apiVersion: `${RBAC}/v1`, kind: "Role", metadata: { name, namespace: "default" }, rules });
    const podRules = [{ apiGroups: [""], resources: ["pods"], verbs: ["create"] }];
    // Act
    const created = await apiError(objects.create(role("tower-launcher-role", podRules)));
    const other = await apiError(objects.create(role("helper", podRules)));
    // Assess
    for (const [refused, name] of [
      [created, "tower-launcher-role"],
      [other, "helper"],
    ] as const) {
      expect(refused.code).toBe(403);
      expect(refused.body.message).toBe(
        `roles.rbac.authorization.k8s.io "${name}" is forbidden: user "nf-eks-provisioner" (groups=["nf-eks-provisioner" "system:authenticated"]) ` +
          'is attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["create"]}',
      );
    }
  });
});
