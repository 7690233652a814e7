/**
 * Compensation in the sandbox: a permanent failure injected at each step in turn (the step's first write
 * fails once with AccessDenied / 403, which is not retried), or a head job that fails. The run must FAIL
 * with the step's named error and a cause that says what was undone, and the emulators' full state
 * afterwards must equal the state before the run: every IAM role, access entry, association and
 * Kubernetes object, compared as whole snapshots.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Sandbox } from "../../local/sandbox.js";
import type { KubeObject } from "../../local/kube/kube-apiserver.js";
import type { ProvisionRequestInput } from "../../functions/lib/domain/request.js";
import {
  FAST,
  fusionRequest,
  finish,
  holdIamCommand,
  holdKubeCreates,
  iamCommandSettled,
  iamRole,
  kubeObject,
  postProvision,
  provision,
  pvcRequest,
  RUN_TIMEOUT_MS,
  settled,
  stepResult,
  until,
  useSandbox,
  type Run,
} from "../support/sandbox-runs.js";

type Mode = "API_AND_CONFIG_MAP" | "CONFIG_MAP";

interface FailureCase {
  /** the state whose failure fails the run (as the status route names it) */
  step: string;
  /** the fault: this operation fails once, permanently */
  operation: string;
  request: (tenant: string) => ProvisionRequestInput;
  /** make the Parallel's other branch finish first, so its work exists to be undone */
  siblingFirst?: "rbac" | "iam";
}

const withHeadJob = (tenant: string) =>
  pvcRequest(tenant, { namespace: tenant, headJob: { pipeline: "nextflow-io/hello", waitFor: "running" } });

function failureCases(mode: Mode): FailureCase[] {
  return [
    { step: "ResolveCluster", operation: "eks:DescribeCluster", request: withHeadJob },
    { step: "CreateIamResources", operation: "iam:CreateRole", request: withHeadJob, siblingFirst: "rbac" },
    { step: "CreateNamespaceAndRbac", operation: "kube:POST rolebindings", request: withHeadJob, siblingFirst: "iam" },
    {
      step: "GrantClusterAccess",
      operation: mode === "CONFIG_MAP" ? "kube:PUT configmaps" : "eks:CreateAccessEntry",
      request: withHeadJob,
    },
    { step: "ConfigureStorage", operation: "kube:POST persistentvolumeclaims", request: withHeadJob },
    { step: "LaunchHeadJob", operation: "kube:POST jobs", request: withHeadJob },
    { step: "Report", operation: "events:PutEvents", request: withHeadJob },
    // Fusion: the IRSA annotation must come off again, the Pod Identity associations must go.
    { step: "ConfigureStorage", operation: "kube:POST configmaps", request: (tenant) => fusionRequest(tenant, { namespace: tenant }) },
    {
      step: "ConfigureStorage",
      operation: "kube:POST configmaps",
      request: (tenant) => fusionRequest(tenant, { namespace: tenant, podIdentity: true }),
    },
  ];
}

/** The ordering gate for a Parallel case: the sibling branch's last write has happened. */
function holdUntilSiblingDone(sandbox: Sandbox, tenant: string, sibling: "rbac" | "iam"): () => void {
  if (sibling === "rbac") {
    // The IAM branch's CreateRole waits until the RBAC branch bound the launcher user (its last object).
    return holdIamCommand("CreateRoleCommand", () =>
      until(
        "the RBAC branch to finish",
        () => kubeObject(sandbox, "RoleBinding", tenant, `tower-launcher-user-${tenant}-binding`) !== undefined,
      ),
    );
  }
  // The RBAC branch's RoleBindings wait until the IAM branch put the launcher's inline policy (its last write).
  return holdKubeCreates("RoleBinding", () =>
    until("the IAM branch to finish", () => (iamRole(sandbox, `nfeks-${tenant}.research-launcher`)?.inlinePolicies.size ?? 0) > 0),
  );
}

