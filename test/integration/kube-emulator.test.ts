/**
 * The emulated Kubernetes API server (local/kube/) through the real clients: @kubernetes/client-node v1
 * (KubernetesObjectApi and the typed APIs, KubeConfig built in code with the sandbox CA) and kubectl.
 * What the steps rely on is checked against the real server's answers: Status shapes and messages,
 * resourceVersion conflicts, the three patch types, selectors, the Job lifecycle, cascades, RBAC, EKS auth.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Job,
  type V1Pod,
} from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { FaultInjector } from "../../local/faults.js";
import { startKubeApi, type KubeApiServer, type KubeUser } from "../../local/kube/kube-apiserver.js";
import { eksAuthenticator, type EksAuthAws, type EksClusterView, type PresignedCallerIdentity } from "../../local/kube/auth.js";
import { startAwsEmulator, type AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import { eksBearerToken } from "../../functions/lib/aws/eks-token.js";
import { HAS_KUBECTL, KUBECTL, until } from "../support/sandbox-runs.js";

const run = promisify(execFile);

const ADMIN_TOKEN = "admin-token";
const LAUNCHER_TOKEN = "launcher-token";
const STATIC_USERS: Record<string, KubeUser> = {
  [ADMIN_TOKEN]: { username: "kubernetes-admin", groups: ["system:masters"] },
  [LAUNCHER_TOKEN]: { username: "tower-launcher-user", groups: ["tower-launcher-role"] },
};
const staticAuthenticate = async (token: string) => STATIC_USERS[token];

const AWS_AUTH: V1ConfigMap = {
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

interface Clients {
  objects: KubernetesObjectApi;
  core: CoreV1Api;
  batch: BatchV1Api;
  config: KubeConfig;
}

function clientsFor(kube: KubeApiServer, token: string, caData = kube.caData): Clients {
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
async function apiError(promise: Promise<unknown>): Promise<{ code: number; body: Record<string, unknown>; headers: Record<string, string> }> {
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
const WAIT_MS = 5000;

function configMap(name: string, namespace: string, labels?: Record<string, string>, data: Record<string, string> = { key: "value" }): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace, ...(labels ? { labels } : {}) }, data };
}

function job(name: string, namespace: string, labels: Record<string, string> = {}): V1Job {
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

async function createNamespace(kube: KubeApiServer, name: string): Promise<void> {
  kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
  // The namespace controller adds the `default` ServiceAccount right after, as on a real cluster.
  await until(`the default ServiceAccount in ${name}`, () => kube.snapshot().some((o) => o.kind === "ServiceAccount" && o.metadata.namespace === name), WAIT_MS);
}

describe("emulated Kubernetes API server", () => {
  let kube: KubeApiServer;
  let admin: Clients;
  const faults = new FaultInjector();

  beforeAll(async () => {
    kube = await startKubeApi({
      authenticate: staticAuthenticate,
      faults,
      kubelet: { stepMs: 20, failJobs: (j) => j.metadata.labels?.outcome === "fail" },
    });
    kube.seed(AWS_AUTH as never);
    admin = clientsFor(kube, ADMIN_TOKEN);
    await createNamespace(kube, "team");
    await createNamespace(kube, "other");
  });

  afterAll(async () => {
    await kube.close();
  });

  describe("objects through KubernetesObjectApi", () => {
    it("creates, reads, replaces and deletes with server-set metadata", async () => {
      // Prepare
      const desired = configMap("crud", "team", { app: "demo" });
      // Act
      const created = await admin.objects.create(desired);
      const read = await admin.objects.read<V1ConfigMap>({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "crud", namespace: "team" } });
      const replaced = await admin.objects.replace({ ...read, data: { key: "changed" } });
      const deleted = await admin.objects.delete({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "crud", namespace: "team" } });
      const afterDelete = await apiError(admin.objects.read({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "crud", namespace: "team" } }));
      // Assess
      expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.metadata?.resourceVersion).toMatch(/^\d+$/);
      expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
      expect(read.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
      expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
      expect((replaced as V1ConfigMap).data).toEqual({ key: "changed" });
      expect(replaced.metadata?.uid).toBe(created.metadata?.uid);
      expect(deleted).toMatchObject({ kind: "Status", status: "Success", details: { name: "crud", kind: "configmaps", uid: created.metadata?.uid } });
      expect(afterDelete.code).toBe(404);
    });

    it("answers a missing object with the real NotFound Status", async () => {
      // Act
      const error = await apiError(admin.objects.read({ apiVersion: "batch/v1", kind: "Job", metadata: { name: "nope", namespace: "team" } }));
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
      expect(error.body).toMatchObject({ reason: "NotFound", message: 'namespaces "missing" not found', details: { name: "missing", kind: "namespaces" } });
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
        message: 'Operation cannot be fulfilled on configmaps "aws-auth": the object has been modified; please apply your changes to the latest version and try again',
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
      expect(badName.body.message).toMatch(/^ConfigMap "Bad_Name" is invalid: metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);
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
        const list = await admin.objects.list("v1", "ConfigMap", "selectors", undefined, undefined, undefined, fieldSelector, labelSelector);
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

  describe("PATCH", () => {
    it("creates with server-side apply (apply-patch+yaml), then merges a second apply", async () => {
      // Prepare
      const applied = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "ssa", namespace: "team", labels: { a: "1" } }, data: { x: "1" } };
      // Act
      const created = await admin.objects.patch<V1ConfigMap>(applied, undefined, undefined, "provisioner", undefined, PatchStrategy.ServerSideApply);
      const updated = await admin.objects.patch<V1ConfigMap>({ ...applied, data: { y: "2" } }, undefined, undefined, "provisioner", undefined, PatchStrategy.ServerSideApply);
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
        { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "merge", namespace: "team", labels: { drop: null as unknown as string, added: "3" } }, data: { b: "changed" } },
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
        { apiVersion: "v1", kind: "Pod", metadata: { name: "two-containers", namespace: "team", labels: { patched: "yes" } }, spec: { containers: [{ name: "sidecar", image: "envoy:2.0" }] } },
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
          { name: "json", namespace: "team", body: [{ op: "replace", path: "/data/a", value: "two" }, { op: "test", path: "/data/a", value: "never" }] },
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
      await admin.objects.patch({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "guarded", namespace: "team" }, data: { key: "v2" } }, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
      // Act
      const error = await apiError(
        admin.objects.patch(
          { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "guarded", namespace: "team", resourceVersion: created.metadata?.resourceVersion }, data: { key: "v3" } },
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

  describe("Jobs and the simulated kubelet", () => {
    it("runs a Job's pod Pending → Running → Succeeded and completes the Job", async () => {
      // Prepare
      const phases: string[] = [];
      const unsubscribe = kube.store.subscribe((e) => {
        if (e.resourceType.resource === "pods" && e.object.metadata.labels?.["job-name"] === "head-ok") phases.push(e.object.status?.phase);
      });
      // Act
      const created = await admin.batch.createNamespacedJob({ namespace: "team", body: job("head-ok", "team") });
      const done = await until(
        "job head-ok to succeed",
        async () => {
          const j = await admin.batch.readNamespacedJob({ name: "head-ok", namespace: "team" });
          return j.status?.succeeded === 1 ? j : undefined;
        },
        WAIT_MS,
      );
      const pods = await admin.core.listNamespacedPod({ namespace: "team", labelSelector: "job-name=head-ok" });
      unsubscribe();
      // Assess
      const pod = pods.items[0]!;
      expect(pods.items).toHaveLength(1);
      expect(pod.metadata?.name).toMatch(/^head-ok-[a-z0-9]{5}$/);
      expect(pod.metadata?.labels).toMatchObject({
        "job-name": "head-ok",
        "batch.kubernetes.io/job-name": "head-ok",
        "controller-uid": created.metadata?.uid,
        "batch.kubernetes.io/controller-uid": created.metadata?.uid,
        app: "nextflow",
      });
      expect(pod.metadata?.ownerReferences).toEqual([
        { apiVersion: "batch/v1", kind: "Job", name: "head-ok", uid: created.metadata?.uid, controller: true, blockOwnerDeletion: true },
      ]);
      expect(pod.status?.phase).toBe("Succeeded");
      expect(pod.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 0, reason: "Completed" });
      expect([...new Set(phases)]).toEqual(["Pending", "Running", "Succeeded"]);
      expect(done.status?.startTime).toBeInstanceOf(Date);
      expect(done.status?.completionTime).toBeInstanceOf(Date);
      expect(done.status?.active).toBeUndefined();
      expect(done.status?.conditions?.find((c) => c.type === "Complete")).toMatchObject({ status: "True" });
      expect(await admin.core.readNamespacedPodLog({ name: pod.metadata!.name!, namespace: "team" })).toContain("nextflow run hello");
    });

    it("fails the Job when failJobs says so: pod Failed (exit code 1, Error), condition Failed", async () => {
      // Act
      await admin.batch.createNamespacedJob({ namespace: "team", body: job("head-bad", "team", { outcome: "fail" }) });
      const failed = await until(
        "job head-bad to fail",
        async () => {
          const j = await admin.batch.readNamespacedJob({ name: "head-bad", namespace: "team" });
          return j.status?.conditions?.some((c) => c.type === "Failed") ? j : undefined;
        },
        WAIT_MS,
      );
      const pods = await admin.core.listNamespacedPod({ namespace: "team", labelSelector: "job-name=head-bad" });
      // Assess
      expect(failed.status?.failed).toBe(1);
      expect(failed.status?.succeeded).toBeUndefined();
      expect(failed.status?.conditions?.find((c) => c.type === "Failed")).toMatchObject({ status: "True", reason: "BackoffLimitExceeded" });
      expect(pods.items).toHaveLength(1);
      expect(pods.items[0]!.status?.phase).toBe("Failed");
      expect(pods.items[0]!.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 1, reason: "Error" });
    });

    it("deletes a Job's pods with propagationPolicy Background, and orphans them by default", async () => {
      // Prepare
      await admin.batch.createNamespacedJob({ namespace: "team", body: job("gc-background", "team") });
      await admin.batch.createNamespacedJob({ namespace: "team", body: job("gc-orphan", "team") });
      const podsOf = async (name: string) => (await admin.core.listNamespacedPod({ namespace: "team", labelSelector: `job-name=${name}` })).items;
      await until("a pod for each job", async () => (await podsOf("gc-background")).length === 1 && (await podsOf("gc-orphan")).length === 1, WAIT_MS);
      // Act
      await admin.objects.delete({ apiVersion: "batch/v1", kind: "Job", metadata: { name: "gc-background", namespace: "team" } }, undefined, undefined, undefined, undefined, "Background");
      await admin.objects.delete({ apiVersion: "batch/v1", kind: "Job", metadata: { name: "gc-orphan", namespace: "team" } });
      // Assess
      expect(await podsOf("gc-background")).toEqual([]);
      const orphans = await podsOf("gc-orphan");
      expect(orphans).toHaveLength(1);
      expect(orphans[0]!.metadata?.ownerReferences).toBeUndefined();
    });

    it("stops the kubelet on close(): no timer touches the store afterwards", async () => {
      // Prepare
      const short = await startKubeApi({ authenticate: staticAuthenticate, kubelet: { stepMs: 40 } });
      await createNamespace(short, "work");
      await clientsFor(short, ADMIN_TOKEN).batch.createNamespacedJob({ namespace: "work", body: job("cut-short", "work") });
      await until("the job's pod", () => short.snapshot().some((o) => o.kind === "Pod"), WAIT_MS);
      // Act
      await short.close();
      const atClose = short.store.resourceVersion;
      await new Promise((resolve) => setTimeout(resolve, 200));
      // Assess
      expect(short.store.resourceVersion).toBe(atClose);
      expect(short.snapshot().find((o) => o.kind === "Pod")?.status?.phase).not.toBe("Succeeded");
    });

    it("refuses a Job whose pod template has restartPolicy Always (422)", async () => {
      // Prepare
      const bad = job("always", "team");
      bad.spec!.template.spec!.restartPolicy = "Always";
      // Act
      const error = await apiError(admin.batch.createNamespacedJob({ namespace: "team", body: bad }));
      // Assess
      expect(error.code).toBe(422);
      expect(error.body.message).toContain('spec.template.spec.restartPolicy: Unsupported value: "Always"');
    });
  });

  describe("namespaces", () => {
    it("deleting a namespace removes everything in it and nothing elsewhere", async () => {
      // Prepare
      await createNamespace(kube, "doomed");
      await admin.objects.create(configMap("inside", "doomed"));
      await admin.batch.createNamespacedJob({ namespace: "doomed", body: job("inside", "doomed") });
      await admin.objects.create(configMap("outside", "other"));
      // Act
      const answer = await admin.core.deleteNamespace({ name: "doomed" });
      await until("namespace doomed and its content to be gone", () => !kube.snapshot().some((o) => o.metadata.name === "doomed" || o.metadata.namespace === "doomed"), WAIT_MS);
      // Assess
      expect(answer).toMatchObject({ status: { phase: "Terminating" } });
      expect((await apiError(admin.core.readNamespace({ name: "doomed" }))).code).toBe(404);
      expect((await admin.core.readNamespacedConfigMap({ name: "outside", namespace: "other" })).metadata?.name).toBe("outside");
    });

    it("refuses new objects in a Terminating namespace (403, NamespaceTerminating)", async () => {
      // Prepare
      const slow = await startKubeApi({ authenticate: staticAuthenticate, kubelet: { stepMs: 20, namespaceDeletionMs: 10_000 } });
      try {
        const client = clientsFor(slow, ADMIN_TOKEN);
        await createNamespace(slow, "leaving");
        await client.core.deleteNamespace({ name: "leaving" });
        // Act
        const error = await apiError(client.objects.create(configMap("late", "leaving")));
        // Assess
        expect(error.code).toBe(403);
        expect(error.body.message).toBe('configmaps "late" is forbidden: unable to create new content in namespace leaving because it is being terminated');
      } finally {
        await slow.close();
      }
    });
  });

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

  describe("faults", () => {
    it("answers an injected throttle with 429 TooManyRequests once, then normally", async () => {
      // Prepare
      const cm = await admin.objects.create(configMap("throttled", "team"));
      faults.inject({ operation: "kube:PUT configmaps", kind: "throttle", times: 1 });
      // Act
      const error = await apiError(admin.objects.replace({ ...cm, data: { key: "2" } }));
      const retried = await admin.objects.replace<V1ConfigMap>({ ...cm, data: { key: "2" } });
      // Assess
      expect(error.code).toBe(429);
      expect(error.body).toMatchObject({ kind: "Status", status: "Failure", reason: "TooManyRequests", code: 429 });
      expect(retried.data).toEqual({ key: "2" });
      expect(faults.fired).toEqual([{ operation: "kube:PUT configmaps", kind: "throttle" }]);
      faults.clear();
    });

    it("answers injected 5xx and conflict faults, and delays on latency", async () => {
      // Prepare
      faults.inject({ operation: "kube:GET pods", kind: "5xx", times: 1 });
      faults.inject({ operation: "kube:POST jobs", kind: "conflict", times: 1 });
      faults.inject({ operation: "kube:GET namespaces", kind: "latency", ms: 150, times: 1 });
      // Act
      const unavailable = await apiError(admin.core.listNamespacedPod({ namespace: "team" }));
      const conflicted = await apiError(admin.batch.createNamespacedJob({ namespace: "team", body: job("never", "team") }));
      const started = Date.now();
      await admin.core.listNamespace();
      const elapsed = Date.now() - started;
      // Assess
      expect(unavailable.code).toBe(503);
      expect(unavailable.body.reason).toBe("ServiceUnavailable");
      expect(conflicted.code).toBe(409);
      expect(conflicted.body.reason).toBe("Conflict");
      expect(elapsed).toBeGreaterThanOrEqual(140);
      faults.clear();
    });
  });

  describe("OpenAPI v2 (what kubectl before 1.27 validates against)", () => {
    const getOpenApiV2 = (accept: string) =>
      new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
        const req = httpsRequest(`${kube.url}/openapi/v2`, { ca: kube.caPem, headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, Accept: accept } }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body: Buffer.concat(chunks) }));
        });
        req.on("error", reject);
        req.end();
      });

    it("serves an empty Swagger 2.0 document as JSON, and as gnostic protobuf under a parseable media type", async () => {
      // Act
      const json = await getOpenApiV2("application/json");
      const proto = await getOpenApiV2("application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json");
      // Assess
      expect(json.status).toBe(200);
      expect(JSON.parse(json.body.toString())).toEqual({ swagger: "2.0", info: { title: "Kubernetes", version: "v1.31.4" }, paths: {}, definitions: {} });
      expect(proto.status).toBe(200);
      expect(proto.type).toBe("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"); // no "@": client-go's mime parser refuses it
      // openapi.v2.Document {swagger(1): "2.0", info(2): {title(1), version(2)}, paths(8): {}, definitions(9): {}}
      const info = Buffer.concat([Buffer.from([0x0a, 10]), Buffer.from("Kubernetes"), Buffer.from([0x12, 7]), Buffer.from("v1.31.4")]);
      expect(proto.body).toEqual(Buffer.concat([Buffer.from([0x0a, 3]), Buffer.from("2.0"), Buffer.from([0x12, info.length]), info, Buffer.from([0x42, 0, 0x4a, 0])]));
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

// ---------------------------------------------------------------------------- EKS authentication

const ACCOUNT = "111122223333";
const CLUSTER = "research";

/** A presigned-URL token whose X-Amz-Credential names the stub caller. */
function stubToken(accessKeyId: string, clusterHeader = "x-k8s-aws-id"): string {
  const url = `https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Credential=${accessKeyId}%2F20250101%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-SignedHeaders=host%3B${clusterHeader}&X-Amz-Signature=abc`;
  return "k8s-aws-v1." + Buffer.from(url).toString("base64url").replace(/=+$/, "");
}

