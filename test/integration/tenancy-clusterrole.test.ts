/**
 * deploy/provisioner-clusterrole.yaml is derived from the Kubernetes calls the product makes, and this test holds it to
 * them both ways. The sandbox's API server records every authorization decision it makes for the provisioner's identity
 * (its requests, and the `escalate`/`bind` checks of its Role and RoleBinding writes) while runs go through every step
 * and every compensator in both authentication modes; then:
 *  - a call the ClusterRole does not grant fails the test (the run would also have failed: the API server enforces it);
 *  - a grant (one verb, resource and name of a rule) that no recorded call used fails the test;
 *  - so does a grant another grant of the role already covers, and any wildcard.
 * Calls every authenticated user may make (discovery, SelfSubjectAccessReview) are the cluster's bootstrap policy, not
 * the ClusterRole's, and are left out.
 */
import { afterAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { createHeadJobStep } from "../../functions/steps/head-job.js";
import { headJobName } from "../../functions/lib/domain/manifests.js";
import { ownershipLabels, runMark } from "../../functions/lib/domain/naming.js";
import { newKubeClient } from "../../functions/lib/kube/kube-client.js";
import type { ResolvedCluster } from "../../functions/lib/workflow/workflow-state.js";
import type { AuthorizationRecord } from "../../local/kube/kube-apiserver.js";
import type { PolicyRule } from "../../local/kube/rbac-authorizer.js";
import type { Sandbox } from "../../local/sandbox.js";
import { PROVISIONER_CLUSTERROLE_FILE, PROVISIONER_USERNAME } from "../../stacks/cluster-access-commands.js";
import { executionRef } from "../support/fixtures.js";
import { FAST, finish, fusionRequest, provision, pvcRequest, settled, useSandbox, type Started } from "../support/sandbox-runs.js";
import { updateTo } from "../support/teardown-runs.js";

const ROOT = join(import.meta.dirname, "../..");

function clusterRoleRules(): PolicyRule[] {
  const documents = parseAllDocuments(readFileSync(join(ROOT, PROVISIONER_CLUSTERROLE_FILE), "utf8")).map((d) => d.toJS());
  const role = documents.find((d) => d.kind === "ClusterRole");
  if (!role) throw new Error(`no ClusterRole in ${PROVISIONER_CLUSTERROLE_FILE}`);
  return role.rules;
}

// ---------------------------------------------------------------- the comparison

/** One verb on one resource (`pods/log` for a subresource), in one API group, optionally of one name. */
interface Grant {
  group: string;
  resource: string;
  verb: string;
  name?: string;
}

function grantsOf(rules: PolicyRule[]): Grant[] {
  return rules.flatMap((rule) =>
    (rule.apiGroups ?? []).flatMap((group) =>
      (rule.resources ?? []).flatMap((resource) =>
        (rule.verbs ?? []).flatMap((verb) =>
          rule.resourceNames?.length ? rule.resourceNames.map((name) => ({ group, resource, verb, name })) : [{ group, resource, verb }],
        ),
      ),
    ),
  );
}

const resourceOf = (call: AuthorizationRecord) => (call.subresource ? `${call.resource}/${call.subresource}` : call.resource);
const describeGrant = (g: Grant) => `${g.verb} ${g.group || "core"}/${g.resource}${g.name ? ` ${g.name}` : ""}`;
const describeCall = (c: AuthorizationRecord) =>
  `${c.verb} ${c.apiGroup || "core"}/${resourceOf(c)}${c.name ? ` ${c.name}` : ""}${c.namespace ? ` in ${c.namespace}` : ""}`;

function grants(grant: Grant, call: AuthorizationRecord): boolean {
  return (
    grant.group === (call.apiGroup ?? "") &&
    grant.resource === resourceOf(call) &&
    grant.verb === call.verb &&
    (grant.name === undefined || grant.name === call.name)
  );
}

/** What every authenticated user may do (the bootstrap system:basic-user role): not the ClusterRole's business. */
function everyonesCall(call: AuthorizationRecord): boolean {
  return (
    call.verb === "create" &&
    /^(authorization|authentication)\.k8s\.io$/.test(call.apiGroup ?? "") &&
    (call.resource ?? "").startsWith("selfsubject")
  );
}

function compareWithCalls(
  rules: PolicyRule[],
  records: AuthorizationRecord[],
): { ungranted: string[]; unneeded: string[]; redundant: string[]; wildcards: string[] } {
  const all = grantsOf(rules);
  // Resource requests only (discovery is a non-resource path), and escalate/bind only where they let a write through:
  // a create is always checked for `escalate` without a name, refused, and then passes because the Role is empty.
  const calls = records.filter(
    (r) => r.path === undefined && !everyonesCall(r) && (r.allowed || (r.verb !== "escalate" && r.verb !== "bind")),
  );
  const ungranted = calls.filter((call) => !call.allowed || !all.some((g) => grants(g, call))).map(describeCall);
  const unneeded = all.filter((g) => !calls.some((call) => call.allowed && grants(g, call))).map(describeGrant);
  const redundant = all
    .filter((g, i) =>
      all.some(
        (other, j) =>
          j !== i &&
          other.group === g.group &&
          other.resource === g.resource &&
          other.verb === g.verb &&
          other.name === undefined &&
          g.name !== undefined,
      ),
    )
    .map(describeGrant);
  const wildcards = all.filter((g) => [g.group, g.resource, g.verb, g.name].includes("*")).map(describeGrant);
  return { ungranted: [...new Set(ungranted)].sort(), unneeded, redundant, wildcards };
}

// ---------------------------------------------------------------- the calls, in both modes

const recorded: AuthorizationRecord[] = [];

function resolved(sandbox: Sandbox): ResolvedCluster {
  const { name, region, accountId } = sandbox.cluster;
  return {
    ...sandbox.cluster,
    arn: `arn:aws:eks:${region}:${accountId}:cluster/${name}`,
    endpoint: sandbox.kubeUrl,
    certificateAuthority: sandbox.kube.caData,
  };
}

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("the provisioner's calls on a %s cluster", (authenticationMode) => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode }, (started) => ({ sandbox } = started));
  afterAll(() => {
    recorded.push(...sandbox.kube.authorizations.filter((r) => r.username === PROVISIONER_USERNAME));
  });

  it("a PVC tenant with a head job, then an update (PUT) that adopts everything and rewrites nextflow.config", async () => {
    // Act
    const quota = { cpu: "8", memory: "16Gi", pods: 50 };
    const headJob = { pipeline: "nextflow-io/hello", waitFor: "completed" } as const;
    const first = await provision(sandbox, pvcRequest("alpha", { namespace: "alpha", quota, headJob }));
    const again = await updateTo(sandbox, pvcRequest("alpha", { namespace: "alpha", quota, labels: { team: "alpha", cost: "genomics" } }));
    // Assess
    expect([first.execution.status, again.execution.status]).toEqual(["SUCCEEDED", "SUCCEEDED"]);
  });

  it("a Fusion tenant with a compute service account (IRSA annotations)", async () => {
    // Act
    const run = await provision(sandbox, fusionRequest("beta", { namespace: "beta" }));
    // Assess
    expect(run.execution.status).toBe("SUCCEEDED");
  });

  it("a run that fails once its head job exists, so every compensator runs", async () => {
    // Prepare
    sandbox.faults.inject({ operation: "kube:GET jobs", kind: "permanent", times: 1 });
    // Act
    const run = await provision(
      sandbox,
      pvcRequest("gamma", { namespace: "gamma", quota: { pods: 10 }, headJob: { pipeline: "nextflow-io/hello" } }),
    );
    await settled(sandbox);
    // Assess
    expect(run.execution.status).toBe("FAILED");
    expect(sandbox.kube.snapshot().filter((o) => o.metadata.namespace === "gamma" || o.metadata.name === "gamma")).toEqual([]);
  });

  it("updates: a claim grown in place, then a namespace change whose old namespace is removed last", async () => {
    // Prepare
    const put = async (spec: Record<string, unknown>) => {
      const res = await fetch(`${sandbox.apiUrl}/environments/delta/${sandbox.cluster.region}/${sandbox.cluster.name}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(spec),
      });
      return finish(sandbox, (await res.json()) as Started);
    };
    const {
      tenant: _t,
      cluster: _c,
      ...spec
    } = pvcRequest("delta", { namespace: "delta-one", storage: { type: "pvc", storageClass: "fsx-sc", size: "100Gi" } });
    await provision(
      sandbox,
      pvcRequest("delta", { namespace: "delta-one", storage: { type: "pvc", storageClass: "fsx-sc", size: "100Gi" } }),
    );
    // Act
    const grown = await put({ ...spec, storage: { type: "pvc", storageClass: "fsx-sc", size: "200Gi" } });
    const moved = await put({ ...spec, namespace: "delta-two", storage: { type: "pvc", storageClass: "fsx-sc", size: "200Gi" } });
    // Assess
    expect([grown.execution.status, moved.execution.status]).toEqual(["SUCCEEDED", "SUCCEEDED"]);
  });

  it("UndoHeadJob with head pods the garbage collector has not removed yet", async () => {
    // Prepare: an orphaned pod of this run's head job in the tenant's namespace
    const execution = executionRef(`lingering-${authenticationMode.toLowerCase().replace(/_/g, "-")}`);
    const jobName = headJobName("alpha", runMark(execution));
    sandbox.kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${jobName}-abcde`,
        namespace: "alpha",
        labels: { ...ownershipLabels("alpha", runMark(execution)), "job-name": jobName },
      },
      spec: { restartPolicy: "Never", containers: [{ name: "nextflow", image: "nextflow/nextflow:24.10.4" }] },
    });
    const cluster = resolved(sandbox);
    const step = createHeadJobStep({ kube: (await newKubeClient(cluster)).api });
    const request = pvcRequest("alpha", { namespace: "alpha", headJob: { pipeline: "nextflow-io/hello" } });
    // Act
    const result = await step.compensate({ request, execution, cluster } as never);
    // Assess
    expect(result.undone).toEqual([`Pod alpha/${jobName}-abcde`]);
  });
});

