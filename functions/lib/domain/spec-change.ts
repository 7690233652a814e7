/**
 * What an update (PUT /environments/...) may change in a spec, checked before anything starts. A claim the new spec
 * keeps (same namespace, same claim name) can only grow: Kubernetes refuses to shrink a PersistentVolumeClaim, and its
 * StorageClass is fixed once it is created. Whether the class allows the growth at all (`allowVolumeExpansion`) needs a
 * cluster read, which the API does not make: ConfigureStorage checks it before it touches the claim
 * (VolumeExpansionNotAllowed, a permanent error that compensates the update).
 */
import type { Problem } from "./errors.js";
import { quantityValue } from "./quantity.js";
import { safeParseRequest, type ProvisionRequest } from "./request.js";

/** The problems of going from the recorded spec to `next`; none when the previous spec no longer parses (nothing to compare). */
export function claimChangeProblems(previousSpec: Record<string, unknown>, next: ProvisionRequest): Problem[] {
  const parsed = safeParseRequest(previousSpec);
  if (!parsed.ok) return [];
  const previous = parsed.request;
  if (previous.storage.type !== "pvc" || next.storage.type !== "pvc") return [];
  if (previous.namespace !== next.namespace || previous.storage.claimName !== next.storage.claimName) return [];
  const claim = `PersistentVolumeClaim ${next.namespace}/${next.storage.claimName}`;
  const problems: Problem[] = [];
  if (quantityValue(next.storage.size) < quantityValue(previous.storage.size)) {
    problems.push({
      path: "storage.size",
      message: `${claim} holds ${previous.storage.size}: a claim can only grow, not shrink to ${next.storage.size} (to start over smaller, give the claim another claimName: the old claim is removed once the update has succeeded)`,
    });
  }
  if ((previous.storage.storageClass ?? "") !== (next.storage.storageClass ?? "")) {
    problems.push({
      path: "storage.storageClass",
      message: `${claim} was created with StorageClass ${previous.storage.storageClass ?? "(the cluster's default)"}, which cannot change (to use another class, give the claim another claimName)`,
    });
  }
  return problems;
}
