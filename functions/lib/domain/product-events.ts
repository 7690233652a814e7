/**
 * The events the product puts on its own bus (source `nf-eks-provisioner`), in one list: each detail-type with
 * the JSON Schema (draft 2020-12, in events/) its detail keeps. Tests validate every emitted event against its
 * schema; the schemas forbid fields they do not name, so a new field means a schema change (and a note to the
 * platforms that consume them). The product's own source is never an onboarding source (deploy-config.ts refuses
 * it), so none of these can start a run.
 */
import { PRODUCT } from "./naming.js";

/** The `source` of every event the product emits. */
export const EVENT_SOURCE = PRODUCT;

export const READY_DETAIL_TYPE = "ComputeEnvironmentReady";
export const FAILED_DETAIL_TYPE = "ComputeEnvironmentFailed";
export const REMOVED_DETAIL_TYPE = "ComputeEnvironmentRemoved";
export const DRIFTED_DETAIL_TYPE = "EnvironmentDrifted";

export type ProductEventType =
  | typeof READY_DETAIL_TYPE
  | typeof FAILED_DETAIL_TYPE
  | typeof REMOVED_DETAIL_TYPE
  | typeof DRIFTED_DETAIL_TYPE;

export interface ProductEventEntry {
  detailType: ProductEventType;
  /** the detail's JSON Schema, relative to the repository root */
  schemaFile: string;
  /** when it is emitted */
  emittedWhen: string;
}

export const PRODUCT_EVENTS: readonly ProductEventEntry[] = [
  {
    detailType: READY_DETAIL_TYPE,
    schemaFile: "events/compute-environment-ready.schema.json",
    emittedWhen: "a run succeeded (the Report state)",
  },
  {
    detailType: FAILED_DETAIL_TYPE,
    schemaFile: "events/compute-environment-failed.schema.json",
    emittedWhen:
      "a run failed and was compensated (ReportFailure), by its Catch or, for a run that timed out or was stopped, by the stopped-run rule",
  },
  {
    detailType: REMOVED_DETAIL_TYPE,
    schemaFile: "events/compute-environment-removed.schema.json",
    emittedWhen: "a teardown removed the environment",
  },
  {
    detailType: DRIFTED_DETAIL_TYPE,
    schemaFile: "events/environment-drifted.schema.json",
    emittedWhen: "the scheduled drift check found a ready environment that differs from its spec (functions/events/drift-check.ts)",
  },
];

/** ComputeEnvironmentRemoved's detail (events/compute-environment-removed.schema.json). */
export interface RemovedDetail {
  tenant: string;
  cluster: { name: string; region: string; arn?: string };
  namespace?: string;
  /** what the teardown deleted or put back, one line each */
  removed: string[];
  /** what it left in place, with the reason */
  kept: string[];
  execution: { name: string; id: string; startTime: string };
}
