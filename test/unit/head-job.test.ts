import { describe, expect, it } from "vitest";
import type { V1ConfigMap, V1Job } from "@kubernetes/client-node";
import * as headJobStep from "../../functions/steps/head-job.js";
import { createHeadJobStep } from "../../functions/steps/head-job.js";
import { headJobName } from "../../functions/lib/domain/manifests.js";
import { ownershipLabels } from "../../functions/lib/domain/naming.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { NS, OTHER_RUN, RUN, markOf } from "../support/fixtures.js";
import { JOB, launched, PARAMS, stateFor, useHeadJobCluster } from "../support/head-job-cluster.js";

/* LaunchHeadJob and UndoHeadJob: what the step creates and how it is undone (CheckHeadJob: head-job-check.test.ts). */

const { kube, apply, compensate, job, paramsConfigMap, podOf } = useHeadJobCluster();

describe("createHeadJobStep", () => {
  it("acts on the cluster client it is given, not on the one built from $.cluster", async () => {
    // Prepare
    const given = new FakeKubeApi();
    const step = createHeadJobStep({ kube: given });
    // Act
    const headJob = await step.apply(stateFor());
    const checked = await step.check(stateFor({}, RUN, { headJob }));
    // Assess
    expect(given.inventory()).toEqual([`ConfigMap/${NS}/${PARAMS}`, `Job/${NS}/${JOB}`]);
    expect(checked).toMatchObject({ jobName: JOB, checks: 1 });
    expect(kube().calls).toEqual([]);
    // Act
    await step.compensate(stateFor({}, RUN, { headJob }));
    // Assess
    expect(given.inventory()).toEqual([]);
    expect(kube().calls).toEqual([]);
  });

  it("exports the catalog's handlers, which build their client from $.cluster on each call", async () => {
    // Act
    const headJob = await headJobStep.apply(stateFor());
    const checked = await headJobStep.check(stateFor({}, RUN, { headJob }));
    // Assess
    expect(kube().inventory()).toEqual([`ConfigMap/${NS}/${PARAMS}`, `Job/${NS}/${JOB}`]);
    expect(checked).toMatchObject({ jobName: JOB, checks: 1 });
    // Act
    await headJobStep.compensate(stateFor({}, RUN, { headJob }));
    // Assess
    expect(kube().inventory()).toEqual([]);
  });
});

