/**
 * Replays of what the Lambdas really send, beyond the IAM step's (lambda-permissions.ts): each Lambda's handler (or
 * the step function its handler wraps) runs against recording fakes (the unit tests' IAM and EKS, dynalite for the
 * environment registry, aws-sdk-client-mock for Step Functions, EventBridge and STS), and every recorded call, turned
 * into what AWS authorizes by authorization.ts, must be allowed to that Lambda by the synthesized stack's policies.
 *
 * `replayedActions` keeps which actions each Lambda's replays exercised, so `describeReplayCoverage` can hold every
 * Lambda of the stack to a replay of each AWS call its code can make (test/infra/sdk-calls.ts reads them from the code):
 * a Lambda added later without a replay fails there instead of passing unchecked.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  type AccessEntry,
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  DescribeClusterCommand,
  ListAccessEntriesCommand,
  ListAssociatedAccessPoliciesCommand,
  ResourceNotFoundException,
  UpdateAccessEntryCommand,
} from "@aws-sdk/client-eks";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import type { APIGatewayProxyEventV2, EventBridgeEvent } from "aws-lambda";
import { createSdkCallScanner } from "../infra/sdk-calls.js";
import { ALL_STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import { stepHandlerPath } from "../../stacks/Provisioner.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { IAM_ROLE_PATH, ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { KUBE_IDENTITY_ROLE_ENV } from "../../functions/lib/workflow/drift-reader.js";
import { EnvironmentRegistry, type EnvironmentId, type RunOutcome } from "../../functions/lib/workflow/environment-registry.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { createResolveClusterStep } from "../../functions/steps/resolve-cluster.js";
import { createClusterAccessStep } from "../../functions/steps/cluster-access/index.js";
import { createRemoveUnwantedStep } from "../../functions/steps/remove-unwanted.js";
import { createRemoveUnwantedIdentitiesStep } from "../../functions/steps/remove-unwanted-identities.js";
import { createReportStep } from "../../functions/steps/report.js";
import { createRecordRemovalStep } from "../../functions/steps/teardown-record.js";
import { createProvisionHandler } from "../../functions/api/provision.js";
import { createStatusHandler } from "../../functions/api/status.js";
import {
  createDeleteEnvironmentHandler,
  createEnvironmentHandler,
  createListEnvironmentsHandler,
  createReadEnvironmentHandler,
} from "../../functions/api/environments.js";
import { createReconcileHandler } from "../../functions/api/reconcile.js";
import { createUpdateEnvironmentHandler } from "../../functions/api/update-environment.js";
import { createDriftCheckHandler } from "../../functions/events/drift-check.js";
import { createComputeEnvironmentRequestedHandler } from "../../functions/events/compute-environment-requested.js";
import { createComputeEnvironmentRemovalRequestedHandler } from "../../functions/events/compute-environment-removal-requested.js";
import { createExecutionStoppedHandler } from "../../functions/events/execution-stopped.js";
import { COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED, COMPUTE_ENVIRONMENT_REQUESTED } from "../../functions/lib/domain/deploy-config.js";
import { checkRequest, specOf } from "../../functions/lib/entry/start-provisioning.js";
import { EXECUTION_STATUS_CHANGE } from "../../functions/lib/workflow/stopped-run.js";
import { createRegistryTable, type LocalDynamoDb, startDynamoDb } from "../../local/aws/dynamodb.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { executionRef, markOf, OTHER_RUN, REQUEST, RUN, resolvedCluster, stepState, TENANT } from "../support/fixtures.js";
import {
  apply as createIamResources,
  associations,
  compensate as undoIamResources,
  eks,
  FUSION_IRSA,
  PREVIOUS_TRUST,
  roles,
  setOidcProviders,
  stateFor,
  FUSION_POD_IDENTITY,
  fakeEksClient,
  fakeIamClient,
  iam,
  LAUNCHER,
  LAUNCHER_ARN,
  LAUNCHER_POLICY,
  seedRole,
  WORKLOAD,
  WORKLOAD_ARN,
} from "../support/iam-fakes.js";
import { type AccountModel, accountModel, type AuthorizationRequest, decide, type RecordedCall, requestsOf } from "./authorization.js";
import { ACCOUNT, type DeployedPolicies, lambdaOf, REGION } from "./stack-policies.js";
import { ROUTE_HANDLERS } from "../support/api-routes.js";

// ---------------------------------------------------------------- what was replayed, per Lambda

/** Lambda construct id → the actions its recorded replays exercised (and were allowed). */
const replayedActions = new Map<string, Set<string>>();

/**
 * The requests the Lambda is refused (empty when all are allowed); the actions count as replayed for it. Only for
 * requests built from recorded calls: a hand-written request proves nothing about what the code sends.
 */
export async function refusedReplay(deployed: DeployedPolicies, lambdaId: string, requests: AuthorizationRequest[]): Promise<string[]> {
  const lambda = lambdaOf(deployed, lambdaId);
  const actions = replayedActions.get(lambdaId) ?? new Set<string>();
  replayedActions.set(lambdaId, actions);
  const refusals: string[] = [];
  for (const request of requests) {
    actions.add(request.action);
    const decision = await decide(lambda, request);
    if (decision !== "Allowed") refusals.push(`${decision}: ${request.action} on ${request.resource} ${JSON.stringify(request.context)}`);
  }
  return refusals;
}

// ---------------------------------------------------------------- recording clients

let nextCallId = 1_000_000_000;

/** A real client whose every `send` is recorded (the registry on dynalite answers for real). */
function recording<T extends { send: (...args: any[]) => any }>(client: T): { client: T; calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const send = client.send.bind(client);
  client.send = ((command: any, ...rest: any[]) => {
    const returnValue = send(command, ...rest);
    Promise.resolve(returnValue).catch(() => undefined);
    calls.push({ args: [command], callId: nextCallId++, returnValue });
    return returnValue;
  }) as T["send"];
  return { client, calls };
}

