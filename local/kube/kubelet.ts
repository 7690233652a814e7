/**
 * The controllers and the node a real cluster runs behind its API server, reduced to what a
 * provisioner observes:
 *  - namespace controller: a new namespace gets its `default` ServiceAccount and `kube-root-ca.crt`
 *    ConfigMap; a Terminating namespace is emptied over time and removed (namespace-lifecycle.ts);
 *  - garbage collector: dependents deleted or orphaned by ownerReferences, asynchronously (garbage-collector.ts);
 *  - job controller: a Job gets a Pod `<job>-<5 random>` (labels job-name, controller-uid,
 *    batch.kubernetes.io/job-name, batch.kubernetes.io/controller-uid; ownerReference to the Job; the
 *    batch.kubernetes.io/job-tracking finalizer, removed once the pod is counted or its Job is gone),
 *    status active/ready/succeeded/failed, startTime/completionTime, Complete/Failed conditions,
 *    and a replacement pod after a failure while `failed <= backoffLimit`;
 *  - kubelet (one node): schedules every pod, then Pending → Running → Succeeded/Failed, `stepMs`
 *    apart (pods with restartPolicy Always stay Running); a job's pod fails (exit code 1, reason
 *    Error) when `failJobs(job)` says so; container logs for `pods/log`; a pod deleted while it runs is
 *    stopped when its grace period has run (then it goes);
 *  - volume binder: a PVC becomes Bound after the volume binding time; the pvc-protection controller
 *    releases a deleted claim (its kubernetes.io/pvc-protection finalizer) once no running pod uses it.
 * Durations come from one time factor (cluster-timing.ts). Every timer is tracked and cleared by close().
 */
import type { KubeObject, KubeStore, StoreEvent } from "./store.js";
import { KubeStatusError } from "./kube-status.js";
import { PVC_PROTECTION_FINALIZER, randomSuffix, timestamp } from "./store.js";
import {
  CONFIG_MAPS,
  EVENTS,
  JOBS,
  NAMESPACES,
  NODES,
  PERSISTENT_VOLUME_CLAIMS,
  PODS,
  SERVICE_ACCOUNTS,
  STORAGE_CLASSES,
} from "./resources.js";
import { ImageRegistry, parseImage } from "./image-registry.js";
import { NODE_IP, NODE_NAME, sandboxNode, schedulingDecision } from "./scheduler.js";
import { classNameOf, provisioningProblem } from "./volumes.js";
import { ClusterTiming, TEST_TIME_SCALE } from "./cluster-timing.js";
import { GarbageCollector } from "./garbage-collector.js";
import { NamespaceLifecycle } from "./namespace-lifecycle.js";

export interface KubeletOptions {
  /**
   * The one time factor: real-cluster seconds × 1000 × timeScale = sandbox milliseconds (cluster-timing.ts).
   * Default TEST_TIME_SCALE (a namespace with a running pod is gone in about 1 s); `npm start` uses SANDBOX_TIME_SCALE.
   */
  timeScale?: number;
  /** time between pod phases (default: the kubelet's real step scaled by timeScale) */
  stepMs?: number;
  /** true: the job's pod fails (exit code 1) instead of succeeding */
  failJobs?: (job: KubeObject) => boolean;
  /** the least time a Terminating namespace lingers, however quickly it empties (default 0) */
  namespaceDeletionMs?: number;
}

/** Set by the job controller on each pod it creates; removed once the pod's end is counted. */
export const JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking";

export { NODE_NAME } from "./scheduler.js";

export class ClusterControllers {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly logs = new Map<string, string>();
  /** pod uids already counted into their job's succeeded/failed */
  private readonly counted = new Map<string, { succeeded: number; failed: number; pods: Set<string> }>();
  private readonly stepMs: number;
  private readonly unsubscribe: () => void;
  private closed = false;
  private podIpCounter = 10;
  /** pod uids whose graceful stop is already scheduled */
  private readonly stopping = new Set<string>();
  readonly timing: ClusterTiming;
  /** which images the kubelet can pull (tests add and remove) */
  readonly images = new ImageRegistry();
  /** pods the scheduler could not place yet, or that wait for their claims: tried again when claims, classes or nodes change */
  private readonly unscheduled = new Map<string, { namespace: string; name: string; uid: string }>();
  /** pods scheduled but not started (a volume that does not mount): tried again when ConfigMaps/Secrets change */
  private readonly notMounted = new Map<string, { namespace: string; name: string; uid: string }>();
  /** event objects already recorded, by what they are about (the count goes up instead of a new one) */
  private readonly recorded = new Map<string, string>();
  private readonly garbageCollector: GarbageCollector;
  private readonly namespaces: NamespaceLifecycle;

