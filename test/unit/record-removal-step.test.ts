/**
 * RecordRemoval (steps/teardown-record.ts), built by createRecordRemovalStep around a DynamoDB client (the registry)
 * and an EventBridge client, both mocked: a teardown that left nothing of the tenant's records `removed` (what was kept
 * on purpose listed under `owned.kept`) and then puts ComputeEnvironmentRemoved on the bus; one that could not remove
 * everything records `failed` with exactly what remains and why, and emits nothing. One conditional write by the
 * lease's owner, which also releases the lease.
 */
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput } from "@aws-sdk/client-eventbridge";
import type { ProvisionerError } from "../../functions/lib/domain/errors.js";
import { REMOVED_DETAIL_TYPE } from "../../functions/lib/domain/product-events.js";
import type { WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { createRecordRemovalStep, TEARDOWN_INCOMPLETE } from "../../functions/steps/teardown-record.js";
import { schemaProblems } from "../support/event-schemas.js";
import { ACCOUNT, NS, RUN, TENANT, resolvedCluster, stepState } from "../support/fixtures.js";

const dynamodbClient = new DynamoDBClient({ region: "eu-west-1" });
const eventBridgeClient = new EventBridgeClient({ region: "eu-west-1" });
const dynamodb = mockClient(dynamodbClient);
const events = mockClient(eventBridgeClient);
const TABLE = "registry";
const BUS = "nf-eks-provisioner-bus";
/** The step's handler, handed the registry's and the bus's clients through the step's factory. */
const { record } = createRecordRemovalStep({
  registry: { dynamodb: dynamodbClient, tableName: TABLE, nowSeconds: () => 1_750_000_000 },
  events: eventBridgeClient,
  eventBusName: BUS,
});

const LAUNCHER = `arn:aws:iam::${ACCOUNT}:role/nf-eks-provisioner/nfeks-genomics.research-launcher`;
const ENTRY = `EKS access entry ${LAUNCHER} on research`;
/** What the environment's record says the product owns there. */
const OWNED = {
  roles: [LAUNCHER],
  podIdentityAssociations: ["a-1"],
  clusterAccess: { method: "access-entry", principalArn: LAUNCHER },
  kubernetes: [
    { apiVersion: "v1", kind: "Namespace", name: NS },
    { apiVersion: "v1", kind: "ServiceAccount", namespace: NS, name: "tower-launcher-sa" },
  ],
};

/** Calls to the registry and the bus, in the order they were made. */
let timeline: string[];
/** Who holds the environment's lease (the execution id of the run that took it). */
let leaseOwner: string | undefined;

/** A teardown that removed everything: the compensators' results, and the namespace gone. */
function teardownState(results: Partial<WorkflowState> = {}): WorkflowState {
  return stepState({}, RUN, {
    cluster: resolvedCluster(),
    removal: { environment: { tenant: TENANT, region: "eu-west-1", cluster: "research" }, owned: OWNED },
    namespaceRemoval: { namespace: NS, gone: true },
    compensation: {
      headJob: { undone: [], kept: [] },
      storage: { undone: [`PersistentVolumeClaim ${NS}/tower-scratch`], kept: [] },
      rbac: { undone: [`Namespace ${NS}`, `ServiceAccount ${NS}/tower-launcher-sa`], kept: [] },
      access: { undone: [ENTRY], kept: [] },
      iam: { undone: ["Pod Identity association a-1", "IAM role nfeks-genomics.research-launcher"], kept: [] },
    },
    ...results,
  });
}

function recordWrites(): UpdateItemCommandInput[] {
  return dynamodb.commandCalls(UpdateItemCommand).map((call) => call.args[0].input);
}

/** The status and owned the (last) record write says. */
function recorded(): { status?: string; owned: Record<string, unknown> } {
  const values = recordWrites().at(-1)?.ExpressionAttributeValues ?? {};
  return { status: values[":status"]?.S, owned: JSON.parse(values[":owned"]?.S ?? "null") };
}

function sentEvent(): { detailType?: string; detail: Record<string, unknown>; resources?: string[] } {
  const [call] = events.commandCalls(PutEventsCommand);
  const entry = (call.args[0].input as PutEventsCommandInput).Entries![0];
  return { detailType: entry.DetailType, detail: JSON.parse(entry.Detail!), resources: entry.Resources };
}

beforeEach(() => {
  dynamodb.reset();
  events.reset();
  timeline = [];
  leaseOwner = teardownState().execution.id;
  dynamodb.on(UpdateItemCommand).callsFake((input: UpdateItemCommandInput) => {
    timeline.push("registry");
    if (input.ExpressionAttributeValues?.[":owner"]?.S !== leaseOwner)
      throw new ConditionalCheckFailedException({ message: "The conditional request failed", $metadata: {} });
    return {};
  });
  events.on(PutEventsCommand).callsFake(() => {
    timeline.push("events");
    return { FailedEntryCount: 0, Entries: [{ EventId: "1" }] };
  });
});

describe("createRecordRemovalStep", () => {
  it("writes to the registry table and the bus it is given", async () => {
    // Prepare // Act
    await record(teardownState());

    // Assess
    expect(dynamodb).toHaveReceivedCommandWith(UpdateItemCommand, {
      TableName: TABLE,
      Key: { pk: { S: `ENV#${TENANT}#eu-west-1#research` } },
    });
    expect(events).toHaveReceivedCommandWith(PutEventsCommand, { Entries: [expect.objectContaining({ EventBusName: BUS })] });
  });
});

describe("RecordRemoval when nothing of the tenant's remains", () => {
  it("records `removed` with nothing owned, releases the lease as its owner, then emits ComputeEnvironmentRemoved", async () => {
    // Prepare
    const state = teardownState();

    // Act
    const outcome = await record(state);

    // Assess
    expect(outcome).toEqual({
      status: "removed",
      undone: [
        `PersistentVolumeClaim ${NS}/tower-scratch`,
        `Namespace ${NS}`,
        `ServiceAccount ${NS}/tower-launcher-sa`,
        ENTRY,
        "Pod Identity association a-1",
        "IAM role nfeks-genomics.research-launcher",
      ],
      kept: [],
      remaining: [],
    });
    expect(recorded()).toEqual({ status: "removed", owned: {} });
    const write = recordWrites()[0];
    expect(write.ConditionExpression).toBe("leaseOwner = :owner");
    expect(write.ExpressionAttributeValues?.[":owner"]).toEqual({ S: state.execution.id });
    expect(write.UpdateExpression).toContain("REMOVE leaseOwner, leaseExpiresAt");
    expect(timeline).toEqual(["registry", "events"]);
    const event = sentEvent();
    expect(event.detailType).toBe(REMOVED_DETAIL_TYPE);
    expect(event.resources).toEqual([state.cluster!.arn]);
    expect(event.detail).toEqual({
      tenant: TENANT,
      cluster: { name: "research", region: "eu-west-1", arn: state.cluster!.arn },
      namespace: NS,
      removed: outcome.undone,
      kept: [],
      execution: state.execution,
    });
    expect(schemaProblems(REMOVED_DETAIL_TYPE, event.detail)).toEqual([]);
  });

  it("still records `removed` when something was kept on purpose, and lists it under owned.kept and in the event", async () => {
    // Prepare: the namespace held someone else's objects, so RemoveNamespaceAndRbac kept it
    const kept = `Namespace ${NS}: holds objects that are not the product's (ConfigMap their-data)`;
    const state = teardownState({ namespaceRemoval: { namespace: NS, gone: false } });
    state.compensation!.rbac = { undone: [`ServiceAccount ${NS}/tower-launcher-sa`], kept: [kept] };

    // Act
    const outcome = await record(state);

    // Assess
    expect(outcome).toMatchObject({ status: "removed", kept: [kept], remaining: [] });
    expect(recorded()).toEqual({ status: "removed", owned: { kept: [kept] } });
    expect(sentEvent().detail).toMatchObject({ kept: [kept] });
  });

  it("does not count what could not be deleted inside a namespace that is gone since (it went with the namespace)", async () => {
    // Prepare
    const state = teardownState();
    state.compensation!.storage = {
      undone: [],
      kept: [],
      failed: [`PersistentVolumeClaim ${NS}/tower-scratch: NotAllowed: forbidden`],
    };

    // Act
    const outcome = await record(state);

    // Assess
    expect(outcome.status).toBe("removed");
    expect(outcome.remaining).toEqual([]);
  });

  it("writes the same record again on a retry of the Task", async () => {
    // Prepare
    await record(teardownState());

    // Act
    await record(teardownState());

    // Assess
    const [first, second] = recordWrites();
    expect(second).toEqual(first);
  });
});

describe("RecordRemoval when something remains", () => {
  it("records `failed` with the record's owned and exactly what remains and why, names the error TeardownIncomplete, and emits nothing", async () => {
    // Prepare: the IAM removal failed for good; an object in a namespace that stays could not be deleted
    const state = teardownState({ namespaceRemoval: { namespace: NS, gone: false } });
    state.compensation!.iam = { Error: "NotAllowed", Cause: "iam:DeleteRole failed: AccessDenied" };
    state.compensation!.storage = {
      undone: [],
      kept: [],
      failed: [`PersistentVolumeClaim ${NS}/tower-scratch: NotAllowed: forbidden`],
    };

    // Act
    const outcome = await record(state);

    // Assess
    const remaining = [
      `PersistentVolumeClaim ${NS}/tower-scratch: NotAllowed: forbidden`,
      "iam (NotAllowed: iam:DeleteRole failed: AccessDenied)",
    ];
    expect(outcome).toMatchObject({ status: "failed", remaining, error: TEARDOWN_INCOMPLETE });
    expect(outcome.cause).toBe(
      `Could not remove: ${remaining.join("; ")}. Removed: Namespace ${NS}, ServiceAccount ${NS}/tower-launcher-sa, ${ENTRY}. ` +
        "A repeated DELETE tries again.",
    );
    expect(recorded()).toEqual({ status: "failed", owned: { ...OWNED, remaining } });
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it("records everything the record names as remaining when ResolveCluster failed (nothing was removed)", async () => {
    // Prepare
    const state = teardownState({
      error: { Error: "ClusterNotFound", Cause: "No cluster found for name: research." },
      compensation: {},
    });
    delete state.namespaceRemoval;

    // Act
    const outcome = await record(state);

    // Assess
    const why = "ResolveCluster failed (ClusterNotFound: No cluster found for name: research.)";
    expect(outcome.status).toBe("failed");
    expect(outcome.remaining).toEqual([
      `Namespace ${NS}: ${why}`,
      `ServiceAccount ${NS}/tower-launcher-sa: ${why}`,
      `EKS access entry for ${LAUNCHER}: ${why}`,
      `Pod Identity association a-1: ${why}`,
      `IAM role nfeks-genomics.research-launcher: ${why}`,
    ]);
    expect(outcome.cause).toContain("Removed: nothing.");
    expect(recorded().status).toBe("failed");
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });
});

describe("RecordRemoval on errors", () => {
  it("does not fail when the run no longer holds the lease: the record is another run's now", async () => {
    // Prepare
    leaseOwner = "arn:aws:states:eu-west-1:111122223333:execution:provision:genomics-run-2";

    // Act
    const outcome = await record(teardownState());

    // Assess
    expect(outcome.status).toBe("removed");
    expect(dynamodb).toHaveReceivedCommandTimes(UpdateItemCommand, 1);
  });

  it("fails with Throttled (transient) when the registry is busy, before any event goes out", async () => {
    // Prepare
    dynamodb
      .on(UpdateItemCommand)
      .rejects(new ProvisionedThroughputExceededException({ message: "Rate of requests exceeds the allowed throughput", $metadata: {} }));

    // Act
    const failure = await record(teardownState()).catch((error: unknown) => error);

    // Assess
    expect((failure as Error).name).toBe("Throttled");
    expect((failure as ProvisionerError).transient).toBe(true);
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it("names a rejected event by its cause: throttled is transient, access denied is permanent (NotAllowed)", async () => {
    // Prepare
    events
      .on(PutEventsCommand)
      .resolvesOnce({ FailedEntryCount: 1, Entries: [{ ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded" }] })
      .resolvesOnce({ FailedEntryCount: 1, Entries: [{ ErrorCode: "AccessDeniedException", ErrorMessage: "not authorized" }] });

    // Act
    const throttled = await record(teardownState()).catch((error: unknown) => error);
    const denied = await record(teardownState()).catch((error: unknown) => error);

    // Assess
    expect((throttled as Error).name).toBe("Throttled");
    expect((throttled as ProvisionerError).transient).toBe(true);
    expect((denied as Error).name).toBe("NotAllowed");
    expect((denied as ProvisionerError).transient).toBe(false);
    expect(recordWrites().map((write) => write.ExpressionAttributeValues?.[":status"]?.S)).toEqual(["removed", "removed"]);
  });
});