/** Every call recorded on the IAM and EKS fakes and on the mocks given, in order. */
function recordedOn(...mocks: Array<{ calls(): unknown[] }>): RecordedCall[] {
  return [iam, eks, ...mocks].flatMap((mock) => mock.calls() as unknown as RecordedCall[]);
}

// ---------------------------------------------------------------- the fakes' access entries

const accessEntries = new Map<string, AccessEntry>();

function accessEntryNotFound() {
  return new ResourceNotFoundException({
    message: "The specified access entry resource could not be found.",
    $metadata: { httpStatusCode: 404 },
  });
}

/** Access entries on the fake EKS: describe, list, create, update, delete, and no access policies associated. */
export function installAccessEntries(): void {
  accessEntries.clear();
  eks.on(DescribeAccessEntryCommand).callsFake(({ principalArn }) => {
    const entry = accessEntries.get(principalArn);
    if (!entry) throw accessEntryNotFound();
    return { accessEntry: entry };
  });
  eks.on(ListAccessEntriesCommand).callsFake(() => ({ accessEntries: [...accessEntries.keys()] }));
  eks.on(CreateAccessEntryCommand).callsFake(({ clusterName, principalArn, username, kubernetesGroups, tags, type }) => {
    const entry: AccessEntry = { clusterName, principalArn, username, kubernetesGroups, tags, type, createdAt: new Date() };
    accessEntries.set(principalArn, entry);
    return { accessEntry: entry };
  });
  eks.on(UpdateAccessEntryCommand).callsFake(({ principalArn, username, kubernetesGroups }) => {
    const entry = accessEntries.get(principalArn);
    if (!entry) throw accessEntryNotFound();
    Object.assign(entry, { username, kubernetesGroups });
    return { accessEntry: entry };
  });
  eks.on(DeleteAccessEntryCommand).callsFake(({ principalArn }) => {
    if (!accessEntries.delete(principalArn)) throw accessEntryNotFound();
    return {};
  });
  eks.on(ListAssociatedAccessPoliciesCommand).callsFake(({ principalArn }) => {
    if (!accessEntries.has(principalArn)) throw accessEntryNotFound();
    return { associatedAccessPolicies: [] };
  });
}

/** An entry already on the cluster (the model gets its tags: EKS evaluates aws:ResourceTag on it). */
function seedAccessEntry(principalArn: string, tags: Record<string, string>, extra: Partial<AccessEntry> = {}): void {
  accessEntries.set(principalArn, {
    clusterName: "research",
    principalArn,
    username: "tower-launcher-user",
    kubernetesGroups: ["tower-launcher-role"],
    tags,
    type: "STANDARD",
    createdAt: new Date(),
    ...extra,
  });
}

const entryKey = (principalArn: string) => `entry:${principalArn}`;

// ---------------------------------------------------------------- fixtures

