/**
 * The live side of the drift check: reads (get, list, describe only; never a write) of what an environment's spec
 * says the product built, through the same clients the steps use (IAM, EKS, and the cluster's Kubernetes API as
 * the provisioner's identity), then the pure comparison of drift.ts. A read that fails makes the check `unknown`,
 * with the reason: never an error for the caller.
 */
import { DescribeClusterCommand, DescribeAccessEntryCommand, ListAssociatedAccessPoliciesCommand, type EKSClient, DescribePodIdentityAssociationCommand, paginateListPodIdentityAssociations } from "@aws-sdk/client-eks";
import { GetRoleCommand, GetRolePolicyCommand, paginateListAttachedRolePolicies, paginateListRolePolicies, type IAMClient } from "@aws-sdk/client-iam";
import { AssumeRoleCommand } from "@aws-sdk/client-sts";
import type { KubernetesObject, V1ConfigMap } from "@kubernetes/client-node";
import { eksClient, iamClient, stsClient } from "../aws/clients.js";
import { eksBearerToken } from "../aws/eks-token.js";
import { toResolvedCluster, type ResolvedCluster } from "../domain/cluster.js";
import { loadDeploymentConfig, loadNamespaceSettings, type DeploymentConfig, type NamespaceSettings } from "../domain/deploy-config.js";
import { decodePolicy } from "../domain/policies.js";
import { safeParseRequest } from "../domain/request.js";
import { AWS_AUTH_REF, findMapping, parseAwsAuth } from "../kube/aws-auth/index.js";
import { kubeApiFrom, kubeClientFor, kubeConfigFor, readObject, refOf, type KubeApi } from "../kube/kube-client.js";
import { compareEnvironment, desiredEnvironment, unknownDrift, type DesiredEnvironment, type DriftReport, type LiveClusterAccess, type LiveEnvironment, type LivePodIdentity, type LiveRole } from "./drift.js";
import type { EnvironmentRecord } from "./environment-registry.js";
import { ifExists } from "./normalise-error.js";

/**
 * Deployed, the Lambdas that read drift are not the provisioner, whose identity the cluster maps (the KubeStepsRole):
 * they sign their EKS token as a session of that role, named here. The session carries a policy that denies every AWS
 * action (a presigned GetCallerIdentity needs no permission), so it is the provisioner on the cluster and nothing in
 * the account. Unset (the sandbox, tests): the steps' own token signer.
 */
export const KUBE_IDENTITY_ROLE_ENV = "KUBE_IDENTITY_ROLE_ARN";
const NO_AWS_ACTIONS = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Deny", Action: "*", Resource: "*" }] });

export interface DriftReadDeps {
  iam?: IAMClient;
  eks?: EKSClient;
  /** the cluster's client (default: kubeClientFor the cluster DescribeCluster returns) */
  kube?: KubeApi;
  config?: DeploymentConfig;
  namespaceSettings?: NamespaceSettings;
  now?: () => Date;
}

async function readRole(iam: IAMClient, name: string, inlinePolicyName: string): Promise<LiveRole> {
  const role = (await ifExists(iam.send(new GetRoleCommand({ RoleName: name })), "NoSuchEntity"))?.Role;
  if (!role) return { name, exists: false, otherInlinePolicies: [], attachedPolicyArns: [] };
  const inline = await ifExists(iam.send(new GetRolePolicyCommand({ RoleName: name, PolicyName: inlinePolicyName })), "NoSuchEntity");
  const otherInlinePolicies: string[] = [];
  for await (const page of paginateListRolePolicies({ client: iam }, { RoleName: name })) {
    otherInlinePolicies.push(...(page.PolicyNames ?? []).filter((policy) => policy !== inlinePolicyName));
  }
  const attachedPolicyArns: string[] = [];
  for await (const page of paginateListAttachedRolePolicies({ client: iam }, { RoleName: name })) {
    attachedPolicyArns.push(...(page.AttachedPolicies ?? []).map((p) => p.PolicyArn ?? p.PolicyName ?? ""));
  }
  return {
    name,
    exists: true,
    path: role.Path,
    boundaryArn: role.PermissionsBoundary?.PermissionsBoundaryArn,
    trustPolicy: decodePolicy(role.AssumeRolePolicyDocument),
    inlinePolicy: inline ? decodePolicy(inline.PolicyDocument) : undefined,
    otherInlinePolicies,
    attachedPolicyArns,
  };
}

async function readPodIdentity(eks: EKSClient, clusterName: string, namespace: string, serviceAccount: string): Promise<LivePodIdentity> {
  const associations: LivePodIdentity["associations"] = [];
  for await (const page of paginateListPodIdentityAssociations({ client: eks }, { clusterName, namespace, serviceAccount })) {
    for (const summary of page.associations ?? []) {
      if (summary.serviceAccount !== serviceAccount || !summary.associationId) continue;
      const read = eks.send(new DescribePodIdentityAssociationCommand({ clusterName, associationId: summary.associationId }));
      const association = (await ifExists(read, "ResourceNotFoundException"))?.association;
      if (association) associations.push({ associationId: summary.associationId, roleArn: association.roleArn, disableSessionTags: association.disableSessionTags });
    }
  }
  return { namespace, serviceAccount, associations };
}