describe("LaunchHeadJob", () => {
  it("creates the Nextflow Job under a name derived from tenant and execution", async () => {
    // Prepare
    const state = stateFor({ params: { input: "s3://bucket/samples.csv" } });
    // Act
    const result = await apply(state);
    // Assess
    expect(result).toEqual(launched());
    expect(JOB).toMatch(/^nf-head-genomics-[0-9a-f]{8}$/);
    const created = job()!;
    expect(created.metadata?.labels).toMatchObject(ownershipLabels("genomics", markOf(RUN)));
    const container = created.spec?.template.spec?.containers[0];
    expect(container?.command).toEqual(["nextflow"]);
    expect(container?.args?.slice(0, 6)).toEqual(["run", "nf-core/rnaseq", "-r", "3.14.0", "-profile", "test,docker"]);
    expect(created.spec?.template.spec?.serviceAccountName).toBe("tower-launcher-sa");
    expect(created.spec?.template.metadata?.labels?.["job-name"]).toBe(JOB);
  });

  it("puts the params in the job's own ConfigMap, created before the Job and mounted next to the shared nextflow.config", async () => {
    // Prepare
    const state = stateFor({ params: { input: "s3://bucket/samples.csv", outdir: "/scratch/results" } });
    // Act
    await apply(state);
    // Assess
    const params = paramsConfigMap()!;
    expect(params.metadata?.labels).toMatchObject(ownershipLabels("genomics", markOf(RUN)));
    expect(JSON.parse(params.data?.["params.json"] ?? "")).toEqual({ input: "s3://bucket/samples.csv", outdir: "/scratch/results" });
    const creates = kube()
      .callsOf("create")
      .map((c) => `${c.kind}/${c.name}`);
    expect(creates).toEqual([`ConfigMap/${PARAMS}`, `Job/${JOB}`]);
    const pod = job()!.spec!.template.spec!;
    expect(pod.volumes?.[0]?.projected?.sources?.map((source) => source.configMap?.name)).toEqual(["nextflow-config", PARAMS]);
    expect(pod.containers[0]?.args).toContain("/etc/nextflow/params.json");
  });

  it("does not let another run's launch rewrite this run's params", async () => {
    // Prepare
    await apply(stateFor({ params: { genome: "GRCh38" } }));
    // Act
    await apply(stateFor({ params: { genome: "GRCm39" } }, OTHER_RUN));
    // Assess
    expect(JSON.parse(paramsConfigMap()!.data!["params.json"]!)).toEqual({ genome: "GRCh38" });
    const other = kube().get<V1ConfigMap>("v1", "ConfigMap", `${headJobName("genomics", markOf(OTHER_RUN))}-params`, NS)!;
    expect(JSON.parse(other.data!["params.json"]!)).toEqual({ genome: "GRCm39" });
  });

  it("refuses a params ConfigMap of that name another execution made, before creating the Job", async () => {
    // Prepare
    kube().seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: PARAMS, namespace: NS, labels: ownershipLabels("genomics", markOf(OTHER_RUN)) },
      data: { "params.json": "{}" },
    });
    // Act
    const outcome = apply(stateFor());
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: "OwnershipConflict",
      message: expect.stringContaining(`ConfigMap ${NS}/${PARAMS}`),
    });
    expect(job()).toBeUndefined();
  });

  it("finds its own Job when retried, without creating another", async () => {
    // Prepare
    await apply(stateFor());
    const mutations = kube().mutations;
    // Act
    const again = await apply(stateFor());
    // Assess
    expect(again).toEqual(launched());
    expect(kube().mutations).toBe(mutations);
    expect(kube().all("Job")).toHaveLength(1);
    expect(kube().all("ConfigMap")).toHaveLength(1);
  });

  it("refuses a Job of that name another execution made", async () => {
    // Prepare
    kube().seed({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: JOB, namespace: NS, labels: ownershipLabels("genomics", markOf(OTHER_RUN)) },
    });
    // Act
    const outcome = apply(stateFor());
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining(`Job ${NS}/${JOB}`) });
  });

  it("refuses a Job of that name without our marks", async () => {
    // Prepare
    kube().seed({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS } });
    // Act
    const outcome = apply(stateFor());
    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "OwnershipConflict" });
  });

  it("a different execution launches a different Job", async () => {
    // Prepare
    await apply(stateFor({}, OTHER_RUN));
    // Act
    const result = await apply(stateFor());
    // Assess
    expect(result.jobName).toBe(JOB);
    expect(
      kube()
        .all("Job")
        .map((j) => j.metadata?.name)
        .sort(),
    ).toEqual([JOB, headJobName("genomics", markOf(OTHER_RUN))].sort());
  });
});

