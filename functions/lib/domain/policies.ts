/**
 * IAM policy documents, as pure data. These are the JSON blocks the Seqera EKS and Fusion runbooks tell
 * an engineer to paste into the console; here they are built from the request and the resolved cluster.
 */

export interface PolicyStatement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: Record<string, string | string[]>;
  Action: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

const STS_AUDIENCE = "sts.amazonaws.com";

/** `https://oidc.eks.<region>.amazonaws.com/id/<ID>` → `oidc.eks.<region>.amazonaws.com/id/<ID>` */
export function issuerHost(issuer: string): string {
  return issuer.replace(/^https:\/\//, "").replace(/\/+$/, "");
}

/** The IAM OIDC provider ARN IAM registers for a cluster's issuer. */
export function oidcProviderArn(accountId: string, issuer: string, partition = "aws"): string {
  return `arn:${partition}:iam::${accountId}:oidc-provider/${issuerHost(issuer)}`;
}

/** The account itself as a principal: any of its principals whose own IAM policies allow them. */
export function accountRootArn(accountId: string, partition = "aws"): string {
  return `arn:${partition}:iam::${accountId}:root`;
}

/**
 * Who may assume the created launcher role: exactly the principals the request names (`launcher.trust`), with
 * its external ID when given; the account root only when the request says `trustAccount: true`.
 */
export function launcherTrustPolicy(principals: string[], externalId?: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AssumeByTheNamedPrincipals",
        Effect: "Allow",
        Principal: { AWS: principals.length === 1 ? principals[0]! : [...principals] },
        Action: "sts:AssumeRole",
        ...(externalId !== undefined ? { Condition: { StringEquals: { "sts:ExternalId": externalId } } } : {}),
      },
    ],
  };
}

/** The launcher's AWS actions (the runbook's "EKS describe" policy); the stack's boundary allows no more. */
export const LAUNCHER_ACTIONS = { describe: "eks:DescribeCluster", list: "eks:ListClusters" } as const;

/** What the launcher needs from AWS to reach the cluster (the runbook's "EKS describe" policy). */
export function launcherPermissionsPolicy(clusterArns: string[]): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "DescribeTheCluster", Effect: "Allow", Action: LAUNCHER_ACTIONS.describe, Resource: [...clusterArns] },
      // ListClusters has no resource-level permissions: "*" is the only valid resource, and it is read-only.
      { Sid: "ListClusters", Effect: "Allow", Action: LAUNCHER_ACTIONS.list, Resource: "*" },
    ],
  };
}

export interface IrsaTrust {
  oidcProviderArn: string;
  /** issuer with or without `https://` */
  issuer: string;
  namespace: string;
  serviceAccounts: string[];
}

/**
 * IRSA trust: only the named service accounts of one namespace, and only tokens minted for STS.
 * `StringEquals` on both `:sub` and `:aud`, never `StringLike` with wildcards.
 */
export function irsaTrustPolicy({ oidcProviderArn, issuer, namespace, serviceAccounts }: IrsaTrust): PolicyDocument {
  const host = issuerHost(issuer);
  const subjects = serviceAccounts.map((sa) => `system:serviceaccount:${namespace}:${sa}`);
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ServiceAccountsOfTheTenant",
        Effect: "Allow",
        Principal: { Federated: oidcProviderArn },
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: {
          StringEquals: {
            [`${host}:sub`]: subjects.length === 1 ? subjects[0]! : subjects,
            [`${host}:aud`]: STS_AUDIENCE,
          },
        },
      },
    ],
  };
}

/** The service principal of the EKS Pod Identity agent. */
export const POD_IDENTITY_SERVICE_PRINCIPAL = "pods.eks.amazonaws.com";

/** The session tags the EKS Pod Identity agent sets on every session it opens for a pod. */
export const POD_IDENTITY_SESSION_TAGS = {
  cluster: "eks-cluster-arn",
  namespace: "kubernetes-namespace",
  serviceAccount: "kubernetes-service-account",
} as const;

export interface PodIdentityTrust {
  clusterArn: string;
  namespace: string;
  serviceAccounts: string[];
}