function stubAws(mode: EksClusterView["authenticationMode"], callers: Record<string, string>, entries: EksClusterView["accessEntries"] = new Map()): EksAuthAws & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    state: { accountId: ACCOUNT, eks: { clusters: new Map([[`eu-west-1/${CLUSTER}`, { name: CLUSTER, region: "eu-west-1", authenticationMode: mode, accessEntries: entries }]]) } },
    async verifyPresignedCallerIdentity(url, opts): Promise<PresignedCallerIdentity | undefined> {
      calls.push(url);
      const key = new URL(url).searchParams.get("X-Amz-Credential")?.split("/")[0] ?? "";
      const arn = callers[key];
      return arn ? { arn, accountId: ACCOUNT, userId: `AROA${key}`, accessKeyId: key, clusterName: opts?.clusterName } : undefined;
    },
  };
}

const LAUNCHER_ROLE = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-launcher`;
const LAUNCHER_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-genomics-launcher/tower@seqera.io`;
const ADMIN_USER = `arn:aws:iam::${ACCOUNT}:user/sandbox-admin`;

describe("eksAuthenticator", () => {
  let kube: KubeApiServer;

  beforeAll(async () => {
    kube = await startKubeApi({ authenticate: async () => undefined, kubelet: { stepMs: 20 } });
  });

  afterAll(async () => {
    await kube.close();
  });

  it("maps an assumed role through its access entry (API mode), substituting {{SessionName}}", async () => {
    // Prepare
    const aws = stubAws(
      "API",
      { LAUNCHER: LAUNCHER_SESSION, ADMIN: ADMIN_USER },
      new Map([
        [LAUNCHER_ROLE, { principalArn: LAUNCHER_ROLE, username: "tower-launcher-user:{{SessionName}}", kubernetesGroups: ["tower-launcher-role"], accessPolicies: new Map() }],
        [
          ADMIN_USER,
          {
            principalArn: ADMIN_USER,
            username: ADMIN_USER,
            kubernetesGroups: [],
            accessPolicies: new Map([["arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy", { policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy", accessScope: { type: "cluster", namespaces: [] } }]]),
          },
        ],
      ]),
    );
    const authenticate = eksAuthenticator(aws, CLUSTER);
    // Act
    const launcher = await authenticate(stubToken("LAUNCHER"), { store: kube.store });
    const admin = await authenticate(stubToken("ADMIN"), { store: kube.store });
    // Assess
    expect(launcher).toMatchObject({ username: "tower-launcher-user:tower-seqera.io", groups: ["tower-launcher-role"] });
    expect(launcher?.extra?.canonicalArn).toEqual([LAUNCHER_ROLE]);
    expect(admin).toMatchObject({ username: ADMIN_USER, groups: ["system:masters"] });
  });

  it("maps through kube-system/aws-auth in CONFIG_MAP mode, and the cluster creator is admin", async () => {
    // Prepare
    kube.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "aws-auth", namespace: "kube-system" },
      data: {
        mapRoles: `- rolearn: arn:aws:iam::${ACCOUNT}:role/teams/nfeks-genomics-launcher\n  username: "tower-launcher-user:{{SessionName}}"\n  groups:\n    - tower-launcher-role\n`,
        mapUsers: `- userarn: arn:aws:iam::${ACCOUNT}:user/alice\n  username: alice\n  groups: [readers]\n`,
      },
    });
    const aws = stubAws("CONFIG_MAP", { LAUNCHER: LAUNCHER_SESSION, ADMIN: ADMIN_USER, ALICE: `arn:aws:iam::${ACCOUNT}:user/alice`, BOB: `arn:aws:iam::${ACCOUNT}:user/bob` });
    const authenticate = eksAuthenticator(aws, CLUSTER);
    // Act
    const launcher = await authenticate(stubToken("LAUNCHER"), { store: kube.store });
    const alice = await authenticate(stubToken("ALICE"), { store: kube.store });
    const creator = await authenticate(stubToken("ADMIN"), { store: kube.store });
    const bob = await authenticate(stubToken("BOB"), { store: kube.store });
    // Assess
    expect(launcher).toMatchObject({ username: "tower-launcher-user:tower-seqera.io", groups: ["tower-launcher-role"] });
    expect(alice).toMatchObject({ username: "alice", groups: ["readers"] });
    expect(creator).toMatchObject({ username: "kubernetes-admin", groups: ["system:masters"] });
    expect(bob).toBeUndefined();
  });

  it("prefers the access entry over aws-auth in API_AND_CONFIG_MAP, and ignores aws-auth in API mode", async () => {
    // Prepare
    kube.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "aws-auth", namespace: "kube-system" },
      data: { mapRoles: `- rolearn: ${LAUNCHER_ROLE}\n  username: from-aws-auth\n  groups: [g1]\n` },
    });
    const entries = new Map([[LAUNCHER_ROLE, { principalArn: LAUNCHER_ROLE, username: "from-entry", kubernetesGroups: ["g2"], accessPolicies: new Map() }]]);
    const both = eksAuthenticator(stubAws("API_AND_CONFIG_MAP", { LAUNCHER: LAUNCHER_SESSION }, entries), CLUSTER);
    const bothNoEntry = eksAuthenticator(stubAws("API_AND_CONFIG_MAP", { LAUNCHER: LAUNCHER_SESSION }), CLUSTER);
    const apiOnly = eksAuthenticator(stubAws("API", { LAUNCHER: LAUNCHER_SESSION }), CLUSTER);
    // Act
    const answers = await Promise.all([both, bothNoEntry, apiOnly].map((authenticate) => authenticate(stubToken("LAUNCHER"), { store: kube.store })));
    // Assess
    expect(answers.map((u) => u?.username)).toEqual(["from-entry", "from-aws-auth", undefined]);
  });

  it("rejects tokens that are not EKS tokens, do not sign x-k8s-aws-id, or name another cluster", async () => {
    // Prepare
    const aws = stubAws("API", { LAUNCHER: LAUNCHER_SESSION }, new Map([[LAUNCHER_ROLE, { principalArn: LAUNCHER_ROLE, username: "u", kubernetesGroups: [], accessPolicies: new Map() }]]));
    // Act
    const answers = await Promise.all([
      eksAuthenticator(aws, CLUSTER)("Bearer-ish-token"),
      eksAuthenticator(aws, CLUSTER)(stubToken("LAUNCHER", "x-other-header")),
      eksAuthenticator(aws, "another-cluster")(stubToken("LAUNCHER")),
      eksAuthenticator(aws, CLUSTER)(stubToken("NOBODY")),
    ]);
    // Assess
    expect(answers).toEqual([undefined, undefined, undefined, undefined]);
    expect(aws.calls).toHaveLength(2); // the malformed tokens never reach STS
  });

  it("authenticates a real EKS token end to end: eksBearerToken → AWS emulator → kube API", async () => {
    // Prepare
    let aws: AwsEmulator | undefined;
    let server: KubeApiServer | undefined;
    try {
      aws = await startAwsEmulator({ accountId: ACCOUNT });
      const emulator = aws;
      server = await startKubeApi({ authenticate: eksAuthenticator(emulator, CLUSTER), kubelet: { stepMs: 20 } });
      aws.seedCluster({ name: CLUSTER, region: "eu-west-1", endpoint: server.url, certificateAuthority: server.caData, authenticationMode: "API" });
      const { token } = await eksBearerToken(CLUSTER, "eu-west-1", { stsEndpoint: aws.url });
      const { token: otherCluster } = await eksBearerToken("elsewhere", "eu-west-1", { stsEndpoint: aws.url });
      // Act
      const namespaces = await clientsFor(server, token).core.listNamespace();
      const refused = await apiError(clientsFor(server, otherCluster).core.listNamespace());
      // Assess
      expect(namespaces.items.map((n) => n.metadata?.name)).toContain("kube-system");
      expect(refused.code).toBe(401);
    } finally {
      await server?.close();
      await aws?.close();
    }
  });
});

