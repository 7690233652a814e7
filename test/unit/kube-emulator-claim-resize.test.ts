/** The emulated API server judges a claim's resize as the real one does (validation and the PersistentVolumeClaimResize admission). */
import { describe, expect, it } from "vitest";
import { validateUpdate, type KubeObject } from "../../local/kube/admission.js";
import type { KubeStatusError } from "../../local/kube/kube-status.js";
import { PERSISTENT_VOLUME_CLAIMS } from "../../local/kube/resources.js";

const claim = (size: string, storageClassName = "efs-sc"): KubeObject =>
  ({
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: "tower-scratch", namespace: "tower-nf" },
    spec: { accessModes: ["ReadWriteMany"], storageClassName, resources: { requests: { storage: size } }, volumeMode: "Filesystem" },
  }) as KubeObject;
const classes: Record<string, KubeObject> = {
  "efs-sc": {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: "efs-sc" },
    allowVolumeExpansion: true,
  } as KubeObject,
  gp2: { apiVersion: "storage.k8s.io/v1", kind: "StorageClass", metadata: { name: "gp2" } } as KubeObject,
};
const lookups = { storageClass: (name: string) => classes[name] };

function statusOf(act: () => void): number | undefined {
  try {
    act();
    return undefined;
  } catch (error) {
    return (error as KubeStatusError).status?.code;
  }
}

describe("a claim's resize in the kube emulator", () => {
  it("allows growth where the StorageClass allows expansion", () => {
    // Act
    const code = statusOf(() => validateUpdate(PERSISTENT_VOLUME_CLAIMS, claim("100Gi"), claim("200Gi"), lookups));
    // Assess
    expect(code).toBeUndefined();
  });

  it("refuses a shrink (422 Invalid) and a growth on a class without allowVolumeExpansion (403 Forbidden)", () => {
    // Act
    const shrink = statusOf(() => validateUpdate(PERSISTENT_VOLUME_CLAIMS, claim("100Gi"), claim("50Gi"), lookups));
    const gp2 = statusOf(() => validateUpdate(PERSISTENT_VOLUME_CLAIMS, claim("10Gi", "gp2"), claim("20Gi", "gp2"), lookups));
    const noClass = statusOf(() => validateUpdate(PERSISTENT_VOLUME_CLAIMS, claim("10Gi", "missing"), claim("20Gi", "missing"), lookups));
    // Assess
    expect([shrink, gp2, noClass]).toEqual([422, 403, 403]);
  });
});
