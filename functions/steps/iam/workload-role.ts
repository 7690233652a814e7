/**
 * The Fusion workload role the head and compute service accounts assume: trusted through the cluster's
 * OIDC provider (IRSA) or by EKS Pod Identity (for those service accounts only, by its session tags), with an
 * S3 policy confined to the request's work directory.
 */
import { ListOpenIDConnectProvidersCommand } from "@aws-sdk/client-iam";
import { NotAllowed } from "../../lib/domain/errors.js";
import { iamPolicyName, iamRoleName } from "../../lib/domain/naming.js";
import { fusionS3Policy, irsaTrustPolicy, oidcProviderArn, podIdentityTrustPolicy, workDirKeyPrefix } from "../../lib/domain/policies.js";
import { type FusionStorage, serviceAccountsOf } from "../../lib/domain/request.js";
import type { IamStepContext } from "./iam-step-context.js";
import type { DesiredRole } from "./role-documents.js";
import { type EnsuredRole, ensureRole } from "./tagged-role.js";

/** IRSA needs the cluster's OIDC issuer registered as an IAM OIDC provider. */
async function findOidcProvider(ctx: IamStepContext): Promise<string> {
  const issuer = ctx.cluster.oidcIssuer;
  if (!issuer) {
    throw new NotAllowed(`cluster ${ctx.cluster.name} has no OIDC issuer; Fusion with IRSA needs one (or ask for storage.podIdentity)`);
  }
  const expected = oidcProviderArn(ctx.cluster.accountId, issuer, ctx.partition);
  const providers = (await ctx.iam.send(new ListOpenIDConnectProvidersCommand({}))).OpenIDConnectProviderList ?? [];
  const found = providers.find((p) => p.Arn?.toLowerCase() === expected.toLowerCase());
  if (!found?.Arn) {
    throw new NotAllowed(
      `the OIDC issuer of cluster ${ctx.cluster.name} (${issuer}) is not registered as an IAM OIDC provider; ` +
        `associate it first: eksctl utils associate-iam-oidc-provider --cluster ${ctx.cluster.name} --region ${ctx.cluster.region} --approve`,
    );
  }
  return found.Arn;
}

async function workloadRole(ctx: IamStepContext, storage: FusionStorage): Promise<DesiredRole> {
  const { iamPrefix } = ctx.config;
  const tenant = ctx.request.tenant;
  const workDirectory = `s3://${storage.bucket}/${workDirKeyPrefix(storage.workDir)}/`;
  const tenantServiceAccounts = { namespace: ctx.request.namespace, serviceAccounts: serviceAccountsOf(ctx.request) };
  const trustPolicy = storage.podIdentity
    ? podIdentityTrustPolicy({ clusterArn: ctx.cluster.arn, ...tenantServiceAccounts })
    : irsaTrustPolicy({ oidcProviderArn: await findOidcProvider(ctx), issuer: ctx.cluster.oidcIssuer!, ...tenantServiceAccounts });
  return {
    roleName: iamRoleName(iamPrefix, tenant, ctx.cluster.name, "workload"),
    description: `nf-eks-provisioner: Fusion workload role for tenant ${tenant} on ${ctx.cluster.name} (${workDirectory})`,
    trustPolicy,
    inlinePolicyName: iamPolicyName(iamPrefix, tenant, ctx.cluster.name, "fusion-s3"),
    inlinePolicy: fusionS3Policy({ bucket: storage.bucket, workDir: storage.workDir, partition: ctx.partition }),
  };
}

export async function ensureWorkloadRole(ctx: IamStepContext, storage: FusionStorage): Promise<EnsuredRole> {
  return ensureRole(ctx, await workloadRole(ctx, storage));
}
