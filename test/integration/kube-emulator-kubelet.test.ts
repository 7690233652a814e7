/**
 * A kubelet (and scheduler, and provisioners) that can say no, seen through @kubernetes/client-node: pods stay Pending
 * with the real waiting reasons, conditions and Events for a ConfigMap or key that is missing (FailedMount), a claim
 * that is missing or cannot be provisioned (FailedScheduling), an image the sandbox's registry does not have
 * (ErrImagePull, then ImagePullBackOff) and requests no node can fit (Unschedulable); the StorageClasses serve the
 * access modes their provisioners really serve, and bind Immediate or WaitForFirstConsumer.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StorageV1Api, type CoreV1Event, type V1PersistentVolumeClaim, type V1Pod } from "@kubernetes/client-node";
import { startKubeApi, type KubeApiServer } from "../../local/kube/kube-apiserver.js";
import { TEST_TIME_SCALE } from "../../local/kube/cluster-timing.js";
import { until } from "../support/sandbox-runs.js";
import {
  ADMIN_TOKEN,
  clientsFor,
  configMap,
  createNamespace,
  staticAuthenticate,
  WAIT_MS,
  type Clients,
} from "../support/kube-emulator-clients.js";

const NS = "lab";

function pod(name: string, opts: { image?: string; configMap?: { name: string; key?: string }; claim?: string; cpu?: string } = {}): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS },
    spec: {
      restartPolicy: "Always",
      containers: [
        {
          name: "main",
          image: opts.image ?? "busybox:1.36",
          command: ["sleep", "infinity"],
          ...(opts.cpu ? { resources: { requests: { cpu: opts.cpu } } } : {}),
        },
      ],
      volumes: [
        ...(opts.configMap
          ? [
              {
                name: "config",
                configMap: {
                  name: opts.configMap.name,
                  ...(opts.configMap.key ? { items: [{ key: opts.configMap.key, path: opts.configMap.key }] } : {}),
                },
              },
            ]
          : []),
        ...(opts.claim ? [{ name: "data", persistentVolumeClaim: { claimName: opts.claim } }] : []),
      ],
    },
  };
}

function claim(name: string, storageClassName: string, accessModes: string[]): V1PersistentVolumeClaim {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, namespace: NS },
    spec: { accessModes, storageClassName, resources: { requests: { storage: "10Gi" } } },
  };
}

describe("a kubelet that can say no", () => {
  let kube: KubeApiServer;
  let admin: Clients;
  beforeAll(async () => {
    kube = await startKubeApi({ authenticate: staticAuthenticate, kubelet: { timeScale: TEST_TIME_SCALE } });
    admin = clientsFor(kube, ADMIN_TOKEN);
    await createNamespace(kube, NS);
  });
  afterAll(async () => {
    await kube.close();
  });

  const eventsOf = async (name: string): Promise<CoreV1Event[]> =>
    (await admin.core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items;
  const eventWith = (name: string, reason: string) =>
    until(`a ${reason} event for ${name}`, async () => (await eventsOf(name)).find((e) => e.reason === reason), WAIT_MS);
  const readPod = (name: string) => admin.core.readNamespacedPod({ name, namespace: NS });
  const running = (name: string) => until(`${name} to run`, async () => (await readPod(name)).status?.phase === "Running", WAIT_MS);

  it("keeps a pod ContainerCreating with FailedMount while its ConfigMap is missing, and starts it once it exists", async () => {
    // Prepare
    await admin.core.createNamespacedPod({ namespace: NS, body: pod("needs-config", { configMap: { name: "settings" } }) });
    // Act
    const event = await eventWith("needs-config", "FailedMount");
    const waiting = await readPod("needs-config");
    await admin.objects.create(configMap("settings", NS));
    await running("needs-config");
    // Assess
    expect(event).toMatchObject({
      type: "Warning",
      message: 'MountVolume.SetUp failed for volume "config" : configmap "settings" not found',
      source: { component: "kubelet" },
    });
    expect(waiting.status?.phase).toBe("Pending");
    expect(waiting.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe("ContainerCreating");
  });

  it("names a missing key of the ConfigMap", async () => {
    // Prepare
    await admin.objects.create(configMap("partial", NS, undefined, { present: "yes" }));
    // Act
    await admin.core.createNamespacedPod({ namespace: NS, body: pod("needs-key", { configMap: { name: "partial", key: "absent.json" } }) });
    const event = await eventWith("needs-key", "FailedMount");
    // Assess
    expect(event.message).toBe('MountVolume.SetUp failed for volume "config" : configmap references non-existent config key: absent.json');
  });

  it("does not schedule a pod whose claim does not exist: PodScheduled False, Unschedulable, FailedScheduling", async () => {
    // Act
    await admin.core.createNamespacedPod({ namespace: NS, body: pod("no-claim", { claim: "nowhere" }) });
    const event = await eventWith("no-claim", "FailedScheduling");
    const unscheduled = await readPod("no-claim");
    // Assess
    const message =
      '0/1 nodes are available: persistentvolumeclaim "nowhere" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.';
    expect(unscheduled.status?.phase).toBe("Pending");
    expect(unscheduled.spec?.nodeName).toBeUndefined();
    expect(unscheduled.status?.conditions).toEqual([
      expect.objectContaining({ type: "PodScheduled", status: "False", reason: "Unschedulable", message }),
    ]);
    expect(event).toMatchObject({ type: "Warning", message, source: { component: "default-scheduler" } });
  });

  it("does not schedule requests no node can fit: Insufficient cpu", async () => {
    // Act
    await admin.core.createNamespacedPod({ namespace: NS, body: pod("too-big", { cpu: "64" }) });
    const event = await eventWith("too-big", "FailedScheduling");
    // Assess
    expect(event.message).toBe(
      "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
    );
    expect((await readPod("too-big")).status?.conditions?.[0]).toMatchObject({
      type: "PodScheduled",
      status: "False",
      reason: "Unschedulable",
    });
  });

  it("pulls only images the sandbox's registry has: ErrImagePull, then ImagePullBackOff; runs once the image is added", async () => {
    // Prepare
    const image = "ghcr.io/acme/pipeline:1.0";
    // Act
    await admin.core.createNamespacedPod({ namespace: NS, body: pod("private-image", { image }) });
    const pulled = await until(
      "ErrImagePull",
      async () =>
        (await readPod("private-image")).status?.containerStatuses?.[0]?.state?.waiting?.reason === "ErrImagePull" &&
        (await readPod("private-image")),
      WAIT_MS,
    );
    const backOff = await until(
      "ImagePullBackOff",
      async () => {
        const w = (await readPod("private-image")).status?.containerStatuses?.[0]?.state?.waiting;
        return w?.reason === "ImagePullBackOff" ? w : undefined;
      },
      WAIT_MS,
    );
    const events = await eventsOf("private-image");
    kube.images.add(image);
    await running("private-image");
    // Assess
    expect(pulled.status?.containerStatuses?.[0]?.state?.waiting?.message).toBe(
      'rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/acme/pipeline:1.0": failed to resolve reference "ghcr.io/acme/pipeline:1.0": ghcr.io/acme/pipeline:1.0: not found',
    );
    expect(backOff.message).toBe(`Back-off pulling image "${image}"`);
    expect(events.map((e) => `${e.type} ${e.reason}: ${e.message}`)).toEqual(
      expect.arrayContaining([
        `Normal Pulling: Pulling image "${image}"`,
        "Warning Failed: Error: ErrImagePull",
        `Normal BackOff: Back-off pulling image "${image}"`,
        "Warning Failed: Error: ImagePullBackOff",
      ]),
    );
  });

  it("knows the product's default Nextflow image and common ones, and a test can take one away", async () => {
    // Act
    const known = [
      "nextflow/nextflow:24.10.4",
      "busybox",
      "docker.io/library/ubuntu:24.04",
      "public.ecr.aws/amazonlinux/amazonlinux:2023",
    ].map((i) => kube.images.has(i));
    kube.images.remove("nextflow/nextflow:24.10.4");
    const removed = kube.images.has("docker.io/nextflow/nextflow:24.10.4");
    const sibling = kube.images.has("nextflow/nextflow:24.10.0");
    kube.images.add("nextflow/nextflow:24.10.4");
    // Assess
    expect(known).toEqual([true, true, true, true]);
    expect(removed).toBe(false);
    expect(sibling).toBe(true);
    expect(kube.images.has("ghcr.io/nobody/nothing:1")).toBe(false);
  });

  describe("StorageClasses and claims", () => {
    it("serves EKS's classes: gp2 the default (EBS, WaitForFirstConsumer), gp3, efs-sc (Immediate), fsx-sc", async () => {
      // Act
      const classes = (await admin.config.makeApiClient(StorageV1Api).listStorageClass()).items;
      // Assess
      const summary = Object.fromEntries(
        classes.map((c) => [
          c.metadata?.name,
          [
            c.provisioner,
            c.volumeBindingMode,
            c.allowVolumeExpansion ?? false,
            c.metadata?.annotations?.["storageclass.kubernetes.io/is-default-class"] ?? "",
          ],
        ]),
      );
      expect(summary).toEqual({
        gp2: ["kubernetes.io/aws-ebs", "WaitForFirstConsumer", false, "true"],
        gp3: ["ebs.csi.aws.com", "WaitForFirstConsumer", true, ""],
        "efs-sc": ["efs.csi.aws.com", "Immediate", false, ""],
        "fsx-sc": ["fsx.csi.aws.com", "Immediate", true, ""],
      });
    });

    it("binds an EFS claim at once, an EBS one only for its first consumer, and never ReadWriteMany on EBS", async () => {
      // Prepare
      await admin.core.createNamespacedPersistentVolumeClaim({ namespace: NS, body: claim("shared", "efs-sc", ["ReadWriteMany"]) });
      await admin.core.createNamespacedPersistentVolumeClaim({ namespace: NS, body: claim("disk", "gp3", ["ReadWriteOnce"]) });
      await admin.core.createNamespacedPersistentVolumeClaim({ namespace: NS, body: claim("wrong", "gp3", ["ReadWriteMany"]) });
      const phase = async (name: string) => (await admin.core.readNamespacedPersistentVolumeClaim({ name, namespace: NS })).status?.phase;
      // Act
      await until("the EFS claim bound", async () => (await phase("shared")) === "Bound", WAIT_MS);
      const waiting = await eventWith("disk", "WaitForFirstConsumer");
      const diskBefore = await phase("disk");
      const refused = await eventWith("wrong", "ProvisioningFailed");
      await admin.core.createNamespacedPod({ namespace: NS, body: pod("disk-user", { claim: "disk" }) });
      await running("disk-user");
      await admin.core.createNamespacedPod({ namespace: NS, body: pod("wrong-user", { claim: "wrong" }) });
      const stuck = await eventWith("wrong-user", "FailedScheduling");
      // Assess
      expect(waiting.message).toBe("waiting for first consumer to be created before binding");
      expect(diskBefore).toBe("Pending");
      expect(await phase("disk")).toBe("Bound");
      expect(refused).toMatchObject({
        type: "Warning",
        message:
          'failed to provision volume with StorageClass "gp3": rpc error: code = InvalidArgument desc = Volume capabilities not supported',
      });
      expect(await phase("wrong")).toBe("Pending");
      expect(stuck.message).toBe('running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC "wrong"');
    });

    it("binds ReadWriteMany on FSx for Lustre (shared by two pods), ReadWriteOnce and ReadWriteOncePod too, and ReadOnlyMany neither there nor on EFS", async () => {
      // Prepare: the Lustre and EFS drivers accept SINGLE_NODE_WRITER and MULTI_NODE_MULTI_WRITER, not MULTI_NODE_READER_ONLY.
      const claims: Array<[name: string, storageClass: string, mode: string]> = [
        ["lustre-shared", "fsx-sc", "ReadWriteMany"],
        ["lustre-once", "fsx-sc", "ReadWriteOnce"],
        ["lustre-once-pod", "fsx-sc", "ReadWriteOncePod"],
        ["lustre-read-only", "fsx-sc", "ReadOnlyMany"],
        ["efs-read-only", "efs-sc", "ReadOnlyMany"],
      ];
      for (const [name, storageClass, mode] of claims)
        await admin.core.createNamespacedPersistentVolumeClaim({ namespace: NS, body: claim(name, storageClass, [mode]) });
      const phase = async (name: string) => (await admin.core.readNamespacedPersistentVolumeClaim({ name, namespace: NS })).status?.phase;
      // Act
      for (const name of ["lustre-shared", "lustre-once", "lustre-once-pod"])
        await until(`the FSx claim ${name} bound`, async () => (await phase(name)) === "Bound", WAIT_MS);
      const lustreRefused = await eventWith("lustre-read-only", "ProvisioningFailed");
      const efsRefused = await eventWith("efs-read-only", "ProvisioningFailed");
      await admin.core.createNamespacedPod({ namespace: NS, body: pod("lustre-writer-1", { claim: "lustre-shared" }) });
      await admin.core.createNamespacedPod({ namespace: NS, body: pod("lustre-writer-2", { claim: "lustre-shared" }) });
      await running("lustre-writer-1");
      await running("lustre-writer-2");
      // Assess
      expect(await Promise.all(claims.map(([name]) => phase(name)))).toEqual(["Bound", "Bound", "Bound", "Pending", "Pending"]);
      expect(lustreRefused).toMatchObject({
        type: "Warning",
        message:
          'failed to provision volume with StorageClass "fsx-sc": rpc error: code = InvalidArgument desc = Volume capabilities not supported',
      });
      expect(efsRefused).toMatchObject({
        type: "Warning",
        message:
          'failed to provision volume with StorageClass "efs-sc": rpc error: code = InvalidArgument desc = Volume capabilities not supported: invalid access mode: MULTI_NODE_READER_ONLY',
      });
    });

    it("gives a claim that names no class the default one (gp2)", async () => {
      // Act
      const created = await admin.core.createNamespacedPersistentVolumeClaim({
        namespace: NS,
        body: {
          apiVersion: "v1",
          kind: "PersistentVolumeClaim",
          metadata: { name: "plain", namespace: NS },
          spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
        },
      });
      // Assess
      expect(created.spec?.storageClassName).toBe("gp2");
    });
  });
});
