/**
 * The Lambdas' IAM permissions, decided by the IAM policy simulator on the synthesized stack: every call each step
 * really makes is allowed, and what would turn the product against the account is denied. Each *.test.ts in
 * test/security runs this suite for one deploy-time configuration (one synth per file).
 *
 * Allowed: the calls are recorded from the real step code run against the in-memory IAM and EKS of the unit tests
 * (test/support/iam-fakes.ts, fake-eks.ts) and turned into requests by authorization.ts. Denied: one request per
 * abuse, each next to a control (the same request with the one thing that makes it abusive put right) that is
 * allowed, so a denial always comes from the rule it names and not from a malformed request.
 *
 * The other Lambdas' replays (cluster access adopting an entry, the update's removals, the drift readers, the reports,
 * the entry points) are in replays.ts, which also holds every Lambda of the stack to a replay of each call its code
 * can make.
 */
import "aws-sdk-client-mock-vitest/extend";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ownershipTags, productRoleArn, tagsToRecord } from "../../functions/lib/domain/naming.js";
import { POD_IDENTITY_SERVICE_PRINCIPAL } from "../../functions/lib/domain/policies.js";
import {
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  ResourceNotFoundException,
} from "@aws-sdk/client-eks";
import { createClusterAccessStep } from "../../functions/steps/cluster-access/index.js";
import { resolvedCluster, RUN, OTHER_RUN, stepState, TENANT, markOf } from "../support/fixtures.js";
import {
  apply as createIamResources,
  associations,
  compensate as undoIamResources,
  eks,
  fakeEksClient,
  FUSION_IRSA,
  FUSION_POD_IDENTITY,
  iam,
  LAUNCHER,
  LAUNCHER_POLICY,
  PREVIOUS_LAUNCHER_POLICY,
  PREVIOUS_TRUST,
  seedRole,
  setOidcProviders,
  stateFor,
  useFakeIamAndEks,
  WORKLOAD,
  WORKLOAD_ARN,
} from "../support/iam-fakes.js";
import {
  accountModel,
  type AuthorizationRequest,
  decide,
  type RecordedCall,
  requestsOf,
  requestTags,
  resourceTags,
  roleArn,
} from "./authorization.js";
import { describeReplayCoverage, describeReplays, refusedReplay } from "./replays.js";
import { ACCOUNT, type DeployedPolicies, deployedPolicies, lambdaOf, type LambdaIdentity, REGION, synthesize } from "./stack-policies.js";

/** The Lambdas by construct id (stacks/Provisioner.ts). */
const IAM_APPLY = "CreateIamResourcesFunction";
const IAM_COMPENSATE = "UndoIamResourcesFunction";
const ACCESS_APPLY = "GrantClusterAccessFunction";
const ACCESS_COMPENSATE = "UndoClusterAccessFunction";
const PROVISION_API = "ApiLambdaPOSTprovision";

const PRODUCT_PATH = "/nf-eks-provisioner/";
const MARKS = tagsToRecord(ownershipTags(TENANT, markOf(RUN)));
const CLUSTER_ARN = `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`;
const OTHER_CLUSTER_ARN = `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/finance`;
const ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess";
/** A boundary of the account that is not the one the deployment requires (a weaker one, say). */
const WEAKER_BOUNDARY = `arn:aws:iam::${ACCOUNT}:policy/weaker`;

/** GrantClusterAccess / UndoClusterAccess on the same fake EKS client. */
const { apply: grantClusterAccess, compensate: undoClusterAccess } = createClusterAccessStep({ eks: fakeEksClient });

