/**
 * What every unit of the IAM step works with: the validated request, the resolved cluster, the clients,
 * and what this run changed on objects it adopted (recorded before each write, so a failure half-way can
 * put them back).
 */
import type { EKSClient } from "@aws-sdk/client-eks";
import type { IAMClient } from "@aws-sdk/client-iam";
import { eksClient, iamClient } from "../../lib/aws/clients.js";
import { parseArn } from "../../lib/domain/arn.js";
import { type DeploymentConfig, loadDeploymentConfig } from "../../lib/domain/deploy-config.js";
import { type RunMark, runMark } from "../../lib/domain/naming.js";
import type { ProvisionRequest } from "../../lib/domain/request.js";
import { requireCluster } from "../../lib/workflow/require-cluster.js";
import type {
  CompensationResult,
  IamRoleChange,
  PodIdentityAssociationChange,
  ResolvedCluster,
  WorkflowState,
} from "../../lib/workflow/workflow-state.js";

/** What a caller (a test) may pass in; anything not given is resolved on each call. */
export interface IamDeps {
  iam?: IAMClient;
  eks?: EKSClient;
  config?: DeploymentConfig;
}

/** One CreateIamResources call: its inputs, clients, and the adopted objects it changed so far. */
export interface IamStepContext {
  request: ProvisionRequest;
  cluster: ResolvedCluster;
  config: DeploymentConfig;
  /** This run's mark (execution name and start time): on everything it creates */
  run: RunMark;
  iam: IAMClient;
  eks: EKSClient;
  partition: string;
  /** Adopted roles this run changed, recorded before each write (so a failure half-way can put them back) */
  changes: IamRoleChange[];
  changedAssociations: PodIdentityAssociationChange[];
}

export function iamStepContext(state: WorkflowState, deps: IamDeps): IamStepContext {
  const { request, cluster } = requireCluster(state);
  return {
    request,
    cluster,
    config: deps.config ?? loadDeploymentConfig(),
    run: runMark(state.execution),
    iam: deps.iam ?? iamClient(),
    eks: deps.eks ?? eksClient(cluster.region),
    partition: parseArn(cluster.arn)?.partition ?? "aws",
    changes: [],
    changedAssociations: [],
  };
}

/**
 * What putting back one adopted object reports: what it restored, why it left the object as it is, and what it
 * could not put back because it was changed since this run wrote it.
 */
export interface Restored {
  undone?: string;
  kept?: string;
  failed?: string;
}

/** Adds one restore's outcome to the compensation report. */
export function noteRestored(result: CompensationResult, { undone, kept, failed }: Restored): void {
  if (undone) result.undone.push(undone);
  if (kept) result.kept.push(kept);
  if (failed) result.failed = [...(result.failed ?? []), failed];
}
