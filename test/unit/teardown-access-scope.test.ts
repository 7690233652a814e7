/**
 * What a teardown's RemoveClusterAccess looks at: the launcher its record names and every earlier launcher of the
 * tenant (an update that changed the launcher leaves the earlier one's access to the teardown): access entries tagged
 * as the tenant's (access-entry.ts accessEntryTargets), aws-auth mappings our runs recorded as the tenant's launcher
 * identity (AwsAuthConfigMap.launchersOfTenant). Nobody else's entry or mapping.
 */
import { describe, expect, it } from "vitest";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { accessEntryTargets } from "../../functions/steps/cluster-access/access-entry.js";
import { AwsAuthConfigMap } from "../../functions/lib/kube/aws-auth/index.js";
import { ANNOTATION_AWS_AUTH_MAPPINGS } from "../../functions/lib/kube/aws-auth/configmap-edit.js";
import { launcherGroup, launcherUsername, ownershipTags, runMark, tagsToRecord } from "../../functions/lib/domain/naming.js";

const ACCOUNT = "111122223333";
const NOW = `arn:aws:iam::${ACCOUNT}:role/seqera-b`;
const EARLIER = `arn:aws:iam::${ACCOUNT}:role/seqera-a`;
const OTHER_TENANT = `arn:aws:iam::${ACCOUNT}:role/proteomics-launcher`;
const BY_HAND = `arn:aws:iam::${ACCOUNT}:role/platform-admin`;
const RUN_1 = runMark({ name: "genomics-run-1", startTime: "2026-12-04T10:00:00Z" });
const RUN_2 = runMark({ name: "genomics-run-2", startTime: "2026-12-05T10:00:00Z" });
const RUN_P = runMark({ name: "proteomics-run-1", startTime: "2026-12-05T10:00:00Z" });
const tagsOf = (tenant: string, run = RUN_1) => tagsToRecord(ownershipTags(tenant, run));

describe("accessEntryTargets", () => {
  it("in a teardown: the recorded principal first, then every other entry tagged as the tenant's, nobody else's", () => {
    // Prepare
    const entries = [
      { principalArn: NOW, tags: tagsOf("genomics", RUN_2) },
      { principalArn: EARLIER, tags: tagsOf("genomics", RUN_1) },
      { principalArn: OTHER_TENANT, tags: tagsOf("proteomics") },
      { principalArn: BY_HAND, tags: {} },
    ];

    // Act
    const targets = accessEntryTargets(NOW, entries, "genomics");

    // Assess
    expect(targets).toEqual([NOW, EARLIER]);
  });

  it("in a compensation (no tenant claim): the run's principal only; and nothing without one", () => {
    // Prepare // Act // Assess
    expect(accessEntryTargets(NOW, [{ principalArn: EARLIER, tags: tagsOf("genomics") }], undefined)).toEqual([NOW]);
    expect(accessEntryTargets(undefined, [], undefined)).toEqual([]);
  });
});

describe("AwsAuthConfigMap.launchersOfTenant", () => {
  it("names the principals our runs mapped as the tenant's launcher identity: the current and an earlier one, not another tenant's nor one mapped by hand", () => {
    // Prepare
    const entry = (arn: string, tenant: string) =>
      `- rolearn: ${arn}\n  username: ${launcherUsername(tenant)}\n  groups:\n  - ${launcherGroup(tenant)}\n`;
    const configMap: V1ConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "aws-auth",
        namespace: "kube-system",
        annotations: { [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [EARLIER]: RUN_1, [NOW]: RUN_2, [OTHER_TENANT]: RUN_P }) },
      },
      data: {
        mapRoles: entry(EARLIER, "genomics") + entry(NOW, "genomics") + entry(OTHER_TENANT, "proteomics") + entry(BY_HAND, "genomics"),
      },
    };
    const awsAuth = new AwsAuthConfigMap(configMap, { info: () => {}, warn: () => {} });

    // Act
    const launchers = awsAuth.launchersOfTenant("genomics");

    // Assess
    expect(launchers.sort()).toEqual([EARLIER, NOW].sort());
    expect(launchers.flatMap((arn) => awsAuth.runsThatMapped(arn)).sort()).toEqual([RUN_1, RUN_2].sort());
  });
});

describe("AwsAuthConfigMap.removeRunMappings for one principal (an update removing a former launcher's mapping)", () => {
  it("removes exactly that principal's entry and mark; the run's other entry and mark, and entries mapped by hand, stay", () => {
    // Prepare: one run recorded two principals (as far as the codec is concerned), and an entry was mapped by hand
    const entry = (arn: string, tenant: string) =>
      `- rolearn: ${arn}\n  username: ${launcherUsername(tenant)}\n  groups:\n  - ${launcherGroup(tenant)}\n`;
    const configMap: V1ConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "aws-auth",
        namespace: "kube-system",
        annotations: { [ANNOTATION_AWS_AUTH_MAPPINGS]: JSON.stringify({ [EARLIER]: RUN_1, [NOW]: RUN_1 }) },
      },
      data: { mapRoles: entry(EARLIER, "genomics") + entry(NOW, "genomics") + entry(BY_HAND, "genomics") },
    };
    const awsAuth = new AwsAuthConfigMap(configMap, { info: () => {}, warn: () => {} });
    const identity = { username: launcherUsername("genomics"), groups: [launcherGroup("genomics")] };

    // Act
    const removal = awsAuth.removeRunMappings(RUN_1, identity, EARLIER);
    const written = awsAuth.replacement()!;

    // Assess
    expect(removal).toEqual({ removed: [EARLIER], restored: [], changedSince: [], notRestored: [] });
    expect(written.data!.mapRoles).not.toContain(EARLIER);
    expect(written.data!.mapRoles).toContain(NOW);
    expect(written.data!.mapRoles).toContain(BY_HAND);
    expect(JSON.parse(written.metadata!.annotations![ANNOTATION_AWS_AUTH_MAPPINGS]!)).toEqual({ [NOW]: RUN_1 });
  });
});
