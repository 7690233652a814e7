/**
 * RemoveUnwantedIdentities (steps/remove-unwanted-identities.ts), built by createRemoveUnwantedIdentitiesStep around the
 * in-memory IAM and Pod Identity of test/support/iam-fakes.ts: an update deletes the roles and associations the previous
 * generation owned and the new one no longer uses, associations first, each only when it is the tenant's (a role also
 * only on the product's path); anything else is kept and said; a permanent failure on one identity is kept with its
 * error and the rest go on; a transient one fails the step, whose retry finds what is already gone.
 */
import "aws-sdk-client-mock-vitest/extend";
import { describe, expect, it } from "vitest";
import { DeletePodIdentityAssociationCommand, EKSServiceException } from "@aws-sdk/client-eks";
import {
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetRoleCommand,
  IAMServiceException,
  type Tag,
} from "@aws-sdk/client-iam";
import type { ProvisionerError } from "../../functions/lib/domain/errors.js";
import { ownershipTags, tagsToRecord } from "../../functions/lib/domain/naming.js";
import type { IamResult, WorkflowState } from "../../functions/lib/workflow/workflow-state.js";
import { createRemoveUnwantedIdentitiesStep } from "../../functions/steps/remove-unwanted-identities.js";
import {
  associations,
  CLUSTER,
  eks,
  FUSION_POLICY,
  fakeEksClient,
  fakeIamClient,
  iam,
  installFakeIam,
  LAUNCHER,
  LAUNCHER_ARN,
  roles,
  seedRole,
  useFakeIamAndEks,
  WORKLOAD,
  WORKLOAD_ARN,
} from "../support/iam-fakes.js";
import { ACCOUNT, NS, OTHER_RUN, RUN, TENANT, markOf, stepState } from "../support/fixtures.js";

useFakeIamAndEks();
/** The step's handler, handed the fake IAM and EKS clients through the step's factory. */
const { apply } = createRemoveUnwantedIdentitiesStep({ iam: fakeIamClient, eks: fakeEksClient });

const TRUST = { Version: "2012-10-17", Statement: [] };
const ASSOCIATION = "a-7";
const ASSOCIATION_LABEL = `Pod Identity association ${ASSOCIATION} (${NS}/tower-compute-sa)`;
/** The tenant's marks, as an earlier run of the tenant (the previous generation) left them. */
const OURS: Tag[] = ownershipTags(TENANT, markOf(OTHER_RUN));
const OTHER_TENANTS: Tag[] = ownershipTags("proteomics", markOf(OTHER_RUN));

/** What the previous generation owned: the launcher and workload roles, and the workload's Pod Identity association. */
const PREVIOUS_OWNED = { roles: [LAUNCHER_ARN, WORKLOAD_ARN], podIdentityAssociations: [ASSOCIATION], kubernetes: [] };

/** An update run after the steps before RemoveUnwantedIdentities: the new generation uses the launcher role only (Fusion → PVC). */
function updateState(
  owned: Record<string, unknown> = PREVIOUS_OWNED,
  iamResult: Partial<IamResult> = {},
  request: Record<string, unknown> = {},
): WorkflowState {
  return stepState(request, RUN, {
    cluster: CLUSTER,
    iam: { launcherArn: LAUNCHER_ARN, launcherKind: "role", launcherCreated: false, created: [], ...iamResult },
    update: { previous: { spec: {}, generation: 1, owned }, generation: 2 },
  });
}

function seedAssociation(tags: Record<string, string>, id = ASSOCIATION): void {
  associations.set(id, {
    clusterName: "research",
    namespace: NS,
    serviceAccount: "tower-compute-sa",
    roleArn: WORKLOAD_ARN,
    tags,
    associationId: id,
    associationArn: `arn:aws:eks:eu-west-1:${ACCOUNT}:podidentityassociation/research/${id}`,
  });
}

/** The previous generation's identities, all the tenant's: both roles (the workload one with its policies) and the association. */
function seedPreviousGeneration(): void {
  seedRole(LAUNCHER, TRUST, OURS);
  seedRole(WORKLOAD, TRUST, OURS, { [FUSION_POLICY]: { Version: "2012-10-17", Statement: [] } }, [
    `arn:aws:iam::${ACCOUNT}:policy/workload-extra`,
  ]);
  seedAssociation(tagsToRecord(OURS));
}