describe("UndoHeadJob", () => {
  it("deletes the Job with cascading propagation and its pods, and can run twice", async () => {
    // Prepare
    const headJob = await apply(stateFor());
    podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    const otherJob = await apply(stateFor({}, OTHER_RUN));
    const otherOwner = kube().get<V1Job>("batch/v1", "Job", otherJob.jobName, NS)!;
    podOf(otherOwner, `${otherJob.jobName}-zzzzz`, { phase: "Running" });
    // Act
    const first = await compensate(stateFor({}, RUN, { headJob }));
    const second = await compensate(stateFor({}, RUN, { headJob }));
    // Assess
    expect(first.undone).toContain(`Job ${NS}/${JOB}`);
    expect(first.undone.at(-1)).toBe(`ConfigMap ${NS}/${PARAMS}`);
    expect(
      kube()
        .all("ConfigMap")
        .map((c) => c.metadata?.name),
    ).toEqual([`${otherJob.jobName}-params`]);
    expect(
      kube()
        .callsOf("delete", "Job")
        .map((c) => c.propagationPolicy),
    ).toEqual([expect.stringMatching(/^(Background|Foreground)$/)]);
    expect(
      kube()
        .all("Pod")
        .map((p) => p.metadata?.name),
    ).toEqual([`${otherJob.jobName}-zzzzz`]);
    expect(
      kube()
        .all("Job")
        .map((j) => j.metadata?.name),
    ).toEqual([otherJob.jobName]);
    expect(second).toEqual({ undone: [], kept: [] });
  });

  it("deletes pods left behind by an orphaning delete", async () => {
    // Prepare
    await apply(stateFor());
    const pod = podOf(job()!, `${JOB}-abcde`, { phase: "Running" });
    // The Job is already gone (someone deleted it without propagation), its pod is orphaned.
    await kube().delete({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS } });
    expect(kube().get("v1", "Pod", pod.metadata!.name!, NS)).toBeDefined();
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result.undone).toEqual([`Pod ${NS}/${JOB}-abcde`, `ConfigMap ${NS}/${PARAMS}`]);
    expect(kube().all("Pod")).toEqual([]);
  });

  it("finds the Job by its derived name after a half-way failure ($.headJob empty)", async () => {
    // Prepare: the Job was created but the step's answer was lost (the Lambda timed out after the POST).
    await apply(stateFor());
    const state = stateFor();
    expect(state.headJob).toBeUndefined();
    // Act
    const result = await compensate(state);
    // Assess
    expect(result.undone).toEqual([`Job ${NS}/${JOB}`, `ConfigMap ${NS}/${PARAMS}`]);
    expect(job()).toBeUndefined();
    expect(paramsConfigMap()).toBeUndefined();
  });

  it("keeps a Job and a params ConfigMap of those names it did not create", async () => {
    // Prepare
    kube().seed({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: JOB, namespace: NS, labels: ownershipLabels("genomics", markOf(OTHER_RUN)) },
    });
    kube().seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: PARAMS, namespace: NS, labels: ownershipLabels("genomics", markOf(OTHER_RUN)) },
    });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result).toEqual({
      undone: [],
      kept: [`Job ${NS}/${JOB}: not created by this run`, `ConfigMap ${NS}/${PARAMS}: not created by this run`],
    });
    expect(job()).toBeDefined();
    expect(paramsConfigMap()).toBeDefined();
  });

  it("deletes the params ConfigMap when the launch failed before the Job was created", async () => {
    // Prepare: the ConfigMap was created, then the Job's create failed for good.
    kube().seed({ apiVersion: "batch/v1", kind: "Job", metadata: { name: JOB, namespace: NS } });
    await expect(apply(stateFor())).rejects.toMatchObject({ name: "OwnershipConflict" });
    expect(paramsConfigMap()).toBeDefined();
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(result).toEqual({ undone: [`ConfigMap ${NS}/${PARAMS}`], kept: [`Job ${NS}/${JOB}: not created by this run`] });
    expect(paramsConfigMap()).toBeUndefined();
  });

  it("leaves a pod carrying the Job's name label that this run did not create", async () => {
    // Prepare
    await apply(stateFor());
    kube().seed({ apiVersion: "v1", kind: "Pod", metadata: { name: "lookalike", namespace: NS, labels: { "job-name": JOB } } });
    // Act
    const result = await compensate(stateFor());
    // Assess
    expect(
      kube()
        .all("Pod")
        .map((p) => p.metadata?.name),
    ).toEqual(["lookalike"]);
    expect(result).toEqual({
      undone: [`Job ${NS}/${JOB}`, `ConfigMap ${NS}/${PARAMS}`],
      kept: [`Pod ${NS}/lookalike: not created by this run`],
    });
  });

  it("does nothing when the request has no head job", async () => {
    // Prepare
    const state = stateFor(null);
    expect(state.request.headJob).toBeUndefined();
    // Act
    const result = await compensate(state);
    // Assess
    expect(result).toEqual({ undone: [], kept: [] });
    expect(kube().calls).toEqual([]);
  });
});
