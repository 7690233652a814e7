import "aws-sdk-client-mock-vitest/extend";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import {
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  EKSClient,
  ResourceInUseException,
  InvalidParameterException,
  ResourceNotFoundException,
  UpdateAccessEntryCommand,
  type AccessEntry,
} from "@aws-sdk/client-eks";
import { ApiException, type KubernetesObject, type V1ConfigMap } from "@kubernetes/client-node";
import { parse } from "yaml";
import { apply, compensate, AWS_AUTH_MAX_ATTEMPTS, MAX_PREVIOUS_COPY_CHARS } from "../../functions/steps/cluster-access.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { setKubeClientFactory, type KubeApi } from "../../functions/lib/kube/kube-client.js";
import {
  ANNOTATION_AWS_AUTH_MAPPINGS,
  ANNOTATION_PREVIOUS_AWS_AUTH,
  executionMark,
  ownershipTags,
  tagsToRecord,
} from "../../functions/lib/domain/naming.js";
import type { AccessResult, AuthenticationMode, CompensationResult, IamResult, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { ACCOUNT, RUN, TENANT, resolvedCluster, stepState } from "../support/fixtures.js";

const eks = mockClient(EKSClient);
const LAUNCHER = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-launcher`;
/** The tenant's own Kubernetes identity (TENANT is "genomics"). */
const USERNAME = "tower-launcher-user-genomics";
const GROUP = "tower-launcher-role-genomics";
/** The identity an earlier version mapped every tenant's launcher to. */
const SHARED_USERNAME = "tower-launcher-user";
const SHARED_GROUP = "tower-launcher-role";

// ---------------------------------------------------------------- state

function stateFor(mode: AuthenticationMode, opts: { run?: string; tenant?: string; iam?: Partial<IamResult>; access?: AccessResult } = {}): WorkflowState {
  return stepState({ tenant: opts.tenant ?? TENANT }, opts.run ?? RUN, {
    cluster: resolvedCluster({ authenticationMode: mode }),
    iam: { launcherArn: LAUNCHER, launcherKind: "role", launcherCreated: true, created: [LAUNCHER], ...opts.iam },
    ...(opts.access ? { access: opts.access } : {}),
  });
}

// ---------------------------------------------------------------- a small in-memory EKS (access entries)

const entries = new Map<string, AccessEntry>();

function notFound() {
  return new ResourceNotFoundException({ message: "The specified access entry resource could not be found.", $metadata: { httpStatusCode: 404 } });
}

function installFakeEks(): void {
  eks.on(DescribeAccessEntryCommand).callsFake(({ principalArn }) => {
    const entry = entries.get(principalArn);
    if (!entry) throw notFound();
    return { accessEntry: structuredClone(entry) };
  });
  eks.on(CreateAccessEntryCommand).callsFake(({ clusterName, principalArn, kubernetesGroups, username, type, tags }) => {
    if (entries.has(principalArn)) throw new ResourceInUseException({ message: "The specified access entry resource is already in use on this cluster.", $metadata: { httpStatusCode: 409 } });
    const entry: AccessEntry = { clusterName, principalArn, kubernetesGroups, username, type, tags };
    entries.set(principalArn, entry);
    return { accessEntry: entry };
  });
  eks.on(UpdateAccessEntryCommand).callsFake(({ principalArn, kubernetesGroups, username }) => {
    const entry = entries.get(principalArn);
    if (!entry) throw notFound();
    Object.assign(entry, { kubernetesGroups, username });
    return { accessEntry: entry };
  });
  eks.on(DeleteAccessEntryCommand).callsFake(({ principalArn }) => {
    if (!entries.delete(principalArn)) throw notFound();
    return {};
  });
}

function seedEntry(principalArn: string, fields: Partial<AccessEntry>): void {
  entries.set(principalArn, { clusterName: "research", principalArn, type: "STANDARD", ...fields });
}

// ---------------------------------------------------------------- a fake Kubernetes API holding kube-system/aws-auth

const NODE_ROLES = `- rolearn: arn:aws:iam::${ACCOUNT}:role/eks-node-group-role
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
- rolearn: arn:aws:iam::${ACCOUNT}:role/platform-admins
  username: "admin:{{SessionName}}"
  groups:
    - platform-admins
`;
const MAP_USERS = `- userarn: arn:aws:iam::${ACCOUNT}:user/alice
  username: alice
  groups:
    - readers
`;
const ORIGINAL_DATA = { mapRoles: NODE_ROLES, mapUsers: MAP_USERS, mapAccounts: `- "${ACCOUNT}"\n` };

function apiError(code: number, reason: string) {
  return new ApiException(code, "Unsuccessful HTTP Request", JSON.stringify({ kind: "Status", status: "Failure", reason, code }), {});
}

class FakeKube {
  configMap?: V1ConfigMap;
  private version = 100;
  reads = 0;
  replaced: V1ConfigMap[] = [];
  forbidden: string[] = [];
  /** Runs inside the next N replace calls before the version check: a concurrent writer. */
  interleave: Array<(cm: V1ConfigMap) => void> = [];

  seed(data: Record<string, string> | undefined, annotations?: Record<string, string>) {
    this.configMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "aws-auth", namespace: "kube-system", uid: "uid-aws-auth", resourceVersion: String(this.version++), labels: { "eks.amazonaws.com/component": "aws-auth" }, ...(annotations ? { annotations } : {}) },
      ...(data ? { data: { ...data } } : {}),
    };
  }

  /** Another writer changes the ConfigMap (a bump of resourceVersion). */
  writeByOther(change: (cm: V1ConfigMap) => void) {
    change(this.configMap!);
    this.configMap!.metadata!.resourceVersion = String(this.version++);
  }

  get data(): Record<string, string> {
    return this.configMap?.data ?? {};
  }

  get annotations(): Record<string, string> {
    return this.configMap?.metadata?.annotations ?? {};
  }

  private isAwsAuth(spec: KubernetesObject) {
    return spec.kind === "ConfigMap" && spec.metadata?.namespace === "kube-system" && spec.metadata?.name === "aws-auth";
  }

  api(): KubeApi {
    const fake = {
      read: async (spec: KubernetesObject) => {
        this.reads++;
        if (!this.isAwsAuth(spec) || !this.configMap) throw apiError(404, "NotFound");
        return structuredClone(this.configMap);
      },
      replace: async (spec: V1ConfigMap) => {
        if (!this.isAwsAuth(spec) || !this.configMap) throw apiError(404, "NotFound");
        const other = this.interleave.shift();
        if (other) this.writeByOther(other);
        if (spec.metadata?.resourceVersion !== this.configMap.metadata?.resourceVersion) throw apiError(409, "Conflict");
        this.configMap = structuredClone({ ...spec, metadata: { ...spec.metadata, resourceVersion: String(this.version++) } });
        this.replaced.push(structuredClone(spec));
        return structuredClone(this.configMap);
      },
      create: async () => {
        this.forbidden.push("create");
        throw new Error("the step must never create objects here");
      },
      delete: async () => {
        this.forbidden.push("delete");
        throw new Error("the step must never delete objects here");
      },
      patch: async () => {
        this.forbidden.push("patch");
        throw new Error("unexpected patch");
      },
    };
    return fake as unknown as KubeApi;
  }
}

let kube: FakeKube;
let kubeClientsMade = 0;

function mapRolesOf(fake: FakeKube): Array<Record<string, unknown>> {
  return parse(fake.data.mapRoles ?? "[]") ?? [];
}

function mapUsersOf(fake: FakeKube): Array<Record<string, unknown>> {
  return parse(fake.data.mapUsers ?? "[]") ?? [];
}

function launcherEntries(fake: FakeKube, arn = LAUNCHER) {
  return mapRolesOf(fake).filter((e) => e.rolearn === arn);
}

beforeEach(() => {
  eks.reset();
  entries.clear();
  installFakeEks();
  kube = new FakeKube();
  kubeClientsMade = 0;
  setKubeClientFactory(async () => {
    kubeClientsMade++;
    return kube.api();
  });
});

afterEach(() => {
  setKubeClientFactory();
  resetClients();
});

// ---------------------------------------------------------------- access entries

describe("GrantClusterAccess with access entries (API, API_AND_CONFIG_MAP)", () => {
  it.each<AuthenticationMode>(["API", "API_AND_CONFIG_MAP"])("%s: creates a STANDARD entry with the launcher username, group and our tags", async (mode) => {
    // Prepare
    const state = stateFor(mode);

    // Act
    const result = await apply(state);

    // Assess
    expect(result).toEqual({ method: "access-entry", principalArn: LAUNCHER, username: USERNAME, groups: [GROUP], created: true });
    expect(eks).toHaveReceivedCommandWith(CreateAccessEntryCommand, {
      clusterName: "research",
      principalArn: LAUNCHER,
      type: "STANDARD",
      username: USERNAME,
      kubernetesGroups: [GROUP],
      tags: tagsToRecord(ownershipTags(TENANT, RUN)),
    });
    // aws-auth is never written in these modes (API_AND_CONFIG_MAP reads it; here it is absent, which is fine)
    expect(kubeClientsMade).toBe(mode === "API" ? 0 : 1);
    expect(kube.replaced).toEqual([]);
    expect(kube.forbidden).toEqual([]);
  });

  it("keeps a role path in the access entry principal (access entries accept paths)", async () => {
    // Prepare
    const withPath = `arn:aws:iam::${ACCOUNT}:role/teams/genomics/launcher`;

    // Act
    const result = await apply(stateFor("API", { iam: { launcherArn: withPath } }));

    // Assess
    expect(result.principalArn).toBe(withPath);
    expect(entries.has(withPath)).toBe(true);
  });

  it("re-run: adopts its own entry without creating or updating anything", async () => {
    // Prepare
    await apply(stateFor("API"));
    eks.resetHistory();

    // Act
    const again = await apply(stateFor("API"));

    // Assess
    expect(again.created).toBe(true); // still this execution's creation
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
    expect(eks).toHaveReceivedCommandTimes(UpdateAccessEntryCommand, 0);
    expect(entries.size).toBe(1);
  });

  it("adopts an entry another run of this tenant created (created: false) and restores username/groups changed by hand", async () => {
    // Prepare
    seedEntry(LAUNCHER, { username: "someone-else", kubernetesGroups: ["extra"], tags: tagsToRecord(ownershipTags(TENANT, "an-earlier-run")) });

    // Act
    const result = await apply(stateFor("API_AND_CONFIG_MAP"));

    // Assess
    expect(result.created).toBe(false);
    expect(eks).toHaveReceivedCommandWith(UpdateAccessEntryCommand, { principalArn: LAUNCHER, username: USERNAME, kubernetesGroups: [GROUP] });
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
    expect(entries.get(LAUNCHER)?.tags).toEqual(tagsToRecord(ownershipTags(TENANT, "an-earlier-run")));
  });

  it("moves an entry of ours that an earlier version mapped to the shared tower-launcher-user to the tenant's identity", async () => {
    // Prepare
    seedEntry(LAUNCHER, { username: SHARED_USERNAME, kubernetesGroups: [SHARED_GROUP], tags: tagsToRecord(ownershipTags(TENANT, "an-earlier-run")) });

    // Act
    const result = await apply(stateFor("API"));

    // Assess
    expect(result).toEqual({ method: "access-entry", principalArn: LAUNCHER, username: USERNAME, groups: [GROUP], created: false });
    expect(eks).toHaveReceivedCommandTimes(UpdateAccessEntryCommand, 1);
    expect(entries.get(LAUNCHER)).toMatchObject({ username: USERNAME, kubernetesGroups: [GROUP] });
  });

  it("maps each tenant's launcher to a Kubernetes identity of its own", async () => {
    // Prepare
    const neighbour = `arn:aws:iam::${ACCOUNT}:role/nfeks-proteomics-launcher`;

    // Act
    const ours = await apply(stateFor("API"));
    const theirs = await apply(stateFor("API", { tenant: "proteomics", run: "proteomics-run-1", iam: { launcherArn: neighbour } }));

    // Assess
    expect(ours).toMatchObject({ username: USERNAME, groups: [GROUP] });
    expect(theirs).toMatchObject({ username: "tower-launcher-user-proteomics", groups: ["tower-launcher-role-proteomics"] });
    expect(entries.get(neighbour)).toMatchObject({ username: "tower-launcher-user-proteomics", kubernetesGroups: ["tower-launcher-role-proteomics"] });
  });

  it.each([
    ["without tags", undefined],
    ["of another tenant", tagsToRecord(ownershipTags("proteomics", "their-run"))],
  ])("refuses an existing entry %s: OwnershipConflict, nothing changed", async (_label, tags) => {
    // Prepare
    seedEntry(LAUNCHER, { username: "admin", kubernetesGroups: ["admins"], ...(tags ? { tags } : {}) });

    // Act
    const attempt = apply(stateFor("API"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining(LAUNCHER) });
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
    expect(eks).toHaveReceivedCommandTimes(UpdateAccessEntryCommand, 0);
    expect(entries.get(LAUNCHER)?.username).toBe("admin");
  });

  it("decides again when the entry appears between its read and its create (ResourceInUseException)", async () => {
    // Prepare: the first Describe misses, then a concurrent attempt of this run creates it
    eks.on(DescribeAccessEntryCommand)
      .rejectsOnce(notFound())
      .callsFake(({ principalArn }) => ({ accessEntry: entries.get(principalArn) }));
    seedEntry(LAUNCHER, { username: USERNAME, kubernetesGroups: [GROUP], tags: tagsToRecord(ownershipTags(TENANT, RUN)) });

    // Act
    const result = await apply(stateFor("API"));

    // Assess
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 1);
    expect(result.created).toBe(true);
  });

  it("compensation deletes the entry this execution created, and can run twice", async () => {
    // Prepare
    const access = await apply(stateFor("API"));

    // Act
    const first = await compensate(stateFor("API", { access }));
    const second = await compensate(stateFor("API", { access }));

    // Assess
    expect(first.undone).toEqual([`EKS access entry ${LAUNCHER} on research`]);
    expect(entries.has(LAUNCHER)).toBe(false);
    expect(second).toEqual({ undone: [], kept: [] });
    expect(eks).toHaveReceivedCommandTimes(DeleteAccessEntryCommand, 1);
  });

  it("compensation finds its entry by tags even when the step returned nothing", async () => {
    // Prepare: the entry exists with this run's tags but $.access was never written
    seedEntry(LAUNCHER, { username: USERNAME, kubernetesGroups: [GROUP], tags: tagsToRecord(ownershipTags(TENANT, RUN)) });

    // Act
    const result = await compensate(stateFor("API"));

    // Assess
    expect(result.undone).toHaveLength(1);
    expect(entries.has(LAUNCHER)).toBe(false);
  });

  it("compensation keeps an entry it adopted or never owned", async () => {
    // Prepare
    seedEntry(LAUNCHER, { username: USERNAME, kubernetesGroups: [GROUP], tags: tagsToRecord(ownershipTags(TENANT, "an-earlier-run")) });
    const foreign = `arn:aws:iam::${ACCOUNT}:role/admin`;
    seedEntry(foreign, { username: "admin" });

    // Act
    const adopted = await compensate(stateFor("API"));
    const notOurs = await compensate(stateFor("API", { iam: { launcherArn: foreign } }));

    // Assess
    expect(adopted).toEqual({ undone: [], kept: [`EKS access entry ${LAUNCHER} on research: not created by this run`] });
    expect(notOurs.undone).toEqual([]);
    expect(entries.size).toBe(2);
    expect(eks).toHaveReceivedCommandTimes(DeleteAccessEntryCommand, 0);
  });
});

describe("GrantClusterAccess on API_AND_CONFIG_MAP beside aws-auth", () => {
  const ADMINS = `arn:aws:iam::${ACCOUNT}:role/cluster-admins`;
  const MASTERS = `${NODE_ROLES}- rolearn: ${ADMINS}\n  username: admin\n  groups:\n    - system:masters\n`;

  it.each([
    ["the same role ARN", ADMINS],
    ["the role ARN with a path (aws-auth matches roles without their path)", `arn:aws:iam::${ACCOUNT}:role/teams/platform/cluster-admins`],
    ["an assumed-role session of the role", `arn:aws:sts::${ACCOUNT}:assumed-role/cluster-admins/alice`],
  ])("refuses a principal aws-auth maps to system:masters (%s): OwnershipConflict naming the mapping, nothing created", async (_label, launcherArn) => {
    // Prepare: an existing launcher that a platform team already maps in aws-auth
    kube.seed({ ...ORIGINAL_DATA, mapRoles: MASTERS });
    const before = structuredClone(kube.configMap);

    // Act
    const attempt = apply(stateFor("API_AND_CONFIG_MAP", { iam: { launcherArn, launcherCreated: false, created: [] } }));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringMatching(/username "admin" and groups \["system:masters"\]/) });
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
    expect(entries.size).toBe(0);
    expect(kube.configMap).toEqual(before);
    expect(kube.replaced).toEqual([]);
  });

  it("refuses a self-managed node role mapped in aws-auth (its nodes would lose system:nodes)", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    const nodeRole = `arn:aws:iam::${ACCOUNT}:role/eks-node-group-role`;

    // Act
    const attempt = apply(stateFor("API_AND_CONFIG_MAP", { iam: { launcherArn: nodeRole, launcherCreated: false, created: [] } }));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining("system:node:{{EC2PrivateDNSName}}") });
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
  });

  it("creates the entry when aws-auth maps other principals only, and leaves aws-auth untouched", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    const before = structuredClone(kube.configMap);

    // Act
    const result = await apply(stateFor("API_AND_CONFIG_MAP"));

    // Assess
    expect(result).toMatchObject({ method: "access-entry", principalArn: LAUNCHER, created: true });
    expect(kube.reads).toBe(1);
    expect(kube.configMap).toEqual(before);
    expect(kube.forbidden).toEqual([]);
  });

  it("accepts a mapping of this tenant a run of this product recorded (a cluster moved from CONFIG_MAP)", async () => {
    // Prepare
    const ours = `${NODE_ROLES}- rolearn: ${LAUNCHER}\n  username: ${USERNAME}\n  groups:\n    - ${GROUP}\n`;
    kube.seed({ mapRoles: ours }, { [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [LAUNCHER]: executionMark("an-earlier-run") }) });

    // Act
    const result = await apply(stateFor("API_AND_CONFIG_MAP"));

    // Assess
    expect(result.created).toBe(true);
    expect(entries.get(LAUNCHER)).toMatchObject({ username: USERNAME, kubernetesGroups: [GROUP] });
    expect(kube.data.mapRoles).toBe(ours);
  });

  it("refuses a recorded mapping of another tenant's launcher: the entry would take the principal from that tenant", async () => {
    // Prepare
    const theirs = `- rolearn: ${LAUNCHER}\n  username: tower-launcher-user-proteomics\n  groups:\n    - tower-launcher-role-proteomics\n`;
    kube.seed({ mapRoles: theirs }, { [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [LAUNCHER]: executionMark("proteomics-run-1") }) });

    // Act
    const attempt = apply(stateFor("API_AND_CONFIG_MAP"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining("tenant proteomics") });
    expect(entries.size).toBe(0);
  });

  it("API mode ignores aws-auth (EKS does too) and does not read it", async () => {
    // Prepare
    kube.seed({ mapRoles: `- rolearn: ${LAUNCHER}\n  username: admin\n  groups:\n    - system:masters\n` });

    // Act
    const result = await apply(stateFor("API"));

    // Assess
    expect(result.created).toBe(true);
    expect(kubeClientsMade).toBe(0);
  });

  it("adopting its own existing entry does not need aws-auth", async () => {
    // Prepare: our entry exists; aws-auth gained a mapping for the principal since
    seedEntry(LAUNCHER, { username: USERNAME, kubernetesGroups: [GROUP], tags: tagsToRecord(ownershipTags(TENANT, RUN)) });
    kube.seed({ mapRoles: `- rolearn: ${LAUNCHER}\n  username: ops\n  groups:\n    - ops\n` });

    // Act
    const result = await apply(stateFor("API_AND_CONFIG_MAP"));

    // Assess
    expect(result.created).toBe(true);
    expect(kube.reads).toBe(0);
  });
});

describe("GrantClusterAccess: a launcher EKS refuses as a principal", () => {
  const invalidPrincipal = () =>
    new InvalidParameterException({ message: "The specified principalArn is invalid: invalid principal", $metadata: { httpStatusCode: 400 } });

  it("in another account: InvalidRequest (permanent), since no IAM propagation will make it valid", async () => {
    // Prepare
    eks.on(CreateAccessEntryCommand).rejects(invalidPrincipal());
    const foreign = "arn:aws:iam::444455556666:role/ghost-launcher";

    // Act
    const attempt = apply(stateFor("API", { iam: { launcherArn: foreign, launcherCreated: false, created: [] } }));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "InvalidRequest", message: expect.stringContaining(`launcher.principalArn: EKS refuses ${foreign}`) });
  });

  it("in the cluster's account: IamNotYetConsistent (retried), as for a role created a moment ago", async () => {
    // Prepare
    eks.on(CreateAccessEntryCommand).rejects(invalidPrincipal());

    // Act
    const attempt = apply(stateFor("API"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "IamNotYetConsistent" });
  });
});

// ---------------------------------------------------------------- aws-auth

describe("GrantClusterAccess with aws-auth (CONFIG_MAP)", () => {
  it("adds the launcher to mapRoles, keeping node roles, {{SessionName}}, mapUsers and other keys as they were", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    const readVersion = kube.configMap!.metadata!.resourceVersion;

    // Act
    const result = await apply(stateFor("CONFIG_MAP"));

    // Assess
    expect(result).toMatchObject({ method: "aws-auth", principalArn: LAUNCHER, username: USERNAME, groups: [GROUP], created: true });
    expect(result.previousAwsAuth).toEqual(ORIGINAL_DATA);
    expect(kube.replaced).toHaveLength(1);
    expect(kube.replaced[0]!.metadata!.resourceVersion).toBe(readVersion);
    // Untouched entries survive byte for byte; ours is appended.
    expect(kube.data.mapRoles!.startsWith(NODE_ROLES)).toBe(true);
    expect(kube.data.mapRoles).toContain('username: "admin:{{SessionName}}"');
    expect(kube.data.mapUsers).toBe(MAP_USERS);
    expect(kube.data.mapAccounts).toBe(ORIGINAL_DATA.mapAccounts);
    expect(mapRolesOf(kube)).toHaveLength(3);
    expect(launcherEntries(kube)).toEqual([{ rolearn: LAUNCHER, username: USERNAME, groups: [GROUP] }]);
    // Our mark lives on the ConfigMap; the copy of the previous content only in the step output.
    expect(kube.annotations).toEqual({ [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [LAUNCHER]: executionMark(RUN) }) });
    expect(kube.configMap!.metadata!.labels).toEqual({ "eks.amazonaws.com/component": "aws-auth" });
    expect(kube.forbidden).toEqual([]);
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
  });

  it("on 409 re-reads and redoes the edit on the newer content, keeping the other writer's change", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    const otherNodeRole = `arn:aws:iam::${ACCOUNT}:role/eks-spot-node-role`;
    kube.interleave.push((cm) => {
      cm.data!.mapRoles += `- rolearn: ${otherNodeRole}\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n`;
    });

    // Act
    const result = await apply(stateFor("CONFIG_MAP"));

    // Assess
    expect(kube.reads).toBe(2);
    expect(kube.replaced).toHaveLength(1);
    expect(mapRolesOf(kube).map((e) => e.rolearn)).toEqual([`arn:aws:iam::${ACCOUNT}:role/eks-node-group-role`, `arn:aws:iam::${ACCOUNT}:role/platform-admins`, otherNodeRole, LAUNCHER]);
    // The previous content is what the successful edit replaced (including the other writer's change).
    expect(result.previousAwsAuth!.mapRoles).toContain(otherNodeRole);
  });

  it("gives up with KubeConflict (retried by the state machine) when every replace conflicts", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    for (let i = 0; i < AWS_AUTH_MAX_ATTEMPTS; i++) kube.interleave.push((cm) => (cm.data!.touched = String(i)));

    // Act
    const attempt = apply(stateFor("CONFIG_MAP"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "KubeConflict" });
    expect(kube.reads).toBe(AWS_AUTH_MAX_ATTEMPTS);
    expect(launcherEntries(kube)).toEqual([]);
  });

  it("re-run changes nothing and duplicates nothing; another run of the tenant adopts it (created: false)", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    await apply(stateFor("CONFIG_MAP"));

    // Act
    const again = await apply(stateFor("CONFIG_MAP"));
    const other = await apply(stateFor("CONFIG_MAP", { run: "genomics-run-2" }));

    // Assess
    expect(kube.replaced).toHaveLength(1);
    expect(launcherEntries(kube)).toHaveLength(1);
    expect(again.created).toBe(true);
    expect(again.previousAwsAuth).toEqual(ORIGINAL_DATA); // today's content without this run's entry
    expect(other.created).toBe(false);
    expect(JSON.parse(kube.annotations[ANNOTATION_AWS_AUTH_MAPPINGS]!)).toEqual({ [LAUNCHER]: executionMark(RUN) });
  });

  it("moves a mapping of ours with the shared tower-launcher-user of an earlier version to the tenant's identity, in place", async () => {
    // Prepare: the mapping an earlier version added, recorded by its run's mark
    const shared = `${NODE_ROLES}- rolearn: ${LAUNCHER}\n  username: ${SHARED_USERNAME}\n  groups:\n    - ${SHARED_GROUP}\n`;
    const marks = JSON.stringify({ [LAUNCHER]: executionMark("an-earlier-run") });
    kube.seed({ mapRoles: shared, mapUsers: MAP_USERS }, { [ANNOTATION_AWS_AUTH_MAPPINGS]: marks });

    // Act
    const result = await apply(stateFor("CONFIG_MAP"));

    // Assess: replaced where it was, still recorded as the earlier run's
    expect(result).toMatchObject({ username: USERNAME, groups: [GROUP], created: false, previousAwsAuth: { mapRoles: shared, mapUsers: MAP_USERS } });
    expect(mapRolesOf(kube).map((e) => e.rolearn)).toEqual([`arn:aws:iam::${ACCOUNT}:role/eks-node-group-role`, `arn:aws:iam::${ACCOUNT}:role/platform-admins`, LAUNCHER]);
    expect(launcherEntries(kube)).toEqual([{ rolearn: LAUNCHER, username: USERNAME, groups: [GROUP] }]);
    expect(kube.data.mapRoles!.startsWith(NODE_ROLES)).toBe(true);
    expect(kube.annotations[ANNOTATION_AWS_AUTH_MAPPINGS]).toBe(marks);
  });

  it("refuses a principal another tenant's run mapped to its own launcher user: OwnershipConflict, aws-auth untouched", async () => {
    // Prepare: tenant proteomics already uses the same (existing) launcher principal
    kube.seed(ORIGINAL_DATA);
    await apply(stateFor("CONFIG_MAP", { tenant: "proteomics", run: "proteomics-run-1" }));
    const before = structuredClone(kube.configMap);

    // Act
    const attempt = apply(stateFor("CONFIG_MAP"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining("tenant proteomics") });
    expect(kube.configMap).toEqual(before);
    expect(launcherEntries(kube)).toEqual([{ rolearn: LAUNCHER, username: "tower-launcher-user-proteomics", groups: ["tower-launcher-role-proteomics"] }]);
  });

  it("refuses a shared tower-launcher-user mapping that carries no mark of ours: OwnershipConflict, aws-auth untouched", async () => {
    // Prepare: the same content, made by hand
    const byHand = `${NODE_ROLES}- rolearn: ${LAUNCHER}\n  username: ${SHARED_USERNAME}\n  groups:\n    - ${SHARED_GROUP}\n`;
    kube.seed({ mapRoles: byHand });

    // Act
    const attempt = apply(stateFor("CONFIG_MAP"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "OwnershipConflict" });
    expect(kube.replaced).toHaveLength(0);
    expect(kube.data.mapRoles).toBe(byHand);
  });

  it("removes the previous-content annotation an earlier version left, keeping everyone else's annotations", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA, { [ANNOTATION_PREVIOUS_AWS_AUTH]: JSON.stringify({ mapRoles: "stale" }), "example.com/owner": "platform" });

    // Act
    await apply(stateFor("CONFIG_MAP"));

    // Assess
    expect(kube.annotations).toEqual({ "example.com/owner": "platform", [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [LAUNCHER]: executionMark(RUN) }) });
  });

  it("leaves the copy out of the step output when aws-auth is too large for a Step Functions state, and still edits", async () => {
    // Prepare
    const large = { ...ORIGINAL_DATA, mapAccounts: `${Array.from({ length: MAX_PREVIOUS_COPY_CHARS / 10 }, (_, i) => `- "${String(i).padStart(12, "0")}"`).join("\n")}\n` };
    kube.seed(large);

    // Act
    const result = await apply(stateFor("CONFIG_MAP"));

    // Assess
    expect(result.created).toBe(true);
    expect(result).not.toHaveProperty("previousAwsAuth");
    expect(launcherEntries(kube)).toHaveLength(1);
    expect(kube.data.mapAccounts).toBe(large.mapAccounts);
  });

  it("keeps the previous-content copy small enough for the workflow state (an aws-auth of 40 000 characters is left out)", async () => {
    // Prepare: far below the old 100 000-character cap, yet a large share of Step Functions' 256 KiB state
    const accounts = Array.from({ length: 2_500 }, (_, i) => `- "${String(i).padStart(12, "0")}"`).join("\n");
    const large = { ...ORIGINAL_DATA, mapAccounts: `${accounts}\n` };
    expect(JSON.stringify(large).length).toBeGreaterThan(40_000);
    kube.seed(large);

    // Act
    const result = await apply(stateFor("CONFIG_MAP"));

    // Assess
    expect(MAX_PREVIOUS_COPY_CHARS).toBeLessThanOrEqual(32_000);
    expect(result).not.toHaveProperty("previousAwsAuth");
    expect(launcherEntries(kube)).toHaveLength(1);
  });

  it("refuses a foreign mapping of the same ARN: OwnershipConflict, aws-auth untouched", async () => {
    // Prepare
    const foreign = `${NODE_ROLES}- rolearn: ${LAUNCHER}\n  username: ops\n  groups:\n    - ops\n`;
    kube.seed({ mapRoles: foreign });

    // Act
    const attempt = apply(stateFor("CONFIG_MAP"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "OwnershipConflict" });
    expect(kube.replaced).toHaveLength(0);
    expect(kube.data.mapRoles).toBe(foreign);
  });

  it("maps an IAM user launcher in mapUsers", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    const user = `arn:aws:iam::${ACCOUNT}:user/ci-launcher`;

    // Act
    const result = await apply(stateFor("CONFIG_MAP", { iam: { launcherArn: user, launcherKind: "user", launcherCreated: false, created: [] } }));

    // Assess
    expect(result.principalArn).toBe(user);
    expect(mapUsersOf(kube)).toEqual([
      { userarn: `arn:aws:iam::${ACCOUNT}:user/alice`, username: "alice", groups: ["readers"] },
      { userarn: user, username: USERNAME, groups: [GROUP] },
    ]);
    expect(kube.data.mapRoles).toBe(NODE_ROLES);
  });

  it("maps a role without its path (aws-auth does not match paths)", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);

    // Act
    const result = await apply(stateFor("CONFIG_MAP", { iam: { launcherArn: `arn:aws:iam::${ACCOUNT}:role/teams/genomics/launcher` } }));

    // Assess
    expect(result.principalArn).toBe(`arn:aws:iam::${ACCOUNT}:role/launcher`);
    expect(launcherEntries(kube, `arn:aws:iam::${ACCOUNT}:role/launcher`)).toHaveLength(1);
  });

  it("never creates a missing aws-auth: NotAllowed with the reason", async () => {
    // Prepare: no ConfigMap

    // Act
    const attempt = apply(stateFor("CONFIG_MAP"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "NotAllowed", message: expect.stringContaining("no kube-system/aws-auth") });
    expect(kube.forbidden).toEqual([]);
    expect(kube.configMap).toBeUndefined();
  });

  it("refuses to write when mapRoles does not parse (AwsAuthUnparseable)", async () => {
    // Prepare
    kube.seed({ mapRoles: "rolearn: not-a-list\n" });

    // Act
    const attempt = apply(stateFor("CONFIG_MAP"));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "AwsAuthUnparseable" });
    expect(kube.replaced).toHaveLength(0);
  });
});

describe("UndoClusterAccess with aws-auth (CONFIG_MAP)", () => {
  it("removes exactly this run's mapping, keeps everyone else's, and can run twice", async () => {
    // Prepare: this run adds its launcher, then another tenant's run adds its own
    kube.seed(ORIGINAL_DATA);
    const access = await apply(stateFor("CONFIG_MAP"));
    const neighbour = `arn:aws:iam::${ACCOUNT}:role/nfeks-proteomics-launcher`;
    await apply(stateFor("CONFIG_MAP", { tenant: "proteomics", run: "proteomics-run-1", iam: { launcherArn: neighbour } }));

    // Act
    const first: CompensationResult = await compensate(stateFor("CONFIG_MAP", { access }));
    const writes = kube.replaced.length;
    const second = await compensate(stateFor("CONFIG_MAP", { access }));

    // Assess
    expect(first.undone).toEqual([`aws-auth mapping for ${LAUNCHER}`]);
    expect(launcherEntries(kube)).toEqual([]);
    expect(launcherEntries(kube, neighbour)).toHaveLength(1);
    expect(kube.data.mapRoles!.startsWith(NODE_ROLES)).toBe(true);
    expect(kube.data.mapUsers).toBe(MAP_USERS);
    expect(JSON.parse(kube.annotations[ANNOTATION_AWS_AUTH_MAPPINGS]!)).toEqual({ [neighbour]: executionMark("proteomics-run-1") });
    expect(second.undone).toEqual([]);
    expect(kube.replaced.length).toBe(writes); // the second run wrote nothing
    expect(kube.forbidden).toEqual([]);
  });

  it("beside another tenant's mapping, puts aws-auth back exactly as it was before the run, annotations included", async () => {
    // Prepare: another tenant's run edited aws-auth first
    kube.seed(ORIGINAL_DATA);
    const neighbour = `arn:aws:iam::${ACCOUNT}:role/nfeks-proteomics-launcher`;
    await apply(stateFor("CONFIG_MAP", { tenant: "proteomics", run: "proteomics-run-1", iam: { launcherArn: neighbour } }));
    const { resourceVersion: _before, ...metadataBefore } = structuredClone(kube.configMap!.metadata!);
    const dataBefore = structuredClone(kube.data);
    const access = await apply(stateFor("CONFIG_MAP"));

    // Act
    const result = await compensate(stateFor("CONFIG_MAP", { access }));

    // Assess
    expect(access.previousAwsAuth).toEqual(dataBefore);
    expect(result.undone).toEqual([`aws-auth mapping for ${LAUNCHER}`]);
    const { resourceVersion: _after, ...metadataAfter } = kube.configMap!.metadata!;
    expect(metadataAfter).toEqual(metadataBefore);
    expect(kube.data).toEqual(dataBefore);
    expect(launcherEntries(kube, neighbour)).toEqual([{ rolearn: neighbour, username: "tower-launcher-user-proteomics", groups: ["tower-launcher-role-proteomics"] }]);
  });

  it("finds its mapping by the mark even when the step returned nothing, and restores the exact original data", async () => {
    // Prepare: the edit landed but $.access was never written (the Lambda failed after the replace)
    kube.seed(ORIGINAL_DATA);
    await apply(stateFor("CONFIG_MAP"));

    // Act
    const result = await compensate(stateFor("CONFIG_MAP"));

    // Assess
    expect(result.undone).toEqual([`aws-auth mapping for ${LAUNCHER}`]);
    expect(kube.data).toEqual(ORIGINAL_DATA);
    expect(kube.annotations[ANNOTATION_AWS_AUTH_MAPPINGS]).toBeUndefined();
  });

  it("leaves a mapping it did not add (present before the run) in place", async () => {
    // Prepare: the same mapping was there already, added by hand
    const byHand = `${NODE_ROLES}- rolearn: ${LAUNCHER}\n  username: ${USERNAME}\n  groups:\n    - ${GROUP}\n`;
    kube.seed({ mapRoles: byHand });
    const access = await apply(stateFor("CONFIG_MAP"));

    // Act
    const result = await compensate(stateFor("CONFIG_MAP", { access }));

    // Assess
    expect(access.created).toBe(false);
    expect(result.undone).toEqual([]);
    expect(result.kept).toEqual([`aws-auth mapping for ${LAUNCHER}: not added by this run`]);
    expect(kube.data.mapRoles).toBe(byHand);
    expect(kube.replaced).toHaveLength(0);
  });

  it("keeps an entry someone changed after this run added it, and forgets its mark", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    await apply(stateFor("CONFIG_MAP"));
    kube.writeByOther((cm) => {
      cm.data!.mapRoles = cm.data!.mapRoles!.replace(`    - ${GROUP}`, `    - ${GROUP}\n    - auditors`);
    });

    // Act
    const result = await compensate(stateFor("CONFIG_MAP"));

    // Assess
    expect(result.undone).toEqual([]);
    expect(result.kept).toEqual([`aws-auth mapping for ${LAUNCHER}: changed or removed since this run added it`]);
    expect(launcherEntries(kube)).toEqual([{ rolearn: LAUNCHER, username: USERNAME, groups: [GROUP, "auditors"] }]);
    expect(kube.annotations[ANNOTATION_AWS_AUTH_MAPPINGS]).toBeUndefined();
  });

  it("re-reads on 409 while removing", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    await apply(stateFor("CONFIG_MAP"));
    kube.interleave.push((cm) => (cm.data!.mapAccounts = `- "${ACCOUNT}"\n- "444455556666"\n`));

    // Act
    const result = await compensate(stateFor("CONFIG_MAP"));

    // Assess
    expect(result.undone).toHaveLength(1);
    expect(launcherEntries(kube)).toEqual([]);
    expect(kube.data.mapAccounts).toContain("444455556666");
  });

  it("does nothing when aws-auth or the cluster is gone", async () => {
    // Prepare: no ConfigMap; and a state where ResolveCluster never ran
    const noCluster = { ...stateFor("CONFIG_MAP"), cluster: undefined };

    // Act
    const missing = await compensate(stateFor("CONFIG_MAP"));
    const unresolved = await compensate(noCluster);

    // Assess
    expect(missing.undone).toEqual([]);
    expect(unresolved).toEqual({ undone: [], kept: [] });
    expect(kube.forbidden).toEqual([]);
  });
});
