/**
 * What the emulated Kubernetes API server's controllers do, seen through @kubernetes/client-node v1: the simulated
 * kubelet runs a Job's pod Pending → Running → Succeeded (or Failed), deletes cascade to a Job's pods by
 * propagationPolicy, close() stops the kubelet, and deleting a namespace empties it (refusing new objects meanwhile).
 */
import { describe, expect, it } from "vitest";
import { startKubeApi, type KubeApiServer } from "../../local/kube/kube-apiserver.js";
import { until } from "../support/sandbox-runs.js";
import {
  ADMIN_TOKEN,
  apiError,
  clientsFor,
  configMap,
  createNamespace,
  job,
  staticAuthenticate,
  useKubeEmulator,
  WAIT_MS,
  type Clients,
} from "../support/kube-emulator-clients.js";

describe("emulated Kubernetes API server", () => {
  let kube: KubeApiServer;
  let admin: Clients;
  useKubeEmulator((started) => ({ kube, admin } = started));

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
      const podsOf = async (name: string) =>
        (await admin.core.listNamespacedPod({ namespace: "team", labelSelector: `job-name=${name}` })).items;
      await until(
        "a pod for each job",
        async () => (await podsOf("gc-background")).length === 1 && (await podsOf("gc-orphan")).length === 1,
        WAIT_MS,
      );
      // Act
      await admin.objects.delete(
        { apiVersion: "batch/v1", kind: "Job", metadata: { name: "gc-background", namespace: "team" } },
        undefined,
        undefined,
        undefined,
        undefined,
        "Background",
      );
      await admin.objects.delete({ apiVersion: "batch/v1", kind: "Job", metadata: { name: "gc-orphan", namespace: "team" } });
      // Assess (the garbage collector works asynchronously, as upstream's)
      await until("the background job's pods to be collected", async () => (await podsOf("gc-background")).length === 0, WAIT_MS);
      await until(
        "the orphan to lose its owner",
        async () => (await podsOf("gc-orphan"))[0]?.metadata?.ownerReferences === undefined,
        WAIT_MS,
      );
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
      await until(
        "namespace doomed and its content to be gone",
        () => !kube.snapshot().some((o) => o.metadata.name === "doomed" || o.metadata.namespace === "doomed"),
        WAIT_MS,
      );
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
        expect(error.body.message).toBe(
          'configmaps "late" is forbidden: unable to create new content in namespace leaving because it is being terminated',
        );
      } finally {
        await slow.close();
      }
    });
  });
});