/**
 * EKS Pod Identity trust: the Pod Identity agent may assume the role only for the tenant's service accounts of
 * one namespace on one cluster, as the session tags it sets say. The conditions sit in the statement that also
 * allows sts:TagSession, so a session without those tags (an association with session tags disabled) is refused.
 */
export function podIdentityTrustPolicy({ clusterArn, namespace, serviceAccounts }: PodIdentityTrust): PolicyDocument {
  const serviceAccount = serviceAccounts.length === 1 ? serviceAccounts[0]! : [...serviceAccounts];
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "EksPodIdentityForTheTenant",
        Effect: "Allow",
        Principal: { Service: POD_IDENTITY_SERVICE_PRINCIPAL },
        Action: ["sts:AssumeRole", "sts:TagSession"],
        Condition: {
          StringEquals: {
            [`aws:RequestTag/${POD_IDENTITY_SESSION_TAGS.cluster}`]: clusterArn,
            [`aws:RequestTag/${POD_IDENTITY_SESSION_TAGS.namespace}`]: namespace,
            [`aws:RequestTag/${POD_IDENTITY_SESSION_TAGS.serviceAccount}`]: serviceAccount,
          },
        },
      },
    ],
  };
}

/** What Fusion v2 does on the work directory's objects (Seqera "Fusion file system" IAM policy). */
export const FUSION_OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"] as const;

/** `work/` → `work`: the work directory as a key prefix without its trailing slashes. */
export function workDirKeyPrefix(workDir: string): string {
  return workDir.replace(/\/+$/, "");
}

/**
 * Fusion's S3 access, confined to the request's work directory: objects under `<workDir>/` only, and
 * ListBucket only for prefixes inside it (`s3:prefix`), so tenants sharing a bucket see none of each other's keys.
 */
export interface FusionWorkDirectory {
  bucket: string;
  /** the request's `storage.workDir`, a key prefix (a trailing '/' is ignored) */
  workDir: string;
  partition?: string;
}

export function fusionS3Policy({ bucket, workDir, partition = "aws" }: FusionWorkDirectory): PolicyDocument {
  const dir = workDirKeyPrefix(workDir);
  const objects = `arn:${partition}:s3:::${bucket}/${dir}/*`;
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ListTheWorkDirectory",
        Effect: "Allow",
        Action: "s3:ListBucket",
        Resource: `arn:${partition}:s3:::${bucket}`,
        Condition: { StringLike: { "s3:prefix": [`${dir}/`, `${dir}/*`] } },
      },
      { Sid: "ReadWriteWorkObjects", Effect: "Allow", Action: [...FUSION_OBJECT_ACTIONS], Resource: objects },
    ],
  };
}

/**
 * The permissions boundary of every tenant role when the operator names none: the most any launcher or workload
 * role may ever do (describe the allowed clusters, list them, list buckets and work with objects), whatever
 * inline policy a role is given. The role's own policy narrows it to one cluster, bucket and work directory.
 */
export function tenantRoleBoundaryPolicy(clusterArns: string[], partition = "aws"): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "DescribeTheAllowedClusters", Effect: "Allow", Action: LAUNCHER_ACTIONS.describe, Resource: [...clusterArns] },
      // ListClusters has no resource-level permissions: "*" is its only resource.
      { Sid: "ListClusters", Effect: "Allow", Action: LAUNCHER_ACTIONS.list, Resource: "*" },
      { Sid: "ListBuckets", Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:${partition}:s3:::*` },
      { Sid: "WorkWithObjects", Effect: "Allow", Action: [...FUSION_OBJECT_ACTIONS], Resource: `arn:${partition}:s3:::*/*` },
    ],
  };
}

/**
 * A policy document by meaning (what IAM compares): keys sorted, arrays as sets (one-element arrays as their element),
 * so key order and `"a"` vs `["a"]` do not matter.
 */
export function canonicalPolicy(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(canonicalPolicy);
    return items.length === 1
      ? items[0]
      : items
          .map((i) => JSON.stringify(i))
          .sort()
          .map((i) => JSON.parse(i));
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, canonicalPolicy((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** IAM returns policy documents URL-encoded. */
export function decodePolicy(document: string | undefined): unknown {
  if (!document) return undefined;
  try {
    return JSON.parse(decodeURIComponent(document));
  } catch {
    return undefined;
  }
}
