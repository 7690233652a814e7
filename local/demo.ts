/**
 * `npm run demo`: one provisioning run, watched the way an operator watches the Step Functions console.
 * Posts an example request to the sandbox's HTTP API, prints each step as it finishes (with retries and
 * errors), then asks the emulated AWS account and cluster, through the real clients, what now exists.
 * Without a running sandbox (`npm start`), it starts one in this process for the length of the demo.
 * `--teardown`: the environment is created (POST /environments), then torn down (DELETE), and both runs narrated.
 * `--update`: the environment is created (POST /environments), then given a changed spec (PUT: a compute service
 * account of its own), and the update run narrated with the record's generation before and after.
 */
import { readFileSync } from "node:fs";
import { DescribeClusterCommand, ListAccessEntriesCommand, DescribeAccessEntryCommand } from "@aws-sdk/client-eks";
import { GetRoleCommand, ListRolesCommand } from "@aws-sdk/client-iam";
import { eksClient, iamClient, resetClients } from "../functions/lib/aws/clients.js";
import { kubeClientFor, resetKubeClients } from "../functions/lib/kube/kube-client.js";
import { parseAwsAuth } from "../functions/lib/kube/aws-auth/index.js";
import { LABEL_TENANT, launcherGroup, launcherUsername, NEXTFLOW_CONFIGMAP } from "../functions/lib/domain/naming.js";
import { toResolvedCluster } from "../functions/steps/resolve-cluster.js";
import type { StepSummary } from "../functions/lib/workflow/execution-summary.js";
import type { ExecutionStatusView } from "../functions/api/status.js";
import { readSandboxEnv } from "./sandbox-env.js";

type StatusBody = ExecutionStatusView;

const POLL_MS = 250;
const TIMEOUT_MS = 5 * 60_000;

