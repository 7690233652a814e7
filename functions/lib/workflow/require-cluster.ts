/**
 * What every step after ResolveCluster starts from: the validated request and the resolved cluster.
 * Kept apart from kube-step.ts so the AWS-only steps (IAM) do not bundle the Kubernetes client.
 */
import { InvalidRequest } from "../domain/errors.js";
import { parseRequest, type ProvisionRequest } from "../domain/request.js";
import type { ResolvedCluster, WorkflowState } from "./workflow-state.js";

/** The request must be valid and ResolveCluster must have run (builds no client). */
export function requireCluster(state: WorkflowState): { request: ProvisionRequest; cluster: ResolvedCluster } {
  const request = parseRequest(state.request);
  if (!state.cluster) throw new InvalidRequest("the resolved cluster ($.cluster) is missing; ResolveCluster must run first");
  return { request, cluster: state.cluster };
}
