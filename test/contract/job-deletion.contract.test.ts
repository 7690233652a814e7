/**
 * Contract: deleting a Job (#13 points 2 and 7), against the sandbox (default) or a real cluster (TARGET=aws).
 * With propagationPolicy Background the garbage collector deletes the Job's pods after it; with Orphan the pods stay,
 * and no longer name the Job among their owners. Creates the namespace `<prefix>-jobs` with two Jobs and their pods;
 * deletes the orphaned pods and the namespace afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatchV1Api, CoreV1Api, type V1Job, type V1Pod } from "@kubernetes/client-node";
import {
  cleanUp,
  clusterMs,
  createNamespace,
  deleteNamespace,
  eventually,
  isStatus,
  openTarget,
  TARGET,
  testTimeout,
  type ContractTarget,
} from "./target.js";

let target: ContractTarget;
let namespace: string;
let core: CoreV1Api;
let batch: BatchV1Api;

beforeAll(async () => {
  target = await openTarget();
  namespace = `${target.prefix}-jobs`;
  core = target.admin.makeApiClient(CoreV1Api);
  batch = target.admin.makeApiClient(BatchV1Api);
  await createNamespace(target, namespace);
});

afterAll(async () => {
  await cleanUp(
    // Orphans first (their Job is gone: nothing else would delete them), then the namespace with the rest.
    async () => {
      if (!namespace) return;
      for (const pod of (await core.listNamespacedPod({ namespace })).items) {
        await core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace, gracePeriodSeconds: 0 }).catch((error) => {
          if (!isStatus(error, 404)) throw error;
        });
      }
    },
    async () => namespace && (await deleteNamespace(target, namespace)),
    async () => target?.close(),
  );
});

function sleeperJob(name: string): V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace },
    spec: {
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: "Never",
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: "sleep",
              image: "public.ecr.aws/docker/library/busybox:1.36",
              command: ["sleep", "600"],
              resources: { requests: { cpu: "10m", memory: "16Mi" } },
            },
          ],
        },
      },
    },
  };
}

/** The Job's pods (by the label the Job controller gives them), once there is one. */
async function podsOf(name: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${name}` })).items;
}

async function gone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (error) {
    return isStatus(error, 404);
  }
}

describe("deleting a Job", () => {
  it(
    "with propagationPolicy Background, its pods are deleted after it",
    async () => {
      // Prepare
      const name = `${target.prefix}-background`;
      const job = await batch.createNamespacedJob({ namespace, body: sleeperJob(name) });
      const [pod] = await eventually(`a pod of Job ${name}`, async () => (await podsOf(name)).length > 0 && podsOf(name), clusterMs(120));
      expect(pod!.metadata?.ownerReferences).toContainEqual(expect.objectContaining({ kind: "Job", name, uid: job.metadata!.uid }));

      // Act
      await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: "Background" });

      // Assess
      await eventually(`Job ${name} gone`, () => gone(() => batch.readNamespacedJob({ name, namespace })), clusterMs(120));
      await eventually(`the pods of Job ${name} gone`, async () => (await podsOf(name)).length === 0, clusterMs(180));
      expect(await gone(() => core.readNamespacedPod({ name: pod!.metadata!.name!, namespace }))).toBe(true);
    },
    testTimeout(420),
  );

  it(
    "with propagationPolicy Orphan, its pods stay, without an owner reference to it",
    async () => {
      // Prepare
      const name = `${target.prefix}-orphan`;
      const job = await batch.createNamespacedJob({ namespace, body: sleeperJob(name) });
      const [pod] = await eventually(`a pod of Job ${name}`, async () => (await podsOf(name)).length > 0 && podsOf(name), clusterMs(120));
      const podName = pod!.metadata!.name!;

      // Act
      await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: "Orphan" });

      // Assess
      await eventually(`Job ${name} gone`, () => gone(() => batch.readNamespacedJob({ name, namespace })), clusterMs(120));
      const orphan = await eventually(
        `pod ${podName} without the Job among its owners`,
        async () => {
          const current = await core.readNamespacedPod({ name: podName, namespace });
          return !(current.metadata?.ownerReferences ?? []).some((o) => o.uid === job.metadata!.uid) && current;
        },
        clusterMs(120),
      );
      expect(orphan.metadata?.uid).toBe(pod!.metadata!.uid);
      expect(orphan.metadata?.deletionTimestamp).toBeUndefined();
      // still there a while later: nothing collects an orphan
      await new Promise((resolve) => setTimeout(resolve, TARGET === "aws" ? 10_000 : 300));
      expect((await core.readNamespacedPod({ name: podName, namespace })).metadata?.uid).toBe(pod!.metadata!.uid);
    },
    testTimeout(300),
  );
});