async function readClusterAccess(desired: DesiredEnvironment["clusterAccess"], cluster: ResolvedCluster, eks: EKSClient, kube: () => Promise<KubeApi>): Promise<LiveClusterAccess> {
  if (!desired.principalArn) return {};
  if (desired.method === "access-entry") {
    const read = eks.send(new DescribeAccessEntryCommand({ clusterName: cluster.name, principalArn: desired.principalArn }));
    const entry = (await ifExists(read, "ResourceNotFoundException"))?.accessEntry;
    if (!entry) return {};
    const policies = await eks.send(new ListAssociatedAccessPoliciesCommand({ clusterName: cluster.name, principalArn: desired.principalArn }));
    return {
      identity: { username: entry.username, groups: entry.kubernetesGroups ?? [] },
      accessPolicies: (policies.associatedAccessPolicies ?? []).map((p) => p.policyArn ?? ""),
    };
  }
  const configMap = await readObject<V1ConfigMap>(await kube(), AWS_AUTH_REF);
  const mapping = findMapping(parseAwsAuth(configMap?.data), desired.principalArn);
  if (!mapping) return {};
  const groups = Array.isArray(mapping.groups) ? mapping.groups.map(String) : [];
  return { identity: { ...(typeof mapping.username === "string" ? { username: mapping.username } : {}), groups } };
}

async function readKube(api: KubeApi, desired: KubernetesObject[]): Promise<Array<KubernetesObject | undefined>> {
  const live: Array<KubernetesObject | undefined> = [];
  for (const object of desired) live.push(await readObject(api, refOf(object)));
  return live;
}

/** The cluster's client as the provisioner's Kubernetes identity (see KUBE_IDENTITY_ROLE_ENV). */
async function provisionerKubeClient(cluster: ResolvedCluster): Promise<KubeApi> {
  const roleArn = process.env[KUBE_IDENTITY_ROLE_ENV];
  if (!roleArn) return kubeClientFor(cluster);
  const assumed = await stsClient(cluster.region).send(
    new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: "drift-check", DurationSeconds: 900, Policy: NO_AWS_ACTIONS }),
  );
  const c = assumed.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`sts:AssumeRole on ${roleArn} returned no credentials`);
  const credentials = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration };
  const { token } = await eksBearerToken(cluster.name, cluster.region, { credentials: async () => credentials });
  return kubeApiFrom(kubeConfigFor(cluster, token));
}

/** The cluster as DescribeCluster tells it now (the check never trusts a copy of its endpoint or CA). */
async function describeCluster(eks: EKSClient, name: string, region: string): Promise<ResolvedCluster> {
  const cluster = (await eks.send(new DescribeClusterCommand({ name }))).cluster;
  if (!cluster) throw new Error(`cluster ${name} does not exist in ${region}`);
  return toResolvedCluster(cluster, region);
}

function reasonOf(error: unknown): string {
  const e = error as { name?: string; message?: string; code?: number; body?: unknown };
  const body = typeof e.body === "string" ? e.body : e.body ? JSON.stringify(e.body) : "";
  const message = e.message || body || String(error);
  return `${e.name ?? "Error"}: ${message}`.slice(0, 500);
}

/** The live check of one environment: its record's spec as built, against what its cluster and account hold now. */
export async function checkDrift(record: EnvironmentRecord, deps: DriftReadDeps = {}): Promise<DriftReport> {
  const now = deps.now ?? (() => new Date());
  const parsed = safeParseRequest(record.spec);
  if (!parsed.ok) return unknownDrift(`the recorded spec does not validate: ${parsed.problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`, now());
  const request = parsed.request;
  try {
    const config = deps.config ?? loadDeploymentConfig();
    const settings = deps.namespaceSettings ?? loadNamespaceSettings();
    const eks = deps.eks ?? eksClient(request.cluster.region);
    const iam = deps.iam ?? iamClient();
    const cluster = await describeCluster(eks, request.cluster.name, request.cluster.region);
    let api = deps.kube;
    const kube = async () => (api ??= await provisionerKubeClient(cluster));
    const desired = desiredEnvironment(request, cluster, config, settings);
    const live: LiveEnvironment = {
      roles: await Promise.all(desired.roles.map((role) => readRole(iam, role.name, role.inlinePolicyName))),
      podIdentity: await Promise.all(desired.podIdentity.map((p) => readPodIdentity(eks, cluster.name, p.namespace, p.serviceAccount))),
      clusterAccess: await readClusterAccess(desired.clusterAccess, cluster, eks, kube),
      kubernetes: await readKube(await kube(), desired.kubernetes),
    };
    return compareEnvironment(desired, live, now());
  } catch (error) {
    return unknownDrift(reasonOf(error), now());
  }
}
