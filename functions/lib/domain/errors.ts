/**
 * Named errors. The state machine matches on `name`: transient ones are retried with backoff,
 * permanent ones go straight to compensation. A step never turns an error into a return value.
 */

export abstract class ProvisionerError extends Error {
  abstract readonly transient: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

// ---- transient: the state machine retries these ----

/** AWS or Kubernetes asked us to slow down (Throttling, TooManyRequests, HTTP 429). */
export class Throttled extends ProvisionerError {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "Throttled";
  }
}

/** A principal or role we just created is not yet visible to STS/EKS (IAM is eventually consistent). */
export class IamNotYetConsistent extends ProvisionerError {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "IamNotYetConsistent";
  }
}

/** Kubernetes answered 409 Conflict on a write (stale resourceVersion): re-read and redo. */
export class KubeConflict extends ProvisionerError {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KubeConflict";
  }
}

/**
 * The tenant's namespace is still Terminating (an earlier run's compensation deleted it, and the cluster is still
 * emptying it): nothing can be created in it until it is gone, which takes seconds to minutes (its pods' grace
 * periods, finalizers). The state machine retries it on its own, longer schedule (NAMESPACE_TERMINATING_RETRY). The
 * teardown's WaitForNamespaceRemoval raises it too, with its own backoff: its last message, naming the finalizers and
 * conditions that hold the namespace, is what the teardown reports when the wait is over.
 */
export class NamespaceTerminating extends ProvisionerError {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NamespaceTerminating";
  }
}

/** The cluster API (or an AWS endpoint) could not be reached or answered 5xx. */
export class ClusterUnreachable extends ProvisionerError {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ClusterUnreachable";
  }
}

/**
 * Entry points only (never thrown by a step): another run for the same tenant is still under way, and two
 * runs of one tenant could undo each other's work. Worth retrying once that run has ended.
 */
export class RunInProgress extends ProvisionerError {
  readonly transient = true;
  readonly executionArn: string;
  constructor(message: string, executionArn: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RunInProgress";
    this.executionArn = executionArn;
  }
}

/** Entry points only: no environment of that tenant, region and cluster in the registry (HTTP 404). */
export class EnvironmentNotFound extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EnvironmentNotFound";
  }
}

/**
 * Entry points only: a create (POST /environments, POST /provision, the onboarding event) for an environment that exists
 * with another spec. Taking it would re-point the environment and orphan what the recorded spec built (another
 * namespace is cut off, and a later teardown leaves it behind): only an update (PUT on the environment) changes a spec.
 */
export class EnvironmentExists extends ProvisionerError {
  readonly transient = false;
  /** the environment's route, also its update route (PUT) */
  readonly environmentUrl: string;
  constructor(environmentUrl: string, options?: { cause?: unknown }) {
    super(`environment ${environmentUrl} exists with another spec; change it with PUT ${environmentUrl}`, options);
    this.name = "EnvironmentExists";
    this.environmentUrl = environmentUrl;
  }
}

// ---- permanent: the state machine compensates at once ----

/** The request (or a value derived from it) is invalid. `problems` lists every problem by field path. */
export class InvalidRequest extends ProvisionerError {
  readonly transient = false;
  readonly problems: Problem[];
  constructor(problems: Problem[] | string, options?: { cause?: unknown }) {
    const list = typeof problems === "string" ? [{ path: "", message: problems }] : problems;
    super(list.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join("; "), options);
    this.name = "InvalidRequest";
    this.problems = list;
  }
}

/** An object exists that does not carry our ownership marks: never overwritten, never deleted. */
export class OwnershipConflict extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "OwnershipConflict";
  }
}

/** The request asks for something the deployment does not allow (cluster/account not allowlisted, forbidden value). */
export class NotAllowed extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NotAllowed";
  }
}

/** DescribeCluster says the cluster does not exist. */
export class ClusterNotFound extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ClusterNotFound";
  }
}

