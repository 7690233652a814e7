/**
 * The environment registry: one DynamoDB item per environment (tenant, region, cluster) and one per idempotency
 * key. Every write is a single-item conditional write (no transactions), and nothing relies on DynamoDB's TTL:
 * an expired lease or key is treated as absent by the conditions themselves; TTL (attribute `expiresAt`) only tidies.
 *
 *  - `createEnvironment`: put-if-absent (status `provisioning`, generation 0: no run yet; each run adds one).
 *  - `takeLease`: the environment's run lease, taken when free, expired, or already held by the same execution.
 *  - `takeRemovalLease`: the same lease for a teardown (status `removing`; spec and generation as they are).
 *  - `recordOutcome`: the run's last state: status, what the product owns there, lease released (only by its owner).
 *  - `releaseLease`: give the lease back without an outcome (a start that did not start anything).
 *  - `rememberKey` / `findKey`: an idempotency key's execution and request, kept beyond Step Functions' 90 days.
 * `EnvironmentRecords` holds all but `createEnvironment` and the keys (the teardown's entry points); `EnvironmentRegistry`
 * adds them (the entry points that start runs).
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from "@aws-sdk/client-dynamodb";
import { dynamoDbClient } from "../aws/clients.js";

/** The variable the stack and the sandbox hand the entry Lambdas and the reporting steps: the registry's table. */
export const REGISTRY_TABLE_ENV = "REGISTRY_TABLE_NAME";
/** The index that lists environments (partition `kind`, sort `pk`). */
export const BY_KIND_INDEX = "byKind";
/** How long an idempotency key is remembered: a year (Step Functions forgets execution names after 90 days). */
export const IDEMPOTENCY_KEY_TTL_SECONDS = 365 * 24 * 3600;

export type EnvironmentStatus = "provisioning" | "ready" | "failed" | "updating" | "removing" | "removed";

export interface EnvironmentId {
  tenant: string;
  region: string;
  cluster: string;
}

export interface ExecutionPointer {
  name: string;
  arn: string;
}

export interface EnvironmentRecord extends EnvironmentId {
  /** The validated request without its head job and idempotency key */
  spec: Record<string, unknown>;
  generation: number;
  status: EnvironmentStatus;
  lastExecution?: ExecutionPointer;
  /** What the product owns there, from the steps' outputs (empty after a compensated failure) */
  owned: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  lease?: { owner: string; expiresAt: number };
  /** The last failed update or re-run: the record went back to the generation before it (report.ts), with the failure */
  lastFailure?: RunFailure;
}

/** A failed run as the record keeps it: the error's name, the cause (what failed, what was undone and what not), when. */
export interface RunFailure {
  error: string;
  cause: string;
  at: string;
  /** the generation the failed run tried to reach */
  generation: number;
}

export interface ListPage {
  limit?: number;
  cursor?: string;
  cluster?: string;
  region?: string;
  status?: string;
}

export interface IdempotencyKeyRecord {
  tenant: string;
  key: string;
  executionName: string;
  executionArn: string;
  request: unknown;
  expiresAt: number;
}

export interface RegistryDeps {
  dynamodb?: DynamoDBClient;
  tableName?: string;
  /** seconds since the epoch (tests move time) */
  nowSeconds?: () => number;
}

export class RegistryNotConfigured extends Error {
  constructor() {
    super(`${REGISTRY_TABLE_ENV} is not set: the environment registry has no table`);
    this.name = "RegistryNotConfigured";
  }
}

export function environmentKey({ tenant, region, cluster }: EnvironmentId): string {
  return `ENV#${tenant}#${region}#${cluster}`;
}

export function idempotencyKeyKey(tenant: string, key: string): string {
  return `KEY#${tenant}#${key}`;
}

/**
 * An environment's record bound to its table and clock: read it, take and give back its lease, record a run's
 * outcome. What the teardown's entry points hold: they never create a record nor remember a key, so their roles
 * are not granted PutItem (the stack's least-privilege test reads the calls from the class they reference).
 */
export class EnvironmentRecords {
  protected readonly client: DynamoDBClient;
  protected readonly table: string;
  protected readonly now: () => number;

  constructor(deps: RegistryDeps = {}) {
    const table = deps.tableName ?? process.env[REGISTRY_TABLE_ENV];
    if (!table) throw new RegistryNotConfigured();
    this.table = table;
    this.client = deps.dynamodb ?? dynamoDbClient();
    this.now = deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  }

  async getEnvironment(id: EnvironmentId): Promise<EnvironmentRecord | undefined> {
    return readEnvironment({ dynamodb: this.client, tableName: this.table }, id);
  }

