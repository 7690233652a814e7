/**
 * Deletion over time, as kube-apiserver and kube-controller-manager do it, seen through @kubernetes/client-node:
 * a namespace is Terminating (conditions naming what is left, 409 on a repeated delete, 403 NamespaceTerminating
 * on new content) until the namespace controller has emptied it; pods stop within their grace period; claims wait
 * for kubernetes.io/pvc-protection and Job pods for batch.kubernetes.io/job-tracking; the garbage collector deletes
 * or orphans dependents asynchronously by propagationPolicy. All at the tests' time factor (TEST_TIME_SCALE).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { V1Namespace, V1PersistentVolumeClaim, V1Pod } from "@kubernetes/client-node";
import { startKubeApi, type KubeApiServer } from "../../local/kube/kube-apiserver.js";
import { ClusterTiming, TEST_TIME_SCALE } from "../../local/kube/cluster-timing.js";
import { PODS } from "../../local/kube/resources.js";
import { until } from "../support/sandbox-runs.js";
import {
  ADMIN_TOKEN,
  apiError,
  clientsFor,
  configMap,
  createNamespace,
  job,
  staticAuthenticate,
  WAIT_MS,
  type Clients,
} from "../support/kube-emulator-clients.js";

const timing = new ClusterTiming(TEST_TIME_SCALE);

function runningPod(name: string, namespace: string, extra: { grace?: number; claim?: string } = {}): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: {
      restartPolicy: "Always",
      ...(extra.grace !== undefined ? { terminationGracePeriodSeconds: extra.grace } : {}),
      containers: [
        {
          name: "main",
          image: "busybox:1.36",
          command: ["sleep", "infinity"],
          ...(extra.claim ? { volumeMounts: [{ name: "data", mountPath: "/data" }] } : {}),
        },
      ],
      ...(extra.claim ? { volumes: [{ name: "data", persistentVolumeClaim: { claimName: extra.claim } }] } : {}),
    },
  };
}

function claim(name: string, namespace: string): V1PersistentVolumeClaim {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, namespace },
    spec: { accessModes: ["ReadWriteOnce"], storageClassName: "gp3", resources: { requests: { storage: "1Gi" } } },
  };
}

describe("deletion over time in the emulated cluster", () => {
  let kube: KubeApiServer;
  let admin: Clients;
  beforeAll(async () => {
    kube = await startKubeApi({ authenticate: staticAuthenticate, kubelet: { timeScale: TEST_TIME_SCALE } });
    admin = clientsFor(kube, ADMIN_TOKEN);
  });
  afterAll(async () => {
    await kube.close();
  });

  const podRunning = (name: string, namespace: string) =>
    until(
      `pod ${namespace}/${name} to run`,
      async () => (await admin.core.readNamespacedPod({ name, namespace })).status?.phase === "Running",
      WAIT_MS,
    );
  const gone = (what: string, read: () => Promise<unknown>) =>
    until(
      what,
      async () =>
        await read().then(
          () => false,
          (e: { code?: number }) => e.code === 404,
        ),
      WAIT_MS,
    );

  describe("namespaces", () => {
    it("stays Terminating while a pod stops, names what remains, and is gone about one grace period later", async () => {
      // Prepare
      await createNamespace(kube, "leaving");
      await admin.core.createNamespacedPod({ namespace: "leaving", body: runningPod("worker", "leaving") });
      await admin.objects.create(configMap("settings", "leaving"));
      await podRunning("worker", "leaving");
      const started = Date.now();
      // Act
      await admin.core.deleteNamespace({ name: "leaving" });
      const answer = await admin.core.readNamespace({ name: "leaving" });
      const conditions = await until(
        "the namespace controller's conditions",
        async () => {
          const ns = await admin.core.readNamespace({ name: "leaving" });
          return ns.status?.conditions?.find((c) => c.type === "NamespaceContentRemaining")?.status === "True"
            ? ns.status.conditions
            : undefined;
        },
        WAIT_MS,
      );
      const pod = await admin.core.readNamespacedPod({ name: "worker", namespace: "leaving" });
      await gone("namespace leaving to be gone", () => admin.core.readNamespace({ name: "leaving" }));
      const took = Date.now() - started;
      // Assess
      const ns: V1Namespace = answer;
      expect(ns.status?.phase).toBe("Terminating");
      expect(ns.metadata?.deletionTimestamp).toBeInstanceOf(Date);
      expect(ns.spec?.finalizers).toEqual(["kubernetes"]);
      expect(conditions.find((c) => c.type === "NamespaceContentRemaining")).toMatchObject({
        status: "True",
        reason: "SomeResourcesRemain",
        message: "Some resources are remaining: pods. has 1 resource instances",
      });
      expect(conditions.find((c) => c.type === "NamespaceDeletionContentFailure")).toMatchObject({
        status: "False",
        reason: "ContentDeleted",
      });
      expect(pod.metadata?.deletionTimestamp).toBeInstanceOf(Date);
      expect(pod.metadata?.deletionGracePeriodSeconds).toBe(30);
      expect(took).toBeGreaterThanOrEqual(timing.ms(30));
      expect(took).toBeLessThan(timing.ms(30) + 2_000);
    });

    it("answers a repeated delete with 409 and new content with 403 NamespaceTerminating", async () => {
      // Prepare
      await createNamespace(kube, "twice");
      await admin.core.createNamespacedPod({ namespace: "twice", body: runningPod("worker", "twice") });
      await podRunning("worker", "twice");
      await admin.core.deleteNamespace({ name: "twice" });
      // Act
      const again = await apiError(admin.core.deleteNamespace({ name: "twice" }));
      const create = await apiError(admin.objects.create(configMap("late", "twice")));
      // Assess
      expect(again.code).toBe(409);
      expect(again.body).toMatchObject({
        reason: "Conflict",
        message:
          'Operation cannot be fulfilled on namespaces "twice": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.',
        details: { name: "twice", kind: "namespaces" },
      });
      expect(create.code).toBe(403);
      expect(create.body).toMatchObject({
        reason: "Forbidden",
        message: 'configmaps "late" is forbidden: unable to create new content in namespace twice because it is being terminated',
        details: {
          name: "late",
          kind: "configmaps",
          causes: [{ reason: "NamespaceTerminating", message: "namespace twice is being terminated", field: "metadata.namespace" }],
        },
      });
    });

    it("names the finalizers that hold it: a claim a pod uses waits for the pod", async () => {
      // Prepare
      await createNamespace(kube, "held");
      await admin.core.createNamespacedPersistentVolumeClaim({ namespace: "held", body: claim("data", "held") });
      await admin.core.createNamespacedPod({ namespace: "held", body: runningPod("user", "held", { claim: "data" }) });
      await podRunning("user", "held");
      // Act
      await admin.core.deleteNamespace({ name: "held" });
      const finalizers = await until(
        "NamespaceFinalizersRemaining",
        async () =>
          (await admin.core.readNamespace({ name: "held" })).status?.conditions?.find(
            (c) => c.type === "NamespaceFinalizersRemaining" && c.status === "True",
          ),
        WAIT_MS,
      );
      await gone("namespace held to be gone", () => admin.core.readNamespace({ name: "held" }));
      // Assess
      expect(finalizers).toMatchObject({
        reason: "SomeFinalizersRemain",
        message: "Some content in the namespace has finalizers remaining: kubernetes.io/pvc-protection in 1 resource instances",
      });
    });
    it("stays Terminating, empty and finalized by the controller, while its own metadata.finalizers hold it; gone once they are removed", async () => {
      // Prepare: a namespace someone else's controller holds (as a backup or policy tool's finalizer would)
      await admin.core.createNamespace({ body: { metadata: { name: "kept", finalizers: ["example.com/hold"] } } });
      await admin.objects.create(configMap("settings", "kept"));
      // Act
      await admin.core.deleteNamespace({ name: "kept" });
      const finalized = await until(
        "the namespace controller's kubernetes finalizer removed",
        async () => {
          const ns = await admin.core.readNamespace({ name: "kept" });
          return ns.spec?.finalizers?.length ? undefined : ns;
        },
        WAIT_MS,
      );
      await new Promise((resolve) => setTimeout(resolve, timing.of("namespaceResync") * 2));
      const stillThere = await admin.core.readNamespace({ name: "kept" });
      const content = await admin.core.listNamespacedConfigMap({ namespace: "kept" });
      await admin.core.replaceNamespace({ name: "kept", body: { ...stillThere, metadata: { ...stillThere.metadata, finalizers: [] } } });
      await gone("namespace kept to be gone", () => admin.core.readNamespace({ name: "kept" }));
      // Assess
      expect(finalized.status?.phase).toBe("Terminating");
      expect(finalized.metadata?.finalizers).toEqual(["example.com/hold"]);
      expect(stillThere.metadata?.deletionTimestamp).toBeInstanceOf(Date);
      expect(stillThere.spec?.finalizers ?? []).toEqual([]);
      expect(content.items).toEqual([]);
    });
  });

  describe("pods, claims and Jobs", () => {
    beforeAll(async () => {
      await createNamespace(kube, "work");
    });

    it("keeps a deleted running pod for its terminationGracePeriodSeconds; gracePeriodSeconds=0 removes it at once", async () => {
      // Prepare
      await admin.core.createNamespacedPod({ namespace: "work", body: runningPod("slow", "work", { grace: 20 }) });
      await admin.core.createNamespacedPod({ namespace: "work", body: runningPod("forced", "work", { grace: 20 }) });
      await podRunning("slow", "work");
      await podRunning("forced", "work");
      const started = Date.now();
      // Act
      const answer = await admin.core.deleteNamespacedPod({ name: "slow", namespace: "work" });
      const stillThere = await admin.core.readNamespacedPod({ name: "slow", namespace: "work" });
      await admin.core.deleteNamespacedPod({ name: "forced", namespace: "work", gracePeriodSeconds: 0 });
      const forced = await admin.core.readNamespacedPod({ name: "forced", namespace: "work" }).then(
        () => "there",
        (e: { code?: number }) => e.code,
      );
      await gone("pod slow to be gone", () => admin.core.readNamespacedPod({ name: "slow", namespace: "work" }));
      // Assess
      expect(answer.metadata?.deletionGracePeriodSeconds).toBe(20);
      expect(stillThere.status?.phase).toBe("Running");
      expect(forced).toBe(404);
      expect(Date.now() - started).toBeGreaterThanOrEqual(timing.ms(20));
    });

    it("keeps a deleted claim while a pod uses it (kubernetes.io/pvc-protection)", async () => {
      // Prepare
      const created = await admin.core.createNamespacedPersistentVolumeClaim({ namespace: "work", body: claim("scratch", "work") });
      await admin.core.createNamespacedPod({ namespace: "work", body: runningPod("reader", "work", { claim: "scratch", grace: 1 }) });
      await podRunning("reader", "work");
      // Act
      await admin.core.deleteNamespacedPersistentVolumeClaim({ name: "scratch", namespace: "work" });
      await new Promise((resolve) => setTimeout(resolve, timing.of("finalizerController") * 4));
      const held = await admin.core.readNamespacedPersistentVolumeClaim({ name: "scratch", namespace: "work" });
      await admin.core.deleteNamespacedPod({ name: "reader", namespace: "work" });
      await gone("claim scratch to be gone", () => admin.core.readNamespacedPersistentVolumeClaim({ name: "scratch", namespace: "work" }));
      // Assess
      expect(created.metadata?.finalizers).toEqual(["kubernetes.io/pvc-protection"]);
      expect(held.metadata?.deletionTimestamp).toBeInstanceOf(Date);
      expect(held.metadata?.finalizers).toEqual(["kubernetes.io/pvc-protection"]);
    });

    it("puts batch.kubernetes.io/job-tracking on a Job's pod and removes it once the pod's end is counted", async () => {
      // Prepare
      await admin.batch.createNamespacedJob({ namespace: "work", body: job("tracked", "work") });
      const podsOf = async () => (await admin.core.listNamespacedPod({ namespace: "work", labelSelector: "job-name=tracked" })).items;
      // Act
      const first = await until("the job's pod", async () => (await podsOf())[0], WAIT_MS);
      await until(
        "the job to complete",
        async () => (await admin.batch.readNamespacedJob({ name: "tracked", namespace: "work" })).status?.succeeded === 1,
        WAIT_MS,
      );
      const released = await until(
        "the finalizer released",
        async () => ((await podsOf())[0]?.metadata?.finalizers === undefined ? (await podsOf())[0] : undefined),
        WAIT_MS,
      );
      // Assess
      expect(first.metadata?.finalizers).toEqual(["batch.kubernetes.io/job-tracking"]);
      expect(released.status?.phase).toBe("Succeeded");
    });

    it("Background: the Job is gone at once, its pod is deleted by the garbage collector later (its latency after the Job's delete)", async () => {
      // Prepare
      await admin.batch.createNamespacedJob({ namespace: "work", body: job("bg", "work") });
      const podsOf = async () => (await admin.core.listNamespacedPod({ namespace: "work", labelSelector: "job-name=bg" })).items;
      const pod = (await until("the job's pod", async () => (await podsOf())[0], WAIT_MS)).metadata!.name!;
      // What the store holds when the Job's deletion is recorded (read there, not by a later request that would race the
      // collector's latency), and when the garbage collector first touches the pod.
      let atJobDeleted: { at: number; pod?: { deleting: boolean } } | undefined;
      let podDeletionAt: number | undefined;
      const unsubscribe = kube.store.subscribe((event) => {
        const { kind, metadata } = event.object;
        if (kind === "Job" && metadata.name === "bg" && event.type === "DELETED") {
          const current = kube.store.get(PODS, "work", pod);
          atJobDeleted = { at: performance.now(), ...(current ? { pod: { deleting: !!current.metadata.deletionTimestamp } } : {}) };
        }
        if (
          kind === "Pod" &&
          metadata.name === pod &&
          podDeletionAt === undefined &&
          (metadata.deletionTimestamp || event.type === "DELETED")
        )
          podDeletionAt = performance.now();
      });
      try {
        // Act
        await admin.batch.deleteNamespacedJob({ name: "bg", namespace: "work", propagationPolicy: "Background" });
        const jobAfter = await admin.batch.readNamespacedJob({ name: "bg", namespace: "work" }).then(
          () => "there",
          (e: { code?: number }) => e.code,
        );
        await until("the job's pod to be gone", async () => (await podsOf()).length === 0, WAIT_MS);
        // Assess
        expect(jobAfter).toBe(404);
        expect(atJobDeleted?.pod).toEqual({ deleting: false });
        expect(podDeletionAt).toBeDefined();
        // Timers never fire early; 1 ms for performance.now() against the timer's millisecond clock.
        expect(podDeletionAt! - atJobDeleted!.at).toBeGreaterThanOrEqual(timing.of("garbageCollection") - 1);
      } finally {
        unsubscribe();
      }
    });

    it("Foreground: the Job stays (foregroundDeletion) until its pod is gone; Orphan: the pod stays without its owner", async () => {
      // Prepare
      await admin.batch.createNamespacedJob({ namespace: "work", body: job("fg", "work") });
      await admin.batch.createNamespacedJob({ namespace: "work", body: job("orphaning", "work") });
      const podsOf = async (name: string) =>
        (await admin.core.listNamespacedPod({ namespace: "work", labelSelector: `job-name=${name}` })).items;
      await until("both jobs' pods", async () => (await podsOf("fg")).length === 1 && (await podsOf("orphaning")).length === 1, WAIT_MS);
      // The foreground Job's pod is held by a finalizer of someone else's (as a controller's would), so the Job visibly waits.
      const held = (await podsOf("fg"))[0]!.metadata!.name!;
      kube.store.mutate(PODS, "work", held, (p) => (p.metadata.finalizers = [...(p.metadata.finalizers ?? []), "example.com/hold"]));
      // Act
      await admin.batch.deleteNamespacedJob({ name: "fg", namespace: "work", propagationPolicy: "Foreground" });
      const fgJob = await admin.batch.readNamespacedJob({ name: "fg", namespace: "work" });
      await admin.batch.deleteNamespacedJob({ name: "orphaning", namespace: "work", propagationPolicy: "Orphan" });
      await until("the held pod to be deleted", () => kube.store.get(PODS, "work", held)?.metadata.deletionTimestamp, WAIT_MS);
      const fgWaiting = await admin.batch.readNamespacedJob({ name: "fg", namespace: "work" });
      kube.store.mutate(
        PODS,
        "work",
        held,
        (p) => (p.metadata.finalizers = (p.metadata.finalizers ?? []).filter((f: string) => f !== "example.com/hold")),
      );
      await gone("job fg to be gone", () => admin.batch.readNamespacedJob({ name: "fg", namespace: "work" }));
      const fgPods = await podsOf("fg");
      await gone("job orphaning to be gone", () => admin.batch.readNamespacedJob({ name: "orphaning", namespace: "work" }));
      const orphans = await podsOf("orphaning");
      // Assess
      expect(fgJob.metadata?.finalizers).toEqual(["foregroundDeletion"]);
      expect(fgJob.metadata?.deletionTimestamp).toBeInstanceOf(Date);
      expect(fgWaiting.metadata?.finalizers).toEqual(["foregroundDeletion"]);
      expect(fgPods).toEqual([]);
      expect(orphans).toHaveLength(1);
      expect(orphans[0]!.metadata?.ownerReferences).toBeUndefined();
    });
  });
});
