/**
 * GrantClusterAccess on API_AND_CONFIG_MAP clusters, where aws-auth is still read: an access entry would
 * take precedence over an aws-auth mapping of the same principal, so such a principal is refused.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import { CreateAccessEntryCommand } from "@aws-sdk/client-eks";
import { ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { ANNOTATION_AWS_AUTH_MAPPINGS } from "../../functions/lib/kube/aws-auth/index.js";
import { apply } from "../../functions/steps/cluster-access/index.js";
import { GROUP, LAUNCHER, USERNAME, stateFor } from "../support/cluster-access-fixtures.js";
import { NODE_ROLES, ORIGINAL_DATA, useFakeAwsAuthKube } from "../support/fake-aws-auth-kube.js";
import { useFakeEks } from "../support/fake-eks.js";
import { ACCOUNT, RUN, TENANT, markOf } from "../support/fixtures.js";

const { eks, entries, seedEntry } = useFakeEks();
const kube = useFakeAwsAuthKube();

describe("GrantClusterAccess on API_AND_CONFIG_MAP beside aws-auth", () => {
  const ADMINS = `arn:aws:iam::${ACCOUNT}:role/cluster-admins`;
  const MASTERS = `${NODE_ROLES}- rolearn: ${ADMINS}\n  username: admin\n  groups:\n    - system:masters\n`;

  it.each([
    ["the same role ARN", ADMINS],
    ["the role ARN with a path (aws-auth matches roles without their path)", `arn:aws:iam::${ACCOUNT}:role/teams/platform/cluster-admins`],
    ["an assumed-role session of the role", `arn:aws:sts::${ACCOUNT}:assumed-role/cluster-admins/alice`],
  ])(
    "refuses a principal aws-auth maps to system:masters (%s): OwnershipConflict naming the mapping, nothing created",
    async (_label, launcherArn) => {
      // Prepare: an existing launcher that a platform team already maps in aws-auth
      kube.seed({ ...ORIGINAL_DATA, mapRoles: MASTERS });
      const before = structuredClone(kube.configMap);

      // Act
      const attempt = apply(stateFor("API_AND_CONFIG_MAP", { iam: { launcherArn, launcherCreated: false, created: [] } }));

      // Assess
      await expect(attempt).rejects.toMatchObject({
        name: "OwnershipConflict",
        message: expect.stringMatching(/username "admin" and groups \["system:masters"\]/),
      });
      expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 0);
      expect(entries.size).toBe(0);
      expect(kube.configMap).toEqual(before);
      expect(kube.replaced).toEqual([]);
    },
  );

  it("refuses a self-managed node role mapped in aws-auth (its nodes would lose system:nodes)", async () => {
    // Prepare
    kube.seed(ORIGINAL_DATA);
    const nodeRole = `arn:aws:iam::${ACCOUNT}:role/eks-node-group-role`;

    // Act
    const attempt = apply(stateFor("API_AND_CONFIG_MAP", { iam: { launcherArn: nodeRole, launcherCreated: false, created: [] } }));

    // Assess
    await expect(attempt).rejects.toMatchObject({
      name: "OwnershipConflict",
      message: expect.stringContaining("system:node:{{EC2PrivateDNSName}}"),
    });
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
    kube.seed({ mapRoles: ours }, { [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [LAUNCHER]: markOf("an-earlier-run") }) });

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
    kube.seed({ mapRoles: theirs }, { [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [LAUNCHER]: markOf("proteomics-run-1") }) });

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
    expect(kube.clientsMade).toBe(0);
  });

  it("adopting its own existing entry does not need aws-auth", async () => {
    // Prepare: our entry exists; aws-auth gained a mapping for the principal since
    seedEntry(LAUNCHER, { username: USERNAME, kubernetesGroups: [GROUP], tags: tagsToRecord(ownershipTags(TENANT, markOf(RUN))) });
    kube.seed({ mapRoles: `- rolearn: ${LAUNCHER}\n  username: ops\n  groups:\n    - ops\n` });

    // Act
    const result = await apply(stateFor("API_AND_CONFIG_MAP"));

    // Assess
    expect(result.created).toBe(true);
    expect(kube.reads).toBe(0);
  });
});