// ---------------------------------------------------------------------------- kubectl

const describeKubectl = HAS_KUBECTL ? describe : describe.skip;
if (!HAS_KUBECTL) console.warn(`kube-emulator tests: ${KUBECTL} not found, skipping the kubectl tests`);

describeKubectl("kubectl against the emulator", () => {
  let kube: KubeApiServer;
  let dir: string;
  let kubeconfig: string;

  async function kubectl(...args: string[]): Promise<{ stdout: string; code: number }> {
    try {
      const { stdout } = await run(KUBECTL, ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args], {
        env: { PATH: process.env.PATH ?? "", HOME: dir },
        timeout: 20_000,
      });
      return { stdout, code: 0 };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; code?: number };
      return { stdout: `${e.stdout ?? ""}${e.stderr ?? ""}`, code: typeof e.code === "number" ? e.code : 1 };
    }
  }

  beforeAll(async () => {
    kube = await startKubeApi({ authenticate: staticAuthenticate, kubelet: { stepMs: 20 } });
    kube.seed(AWS_AUTH as never);
    kube.seed({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "tower-launcher-user-binding", namespace: "default" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tower-launcher-role" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "tower-launcher-user" }],
    });
    dir = await mkdtemp(join(tmpdir(), "kube-emulator-"));
    kubeconfig = join(dir, "kubeconfig");
    await writeFile(kubeconfig, kube.kubeconfig(ADMIN_TOKEN));
  });

  afterAll(async () => {
    await kube?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("kubectl get ns prints the namespaces as a table", async () => {
    // Act
    const { stdout, code } = await kubectl("get", "ns");
    // Assess
    expect(code).toBe(0);
    expect(stdout).toMatch(/^NAME\s+STATUS\s+AGE/);
    expect(stdout).toMatch(/^kube-system\s+Active\s+\d+s$/m);
  });

  it("kubectl get configmap aws-auth -n kube-system -o yaml returns the stored object", async () => {
    // Act
    const { stdout, code } = await kubectl("get", "configmap", "aws-auth", "-n", "kube-system", "-o", "yaml");
    // Assess
    expect(code).toBe(0);
    const object = parseYaml(stdout) as V1ConfigMap;
    expect(object.kind).toBe("ConfigMap");
    expect(object.data).toEqual(AWS_AUTH.data);
    expect(object.metadata?.resourceVersion).toMatch(/^\d+$/);
  });

  it("kubectl describe rolebinding shows the role and subjects", async () => {
    // Act
    const { stdout, code } = await kubectl("describe", "rolebinding", "tower-launcher-user-binding", "-n", "default");
    // Assess
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Name:\s+tower-launcher-user-binding$/m);
    expect(stdout).toMatch(/Kind:\s+Role\n\s+Name:\s+tower-launcher-role/);
    expect(stdout).toMatch(/User\s+tower-launcher-user/);
  });

  it("kubectl apply -f creates then updates, and kubectl auth can-i answers from RBAC", async () => {
    // Prepare
    const manifest = join(dir, "cm.yaml");
    await writeFile(manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\ndata:\n  a: '1'\n");
    // Act
    const created = await kubectl("apply", "-f", manifest);
    await writeFile(manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\ndata:\n  a: '2'\n");
    const updated = await kubectl("apply", "-f", manifest);
    const adminCan = await kubectl("auth", "can-i", "create", "pods", "-n", "default");
    const launcherCannot = await kubectl("auth", "can-i", "create", "pods", "-n", "default", "--as", "tower-launcher-user");
    // Assess
    expect(created).toEqual({ stdout: "configmap/applied created\n", code: 0 });
    expect(updated).toEqual({ stdout: "configmap/applied configured\n", code: 0 });
    expect(kube.snapshot().find((o) => o.metadata.name === "applied")?.data).toEqual({ a: "2" });
    expect(adminCan.stdout.trim()).toBe("yes");
    expect(launcherCannot.code).not.toBe(0);
  });

  it("kubectl create role / rolebinding (the binding is sent as protobuf) grants what auth can-i --as then reports", async () => {
    // Act
    const role = await kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "default");
    const binding = await kubectl("create", "rolebinding", "alice-reads-pods", "--role=pod-reader", "--user=alice", "-n", "default");
    const canList = await kubectl("auth", "can-i", "list", "pods", "-n", "default", "--as", "alice");
    const cannotCreate = await kubectl("auth", "can-i", "create", "pods", "-n", "default", "--as", "alice");
    // Assess
    expect(role.code).toBe(0);
    expect(binding).toEqual({ stdout: "rolebinding.rbac.authorization.k8s.io/alice-reads-pods created\n", code: 0 });
    expect(kube.snapshot().find((o) => o.kind === "RoleBinding" && o.metadata.name === "alice-reads-pods")).toMatchObject({
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "alice" }],
    });
    expect(canList.stdout.trim()).toBe("yes");
    expect(cannotCreate.stdout.trim()).toBe("no");
  });
});
