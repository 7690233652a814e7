/**
 * Contract: pods that cannot start say why (#13 points 3 and 7), against the sandbox (default) or a real cluster
 * (TARGET=aws). A pod whose image does not exist waits ErrImagePull, then ImagePullBackOff; a pod mounting a missing
 * ConfigMap stays Pending in ContainerCreating with a FailedMount event naming the ConfigMap. The missing image is
 * under a registry path named with the run's prefix (no registry has it). Creates the namespace `<prefix>-pods` with
 * the two pods; deletes the namespace afterwards.
 */
import { describe, expect, it } from "vitest";
import type { CoreV1Api, V1Pod, V1Volume } from "@kubernetes/client-node";
import { clusterMs, type ContractTarget, eventually, testTimeout, useTargetNamespace } from "./target.js";

let target: ContractTarget;
let namespace: string;
let core: CoreV1Api;

useTargetNamespace("pods", (ready) => ({ target, namespace, core } = ready));

function pod(name: string, image: string, volumes: V1Volume[] = []): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 0,
      volumes,
      containers: [
        {
          name: "main",
          image,
          command: ["sleep", "600"],
          resources: { requests: { cpu: "10m", memory: "16Mi" } },
          volumeMounts: volumes.map((v) => ({ name: v.name, mountPath: `/mnt/${v.name}` })),
        },
      ],
    },
  };
}

/** The waiting reason of the pod's one container, if it waits. */
async function waitingReason(name: string): Promise<string | undefined> {
  const current = await core.readNamespacedPod({ name, namespace });
  return current.status?.containerStatuses?.[0]?.state?.waiting?.reason;
}

describe("a pod that cannot start", () => {
  it(
    "whose image does not exist waits ErrImagePull, then ImagePullBackOff, and stays Pending",
    async () => {
      // Prepare
      const name = `${target.prefix}-no-image`;
      const image = `public.ecr.aws/${target.prefix}/does-not-exist:0.0.0`;

      // Act
      await core.createNamespacedPod({ namespace, body: pod(name, image) });

      // Assess
      const first = await eventually(
        `pod ${name} waiting on its image`,
        async () => {
          const reason = await waitingReason(name);
          return (reason === "ErrImagePull" || reason === "ImagePullBackOff") && reason;
        },
        clusterMs(180),
      );
      expect(["ErrImagePull", "ImagePullBackOff"]).toContain(first);
      await eventually(`pod ${name} in ImagePullBackOff`, async () => (await waitingReason(name)) === "ImagePullBackOff", clusterMs(180));
      const current = await core.readNamespacedPod({ name, namespace });
      expect(current.status?.phase).toBe("Pending");
      expect(current.status?.containerStatuses?.[0]?.ready).toBe(false);
    },
    testTimeout(360),
  );

  it(
    "mounting a ConfigMap that does not exist stays ContainerCreating, with a FailedMount event naming it",
    async () => {
      // Prepare
      const name = `${target.prefix}-no-config`;
      const missing = `${target.prefix}-missing`;

      // Act
      await core.createNamespacedPod({
        namespace,
        body: pod(name, "public.ecr.aws/docker/library/busybox:1.36", [{ name: "config", configMap: { name: missing } }]),
      });

      // Assess
      const event = await eventually(
        `a FailedMount event for pod ${name}`,
        async () => {
          const events = (await core.listNamespacedEvent({ namespace })).items;
          // (a real kubelet later adds a FailedMount "Unable to attach or mount volumes: …timed out"; this is the first)
          return events.find(
            (e) => e.involvedObject.name === name && e.reason === "FailedMount" && e.message?.includes(`"${missing}" not found`),
          );
        },
        clusterMs(180),
      );
      expect(event.type).toBe("Warning");
      expect(event.message).toBe(`MountVolume.SetUp failed for volume "config" : configmap "${missing}" not found`);
      const current = await core.readNamespacedPod({ name, namespace });
      expect(current.status?.phase).toBe("Pending");
      expect(current.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe("ContainerCreating");
    },
    testTimeout(240),
  );
});