const CLUSTER_ARN = `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`;
const CLUSTER_ID: EnvironmentId = { tenant: TENANT, region: REGION, cluster: "research" };
const TENANT_MARKS = tagsToRecord(ownershipTags(TENANT, markOf(OTHER_RUN)));
const FORMER_LAUNCHER_ARN = `arn:aws:iam::${ACCOUNT}:role/team/former-launcher`;
/** What DescribeCluster answers: an API-mode cluster whose endpoint nothing listens on (the Kubernetes half is not AWS's). */
const DESCRIBED_CLUSTER = {
  name: "research",
  arn: CLUSTER_ARN,
  status: "ACTIVE",
  version: "1.31",
  endpoint: "https://127.0.0.1:9",
  certificateAuthority: { data: Buffer.from("not a CA").toString("base64") },
  accessConfig: { authenticationMode: "API" },
  identity: { oidc: { issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE" } },
};
/** A Fusion + Pod Identity spec: the drift check then reads every kind of thing the product owns in AWS. */
const SPEC = { ...structuredClone(REQUEST), ...FUSION_POD_IDENTITY };

function httpEvent(routeKey: string, path: Record<string, string> = {}, body?: unknown, headers: Record<string, string> = {}) {
  return {
    version: "2.0",
    routeKey,
    rawPath: `/${routeKey.split(" /")[1]}`,
    rawQueryString: "",
    headers: { "content-type": "application/json", ...headers },
    pathParameters: path,
    requestContext: { requestId: "req-1", http: { method: routeKey.split(" ")[0], path: "/" } },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
}

/** The spec the registry records for `request`: checked and stored as the entry points store it (start-provisioning.ts). */
function recordedSpec(request: Record<string, unknown>): Record<string, unknown> {
  const checked = checkRequest(request);
  if (!checked.ok) throw new Error(`not a valid request: ${JSON.stringify(checked.problems)}`);
  return specOf(checked.request);
}

function busEvent(detailType: string, detail: unknown, source = "platform.onboarding"): EventBridgeEvent<string, any> {
  return {
    version: "0",
    id: "4f1e2c3d-0000-1111-2222-333344445555",
    "detail-type": detailType,
    source,
    account: ACCOUNT,
    time: new Date().toISOString(),
    region: REGION,
    resources: [],
    detail,
  };
}

const ENV_PATH = { tenant: TENANT, region: REGION, cluster: "research" };
const lambdaContext = { getRemainingTimeInMillis: () => 60_000, awsRequestId: "req-1" } as never;

/** The suite of replays for one deployment (`deployedOf` is read once its synth is done). */
export function describeReplays(configuration: string, deployedOf: () => DeployedPolicies): void {
  let dynamo: LocalDynamoDb;
  let seedClient: DynamoDBClient;
  let tableName: string;
  let seeded: EnvironmentRegistry;
  let table: { client: DynamoDBClient; calls: RecordedCall[] };
  const sfnClient = new SFNClient({ region: REGION });
  const sfn = mockClient(sfnClient);
  const eventsClient = new EventBridgeClient({ region: REGION });
  const events = mockClient(eventsClient);
  const sts = mockClient(STSClient);
  let tables = 0;

  describe(`the Lambdas added later make only allowed calls (${configuration})`, () => {
    beforeAll(async () => {
      dynamo = await startDynamoDb();
      seedClient = new DynamoDBClient({ region: REGION, endpoint: dynamo.url, credentials: { accessKeyId: "k", secretAccessKey: "s" } });
    });

    afterAll(async () => {
      seedClient.destroy();
      table?.client.destroy();
      await dynamo.close();
      sts.restore();
    });

    beforeEach(async () => {
      // The deployed table's name, so the recorded calls name the deployed table's ARN (one fresh table per test).
      tables += 1;
      const deployedName = deployedOf().registryTableArn.split("/").pop()!;
      tableName = tables === 1 ? deployedName : `${deployedName}-${tables}`;
      await createRegistryTable(dynamo.url, tableName);
      seeded = new EnvironmentRegistry({ dynamodb: seedClient, tableName });
      table?.client.destroy();
      table = recording(
        new DynamoDBClient({ region: REGION, endpoint: dynamo.url, credentials: { accessKeyId: "k", secretAccessKey: "s" } }),
      );
      sfn.reset();
      events.reset();
      sts.reset();
      events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "e-1" }] });
      sfn.on(ListExecutionsCommand).resolves({ executions: [] });
      sfn
        .on(DescribeExecutionCommand)
        .rejects(new ExecutionDoesNotExist({ message: "Execution Does Not Exist", $metadata: { httpStatusCode: 400 } }));
      sfn.on(StartExecutionCommand).callsFake(({ stateMachineArn, name }) => ({
        executionArn: `${stateMachineArn.replace(":stateMachine:", ":execution:")}:${name}`,
        startDate: new Date(),
      }));
      sts.on(AssumeRoleCommand).resolves({
        Credentials: { AccessKeyId: "ASIA", SecretAccessKey: "s", SessionToken: "t", Expiration: new Date(Date.now() + 900_000) },
      });
      installAccessEntries();
      eks.on(DescribeClusterCommand).resolves({ cluster: DESCRIBED_CLUSTER as never });
    });

    /** The deployment's registry table as a test's handler reaches it (recorded), and its ARN resolved as deployed. */
    const registryDeps = () => ({ dynamodb: table.client, tableName });
    const registry = () => new EnvironmentRegistry(registryDeps());
    /** The recorded DynamoDB calls as on the deployed table (a test's own table stands for it). */
    const tableCalls = () =>
      table.calls.map((call) => {
        const [command] = call.args;
        const input = { ...command.input, TableName: deployedOf().registryTableArn.split("/").pop() };
        return { ...call, args: [{ constructor: command.constructor, input }] } as RecordedCall;
      });
    /** Every recorded call of the test, as requests (the account model for IAM and EKS given). */
    const requests = async (model: AccountModel = accountModel()) => [
      ...(await requestsOf(recordedOn(sfn, events, sts), model)),
      ...(await requestsOf(tableCalls(), model)),
    ];
    /** A ready environment of the tenant on the deployment's cluster, as a run leaves it (spec, owned), lease released. */
    /** An environment recorded ready for `request`, its spec stored as the entry points store it (so a reconcile re-runs it). */
    async function readyEnvironment(request: Record<string, unknown>, owned: Record<string, unknown>): Promise<void> {
      const spec = recordedSpec(request);
      await seeded.createEnvironment(CLUSTER_ID, spec);
      const owner = { name: "genomics_k0", arn: `${deployedOf().stateMachineArn.replace(":stateMachine:", ":execution:")}:genomics_k0` };
      await seeded.takeLease(CLUSTER_ID, { owner, expiresAt: Math.floor(Date.now() / 1000) + 3600, spec });
      await seeded.recordOutcome(CLUSTER_ID, owner.arn, { status: "ready", owned });
    }
    /** The tenant's launcher and workload roles (a policy of each kind, the stack's boundary) and its Pod Identity association, made by an earlier run; the boundary's ARN. */
    function seedTenantRolesAndAssociation(): string {
      const boundary = deployedOf().boundaryArn;
      for (const name of [LAUNCHER, WORKLOAD]) {
        const role = seedRole(name, {}, ownershipTags(TENANT, markOf(OTHER_RUN)), { [LAUNCHER_POLICY]: {} }, [
          `arn:aws:iam::${ACCOUNT}:policy/team-extra`,
        ]);
        role.role.PermissionsBoundary = { PermissionsBoundaryArn: boundary, PermissionsBoundaryType: "PermissionsBoundaryPolicy" };
      }
      associations.set("a-1", {
        clusterName: "research",
        namespace: "tower-nf",
        serviceAccount: "tower-launcher-sa",
        roleArn: WORKLOAD_ARN,
        associationId: "a-1",
        tags: TENANT_MARKS,
      });
      return boundary;
    }
    const deployedBusName = () => deployedOf().eventBusArn.split("/").pop()!;
    const startDeps = () => ({ sfn: sfnClient, stateMachineArn: deployedOf().stateMachineArn, registry: registry() });

    it("ResolveCluster: DescribeCluster on the requested, allowlisted cluster", async () => {
      // Prepare
      const { apply } = createResolveClusterStep({ eks: fakeEksClient });
      // Act
      await apply(stepState(), lambdaContext);
      const replayed = await requests();
      // Assess
      expect(replayed.map((r) => r.action)).toEqual(["eks:DescribeCluster"]);
      expect(await refusedReplay(deployedOf(), "ResolveClusterFunction", replayed)).toEqual([]);
    });

    it("GrantClusterAccess adopting the tenant's entry (UpdateAccessEntry to the tenant's identity), then UndoClusterAccess putting it back", async () => {
      // Prepare: another run's entry for this launcher, mapped to the shared identity of an earlier version
      seedAccessEntry(LAUNCHER_ARN, TENANT_MARKS);
      const model = accountModel({}, { [entryKey(LAUNCHER_ARN)]: TENANT_MARKS });
      const { apply, compensate } = createClusterAccessStep({ eks: fakeEksClient });
      const state = stepState({}, RUN, {
        cluster: resolvedCluster({ authenticationMode: "API" }),
        iam: { launcherArn: LAUNCHER_ARN, launcherKind: "role", launcherCreated: false, created: [] } as never,
      });
      // Act
      const access = await apply(state, lambdaContext);
      const granted = await requests(model);
      eks.resetHistory();
      await compensate({ ...state, access }, lambdaContext);
      const undone = await requests(model);
      // Assess: the entry was updated, then its identity put back
      expect(granted.map((r) => r.action)).toEqual(["eks:DescribeAccessEntry", "eks:UpdateAccessEntry"]);
      expect(undone.map((r) => r.action)).toEqual(["eks:DescribeAccessEntry", "eks:UpdateAccessEntry"]);
      expect(accessEntries.get(LAUNCHER_ARN)?.username).toBe("tower-launcher-user");
      expect(await refusedReplay(deployedOf(), "GrantClusterAccessFunction", granted)).toEqual([]);
      expect(await refusedReplay(deployedOf(), "UndoClusterAccessFunction", undone)).toEqual([]);
    });

    it("GrantClusterAccess replacing the tenant's entry made for an earlier instance of the launcher role", async () => {
      // Prepare
      seedAccessEntry(LAUNCHER_ARN, TENANT_MARKS, { createdAt: new Date("2024-01-01T00:00:00Z") });
      const model = accountModel({}, { [entryKey(LAUNCHER_ARN)]: TENANT_MARKS });
      const { apply } = createClusterAccessStep({ eks: fakeEksClient });
      const state = stepState({}, RUN, {
        cluster: resolvedCluster({ authenticationMode: "API" }),
        iam: {
          launcherArn: LAUNCHER_ARN,
          launcherKind: "role",
          launcherCreated: true,
          created: [LAUNCHER_ARN],
          launcherCreateDate: "2025-01-01T00:00:00Z",
        } as never,
      });
      // Act
      await apply(state, lambdaContext);
      const granted = await requests(model);
      // Assess
      expect(granted.map((r) => r.action)).toEqual([
        "eks:DescribeAccessEntry",
        "eks:DeleteAccessEntry",
        "eks:CreateAccessEntry",
        "eks:TagResource",
      ]);
      expect(await refusedReplay(deployedOf(), "GrantClusterAccessFunction", granted)).toEqual([]);
    });

    it("UndoClusterAccess in a teardown: every access entry tagged as the tenant's, found by listing the cluster's", async () => {
      // Prepare: the recorded launcher's entry and a former launcher's, both the tenant's; someone else's
      seedAccessEntry(LAUNCHER_ARN, TENANT_MARKS);
      seedAccessEntry(FORMER_LAUNCHER_ARN, TENANT_MARKS);
      seedAccessEntry(`arn:aws:iam::${ACCOUNT}:role/admin`, {});
      const model = accountModel(
        {},
        {
          [entryKey(LAUNCHER_ARN)]: TENANT_MARKS,
          [entryKey(FORMER_LAUNCHER_ARN)]: TENANT_MARKS,
          [entryKey(`arn:aws:iam::${ACCOUNT}:role/admin`)]: {},
        },
      );
      const { compensate } = createClusterAccessStep({ eks: fakeEksClient });
      const state = {
        ...stepState({}, "genomics-teardown", { cluster: resolvedCluster({ authenticationMode: "API" }) }),
        removal: { environment: CLUSTER_ID, owned: { clusterAccess: { method: "access-entry", principalArn: LAUNCHER_ARN } } },
      } as WorkflowState;
      // Act
      await compensate(state, lambdaContext);
      const undone = await requests(model);
      // Assess: both of the tenant's entries deleted, the other kept
      expect(undone.filter((r) => r.action === "eks:DeleteAccessEntry")).toHaveLength(2);
      expect([...accessEntries.keys()]).toEqual([`arn:aws:iam::${ACCOUNT}:role/admin`]);
      expect(await refusedReplay(deployedOf(), "UndoClusterAccessFunction", undone)).toEqual([]);
    });

    it("RemoveUnwantedResources: the access entry of the launcher the update no longer names", async () => {
      // Prepare
      seedAccessEntry(FORMER_LAUNCHER_ARN, TENANT_MARKS);
      const model = accountModel({}, { [entryKey(FORMER_LAUNCHER_ARN)]: TENANT_MARKS });
      const { apply } = createRemoveUnwantedStep({ kube: new FakeKubeApi(), eks: fakeEksClient });
      const state = stepState({}, RUN, {
        cluster: resolvedCluster({ authenticationMode: "API" }),
        access: { method: "access-entry", principalArn: LAUNCHER_ARN, username: "u", groups: [], created: true },
        update: {
          previous: { spec: {}, generation: 1, owned: { clusterAccess: { method: "access-entry", principalArn: FORMER_LAUNCHER_ARN } } },
          generation: 2,
        },
      });
      // Act
      await apply(state, lambdaContext);
      const replayed = await requests(model);
      // Assess
      expect(replayed.map((r) => r.action)).toEqual(["eks:DescribeAccessEntry", "eks:DeleteAccessEntry"]);
      expect(accessEntries.has(FORMER_LAUNCHER_ARN)).toBe(false);
      expect(await refusedReplay(deployedOf(), "RemoveUnwantedResourcesFunction", replayed)).toEqual([]);
    });

    it("RemoveUnwantedIdentities: the workload role (emptied first) and the Pod Identity association an update to PVC no longer uses", async () => {
      // Prepare: the previous generation's workload role (an inline policy, a policy someone attached) and association
      const boundary = deployedOf().boundaryArn;
      const role = seedRole(WORKLOAD, {}, ownershipTags(TENANT, markOf(OTHER_RUN)), { "fusion-s3": {} }, [
        `arn:aws:iam::${ACCOUNT}:policy/team-extra`,
      ]);
      role.role.PermissionsBoundary = { PermissionsBoundaryArn: boundary, PermissionsBoundaryType: "PermissionsBoundaryPolicy" };
      associations.set("a-old", {
        clusterName: "research",
        namespace: "tower-nf",
        serviceAccount: "tower-launcher-sa",
        roleArn: WORKLOAD_ARN,
        associationId: "a-old",
        tags: TENANT_MARKS,
      });
      const model = accountModel({ [WORKLOAD]: { path: IAM_ROLE_PATH, tags: TENANT_MARKS, boundary } }, { "a-old": TENANT_MARKS });
      const { apply } = createRemoveUnwantedIdentitiesStep({ iam: fakeIamClient, eks: fakeEksClient });
      const state = stepState({}, RUN, {
        cluster: resolvedCluster({ authenticationMode: "API" }),
        iam: { launcherArn: LAUNCHER_ARN, launcherKind: "role", launcherCreated: false, created: [] } as never,
        update: {
          previous: {
            spec: {},
            generation: 1,
            owned: { roles: [LAUNCHER_ARN, WORKLOAD_ARN], podIdentityAssociations: ["a-old"] },
          },
          generation: 2,
        },
      });
      // Act
      const result = await apply(state, lambdaContext);
      const replayed = await requests(model);
      // Assess: both gone, by reads and deletes only
      expect(result.kept).toEqual([]);
      expect(replayed.map((r) => r.action)).toEqual(
        expect.arrayContaining([
          "eks:DescribePodIdentityAssociation",
          "eks:DeletePodIdentityAssociation",
          "iam:GetRole",
          "iam:ListRolePolicies",
          "iam:DeleteRolePolicy",
          "iam:ListAttachedRolePolicies",
          "iam:DetachRolePolicy",
          "iam:DeleteRole",
        ]),
      );
      expect(await refusedReplay(deployedOf(), "RemoveUnwantedIdentitiesFunction", replayed)).toEqual([]);
    });

    it("CreateIamResources failing after putting a policy on an adopted role that had none takes it off again", async () => {
      // Prepare: another run's launcher with no inline policy; no OIDC provider, so the workload role cannot be made
      seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags(TENANT, markOf(OTHER_RUN)));
      setOidcProviders([]);
      const model = accountModel({ [LAUNCHER]: { path: IAM_ROLE_PATH, tags: TENANT_MARKS } });
      // Act
      await createIamResources(stateFor(FUSION_IRSA)).catch(() => undefined);
      const replayed = await requests(model);
      // Assess: the policy it put is deleted, the trust put back
      expect(replayed.map((r) => r.action)).toEqual(expect.arrayContaining(["iam:PutRolePolicy", "iam:DeleteRolePolicy"]));
      expect(await refusedReplay(deployedOf(), "CreateIamResourcesFunction", replayed)).toEqual([]);
    });

    it("UndoIamResources in a teardown: the tenant's roles emptied (inline and attached policies) and deleted, its associations deleted", async () => {
      // Prepare
      const boundary = seedTenantRolesAndAssociation();
      const model = accountModel(
        {
          [LAUNCHER]: { path: IAM_ROLE_PATH, tags: TENANT_MARKS, boundary },
          [WORKLOAD]: { path: IAM_ROLE_PATH, tags: TENANT_MARKS, boundary },
        },
        { "a-1": TENANT_MARKS },
      );
      const state = {
        ...stepState(FUSION_POD_IDENTITY, "genomics-teardown", { cluster: resolvedCluster() }),
        removal: { environment: CLUSTER_ID, owned: { roles: [LAUNCHER_ARN, WORKLOAD_ARN], podIdentityAssociations: ["a-1"] } },
      } as WorkflowState;
      // Act
      await undoIamResources(state);
      const replayed = await requests(model);
      // Assess
      expect(replayed.map((r) => r.action)).toEqual(
        expect.arrayContaining(["iam:DetachRolePolicy", "iam:DeleteRolePolicy", "iam:DeleteRole", "eks:DeletePodIdentityAssociation"]),
      );
      expect(roles.size).toBe(0);
      expect(await refusedReplay(deployedOf(), "UndoIamResourcesFunction", replayed)).toEqual([]);
    });

    it("Report and ReportFailure: the outcome on the registry (one UpdateItem) and the event on the product's bus", async () => {
      // Prepare: the run holds the environment's lease
      const execution = executionRef(RUN);
      await seeded.createEnvironment(CLUSTER_ID, REQUEST);
      await seeded.takeLease(CLUSTER_ID, {
        owner: { name: execution.name, arn: execution.id },
        expiresAt: Math.floor(Date.now() / 1000) + 3600,
        spec: REQUEST,
      });
      const { ready, failed } = createReportStep({ registry: registryDeps(), events: eventsClient, eventBusName: deployedBusName() });
      const state = stepState({}, RUN, { cluster: resolvedCluster() });
      // Act
      await ready(state, lambdaContext);
      const reported = await requests();
      table.calls.length = 0;
      events.resetHistory();
      await seeded.takeLease(CLUSTER_ID, {
        owner: { name: execution.name, arn: execution.id },
        expiresAt: Math.floor(Date.now() / 1000) + 3600,
        spec: REQUEST,
      });
      await failed({ ...state, error: { Error: "OwnershipConflict", Cause: "{}" }, failedStep: "CreateIamResources" }, lambdaContext);
      const reportedFailure = await requests();
      // Assess
      for (const made of [reported, reportedFailure])
        expect(made.map((r) => `${r.action} ${r.resource}`)).toEqual([
          `events:PutEvents ${deployedOf().eventBusArn}`,
          `dynamodb:UpdateItem ${deployedOf().registryTableArn}`,
        ]);
      expect(await refusedReplay(deployedOf(), "ReportFunction", reported)).toEqual([]);
      expect(await refusedReplay(deployedOf(), "ReportFailureFunction", reportedFailure)).toEqual([]);
    });

    it("RecordRemoval: the teardown's outcome on the registry and ComputeEnvironmentRemoved on the product's bus", async () => {
      // Prepare: the teardown holds the lease
      const teardown = `${deployedOf().deprovisionStateMachineArn.replace(":stateMachine:", ":execution:")}:genomics-teardown`;
      await readyEnvironment(REQUEST, {});
      await seeded.takeRemovalLease(CLUSTER_ID, {
        owner: { name: "genomics-teardown", arn: teardown },
        expiresAt: Math.floor(Date.now() / 1000) + 3600,
      });
      const { record } = createRecordRemovalStep({ registry: registryDeps(), events: eventsClient, eventBusName: deployedBusName() });
      const state = {
        ...stepState({}, "genomics-teardown", { cluster: resolvedCluster() }),
        execution: { ...executionRef("genomics-teardown"), id: teardown },
        removal: { environment: CLUSTER_ID, owned: {} },
        compensation: {},
      } as WorkflowState;
      // Act
      await record(state, lambdaContext);
      const replayed = await requests();
      // Assess
      expect(replayed.map((r) => r.action).sort()).toEqual(["dynamodb:UpdateItem", "events:PutEvents"]);
      expect(await refusedReplay(deployedOf(), "RecordRemovalFunction", replayed)).toEqual([]);
    });

    it("the drift readers (GET of an environment, the scheduled check): reads of what the product owns, the provisioner's session, the event", async () => {
      // Prepare: a ready Fusion + Pod Identity environment and what it owns in AWS
      const boundary = seedTenantRolesAndAssociation();
      seedAccessEntry(LAUNCHER_ARN, TENANT_MARKS);
      await readyEnvironment(SPEC, {
        roles: [LAUNCHER_ARN, WORKLOAD_ARN],
        podIdentityAssociations: ["a-1"],
        clusterAccess: { method: "access-entry", principalArn: LAUNCHER_ARN },
      });
      const model = accountModel(
        {
          [LAUNCHER]: { path: IAM_ROLE_PATH, tags: TENANT_MARKS, boundary },
          [WORKLOAD]: { path: IAM_ROLE_PATH, tags: TENANT_MARKS, boundary },
        },
        { "a-1": TENANT_MARKS, [entryKey(LAUNCHER_ARN)]: TENANT_MARKS },
      );
      vi.stubEnv(KUBE_IDENTITY_ROLE_ENV, deployedOf().kubeStepsRoleArn);
      resetClients();
      const drift = { iam: fakeIamClient, eks: fakeEksClient };
      const read = createReadEnvironmentHandler({ table: registryDeps(), drift });
      // Act: the GET (the cluster itself cannot be reached: the AWS reads all come before)
      try {
        await read(httpEvent("GET /environments/{tenant}/{region}/{cluster}", ENV_PATH), lambdaContext);
        const readRoute = await requests(model);
        iam.resetHistory();
        eks.resetHistory();
        sts.resetHistory();
        table.calls.length = 0;
        // ...and the scheduled check, once as deployed (the provisioner's session) and once reaching a cluster (the event)
        const check = createDriftCheckHandler({ table: registryDeps(), drift, events: eventsClient, eventBusName: deployedBusName() });
        await check(busEvent("Scheduled Event", {}, "aws.scheduler"), lambdaContext);
        const reached = createDriftCheckHandler({
          table: registryDeps(),
          drift: { ...drift, kube: new FakeKubeApi() },
          events: eventsClient,
          eventBusName: deployedBusName(),
        });
        await reached(busEvent("Scheduled Event", {}, "aws.scheduler"), lambdaContext);
        const scheduled = await requests(model);
        // Assess
        const reads = [
          "eks:DescribeCluster",
          "iam:GetRole",
          "iam:GetRolePolicy",
          "iam:ListRolePolicies",
          "iam:ListAttachedRolePolicies",
          "eks:ListPodIdentityAssociations",
          "eks:DescribePodIdentityAssociation",
          "eks:DescribeAccessEntry",
          "eks:ListAssociatedAccessPolicies",
          "sts:AssumeRole",
        ];
        expect(new Set(readRoute.map((r) => r.action))).toEqual(new Set([...reads, "dynamodb:GetItem"]));
        expect(new Set(scheduled.map((r) => r.action))).toEqual(new Set([...reads, "dynamodb:Query", "events:PutEvents"]));
        expect(await refusedReplay(deployedOf(), "ApiLambdaGETenvironmentstenantregioncluster", readRoute)).toEqual([]);
        expect(await refusedReplay(deployedOf(), "DriftCheckFunction", scheduled)).toEqual([]);
      } finally {
        vi.unstubAllEnvs();
        resetClients();
      }
    });

    it("the entry points that start runs (POST /provision, POST /environments, PUT, reconcile, the onboarding event)", async () => {
      // Prepare
      const update = () => {
        const { tenant: _tenant, cluster: _cluster, ...spec } = { ...REQUEST, storage: { type: "pvc", size: "200Gi" } };
        return spec;
      };
      /** The run just started ends (its outcome recorded, its lease released), as `outcome` says. */
      const runEnds = (outcome: Omit<RunOutcome, "owned">) => async () => {
        const owner = (await seeded.getEnvironment(CLUSTER_ID))?.lease?.owner ?? "";
        expect(await seeded.recordOutcome(CLUSTER_ID, owner, { ...outcome, owned: {} })).toBe(true);
      };
      const failure = { error: "OwnershipConflict", cause: "{}", at: new Date().toISOString(), generation: 2 };
      const starts: Array<[string, { ready?: boolean; between?: () => Promise<void> }, () => Promise<unknown>]> = [
        [
          "ApiLambdaPOSTprovision",
          {},
          () => createProvisionHandler(startDeps())(httpEvent("POST /provision", {}, REQUEST, { "idempotency-key": "k1" }), lambdaContext),
        ],
        [
          "ApiLambdaPOSTenvironments",
          // the create failed: a keyed repeat creates again, and finds the key's run
          { between: runEnds({ status: "failed" }) },
          () =>
            createEnvironmentHandler(startDeps())(httpEvent("POST /environments", {}, REQUEST, { "idempotency-key": "k2" }), lambdaContext),
        ],
        [
          "ApiLambdaPUTenvironmentstenantregioncluster",
          // the update failed and the previous generation is back: a keyed repeat finds the key's run
          { ready: true, between: runEnds({ status: "ready", restore: { spec: recordedSpec(REQUEST), generation: 1, failure } }) },
          () =>
            createUpdateEnvironmentHandler(startDeps())(
              httpEvent("PUT /environments/{tenant}/{region}/{cluster}", ENV_PATH, update(), { "idempotency-key": "k3" }),
              lambdaContext,
            ),
        ],
        [
          "ApiLambdaPOSTenvironmentstenantregionclusterreconcile",
          { ready: true },
          () =>
            createReconcileHandler(startDeps())(
              httpEvent("POST /environments/{tenant}/{region}/{cluster}/reconcile", ENV_PATH, undefined, { "idempotency-key": "k4" }),
              lambdaContext,
            ),
        ],
        [
          "ComputeEnvironmentRequestedFunction",
          {},
          () => createComputeEnvironmentRequestedHandler(startDeps())(busEvent(COMPUTE_ENVIRONMENT_REQUESTED, REQUEST), lambdaContext),
        ],
      ];
      for (const [lambdaId, given, start] of starts) {
        // Act: a start on a fresh registry, then its repeat (the key found, the run described) while another run of the tenant is listed
        await resetTable();
        if (given.ready) await readyEnvironment(REQUEST, {});
        table.calls.length = 0;
        await start();
        await given.between?.();
        sfn.on(DescribeExecutionCommand).resolves({ status: "RUNNING", input: "{}" });
        sfn.on(ListExecutionsCommand).resolves({ executions: [{ name: `${TENANT}_other`, executionArn: "x" } as never] });
        await start().catch(() => undefined);
        const replayed = await requests();
        sfn.on(ListExecutionsCommand).resolves({ executions: [] });
        sfn
          .on(DescribeExecutionCommand)
          .rejects(new ExecutionDoesNotExist({ message: "Execution Does Not Exist", $metadata: { httpStatusCode: 400 } }));
        // Assess
        expect(
          replayed.filter((r) => r.action === "states:StartExecution").map((r) => r.resource),
          lambdaId,
        ).toEqual([deployedOf().stateMachineArn]);
        expect(await refusedReplay(deployedOf(), lambdaId, replayed), lambdaId).toEqual([]);
      }
    });

    it("the teardown's entry points (DELETE, the removal event) and the registry's listing", async () => {
      // Prepare
      const teardownDeps = () => ({
        sfn: sfnClient,
        deprovisionStateMachineArn: deployedOf().deprovisionStateMachineArn,
        registry: registry(),
      });
      const calls: Array<[string, () => Promise<unknown>]> = [
        [
          "ApiLambdaDELETEenvironmentstenantregioncluster",
          () =>
            createDeleteEnvironmentHandler(teardownDeps())(
              httpEvent("DELETE /environments/{tenant}/{region}/{cluster}", ENV_PATH),
              lambdaContext,
            ),
        ],
        [
          "ComputeEnvironmentRemovalRequestedFunction",
          () =>
            createComputeEnvironmentRemovalRequestedHandler(teardownDeps())(
              busEvent(COMPUTE_ENVIRONMENT_REMOVAL_REQUESTED, { tenant: TENANT, cluster: REQUEST.cluster }),
              lambdaContext,
            ),
        ],
        [
          "ApiLambdaGETenvironments",
          () => createListEnvironmentsHandler({ table: registryDeps() })(httpEvent("GET /environments"), lambdaContext),
        ],
      ];
      for (const [lambdaId, call] of calls) {
        // Act
        await resetTable();
        await readyEnvironment(REQUEST, {});
        table.calls.length = 0;
        await call();
        const replayed = await requests();
        // Assess
        expect(replayed.length, lambdaId).toBeGreaterThan(0);
        for (const started of replayed.filter((r) => r.action === "states:StartExecution"))
          expect(started.resource).toBe(deployedOf().deprovisionStateMachineArn);
        expect(await refusedReplay(deployedOf(), lambdaId, replayed), lambdaId).toEqual([]);
      }
    });

    it("GET /executions/{id}: a provision run's description and history", async () => {
      // Prepare
      const executionArn = `${deployedOf().stateMachineArn.replace(":stateMachine:", ":execution:")}:genomics_k1`;
      sfn.on(DescribeExecutionCommand).resolves({
        executionArn,
        stateMachineArn: deployedOf().stateMachineArn,
        name: "genomics_k1",
        status: "RUNNING",
        startDate: new Date(),
        input: JSON.stringify({ request: REQUEST }),
      });
      sfn.on(GetExecutionHistoryCommand).resolves({ events: [] });
      const status = createStatusHandler({
        sfn: sfnClient,
        stateMachineArn: deployedOf().stateMachineArn,
        deprovisionStateMachineArn: deployedOf().deprovisionStateMachineArn,
      });
      // Act
      await status(httpEvent("GET /executions/{id}", { id: "genomics_k1" }), lambdaContext);
      const replayed = await requests();
      // Assess
      expect(new Set(replayed.map((r) => `${r.action} ${r.resource}`))).toEqual(
        new Set([`states:DescribeExecution ${executionArn}`, `states:GetExecutionHistory ${executionArn}`]),
      );
      expect(await refusedReplay(deployedOf(), "ApiLambdaGETexecutionsid", replayed)).toEqual([]);
    });

    it("ExecutionStopped: a stopped provision run compensated, a stopped teardown recorded failed", async () => {
      // Prepare: a provision run stopped after its Start state; a teardown stopped holding the lease
      const executions = (machine: string) => machine.replace(":stateMachine:", ":execution:");
      const provisionRun = `${executions(deployedOf().stateMachineArn)}:genomics_k1`;
      const teardownRun = `${executions(deployedOf().deprovisionStateMachineArn)}:genomics-teardown`;
      const at = new Date();
      const startOutput = { request: REQUEST, execution: { name: "genomics_k1", id: provisionRun, startTime: at.toISOString() } };
      const provisionHistory: HistoryEvent[] = [
        { id: 1, type: "ExecutionStarted", timestamp: at },
        { id: 2, type: "PassStateEntered", timestamp: at, stateEnteredEventDetails: { name: "Start", input: "{}" } },
        { id: 3, type: "PassStateExited", timestamp: at, stateExitedEventDetails: { name: "Start", output: JSON.stringify(startOutput) } },
      ];
      const teardownHistory: HistoryEvent[] = [
        {
          id: 1,
          type: "ExecutionStarted",
          timestamp: at,
          executionStartedEventDetails: { input: JSON.stringify({ request: REQUEST, removal: { environment: CLUSTER_ID, owned: {} } }) },
        },
      ];
      sfn.on(GetExecutionHistoryCommand, { executionArn: provisionRun }).resolves({ events: provisionHistory });
      sfn.on(GetExecutionHistoryCommand, { executionArn: teardownRun }).resolves({ events: teardownHistory });
      await readyEnvironment(REQUEST, {});
      await seeded.takeRemovalLease(CLUSTER_ID, {
        owner: { name: "genomics-teardown", arn: teardownRun },
        expiresAt: Math.floor(Date.now() / 1000) + 3600,
      });
      const stopped = createExecutionStoppedHandler({
        sfn: sfnClient,
        stateMachineArn: deployedOf().stateMachineArn,
        compensationStateMachineArn: deployedOf().compensationStateMachineArn,
        deprovisionStateMachineArn: deployedOf().deprovisionStateMachineArn,
        registry: registryDeps(),
        graceSeconds: 0,
      });
      const change = (executionArn: string, stateMachineArn: string, name: string) =>
        busEvent(
          EXECUTION_STATUS_CHANGE,
          { executionArn, stateMachineArn, name, status: "TIMED_OUT", stopDate: at.getTime() },
          "aws.states",
        );
      // Act
      const compensated = await stopped(change(provisionRun, deployedOf().stateMachineArn, "genomics_k1"), lambdaContext);
      const recorded = await stopped(change(teardownRun, deployedOf().deprovisionStateMachineArn, "genomics-teardown"), lambdaContext);
      const replayed = await requests();
      // Assess
      expect(compensated).toMatchObject({ outcome: "compensation-started" });
      expect(recorded).toMatchObject({ outcome: "teardown-recorded-failed" });
      expect(replayed.filter((r) => r.action === "states:StartExecution").map((r) => r.resource)).toEqual([
        deployedOf().compensationStateMachineArn,
      ]);
      expect(await refusedReplay(deployedOf(), "ExecutionStoppedFunction", replayed)).toEqual([]);
    });
  });

  /** A fresh, empty registry table for the next start (each under the deployed table's name in the recorded calls). */
  async function resetTable(): Promise<void> {
    tables += 1;
    tableName = `${deployedOf().registryTableArn.split("/").pop()!}-${tables}`;
    await createRegistryTable(dynamo.url, tableName);
    seeded = new EnvironmentRegistry({ dynamodb: seedClient, tableName });
    table.calls.length = 0;
    sfn.resetHistory();
    events.resetHistory();
  }
}