/** The Nextflow head job failed (its pod ended Failed, or it was deleted under us). */
export class HeadJobFailed extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HeadJobFailed";
  }
}

/**
 * The Nextflow head job's pod cannot start, for a reason that waiting does not fix: a ConfigMap or key it mounts
 * is missing (FailedMount), its claim is missing or cannot bind, no node can fit its requests (Unschedulable), its
 * image cannot be pulled. `reason` and `detail` are the cluster's own (waiting reason or event reason, and message).
 */
export class HeadPodCannotStart extends ProvisionerError {
  readonly transient = false;
  readonly reason: string;
  readonly detail: string;
  constructor(message: string, reason: string, detail: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HeadPodCannotStart";
    this.reason = reason;
    this.detail = detail;
  }
}

/**
 * The Nextflow head job did not reach the phase the request waits for (`headJob.waitFor`) within
 * `headJob.timeoutMinutes`: compensation removes it like a failed one.
 */
export class HeadJobTimedOut extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HeadJobTimedOut";
  }
}

/**
 * The cluster's API endpoint cannot be reached from where the Kubernetes-facing Lambdas run (a private endpoint,
 * or public CIDRs that exclude them): no retry helps, the deployment's VPC settings must change. Raised once, by
 * ResolveCluster, before anything is changed.
 */
export class ClusterEndpointUnreachable extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ClusterEndpointUnreachable";
  }
}

/** aws-auth cannot be edited safely (its content does not parse). */
export class AwsAuthUnparseable extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AwsAuthUnparseable";
  }
}

/**
 * An update grows a claim whose StorageClass does not allow volume expansion (no `allowVolumeExpansion: true`, or no
 * class at all): Kubernetes would refuse the resize. Raised by ConfigureStorage before it changes the claim.
 */
export class VolumeExpansionNotAllowed extends ProvisionerError {
  readonly transient = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "VolumeExpansionNotAllowed";
  }
}

export interface Problem {
  /** Field path, dotted (`storage.bucket`, `headJob.params.x`); empty for the whole request. */
  path: string;
  message: string;
}

export const TRANSIENT_ERROR_NAMES = ["Throttled", "IamNotYetConsistent", "KubeConflict", "ClusterUnreachable"] as const;
/** What the head-job check throws about the head job itself (steps/head-job.ts): the failure is the job's, not a step's. */
export const HEAD_JOB_ERROR_NAMES = ["HeadJobFailed", "HeadJobTimedOut", "HeadPodCannotStart"] as const;
export const PERMANENT_ERROR_NAMES = [
  "InvalidRequest",
  "OwnershipConflict",
  "NotAllowed",
  "ClusterNotFound",
  ...HEAD_JOB_ERROR_NAMES,
  "AwsAuthUnparseable",
  "ClusterEndpointUnreachable",
  "VolumeExpansionNotAllowed",
] as const;
/**
 * NamespaceTerminating's own retrier, on the steps that create in the tenant's namespace: about 3.5 minutes in all
 * (5, 7.5, 11, 17, 25, 38, 57, 60 s, jittered), the time a namespace holding a stopping pod and protected claims
 * takes to go.
 */
export const NAMESPACE_TERMINATING_RETRY = {
  ErrorEquals: ["NamespaceTerminating"],
  IntervalSeconds: 5,
  BackoffRate: 1.5,
  MaxAttempts: 8,
  MaxDelaySeconds: 60,
  JitterStrategy: "FULL",
} as const;
/** A Lambda that ran out of time: retried on the Tasks whose step is idempotent (never on the reports, which emit events). */
export const LAMBDA_TIMEOUT_ERROR = "Sandbox.Timedout";
/** The Lambda service's own transient errors, retried on every Task. */
export const LAMBDA_SERVICE_ERROR_NAMES = [
  "Lambda.ServiceException",
  "Lambda.AWSLambdaException",
  "Lambda.SdkClientException",
  "Lambda.TooManyRequestsException",
] as const;
