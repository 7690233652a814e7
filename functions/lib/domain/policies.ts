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

/**
 * Who may assume the created launcher role: principals of the cluster's own account (the account's
 * IAM policies then decide which ones, e.g. Seqera Platform's credentials), never another account.
 */
export function launcherTrustPolicy(accountId: string, partition = "aws"): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AssumeFromThisAccount",
        Effect: "Allow",
        Principal: { AWS: `arn:${partition}:iam::${accountId}:root` },
        Action: "sts:AssumeRole",
      },
    ],
  };
}

/** What the launcher needs from AWS to reach the cluster (the runbook's "EKS describe" policy). */
export function launcherPermissionsPolicy(clusterArns: string[]): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "DescribeTheCluster", Effect: "Allow", Action: "eks:DescribeCluster", Resource: [...clusterArns] },
      // ListClusters has no resource-level permissions: "*" is the only valid resource, and it is read-only.
      { Sid: "ListClusters", Effect: "Allow", Action: "eks:ListClusters", Resource: "*" },
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

/** EKS Pod Identity trust: the Pod Identity agent assumes the role (and tags the session). */
export function podIdentityTrustPolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "EksPodIdentity",
        Effect: "Allow",
        Principal: { Service: POD_IDENTITY_SERVICE_PRINCIPAL },
        Action: ["sts:AssumeRole", "sts:TagSession"],
      },
    ],
  };
}

/** Fusion v2's S3 access on the work bucket (Seqera "Fusion file system" IAM policy). */
export function fusionS3Policy({ bucket, partition = "aws" }: { bucket: string; partition?: string }): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ListTheWorkBucket", Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:${partition}:s3:::${bucket}` },
      {
        Sid: "ReadWriteWorkObjects",
        Effect: "Allow",
        Action: ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"],
        Resource: `arn:${partition}:s3:::${bucket}/*`,
      },
    ],
  };
}
