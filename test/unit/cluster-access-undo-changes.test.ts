/**
 * UndoClusterAccess puts back what a run CHANGED on an entry it adopted (an access entry it updated, an aws-auth
 * mapping it replaced), but only while the entry is still what the run wrote; otherwise the entry is left alone and
 * reported under `failed` (could not be undone). Also: an aws-auth list the run added is dropped again, one that was
 * there (even empty) stays; and the aws-auth loop never starts a round it has no time left to finish.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import { UpdateAccessEntryCommand } from "@aws-sdk/client-eks";
import { ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import {
  ANNOTATION_AWS_AUTH_EDITS,
  ANNOTATION_AWS_AUTH_MAPPINGS,
  AWS_AUTH_ROUND_WORST_MS,
} from "../../functions/lib/kube/aws-auth/index.js";
import { apply, compensate, RETURN_MARGIN_MS } from "../../functions/steps/cluster-access/index.js";
import { GROUP, LAUNCHER, SHARED_GROUP, SHARED_USERNAME, USERNAME, stateFor } from "../support/cluster-access-fixtures.js";
import { MAP_USERS, NODE_ROLES, ORIGINAL_DATA, useFakeAwsAuthKube } from "../support/fake-aws-auth-kube.js";
import { useFakeEks } from "../support/fake-eks.js";
import { ACCOUNT, markOf, TENANT } from "../support/fixtures.js";

const { eks, entries, seedEntry } = useFakeEks();
const kube = useFakeAwsAuthKube();
const LABEL = `EKS access entry ${LAUNCHER} on research`;

describe("UndoClusterAccess: an adopted access entry this run updated", () => {
  it("puts the earlier username and groups back, and a second undo finds nothing to do", async () => {
    // Prepare: an entry of this tenant from an earlier version (shared identity), moved by this run
    seedEntry(LAUNCHER, {
      username: SHARED_USERNAME,
      kubernetesGroups: [SHARED_GROUP],
      tags: tagsToRecord(ownershipTags(TENANT, markOf("an-earlier-run"))),
    });
    const access = await apply(stateFor("API"));

    // Act
    const first = await compensate(stateFor("API", { access }));
    const second = await compensate(stateFor("API", { access }));

    // Assess
    expect(access.previousIdentity).toEqual({ username: SHARED_USERNAME, groups: [SHARED_GROUP] });
    expect(first).toEqual({ undone: [`${LABEL} (put back username "${SHARED_USERNAME}" and groups ["${SHARED_GROUP}"])`], kept: [] });
    expect(entries.get(LAUNCHER)).toMatchObject({ username: SHARED_USERNAME, kubernetesGroups: [SHARED_GROUP] });
    expect(second).toEqual({ undone: [], kept: [] });
    expect(eks).toHaveReceivedCommandTimes(UpdateAccessEntryCommand, 2);
  });

  it("leaves an entry changed again after this run alone, reported as not undone", async () => {
    // Prepare
    seedEntry(LAUNCHER, {
      username: SHARED_USERNAME,
      kubernetesGroups: [SHARED_GROUP],
      tags: tagsToRecord(ownershipTags(TENANT, markOf("an-earlier-run"))),
    });
    const access = await apply(stateFor("API"));
    entries.get(LAUNCHER)!.kubernetesGroups = [GROUP, "auditors"];

    // Act
    const result = await compensate(stateFor("API", { access }));

    // Assess
    expect(result.undone).toEqual([]);
    expect(result.failed).toEqual([`${LABEL}: changed since this run changed it, so its earlier username and groups were not put back`]);
    expect(entries.get(LAUNCHER)).toMatchObject({ username: USERNAME, kubernetesGroups: [GROUP, "auditors"] });
    expect(eks).toHaveReceivedCommandTimes(UpdateAccessEntryCommand, 1);
  });
});

describe("UndoClusterAccess: an adopted aws-auth mapping this run replaced", () => {
  const shared = `${NODE_ROLES}- rolearn: ${LAUNCHER}   # moved here from the old cluster\n  username: ${SHARED_USERNAME}\n  groups: [ ${SHARED_GROUP} ]\n`;
  const marks = JSON.stringify({ [LAUNCHER]: markOf("an-earlier-run") });

  it("puts the mapping back byte for byte, annotations included, and can run twice", async () => {
    // Prepare
    kube.seed({ mapRoles: shared, mapUsers: MAP_USERS }, { [ANNOTATION_AWS_AUTH_MAPPINGS]: marks });
    const before = structuredClone(kube.configMap!);
    await apply(stateFor("CONFIG_MAP"));
    const recorded = JSON.parse(kube.annotations[ANNOTATION_AWS_AUTH_EDITS]!);

    // Act: the step's output was lost, the record on the ConfigMap is enough
    const first = await compensate(stateFor("CONFIG_MAP"));
    const second = await compensate(stateFor("CONFIG_MAP"));

    // Assess
    expect(recorded[markOf("genomics-run-1")][LAUNCHER].replaced.previous).toEqual([
      `- rolearn: ${LAUNCHER}   # moved here from the old cluster\n  username: ${SHARED_USERNAME}\n  groups: [ ${SHARED_GROUP} ]\n`,
    ]);
    expect(first).toEqual({ undone: [`aws-auth mapping for ${LAUNCHER} (put back as it was before this run)`], kept: [] });
    expect(kube.data).toEqual(before.data);
    expect(kube.annotations).toEqual(before.metadata!.annotations);
    expect(second).toEqual({ undone: [], kept: [] });
  });

  it("leaves a mapping changed again after this run alone, reported as not undone", async () => {
    // Prepare
    kube.seed({ mapRoles: shared }, { [ANNOTATION_AWS_AUTH_MAPPINGS]: marks });
    await apply(stateFor("CONFIG_MAP"));
    kube.writeByOther((cm) => {
      cm.data!.mapRoles = cm.data!.mapRoles!.replace(`    - ${GROUP}\n`, `    - ${GROUP}\n    - auditors\n`);
    });
    const changed = kube.data.mapRoles;

    // Act
    const result = await compensate(stateFor("CONFIG_MAP"));

    // Assess
    expect(result.undone).toEqual([]);
    expect(result.failed).toEqual([
      `aws-auth mapping for ${LAUNCHER}: changed or removed since this run changed it, so its earlier content was not put back`,
    ]);
    expect(kube.data.mapRoles).toBe(changed);
    expect(kube.annotations[ANNOTATION_AWS_AUTH_EDITS]).toBeUndefined();
    expect(kube.annotations[ANNOTATION_AWS_AUTH_MAPPINGS]).toBe(marks);
  });
});

describe("UndoClusterAccess: the aws-auth list itself", () => {
  const USER = `arn:aws:iam::${ACCOUNT}:user/ci-launcher`;
  const asUser = { iam: { launcherArn: USER, launcherKind: "user" as const, launcherCreated: false, created: [] } };

  it.each([
    ["absent (the run added the key: it goes again)", undefined],
    ["an empty flow list", "[]\n"],
    ["an empty string", ""],
    ["comments only", "# users go here\n"],
  ])("mapUsers %s comes back exactly as it was", async (_what, mapUsers) => {
    // Prepare
    const data: Record<string, string> = { mapRoles: NODE_ROLES, ...(mapUsers !== undefined ? { mapUsers } : {}) };
    kube.seed(data);
    await apply(stateFor("CONFIG_MAP", asUser));

    // Act
    const result = await compensate(stateFor("CONFIG_MAP", asUser));

    // Assess
    expect(result.undone).toEqual([`aws-auth mapping for ${USER}`]);
    expect(kube.data).toEqual(data);
    expect(kube.annotations).toEqual({});
  });
});

describe("the aws-auth loop and the Lambda's time", () => {
  it("does not start another round when the invocation could not finish it: KubeConflict, retried by the state machine", async () => {
    // Prepare: every replace conflicts, and once the first round is done the Lambda has less than a round left
    kube.seed(ORIGINAL_DATA);
    kube.interleave = Array.from({ length: 10 }, () => (cm) => {
      cm.data = { ...cm.data, mapAccounts: `${cm.data?.mapAccounts ?? ""}- "${ACCOUNT}"\n` };
    });
    const remaining = RETURN_MARGIN_MS + AWS_AUTH_ROUND_WORST_MS - 1_000;

    // Act
    const act = apply(stateFor("CONFIG_MAP"), { getRemainingTimeInMillis: () => remaining });

    // Assess
    await expect(act).rejects.toMatchObject({ name: "KubeConflict", message: expect.stringContaining("no time for another round") });
    expect(kube.reads).toBe(1);
  });

  it("keeps going while there is time for a round (five rounds at most)", async () => {
    // Prepare: the first two replaces conflict
    kube.seed(ORIGINAL_DATA);
    const rewriteData = (cm: { data?: Record<string, string> }) => {
      cm.data = { ...cm.data };
    };
    kube.interleave = [rewriteData, rewriteData];

    // Act
    const result = await apply(stateFor("CONFIG_MAP"), { getRemainingTimeInMillis: () => 90_000 });

    // Assess
    expect(result.created).toBe(true);
    expect(kube.reads).toBe(3);
  });
});
