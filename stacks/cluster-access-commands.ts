/**
 * What the operator runs once per allowed cluster so the Kubernetes steps (the shared KubeStepsRole)
 * may act there. Printed as stack outputs after `sst deploy` and explained in the README.
 *  - API / API_AND_CONFIG_MAP clusters: an EKS access entry for the role + the cluster admin access policy.
 *  - CONFIG_MAP clusters: one `mapRoles` entry in kube-system/aws-auth mapping the role to a group the
 *    operator binds to `cluster-admin` (a ClusterRoleBinding the operator owns, rather than the
 *    unauditable `system:masters` group).
 * Why cluster admin: the steps create namespaces, edit kube-system/aws-auth, and create Roles granting
 * pods/exec (Kubernetes only lets a principal grant what it holds).
 */
import { awsAuthEntryLine } from "../functions/lib/kube/aws-auth/index.js";

export const CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy";
/** The Kubernetes identity of the KubeStepsRole in CONFIG_MAP clusters. */
export const PROVISIONER_USERNAME = "nf-eks-provisioner";
export const PROVISIONER_ADMIN_GROUP = "nf-eks-provisioner-admin";

export interface ClusterRef {
  name: string;
  region: string;
}

export function clusterAdminPolicyArn(partition: string): string {
  return `arn:${partition}:eks::aws:cluster-access-policy/${CLUSTER_ADMIN_ACCESS_POLICY}`;
}

/** API / API_AND_CONFIG_MAP: create the access entry, then associate the cluster admin policy. One line. */
export function accessEntryCommand(cluster: ClusterRef, roleArn: string, partition: string): string {
  const target = `--cluster-name ${cluster.name} --region ${cluster.region} --principal-arn ${roleArn}`;
  return [
    `aws eks create-access-entry ${target}`,
    `aws eks associate-access-policy ${target} --policy-arn ${clusterAdminPolicyArn(partition)} --access-scope type=cluster`,
  ].join(" && ");
}

/** The aws-auth `mapRoles` entry (flow-style YAML: one line, pasteable as a list item). */
export function awsAuthMapRolesEntry(roleArn: string): string {
  return awsAuthEntryLine({ kind: "role", arn: roleArn, username: PROVISIONER_USERNAME, groups: [PROVISIONER_ADMIN_GROUP] });
}

/**
 * CONFIG_MAP: add the aws-auth entry (eksctl edits the ConfigMap safely), point kubectl at the cluster,
 * and bind the entry's group to cluster-admin.
 */
export function configMapAccessCommand(cluster: ClusterRef, roleArn: string): string {
  return [
    `aws eks update-kubeconfig --name ${cluster.name} --region ${cluster.region}`,
    `eksctl create iamidentitymapping --cluster ${cluster.name} --region ${cluster.region} --arn ${roleArn} --username ${PROVISIONER_USERNAME} --group ${PROVISIONER_ADMIN_GROUP}`,
    `kubectl create clusterrolebinding ${PROVISIONER_ADMIN_GROUP} --clusterrole=cluster-admin --group=${PROVISIONER_ADMIN_GROUP}`,
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