  constructor(
    private readonly store: KubeStore,
    private readonly options: KubeletOptions & { caPem: string },
  ) {
    this.timing = new ClusterTiming(options.timeScale ?? TEST_TIME_SCALE);
    this.stepMs = options.stepMs ?? this.timing.of("kubeletStep");
    const later = (ms: number, work: () => void) => this.later(ms, work);
    this.garbageCollector = new GarbageCollector(store, this.timing, later);
    this.namespaces = new NamespaceLifecycle(store, this.timing, later, options.namespaceDeletionMs ?? 0);
    this.unsubscribe = store.subscribe((event) => this.onEvent(event));
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** The container log the kubelet wrote for a pod (`pods/log`), undefined when the pod never ran. */
  podLog(namespace: string, name: string): string | undefined {
    return this.logs.get(`${namespace}/${name}`);
  }

  private later(ms: number, work: () => void): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closed) work();
    }, ms);
    this.timers.add(timer);
  }

  private onEvent(event: StoreEvent): void {
    const { type, resourceType, object } = event;
    this.garbageCollector.onEvent(event);
    this.namespaces.onEvent(event);
    if (resourceType === NAMESPACES && type === "ADDED") this.later(0, () => this.populateNamespace(object.metadata.name!));
    // MODIFIED too: a Job un-suspended by a patch starts then (the controller's own status writes settle at once).
    if (resourceType === JOBS && type !== "DELETED")
      this.later(0, () => this.syncJob(object.metadata.namespace!, object.metadata.name!, object.metadata.uid!));
    if (resourceType === PODS && type === "ADDED" && !object.spec?.nodeName)
      this.later(0, () => this.schedulePod(object.metadata.namespace!, object.metadata.name!, object.metadata.uid!));
    if (resourceType === PODS && type === "DELETED") {
      this.unscheduled.delete(object.metadata.uid!);
      this.notMounted.delete(object.metadata.uid!);
    }
    if (resourceType === PERSISTENT_VOLUME_CLAIMS || resourceType === STORAGE_CLASSES || resourceType === NODES) {
      for (const p of [...this.unscheduled.values()]) this.later(0, () => this.schedulePod(p.namespace, p.name, p.uid));
    }
    if (resourceType === STORAGE_CLASSES && type === "ADDED") {
      for (const claim of this.store.list(PERSISTENT_VOLUME_CLAIMS))
        if (claim.status?.phase === "Pending") this.later(0, () => this.provisionClaim(claim));
    }
    if ((resourceType === CONFIG_MAPS || resourceType.resource === "secrets") && type !== "DELETED") {
      for (const p of [...this.notMounted.values()])
        if (p.namespace === object.metadata.namespace) this.later(this.stepMs, () => this.startPod(p.namespace, p.name, p.uid));
    }
    if (resourceType === PODS && type === "MODIFIED") {
      const owner = jobOwner(object);
      if (owner) this.later(0, () => this.syncJob(object.metadata.namespace!, owner.name, owner.uid));
      if (object.metadata.deletionTimestamp && (object.metadata.deletionGracePeriodSeconds ?? 0) > 0) this.stopGracefully(object);
      if ((object.metadata.finalizers ?? []).includes(JOB_TRACKING_FINALIZER))
        this.later(this.timing.of("finalizerController"), () => this.releaseJobTracking(object));
    }
    if (resourceType === PODS && type !== "ADDED")
      this.later(this.timing.of("finalizerController"), () => this.releaseClaims(object.metadata.namespace!));
    if (resourceType === PERSISTENT_VOLUME_CLAIMS && type === "MODIFIED" && object.metadata.deletionTimestamp) {
      this.later(this.timing.of("finalizerController"), () => this.releaseClaims(object.metadata.namespace!));
    }
    if (resourceType === PODS && type === "DELETED") {
      const owner = jobOwner(object);
      if (owner) {
        // A job's pod deleted before it finished counts as failed (upstream's job tracking does the same).
        const tally = this.tally(owner.uid);
        if (!isTerminal(object) && !tally.pods.has(object.metadata.uid!)) {
          tally.pods.add(object.metadata.uid!);
          tally.failed++;
        }
        this.later(this.stepMs, () => this.syncJob(object.metadata.namespace!, owner.name, owner.uid));
      }
    }
    if (resourceType === PERSISTENT_VOLUME_CLAIMS && type === "ADDED") this.later(0, () => this.provisionClaim(object));
  }

  // ---- namespace controller ----

  /** Creates the namespace's `default` ServiceAccount and `kube-root-ca.crt` ConfigMap (idempotent). */
  populateNamespace(namespace: string): void {
    const ns = this.store.get(NAMESPACES, undefined, namespace);
    if (!ns || ns.metadata.deletionTimestamp) return;
    if (!this.store.get(SERVICE_ACCOUNTS, namespace, "default")) {
      this.store.create(SERVICE_ACCOUNTS, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default" } }, namespace);
    }
    if (!this.store.get(CONFIG_MAPS, namespace, "kube-root-ca.crt")) {
      this.store.create(
        CONFIG_MAPS,
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: {
            name: "kube-root-ca.crt",
            annotations: {
              "kubernetes.io/description":
                "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.",
            },
          },
          data: { "ca.crt": this.options.caPem },
        },
        namespace,
      );
    }
  }

  // ---- job controller ----

  private syncJob(namespace: string, name: string, uid: string): void {
    const job = this.store.get(JOBS, namespace, name);
    if (!job || job.metadata.uid !== uid || job.metadata.deletionTimestamp || job.spec?.suspend) return;
    if (isFinished(job)) return;
    const pods = this.store.list(PODS, { namespace }).filter((p) => jobOwner(p)?.uid === uid);
    const tally = this.tally(uid);
    for (const pod of pods) {
      const phase = pod.status?.phase;
      if ((phase === "Succeeded" || phase === "Failed") && !tally.pods.has(pod.metadata.uid!)) {
        tally.pods.add(pod.metadata.uid!);
        if (phase === "Succeeded") tally.succeeded++;
        else tally.failed++;
      }
    }
    const active = pods.filter((p) => p.status?.phase === "Pending" || p.status?.phase === "Running");
    const ready = active.filter((p) => p.status?.phase === "Running").length;
    const completions = job.spec?.completions ?? 1;
    const backoffLimit = job.spec?.backoffLimit ?? 6;
    const now = timestamp();

    let conditions: Array<Record<string, string>> | undefined;
    let completionTime: string | undefined;
    if (tally.succeeded >= completions) {
      const done = {
        status: "True",
        lastProbeTime: now,
        lastTransitionTime: now,
        reason: "CompletionsReached",
        message: "Reached expected number of succeeded pods",
      };
      conditions = [
        { type: "SuccessCriteriaMet", ...done },
        { type: "Complete", ...done },
      ];
      completionTime = now;
    } else if (tally.failed > backoffLimit) {
      const failed = {
        status: "True",
        lastProbeTime: now,
        lastTransitionTime: now,
        reason: "BackoffLimitExceeded",
        message: "Job has reached the specified backoff limit",
      };
      conditions = [
        { type: "FailureTarget", ...failed },
        { type: "Failed", ...failed },
      ];
    }

    this.store.mutate(JOBS, namespace, name, (j) => {
      const status: Record<string, unknown> = {
        ...(j.status?.startTime ? { startTime: j.status.startTime } : { startTime: now }),
        ...(completionTime ? { completionTime } : {}),
        ...(active.length > 0 ? { active: active.length } : {}),
        ...(tally.succeeded > 0 ? { succeeded: tally.succeeded } : {}),
        ...(tally.failed > 0 ? { failed: tally.failed } : {}),
        ready,
        terminating: 0,
        uncountedTerminatedPods: {},
        ...(conditions ? { conditions } : {}),
      };
      j.status = status;
    });

    if (!conditions && active.length === 0) {
      // First pod at once; a replacement after a failure waits one step (the controller's backoff).
      this.later(tally.failed > 0 ? this.stepMs : 0, () => this.createJobPod(namespace, name, uid));
    }
  }

  private tally(jobUid: string): { succeeded: number; failed: number; pods: Set<string> } {
    let tally = this.counted.get(jobUid);
    if (!tally) {
      tally = { succeeded: 0, failed: 0, pods: new Set<string>() };
      this.counted.set(jobUid, tally);
    }
    return tally;
  }

  private createJobPod(namespace: string, name: string, uid: string): void {
    const job = this.store.get(JOBS, namespace, name);
    if (!job || job.metadata.uid !== uid || isFinished(job) || job.metadata.deletionTimestamp) return;
    if (this.store.list(PODS, { namespace }).some((p) => jobOwner(p)?.uid === uid && !isTerminal(p))) return;
    const template = job.spec?.template ?? {};
    const pod: KubeObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${name}-${randomSuffix()}`,
        generateName: `${name}-`,
        namespace,
        labels: { ...(template.metadata?.labels ?? {}) },
        ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
        ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name, uid, controller: true, blockOwnerDeletion: true }],
        finalizers: [JOB_TRACKING_FINALIZER],
      },
      spec: structuredClone(template.spec ?? {}),
    };
    try {
      this.store.create(PODS, pod, namespace);
    } catch {
      // e.g. the service account does not exist yet: the real controller records FailedCreate and retries.
      this.later(this.stepMs, () => this.createJobPod(namespace, name, uid));
    }
  }

  // ---- kubelet ----

  /** The scheduler: the node, or why not (PodScheduled False, Unschedulable, and a FailedScheduling event). */
  private schedulePod(namespace: string, name: string, uid: string): void {
    const current = this.store.get(PODS, namespace, name);
    if (!current || current.metadata.uid !== uid || current.metadata.deletionTimestamp || current.spec?.nodeName) {
      this.unscheduled.delete(uid);
      return;
    }
    const nodes = this.store.list(NODES);
    const decision = schedulingDecision(
      current,
      this.store.list(PERSISTENT_VOLUME_CLAIMS, { namespace }),
      this.store.list(STORAGE_CLASSES),
      nodes.length ? nodes : [sandboxNode()],
    );
    if (decision.kind !== "schedule") {
      this.unscheduled.set(uid, { namespace, name, uid });
      if (decision.kind === "provision") {
        for (const claimName of decision.claims) {
          const claim = this.store.get(PERSISTENT_VOLUME_CLAIMS, namespace, claimName);
          if (claim && !claim.metadata.annotations?.["volume.kubernetes.io/selected-node"]) {
            this.store.mutate(PERSISTENT_VOLUME_CLAIMS, namespace, claimName, (c) => {
              c.metadata.annotations = { ...(c.metadata.annotations ?? {}), "volume.kubernetes.io/selected-node": NODE_NAME };
            });
            this.later(this.options.stepMs ?? this.timing.of("volumeBinding"), () => this.bindClaim(claim));
          }
        }
        return;
      }
      const now = timestamp();
      const updated = this.store.mutate(PODS, namespace, name, (p) => {
        const before = (p.status?.conditions ?? []).find((c: any) => c.type === "PodScheduled");
        const same = before?.status === "False" && before?.message === decision.message;
        p.status = {
          ...(p.status ?? {}),
          phase: "Pending",
          conditions: [
            {
              type: "PodScheduled",
              status: "False",
              lastProbeTime: null,
              lastTransitionTime: same ? before.lastTransitionTime : now,
              reason: "Unschedulable",
              message: decision.message,
            },
          ],
        };
      });
      if (updated) this.recordEvent(updated, "Warning", "FailedScheduling", decision.message, "default-scheduler");
      return;
    }
    this.unscheduled.delete(uid);
    const now = timestamp();
    const pod = this.store.mutate(PODS, namespace, name, (p) => {
      if (p.metadata.uid !== uid) return;
      p.spec.nodeName = NODE_NAME;
      p.status = {
        ...p.status,
        phase: "Pending",
        conditions: [
          { type: "PodReadyToStartContainers", status: "False", lastProbeTime: null, lastTransitionTime: now },
          { type: "Initialized", status: "True", lastProbeTime: null, lastTransitionTime: now },
          {
            type: "Ready",
            status: "False",
            lastProbeTime: null,
            lastTransitionTime: now,
            reason: "ContainersNotReady",
            message: `containers with unready status: [${containerNames(p).join(" ")}]`,
          },
          {
            type: "ContainersReady",
            status: "False",
            lastProbeTime: null,
            lastTransitionTime: now,
            reason: "ContainersNotReady",
            message: `containers with unready status: [${containerNames(p).join(" ")}]`,
          },
          { type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: now },
        ],
        hostIP: NODE_IP,
        hostIPs: [{ ip: NODE_IP }],
        startTime: now,
        containerStatuses: containerNames(p).map((c) => ({
          name: c,
          state: { waiting: { reason: "ContainerCreating" } },
          lastState: {},
          ready: false,
          restartCount: 0,
          image: imageOf(p, c),
          imageID: "",
          started: false,
        })),
      };
    });
    if (pod?.metadata.uid === uid) {
      this.recordEvent(pod, "Normal", "Scheduled", `Successfully assigned ${namespace}/${name} to ${NODE_NAME}`, "default-scheduler");
      this.later(this.stepMs, () => this.startPod(namespace, name, uid));
    }
  }

  /** Why a volume of the pod does not mount (the kubelet's FailedMount message), undefined when all mount. */
  private mountProblem(pod: KubeObject): string | undefined {
    const namespace = pod.metadata.namespace!;
    for (const volume of pod.spec?.volumes ?? []) {
      const source = volume?.configMap ?? volume?.secret;
      if (!source || source.optional) continue;
      const kind = volume.configMap ? "configmap" : "secret";
      const sourceName = volume.configMap ? source.name : source.secretName;
      const object = volume.configMap ? this.store.get(CONFIG_MAPS, namespace, sourceName) : this.secret(namespace, sourceName);
      if (!object) return `MountVolume.SetUp failed for volume "${volume.name}" : ${kind} "${sourceName}" not found`;
      const keys = new Set([...Object.keys(object.data ?? {}), ...Object.keys(object.binaryData ?? {})]);
      const missing = (source.items ?? []).map((item: { key: string }) => item.key).find((key: string) => !keys.has(key));
      if (missing !== undefined)
        return `MountVolume.SetUp failed for volume "${volume.name}" : ${kind} references non-existent config key: ${missing}`;
    }
    return undefined;
  }

  private secret(namespace: string, name: string): KubeObject | undefined {
    return this.store
      .all()
      .find(
        (e) =>
          e.type.resource === "secrets" &&
          e.type.group === "" &&
          e.object.metadata.namespace === namespace &&
          e.object.metadata.name === name,
      )?.object;
  }

  /**
   * An event about `involved`, as the component records it: one Event object per (object, reason, message), its
   * count and lastTimestamp going up when it happens again.
   */
  recordEvent(involved: KubeObject, type: "Normal" | "Warning", reason: string, message: string, component: string): void {
    const namespace = involved.metadata.namespace ?? "default";
    const key = `${involved.metadata.uid}|${reason}|${message}`;
    const now = timestamp();
    const existing = this.recorded.get(key);
    if (
      existing &&
      this.store.mutate(EVENTS, namespace, existing, (e) => {
        e.count = (e.count ?? 1) + 1;
        e.lastTimestamp = now;
      })
    )
      return;
    const name = `${involved.metadata.name}.${Date.now().toString(16)}${randomSuffix(3)}`;
    try {
      this.store.create(
        EVENTS,
        {
          apiVersion: "v1",
          kind: "Event",
          metadata: { name, namespace },
          involvedObject: {
            kind: involved.kind,
            namespace,
            name: involved.metadata.name,
            uid: involved.metadata.uid,
            apiVersion: involved.apiVersion,
            resourceVersion: involved.metadata.resourceVersion,
          },
          reason,
          message,
          type,
          source: component === "kubelet" ? { component, host: NODE_NAME } : { component },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          reportingComponent: component,
          reportingInstance: component === "kubelet" ? NODE_NAME : "",
        },
        namespace,
      );
      this.recorded.set(key, name);
    } catch (error) {
      // A Terminating namespace takes no new events (as upstream's recorder drops them).
      if (!(error instanceof KubeStatusError)) throw error;
    }
  }

  private startPod(namespace: string, name: string, uid: string): void {
    const before = this.store.get(PODS, namespace, name);
    if (!before || before.metadata.uid !== uid || before.metadata.deletionTimestamp || before.status?.phase !== "Pending") {
      this.notMounted.delete(uid);
      return;
    }
    const mount = this.mountProblem(before);
    if (mount) {
      this.notMounted.set(uid, { namespace, name, uid });
      this.recordEvent(before, "Warning", "FailedMount", mount, "kubelet");
      return;
    }
    this.notMounted.delete(uid);
    if (!this.pullImages(before, 0)) return;
    const now = timestamp();
    const podIp = `10.0.2.${this.podIpCounter++ % 250}`;
    const pod = this.store.mutate(PODS, namespace, name, (p) => {
      if (p.metadata.uid !== uid || p.metadata.deletionTimestamp) return;
      p.status.phase = "Running";
      p.status.podIP = podIp;
      p.status.podIPs = [{ ip: podIp }];
      p.status.conditions = p.status.conditions.map((c: Record<string, unknown>) => ({
        type: c.type,
        status: "True",
        lastProbeTime: null,
        lastTransitionTime: now,
      }));
      p.status.containerStatuses = containerNames(p).map((c) => ({
        name: c,
        state: { running: { startedAt: now } },
        lastState: {},
        ready: true,
        restartCount: 0,
        image: imageOf(p, c),
        imageID: `${imageOf(p, c)}@sha256:${"0".repeat(64)}`,
        containerID: `containerd://${uid.replace(/-/g, "")}${c.length}`,
        started: true,
      }));
    });
    if (pod?.metadata.uid !== uid || pod.status?.phase !== "Running") return;
    const command = (pod.spec.containers ?? []).map((c: any) => [...(c.command ?? []), ...(c.args ?? [])].join(" ")).join("; ");
    this.logs.set(`${namespace}/${name}`, `[sandbox kubelet] ${now} started ${containerNames(pod).join(",")}: ${command}\n`);
    if (pod.spec.restartPolicy !== "Always") this.later(this.stepMs, () => this.finishPod(namespace, name, uid));
  }

  private finishPod(namespace: string, name: string, uid: string): void {
    const current = this.store.get(PODS, namespace, name);
    if (!current || current.metadata.uid !== uid || current.status?.phase !== "Running") return;
    const owner = jobOwner(current);
    const job = owner ? this.store.get(JOBS, namespace, owner.name) : undefined;
    const fails = job !== undefined && job.metadata.uid === owner!.uid && (this.options.failJobs?.(job) ?? false);
    const exitCode = fails ? 1 : 0;
    const reason = fails ? "Error" : "Completed";
    const now = timestamp();
    this.store.mutate(PODS, namespace, name, (p) => {
      // Its containers have exited: a pod being deleted has nothing left to wait for.
      if (p.metadata.deletionTimestamp) p.metadata.deletionGracePeriodSeconds = 0;
      p.status.phase = fails ? "Failed" : "Succeeded";
      p.status.conditions = p.status.conditions.map((c: Record<string, unknown>) =>
        c.type === "Ready" || c.type === "ContainersReady" || c.type === "PodReadyToStartContainers"
          ? {
              type: c.type,
              status: "False",
              lastProbeTime: null,
              lastTransitionTime: now,
              ...(c.type === "PodReadyToStartContainers" ? {} : { reason: fails ? "PodFailed" : "PodCompleted" }),
            }
          : c,
      );
      p.status.containerStatuses = (p.status.containerStatuses ?? []).map((s: any) => ({
        ...s,
        state: {
          terminated: { exitCode, reason, startedAt: s.state?.running?.startedAt ?? now, finishedAt: now, containerID: s.containerID },
        },
        ready: false,
        started: false,
      }));
    });
    const key = `${namespace}/${name}`;
    this.logs.set(key, `${this.logs.get(key) ?? ""}[sandbox kubelet] ${now} exited with code ${exitCode}\n`);
  }

  /**
   * A pod deleted while bound to the node: its containers get SIGTERM, and SIGKILL when the grace period has run
   * (the sandbox's containers take all of it); then the pod has ended (Failed, exit code 137) and, with no
   * finalizer left, is gone.
   */
  private stopGracefully(pod: KubeObject): void {
    const uid = pod.metadata.uid!;
    if (this.stopping.has(uid)) return;
    this.stopping.add(uid);
    const { namespace, name } = pod.metadata;
    // From when the kubelet sees it (deletionTimestamp has only second precision).
    this.later(this.timing.ms(pod.metadata.deletionGracePeriodSeconds ?? 0), () => {
      this.stopping.delete(uid);
      const now = timestamp();
      this.store.mutate(PODS, namespace, name!, (p) => {
        if (p.metadata.uid !== uid) return;
        p.metadata.deletionGracePeriodSeconds = 0;
        if (isTerminal(p)) return;
        p.status = { ...(p.status ?? {}), phase: "Failed" };
        p.status.conditions = (p.status.conditions ?? []).map((c: Record<string, unknown>) =>
          c.type === "Ready" || c.type === "ContainersReady" || c.type === "PodReadyToStartContainers"
            ? { ...c, status: "False", lastTransitionTime: now }
            : c,
        );
        p.status.containerStatuses = (p.status.containerStatuses ?? []).map((s: any) => ({
          ...s,
          state: {
            terminated: {
              exitCode: 137,
              reason: "Error",
              startedAt: s.state?.running?.startedAt ?? now,
              finishedAt: now,
              ...(s.containerID ? { containerID: s.containerID } : {}),
            },
          },
          ready: false,
          started: false,
        }));
      });
    });
  }

  /** The job controller lets go of a pod once its end is counted, or once it has no Job to count it for. */
  private releaseJobTracking(seen: KubeObject): void {
    const { namespace, name, uid } = seen.metadata;
    const pod = this.store.get(PODS, namespace, name!);
    if (!pod || pod.metadata.uid !== uid || !(pod.metadata.finalizers ?? []).includes(JOB_TRACKING_FINALIZER)) return;
    const owner = jobOwner(pod);
    const job = owner ? this.store.get(JOBS, namespace, owner.name) : undefined;
    const jobLive = job !== undefined && job.metadata.uid === owner!.uid && !job.metadata.deletionTimestamp;
    const stoppedOrNeverRan = pod.metadata.deletionTimestamp !== undefined && (pod.metadata.deletionGracePeriodSeconds ?? 0) === 0;
    if (jobLive && !isTerminal(pod) && !stoppedOrNeverRan) return;
    this.store.mutate(PODS, namespace, name!, (p) => {
      p.metadata.finalizers = (p.metadata.finalizers ?? []).filter((f: string) => f !== JOB_TRACKING_FINALIZER);
    });
  }

  /** The pvc-protection controller: a deleted claim that no pod still running (or starting) uses loses its finalizer. */
  private releaseClaims(namespace: string): void {
    const deleting = this.store
      .list(PERSISTENT_VOLUME_CLAIMS, { namespace })
      .filter((c) => c.metadata.deletionTimestamp && (c.metadata.finalizers ?? []).includes(PVC_PROTECTION_FINALIZER));
    if (deleting.length === 0) return;
    const inUse = new Set<string>();
    for (const pod of this.store.list(PODS, { namespace })) {
      if (isTerminal(pod)) continue;
      for (const v of pod.spec?.volumes ?? [])
        if (v?.persistentVolumeClaim?.claimName) inUse.add(String(v.persistentVolumeClaim.claimName));
    }
    for (const claim of deleting) {
      if (inUse.has(claim.metadata.name!)) continue;
      this.store.mutate(PERSISTENT_VOLUME_CLAIMS, namespace, claim.metadata.name!, (c) => {
        c.metadata.finalizers = (c.metadata.finalizers ?? []).filter((f: string) => f !== PVC_PROTECTION_FINALIZER);
      });
    }
  }

  /**
   * The kubelet's image pulls: true when every image is there. An image the registry does not have leaves its container
   * waiting ErrImagePull, then ImagePullBackOff after the back-off, and the pull is tried again (the back-off doubling
   * to 5 minutes); a reference that does not parse is InvalidImageName for good.
   */
  private pullImages(pod: KubeObject, attempt: number): boolean {
    const { namespace, name, uid } = pod.metadata;
    const failures = (pod.spec?.containers ?? [])
      .map((c: any) => ({ container: String(c.name), image: String(c.image ?? "") }))
      .filter((c: { image: string }) => !this.images.has(c.image));
    if (failures.length === 0) return true;
    for (const { container, image } of failures) {
      const ref = parseImage(image);
      if (!ref) {
        const message = `Failed to apply default image tag "${image}": couldn't parse image name "${image}": invalid reference format`;
        this.setWaiting(pod, container, "InvalidImageName", message);
        this.recordEvent(pod, "Warning", "InspectFailed", message, "kubelet");
        continue;
      }
      const why = `rpc error: code = NotFound desc = failed to pull and unpack image "${ref.canonical}": failed to resolve reference "${ref.canonical}": ${ref.canonical}: not found`;
      this.recordEvent(pod, "Normal", "Pulling", `Pulling image "${image}"`, "kubelet");
      this.recordEvent(pod, "Warning", "Failed", `Failed to pull image "${image}": ${why}`, "kubelet");
      this.recordEvent(pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet");
      this.setWaiting(pod, container, "ErrImagePull", why);
    }
    if (failures.every((f: { image: string }) => parseImage(f.image) === undefined)) return false;
    const backOffMs = Math.min(this.timing.ms(300), this.timing.of("imagePullBackOff") * 2 ** attempt);
    this.later(backOffMs, () => {
      const current = this.store.get(PODS, namespace, name!);
      if (!current || current.metadata.uid !== uid || current.metadata.deletionTimestamp || current.status?.phase !== "Pending") return;
      for (const { container, image } of failures) {
        if (!parseImage(image) || this.images.has(image)) continue;
        this.setWaiting(current, container, "ImagePullBackOff", `Back-off pulling image "${image}"`);
        this.recordEvent(current, "Normal", "BackOff", `Back-off pulling image "${image}"`, "kubelet");
        this.recordEvent(current, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet");
      }
      this.later(backOffMs, () => {
        const again = this.store.get(PODS, namespace, name!);
        if (!again || again.metadata.uid !== uid || again.metadata.deletionTimestamp || again.status?.phase !== "Pending") return;
        if (this.pullImages(again, attempt + 1)) this.startPod(namespace!, name!, uid!);
      });
    });
    return false;
  }

  private setWaiting(pod: KubeObject, container: string, reason: string, message: string): void {
    this.store.mutate(PODS, pod.metadata.namespace, pod.metadata.name!, (p) => {
      if (p.metadata.uid !== pod.metadata.uid) return;
      p.status.containerStatuses = (p.status.containerStatuses ?? []).map((s: any) =>
        s.name === container ? { ...s, state: { waiting: { reason, message } } } : s,
      );
    });
  }

  // ---- volume binder ----

  /**
   * The PV controller and the external provisioners: a claim whose class cannot serve it stays Pending with the
   * provisioner's event; an Immediate class binds after the volume binding time; a WaitForFirstConsumer class waits for
   * the scheduler to place a pod that uses it.
   */
  private provisionClaim(created: KubeObject): void {
    const { namespace, name, uid } = created.metadata;
    const claim = this.store.get(PERSISTENT_VOLUME_CLAIMS, namespace, name!);
    if (!claim || claim.metadata.uid !== uid || claim.status?.phase !== "Pending" || claim.metadata.deletionTimestamp) return;
    const classes = this.store.list(STORAGE_CLASSES);
    const className = classNameOf(claim, classes);
    const storageClass = classes.find((c) => c.metadata.name === className);
    const problem = provisioningProblem(claim, className, storageClass);
    const component = storageClass ? String(storageClass.provisioner) : "persistentvolume-controller";
    if (problem) {
      this.recordEvent(
        claim,
        problem.type,
        problem.reason,
        problem.message,
        problem.reason === "FailedBinding" ? "persistentvolume-controller" : component,
      );
      return;
    }
    if (storageClass?.volumeBindingMode === "WaitForFirstConsumer") {
      this.recordEvent(
        claim,
        "Normal",
        "WaitForFirstConsumer",
        "waiting for first consumer to be created before binding",
        "persistentvolume-controller",
      );
      return;
    }
    this.later(this.options.stepMs ?? this.timing.of("volumeBinding"), () => this.bindClaim(claim));
  }

  private bindClaim(created: KubeObject): void {
    const { namespace, name, uid } = created.metadata;
    this.store.mutate(PERSISTENT_VOLUME_CLAIMS, namespace, name!, (c) => {
      if (c.metadata.uid !== uid || c.status?.phase !== "Pending") return;
      c.metadata.annotations = {
        ...(c.metadata.annotations ?? {}),
        "pv.kubernetes.io/bind-completed": "yes",
        "pv.kubernetes.io/bound-by-controller": "yes",
      };
      c.spec.volumeName = `pvc-${uid}`;
      c.status = { phase: "Bound", accessModes: c.spec.accessModes, capacity: { storage: c.spec.resources?.requests?.storage } };
    });
  }
}

function jobOwner(pod: KubeObject): { name: string; uid: string } | undefined {
  const ref = (pod.metadata.ownerReferences ?? []).find((r) => r.kind === "Job" && r.apiVersion === "batch/v1" && r.controller);
  return ref ? { name: ref.name, uid: ref.uid } : undefined;
}

/** The pod has ended: Succeeded or Failed. */
export function isTerminal(pod: KubeObject): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

/** The Job has ended: a Complete or Failed condition that is True. */
export function isFinished(job: KubeObject): boolean {
  return (job.status?.conditions ?? []).some((c: any) => (c.type === "Complete" || c.type === "Failed") && c.status === "True");
}

function containerNames(pod: KubeObject): string[] {
  return (pod.spec?.containers ?? []).map((c: any) => String(c.name));
}

function imageOf(pod: KubeObject, container: string): string {
  return String((pod.spec?.containers ?? []).find((c: any) => c.name === container)?.image ?? "");
}
