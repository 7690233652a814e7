/**
 * Storage as an EKS cluster with the EBS, EFS and FSx for Lustre CSI drivers has it: the StorageClasses the sandbox
 * starts with, the access modes each provisioner really serves, and why a claim cannot be provisioned (the event
 * the external provisioner records, word for word where the driver's message is known).
 *  - gp2 (`kubernetes.io/aws-ebs`, migrated to the EBS CSI driver) is the default class, as EKS creates it;
 *  - gp3 (`ebs.csi.aws.com`); EBS volumes attach to one node: ReadWriteOnce / ReadWriteOncePod only;
 *  - efs-sc (`efs.csi.aws.com`, access points) and fsx-sc (`fsx.csi.aws.com`, Lustre): ReadWriteMany too, but not
 *    ReadOnlyMany.
 * What each serves is what its driver accepts (the drivers' volumeCaps), through the external-provisioner, which
 * asks CreateVolume for one CSI capability per access mode of the claim (csi-lib-utils accessmodes: ReadWriteOnce
 * and, for drivers without SINGLE_NODE_MULTI_WRITER, as none of these three has, ReadWriteOncePod → SINGLE_NODE_WRITER;
 * ReadWriteMany → MULTI_NODE_MULTI_WRITER; ReadOnlyMany → MULTI_NODE_READER_ONLY):
 *  - aws-ebs-csi-driver: SINGLE_NODE_WRITER, and MULTI_NODE_MULTI_WRITER for raw block volumes only (io2 Multi-Attach;
 *    the sandbox's claims are filesystems);
 *  - aws-efs-csi-driver: SINGLE_NODE_WRITER, MULTI_NODE_MULTI_WRITER;
 *  - aws-fsx-csi-driver (Lustre): SINGLE_NODE_WRITER, MULTI_NODE_MULTI_WRITER.
 * EBS classes bind WaitForFirstConsumer (the volume is made in the zone of the node the pod is scheduled to), EFS and
 * FSx Immediate.
 */
import type { KubeObject } from "./store.js";

export const DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class";

/** The StorageClasses the sandbox cluster starts with. */
export const EKS_STORAGE_CLASSES: KubeObject[] = [
  {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: "gp2", annotations: { [DEFAULT_CLASS_ANNOTATION]: "true" } },
    provisioner: "kubernetes.io/aws-ebs",
    parameters: { fsType: "ext4", type: "gp2" },
    reclaimPolicy: "Delete",
    volumeBindingMode: "WaitForFirstConsumer",
  },
  {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: "gp3" },
    provisioner: "ebs.csi.aws.com",
    parameters: { type: "gp3", encrypted: "true" },
    reclaimPolicy: "Delete",
    volumeBindingMode: "WaitForFirstConsumer",
    allowVolumeExpansion: true,
  },
  {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: "efs-sc" },
    provisioner: "efs.csi.aws.com",
    parameters: { provisioningMode: "efs-ap", fileSystemId: "fs-0123456789abcdef0", directoryPerms: "700" },
    reclaimPolicy: "Delete",
    volumeBindingMode: "Immediate",
  },
  {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: "fsx-sc" },
    provisioner: "fsx.csi.aws.com",
    parameters: { subnetId: "subnet-0123456789abcdef0", securityGroupIds: "sg-0123456789abcdef0", deploymentType: "SCRATCH_2" },
    reclaimPolicy: "Delete",
    volumeBindingMode: "Immediate",
    allowVolumeExpansion: true,
  },
];

const EBS_MODES = ["ReadWriteOnce", "ReadWriteOncePod"];
const FILE_SYSTEM_MODES = ["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"];
/** The access modes each provisioner serves (a mode outside these: ProvisioningFailed). */
export const PROVISIONER_ACCESS_MODES: Record<string, string[]> = {
  "kubernetes.io/aws-ebs": EBS_MODES,
  "ebs.csi.aws.com": EBS_MODES,
  "efs.csi.aws.com": FILE_SYSTEM_MODES,
  "fsx.csi.aws.com": FILE_SYSTEM_MODES,
};

/** The CSI access mode the external-provisioner asks for, per access mode of a claim (no SINGLE_NODE_MULTI_WRITER). */
const CSI_MODE: Record<string, string> = {
  ReadWriteOnce: "SINGLE_NODE_WRITER",
  ReadWriteOncePod: "SINGLE_NODE_WRITER",
  ReadOnlyMany: "MULTI_NODE_READER_ONLY",
  ReadWriteMany: "MULTI_NODE_MULTI_WRITER",
};

/**
 * The driver's CreateVolume refusal, as the external-provisioner prints it: the EBS and FSx drivers say only
 * "Volume capabilities not supported"; the EFS driver names the CSI modes it refused.
 */
function refusalOf(provisioner: string, refused: string[]): string {
  const desc =
    provisioner === "efs.csi.aws.com"
      ? `Volume capabilities not supported: invalid access mode: ${refused.map((m) => CSI_MODE[m] ?? m).join(",")}`
      : "Volume capabilities not supported";
  return `rpc error: code = InvalidArgument desc = ${desc}`;
}

/** The class a claim is provisioned from: its storageClassName, or (unset) the default class. */
export function classNameOf(claim: KubeObject, classes: KubeObject[]): string | undefined {
  const named = claim.spec?.storageClassName;
  if (named !== undefined && named !== null) return named === "" ? undefined : String(named);
  return classes.find((c) => c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === "true")?.metadata.name;
}

export interface ProvisioningProblem {
  /** the event's reason and type */
  reason: "ProvisioningFailed" | "FailedBinding";
  type: "Warning" | "Normal";
  message: string;
}

/** Why `claim` cannot be provisioned from `storageClass` (undefined: it can). */
export function provisioningProblem(
  claim: KubeObject,
  className: string | undefined,
  storageClass: KubeObject | undefined,
): ProvisioningProblem | undefined {
  if (!className)
    return {
      reason: "FailedBinding",
      type: "Normal",
      message: "no persistent volumes available for this claim and no storage class is set",
    };
  if (!storageClass)
    return { reason: "ProvisioningFailed", type: "Warning", message: `storageclass.storage.k8s.io "${className}" not found` };
  const served = PROVISIONER_ACCESS_MODES[storageClass.provisioner];
  if (!served) return undefined; // a provisioner the sandbox does not know: it serves what is asked
  const wanted: string[] = claim.spec?.accessModes ?? [];
  const refused = wanted.filter((m) => !served.includes(m));
  if (refused.length === 0) return undefined;
  // gp2's in-tree provisioner is migrated: the EBS CSI driver's external-provisioner provisions it, and says so.
  const message = `failed to provision volume with StorageClass "${className}": ${refusalOf(storageClass.provisioner, refused)}`;
  return { reason: "ProvisioningFailed", type: "Warning", message };
}