/** Access entries on the fake EKS (the IAM fakes answer Pod Identity only): describe, create, delete. */
function installAccessEntries(): void {
  const entries = new Map<string, Record<string, unknown>>();
  const notFound = () =>
    new ResourceNotFoundException({
      message: "The specified access entry resource could not be found.",
      $metadata: { httpStatusCode: 404 },
    });
  eks.on(DescribeAccessEntryCommand).callsFake(({ principalArn }) => {
    if (!entries.has(principalArn)) throw notFound();
    return { accessEntry: entries.get(principalArn) };
  });
  eks.on(CreateAccessEntryCommand).callsFake((input) => {
    entries.set(input.principalArn, { ...input });
    return { accessEntry: entries.get(input.principalArn) };
  });
  eks.on(DeleteAccessEntryCommand).callsFake(({ principalArn }) => {
    if (!entries.delete(principalArn)) throw notFound();
    return {};
  });
}

/** Every call recorded on the fakes' IAM and EKS clients, in order. */
function recorded(): RecordedCall[] {
  return [...iam.calls(), ...eks.calls()] as unknown as RecordedCall[];
}

/** The requests that are not allowed for this Lambda (empty when the step may do everything it did). */
async function refused(lambda: LambdaIdentity, requests: AuthorizationRequest[]): Promise<string[]> {
  const refusals: string[] = [];
  for (const request of requests) {
    const decision = await decide(lambda, request);
    if (decision !== "Allowed") refusals.push(`${decision}: ${request.action} on ${request.resource} ${JSON.stringify(request.context)}`);
  }
  return refusals;
}

interface Abuse {
  what: string;
  request: AuthorizationRequest;
  /** The same request made legitimate, which the IAM Lambda may do: the denial is then the rule's, not the request's. */
  control?: { lambda: string; request: AuthorizationRequest };
}

