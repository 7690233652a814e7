/**
 * The ways in, in the sandbox: POST /provision (refusals start nothing), GET /executions/{id} (404,
 * progress while a run is under way, every step's result at the end), a ComputeEnvironmentRequested
 * event put on the bus with the real EventBridgeClient, and kubectl with the kubeconfig the sandbox writes.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { ListExecutionsCommand, type ExecutionListItem, type SFNClient } from "@aws-sdk/client-sfn";
import type { Sandbox } from "../../local/sandbox.js";
import {
  CLUSTER,
  FAST,
  finish,
  getStatus,
  HAS_KUBECTL,
  holdKubeCreates,
  KUBECTL,
  postProvision,
  pvcRequest,
  settled,
  until,
  useSandbox,
  type Run,
} from "../support/sandbox-runs.js";

const run = promisify(execFile);
const ONBOARDING_EVENT = JSON.parse(readFileSync(new URL("../../examples/onboarding-event.json", import.meta.url), "utf8"));

describe("entry points", () => {
  let sandbox: Sandbox;
  let stateDir: string;
  let sfn: SFNClient;
  /** the run the onboarding event started (tenant imaging in tower-nf), for kubectl */
  let onboarded: Run | undefined;
  let release: (() => void) | undefined;

  const executions = async (): Promise<ExecutionListItem[]> =>
    (await sfn.send(new ListExecutionsCommand({ stateMachineArn: sandbox.stateMachineArn, maxResults: 1000 }))).executions ?? [];

  // Registered first: the state directory is made before the sandbox starts and removed after it closed.
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "nf-eks-sandbox-"));
  });
  afterAll(async () => {
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });
  useSandbox(
    () => ({ ...FAST, stateDir }),
    (started) => ({ sandbox, sfn } = started),
  );
  afterEach(() => {
    release?.();
    release = undefined;
  });

  describe("POST /provision", () => {
    it("answers 400 with every problem of an invalid body, and starts nothing", async () => {
      // Prepare
      await settled(sandbox);
      const before = sandbox.snapshot();
      const body = {
        tenant: "Genomics_Lab",
        cluster: { name: "research", region: "mars-1" },
        namespace: "kube-system",
        storage: { type: "nfs" },
        headJob: { pipeline: "-rf /", cpu: "lots" },
        labels: { "kubernetes.io/owner": "x" },
        extra: true,
      };

      // Act
      const answer = await postProvision(sandbox, body);
      const notJson = await postProvision(sandbox, "{ not json");

      // Assess
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe("InvalidRequest");
      const paths = (answer.body.problems as Array<{ path: string; message: string }>).map((p) => p.path);
      for (const path of [
        "tenant",
        "cluster.region",
        "namespace",
        "storage.type",
        "headJob.pipeline",
        "headJob.cpu",
        "labels.kubernetes.io/owner",
        "",
      ]) {
        expect(paths, path).toContain(path);
      }
      expect(notJson).toMatchObject({ status: 400, body: { error: "InvalidJson" } });
      expect(await executions()).toEqual([]);
      expect(sandbox.snapshot()).toStrictEqual(before);
    });

    it("answers 403 for a cluster not on the allowlist, and starts nothing", async () => {
      // Act
      const answer = await postProvision(sandbox, pvcRequest("genomics", { cluster: { name: "production", region: "eu-west-1" } }));

      // Assess
      expect(answer.status).toBe(403);
      expect(answer.body).toMatchObject({ error: "NotAllowed", problems: [{ path: "cluster" }] });
      expect(answer.body.problems[0].message).toContain("production");
      expect(await executions()).toEqual([]);
    });
  });

  describe("EventBridge", () => {
    it("a ComputeEnvironmentRequested event put on the bus starts a run that succeeds", async () => {
      // Prepare: examples/onboarding-event.json, sent as the onboarding system would
      const events = new EventBridgeClient({ region: CLUSTER.region, endpoint: sandbox.awsUrl });

      // Act
      const put = await events.send(new PutEventsCommand({ Entries: ONBOARDING_EVENT }));
      events.destroy();
      let execution: ExecutionListItem | undefined;
      await until("the bus rule to start the run", async () => {
        execution = (await executions()).find((e) => e.name?.startsWith("imaging_"));
        return execution !== undefined;
      });
      const result = await finish(sandbox, { executionArn: execution!.executionArn!, executionName: execution!.name!, statusUrl: "" });
      onboarded = result;

      // Assess: the event id is the idempotency key, the run succeeded and reported back on the bus
      expect(put.FailedEntryCount).toBe(0);
      expect(execution!.name).toBe(`imaging_event-${put.Entries![0]!.EventId}`);
      expect(result.execution.status).toBe("SUCCEEDED");
      const ready = sandbox.aws
        .events({ detailType: "ComputeEnvironmentReady" })
        .find((e) => (e.detail as { tenant?: string }).tenant === "imaging");
      expect(ready?.detail).toMatchObject({ namespace: "tower-nf", claim: "tower-scratch", execution: { name: execution!.name } });
    });
  });

  describe("GET /executions/{id}", () => {
    it("answers 404 for an execution that does not exist", async () => {
      // Act
      const byName = await getStatus(sandbox, "genomics-20250101T000000Z-deadbeef");
      const byArn = await getStatus(sandbox, `${sandbox.stateMachineArn.replace(":stateMachine:", ":execution:")}:nobody`);

      // Assess
      expect(byName).toMatchObject({ status: 404, body: { error: "ExecutionNotFound" } });
      expect(byArn).toMatchObject({ status: 404, body: { error: "ExecutionNotFound" } });
    });

    it("shows the current step while a run is under way, and every step's result at the end", async () => {
      // Prepare: the PVC create is held until the test has looked at the run in ConfigureStorage
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      release = holdKubeCreates("PersistentVolumeClaim", () => gate);
      const started = await postProvision(sandbox, pvcRequest("genomics", { namespace: "genomics" }));
      expect(started.status).toBe(202);
      expect(started.body.statusUrl).toBe(`/executions/${started.body.executionName}`);

      // Act: watch it as a client would
      let during: any;
      await until("the run to be in ConfigureStorage", async () => {
        during = (await getStatus(sandbox, started.body.executionName)).body;
        return during.currentStep === "ConfigureStorage";
      });
      open();
      const watched = await finish(sandbox, started.body);
      const byArn = await getStatus(sandbox, started.body.executionArn);

      // Assess: during the run
      expect(during).toMatchObject({ status: "RUNNING", name: started.body.executionName, currentStep: "ConfigureStorage" });
      expect(during.stopDate).toBeUndefined();
      expect(during.steps.map((s: { name: string; status: string }) => [s.name, s.status])).toEqual([
        ["ResolveCluster", "succeeded"],
        ["CreateIamResources", "succeeded"],
        ["CreateNamespaceAndRbac", "succeeded"],
        ["GrantClusterAccess", "succeeded"],
        ["ConfigureStorage", "running"],
      ]);

      // Assess: at the end, by name and by ARN alike
      const view = watched.view;
      expect(view).toMatchObject({ status: "SUCCEEDED", retries: 0 });
      expect(view.currentStep).toBeUndefined();
      expect(byArn.body).toEqual(view);
      const results = Object.fromEntries(view.steps.map((s) => [s.name, s.result as any]));
      expect(Object.keys(results)).toEqual([
        "ResolveCluster",
        "CreateIamResources",
        "CreateNamespaceAndRbac",
        "GrantClusterAccess",
        "ConfigureStorage",
        "Report",
      ]);
      expect(view.steps.every((s) => s.status === "succeeded" && s.finishedAt)).toBe(true);
      expect(results.ResolveCluster).toMatchObject({
        name: "research",
        region: "eu-west-1",
        endpoint: sandbox.kubeUrl,
        authenticationMode: "API_AND_CONFIG_MAP",
      });
      expect(results.CreateIamResources).toMatchObject({
        launcherArn: "arn:aws:iam::111122223333:role/nf-eks-provisioner/nfeks-genomics.research-launcher",
        launcherCreated: true,
      });
      expect(results.CreateNamespaceAndRbac).toMatchObject({
        namespace: "genomics",
        serviceAccount: "tower-launcher-sa",
        role: "tower-launcher-role",
      });
      expect(results.GrantClusterAccess).toMatchObject({ method: "access-entry", username: "tower-launcher-user-genomics" });
      expect(results.ConfigureStorage).toMatchObject({ type: "pvc", claimName: "tower-scratch", configMap: "nextflow-config" });
      expect(results.Report).toMatchObject({ eventBusName: "nf-eks-provisioner", detail: { tenant: "genomics" } });
    });
  });

  describe("kubectl with the sandbox's kubeconfig", () => {
    const kubectl = async (...args: string[]) => {
      const { stdout } = await run(KUBECTL, args, {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: stateDir, KUBECONFIG: sandbox.files.kubeconfig! },
        timeout: 20_000,
      });
      return stdout;
    };

    it("lists namespaces and the tenant's RoleBindings, and describes a provisioned object", async (ctx) => {
      ctx.skip(!HAS_KUBECTL, `${KUBECTL} is not installed`);
      // Prepare: the onboarding event's run provisioned tenant imaging in tower-nf
      expect(onboarded?.execution.status).toBe("SUCCEEDED");
      expect(existsSync(sandbox.files.kubeconfig!)).toBe(true);

      // Act
      const [namespaces, bindings, described] = await Promise.all([
        kubectl("get", "ns", "-o", "name"),
        kubectl("get", "rolebinding", "-n", "tower-nf"),
        kubectl("describe", "rolebinding", "tower-launcher-user-imaging-binding", "-n", "tower-nf"),
      ]);

      // Assess
      expect(namespaces.split("\n")).toEqual(expect.arrayContaining(["namespace/default", "namespace/kube-system", "namespace/tower-nf"]));
      expect(bindings).toMatch(/^NAME\s+ROLE\s+AGE/);
      expect(bindings).toMatch(/tower-launcher-sa-binding\s+Role\/tower-launcher-role/);
      expect(bindings).toMatch(/tower-launcher-user-imaging-binding\s+Role\/tower-launcher-role/);
      expect(described).toMatch(/Name:\s+tower-launcher-user-imaging-binding/);
      expect(described).toMatch(/nf-eks-provisioner\/tenant=imaging/);
      expect(described).toMatch(/User\s+tower-launcher-user-imaging\s/);
    });
  });
});
