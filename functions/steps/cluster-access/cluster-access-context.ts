/**
 * What both mechanisms of GrantClusterAccess work with (access-entry.ts, aws-auth-mapping.ts): the launcher's
 * identity, the cluster, and the clients of one call. Its own file so that the mechanisms need not import the
 * step's index.ts, which imports them.
 */
import type { EKSClient } from "@aws-sdk/client-eks";
import type { RunMark } from "../../lib/domain/naming.js";
import type { KubeApi } from "../../lib/kube/kube-client.js";
import type { ResolvedCluster } from "../../lib/workflow/workflow-state.js";

/** The clients of one call, made when first needed (an API cluster never needs Kubernetes), and its time budget. */
export interface ClusterClients {
  eks(): EKSClient;
  kube(): Promise<KubeApi>;
  /** Epoch milliseconds by which the call must be done (the Lambda's end less a margin): bounds the aws-auth loop. */
  deadline?: number;
}

/** The Kubernetes identity a tenant's launcher is mapped to. */
export interface LauncherIdentity {
  username: string;
  groups: string[];
}

/** One tenant's launcher principal and the cluster it is let into. */
export interface LauncherAccess {
  tenant: string;
  identity: LauncherIdentity;
  /** This run's mark (execution name and start time) */
  run: RunMark;
  cluster: ResolvedCluster;
  principalArn: string;
  /** The launcher role's IAM CreateDate (`$.iam.launcherCreateDate`), when IAM showed it */
  principalCreateDate?: string;
  clients: ClusterClients;
}