/** What no Lambda of the product may ever do, each beside its allowed control. */
function abuses(deployed: DeployedPolicies): Abuse[] {
  const boundary = { "iam:PermissionsBoundary": deployed.boundaryArn };
  const ours = productRoleArn("aws", ACCOUNT, "nfeks-genomics.research-launcher");
  const outside = roleArn("nfeks-genomics.research-launcher");
  const owned = { ...resourceTags(MARKS), ...boundary };
  const create = (resource: string, context: object) => ({
    action: "iam:CreateRole",
    resource,
    context: { ...requestTags(MARKS), ...context },
  });
  const onRole = (action: string, resource: string, context: object = owned) => ({
    action,
    resource,
    context: { ...context } as Record<string, string>,
  });
  const iamControl = (request: AuthorizationRequest) => ({ lambda: IAM_APPLY, request });
  return [
    { what: "create a role outside the product's path", request: create(outside, boundary), control: iamControl(create(ours, boundary)) },
    { what: "create a role without a boundary", request: create(ours, {}), control: iamControl(create(ours, boundary)) },
    {
      what: "create a role with another boundary",
      request: create(ours, { "iam:PermissionsBoundary": WEAKER_BOUNDARY }),
      control: iamControl(create(ours, boundary)),
    },
    { what: "create a role with an AWS managed policy as boundary", request: create(ours, { "iam:PermissionsBoundary": ADMIN_POLICY }) },
    {
      what: "attach a managed policy to a product role",
      request: onRole("iam:AttachRolePolicy", ours, { ...owned, "iam:PolicyARN": ADMIN_POLICY }),
    },
    {
      what: "put an inline policy on a role outside the path",
      request: onRole("iam:PutRolePolicy", outside),
      control: iamControl(onRole("iam:PutRolePolicy", ours)),
    },
    {
      what: "put an inline policy on a product role with another boundary",
      request: onRole("iam:PutRolePolicy", ours, { ...resourceTags(MARKS), "iam:PermissionsBoundary": WEAKER_BOUNDARY }),
      control: iamControl(onRole("iam:PutRolePolicy", ours)),
    },
    {
      what: "switch a product role to another boundary",
      request: onRole("iam:PutRolePermissionsBoundary", ours, { ...resourceTags(MARKS), "iam:PermissionsBoundary": WEAKER_BOUNDARY }),
      control: iamControl(onRole("iam:PutRolePermissionsBoundary", ours)),
    },
    {
      what: "put the product's boundary on a role outside the path",
      request: onRole("iam:PutRolePermissionsBoundary", outside),
      control: iamControl(onRole("iam:PutRolePermissionsBoundary", ours)),
    },
    {
      what: "delete an inline policy of a role outside the path",
      request: onRole("iam:DeleteRolePolicy", outside),
      control: { lambda: IAM_COMPENSATE, request: onRole("iam:DeleteRolePolicy", ours) },
    },
    {
      what: "detach a managed policy from a role outside the path",
      request: onRole("iam:DetachRolePolicy", outside, { ...owned, "iam:PolicyARN": ADMIN_POLICY }),
      control: { lambda: IAM_COMPENSATE, request: onRole("iam:DetachRolePolicy", ours, { ...owned, "iam:PolicyARN": ADMIN_POLICY }) },
    },
    {
      what: "put an inline policy on a product role without the boundary",
      request: onRole("iam:PutRolePolicy", ours, resourceTags(MARKS)),
      control: iamControl(onRole("iam:PutRolePolicy", ours)),
    },
    {
      what: "tag a role outside the path with the product's mark",
      request: { action: "iam:TagRole", resource: outside, context: requestTags(MARKS) },
      control: iamControl({ action: "iam:TagRole", resource: ours, context: requestTags(MARKS) }),
    },
    {
      what: "tag a product role with a key that is not the product's",
      request: { action: "iam:TagRole", resource: ours, context: requestTags({ ...MARKS, "cost-centre": "42" }) },
      control: iamControl({ action: "iam:TagRole", resource: ours, context: requestTags(MARKS) }),
    },
    {
      what: "rewrite the trust of a role outside the path",
      request: onRole("iam:UpdateAssumeRolePolicy", outside, resourceTags(MARKS)),
      control: iamControl(onRole("iam:UpdateAssumeRolePolicy", ours, resourceTags(MARKS))),
    },
    {
      what: "delete a role outside the path",
      request: onRole("iam:DeleteRole", outside, resourceTags(MARKS)),
      control: { lambda: IAM_COMPENSATE, request: onRole("iam:DeleteRole", ours, resourceTags(MARKS)) },
    },
    { what: "remove a product role's boundary", request: onRole("iam:DeleteRolePermissionsBoundary", ours) },
    ...["lambda.amazonaws.com", "ec2.amazonaws.com", "eks.amazonaws.com", "states.amazonaws.com"].map((service) => ({
      what: `pass a product role to ${service}`,
      request: { action: "iam:PassRole", resource: ours, context: { "iam:PassedToService": service } },
      control: iamControl({ action: "iam:PassRole", resource: ours, context: { "iam:PassedToService": POD_IDENTITY_SERVICE_PRINCIPAL } }),
    })),
    { what: "create a user", request: { action: "iam:CreateUser", resource: `arn:aws:iam::${ACCOUNT}:user/backdoor`, context: {} } },
    {
      what: "create an access key",
      request: { action: "iam:CreateAccessKey", resource: `arn:aws:iam::${ACCOUNT}:user/admin`, context: {} },
    },
    {
      what: "associate the EKS cluster-admin access policy",
      request: {
        action: "eks:AssociateAccessPolicy",
        resource: `arn:aws:eks:${REGION}:${ACCOUNT}:access-entry/research/role/${ACCOUNT}/nfeks-genomics.research-launcher/0ac8b1f0`,
        context: { "eks:policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy", "eks:accessScope": "cluster" },
      },
    },
    {
      what: "describe a cluster off the allowlist",
      request: { action: "eks:DescribeCluster", resource: OTHER_CLUSTER_ARN, context: {} },
      control: { lambda: "ResolveClusterFunction", request: { action: "eks:DescribeCluster", resource: CLUSTER_ARN, context: {} } },
    },
    {
      what: "create an access entry on a cluster off the allowlist",
      request: { action: "eks:CreateAccessEntry", resource: OTHER_CLUSTER_ARN, context: requestTags(MARKS) },
      control: { lambda: ACCESS_APPLY, request: { action: "eks:CreateAccessEntry", resource: CLUSTER_ARN, context: requestTags(MARKS) } },
    },
    {
      what: "create a Pod Identity association on a cluster off the allowlist",
      request: { action: "eks:CreatePodIdentityAssociation", resource: OTHER_CLUSTER_ARN, context: requestTags(MARKS) },
      control: iamControl({ action: "eks:CreatePodIdentityAssociation", resource: CLUSTER_ARN, context: requestTags(MARKS) }),
    },
    {
      what: "start another state machine",
      request: { action: "states:StartExecution", resource: `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:payroll`, context: {} },
      control: { lambda: PROVISION_API, request: { action: "states:StartExecution", resource: deployed.stateMachineArn, context: {} } },
    },
  ];
}

