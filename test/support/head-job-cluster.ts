/**
 * What the head-job tests share: a clock fixed at the launch, a fresh fake cluster in each test handed to
 * the step through createHeadJobStep, this run's Job and params names, and the objects the tests build
 * or read there.
 */
import { afterEach, beforeEach, vi } from "vitest";
import type { V1ConfigMap, V1ContainerStatus, V1Job, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { createHeadJobStep } from "../../functions/steps/head-job.js";
import { headJobName } from "../../functions/lib/domain/manifests.js";
import type { HeadJobResult, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { NS, RUN, resolvedCluster, stepState, useFakeKube, markOf } from "./fixtures.js";

export const JOB = headJobName("genomics", markOf(RUN));
export const PARAMS = `${JOB}-params`;
/** The launch time: the clock is fixed there, and tests move it on. */
export const T0 = new Date("2025-01-01T00:00:00Z");

/** Move the clock to this many minutes after the launch. */
export function minutesAfterLaunch(minutes: number): void {
  vi.setSystemTime(T0.getTime() + minutes * 60_000);
}

export function stateFor(
  headJob: Record<string, unknown> | null = {},
  executionName = RUN,
  extra: Partial<WorkflowState> = {},
): WorkflowState {
  const request = headJob ? { headJob: { pipeline: "nf-core/rnaseq", revision: "3.14.0", profiles: ["test", "docker"], ...headJob } } : {};
  return stepState(request, executionName, { cluster: resolvedCluster(), ...extra });
}

export function launched(checks = 0, extra: Partial<HeadJobResult> = {}): HeadJobResult {
  return {
    jobName: JOB,
    namespace: NS,
    phase: "Pending",
    done: false,
    checks,
    launchedAt: T0.toISOString(),
    nextCheckSeconds: 10,
    paramsConfigMap: PARAMS,
    ...extra,
  };
}

export function waiting(reason: string, message?: string): V1ContainerStatus[] {
  return [
    {
      name: "nextflow",
      image: "nextflow/nextflow:24.10.4",
      imageID: "",
      ready: false,
      restartCount: 0,
      state: { waiting: { reason, ...(message ? { message } : {}) } },
    },
  ];
}

/**
 * Call once at the top of a test file: fixes the clock at T0 and gives each test a fresh fake cluster.
 * Returns the step's handlers (handed that cluster through the factory) and helpers that read and seed it.
 */
export function useHeadJobCluster() {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(T0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const kube = useFakeKube();
  const step = () => createHeadJobStep({ kube: kube() });

  /** A pod as the Job controller makes it: the template's labels, owned by the Job. */
  function podOf(owner: V1Job, name: string, status: V1PodStatus, created = "2025-01-01T00:01:00Z"): V1Pod {
    return kube().seed<V1Pod>({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: NS,
        labels: { ...owner.spec?.template.metadata?.labels },
        creationTimestamp: new Date(created),
        ownerReferences: [
          { apiVersion: "batch/v1", kind: "Job", name: owner.metadata!.name!, uid: owner.metadata!.uid!, controller: true },
        ],
      },
      spec: { containers: [{ name: "nextflow", image: "nextflow/nextflow:24.10.4" }] },
      status,
    });
  }

  return {
    kube,
    apply: (state: WorkflowState) => step().apply(state),
    check: (state: WorkflowState) => step().check(state),
    compensate: (state: WorkflowState) => step().compensate(state),
    job: () => kube().get<V1Job>("batch/v1", "Job", JOB, NS),
    paramsConfigMap: () => kube().get<V1ConfigMap>("v1", "ConfigMap", PARAMS, NS),
    podOf,
  };
}