  /**
   * Take the environment's lease for `owner` (an execution ARN) until `expiresAt` (seconds): only when no one holds
   * it, its holder's time is up, or `owner` holds it already (a repeat of the same start). A new run also sets the
   * spec, bumps the generation and marks the record `provisioning`. Otherwise: the current holder.
   */
  async takeLease(
    id: EnvironmentId,
    run: { owner: ExecutionPointer; expiresAt: number; spec: Record<string, unknown>; status?: EnvironmentStatus; generation?: number },
  ): Promise<{ taken: true } | { taken: false; holder: string }> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: s(environmentKey(id)) },
          UpdateExpression:
            "SET leaseOwner = :owner, leaseExpiresAt = :expires, spec = :spec, #status = :provisioning, lastExecution = :execution, updatedAt = :at ADD generation :bump",
          // An update names the generation it read: a record that moved on since (another update finished) is not leased.
          ConditionExpression:
            "attribute_exists(pk) AND (attribute_not_exists(leaseOwner) OR leaseExpiresAt <= :now OR leaseOwner = :owner)" +
            (run.generation !== undefined ? " AND (generation = :generation OR leaseOwner = :owner)" : ""),
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: {
            ":owner": s(run.owner.arn),
            ":expires": n(run.expiresAt),
            ":spec": s(JSON.stringify(run.spec)),
            ":provisioning": s(run.status ?? "provisioning"),
            ...(run.generation !== undefined ? { ":generation": n(run.generation) } : {}),
            ":execution": s(JSON.stringify(run.owner)),
            ":at": s(new Date(this.now() * 1000).toISOString()),
            ":bump": n(1),
            ":now": n(this.now()),
          },
        }),
      );
      return { taken: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const current = await this.getEnvironment(id);
      return { taken: false, holder: current?.lease?.owner ?? "" };
    }
  }

  /**
   * The lease for a teardown run: taken like {@link takeLease} (free, expired, or already `owner`'s), and the record
   * marked `removing` with the run as its last execution; the spec and generation stay (a teardown changes no spec).
   */
  async takeRemovalLease(
    id: EnvironmentId,
    run: { owner: ExecutionPointer; expiresAt: number },
  ): Promise<{ taken: true } | { taken: false; holder: string }> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: s(environmentKey(id)) },
          UpdateExpression:
            "SET leaseOwner = :owner, leaseExpiresAt = :expires, #status = :removing, lastExecution = :execution, updatedAt = :at",
          ConditionExpression:
            "attribute_exists(pk) AND (attribute_not_exists(leaseOwner) OR leaseExpiresAt <= :now OR leaseOwner = :owner)",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: {
            ":owner": s(run.owner.arn),
            ":expires": n(run.expiresAt),
            ":removing": s("removing"),
            ":execution": s(JSON.stringify(run.owner)),
            ":at": s(new Date(this.now() * 1000).toISOString()),
            ":now": n(this.now()),
          },
        }),
      );
      return { taken: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const current = await this.getEnvironment(id);
      return { taken: false, holder: current?.lease?.owner ?? "" };
    }
  }

  /**
   * A start that started nothing: the record as it was before `owner` took the lease (spec, generation, status, last
   * execution), the lease given back, in one write by its owner. A record this start created is left `failed`
   * (nothing was built; a repeat of the create starts again) instead of `provisioning` with no run behind it.
   */
  async putBackAfterFailedStart(id: EnvironmentId, owner: string, previous: EnvironmentRecord, created: boolean): Promise<boolean> {
    const status = created ? "failed" : previous.status;
    const execution = previous.lastExecution ? ", lastExecution = :execution" : "";
    return updateAsLeaseOwner(
      { dynamodb: this.client, tableName: this.table },
      id,
      owner,
      `SET #status = :status, spec = :spec, generation = :generation, updatedAt = :at${execution} REMOVE leaseOwner, leaseExpiresAt${execution ? "" : ", lastExecution"}`,
      {
        ":status": s(status),
        ":spec": s(JSON.stringify(previous.spec)),
        ":generation": n(previous.generation),
        ":at": s(new Date(this.now() * 1000).toISOString()),
        ...(previous.lastExecution ? { ":execution": s(JSON.stringify(previous.lastExecution)) } : {}),
      },
    );
  }

  /** Give the lease back (only `owner` can): false when someone else holds it, or no one. */
  async releaseLease(id: EnvironmentId, owner: string): Promise<boolean> {
    return updateAsLeaseOwner({ dynamodb: this.client, tableName: this.table }, id, owner, "REMOVE leaseOwner, leaseExpiresAt", {});
  }

  /** The run's outcome, and the lease released, in one write by the lease's owner: false when it no longer holds it. */
  async recordOutcome(id: EnvironmentId, owner: string, outcome: RunOutcome): Promise<boolean> {
    return recordOutcome({ dynamodb: this.client, tableName: this.table, nowSeconds: this.now }, id, owner, outcome);
  }
}

