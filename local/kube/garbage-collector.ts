/**
 * The garbage collector (kube-controller-manager's garbagecollector), reduced to what a provisioner observes:
 * it works from ownerReferences, asynchronously, a garbage-collection latency after the change that concerns it.
 *  - An owner gone (deleted with propagationPolicy Background, or its finalizers done): each dependent whose
 *    owners are all gone is deleted (Background); one that still has a live owner only loses the dangling reference.
 *  - An owner being deleted with `orphan` (propagationPolicy Orphan, the batch/v1 Job default): its dependents lose
 *    their reference to it, then the finalizer is removed (and the owner goes).
 *  - An owner being deleted with `foregroundDeletion` (propagationPolicy Foreground): its dependents are deleted
 *    (Foreground too), and the finalizer is removed once none with blockOwnerDeletion is left.
 */
import type { ClusterTiming } from "./cluster-timing.js";
import { FOREGROUND_FINALIZER, ORPHAN_FINALIZER, type KubeObject, type KubeStore, type StoreEvent } from "./store.js";
import { KubeStatusError } from "./kube-status.js";
import type { ResourceType } from "./resources.js";

/** Runs `work` after `ms`, on the controllers' tracked timers (cleared when the server closes). */
export type Later = (ms: number, work: () => void) => void;

export class GarbageCollector {
  constructor(
    private readonly store: KubeStore,
    private readonly timing: ClusterTiming,
    private readonly later: Later,
  ) {}

  onEvent(event: StoreEvent): void {
    const { type, object } = event;
    const uid = object.metadata.uid;
    if (!uid) return;
    if (type === "DELETED") {
      this.later(this.timing.of("garbageCollection"), () => this.ownerGone(uid));
      // A dependent gone may be what a foreground deletion waits for.
      for (const ref of object.metadata.ownerReferences ?? [])
        this.later(this.timing.of("garbageCollection"), () => this.finishForeground(ref.uid));
      return;
    }
    const finalizers = object.metadata.finalizers ?? [];
    if (!object.metadata.deletionTimestamp) return;
    if (finalizers.includes(ORPHAN_FINALIZER))
      this.later(this.timing.of("garbageCollection"), () => this.orphanDependents(event.resourceType, object));
    if (finalizers.includes(FOREGROUND_FINALIZER))
      this.later(this.timing.of("garbageCollection"), () => this.deleteInForeground(event.resourceType, object));
  }

  private ownerGone(ownerUid: string): void {
    if (this.store.hasUid(ownerUid)) return;
    for (const { type, object } of this.store.dependentsOf(ownerUid)) {
      const live = (object.metadata.ownerReferences ?? []).filter((r) => this.store.hasUid(r.uid));
      if (live.length > 0) {
        this.store.mutate(type, object.metadata.namespace, object.metadata.name!, (o) => {
          o.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => this.store.hasUid(r.uid));
        });
        continue;
      }
      this.quietly(() =>
        this.store.delete(type, object.metadata.namespace, object.metadata.name!, {
          propagationPolicy: "Background",
          preconditions: { uid: object.metadata.uid },
        }),
      );
    }
  }

  private orphanDependents(type: ResourceType, owner: KubeObject): void {
    const uid = owner.metadata.uid!;
    for (const dependent of this.store.dependentsOf(uid)) {
      this.store.mutate(dependent.type, dependent.object.metadata.namespace, dependent.object.metadata.name!, (o) => {
        const remaining = (o.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
        if (remaining.length > 0) o.metadata.ownerReferences = remaining;
        else delete o.metadata.ownerReferences;
      });
    }
    this.removeFinalizer(type, owner, ORPHAN_FINALIZER);
  }

  private deleteInForeground(type: ResourceType, owner: KubeObject): void {
    for (const dependent of this.store.dependentsOf(owner.metadata.uid!)) {
      if (dependent.object.metadata.deletionTimestamp) continue;
      this.quietly(() =>
        this.store.delete(dependent.type, dependent.object.metadata.namespace, dependent.object.metadata.name!, {
          propagationPolicy: "Foreground",
          preconditions: { uid: dependent.object.metadata.uid },
        }),
      );
    }
    this.finishForeground(owner.metadata.uid!, type, owner);
  }

  /** The foreground deletion of `ownerUid` ends when no dependent that blocks it is left. */
  private finishForeground(ownerUid: string, type?: ResourceType, owner?: KubeObject): void {
    const found = owner && type ? { type, object: owner } : this.find(ownerUid);
    if (!found || !(found.object.metadata.finalizers ?? []).includes(FOREGROUND_FINALIZER)) return;
    const blocking = this.store
      .dependentsOf(ownerUid)
      .filter(({ object }) => (object.metadata.ownerReferences ?? []).some((r) => r.uid === ownerUid && r.blockOwnerDeletion));
    if (blocking.length === 0) this.removeFinalizer(found.type, found.object, FOREGROUND_FINALIZER);
  }

  private find(uid: string): { type: ResourceType; object: KubeObject } | undefined {
    return this.store.all().find((e) => e.object.metadata.uid === uid);
  }

  private removeFinalizer(type: ResourceType, owner: KubeObject, finalizer: string): void {
    this.store.mutate(type, owner.metadata.namespace, owner.metadata.name!, (o) => {
      if (o.metadata.uid !== owner.metadata.uid) return;
      o.metadata.finalizers = (o.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    });
  }

  /** A dependent already gone, or replaced (uid precondition), is not an error for the collector. */
  private quietly(work: () => void): void {
    try {
      work();
    } catch (error) {
      if (!(error instanceof KubeStatusError)) throw error;
    }
  }
}
