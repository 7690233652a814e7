/**
 * Driving the emulated Kubernetes API server (local/kube/) through the real @kubernetes/client-node v1
 * clients, as the kube-emulator-*.test.ts files do: static tokens for an admin and the launcher, the
 * aws-auth ConfigMap a cluster starts with, clients built in code with the sandbox CA, the ApiException
 * a refused call raises (its Status body parsed), and the objects the tests create.
 */
import { afterAll, beforeAll, expect } from "vitest";
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  type V1ConfigMap,
  type V1Job,
} from "@kubernetes/client-node";
import { FaultInjector } from "../../local/faults.js";
import { startKubeApi, type KubeApiServer, type KubeUser } from "../../local/kube/kube-apiserver.js";
import { until } from "./sandbox-runs.js";

export const ADMIN_TOKEN = "admin-token";
export const LAUNCHER_TOKEN = "launcher-token";
/** A user with no rights of its own: tests grant it what they need (a delegated RBAC admin, say). */
export const DELEGATE_TOKEN = "delegate-token";
const STATIC_USERS: Record<string, KubeUser> = {
  [ADMIN_TOKEN]: { username: "kubernetes-admin", groups: ["system:masters"] },
  [LAUNCHER_TOKEN]: { username: "tower-launcher-user", groups: ["tower-launcher-role"] },
  [DELEGATE_TOKEN]: { username: "delegate", groups: ["delegates"] },
};
export const staticAuthenticate = async (token: string) => STATIC_USERS[token];

export const AWS_AUTH: V1ConfigMap = {
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: "aws-auth", namespace: "kube-system" },
  data: {
    mapRoles: [
      "- rolearn: arn:aws:iam::111122223333:role/eks-node-role",
      "  username: system:node:{{EC2PrivateDNSName}}",
      "  groups:",
      "    - system:bootstrappers",
      "    - system:nodes",
      "",
    ].join("\n"),
  },
};

export interface Clients {
  objects: KubernetesObjectApi;
  core: CoreV1Api;
  batch: BatchV1Api;
  config: KubeConfig;
}

export function clientsFor(kube: KubeApiServer, token: string, caData = kube.caData): Clients {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: "sandbox", server: kube.url, caData, skipTLSVerify: false }],
    users: [{ name: "user", token }],
    contexts: [{ name: "sandbox", cluster: "sandbox", user: "user" }],
    currentContext: "sandbox",
  });
  return {
    objects: KubernetesObjectApi.makeApiClient(config),
    core: config.makeApiClient(CoreV1Api),
    batch: config.makeApiClient(BatchV1Api),
    config,
  };
}

/** The rejection of `promise` as client-node's ApiException, with its Status body parsed. */
export async function apiError(
  promise: Promise<unknown>,
): Promise<{ code: number; body: Record<string, unknown>; headers: Record<string, string> }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiException);
  const e = error as ApiException<unknown>;
  const body = typeof e.body === "string" ? JSON.parse(e.body) : e.body;
  return { code: e.code, body: body as Record<string, unknown>, headers: e.headers as Record<string, string> };
}

/** How long the emulator gets to reach a state a test waits for. */
export const WAIT_MS = 5000;

export function configMap(
  name: string,
  namespace: string,
  labels?: Record<string, string>,
  data: Record<string, string> = { key: "value" },
): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace, ...(labels ? { labels } : {}) }, data };
}

export function job(name: string, namespace: string, labels: Record<string, string> = {}): V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace, labels },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels: { app: "nextflow" } },
        spec: {
          restartPolicy: "Never",
          containers: [{ name: "nextflow", image: "nextflow/nextflow:24.10.0", command: ["nextflow"], args: ["run", "hello"] }],
        },
      },
    },
  };
}

export async function createNamespace(kube: KubeApiServer, name: string): Promise<void> {
  kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
  // The namespace controller adds the `default` ServiceAccount right after, as on a real cluster.
  await until(
    `the default ServiceAccount in ${name}`,
    () => kube.snapshot().some((o) => o.kind === "ServiceAccount" && o.metadata.namespace === name),
    WAIT_MS,
  );
}

export interface RunningKubeEmulator {
  kube: KubeApiServer;
  /** clients holding the admin token (system:masters) */
  admin: Clients;
  /** the faults the server answers with, injected by a test and cleared by it */
  faults: FaultInjector;
}

/**
 * One emulated API server for the enclosing describe block, as the steps meet a cluster: the static tokens,
 * kube-system/aws-auth seeded, namespaces `team` and `other` with their default ServiceAccounts, and a
 * kubelet that fails the Jobs labelled `outcome: fail`. Handed to `onStart` before the tests, closed after all.
 */
export function useKubeEmulator(onStart: (started: RunningKubeEmulator) => void): void {
  let kube: KubeApiServer | undefined;
  beforeAll(async () => {
    const faults = new FaultInjector();
    kube = await startKubeApi({
      authenticate: staticAuthenticate,
      faults,
      kubelet: { stepMs: 20, failJobs: (j) => j.metadata.labels?.outcome === "fail" },
    });
    kube.seed(AWS_AUTH as never);
    const admin = clientsFor(kube, ADMIN_TOKEN);
    await createNamespace(kube, "team");
    await createNamespace(kube, "other");
    onStart({ kube, admin, faults });
  });

  afterAll(async () => {
    await kube?.close();
  });
}
