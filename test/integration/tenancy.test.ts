/**
 * Least Kubernetes power, in the sandbox (whose API server enforces RBAC, the escalation rule and Pod Security):
 *  - the provisioner's identity is mapped exactly as the stack outputs tell operators to map it, holds the ClusterRole
 *    of deploy/provisioner-clusterrole.yaml and nothing else, and is refused the rest with the real 403 Status;
 *  - what a tenant's identities can do stays inside the tenant's namespace.
 */
import { describe, expect, it } from "vitest";
import { request as httpsRequest } from "node:https";
import { AuthenticationV1Api, KubernetesObjectApi, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { SANDBOX_KUBE_STEPS_ROLE, type Sandbox } from "../../local/sandbox.js";
import { DEPLOYMENTS, LIMIT_RANGES, NAMESPACES } from "../../local/kube/resources.js";
import { apiError } from "../support/kube-emulator-clients.js";
import {
  ACCOUNT_ID,
  clusterState,
  FAST,
  fusionRequest,
  kubeClientAs,
  kubeConfigAs,
  provision,
  pvcRequest,
  sessionArnOf,
  settled,
  statusOf,
  stepResult,
  taskPod,
  useSandbox,
} from "../support/sandbox-runs.js";

const KUBE_STEPS_ROLE_ARN = `arn:aws:iam::${ACCOUNT_ID}:role/${SANDBOX_KUBE_STEPS_ROLE}`;
const RBAC = "rbac.authorization.k8s.io";
const SANDBOX_ADMIN_ARN = `arn:aws:iam::${ACCOUNT_ID}:user/sandbox-admin`;

/**
 * `kubectl auth can-i <verb> <resource> -n <namespace> --as <user> --as-group ...`: a SelfSubjectAccessReview the
 * cluster admin sends while impersonating the identity (the API server answers for that identity).
 */
async function canI(sandbox: Sandbox, as: { user: string; groups: string[] }, attributes: Record<string, string>): Promise<boolean> {
  const token = (await kubeConfigAs(sandbox, SANDBOX_ADMIN_ARN)).getCurrentUser()!.token!;
  const body = JSON.stringify({
    apiVersion: "authorization.k8s.io/v1",
    kind: "SelfSubjectAccessReview",
    spec: { resourceAttributes: attributes },
  });
  const answer = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest(
      `${sandbox.kubeUrl}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews`,
      {
        method: "POST",
        ca: sandbox.kube.caPem,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "impersonate-user": as.user,
          "impersonate-group": as.groups,
        },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve(text));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
  const review = JSON.parse(answer);
  if (review.kind !== "SelfSubjectAccessReview") throw new Error(`not an access review: ${answer}`);
  return review.status.allowed === true;
}

/** A pod's service account as the API server sees it (the token's user and groups). */
function serviceAccount(namespace: string, name: string): { user: string; groups: string[] } {
  return { user: `system:serviceaccount:${namespace}:${name}`, groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`] };
}

describe("the provisioner's own Kubernetes identity", () => {
  let sandbox: Sandbox;
  useSandbox(FAST, (started) => ({ sandbox } = started));

  it("is mapped as the deployment instructions say: user and group nf-eks-provisioner, no access policy, not an admin", async () => {
    // Prepare
    const config = await kubeConfigAs(sandbox, sessionArnOf(KUBE_STEPS_ROLE_ARN, "kube-steps"));
    // Act
    const review = await config
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });
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
        body: {
          metadata: { name: "take-over" },
          roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "cluster-admin" },
          subjects: [{ apiGroup: RBAC, kind: "Group", name: "nf-eks-provisioner" }],
        },
      }),
    );
    const rootCa = await apiError(
      objects.replace({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "kube-root-ca.crt", namespace: "kube-system" }, data: {} }),
    );
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
    const role = (name: string, rules: unknown[]) => ({
      apiVersion: `${RBAC}/v1`,
      kind: "Role",
      metadata: { name, namespace: "default" },
      rules,
    });
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

describe("a tenant's identities", () => {
  let sandbox: Sandbox;
  useSandbox(FAST, (started) => ({ sandbox } = started));

  it("the compute service account (task containers: third-party code) may not create pods nor exec into them", async () => {
    // Prepare
    const run = await provision(sandbox, fusionRequest("alpha", { namespace: "alpha" }));
    expect(run.execution.status).toBe("SUCCEEDED");
    const compute = serviceAccount("alpha", "tower-compute-sa");
    const head = serviceAccount("alpha", "tower-launcher-sa");
    // Act
    const computeMay = {
      createPods: await canI(sandbox, compute, { verb: "create", resource: "pods", namespace: "alpha" }),
      exec: await canI(sandbox, compute, { verb: "create", resource: "pods", subresource: "exec", namespace: "alpha" }),
      getPods: await canI(sandbox, compute, { verb: "get", resource: "pods", namespace: "alpha" }),
      createJobs: await canI(sandbox, compute, { verb: "create", group: "batch", resource: "jobs", namespace: "alpha" }),
    };
    const headMay = await canI(sandbox, head, { verb: "create", resource: "pods", namespace: "alpha" });
    // Assess
    expect(computeMay).toEqual({ createPods: false, exec: false, getPods: false, createJobs: false });
    // The head (Nextflow itself) keeps the runbook's rights: the same question can be answered yes.
    expect(headMay).toBe(true);
  });

  it("tenant A's launcher is refused in tenant B's namespace, and works in its own", async () => {
    // Prepare
    const runs = [
      await provision(sandbox, pvcRequest("gamma", { namespace: "gamma" })),
      await provision(sandbox, pvcRequest("delta", { namespace: "delta" })),
    ];
    expect(runs.map((r) => r.execution.status)).toEqual(["SUCCEEDED", "SUCCEEDED"]);
    const gamma = await kubeClientAs(sandbox, sessionArnOf(`arn:aws:iam::${ACCOUNT_ID}:role/nfeks-gamma.research-launcher`));
    // Act
    const inDelta = await apiError(gamma.createNamespacedPod({ namespace: "delta", body: taskPod("from-gamma") }));
    const listDelta = await statusOf(gamma.listNamespacedPod({ namespace: "delta" }));
    const inGamma = await statusOf(gamma.createNamespacedPod({ namespace: "gamma", body: taskPod("own") }));
    // Assess
    expect(inDelta.code).toBe(403);
    expect(inDelta.body.message).toBe(
      'pods is forbidden: User "tower-launcher-user-gamma" cannot create resource "pods" in API group "" in the namespace "delta"',
    );
    expect(listDelta).toBe(403);
    expect(inGamma).toBe(200);
    expect(await statusOf(gamma.deleteNamespacedPod({ namespace: "gamma", name: "own" }))).toBe(200);
  });

  it("a pod breaking Pod Security baseline is refused in a tenant namespace, with the API server's message", async () => {
    // Prepare
    const run = await provision(sandbox, pvcRequest("epsilon", { namespace: "epsilon" }));
    expect(run.execution.status).toBe("SUCCEEDED");
    const launcher = await kubeClientAs(sandbox, sessionArnOf(`arn:aws:iam::${ACCOUNT_ID}:role/nfeks-epsilon.research-launcher`));
    const escapingPod = taskPod("escape");
    escapingPod.spec = {
      ...escapingPod.spec!,
      hostNetwork: true,
      containers: [
        {
          ...escapingPod.spec!.containers[0]!,
          securityContext: { privileged: true },
          volumeMounts: [{ name: "host", mountPath: "/host" }],
        },
      ],
      volumes: [{ name: "host", hostPath: { path: "/" } }],
    };
    // Act
    const refused = await apiError(launcher.createNamespacedPod({ namespace: "epsilon", body: escapingPod }));
    const plain = await statusOf(launcher.createNamespacedPod({ namespace: "epsilon", body: taskPod("plain") }));
    // Assess
    expect(refused.code).toBe(403);
    expect(refused.body).toMatchObject({
      reason: "Forbidden",
      message:
        'pods "escape" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), ' +
        'privileged (container "task" must not set securityContext.privileged=true), hostPath volumes (volume "host")',
      details: { name: "escape", kind: "pods" },
    });
    expect(plain).toBe(200);
    expect(await statusOf(launcher.deleteNamespacedPod({ namespace: "epsilon", name: "plain" }))).toBe(200);
  });

  it("a namespace with a quota admits Nextflow's task pods, which ask for nothing, through its LimitRange's defaults", async () => {
    // Prepare
    const run = await provision(sandbox, pvcRequest("zeta", { namespace: "zeta", quota: { cpu: "4", memory: "8Gi", pods: 20 } }));
    expect(run.execution.status).toBe("SUCCEEDED");
    const launcher = await kubeClientAs(sandbox, sessionArnOf(`arn:aws:iam::${ACCOUNT_ID}:role/nfeks-zeta.research-launcher`));
    // Act
    const created = await launcher.createNamespacedPod({ namespace: "zeta", body: taskPod("asks-for-nothing") });
    // Assess
    expect(created.spec?.containers[0]?.resources).toEqual({ requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "1Gi" } });
    const guards = sandbox.kube
      .snapshot()
      .filter((o) => o.metadata.namespace === "zeta" && ["LimitRange", "ResourceQuota", "NetworkPolicy"].includes(o.kind!));
    expect(guards.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      "LimitRange/tenant-defaults",
      "NetworkPolicy/deny-from-other-namespaces",
      "ResourceQuota/tenant-quota",
    ]);
    expect(guards.find((o) => o.kind === "NetworkPolicy")?.spec).toEqual({
      podSelector: {},
      policyTypes: ["Ingress"],
      ingress: [{ from: [{ podSelector: {} }] }],
    });
  });

  it("without the LimitRange, the quota refuses those pods (what the LimitRange is for)", async () => {
    // Prepare
    const run = await provision(sandbox, pvcRequest("eta", { namespace: "eta", quota: { memory: "8Gi" } }));
    expect(run.execution.status).toBe("SUCCEEDED");
    const launcher = await kubeClientAs(sandbox, sessionArnOf(`arn:aws:iam::${ACCOUNT_ID}:role/nfeks-eta.research-launcher`));
    sandbox.kube.store.delete(LIMIT_RANGES, "eta", "tenant-defaults");
    // Act
    const refused = await apiError(launcher.createNamespacedPod({ namespace: "eta", body: taskPod("asks-for-nothing") }));
    // Assess
    expect(refused.code).toBe(403);
    expect(refused.body.message).toBe(
      'pods "asks-for-nothing" is forbidden: failed quota: tenant-quota: must specify limits.memory,requests.memory',
    );
  });
});

describe("before deleting a namespace it created, compensation looks at every kind discovery lists", () => {
  let sandbox: Sandbox;
  useSandbox(FAST, (started) => ({ sandbox } = started));

  /** A run of the tenant that fails at its end (the onboarding event), so every compensator runs. */
  async function failedRun(tenant: string) {
    sandbox.faults.inject({ operation: "events:PutEvents", kind: "permanent", times: 1 });
    const run = await provision(sandbox, pvcRequest(tenant, { namespace: tenant }));
    expect(run.execution.status).toBe("FAILED");
    await settled(sandbox);
    return stepResult<{ undone: string[]; kept: string[] }>(run, "UndoNamespaceAndRbac");
  }

  it("keeps it for a Deployment someone else made there (a kind no fixed list of the runbook's kinds had)", async () => {
    // Prepare: someone deploys into the namespace as soon as it exists
    const stop = sandbox.kube.store.subscribe((event) => {
      if (event.type !== "ADDED" || event.resourceType !== NAMESPACES || event.object.metadata.name !== "theta") return;
      setImmediate(() =>
        sandbox.kube.store.create(
          DEPLOYMENTS,
          { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "someone-elses-app" } },
          "theta",
        ),
      );
    });
    // Act
    const undo = await failedRun("theta").finally(stop);
    // Assess
    expect(undo.kept).toEqual([
      "Namespace theta: created by this run but now holds objects it did not create (Deployment someone-elses-app)",
    ]);
    expect(sandbox.kube.snapshot().some((o) => o.kind === "Namespace" && o.metadata.name === "theta")).toBe(true);
  });

  it("keeps it when the cluster serves a kind the provisioner may not list, and says which", async () => {
    // Prepare
    sandbox.kube.registerCustomResource({ group: "example.com", version: "v1", kind: "Widget", plural: "widgets" });
    // Act
    const undo = await failedRun("iota");
    // Assess
    expect(undo.kept).toEqual([
      "Namespace iota: created by this run but it may not list widgets.example.com there, which may hold objects it did not create",
    ]);
    expect(undo.undone).toContain("Role iota/tower-launcher-role");
    const left = sandbox.kube.snapshot().filter((o) => o.metadata.namespace === "iota" || o.metadata.name === "iota");
    expect(left.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      "ConfigMap/kube-root-ca.crt",
      "Namespace/iota",
      "ServiceAccount/default",
    ]);
  });
});
