/**
 * UndoClusterAccess: exactly what this run added is removed (its access entry, or its aws-auth mapping found
 * by the run's mark), even when the step returned nothing; everything else is kept, and a second run finds nothing.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import { DeleteAccessEntryCommand } from "@aws-sdk/client-eks";
import { ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { ANNOTATION_AWS_AUTH_MAPPINGS } from "../../functions/lib/kube/aws-auth/index.js";
import { apply, compensate } from "../../functions/steps/cluster-access/index.js";
import type { CompensationResult } from "../../functions/lib/workflow/workflow-state.js";
import { GROUP, LAUNCHER, USERNAME, launcherEntries, stateFor } from "../support/cluster-access-fixtures.js";
import { MAP_USERS, NODE_ROLES, ORIGINAL_DATA, useFakeAwsAuthKube } from "../support/fake-aws-auth-kube.js";
import { useFakeEks } from "../support/fake-eks.js";
import { ACCOUNT, RUN, TENANT, markOf } from "../support/fixtures.js";

const { eks, entries, seedEntry } = useFakeEks();
const kube = useFakeAwsAuthKube();

describe("UndoClusterAccess with access entries (API, API_AND_CONFIG_MAP)", () => {
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
    seedEntry(LAUNCHER, { username: USERNAME, kubernetesGroups: [GROUP], tags: tagsToRecord(ownershipTags(TENANT, markOf(RUN))) });

    // Act
    const result = await compensate(stateFor("API"));

    // Assess
    expect(result.undone).toHaveLength(1);
    expect(entries.has(LAUNCHER)).toBe(false);
  });

  it("compensation keeps an entry it adopted or never owned", async () => {
    // Prepare
    seedEntry(LAUNCHER, {
      username: USERNAME,
      kubernetesGroups: [GROUP],
      tags: tagsToRecord(ownershipTags(TENANT, markOf("an-earlier-run"))),
    });
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
    expect(JSON.parse(kube.annotations[ANNOTATION_AWS_AUTH_MAPPINGS]!)).toEqual({ [neighbour]: markOf("proteomics-run-1") });
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
    expect(launcherEntries(kube, neighbour)).toEqual([
      { rolearn: neighbour, username: "tower-launcher-user-proteomics", groups: ["tower-launcher-role-proteomics"] },
    ]);
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

  it("with no mark of this run, leaves alone an aws-auth it could not even parse", async () => {
    // Prepare: content nobody can parse, and no entry of this run
    kube.seed({ mapRoles: "rolearn: not-a-list\n" });

    // Act
    const result = await compensate(stateFor("CONFIG_MAP"));

    // Assess
    expect(result).toEqual({ undone: [], kept: [] });
    expect(kube.replaced).toHaveLength(0);
    expect(kube.data.mapRoles).toBe("rolearn: not-a-list\n");
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