async function reachable(apiUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${apiUrl}/executions/probe`, { signal: AbortSignal.timeout(1_500) });
    return res.status < 500;
  } catch {
    return false;
  }
}

/** One line per finished step: what it did, in the runbook's words. */
function describeResult(step: StepSummary): string {
  const r = (step.result ?? {}) as Record<string, any>;
  switch (step.name) {
    case "ResolveCluster":
      return `cluster ${r.name} (${r.version}, ${r.authenticationMode}) at ${r.endpoint}`;
    case "CreateIamResources":
      return `launcher ${r.launcherArn}${r.workloadRoleArn ? `, workload role ${r.workloadRoleArn}` : ""}${r.created?.length ? ` (created ${r.created.length})` : " (nothing new)"}`;
    case "CreateNamespaceAndRbac":
      return `namespace ${r.namespace}: ${(r.created ?? []).map((o: { kind: string; name: string }) => `${o.kind}/${o.name}`).join(", ") || "all adopted"}`;
    case "GrantClusterAccess":
      return `${r.method} ${r.principalArn} → user ${r.username}, groups ${(r.groups ?? []).join(",")}${r.created ? "" : " (already there)"}`;
    case "ConfigureStorage":
      return r.type === "pvc"
        ? `PVC ${r.claimName} mounted at ${r.mountPath}; ConfigMap ${r.configMap}`
        : `Fusion: annotated ${(r.annotated ?? []).map((a: { serviceAccount: string }) => a.serviceAccount).join(", ")}; ConfigMap ${r.configMap}`;
    case "LaunchHeadJob":
    case "CheckHeadJob":
      return `job ${r.jobName}: ${r.phase}${r.podName ? ` (pod ${r.podName})` : ""}`;
    case "Report":
      return `ComputeEnvironmentReady sent to ${r.eventBusName ?? "the bus"}`;
    case "ReportFailure":
      return "ComputeEnvironmentFailed sent to the bus";
    case "WaitForNamespaceRemoval":
      return r.gone ? `namespace ${r.namespace} is gone` : `namespace ${r.namespace} kept`;
    case "RecordRemoval":
      return `recorded ${r.status}${r.kept?.length ? `; kept: ${r.kept.join(", ")}` : ""}${r.remaining?.length ? `; remaining: ${r.remaining.join("; ")}` : ""}`;
    default:
      if (step.name.startsWith("Remove"))
        return `removed: ${(r.undone ?? []).join(", ") || "nothing"}${r.failed?.length ? `; could not: ${r.failed.join("; ")}` : ""}`;
      return step.name.startsWith("Undo") ? `undone: ${(r.undone ?? []).join(", ") || "nothing"}` : "";
  }
}

async function watch(apiUrl: string, name: string): Promise<StatusBody> {
  const printed = new Map<string, number>();
  const deadline = Date.now() + TIMEOUT_MS;
  let lastCurrent: string | undefined;
  for (;;) {
    const res = await fetch(`${apiUrl}/executions/${encodeURIComponent(name)}`);
    const body = (await res.json()) as StatusBody;
    if (res.status !== 200) throw new Error(`status route answered ${res.status}: ${JSON.stringify(body)}`);
    for (const step of body.steps) {
      const key = `${step.name}@${step.startedAt}`;
      if (step.status === "running" || printed.get(key) === step.retries + (step.finishedAt ? 1000 : 0)) continue;
      printed.set(key, step.retries + (step.finishedAt ? 1000 : 0));
      const seconds = step.finishedAt ? ((Date.parse(step.finishedAt) - Date.parse(step.startedAt)) / 1000).toFixed(2) : "?";
      const mark = step.status === "succeeded" ? "✓" : "✗";
      const retries = step.retries ? ` after ${step.retries} retr${step.retries === 1 ? "y" : "ies"}` : "";
      const detail = step.status === "succeeded" ? describeResult(step) : `${step.error?.error}: ${step.error?.cause ?? ""}`;
      if (step.name === "CheckHeadJob" && step.status === "succeeded" && !(step.result as { done?: boolean })?.done) continue;
      console.log(`  ${mark} ${step.name.padEnd(24)} ${seconds.padStart(6)} s${retries}  ${detail}`);
    }
    if (body.status === "RUNNING" && body.currentStep && body.currentStep !== lastCurrent) {
      lastCurrent = body.currentStep;
      if (body.currentStep === "WaitForHeadJob") console.log(`  … waiting for the head job's pod`);
    }
    if (body.status !== "RUNNING") return body;
    if (Date.now() > deadline) throw new Error(`execution ${name} still running after ${TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Whether aws-auth maps some principal to `username` (an unreadable aws-auth maps nothing). */
function awsAuthMapsUsername(data: Record<string, string> | undefined, username: string): boolean {
  try {
    const auth = parseAwsAuth(data);
    return [...auth.mapRoles, ...auth.mapUsers].some((entry) => entry.username === username);
  } catch {
    return false;
  }
}

/** Ask the account and the cluster, not the run's own output, what exists for the tenant now. */
async function summarise(tenant: string, namespace: string, clusterName: string, region: string): Promise<void> {
  resetClients();
  resetKubeClients();
  const described = await eksClient(region).send(new DescribeClusterCommand({ name: clusterName }));
  const cluster = toResolvedCluster(described.cluster!, region);
  const kube = await kubeClientFor(cluster);
  const selector = `${LABEL_TENANT}=${tenant}`;
  console.log(`\nWhat now exists for tenant ${tenant}:`);
  const ns = await kube.read({ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } }).catch(() => undefined);
  console.log(`  Kubernetes (cluster ${clusterName})`);
  console.log(`    Namespace            ${ns ? namespace : "(none)"}`);
  const kinds: Array<[string, string, string]> = [
    ["v1", "ServiceAccount", "ServiceAccounts"],
    ["rbac.authorization.k8s.io/v1", "Role", "Roles"],
    ["rbac.authorization.k8s.io/v1", "RoleBinding", "RoleBindings"],
    ["v1", "PersistentVolumeClaim", "PVCs"],
    ["v1", "ConfigMap", "ConfigMaps"],
    ["batch/v1", "Job", "Jobs"],
  ];
  if (ns) {
    for (const [apiVersion, kind, label] of kinds) {
      const list = await kube.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, selector);
      const items = list.items.map((o: any) => {
        const roleArn = o.metadata?.annotations?.["eks.amazonaws.com/role-arn"];
        const phase = o.status?.phase ?? (o.status?.succeeded ? "Complete" : o.status?.active ? "Active" : undefined);
        return `${o.metadata?.name}${roleArn ? ` (role-arn ${roleArn})` : ""}${phase ? ` [${phase}]` : ""}`;
      });
      console.log(`    ${label.padEnd(20)} ${items.join(", ") || "(none)"}`);
    }
  }
  const iam = iamClient();
  const roles = (await iam.send(new ListRolesCommand({}))).Roles ?? [];
  const ours: string[] = [];
  for (const role of roles) {
    const tags = (await iam.send(new GetRoleCommand({ RoleName: role.RoleName! }))).Role?.Tags ?? [];
    if (tags.some((t) => t.Key === LABEL_TENANT && t.Value === tenant)) ours.push(role.Arn!);
  }
  console.log(`  AWS`);
  console.log(`    IAM roles            ${ours.join(", ") || "(none)"}`);
  const eks = eksClient(region);
  const entries =
    (await eks.send(new ListAccessEntriesCommand({ clusterName })).catch(() => ({ accessEntries: [] as string[] }))).accessEntries ?? [];
  const accessLines: string[] = [];
  for (const principalArn of entries) {
    const entry = (await eks.send(new DescribeAccessEntryCommand({ clusterName, principalArn }))).accessEntry;
    if (entry?.tags?.[LABEL_TENANT] === tenant)
      accessLines.push(`${principalArn} → ${entry.username} (${(entry.kubernetesGroups ?? []).join(",")})`);
  }
  const awsAuth: any = await kube
    .read({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "aws-auth", namespace: "kube-system" } })
    .catch(() => undefined);
  const username = launcherUsername(tenant);
  if (awsAuthMapsUsername(awsAuth?.data, username)) accessLines.push(`aws-auth: launcher mapped to ${username} (${launcherGroup(tenant)})`);
  console.log(`    cluster access       ${accessLines.join("; ") || "(none)"}`);
  if (ns) {
    const cm: any = await kube
      .read({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: NEXTFLOW_CONFIGMAP, namespace } })
      .catch(() => undefined);
    if (cm?.data?.["nextflow.config"]) {
      console.log(`\nThe tenant's nextflow.config (ConfigMap ${namespace}/${NEXTFLOW_CONFIGMAP}):\n`);
      console.log(cm.data["nextflow.config"].replace(/^/gm, "    "));
    }
  }
}

