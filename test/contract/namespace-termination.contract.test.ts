/**
 * Contract: a namespace's deletion takes time (#13 points 2 and 7), against the sandbox (default) or a real cluster
 * (TARGET=aws). A namespace holding a running pod (and a claim) is Terminating after the delete; a second delete
 * answers 409 with kube-apiserver's "The system is ensuring all content is removed…"; creating in it is refused (403,
 * "because it is being terminated", cause NamespaceTerminating); and it is gone once its pod has ended (the pod's
 * grace period, on the target's clock). Creates the namespace `<prefix>-terminating` with a pod and a claim in it
 * and removes them (the namespace's deletion is the test; afterAll deletes it again if the test stopped before).
 */
import { describe, expect, it } from "vitest";
import type { CoreV1Api, V1Pod } from "@kubernetes/client-node";
import { clusterMs, type ContractTarget, eventually, isStatus, refusal, testTimeout, useTargetNamespace } from "./target.js";

/** The pod's grace period: the namespace stays Terminating at least this long (real seconds). */
const GRACE_SECONDS = 60;

let target: ContractTarget;
let namespace: string;
let core: CoreV1Api;

useTargetNamespace("terminating", (ready) => ({ target, namespace, core } = ready));

/** A pod that keeps running (busybox as PID 1 ignores SIGTERM, so it is killed only at the end of its grace period). */
function sleeper(name: string): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: {
      terminationGracePeriodSeconds: GRACE_SECONDS,
      containers: [
        {
          name: "sleep",
          image: "public.ecr.aws/docker/library/busybox:1.36",
          command: ["sleep", "3600"],
          resources: { requests: { cpu: "10m", memory: "16Mi" } },
        },
      ],
    },
  };
}

describe("deleting a namespace that holds a running pod", () => {
  it(
    "makes it Terminating: a second delete answers 409, a create 403, and it is gone after the pod's grace period",
    async () => {
      // Prepare
      const pod = `${target.prefix}-sleeper`;
      await core.createNamespacedPod({ namespace, body: sleeper(pod) });
      await core.createNamespacedPersistentVolumeClaim({
        namespace,
        body: {
          metadata: { name: `${target.prefix}-claim`, namespace },
          // A class no cluster has: the claim stays Pending, and goes with its namespace.
          spec: { accessModes: ["ReadWriteOnce"], storageClassName: `${target.prefix}-none`, resources: { requests: { storage: "1Gi" } } },
        },
      });
      await eventually(
        `pod ${pod} Running`,
        async () => (await core.readNamespacedPod({ name: pod, namespace })).status?.phase === "Running",
        clusterMs(180),
      );

      // Act
      await core.deleteNamespace({ name: namespace });
      const terminating = await core.readNamespace({ name: namespace });
      const again = await refusal(core.deleteNamespace({ name: namespace }));
      const create = await refusal(
        core.createNamespacedConfigMap({ namespace, body: { metadata: { name: `${target.prefix}-late` }, data: { a: "b" } } }),
      );

      // Assess
      expect(terminating.status?.phase).toBe("Terminating");
      expect(terminating.metadata?.deletionTimestamp).toBeTruthy();
      expect(again.code).toBe(409);
      expect(again.body).toMatchObject({
        kind: "Status",
        reason: "Conflict",
        message: `Operation cannot be fulfilled on namespaces "${namespace}": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.`,
        details: { name: namespace, kind: "namespaces" },
      });
      expect(create.code).toBe(403);
      expect(create.body).toMatchObject({
        kind: "Status",
        reason: "Forbidden",
        message: `configmaps "${target.prefix}-late" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
        details: {
          causes: [{ reason: "NamespaceTerminating", message: `namespace ${namespace} is being terminated`, field: "metadata.namespace" }],
        },
      });
      await eventually(
        `namespace ${namespace} gone`,
        async () => {
          try {
            await core.readNamespace({ name: namespace });
            return false;
          } catch (error) {
            return isStatus(error, 404);
          }
        },
        clusterMs(GRACE_SECONDS + 300),
      );
    },
    testTimeout(GRACE_SECONDS + 480),
  );
});
