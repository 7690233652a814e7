/**
 * GrantClusterAccess on CONFIG_MAP clusters: the launcher's entry in kube-system/aws-auth, edited beside the
 * node groups' entries and everyone else's, with the run's mark and the copy of the data before the edit.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import { CreateAccessEntryCommand } from "@aws-sdk/client-eks";
import { ANNOTATION_AWS_AUTH_MAPPINGS, ANNOTATION_PREVIOUS_AWS_AUTH } from "../../functions/lib/kube/aws-auth/index.js";
import { apply, AWS_AUTH_MAX_ATTEMPTS, MAX_PREVIOUS_COPY_CHARS } from "../../functions/steps/cluster-access/index.js";
import { GROUP, LAUNCHER, SHARED_GROUP, SHARED_USERNAME, USERNAME, launcherEntries, stateFor } from "../support/cluster-access-fixtures.js";
import { MAP_USERS, NODE_ROLES, ORIGINAL_DATA, mapRolesOf, mapUsersOf, useFakeAwsAuthKube } from "../support/fake-aws-auth-kube.js";
import { useFakeEks } from "../support/fake-eks.js";
import { ACCOUNT, RUN, markOf } from "../support/fixtures.js";

const { eks } = useFakeEks();
const kube = useFakeAwsAuthKube();

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
    expect(kube.annotations).toEqual({ [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [LAUNCHER]: markOf(RUN) }) });
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
    expect(mapRolesOf(kube).map((e) => e.rolearn)).toEqual([
      `arn:aws:iam::${ACCOUNT}:role/eks-node-group-role`,
      `arn:aws:iam::${ACCOUNT}:role/platform-admins`,
      otherNodeRole,
      LAUNCHER,
    ]);
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
    expect(JSON.parse(kube.annotations[ANNOTATION_AWS_AUTH_MAPPINGS]!)).toEqual({ [LAUNCHER]: markOf(RUN) });
  });

  it("moves a mapping of ours with the shared tower-launcher-user of an earlier version to the tenant's identity, in place", async () => {
    // Prepare: the mapping an earlier version added, recorded by its run's mark
    const shared = `${NODE_ROLES}- rolearn: ${LAUNCHER}\n  username: ${SHARED_USERNAME}\n  groups:\n    - ${SHARED_GROUP}\n`;
    const marks = JSON.stringify({ [LAUNCHER]: markOf("an-earlier-run") });
    kube.seed({ mapRoles: shared, mapUsers: MAP_USERS }, { [ANNOTATION_AWS_AUTH_MAPPINGS]: marks });

    // Act
    const result = await apply(stateFor("CONFIG_MAP"));

    // Assess: replaced where it was, still recorded as the earlier run's
    expect(result).toMatchObject({
      username: USERNAME,
      groups: [GROUP],
      created: false,
      previousAwsAuth: { mapRoles: shared, mapUsers: MAP_USERS },
    });
    expect(mapRolesOf(kube).map((e) => e.rolearn)).toEqual([
      `arn:aws:iam::${ACCOUNT}:role/eks-node-group-role`,
      `arn:aws:iam::${ACCOUNT}:role/platform-admins`,
      LAUNCHER,
    ]);
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
    expect(launcherEntries(kube)).toEqual([
      { rolearn: LAUNCHER, username: "tower-launcher-user-proteomics", groups: ["tower-launcher-role-proteomics"] },
    ]);
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
    expect(kube.annotations).toEqual({
      "example.com/owner": "platform",
      [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [LAUNCHER]: markOf(RUN) }),
    });
  });

  it("leaves the copy out of the step output when aws-auth is too large for a Step Functions state, and still edits", async () => {
    // Prepare
    const large = {
      ...ORIGINAL_DATA,
      mapAccounts: `${Array.from({ length: MAX_PREVIOUS_COPY_CHARS / 10 }, (_, i) => `- "${String(i).padStart(12, "0")}"`).join("\n")}\n`,
    };
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
    const result = await apply(
      stateFor("CONFIG_MAP", { iam: { launcherArn: user, launcherKind: "user", launcherCreated: false, created: [] } }),
    );

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