/**
 * The whole registry, for the entry points that start runs: the records' leases and outcomes, and besides them
 * creating a record and remembering an idempotency key (the only PutItem calls).
 */
export class EnvironmentRegistry extends EnvironmentRecords {
  /** Put the record unless one exists: `{ created: true }`, or the record already there. */
  async createEnvironment(
    id: EnvironmentId,
    spec: Record<string, unknown>,
  ): Promise<{ created: true; record: EnvironmentRecord } | { created: false; record: EnvironmentRecord }> {
    const at = new Date(this.now() * 1000).toISOString();
    const record: EnvironmentRecord = { ...id, spec, generation: 0, status: "provisioning", owned: {}, createdAt: at, updatedAt: at };
    try {
      await this.client.send(
        new PutItemCommand({ TableName: this.table, Item: itemOf(record), ConditionExpression: "attribute_not_exists(pk)" }),
      );
      return { created: true, record };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const existing = await this.getEnvironment(id);
      if (!existing) throw new Error(`${environmentKey(id)} existed, then did not`);
      return { created: false, record: existing };
    }
  }

  /** Remember a key's execution, unless a live record of it exists: then that record (the caller compares requests). */
  async rememberKey(
    record: Omit<IdempotencyKeyRecord, "expiresAt">,
  ): Promise<{ remembered: true } | { remembered: false; existing: IdempotencyKeyRecord }> {
    const expiresAt = this.now() + IDEMPOTENCY_KEY_TTL_SECONDS;
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            pk: s(idempotencyKeyKey(record.tenant, record.key)),
            kind: s("idempotency-key"),
            executionName: s(record.executionName),
            executionArn: s(record.executionArn),
            request: s(JSON.stringify(record.request)),
            expiresAt: n(expiresAt),
          },
          ConditionExpression: "attribute_not_exists(pk) OR expiresAt <= :now",
          ExpressionAttributeValues: { ":now": n(this.now()) },
        }),
      );
      return { remembered: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const existing = await this.findKey(record.tenant, record.key);
      if (!existing) throw new Error(`${idempotencyKeyKey(record.tenant, record.key)} existed, then did not`);
      return { remembered: false, existing };
    }
  }

  /** A key's live record (an expired one is absent, whether or not TTL has tidied it yet). */
  async findKey(tenant: string, key: string): Promise<IdempotencyKeyRecord | undefined> {
    const out = await this.client.send(
      new GetItemCommand({ TableName: this.table, Key: { pk: s(idempotencyKeyKey(tenant, key)) }, ConsistentRead: true }),
    );
    const item = out.Item;
    if (!item || Number(item.expiresAt?.N ?? 0) <= this.now()) return undefined;
    return {
      tenant,
      key,
      executionName: item.executionName?.S ?? "",
      executionArn: item.executionArn?.S ?? "",
      request: JSON.parse(item.request?.S ?? "null"),
      expiresAt: Number(item.expiresAt?.N),
    };
  }
}

export interface RunOutcome {
  status: EnvironmentStatus;
  owned: Record<string, unknown>;
  /** A failed update or re-run: the previous generation back as desired (its spec and number), and the failure kept on the record */
  restore?: { spec: Record<string, unknown>; generation: number; failure: RunFailure };
}

/**
 * The run's outcome and the lease released (one UpdateItem): a function of its own, not only a method, so the
 * reporting steps reach this one call and their role is granted UpdateItem alone.
 */
export async function recordOutcome(deps: RegistryDeps, id: EnvironmentId, owner: string, outcome: RunOutcome): Promise<boolean> {
  const now = deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  const restore = outcome.restore;
  const set = restore ? ", spec = :spec, generation = :generation, lastFailure = :failure" : "";
  // A run that reaches its goal clears an earlier update's failure.
  const remove = restore ? "" : ", lastFailure";
  return updateAsLeaseOwner(
    deps,
    id,
    owner,
    `SET #status = :status, owned = :owned, updatedAt = :at${set} REMOVE leaseOwner, leaseExpiresAt${remove}`,
    {
      ":status": s(outcome.status),
      ":owned": s(JSON.stringify(outcome.owned)),
      ":at": s(new Date(now() * 1000).toISOString()),
      ...(restore
        ? { ":spec": s(JSON.stringify(restore.spec)), ":generation": n(restore.generation), ":failure": s(JSON.stringify(restore.failure)) }
        : {}),
    },
  );
}

