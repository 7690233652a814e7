/**
 * What a create may do with the environment already recorded for its tenant, region and cluster: the one comparison
 * every create path makes (POST /environments, POST /provision and the onboarding event, through
 * entry/start-provisioning.ts). Only an update (PUT) changes a live environment's spec: a create that took another
 * spec would re-point the environment and orphan what the recorded spec built.
 */
import { isDeepStrictEqual } from "node:util";
import type { EnvironmentRecord } from "./environment-registry.js";

export type CreateVerdict =
  /** the recorded spec: a run may start (a re-run) */
  | "same-spec"
  /** another spec, but the environment owns nothing (removed, or a failed create that was compensated): start it anew */
  | "free"
  /** another spec on an environment that owns something: 409 EnvironmentExists, pointing at the update route */
  | "conflict";

/** Whether `spec` may be started on `record` (see CreateVerdict). */
export function createVerdict(record: EnvironmentRecord, spec: Record<string, unknown>): CreateVerdict {
  if (isDeepStrictEqual(record.spec, spec)) return "same-spec";
  if (record.status === "removed") return "free";
  // A failed create the platform engineer corrects: nothing of the old spec is left to cut off. One that left
  // something behind (what could not be undone), or any other status, keeps its spec until an update or a teardown.
  if (record.status === "failed" && ownsNothing(record.owned)) return "free";
  return "conflict";
}

/** An owned list with nothing in it: no key, or only empty lists (a failed create compensated: `{}`). */
export function ownsNothing(owned: Record<string, unknown>): boolean {
  return Object.values(owned).every((value) => value === undefined || value === null || (Array.isArray(value) && value.length === 0));
}