/** aws-auth is edited and edited back in CONFIG_MAP mode: its resourceVersion moves on, nothing else may differ. */
function withoutAwsAuthVersion(objects: KubeObject[]): KubeObject[] {
  return objects.map((o) =>
    o.kind === "ConfigMap" && o.metadata.namespace === "kube-system" && o.metadata.name === "aws-auth"
      ? { ...o, metadata: { ...o.metadata, resourceVersion: "(edited)" } }
      : o,
  );
}

function expectFailedAt(run: Run, step: string, error: string): void {
  expect(run.execution.status).toBe("FAILED");
  expect(run.execution.error).toBe(error);
  expect(run.view).toMatchObject({ status: "FAILED", failedStep: step, error });
  // The cause is a sentence for the operator: the error and what was undone.
  expect(run.execution.cause).toContain(`failed: ${error}: `);
  expect(run.execution.cause).toMatch(/Undone: /);
  expect(run.view.steps.find((s) => s.name === step)).toMatchObject({ status: "failed", error: { error } });
}

describe.each(["API_AND_CONFIG_MAP", "CONFIG_MAP"] as const)("compensation on a %s cluster", (authenticationMode) => {
  describe("a permanent failure at each step", () => {
    let sandbox: Sandbox;
    let release: (() => void) | undefined;

    useSandbox({ ...FAST, authenticationMode }, (started) => (sandbox = started.sandbox));
    afterEach(() => {
      release?.();
      release = undefined;
    });

    it.each(failureCases(authenticationMode).map((c, i) => ({ ...c, tenant: `fail-${i}` })))(
      "$step fails at $operation ($tenant): the run fails and everything is as before",
      async ({ step, operation, request, siblingFirst, tenant }) => {
        // Prepare
        await settled(sandbox);
        const before = sandbox.snapshot();
        const failedEventsBefore = sandbox.aws.events({ detailType: "ComputeEnvironmentFailed" }).length;
        sandbox.faults.inject({ operation, kind: "permanent", times: 1 });
        if (siblingFirst) release = holdUntilSiblingDone(sandbox, tenant, siblingFirst);

        // Act
        const run = await provision(sandbox, request(tenant));

        // Assess
        expect(sandbox.faults.fired).toEqual([{ operation, kind: "permanent" }]);
        expectFailedAt(run, step, "NotAllowed");
        await settled(sandbox);
        const after = sandbox.snapshot();
        expect(after.aws).toStrictEqual(before.aws);
        expect(withoutAwsAuthVersion(after.kube)).toStrictEqual(withoutAwsAuthVersion(before.kube));
        const failed = sandbox.aws.events({ detailType: "ComputeEnvironmentFailed" });
        expect(failed).toHaveLength(failedEventsBefore + 1);
        expect(failed.at(-1)?.detail).toMatchObject({ tenant, error: { name: "NotAllowed" } });
      },
    );
  });

  describe("a head job that fails", () => {
    let sandbox: Sandbox;

    useSandbox({ ...FAST, authenticationMode, failJobs: true }, (started) => (sandbox = started.sandbox));

    it("fails the run with HeadJobFailed and undoes everything, the job and its pod included", async () => {
      // Prepare: waitFor completed, so the check sees the pod fail
      await settled(sandbox);
      const before = sandbox.snapshot();
      const request = pvcRequest("doomed", { namespace: "doomed", headJob: { pipeline: "nextflow-io/hello", waitFor: "completed" } });

      // Act
      const run = await provision(sandbox, request);

      // Assess
      expectFailedAt(run, "CheckHeadJob", "HeadJobFailed");
      expect(run.execution.cause).toMatch(/container nextflow Error \(exit code 1\)/);
      const undone = stepResult<{ undone: string[] }>(run, "UndoHeadJob");
      expect(undone.undone).toEqual(expect.arrayContaining([expect.stringMatching(/^Job doomed\/nf-head-doomed-/)]));
      await settled(sandbox);
      const after = sandbox.snapshot();
      expect(after.aws).toStrictEqual(before.aws);
      expect(withoutAwsAuthVersion(after.kube)).toStrictEqual(withoutAwsAuthVersion(before.kube));
    });
  });
});

