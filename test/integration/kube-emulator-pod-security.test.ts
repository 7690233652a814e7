/**
 * Pod Security admission on the emulated API server: the namespace's `pod-security.kubernetes.io/*` labels decide;
 * `enforce` refuses a pod (any creator, the Job controller included) with upstream's message, `warn` admits it with a
 * `Warning` header, and a namespace without labels admits anything (EKS's default is privileged).
 */
import { describe, expect, it } from "vitest";
import { request as httpsRequest } from "node:https";
import type { V1Pod } from "@kubernetes/client-node";
import type { KubeApiServer } from "../../local/kube/kube-apiserver.js";
import { ADMIN_TOKEN, apiError, job, type Clients, useKubeEmulator, WAIT_MS } from "../support/kube-emulator-clients.js";
import { until } from "../support/sandbox-runs.js";

const BASELINE_RESTRICTED = {
  "pod-security.kubernetes.io/enforce": "baseline",
  "pod-security.kubernetes.io/enforce-version": "latest",
  "pod-security.kubernetes.io/warn": "restricted",
  "pod-security.kubernetes.io/warn-version": "latest",
};

function pod(name: string, namespace: string, container: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: { restartPolicy: "Never", containers: [{ name: "c", image: "busybox", ...container }], ...spec },
  };
}

/** POST a pod as the admin and return the status code and the Warning header (client-node does not show headers). */
function createRaw(kube: KubeApiServer, body: V1Pod): Promise<{ status: number; warning?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${kube.url}/api/v1/namespaces/${body.metadata!.namespace}/pods`,
      { method: "POST", ca: kube.caPem, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" } },
      (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, warning: res.headers.warning as string | undefined }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("Pod Security admission", () => {
  let kube: KubeApiServer;
  let admin: Clients;
  useKubeEmulator((started) => ({ kube, admin } = started));

  function labelled(name: string, labels: Record<string, string>): void {
    kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
    kube.seed({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: name } });
  }

  it("refuses what breaks the enforced level with upstream's message, every reason in upstream's order", async () => {
    // Prepare
    labelled("guarded", BASELINE_RESTRICTED);
    const bad = pod(
      "bad",
      "guarded",
      {
        securityContext: { privileged: true, capabilities: { add: ["NET_ADMIN", "CHOWN", "SYS_ADMIN"] } },
        ports: [{ containerPort: 80, hostPort: 8080 }],
      },
      { hostPID: true, hostNetwork: true, volumes: [{ name: "root", hostPath: { path: "/" } }] },
    );
    // Act
    const refused = await apiError(admin.core.createNamespacedPod({ namespace: "guarded", body: bad }));
    // Assess
    expect(refused.code).toBe(403);
    expect(refused.body).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message:
        'pods "bad" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true), ' +
        'hostPort (container "c" uses hostPort 8080), privileged (container "c" must not set securityContext.privileged=true), ' +
        'non-default capabilities (container "c" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add), hostPath volumes (volume "root")',
      reason: "Forbidden",
      details: { name: "bad", kind: "pods" },
      code: 403,
    });
  });

  it("admits what passes the enforced level, with a Warning for what the warn level would refuse", async () => {
    // Prepare
    labelled("warned", BASELINE_RESTRICTED);
    // Act
    const plain = await createRaw(kube, pod("plain", "warned"));
    const hardened = await createRaw(
      kube,
      pod(
        "hardened",
        "warned",
        { securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, runAsNonRoot: true } },
        { securityContext: { seccompProfile: { type: "RuntimeDefault" } } },
      ),
    );
    // Assess
    expect(plain.status).toBe(201);
    expect(plain.warning).toBe(
      '299 - "would violate PodSecurity \\"restricted:latest\\": allowPrivilegeEscalation != false (container \\"c\\" must set securityContext.allowPrivilegeEscalation=false), ' +
        'unrestricted capabilities (container \\"c\\" must set securityContext.capabilities.drop=[\\"ALL\\"]), runAsNonRoot != true (pod or container \\"c\\" must set securityContext.runAsNonRoot=true), ' +
        'seccompProfile (pod or container \\"c\\" must set securityContext.seccompProfile.type to \\"RuntimeDefault\\" or \\"Localhost\\")"',
    );
    expect(hardened).toEqual({ status: 201, warning: undefined });
  });

  it("refuses a Job's privileged pod (the Job itself is admitted: workloads are only warned about)", async () => {
    // Prepare
    labelled("jobs", BASELINE_RESTRICTED);
    const privileged = job("privileged", "jobs");
    privileged.spec!.template.spec!.containers[0]!.securityContext = { privileged: true };
    // Act
    await admin.batch.createNamespacedJob({ namespace: "jobs", body: privileged });
    await until(
      "the job controller to try",
      () => kube.snapshot().some((o) => o.kind === "Job" && o.metadata.name === "privileged"),
      WAIT_MS,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Assess
    expect(kube.snapshot().filter((o) => o.kind === "Pod" && o.metadata.namespace === "jobs")).toEqual([]);
  });

  it("admits anything in a namespace without Pod Security labels (EKS's default level is privileged)", async () => {
    // Prepare
    labelled("open", {});
    // Act
    const created = await admin.core.createNamespacedPod({
      namespace: "open",
      body: pod("root", "open", { securityContext: { privileged: true } }, { hostNetwork: true }),
    });
    // Assess
    expect(created.metadata?.name).toBe("root");
  });
});