/** The suite for one deploy-time configuration; `env` is what the operator sets. */
export function describeLambdaPermissions(configuration: string, env: Record<string, string>): void {
  let deployed: DeployedPolicies;
  useFakeIamAndEks();

  beforeAll(async () => {
    deployed = deployedPolicies(await synthesize(env));
  }, 120_000);

  beforeEach(() => {
    // The IAM step sends the boundary the stack hands it.
    process.env.PERMISSIONS_BOUNDARY_ARN = deployed.boundaryArn;
  });

  describe(`the steps' own calls are allowed (${configuration})`, () => {
    it.each([
      ["Fusion with IRSA", FUSION_IRSA],
      ["Fusion with Pod Identity", FUSION_POD_IDENTITY],
    ])("CreateIamResources, then UndoIamResources: %s, roles created", async (_what, request) => {
      // Prepare
      const model = accountModel();
      // Act
      await createIamResources(stateFor(request));
      const applied = await requestsOf(recorded(), model);
      iam.resetHistory();
      eks.resetHistory();
      await undoIamResources(stateFor(request));
      const undone = await requestsOf(recorded(), model);
      // Assess
      expect(applied.map((r) => r.action)).toEqual(expect.arrayContaining(["iam:CreateRole", "iam:TagRole", "iam:PutRolePolicy"]));
      expect(undone.map((r) => r.action)).toEqual(expect.arrayContaining(["iam:DeleteRolePolicy", "iam:DeleteRole"]));
      expect(await refusedReplay(deployed, IAM_APPLY, applied)).toEqual([]);
      expect(await refusedReplay(deployed, IAM_COMPENSATE, undone)).toEqual([]);
    });

    it("CreateIamResources adopting another run's roles and association, then UndoIamResources putting them back", async () => {
      // Prepare: another run's launcher (no boundary yet, older documents) and its association of the head service account
      seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags(TENANT, markOf(OTHER_RUN)), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
      seedRole(WORKLOAD, PREVIOUS_TRUST, ownershipTags(TENANT, markOf(OTHER_RUN)));
      const otherMarks = tagsToRecord(ownershipTags(TENANT, markOf(OTHER_RUN)));
      associations.set("a-old", {
        clusterName: "research",
        namespace: "tower-nf",
        serviceAccount: "tower-launcher-sa",
        roleArn: `${WORKLOAD_ARN}-old`,
        associationId: "a-old",
        tags: otherMarks,
      });
      const model = accountModel(
        { [LAUNCHER]: { path: PRODUCT_PATH, tags: otherMarks }, [WORKLOAD]: { path: PRODUCT_PATH, tags: otherMarks } },
        { "a-old": otherMarks },
      );
      // Act
      const result = await createIamResources(stateFor(FUSION_POD_IDENTITY));
      const applied = await requestsOf(recorded(), model);
      iam.resetHistory();
      eks.resetHistory();
      await undoIamResources(stepState(FUSION_POD_IDENTITY, RUN, { cluster: stateFor().cluster, iam: result }));
      const undone = await requestsOf(recorded(), model);
      // Assess
      expect(applied.map((r) => r.action)).toEqual(
        expect.arrayContaining([
          "iam:PutRolePermissionsBoundary",
          "iam:UpdateAssumeRolePolicy",
          "iam:PutRolePolicy",
          "eks:UpdatePodIdentityAssociation",
          "iam:PassRole",
        ]),
      );
      expect(undone.map((r) => r.action)).toEqual(
        expect.arrayContaining(["iam:UpdateAssumeRolePolicy", "eks:UpdatePodIdentityAssociation", "eks:DeletePodIdentityAssociation"]),
      );
      expect(await refusedReplay(deployed, IAM_APPLY, applied)).toEqual([]);
      expect(await refusedReplay(deployed, IAM_COMPENSATE, undone)).toEqual([]);
    });

    it("CreateIamResources failing after changing an adopted role puts its documents back itself", async () => {
      // Prepare
      seedRole(LAUNCHER, PREVIOUS_TRUST, ownershipTags(TENANT, markOf(OTHER_RUN)), { [LAUNCHER_POLICY]: PREVIOUS_LAUNCHER_POLICY });
      setOidcProviders([]);
      const model = accountModel({ [LAUNCHER]: { path: PRODUCT_PATH, tags: tagsToRecord(ownershipTags(TENANT, markOf(OTHER_RUN))) } });
      // Act
      await createIamResources(stateFor(FUSION_IRSA)).catch(() => undefined);
      const requests = await requestsOf(recorded(), model);
      // Assess: the restore writes (the inline policy and trust put back) are among them
      expect(requests.filter((r) => r.action === "iam:PutRolePolicy")).toHaveLength(2);
      expect(requests.filter((r) => r.action === "iam:UpdateAssumeRolePolicy")).toHaveLength(2);
      expect(await refusedReplay(deployed, IAM_APPLY, requests)).toEqual([]);
    });

    it.each([
      ["role", `arn:aws:iam::${ACCOUNT}:role/team/seqera-launcher`],
      ["user", `arn:aws:iam::${ACCOUNT}:user/ci`],
    ])("CreateIamResources checking an existing launcher %s", async (_kind, principalArn) => {
      // Prepare
      seedRole("seqera-launcher", {}, [], {}, [], "/team/");
      // Act
      await createIamResources(stateFor({ launcher: { mode: "existing", principalArn } }));
      const requests = await requestsOf(recorded(), accountModel({ "seqera-launcher": { path: "/team/", tags: {} } }));
      // Assess
      expect(requests).toHaveLength(1);
      expect(await refusedReplay(deployed, IAM_APPLY, requests)).toEqual([]);
    });

    it("GrantClusterAccess, then UndoClusterAccess: the launcher's access entry (API mode), for its ARN with the product's path", async () => {
      // Prepare
      const launcherArn = productRoleArn("aws", ACCOUNT, LAUNCHER);
      const state = stepState({}, RUN, {
        cluster: resolvedCluster({ authenticationMode: "API" }),
        iam: { launcherArn, launcherKind: "role", launcherCreated: true, created: [launcherArn] },
      });
      const model = accountModel();
      installAccessEntries();
      // Act
      await grantClusterAccess(state);
      const granted = await requestsOf(recorded(), model);
      eks.resetHistory();
      await undoClusterAccess(state);
      const undone = await requestsOf(recorded(), model);
      // Assess
      expect(granted.map((r) => r.action)).toEqual(["eks:DescribeAccessEntry", "eks:CreateAccessEntry", "eks:TagResource"]);
      expect(undone.map((r) => r.action)).toEqual(["eks:DescribeAccessEntry", "eks:DeleteAccessEntry"]);
      expect(await refusedReplay(deployed, ACCESS_APPLY, granted)).toEqual([]);
      expect(await refusedReplay(deployed, ACCESS_COMPENSATE, undone)).toEqual([]);
    });

    it("ResolveCluster, the reports and the entry points: one call each, on this deployment's cluster, bus and state machine", async () => {
      // Prepare
      const execution = `arn:aws:states:${REGION}:${ACCOUNT}:execution:test-nf-eks-provisioner-provision:genomics_k1`;
      const calls: Array<[string, AuthorizationRequest[]]> = [
        ["ResolveClusterFunction", [{ action: "eks:DescribeCluster", resource: CLUSTER_ARN, context: {} }]],
        ["ReportFunction", [{ action: "events:PutEvents", resource: deployed.eventBusArn, context: {} }]],
        ["ReportFailureFunction", [{ action: "events:PutEvents", resource: deployed.eventBusArn, context: {} }]],
        ...[PROVISION_API, "ComputeEnvironmentRequestedFunction"].map(
          (handler) =>
            [
              handler,
              [
                { action: "states:StartExecution", resource: deployed.stateMachineArn, context: {} },
                { action: "states:ListExecutions", resource: deployed.stateMachineArn, context: {} },
                { action: "states:DescribeExecution", resource: execution, context: {} },
              ],
            ] as [string, AuthorizationRequest[]],
        ),
        [
          "ApiLambdaGETexecutionsid",
          [
            { action: "states:DescribeExecution", resource: execution, context: {} },
            { action: "states:GetExecutionHistory", resource: execution, context: {} },
          ],
        ],
      ];
      // Act + Assess
      for (const [id, requests] of calls) expect(await refused(lambdaOf(deployed, id), requests), id).toEqual([]);
    });

    it("the stopped-run handler reads a provision run's history and starts the compensation, and nothing else", async () => {
      // Prepare
      const execution = `arn:aws:states:${REGION}:${ACCOUNT}:execution:test-nf-eks-provisioner-provision:genomics_k1`;
      const stopped = lambdaOf(deployed, "ExecutionStoppedFunction");
      const needed: AuthorizationRequest[] = [
        { action: "states:GetExecutionHistory", resource: execution, context: {} },
        { action: "states:StartExecution", resource: deployed.compensationStateMachineArn, context: {} },
      ];
      // Act
      const beyond = [
        await decide(stopped, { action: "states:StartExecution", resource: deployed.stateMachineArn, context: {} }),
        await decide(stopped, { action: "states:StopExecution", resource: execution, context: {} }),
        await decide(stopped, { action: "events:PutEvents", resource: deployed.eventBusArn, context: {} }),
      ];
      // Assess
      expect(await refused(stopped, needed)).toEqual([]);
      expect(beyond.every((decision) => decision !== "Allowed")).toBe(true);
    });
  });

  describeReplays(configuration, () => deployed);

  describe(`what would turn the product against the account is denied to every Lambda (${configuration})`, () => {
    it("denies each abuse to every Lambda, while its control is allowed to the step that needs it", async () => {
      // Prepare
      const cases = abuses(deployed);
      const lambdas = deployed.lambdas;
      // Act
      const allowedAbuses: string[] = [];
      const refusedControls: string[] = [];
      for (const abuse of cases) {
        for (const lambda of lambdas)
          if ((await decide(lambda, abuse.request)) === "Allowed") allowedAbuses.push(`${lambda.id} may ${abuse.what}`);
        if (abuse.control && (await decide(lambdaOf(deployed, abuse.control.lambda), abuse.control.request)) !== "Allowed") {
          refusedControls.push(`${abuse.control.lambda}: the control of "${abuse.what}"`);
        }
      }
      // Assess
      expect(lambdas.length).toBeGreaterThanOrEqual(12);
      expect(cases.length).toBeGreaterThanOrEqual(25);
      expect(allowedAbuses).toEqual([]);
      expect(refusedControls).toEqual([]);
    });

    it("denies removing a boundary explicitly (a Deny no later Allow can override) to both IAM Lambdas", async () => {
      // Prepare
      const request = {
        action: "iam:DeleteRolePermissionsBoundary",
        resource: productRoleArn("aws", ACCOUNT, LAUNCHER),
        context: resourceTags(MARKS),
      };
      // Act
      const decisions = [await decide(lambdaOf(deployed, IAM_APPLY), request), await decide(lambdaOf(deployed, IAM_COMPENSATE), request)];
      // Assess
      expect(decisions).toEqual(["ExplicitlyDenied", "ExplicitlyDenied"]);
    });
  });

  describeReplayCoverage(configuration, () => deployed);
}