// ---------------------------------------------------------------- every Lambda, every call its code can make

/** Every Lambda of the stack by construct id → its handler (`functions/<path>.<export>`). */
export const HANDLER_OF_LAMBDA: Record<string, string> = {
  ...Object.fromEntries(ALL_STEP_FUNCTIONS.map((entry) => [`${entry.state}Function`, stepHandlerPath(entry)])),
  ...Object.fromEntries(
    Object.entries(ROUTE_HANDLERS).map(([route, handler]) => [`ApiLambda${route.replace(/[^A-Za-z0-9]/g, "")}`, handler]),
  ),
  DriftCheckFunction: "functions/events/drift-check.handler",
  ComputeEnvironmentRequestedFunction: "functions/events/compute-environment-requested.handler",
  ExecutionStoppedFunction: "functions/events/execution-stopped.handler",
  ComputeEnvironmentRemovalRequestedFunction: "functions/events/compute-environment-removal-requested.handler",
};

/** Calls no IAM permission governs (an EKS token is a presigned GetCallerIdentity, never sent by the Lambda). */
const NEEDS_NO_PERMISSION = new Set(["sts:GetCallerIdentity"]);

/**
 * Calls the code can reach (the scan follows references, not execution) that no replay makes, each with why. The
 * registry is one module: a route that starts runs references its listing (Query) but never lists.
 */
