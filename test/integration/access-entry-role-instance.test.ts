/**
 * Access entries belong to a role instance, not a name (#13 point 1), in the sandbox: EKS (and the emulator's
 * authenticator) stops honouring an entry once its role is deleted and recreated under the same ARN; a re-run
 * recognises the entry as made before the role's CreateDate and replaces it, and the launcher gets in again.
 */
import { describe, expect, it } from "vitest";
import { CreateRoleCommand, DeleteRoleCommand, DeleteRolePolicyCommand, ListRolePoliciesCommand } from "@aws-sdk/client-iam";
import { iamClient } from "../../functions/lib/aws/clients.js";
import type { Sandbox } from "../../local/sandbox.js";
import {
  ACCOUNT_ID,
  clusterState,
  FAST,
  kubeClientAs,
  provision,
  pvcRequest,
  sessionArnOf,
  statusOf,
  stepResult,
  until,
  useSandbox,
} from "../support/sandbox-runs.js";

const TENANT = "instances";
const ROLE_NAME = `nfeks-${TENANT}.research-launcher`;
const LAUNCHER = `arn:aws:iam::${ACCOUNT_ID}:role/nf-eks-provisioner/${ROLE_NAME}`;

/** Delete the launcher role as an operator would (its inline policies first). */
async function deleteLauncherRole(): Promise<void> {
  const iam = iamClient();
  const { PolicyNames } = await iam.send(new ListRolePoliciesCommand({ RoleName: ROLE_NAME }));
  for (const PolicyName of PolicyNames ?? []) await iam.send(new DeleteRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName }));
  await iam.send(new DeleteRoleCommand({ RoleName: ROLE_NAME }));
}

/** Whether the launcher (a session of its role) may list pods in its namespace. */
async function launcherListsPods(sandbox: Sandbox): Promise<number> {
  const launcher = await kubeClientAs(sandbox, sessionArnOf(LAUNCHER));
  return statusOf(launcher.listNamespacedPod({ namespace: TENANT }));
}

describe("an access entry on a deleted and recreated launcher role (API_AND_CONFIG_MAP cluster)", () => {
  let sandbox: Sandbox;
  useSandbox({ ...FAST, authenticationMode: "API_AND_CONFIG_MAP" }, (started) => ({ sandbox } = started));

  it("is no longer honoured; a re-run replaces it (replacedStaleEntry) and the launcher can authenticate", async () => {
    // Prepare: a first run, then the role deleted; IAM's CreateDate has whole seconds, so the new role is made
    // in a later second than the entry (a role recreated within the same second is not recognised: the limit).
    const first = await provision(sandbox, pvcRequest(TENANT, { namespace: TENANT }));
    expect(first.view.status).toBe("SUCCEEDED");
    const firstEntry = clusterState(sandbox).accessEntries.get(LAUNCHER)!;
    expect(await launcherListsPods(sandbox)).toBe(200);
    await until("the next whole second", () => Math.floor(Date.now() / 1000) > Math.floor(firstEntry.createdAt.getTime() / 1000));
    await deleteLauncherRole();

    // Act
    const rerun = await provision(sandbox, pvcRequest(TENANT, { namespace: TENANT }));

    // Assess: the re-run recreated the role, found the entry older than it, and replaced it
    expect(rerun.view.status).toBe("SUCCEEDED");
    expect(stepResult(rerun, "CreateIamResources")).toMatchObject({ launcherArn: LAUNCHER, launcherCreated: true });
    expect(stepResult(rerun, "GrantClusterAccess")).toMatchObject({
      created: true,
      replacedStaleEntry: { createdAt: firstEntry.createdAt.toISOString() },
    });
    const entry = clusterState(sandbox).accessEntries.get(LAUNCHER)!;
    expect(entry.createdAt.getTime()).toBeGreaterThan(firstEntry.createdAt.getTime());
    expect(await launcherListsPods(sandbox)).toBe(200);
  });

  it("the emulator refuses a session of the recreated role through the old entry (401), as EKS does", async () => {
    // Prepare: the entry as the previous test left it, then the role deleted and recreated by hand (no re-run)
    const entry = clusterState(sandbox).accessEntries.get(LAUNCHER)!;
    const before = sandbox.aws.state.iam.roles.get(ROLE_NAME)!;
    expect(entry.principalId).toBe(before.roleId);
    await deleteLauncherRole();
    await iamClient().send(
      new CreateRoleCommand({ RoleName: ROLE_NAME, Path: before.path, AssumeRolePolicyDocument: before.assumeRolePolicyDocument }),
    );
    expect(sandbox.aws.state.iam.roles.get(ROLE_NAME)!.roleId).not.toBe(before.roleId);

    // Act
    const status = await launcherListsPods(sandbox);

    // Assess
    expect(status).toBe(401);
    expect(clusterState(sandbox).accessEntries.get(LAUNCHER)).toBe(entry); // the entry itself is still there
  });
});
