/**
 * What every step after ResolveCluster starts from: the validated request and the resolved cluster.
 * Kept apart from kube-step.ts so the AWS-only steps (IAM) do not bundle the Kubernetes client.
 */
import { InvalidRequest } from "./errors.js";
import { parseRequest, type ProvisionRequest } from "./request.js";
import type { ResolvedCluster, WorkflowState } from "./state.js";

/** The request must be valid and ResolveCluster must have run (builds no client). */
export function requireCluster(state: WorkflowState): { request: ProvisionRequest; cluster: ResolvedCluster } {
  const request = parseRequest(state.request);
  if (!state.cluster) throw new InvalidRequest("the resolved cluster ($.cluster) is missing; ResolveCluster must run first");
  return { request, cluster: state.cluster };
}