describe("a failure in one branch of the Parallel", () => {
  let sandbox: Sandbox;
  const undo: Array<() => void> = [];

  useSandbox({ ...FAST }, (started) => (sandbox = started.sandbox));
  afterEach(() => {
    for (const u of undo.splice(0)) u();
  });

  it("undoes the other branch's finished work as well: the IAM role when namespace/RBAC failed", async () => {
    // Prepare: the IAM branch finishes, then the RBAC branch fails at its RoleBindings
    await settled(sandbox);
    const before = sandbox.snapshot();
    sandbox.faults.inject({ operation: "kube:POST rolebindings", kind: "permanent", times: 1 });
    undo.push(holdUntilSiblingDone(sandbox, "split", "iam"));

    // Act
    const run = await provision(sandbox, withHeadJob("split"));

    // Assess
    expectFailedAt(run, "CreateNamespaceAndRbac", "NotAllowed");
    // The other branch is reported as cut short, not as failed.
    expect(run.view.steps.find((s) => s.name === "CreateIamResources")?.status).not.toBe("failed");
    const undone = (step: string) => stepResult<{ undone?: string[] } | undefined>(run, step)?.undone ?? [];
    expect(undone("UndoIamResources")).toEqual(["IAM role nfeks-split.research-launcher"]);
    expect(undone("UndoNamespaceAndRbac")).toEqual([
      "Role split/tower-launcher-role",
      "ServiceAccount split/tower-launcher-sa",
      "NetworkPolicy split/deny-from-other-namespaces",
      "LimitRange split/tenant-defaults",
      "Namespace split",
    ]);
    await settled(sandbox);
    expect(sandbox.snapshot()).toStrictEqual(before);
  });

  // Step Functions stops a failed Parallel at once, but a Lambda already running in the other branch runs
  // to its end: each branch catches its own failure, so compensation only starts once both have ended.
  it("undoes work the other branch was still doing when the first one failed", async () => {
    // Prepare: RBAC fails at once; the IAM branch's CreateRole is held until the RBAC branch has caught its
    // error (or, should the Parallel not wait for IAM, until the run has ended)
    await settled(sandbox);
    const before = sandbox.snapshot();
    sandbox.faults.inject({ operation: "kube:POST namespaces", kind: "permanent", times: 1 });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    undo.push(holdIamCommand("CreateRoleCommand", () => released));
    const iamFinished = iamCommandSettled("PutRolePolicyCommand");
    undo.push(
      sandbox.stepFunctions.onEvent(({ event }) => {
        if (event.type === "TaskStateExited" && event.stateExitedEventDetails?.name === "CreateNamespaceAndRbac") release();
      }),
    );

    // Act
    const answer = await postProvision(sandbox, withHeadJob("racing"));
    const ended = sandbox.stepFunctions.waitFor(answer.body.executionArn, { timeoutMs: RUN_TIMEOUT_MS }).then(release);
    await Promise.all([ended, iamFinished]);
    const run = await finish(sandbox, answer.body);

    // Assess
    expectFailedAt(run, "CreateNamespaceAndRbac", "NotAllowed");
    expect(iamRole(sandbox, "nfeks-racing.research-launcher")).toBeUndefined();
    await settled(sandbox);
    expect(sandbox.snapshot()).toStrictEqual(before);
  });

  // The failed branch records its own name ($.failedStep), so ReportFailure names it as the status route does.
  it("the execution's cause names the branch that failed", async () => {
    // Prepare
    sandbox.faults.inject({ operation: "kube:POST rolebindings", kind: "permanent", times: 1 });
    undo.push(holdUntilSiblingDone(sandbox, "named", "iam"));

    // Act
    const run = await provision(sandbox, withHeadJob("named"));

    // Assess
    expect(run.view.failedStep).toBe("CreateNamespaceAndRbac");
    expect(run.execution.cause).toMatch(/^Step CreateNamespaceAndRbac failed: NotAllowed: /);
  });
});
