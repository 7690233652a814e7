/**
 * The namespace controller's deletion half (kube-controller-manager, pkg/controller/namespace/deletion), over time:
 * a namespace marked Terminating by a DELETE (store.ts) is synced a moment later; each sync deletes whatever is in
 * it (every namespaced kind, Background), then writes the namespace's status conditions as upstream does
 * (NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure, NamespaceDeletionContentFailure,
 * NamespaceContentRemaining, NamespaceFinalizersRemaining: what remains and which finalizers hold it). While content
 * remains it syncs again: when the longest remaining pod grace period has run, else after the resync interval.
 * Empty, it removes the `kubernetes` finalizer and the namespace is gone.
 * Pods stop within their grace period (kubelet.ts), claims wait for kubernetes.io/pvc-protection, Job pods for
 * batch.kubernetes.io/job-tracking: all of it shows in the conditions and in how long the namespace lingers.
 */
import type { ClusterTiming } from "./cluster-timing.js";
import type { Later } from "./garbage-collector.js";
import { NAMESPACES, type ResourceType } from "./resources.js";
import { KubeStatusError } from "./kube-status.js";
import { timestamp, type KubeObject, type KubeStore, type StoreEvent } from "./store.js";

interface NamespaceCondition {
  type: string;
  status: "True" | "False";
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export class NamespaceLifecycle {
  /** namespaces with a sync already scheduled (one at a time per namespace, as the controller's work queue) */
  private readonly queued = new Set<string>();
  /** when the controller first saw each namespace Terminating (deletionTimestamp has only second precision) */
  private readonly since = new Map<string, number>();

  constructor(
    private readonly store: KubeStore,
    private readonly timing: ClusterTiming,
    private readonly later: Later,
    /** the least time a Terminating namespace lingers (tests that need it to stay a while) */
    private readonly minimumLingerMs = 0,
  ) {}

  onEvent(event: StoreEvent): void {
    if (event.resourceType !== NAMESPACES) return;
    const name = event.object.metadata.name!;
    if (event.type === "DELETED") this.since.delete(name);
    if (event.type !== "MODIFIED" || !event.object.metadata.deletionTimestamp) return;
    if (!this.since.has(name)) this.since.set(name, Date.now());
    this.enqueue(name, this.timing.of("namespaceFirstSync"));
  }

  private enqueue(name: string, ms: number): void {
    if (this.queued.has(name)) return;
    this.queued.add(name);
    this.later(ms, () => {
      this.queued.delete(name);
      this.sync(name);
    });
  }

  private sync(name: string): void {
    const namespace = this.store.get(NAMESPACES, undefined, name);
    if (!namespace?.metadata.deletionTimestamp) return;
    for (const { type, object } of this.store.inNamespace(name)) {
      if (object.metadata.deletionTimestamp) continue;
      try {
        this.store.delete(type, name, object.metadata.name!, {
          propagationPolicy: "Background",
          preconditions: { uid: object.metadata.uid },
        });
      } catch (error) {
        if (!(error instanceof KubeStatusError)) throw error;
      }
    }
    const remaining = this.store.inNamespace(name);
    this.writeConditions(name, remaining);
    const lingered = Date.now() - (this.since.get(name) ?? Date.parse(namespace.metadata.deletionTimestamp));
    if (remaining.length === 0 && lingered >= this.minimumLingerMs) {
      this.store.finalizeNamespace(name);
      return;
    }
    this.enqueue(name, remaining.length === 0 ? this.minimumLingerMs - lingered : this.estimateMs(remaining));
  }

  /** Upstream requeues after its estimate: the longest grace period still running among the pods, else the resync interval. */
  private estimateMs(remaining: Array<{ type: ResourceType; object: KubeObject }>): number {
    let longest = 0;
    for (const { type, object } of remaining) {
      if (type.resource !== "pods" || !object.metadata.deletionTimestamp) continue;
      longest = Math.max(longest, this.timing.ms(object.metadata.deletionGracePeriodSeconds ?? 0));
    }
    // The estimate counts from the delete this sync made (or saw); a pod already stopping is done sooner, and the resync catches up.
    return longest > 0 ? longest + this.timing.of("finalizerController") : this.timing.of("namespaceResync");
  }

  private writeConditions(name: string, remaining: Array<{ type: ResourceType; object: KubeObject }>): void {
    const counts = new Map<string, number>();
    const finalizers = new Map<string, number>();
    for (const { type, object } of remaining) {
      // upstream writes `<resource>.<group>`, so core kinds read `pods.`
      const resource = `${type.resource}.${type.group}`;
      counts.set(resource, (counts.get(resource) ?? 0) + 1);
      for (const f of object.metadata.finalizers ?? []) finalizers.set(f, (finalizers.get(f) ?? 0) + 1);
    }
    const now = timestamp();
    const wanted: Array<Omit<NamespaceCondition, "lastTransitionTime">> = [
      {
        type: "NamespaceDeletionDiscoveryFailure",
        status: "False",
        reason: "ResourcesDiscovered",
        message: "All resources successfully discovered",
      },
      {
        type: "NamespaceDeletionGroupVersionParsingFailure",
        status: "False",
        reason: "ParsedGroupVersions",
        message: "All legacy kube types successfully parsed",
      },
      {
        type: "NamespaceDeletionContentFailure",
        status: "False",
        reason: "ContentDeleted",
        message: "All content successfully deleted, may be waiting on finalization",
      },
      counts.size > 0
        ? {
            type: "NamespaceContentRemaining",
            status: "True",
            reason: "SomeResourcesRemain",
            message: `Some resources are remaining: ${[...counts]
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([r, n]) => `${r} has ${n} resource instances`)
              .join(", ")}`,
          }
        : { type: "NamespaceContentRemaining", status: "False", reason: "ContentRemoved", message: "All content successfully removed" },
      finalizers.size > 0
        ? {
            type: "NamespaceFinalizersRemaining",
            status: "True",
            reason: "SomeFinalizersRemain",
            message: `Some content in the namespace has finalizers remaining: ${[...finalizers]
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([f, n]) => `${f} in ${n} resource instances`)
              .join(", ")}`,
          }
        : {
            type: "NamespaceFinalizersRemaining",
            status: "False",
            reason: "ContentHasNoFinalizers",
            message: "All content-preserving finalizers finished",
          },
    ];
    this.store.mutate(NAMESPACES, undefined, name, (ns) => {
      const previous: NamespaceCondition[] = ns.status?.conditions ?? [];
      ns.status = {
        ...(ns.status ?? {}),
        phase: "Terminating",
        conditions: wanted.map((c) => {
          const before = previous.find((p) => p.type === c.type);
          const unchanged = before && before.status === c.status && before.reason === c.reason && before.message === c.message;
          return {
            type: c.type,
            status: c.status,
            lastTransitionTime: unchanged ? before.lastTransitionTime : now,
            reason: c.reason,
            message: c.message,
          };
        }),
      };
    });
  }
}
