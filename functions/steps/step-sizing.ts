/**
 * Memory and timeout of each step module's Lambda, in one place: the stack deploys them (stacks/Provisioner.ts) and
 * the local Step Functions runner times each handler out at the same limit (local/sfn/runner.ts), where it surfaces
 * as Lambda's `Sandbox.Timedout`. Kubernetes steps load the client and wait on the API server.
 */
export interface StepSizing {
  memorySize: number;
  /** seconds */
  timeout: number;
}

export const STEP_SIZING: Readonly<Record<string, StepSizing>> = {
  "resolve-cluster": { memorySize: 256, timeout: 30 },
  "iam/index": { memorySize: 256, timeout: 60 },
  rbac: { memorySize: 512, timeout: 90 },
  "cluster-access/index": { memorySize: 512, timeout: 90 },
  storage: { memorySize: 512, timeout: 90 },
  "head-job": { memorySize: 512, timeout: 120 },
  // An update's removals: an old namespace is looked through (every namespaced kind) before it is deleted.
  "remove-unwanted": { memorySize: 512, timeout: 120 },
  // An update's IAM and Pod Identity removals: a few reads and deletes.
  "remove-unwanted-identities": { memorySize: 256, timeout: 60 },
  report: { memorySize: 256, timeout: 30 },
  // The teardown's own: waiting out a Terminating namespace (it retries in the state machine), the record's removal.
  "namespace-removal": { memorySize: 512, timeout: 30 },
  "teardown-record": { memorySize: 256, timeout: 30 },
};
