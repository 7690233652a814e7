/** ARNs and S3 bucket names are parsed, not pattern-guessed. */

export interface Arn {
  partition: string;
  service: string;
  region: string;
  accountId: string;
  resource: string;
}

const PARTITIONS = new Set(["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f"]);

export function parseArn(value: string): Arn | undefined {
  if (typeof value !== "string" || /\s/.test(value)) return undefined;
  const parts = value.split(":");
  if (parts.length < 6 || parts[0] !== "arn") return undefined;
  const [, partition, service, region, accountId, ...rest] = parts;
  const resource = rest.join(":");
  if (!PARTITIONS.has(partition) || !service || !resource) return undefined;
  return { partition, service, region, accountId, resource };
}

/** Undefined when the bucket name follows the S3 general-purpose bucket naming rules, else the reason. */
export function validateBucketName(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return "bucket name must be 3-63 characters";
  if (!/^[a-z0-9.-]+$/.test(name)) return "bucket name may hold only lower-case letters, digits, '.' and '-'";
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) return "bucket name must begin and end with a letter or digit";
  if (name.includes("..")) return "bucket name must not contain two adjacent periods";
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return "bucket name must not be formatted as an IP address";
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(name)) return "bucket name uses a reserved prefix";
  if (/(-s3alias|--ol-s3|--x-s3|--table-s3)$/.test(name)) return "bucket name uses a reserved suffix";
  return undefined;
}

/** The IAM role ARN an STS assumed-role ARN stands for (how EKS maps a session back to its role). */
export function roleArnOfAssumedRole(arn: string): string {
  const parsed = parseArn(arn);
  if (parsed?.service !== "sts" || !parsed.resource.startsWith("assumed-role/")) return arn;
  const roleName = parsed.resource.split("/")[1];
  return `arn:${parsed.partition}:iam::${parsed.accountId}:role/${roleName}`;
}
