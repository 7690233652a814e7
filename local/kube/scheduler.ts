/**
 * The scheduler's decision for one pod on the sandbox's node(s), with the messages kube-scheduler 1.31 writes
 * (PodScheduled False, reason Unschedulable, and the FailedScheduling event):
 *  - a claim the pod mounts does not exist, or is being deleted: `persistentvolumeclaim "x" not found`;
 *  - a claim of an Immediate class not bound yet: `pod has unbound immediate PersistentVolumeClaims`;
 *  - a claim of a WaitForFirstConsumer class: provisioned now (the pod waits for it), unless the class cannot serve it;
 *  - requests no node can fit: `0/1 nodes are available: 1 Insufficient cpu.`
 */
import { quantityValue } from "../../functions/lib/domain/quantity.js";
import type { KubeObject } from "./store.js";
import { classNameOf, provisioningProblem } from "./volumes.js";

export const NODE_NAME = "ip-10-0-1-23.eu-west-1.compute.internal";
export const NODE_IP = "10.0.1.23";

/** The sandbox's one node: an m5.xlarge of a managed node group, as `kubectl get node -o yaml` shows it (abridged). */
export function sandboxNode(): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: NODE_NAME,
      labels: {
        "kubernetes.io/hostname": NODE_NAME,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "m5.xlarge",
        "topology.kubernetes.io/region": "eu-west-1",
        "topology.kubernetes.io/zone": "eu-west-1a",
        "eks.amazonaws.com/nodegroup": "research-default",
        "eks.amazonaws.com/capacityType": "ON_DEMAND",
      },
    },
    spec: { providerID: "aws:///eu-west-1a/i-0123456789abcdef0" },
    status: {
      capacity: { cpu: "4", memory: "15896064Ki", pods: "58", "ephemeral-storage": "20959212Ki" },
      allocatable: { cpu: "3920m", memory: "14879232Ki", pods: "58", "ephemeral-storage": "18242267924" },
      conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status" }],
      addresses: [
        { type: "InternalIP", address: NODE_IP },
        { type: "Hostname", address: NODE_NAME },
      ],
      nodeInfo: {
        kubeletVersion: "v1.31.2-eks-94953ac",
        containerRuntimeVersion: "containerd://1.7.22",
        operatingSystem: "linux",
        architecture: "amd64",
      },
    },
  };
}

export type SchedulingDecision =
  | { kind: "schedule" }
  /** claims of WaitForFirstConsumer classes to provision before the pod is bound */
  | { kind: "provision"; claims: string[] }
  | { kind: "unschedulable"; message: string };

const NOT_HELPFUL = "Preemption is not helpful for scheduling";
const NO_VICTIMS = "No preemption victims found for incoming pod";

function unschedulable(nodes: number, reasons: string, preemption: string): SchedulingDecision {
  return {
    kind: "unschedulable",
    message: `0/${nodes} nodes are available: ${reasons}. preemption: 0/${nodes} nodes are available: ${nodes} ${preemption}.`,
  };
}

/** What the pod asks for, as the scheduler sums it: its containers, or its largest init container if more. */
function requestsOf(pod: KubeObject): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const c of pod.spec?.containers ?? []) {
    for (const [k, v] of Object.entries(c?.resources?.requests ?? {})) sum[k] = (sum[k] ?? 0) + quantityValue(String(v));
  }
  for (const c of pod.spec?.initContainers ?? []) {
    for (const [k, v] of Object.entries(c?.resources?.requests ?? {})) sum[k] = Math.max(sum[k] ?? 0, quantityValue(String(v)));
  }
  return sum;
}

export function schedulingDecision(pod: KubeObject, claims: KubeObject[], classes: KubeObject[], nodes: KubeObject[]): SchedulingDecision {
  const n = nodes.length;
  const toProvision: string[] = [];
  for (const volume of pod.spec?.volumes ?? []) {
    const claimName = volume?.persistentVolumeClaim?.claimName;
    if (!claimName) continue;
    const claim = claims.find((c) => c.metadata.name === claimName);
    if (!claim) return unschedulable(n, `persistentvolumeclaim "${claimName}" not found`, NOT_HELPFUL);
    if (claim.metadata.deletionTimestamp) return unschedulable(n, `persistentvolumeclaim "${claimName}" is being deleted`, NOT_HELPFUL);
    if (claim.status?.phase === "Bound") continue;
    const className = classNameOf(claim, classes);
    const storageClass = classes.find((c) => c.metadata.name === className);
    if (storageClass?.volumeBindingMode !== "WaitForFirstConsumer")
      return unschedulable(n, "pod has unbound immediate PersistentVolumeClaims", NOT_HELPFUL);
    const problem = provisioningProblem(claim, className, storageClass);
    if (problem)
      return {
        kind: "unschedulable",
        message: `running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC "${claimName}"`,
      };
    toProvision.push(claimName);
  }
  const wants = requestsOf(pod);
  const fits = nodes.filter((node) =>
    Object.entries(wants).every(([k, v]) => !(v > quantityValue(String(node.status?.allocatable?.[k] ?? "0")))),
  );
  if (fits.length === 0) {
    const short = Object.keys(wants)
      .filter((k) => nodes.some((node) => wants[k]! > quantityValue(String(node.status?.allocatable?.[k] ?? "0"))))
      .sort()
      .map(
        (k) =>
          `${nodes.filter((node) => wants[k]! > quantityValue(String(node.status?.allocatable?.[k] ?? "0"))).length} Insufficient ${k}`,
      );
    return unschedulable(n, short.join(", ") || `${n} node(s) didn't match Pod's node affinity/selector`, NO_VICTIMS);
  }
  return toProvision.length ? { kind: "provision", claims: toProvision } : { kind: "schedule" };
}
