/**
 * GET /executions/{id} shows each step's result through an allowlist (functions/lib/workflow/step-result-fields.ts):
 * every field of every result type has a decision, a withheld field and a field nobody decided stay out of the
 * answer, and a step without a table shows no result.
 */
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { DescribeExecutionCommand, GetExecutionHistoryCommand } from "@aws-sdk/client-sfn";
import { STEP_RESULT_FIELDS } from "../../functions/lib/workflow/step-result-fields.js";
import type {
  AccessResult,
  CompensationResult,
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

const FIELDS_FILE = path.resolve(import.meta.dirname, "../../functions/lib/workflow/step-result-fields.ts");

/**
 * The fields of the type each step's table is declared over (`const IAM: FieldPolicy<IamResult>`, then
 * `CreateIamResources: IAM` in STEP_RESULT_FIELDS), read with the TypeScript checker. Vitest strips types, so
 * without this only tsc would notice a field added to a result type and decided nowhere. The result types are the
 * product's own interfaces: the packages' declarations are read as empty files (a second instead of eight), and a
 * result type built from a package's types would read as having no fields, which fails the test rather than passing it.
 */
function declaredResultFields(): Record<string, string[]> {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    strict: true,
    noEmit: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const readSource = host.getSourceFile;
  host.getSourceFile = (fileName, languageVersion, ...rest) =>
    /\/node_modules\/(?!typescript\/lib\/)/.test(fileName)
      ? ts.createSourceFile(fileName, "", languageVersion)
      : readSource.call(host, fileName, languageVersion, ...rest);
  const program = ts.createProgram({ rootNames: [FIELDS_FILE], options, host });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(FIELDS_FILE)!;
  const tableTypes = new Map<string, ts.Type>();
  let steps: ts.ObjectLiteralExpression | undefined;
  for (const statement of source.statements) {
    if (!ts.isVariableStatement(statement)) continue;
    for (const declaration of statement.declarationList.declarations) {
      const name = declaration.name.getText(source);
      const type = declaration.type;
      if (type && ts.isTypeReferenceNode(type) && type.typeName.getText(source) === "FieldPolicy" && type.typeArguments?.length === 1)
        tableTypes.set(name, checker.getTypeFromTypeNode(type.typeArguments[0]!));
      if (name === "STEP_RESULT_FIELDS" && declaration.initializer && ts.isObjectLiteralExpression(declaration.initializer))
        steps = declaration.initializer;
    }
  }
  if (!steps) throw new Error(`${FIELDS_FILE}: no STEP_RESULT_FIELDS object literal`);
  return Object.fromEntries(
    steps.properties.filter(ts.isPropertyAssignment).map((property) => {
      const table = property.initializer.getText(source);
      const type = tableTypes.get(table);
      if (!type) throw new Error(`${FIELDS_FILE}: ${table} is not declared as FieldPolicy<T>`);
      return [property.name.getText(source), checker.getPropertiesOfType(type).map((field) => field.name)];
    }),
  );
}

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

  it("decides, at run time, every field each result type declares: the type's fields, its table's and its sample's are the same", () => {
    // Act
    const declared = declaredResultFields();
    // Assess
    expect(Object.keys(declared).sort(), "steps read from the tables' declarations").toEqual(Object.keys(STEP_RESULT_FIELDS).sort());
    for (const [step, table] of Object.entries(STEP_RESULT_FIELDS)) {
      const fields = declared[step] ?? [];
      const decided = Object.keys(table);
      const mismatch = { undecided: fields.filter((f) => !decided.includes(f)), notInType: decided.filter((f) => !fields.includes(f)) };
      expect(mismatch, `${step}: its type's fields against its table`).toEqual({ undecided: [], notInType: [] });
    }
    for (const [step, sample] of Object.entries(SAMPLES)) {
      expect(Object.keys(sample).sort(), `${step}: the sample holds exactly the fields its table allows or withholds`).toEqual(
        Object.keys(STEP_RESULT_FIELDS[step] ?? {}).sort(),
      );
    }
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