function iamError(name: string, status: number, message: string): IAMServiceException {
  return new IAMServiceException({ name, message, $fault: status >= 500 ? "server" : "client", $metadata: { httpStatusCode: status } });
}

describe("createRemoveUnwantedIdentitiesStep", () => {
  it("reads and deletes through the IAM and EKS clients it is given", async () => {
    // Prepare
    seedPreviousGeneration();

    // Act
    await apply(updateState());

    // Assess: the fakes answer only the two given clients
    expect(iam).toHaveReceivedCommandWith(DeleteRoleCommand, { RoleName: WORKLOAD });
    expect(eks).toHaveReceivedCommandWith(DeletePodIdentityAssociationCommand, { clusterName: "research", associationId: ASSOCIATION });
  });

  it("removes nothing, and calls nothing, in a run that is not an update", async () => {
    // Prepare
    seedPreviousGeneration();
    const provision = updateState();
    delete provision.update;

    // Act
    const result = await apply(provision);

    // Assess
    expect(result).toEqual({ removed: [], kept: [] });
    expect(iam.calls()).toHaveLength(0);
    expect(eks.calls()).toHaveLength(0);
  });
});

describe("RemoveUnwantedIdentities removes", () => {
  it("the association and then the role the new generation no longer uses, the role's policies first; the launcher still used stays", async () => {
    // Prepare
    seedPreviousGeneration();

    // Act
    const result = await apply(updateState());

    // Assess
    expect(result).toEqual({ removed: [ASSOCIATION_LABEL, `IAM role ${WORKLOAD}`], kept: [] });
    expect(associations.has(ASSOCIATION)).toBe(false);
    expect([...roles.keys()]).toEqual([LAUNCHER]);
    expect(iam).toHaveReceivedCommandWith(DeleteRolePolicyCommand, { RoleName: WORKLOAD, PolicyName: FUSION_POLICY });
    expect(iam).toHaveReceivedCommandWith(DetachRolePolicyCommand, {
      RoleName: WORKLOAD,
      PolicyArn: `arn:aws:iam::${ACCOUNT}:policy/workload-extra`,
    });
    expect(iam).not.toHaveReceivedCommandWith(GetRoleCommand, { RoleName: LAUNCHER });
  });

  it("the former created launcher role once the request names an existing launcher instead, but never the role the new generation uses", async () => {
    // Prepare: the new generation's launcher is an existing principal; the previous one was the product's role
    seedPreviousGeneration();
    const existing = `arn:aws:iam::${ACCOUNT}:role/seqera-launcher`;
    const state = updateState(
      PREVIOUS_OWNED,
      { launcherArn: existing, workloadRoleArn: WORKLOAD_ARN, podIdentityAssociationIds: [ASSOCIATION] },
      {
        launcher: { mode: "existing", principalArn: existing },
      },
    );

    // Act
    const result = await apply(state);

    // Assess
    expect(result).toEqual({ removed: [`IAM role ${LAUNCHER}`], kept: [] });
    expect([...roles.keys()]).toEqual([WORKLOAD]);
    expect(associations.has(ASSOCIATION)).toBe(true);
  });

  it("nothing the new generation names as its launcher, even when that is a role the previous generation owned", async () => {
    // Prepare: an existing launcher that is the product's former launcher role (its access granted by this run)
    seedPreviousGeneration();
    const state = updateState(
      PREVIOUS_OWNED,
      { workloadRoleArn: WORKLOAD_ARN, podIdentityAssociationIds: [ASSOCIATION] },
      {
        launcher: { mode: "existing", principalArn: LAUNCHER_ARN },
      },
    );
    state.access = { method: "access-entry", principalArn: LAUNCHER_ARN, username: "u", groups: [], created: false };

    // Act
    const result = await apply(state);

    // Assess
    expect(result).toEqual({ removed: [], kept: [] });
    expect([...roles.keys()].sort()).toEqual([LAUNCHER, WORKLOAD].sort());
    expect(iam.calls()).toHaveLength(0);
  });

  it("nothing more on a repeat, and counts identities already gone as done", async () => {
    // Prepare
    seedPreviousGeneration();
    await apply(updateState());

    // Act
    const repeat = await apply(updateState());

    // Assess
    expect(repeat).toEqual({ removed: [], kept: [] });
    expect(iam).toHaveReceivedCommandTimes(DeleteRoleCommand, 1);
    expect(eks).toHaveReceivedCommandTimes(DeletePodIdentityAssociationCommand, 1);
  });
});