describe(PROVISIONER_CLUSTERROLE_FILE, () => {
  it("grants every Kubernetes call the product made, and nothing no call needed", () => {
    // Prepare
    const rules = clusterRoleRules();
    // Act
    const comparison = compareWithCalls(rules, recorded);
    // Assess
    expect(recorded.length).toBeGreaterThan(100);
    expect(comparison).toEqual({ ungranted: [], unneeded: [], redundant: [], wildcards: [] });
  });

  it("the comparison catches a call the role does not grant, a grant no call needs, a grant another covers and a wildcard", () => {
    // Prepare: the role without its `list secrets`, plus grants nothing asks for
    const rules = clusterRoleRules().filter((r) => !(r.resources ?? []).includes("secrets"));
    rules.push(
      { apiGroups: [""], resources: ["nodes"], verbs: ["list"] },
      { apiGroups: [""], resources: ["namespaces"], resourceNames: ["alpha"], verbs: ["get"] },
    );
    rules.push({ apiGroups: ["apps"], resources: ["*"], verbs: ["get"] });
    // Act
    const comparison = compareWithCalls(rules, recorded);
    // Assess
    expect(comparison.ungranted).toContain("list core/secrets in gamma");
    expect(comparison.unneeded).toContain("list core/nodes");
    expect(comparison.redundant).toEqual(["get core/namespaces alpha"]);
    expect(comparison.wildcards).toEqual(["get apps/*"]);
  });
});
