/**
 * GrantClusterAccess on API and API_AND_CONFIG_MAP clusters: the launcher's EKS access entry, created,
 * adopted or refused; a launcher EKS will not take as a principal.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import {
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  EKSClient,
  InvalidParameterException,
  UpdateAccessEntryCommand,
} from "@aws-sdk/client-eks";
import { ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { apply, createClusterAccessStep } from "../../functions/steps/cluster-access/index.js";
import type { AuthenticationMode } from "../../functions/lib/workflow/workflow-state.js";
import { GROUP, LAUNCHER, SHARED_GROUP, SHARED_USERNAME, USERNAME, stateFor } from "../support/cluster-access-fixtures.js";
import { useFakeAwsAuthKube } from "../support/fake-aws-auth-kube.js";
import { accessEntryNotFound, useFakeEks } from "../support/fake-eks.js";
import { ACCOUNT, RUN, TENANT, markOf } from "../support/fixtures.js";

const { eks, entries, seedEntry } = useFakeEks();
const kube = useFakeAwsAuthKube();

// ---------------------------------------------------------------- access entries

describe("GrantClusterAccess with access entries (API, API_AND_CONFIG_MAP)", () => {
  it.each<AuthenticationMode>(["API", "API_AND_CONFIG_MAP"])(
    "%s: creates a STANDARD entry with the launcher username, group and our tags",
    async (mode) => {
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
        tags: tagsToRecord(ownershipTags(TENANT, markOf(RUN))),
      });
      // aws-auth is never written in these modes (API_AND_CONFIG_MAP reads it; here it is absent, which is fine)
      expect(kube.clientsMade).toBe(mode === "API" ? 0 : 1);
      expect(kube.replaced).toEqual([]);
      expect(kube.forbidden).toEqual([]);
    },
  );

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
    seedEntry(LAUNCHER, {
      username: "someone-else",
      kubernetesGroups: ["extra"],
      tags: tagsToRecord(ownershipTags(TENANT, markOf("an-earlier-run"))),
    });

    // Act
    const result = await apply(stateFor("API_AND_CONFIG_MAP"));

    // Assess
    expect(result.created).toBe(false);
    expect(eks).toHaveReceivedCommandWith(UpdateAccessEntryCommand, {
      principalArn: LAUNCHER,
      username: USERNAME,
      kubernetesGroups: [GROUP],
    });
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
    expect(entries.get(LAUNCHER)?.tags).toEqual(tagsToRecord(ownershipTags(TENANT, markOf("an-earlier-run"))));
  });

  it("moves an entry of ours that an earlier version mapped to the shared tower-launcher-user to the tenant's identity", async () => {
    // Prepare
    seedEntry(LAUNCHER, {
      username: SHARED_USERNAME,
      kubernetesGroups: [SHARED_GROUP],
      tags: tagsToRecord(ownershipTags(TENANT, markOf("an-earlier-run"))),
    });

    // Act
    const result = await apply(stateFor("API"));

    // Assess
    expect(result).toEqual({
      method: "access-entry",
      principalArn: LAUNCHER,
      username: USERNAME,
      groups: [GROUP],
      created: false,
      previousIdentity: { username: SHARED_USERNAME, groups: [SHARED_GROUP] },
    });
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
    expect(entries.get(neighbour)).toMatchObject({
      username: "tower-launcher-user-proteomics",
      kubernetesGroups: ["tower-launcher-role-proteomics"],
    });
  });

  it.each([
    ["without tags", undefined],
    ["of another tenant", tagsToRecord(ownershipTags("proteomics", markOf("their-run")))],
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
    eks
      .on(DescribeAccessEntryCommand)
      .rejectsOnce(accessEntryNotFound())
      .callsFake(({ principalArn }) => ({ accessEntry: entries.get(principalArn) }));
    seedEntry(LAUNCHER, { username: USERNAME, kubernetesGroups: [GROUP], tags: tagsToRecord(ownershipTags(TENANT, markOf(RUN))) });

    // Act
    const result = await apply(stateFor("API"));

    // Assess
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 1);
    expect(result.created).toBe(true);
  });
});

describe("GrantClusterAccess: an entry made for an earlier instance of the launcher role (#13 point 1)", () => {
  const ROLE_CREATED = "2026-12-05T08:00:10.000Z";

  it("deletes our entry created before the role's CreateDate and makes a new one (replacedStaleEntry), never adopts it", async () => {
    // Prepare: an earlier run's entry, from before the role was deleted and recreated
    const staleAt = new Date("2026-12-05T08:00:09.400Z");
    seedEntry(LAUNCHER, {
      username: USERNAME,
      kubernetesGroups: [GROUP],
      createdAt: staleAt,
      tags: tagsToRecord(ownershipTags(TENANT, markOf("an-earlier-run"))),
    });

    // Act
    const result = await apply(stateFor("API", { iam: { launcherCreateDate: ROLE_CREATED } }));

    // Assess
    expect(result).toEqual({
      method: "access-entry",
      principalArn: LAUNCHER,
      username: USERNAME,
      groups: [GROUP],
      created: true,
      replacedStaleEntry: { createdAt: staleAt.toISOString() },
    });
    expect(eks).toHaveReceivedCommandWith(DeleteAccessEntryCommand, { clusterName: "research", principalArn: LAUNCHER });
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 1);
    expect(entries.get(LAUNCHER)?.tags).toEqual(tagsToRecord(ownershipTags(TENANT, markOf(RUN))));
  });

  it("adopts an entry made in the role's first second or later (CreateDate has whole seconds: never falsely stale)", async () => {
    // Prepare
    seedEntry(LAUNCHER, {
      username: USERNAME,
      kubernetesGroups: [GROUP],
      createdAt: new Date("2026-12-05T08:00:10.000Z"),
      tags: tagsToRecord(ownershipTags(TENANT, markOf("an-earlier-run"))),
    });

    // Act
    const result = await apply(stateFor("API", { iam: { launcherCreateDate: ROLE_CREATED } }));

    // Assess
    expect(result).not.toHaveProperty("replacedStaleEntry");
    expect(result.created).toBe(false);
    expect(eks).toHaveReceivedCommandTimes(DeleteAccessEntryCommand, 0);
    expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
  });

  it("refuses a stale entry that is not ours: OwnershipConflict, nothing deleted", async () => {
    // Prepare
    seedEntry(LAUNCHER, { username: "admin", kubernetesGroups: ["admins"], createdAt: new Date("2026-01-01T00:00:00Z") });

    // Act
    const attempt = apply(stateFor("API", { iam: { launcherCreateDate: ROLE_CREATED } }));

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: "OwnershipConflict", message: expect.stringContaining("no longer honours") });
    expect(eks).toHaveReceivedCommandTimes(DeleteAccessEntryCommand, 0);
    expect(entries.get(LAUNCHER)?.username).toBe("admin");
  });
});

describe("GrantClusterAccess: a launcher EKS refuses as a principal", () => {
  const invalidPrincipal = () =>
    new InvalidParameterException({
      message: "The specified principalArn is invalid: invalid principal",
      $metadata: { httpStatusCode: 400 },
    });

  it("in another account: InvalidRequest (permanent), since no IAM propagation will make it valid", async () => {
    // Prepare
    eks.on(CreateAccessEntryCommand).rejects(invalidPrincipal());
    const foreign = "arn:aws:iam::444455556666:role/ghost-launcher";

    // Act
    const attempt = apply(stateFor("API", { iam: { launcherArn: foreign, launcherCreated: false, created: [] } }));

    // Assess
    await expect(attempt).rejects.toMatchObject({
      name: "InvalidRequest",
      message: expect.stringContaining(`launcher.principalArn: EKS refuses ${foreign}`),
    });
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

describe("createClusterAccessStep: the handlers with the clients they are given", () => {
  it("sends the access entry calls through the given EKS client", async () => {
    // Prepare
    const given = new EKSClient({ region: "eu-west-1" });
    const step = createClusterAccessStep({ eks: given });

    // Act
    const result = await step.apply(stateFor("API"));

    // Assess
    expect(result.created).toBe(true);
    const calls = eks.commandCalls(CreateAccessEntryCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.thisValue).toBe(given);
  });

  it("edits aws-auth through the given Kubernetes API, asking the client factory for none", async () => {
    // Prepare
    kube.seed({ mapRoles: "" });
    const step = createClusterAccessStep({ kube: kube.api() });

    // Act
    const granted = await step.apply(stateFor("CONFIG_MAP"));
    const undone = await step.compensate(stateFor("CONFIG_MAP", { access: granted }));

    // Assess
    expect(granted).toMatchObject({ method: "aws-auth", created: true });
    expect(undone.undone).toEqual([`aws-auth mapping for ${LAUNCHER}`]);
    expect(kube.replaced).toHaveLength(2);
    expect(kube.clientsMade).toBe(0);
  });
});
