/**
 * GET /executions/{id} shows each step's result through an allowlist (functions/lib/workflow/step-result-fields.ts):
 * every field of every result type has a decision, a withheld field and a field nobody decided stay out of the
 * answer, and a step without a table shows no result.
 */
import { describe, expect, it } from "vitest";
import { DescribeExecutionCommand, GetExecutionHistoryCommand } from "@aws-sdk/client-sfn";
import { STEP_RESULT_FIELDS } from "../../functions/lib/workflow/step-result-fields.js";
import type { CompensationResult } from "../../functions/lib/workflow/compensation.js";
import type {
  AccessResult,
  HeadJobResult,
  IamResult,
  RbacResult,
  RemovalResult,
  ResolvedCluster,
  StorageResult,
} from "../../functions/lib/workflow/workflow-state.js";
import { STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import { HistoryWriter } from "../support/execution-history.js";
import { described, get, NAME, sfn, useStatusApi } from "../support/status-api.js";

useStatusApi();

describe("GET /executions/{id}: each step's result is an allowlist of fields", () => {
  const ROLE = "arn:aws:iam::111122223333:role/nfeks-genomics-launcher";
  /** A result of every step with every field of its type (a field added to a type without one here does not compile). */
  const SAMPLES: Record<string, object> = {
    ResolveCluster: {
      name: "research",
      region: "eu-west-1",
      arn: "arn:aws:eks:eu-west-1:111122223333:cluster/research",
      accountId: "111122223333",
      endpoint: "https://x",
      certificateAuthority: "LS0t",
      oidcIssuer: "https://oidc",
      authenticationMode: "API",
      version: "1.31",
    } satisfies Required<ResolvedCluster>,
    CreateIamResources: {
      launcherArn: ROLE,
      launcherKind: "role",
      launcherCreated: false,
      launcherCreateDate: "2026-01-01T00:00:00.000Z",
      workloadRoleArn: ROLE,
      podIdentityAssociationIds: ["a-1"],
      created: [],
      changed: [{ roleName: "nfeks-genomics-launcher", previousTrustPolicy: '{"Statement":"secret-trust"}' }],
      changedAssociations: [{ associationId: "a-1", previousRoleArn: ROLE }],
    } satisfies Required<IamResult>,
    CreateNamespaceAndRbac: {
      namespace: "tower-nf",
      serviceAccount: "sa",
      computeServiceAccount: "csa",
      role: "r",
      created: [],
      adopted: [],
    } satisfies Required<RbacResult>,
    GrantClusterAccess: {
      method: "aws-auth",
      principalArn: ROLE,
      username: "u",
      groups: ["g"],
      created: true,
      previousAwsAuth: { mapRoles: "other-tenant" },
      previousIdentity: { username: "old", groups: ["old"] },
      replacedStaleEntry: { createdAt: "2025-12-31T00:00:00.000Z" },
    } satisfies Required<AccessResult>,
    ConfigureStorage: {
      type: "pvc",
      claimName: "c",
      mountPath: "/scratch",
      annotated: [],
      configMap: "nextflow-config",
      nextflowConfig: "process {}",
      created: [],
      adopted: [],
      grown: [{ claim: "c", namespace: "tower-nf", from: "1Gi", to: "2Gi" }],
    } satisfies Required<StorageResult>,
    RemoveUnwantedResources: { removed: ["Namespace old"], kept: [] } satisfies Required<RemovalResult>,
    LaunchHeadJob: {
      jobName: "j",
      namespace: "tower-nf",
      phase: "Pending",
      done: false,
      podName: "p",
      checks: 0,
      launchedAt: "2026-01-01T00:00:00Z",
      nextCheckSeconds: 5,
      imagePullFailingSince: "2026-01-01T00:00:00Z",
      unschedulableSince: "2026-01-01T00:00:00Z",
      paramsConfigMap: "params",
    } satisfies Required<HeadJobResult>,
    UndoClusterAccess: { undone: ["x"], kept: ["y"], failed: ["z"] } satisfies Required<CompensationResult>,
    Report: { eventBusName: "bus", detail: { namespace: "tower-nf" } },
    ReportFailure: { error: "OwnershipConflict", cause: "why" },
  };

  it("has a decision for every field of every step's result, and a table for every step", () => {
    // Assess
    for (const [step, sample] of Object.entries(SAMPLES)) {
      const undecided = Object.keys(sample).filter((field) => STEP_RESULT_FIELDS[step]?.[field] === undefined);
      expect(undecided, `${step}: fields nobody allowed or withheld`).toEqual([]);
    }
    expect(STEP_FUNCTIONS.map((entry) => entry.state).filter((state) => !STEP_RESULT_FIELDS[state])).toEqual([]);
  });

  it("shows the IAM step's result without the adopted roles' previous documents, and nothing it does not know", async () => {
    // Prepare
    const w = new HistoryWriter();
    w.started({});
    w.task("CreateIamResources", 0, { ...SAMPLES.CreateIamResources, surprise: "a field nobody allowed" });
    sfn.on(DescribeExecutionCommand).resolves(described("RUNNING"));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: w.events });
    // Act
    const { body } = await get(NAME);
    // Assess
    const { changed: _withheld, ...shown } = SAMPLES.CreateIamResources as IamResult;
    expect(body.steps[0].result).toEqual(shown);
    expect(JSON.stringify(body)).not.toContain("secret-trust");
    expect(JSON.stringify(body)).not.toContain("surprise");
  });

  it("shows no result for a step it has no table for", async () => {
    // Prepare
    const w = new HistoryWriter();
    w.started({});
    w.task("SomeNewStep", 0, { anything: "at all" });
    sfn.on(DescribeExecutionCommand).resolves(described("RUNNING"));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: w.events });
    // Act
    const { body } = await get(NAME);
    // Assess
    expect(body.steps[0]).toMatchObject({ name: "SomeNewStep", status: "succeeded" });
    expect(body.steps[0]).not.toHaveProperty("result");
  });
});