describe("RemoveUnwantedIdentities keeps, and says why", () => {
  it("a role of the same name outside the product's path, however it is tagged", async () => {
    // Prepare
    seedRole(LAUNCHER, TRUST, OURS);
    seedRole(WORKLOAD, TRUST, OURS, {}, [], "/");

    // Act
    const result = await apply(updateState({ ...PREVIOUS_OWNED, podIdentityAssociations: [] }));

    // Assess
    expect(result.removed).toEqual([]);
    expect(result.kept).toEqual([
      `IAM role ${WORKLOAD} already exists at path /, not under the product's path /nf-eks-provisioner/ ` +
        "(role names are unique across paths); it is left untouched. Delete or rename it, or choose another IAM prefix.",
    ]);
    expect(roles.has(WORKLOAD)).toBe(true);
    expect(iam).toHaveReceivedCommandTimes(DeleteRoleCommand, 0);
  });

  it("a role and an association that are not marked as the tenant's (another tenant's, or no marks at all)", async () => {
    // Prepare
    seedRole(LAUNCHER, TRUST, OURS);
    seedRole(WORKLOAD, TRUST, OTHER_TENANTS);
    seedAssociation({});

    // Act
    const result = await apply(updateState());

    // Assess
    expect(result).toEqual({
      removed: [],
      kept: [
        `${ASSOCIATION_LABEL}: not marked as the product's for tenant ${TENANT}`,
        `IAM role ${WORKLOAD}: not marked as the product's for tenant ${TENANT}`,
      ],
    });
    expect(roles.has(WORKLOAD)).toBe(true);
    expect(associations.has(ASSOCIATION)).toBe(true);
    expect(iam).toHaveReceivedCommandTimes(DeleteRoleCommand, 0);
    expect(eks).toHaveReceivedCommandTimes(DeletePodIdentityAssociationCommand, 0);
  });
});

describe("RemoveUnwantedIdentities on errors", () => {
  it("keeps an identity it may not delete (a permanent error, named) and goes on with the rest", async () => {
    // Prepare
    seedPreviousGeneration();
    eks.on(DeletePodIdentityAssociationCommand).rejects(
      new EKSServiceException({
        name: "AccessDeniedException",
        message: "not authorized to perform eks:DeletePodIdentityAssociation",
        $fault: "client",
        $metadata: { httpStatusCode: 403 },
      }),
    );

    // Act
    const result = await apply(updateState());

    // Assess
    expect(result.removed).toEqual([`IAM role ${WORKLOAD}`]);
    expect(result.kept).toEqual([
      `Pod Identity association ${ASSOCIATION}: NotAllowed: AWS call failed: AccessDeniedException: not authorized to perform eks:DeletePodIdentityAssociation (not removed; DELETE the environment to try again)`,
    ]);
    expect(associations.has(ASSOCIATION)).toBe(true);
    expect(roles.has(WORKLOAD)).toBe(false);
  });

  it("fails the step on a transient error (named Throttled), and its retry removes what is left without repeating the rest", async () => {
    // Prepare
    seedPreviousGeneration();
    iam.on(DeleteRoleCommand).rejectsOnce(iamError("Throttling", 400, "Rate exceeded"));

    // Act
    const failure = await apply(updateState()).catch((error: unknown) => error);
    installFakeIam(); // IAM answers again
    const retry = await apply(updateState());

    // Assess
    expect((failure as Error).name).toBe("Throttled");
    expect((failure as ProvisionerError).transient).toBe(true);
    expect(associations.has(ASSOCIATION)).toBe(false);
    expect(retry).toEqual({ removed: [`IAM role ${WORKLOAD}`], kept: [] });
    expect(roles.has(WORKLOAD)).toBe(false);
  });
});
