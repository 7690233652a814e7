/**
 * What the operator runs once per allowed cluster so the Kubernetes steps (the shared KubeStepsRole) may act there.
 * Printed as stack outputs after `sst deploy` and explained in the README. Two things, in either mode:
 *  - map the role to the Kubernetes user `nf-eks-provisioner` in the group `nf-eks-provisioner`: an EKS access entry
 *    with that group and no access policy (API / API_AND_CONFIG_MAP clusters), or one `mapRoles` entry in
 *    kube-system/aws-auth (CONFIG_MAP clusters, with eksctl);
 *  - apply deploy/provisioner-clusterrole.yaml: the ClusterRole holding exactly the calls the steps make, bound to
 *    that group. Never cluster-admin, never an EKS access policy.
 * The sandbox (local/sandbox.ts) maps its stand-in for the role with these same values.
 */
import { awsAuthEntryLine } from "../functions/lib/kube/aws-auth/index.js";

/** The Kubernetes identity of the KubeStepsRole on every cluster. */
export const PROVISIONER_USERNAME = "nf-eks-provisioner";
/** The group the ClusterRoleBinding in deploy/provisioner-clusterrole.yaml names. */
export const PROVISIONER_GROUP = "nf-eks-provisioner";
/** The ClusterRole and its binding, relative to the repository root (the checkout `sst deploy` ran from). */
export const PROVISIONER_CLUSTERROLE_FILE = "deploy/provisioner-clusterrole.yaml";

export interface ClusterRef {
  name: string;
  region: string;
}

/** The access entry for the KubeStepsRole (API / API_AND_CONFIG_MAP): the group only, no access policy. */
export function provisionerAccessEntry(roleArn: string): { principalArn: string; username: string; kubernetesGroups: string[] } {
  return { principalArn: roleArn, username: PROVISIONER_USERNAME, kubernetesGroups: [PROVISIONER_GROUP] };
}

function applyClusterRole(cluster: ClusterRef): string[] {
  return [
    `aws eks update-kubeconfig --name ${cluster.name} --region ${cluster.region}`,
    `kubectl apply -f ${PROVISIONER_CLUSTERROLE_FILE}`,
  ];
}

/** API / API_AND_CONFIG_MAP: the access entry (username and group), then the ClusterRole. One line. */
export function accessEntryCommand(cluster: ClusterRef, roleArn: string): string {
  const entry = provisionerAccessEntry(roleArn);
  return [
    `aws eks create-access-entry --cluster-name ${cluster.name} --region ${cluster.region} --principal-arn ${roleArn} ` +
      `--username ${entry.username} --kubernetes-groups ${entry.kubernetesGroups.join(" ")}`,
    ...applyClusterRole(cluster),
  ].join(" && ");
}

/** The aws-auth `mapRoles` entry (flow-style YAML: one line, pasteable as a list item). */
export function awsAuthMapRolesEntry(roleArn: string): string {
  return awsAuthEntryLine({ kind: "role", arn: roleArn, username: PROVISIONER_USERNAME, groups: [PROVISIONER_GROUP] });
}

/** CONFIG_MAP: add the aws-auth entry (eksctl edits the ConfigMap safely), then the ClusterRole. One line. */
export function configMapAccessCommand(cluster: ClusterRef, roleArn: string): string {
  return [
    `aws eks update-kubeconfig --name ${cluster.name} --region ${cluster.region}`,
    `eksctl create iamidentitymapping --cluster ${cluster.name} --region ${cluster.region} --arn ${roleArn} --username ${PROVISIONER_USERNAME} --group ${PROVISIONER_GROUP}`,
    `kubectl apply -f ${PROVISIONER_CLUSTERROLE_FILE}`,
  ].join(" && ");
}

/** A CloudFormation output key for a cluster: alphanumeric, unique within the list. */
export function clusterOutputSuffix(cluster: ClusterRef, taken: Set<string>): string {
  const pascal = (value: string) =>
    value
      .split(/[^A-Za-z0-9]+/)
      .filter(Boolean)
      .map((part) => part[0].toUpperCase() + part.slice(1))
      .join("");
  const base = `${pascal(cluster.name)}${pascal(cluster.region)}` || "Cluster";
  let suffix = base;
  for (let n = 2; taken.has(suffix); n++) suffix = `${base}${n}`;
  taken.add(suffix);
  return suffix;
}