type DriftBody = {
  status: string;
  reason?: string;
  resources: Array<{ kind: string; name: string; state: string; differences: Array<{ path: string }> }>;
};

function printDrift(drift: DriftBody | undefined): void {
  if (!drift) {
    console.log("  (no drift check)");
    return;
  }
  console.log(`  drift: ${drift.status}${drift.reason ? ` (${drift.reason})` : ""}, ${drift.resources.length} resources checked`);
  for (const r of drift.resources.filter((r) => r.state !== "present")) {
    console.log(
      `    ${r.state.padEnd(8)} ${r.kind} ${r.name}${r.differences.length ? `: ${r.differences.map((d) => d.path).join(", ")}` : ""}`,
    );
  }
}

/** `--drift`: delete the launcher user's RoleBinding by hand, see the drift, reconcile, see it gone, run the scheduled check. */
async function driftDemo(apiUrl: string, tenant: string, namespace: string, clusterName: string, region: string): Promise<void> {
  const environment = `${apiUrl}/environments/${encodeURIComponent(tenant)}/${region}/${clusterName}`;
  const read = async () => ((await (await fetch(environment)).json()) as { drift?: DriftBody }).drift;
  console.log(`
Drift: GET ${environment}`);
  printDrift(await read());
  const binding = `${launcherUsername(tenant)}-binding`;
  console.log(`
Deleting RoleBinding ${namespace}/${binding} by hand, then GET again:`);
  const described = await eksClient(region).send(new DescribeClusterCommand({ name: clusterName }));
  const kube = await kubeClientFor(toResolvedCluster(described.cluster!, region));
  await kube.delete({ apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", metadata: { name: binding, namespace } });
  printDrift(await read());
  console.log(`
POST ${environment}/reconcile`);
  const res = await fetch(`${environment}/reconcile`, { method: "POST" });
  const started = (await res.json()) as { executionName?: string };
  console.log(`  ${res.status}: ${JSON.stringify(started)}`);
  if (res.status !== 202) return;
  const final = await watch(apiUrl, started.executionName!);
  console.log(`
${final.status}; GET again:`);
  printDrift(await read());
  const check = await fetch(`${apiUrl}/sandbox/drift-check`, { method: "POST" });
  const summary = (await check.json()) as { checked: number; drifted: number; events: unknown[] };
  console.log(`
The scheduled check, now (POST /sandbox/drift-check): ${summary.checked} checked, ${summary.drifted} drifted, ${summary.events.length} EnvironmentDrifted events`);
}

/** DELETE the environment, watch the teardown (by its ARN: a deprovision run), then ask again what exists. */
async function narrateTeardown(
  apiUrl: string,
  request: { tenant: string; namespace?: string; cluster: { name: string; region: string } },
): Promise<void> {
  const path = `/environments/${request.tenant}/${request.cluster.region}/${request.cluster.name}`;
  console.log(`\nDELETE ${apiUrl}${path}`);
  const res = await fetch(`${apiUrl}${path}`, { method: "DELETE" });
  const body = (await res.json()) as { executionArn?: string; executionName?: string; message?: string };
  if (res.status !== 202) {
    console.log(`  ${res.status}: ${JSON.stringify(body)}`);
    if (res.status !== 200) process.exitCode = 1;
    return;
  }
  console.log(`  202 Accepted: ${body.executionArn}\n\nTeardown ${body.executionName}:`);
  const final = await watch(apiUrl, body.executionArn!);
  console.log(`\n${final.status}`);
  if (final.status !== "SUCCEEDED") {
    console.log(`  ${final.error}: ${final.cause}`);
    process.exitCode = 1;
  }
  const record = (await (await fetch(`${apiUrl}${path}`)).json()) as { status?: string; owned?: unknown };
  console.log(`  the registry says: ${record.status} (owned ${JSON.stringify(record.owned)})`);
  await summarise(request.tenant, request.namespace ?? "tower-nf", request.cluster.name, request.cluster.region);
}

type DemoRequest = { tenant: string; namespace?: string; cluster: { name: string; region: string }; [field: string]: unknown };

/** The environment's record without the live drift check (one registry read). */
type RecordBody = { status?: string; generation?: number; spec?: Record<string, unknown> };

async function readRecord(apiUrl: string, path: string): Promise<RecordBody> {
  return (await (await fetch(`${apiUrl}${path}?drift=false`)).json()) as RecordBody;
}

/** PUT a changed spec (a compute service account of the tenant's own), watch the update run, then show the new generation. */
async function narrateUpdate(apiUrl: string, request: DemoRequest): Promise<void> {
  const path = `/environments/${request.tenant}/${request.cluster.region}/${request.cluster.name}`;
  const before = await readRecord(apiUrl, path);
  // The spec is the request without tenant and cluster (the path names them) and without its head job (a run's).
  const { tenant: _tenant, cluster: _cluster, headJob: _headJob, ...spec } = request;
  const computeServiceAccount = `${request.tenant}-compute`;
  console.log(`
PUT ${apiUrl}${path}  (generation ${before.generation}, ${before.status}; the spec now with computeServiceAccount ${computeServiceAccount})`);
  const res = await fetch(`${apiUrl}${path}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...spec, computeServiceAccount }),
  });
  const body = (await res.json()) as { executionArn?: string; executionName?: string; generation?: number };
  if (res.status !== 202) {
    console.log(`  ${res.status}: ${JSON.stringify(body)}`);
    if (res.status !== 200) process.exitCode = 1;
    return;
  }
  console.log(`  202 Accepted: ${body.executionArn} (generation ${body.generation})\n\nUpdate ${body.executionName}:`);
  const final = await watch(apiUrl, body.executionArn!);
  console.log(`\n${final.status}`);
  if (final.status !== "SUCCEEDED") {
    console.log(`  ${final.error}: ${final.cause}`);
    process.exitCode = 1;
  }
  const after = await readRecord(apiUrl, path);
  console.log(
    `  the registry says: ${after.status}, generation ${before.generation} → ${after.generation} (computeServiceAccount ${String(after.spec?.computeServiceAccount)})`,
  );
  await summarise(request.tenant, request.namespace ?? "tower-nf", request.cluster.name, request.cluster.region);
}

/**
 * `sandboxEnv` is what the CLI read from `envFile` (the running sandbox's `.sandbox/env`), when it was there;
 * against a running sandbox the demo takes its endpoints and keys from it.
 */
export async function runDemo({
  examplePath,
  apiUrl,
  envFile,
  sandboxEnv,
  drift,
  teardown = false,
  update = false,
}: {
  examplePath: string;
  apiUrl?: string;
  envFile: string;
  sandboxEnv?: Record<string, string>;
  drift?: boolean;
  teardown?: boolean;
  update?: boolean;
}): Promise<void> {
  const request = JSON.parse(readFileSync(examplePath, "utf8")) as DemoRequest;
  let closeSandbox: (() => Promise<void>) | undefined;
  if (apiUrl && (await reachable(apiUrl))) {
    console.log(`Using the sandbox at ${apiUrl}.`);
    Object.assign(process.env, sandboxEnv ?? readSandboxEnv(envFile));
  } else {
    // The handlers run in this process: cli.ts has set POWERTOOLS_LOG_LEVEL (WARN unless the user chose) before they loaded.
    console.log("No sandbox running (npm start); starting one in this process for the demo.");
    const { startSandbox } = await import("./sandbox.js");
    const sandbox = await startSandbox({ waitMs: 500, retryIntervalMs: 100 });
    apiUrl = sandbox.apiUrl;
    closeSandbox = () => sandbox.close();
  }
  try {
    const route = teardown || update ? "environments" : "provision";
    console.log(`\nPOST ${apiUrl}/${route}  (${examplePath})`);
    const res = await fetch(`${apiUrl}/${route}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request),
    });
    const started = (await res.json()) as { executionArn?: string; executionName?: string; problems?: unknown };
    if (res.status !== 202 && res.status !== 200) {
      console.log(`  ${res.status}: ${JSON.stringify(started, null, 2)}`);
      process.exitCode = 1;
      return;
    }
    let succeeded = true;
    if (started.executionName) {
      console.log(`  ${res.status} Accepted: ${started.executionArn}\n\nExecution ${started.executionName}:`);
      const final = await watch(apiUrl!, started.executionName!);
      succeeded = final.status === "SUCCEEDED";
      console.log(`\n${final.status}${final.retries ? ` (${final.retries} retries along the way)` : ""}`);
      if (final.status !== "SUCCEEDED") {
        console.log(`  ${final.error}: ${final.cause}`);
        process.exitCode = 1;
      }
    } else console.log(`  ${res.status}: the environment exists with this spec already`);
    await summarise(request.tenant, request.namespace ?? "tower-nf", request.cluster.name, request.cluster.region);
    if (drift && succeeded)
      await driftDemo(apiUrl!, request.tenant, request.namespace ?? "tower-nf", request.cluster.name, request.cluster.region);
    if (update && succeeded) await narrateUpdate(apiUrl!, request);
    if (teardown) await narrateTeardown(apiUrl!, request);
  } finally {
    await closeSandbox?.();
  }
}