/** One conditional UpdateItem that only the lease's owner may make: false when it does not hold the lease. */
async function updateAsLeaseOwner(
  deps: RegistryDeps,
  id: EnvironmentId,
  owner: string,
  update: string,
  values: Record<string, AttributeValue>,
): Promise<boolean> {
  const tableName = deps.tableName ?? process.env[REGISTRY_TABLE_ENV];
  if (!tableName) throw new RegistryNotConfigured();
  try {
    await (deps.dynamodb ?? dynamoDbClient()).send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: { pk: s(environmentKey(id)) },
        UpdateExpression: update,
        ConditionExpression: "leaseOwner = :owner",
        ...(update.includes("#status") ? { ExpressionAttributeNames: { "#status": "status" } } : {}),
        ExpressionAttributeValues: { ":owner": s(owner), ...values },
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

function tableOf(deps: RegistryDeps): string {
  const table = deps.tableName ?? process.env[REGISTRY_TABLE_ENV];
  if (!table) throw new RegistryNotConfigured();
  return table;
}

function clientOf(deps: RegistryDeps): DynamoDBClient {
  return deps.dynamodb ?? dynamoDbClient();
}

/** One environment's record (a strongly consistent read), or undefined: for the read routes, which write nothing. */
export async function readEnvironment(deps: RegistryDeps, id: EnvironmentId): Promise<EnvironmentRecord | undefined> {
  const out = await clientOf(deps).send(
    new GetItemCommand({ TableName: tableOf(deps), Key: { pk: s(environmentKey(id)) }, ConsistentRead: true }),
  );
  return out.Item ? environmentOf(out.Item) : undefined;
}

/**
 * Every environment, a page at a time (`cursor` from the previous page's `next`), optionally only those of a
 * cluster, region or status (DynamoDB filters after reading a page: a page may hold fewer than `limit`).
 */
export async function listEnvironments(deps: RegistryDeps, page: ListPage = {}): Promise<{ items: EnvironmentRecord[]; next?: string }> {
  const filters = (["cluster", "region", "status"] as const).filter((field) => page[field] !== undefined);
  const out = await clientOf(deps).send(
    new QueryCommand({
      TableName: tableOf(deps),
      IndexName: BY_KIND_INDEX,
      KeyConditionExpression: "kind = :kind",
      ...(filters.length
        ? {
            FilterExpression: filters.map((field) => `#${field} = :${field}`).join(" AND "),
            ExpressionAttributeNames: Object.fromEntries(filters.map((field) => [`#${field}`, field])),
          }
        : {}),
      ExpressionAttributeValues: {
        ":kind": s("environment"),
        ...Object.fromEntries(filters.map((field) => [`:${field}`, s(page[field]!)])),
      },
      Limit: page.limit ?? 50,
      ...(page.cursor ? { ExclusiveStartKey: JSON.parse(Buffer.from(page.cursor, "base64url").toString("utf8")) } : {}),
    }),
  );
  const next = out.LastEvaluatedKey ? Buffer.from(JSON.stringify(out.LastEvaluatedKey)).toString("base64url") : undefined;
  return { items: (out.Items ?? []).map(environmentOf), ...(next ? { next } : {}) };
}

function s(value: string): AttributeValue {
  return { S: value };
}

function n(value: number): AttributeValue {
  return { N: String(value) };
}

function itemOf(record: EnvironmentRecord): Record<string, AttributeValue> {
  return {
    pk: s(environmentKey(record)),
    kind: s("environment"),
    tenant: s(record.tenant),
    region: s(record.region),
    cluster: s(record.cluster),
    spec: s(JSON.stringify(record.spec)),
    generation: n(record.generation),
    status: s(record.status),
    owned: s(JSON.stringify(record.owned)),
    createdAt: s(record.createdAt),
    updatedAt: s(record.updatedAt),
    ...(record.lastExecution ? { lastExecution: s(JSON.stringify(record.lastExecution)) } : {}),
  };
}

function environmentOf(item: Record<string, AttributeValue>): EnvironmentRecord {
  const text = (name: string) => item[name]?.S ?? "";
  return {
    tenant: text("tenant"),
    region: text("region"),
    cluster: text("cluster"),
    spec: JSON.parse(text("spec") || "{}"),
    generation: Number(item.generation?.N ?? 0),
    status: text("status") as EnvironmentStatus,
    owned: JSON.parse(text("owned") || "{}"),
    createdAt: text("createdAt"),
    updatedAt: text("updatedAt"),
    ...(item.lastExecution?.S ? { lastExecution: JSON.parse(item.lastExecution.S) } : {}),
    ...(item.leaseOwner?.S ? { lease: { owner: item.leaseOwner.S, expiresAt: Number(item.leaseExpiresAt?.N ?? 0) } } : {}),
    ...(item.lastFailure?.S ? { lastFailure: JSON.parse(item.lastFailure.S) } : {}),
  };
}
