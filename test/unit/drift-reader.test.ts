/**
 * The drift check's live reads (functions/lib/workflow/drift-reader.ts): deployed, it reaches Kubernetes as the
 * provisioner through a session of the KubeStepsRole that may do nothing in AWS; a read that fails is `unknown`.
 */
import "aws-sdk-client-mock-vitest/extend";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import { DescribeAccessEntryCommand, DescribeClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { checkDrift, KUBE_IDENTITY_ROLE_ENV } from "../../functions/lib/workflow/drift-reader.js";
import type { EnvironmentRecord } from "../../functions/lib/workflow/environment-registry.js";
import type { DeploymentConfig, NamespaceSettings } from "../../functions/lib/domain/deploy-config.js";

const KUBE_STEPS_ROLE = "arn:aws:iam::111122223333:role/stack-KubeStepsRole-ABC";
const CONFIG = { allowedClusters: [{ name: "research", region: "eu-west-1" }], allowedAccountIds: ["111122223333"], iamPrefix: "nfeks", eventBusName: "bus", permissionsBoundaryArn: "arn:aws:iam::111122223333:policy/b" } as unknown as DeploymentConfig;
const SETTINGS = { podSecurityLevel: "baseline", allowPrivilegedNamespaces: false } as NamespaceSettings;

function record(spec: Record<string, unknown>): EnvironmentRecord {
  return { tenant: "acme", region: "eu-west-1", cluster: "research", spec, generation: 1, status: "ready", owned: {}, createdAt: "", updatedAt: "" };
}

const SPEC = {
  tenant: "acme",
  cluster: { name: "research", region: "eu-west-1" },
  launcher: { mode: "existing", principalArn: "arn:aws:iam::111122223333:role/seqera" },
  storage: { type: "pvc", storageClass: "efs-sc", size: "10Gi" },
};

describe("the drift check's live reads", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    resetClients();
  });

  it("signs its EKS token as a session of the provisioner's role whose policy denies every AWS action", async () => {
    // Prepare
    vi.stubEnv(KUBE_IDENTITY_ROLE_ENV, KUBE_STEPS_ROLE);
    const eks = mockClient(EKSClient);
    const sts = mockClient(STSClient);
    eks.on(DescribeClusterCommand).resolves({
      cluster: {
        name: "research",
        arn: "arn:aws:eks:eu-west-1:111122223333:cluster/research",
        endpoint: "https://127.0.0.1:9",
        certificateAuthority: { data: Buffer.from("not a CA").toString("base64") },
        accessConfig: { authenticationMode: "API" },
      },
    });
    eks.on(DescribeAccessEntryCommand).resolves({});
    sts.on(AssumeRoleCommand).resolves({ Credentials: { AccessKeyId: "AKIA", SecretAccessKey: "s", SessionToken: "t", Expiration: new Date(Date.now() + 900_000) } });

    // Act
    const report = await checkDrift(record(SPEC), { config: CONFIG, namespaceSettings: SETTINGS, eks: new EKSClient({ region: "eu-west-1" }) });

    // Assess: the session was asked for with a deny-all policy; the unreachable cluster makes the check unknown, with why
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    const input = sts.commandCalls(AssumeRoleCommand)[0]!.args[0].input;
    expect(input.RoleArn).toBe(KUBE_STEPS_ROLE);
    expect(JSON.parse(input.Policy!)).toEqual({ Version: "2012-10-17", Statement: [{ Effect: "Deny", Action: "*", Resource: "*" }] });
    expect(report.status).toBe("unknown");
    expect(report.reason).toBeTruthy();
    expect(report.resources).toEqual([]);
    eks.restore();
    sts.restore();
  });

  it("is unknown, with the problems, when the recorded spec does not validate", async () => {
    // Act
    const report = await checkDrift(record({ tenant: "acme" }), { config: CONFIG, namespaceSettings: SETTINGS });
    // Assess
    expect(report.status).toBe("unknown");
    expect(report.reason).toMatch(/does not validate: .*cluster/);
  });
});
