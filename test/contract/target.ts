/**
 * Where the contract tests run (#13 point 7): the behaviours are written once and the target comes from the
 * environment. `TARGET=sandbox` (the default, part of `npm test`) starts the sandbox; `TARGET=aws` uses a real
 * account and cluster through the default credential chain (`CONTRACT_CLUSTER`, `CONTRACT_REGION`), only with
 * `npx vitest run --config test/contract/aws.vitest.config.ts`, never in CI.
 */
import { AuthenticationV1Api, type KubeConfig } from "@kubernetes/client-node";
import { DescribeClusterCommand } from "@aws-sdk/client-eks";
import { eksClient } from "../../functions/lib/aws/clients.js";
import { eksBearerToken, type EksTokenOptions } from "../../functions/lib/aws/eks-token.js";
import { kubeConfigFor } from "../../functions/lib/kube/kube-client.js";
import type { ResolvedCluster } from "../../functions/lib/workflow/workflow-state.js";

export type TargetName = "sandbox" | "aws";

export const TARGET: TargetName = process.env.TARGET === "aws" ? "aws" : "sandbox";

export interface ContractTarget {
  name: TargetName;
  /** the cluster under test, with its API endpoint and CA */
  cluster: Pick<ResolvedCluster, "name" | "region" | "endpoint" | "certificateAuthority">;
  close(): Promise<void>;
}

export async function openTarget(): Promise<ContractTarget> {
  if (TARGET === "aws") {
    const name = process.env.CONTRACT_CLUSTER;
    const region = process.env.CONTRACT_REGION;
    if (!name || !region) throw new Error("TARGET=aws needs CONTRACT_CLUSTER and CONTRACT_REGION");
    const { cluster } = await eksClient(region).send(new DescribeClusterCommand({ name }));
    return {
      name: "aws",
      cluster: { name, region, endpoint: cluster!.endpoint!, certificateAuthority: cluster!.certificateAuthority!.data! },
      close: async () => undefined,
    };
  }
  // Loaded only for the sandbox target: the real target never starts emulators.
  const { startSandbox } = await import("../../local/sandbox.js");
  const { FAST } = await import("../support/sandbox-runs.js");
  const sandbox = await startSandbox(FAST);
  return {
    name: "sandbox",
    cluster: { name: sandbox.cluster.name, region: sandbox.cluster.region, endpoint: sandbox.kubeUrl, certificateAuthority: sandbox.kube.caData },
    close: () => sandbox.close(),
  };
}

/** A kubeconfig for the target's cluster with an EKS token made by the product's own code. */
export async function kubeConfigWithToken(target: ContractTarget, opts: EksTokenOptions & { clusterName?: string } = {}): Promise<KubeConfig> {
  const { token } = await eksBearerToken(opts.clusterName ?? target.cluster.name, target.cluster.region, opts);
  return kubeConfigFor({ ...target.cluster, arn: "", accountId: "", authenticationMode: "API" } as ResolvedCluster, token);
}

/** Who the API server says the token's bearer is (SelfSubjectReview), or the HTTP status that refused it. */
export async function whoAmI(kc: KubeConfig): Promise<{ status: number; username?: string }> {
  try {
    const review = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });
    return { status: 201, username: review.status?.userInfo?.username };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "number") return { status: code };
    throw error;
  }
}
