/**
 * How long the emulated cluster takes to do things, from ONE time factor.
 *
 * Every duration here is real-shaped: what a real EKS cluster takes, in seconds (a pod scheduled and its image
 * pulled, a claim provisioned, a namespace controller resync, the garbage collector's latency, a pod's
 * `terminationGracePeriodSeconds`), multiplied by `timeScale` to give the sandbox's milliseconds
 * (`ms = realSeconds × 1000 × timeScale`). The proportions stay those of a real cluster; only the clock runs
 * faster:
 *  - `npm start` uses SANDBOX_TIME_SCALE: a namespace holding a running pod (30 s grace) is gone in about 10 s;
 *  - tests use TEST_TIME_SCALE: the same namespace is gone in about 1 s.
 */

/** `npm start`: a Terminating namespace with a running pod is gone in about 10 s. */
export const SANDBOX_TIME_SCALE = 0.3;
/** Tests (and startKubeApi's default): the same namespace is gone in about 1 s. */
export const TEST_TIME_SCALE = 0.03;

/** Real-world durations, in seconds, before scaling. */
export const REAL_SECONDS = {
  /** the kubelet between two pod phases (scheduled → image pulled and started → exited) */
  kubeletStep: 2,
  /** a dynamically provisioned volume bound to its claim (EBS/EFS CSI CreateVolume) */
  volumeBinding: 4,
  /** the namespace controller's first pass after the delete (its work queue) */
  namespaceFirstSync: 1,
  /** the namespace controller's requeue while content remains (its estimate when no pod sets a longer one) */
  namespaceResync: 5,
  /** the garbage collector noticing an owner gone, or a dependent to orphan */
  garbageCollection: 1,
  /** the pvc-protection / job-tracking finalizer controllers reacting to a change */
  finalizerController: 1,
  /** back-off before the kubelet retries a failed image pull (ErrImagePull → ImagePullBackOff) */
  imagePullBackOff: 10,
} as const;

export class ClusterTiming {
  constructor(readonly timeScale: number = TEST_TIME_SCALE) {
    if (!Number.isFinite(timeScale) || timeScale < 0) throw new Error(`timeScale must be a non-negative number (got ${timeScale})`);
  }

  /** Sandbox milliseconds for `realSeconds` of a real cluster. */
  ms(realSeconds: number): number {
    return Math.round(realSeconds * 1000 * this.timeScale);
  }

  /** Sandbox milliseconds for one of the named real durations. */
  of(what: keyof typeof REAL_SECONDS): number {
    return this.ms(REAL_SECONDS[what]);
  }
}