const LISTING = "the registry's listing (Query) is granted with its reads; only GET /environments and the drift check list";
const CREATING = "the registry's create (PutItem) is granted with its starts; a teardown never creates a record";
const NOT_REPLAYED: Record<string, Record<string, string>> = {
  ...Object.fromEntries(
    [
      "ApiLambdaPOSTprovision",
      "ApiLambdaPOSTenvironments",
      "ApiLambdaPUTenvironmentstenantregioncluster",
      "ApiLambdaPOSTenvironmentstenantregionclusterreconcile",
      "ComputeEnvironmentRequestedFunction",
    ].map((id) => [id, { "dynamodb:Query": LISTING }]),
  ),
  ...Object.fromEntries(
    ["ApiLambdaDELETEenvironmentstenantregioncluster", "ComputeEnvironmentRemovalRequestedFunction"].map((id) => [
      id,
      { "dynamodb:Query": LISTING, "dynamodb:PutItem": CREATING },
    ]),
  ),
};

export function describeReplayCoverage(configuration: string, deployedOf: () => DeployedPolicies): void {
  describe(`every Lambda is replayed (${configuration})`, () => {
    it("every Lambda of the stack has replays that make each AWS call its code can make, all allowed", () => {
      // Prepare
      const scanner = createSdkCallScanner(process.cwd());
      // Act
      const unknownLambdas = deployedOf()
        .lambdas.map((lambda) => lambda.id)
        .filter((id) => !HANDLER_OF_LAMBDA[id]);
      const missing: string[] = [];
      for (const [id, handler] of Object.entries(HANDLER_OF_LAMBDA)) {
        const dot = handler.lastIndexOf(".");
        const calls = [...scanner.actionsOf(`${handler.slice(0, dot)}.ts`, handler.slice(dot + 1))].filter(
          (a) => !NEEDS_NO_PERMISSION.has(a),
        );
        const replayed = replayedActions.get(id) ?? new Set<string>();
        for (const action of calls) if (!replayed.has(action) && !NOT_REPLAYED[id]?.[action]) missing.push(`${id}: ${action}`);
      }
      // Assess
      expect(unknownLambdas, "Lambdas of the stack this suite does not know: add their replays").toEqual([]);
      expect(missing, "calls a Lambda's code can make that no replay made").toEqual([]);
    }, 60_000);
  });
}
