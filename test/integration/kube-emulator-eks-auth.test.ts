/**
 * EKS authentication on the emulated Kubernetes API server (local/kube/auth.ts): a presigned GetCallerIdentity
 * token mapped to a Kubernetes user through EKS access entries or kube-system/aws-auth as the cluster's
 * authentication mode says, malformed or foreign tokens refused, and a real eksBearerToken end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startKubeApi, type KubeApiServer } from "../../local/kube/kube-apiserver.js";
import { eksAuthenticator, type EksAuthAws, type EksClusterView, type PresignedCallerIdentity } from "../../local/kube/auth.js";
import { startAwsEmulator, type AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import { eksBearerToken } from "../../functions/lib/aws/eks-token.js";
import { apiError, clientsFor } from "../support/kube-emulator-clients.js";

const ACCOUNT = "111122223333";
const CLUSTER = "research";

/** A presigned-URL token whose X-Amz-Credential names the stub caller. */
function stubToken(accessKeyId: string, clusterHeader = "x-k8s-aws-id"): string {
  const url = `https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Credential=${accessKeyId}%2F20250101%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-SignedHeaders=host%3B${clusterHeader}&X-Amz-Signature=abc`;
  return "k8s-aws-v1." + Buffer.from(url).toString("base64url").replace(/=+$/, "");
}

function stubAws(mode: EksClusterView["authenticationMode"], callers: Record<string, string>, entries: EksClusterView["accessEntries"] = new Map()): EksAuthAws & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    state: { accountId: ACCOUNT, eks: { clusters: new Map([[`eu-west-1/${CLUSTER}`, { name: CLUSTER, region: "eu-west-1", authenticationMode: mode, accessEntries: entries }]]) } },
    async verifyPresignedCallerIdentity(url, opts): Promise<PresignedCallerIdentity | undefined> {
      calls.push(url);
      const key = new URL(url).searchParams.get("X-Amz-Credential")?.split("/")[0] ?? "";
      const arn = callers[key];
      return arn ? { arn, accountId: ACCOUNT, userId: `AROA${key}`, accessKeyId: key, clusterName: opts?.clusterName } : undefined;
    },
  };
}

const LAUNCHER_ROLE = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-launcher`;
const LAUNCHER_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-genomics-launcher/tower@seqera.io`;
const ADMIN_USER = `arn:aws:iam::${ACCOUNT}:user/sandbox-admin`;

describe("eksAuthenticator", () => {
  let kube: KubeApiServer;

  beforeAll(async () => {
    kube = await startKubeApi({ authenticate: async () => undefined, kubelet: { stepMs: 20 } });
  });

  afterAll(async () => {
    await kube.close();
  });

  it("maps an assumed role through its access entry (API mode), substituting {{SessionName}}", async () => {
    // Prepare
    const aws = stubAws(
      "API",
      { LAUNCHER: LAUNCHER_SESSION, ADMIN: ADMIN_USER },
      new Map([
        [LAUNCHER_ROLE, { principalArn: LAUNCHER_ROLE, username: "tower-launcher-user:{{SessionName}}", kubernetesGroups: ["tower-launcher-role"], accessPolicies: new Map() }],
        [
          ADMIN_USER,
          {
            principalArn: ADMIN_USER,
            username: ADMIN_USER,
            kubernetesGroups: [],
            accessPolicies: new Map([["arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy", { policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy", accessScope: { type: "cluster", namespaces: [] } }]]),
          },
        ],
      ]),
    );
    const authenticate = eksAuthenticator(aws, CLUSTER);
    // Act
    const launcher = await authenticate(stubToken("LAUNCHER"), { store: kube.store });
    const admin = await authenticate(stubToken("ADMIN"), { store: kube.store });
    // Assess
    expect(launcher).toMatchObject({ username: "tower-launcher-user:tower-seqera.io", groups: ["tower-launcher-role"] });
    expect(launcher?.extra?.canonicalArn).toEqual([LAUNCHER_ROLE]);
    expect(admin).toMatchObject({ username: ADMIN_USER, groups: ["system:masters"] });
  });

  it("maps through kube-system/aws-auth in CONFIG_MAP mode, and the cluster creator is admin", async () => {
    // Prepare
    kube.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "aws-auth", namespace: "kube-system" },
      data: {
        mapRoles: `- rolearn: arn:aws:iam::${ACCOUNT}:role/teams/nfeks-genomics-launcher\n  username: "tower-launcher-user:{{SessionName}}"\n  groups:\n    - tower-launcher-role\n`,
        mapUsers: `- userarn: arn:aws:iam::${ACCOUNT}:user/alice\n  username: alice\n  groups: [readers]\n`,
      },
    });
    const aws = stubAws("CONFIG_MAP", { LAUNCHER: LAUNCHER_SESSION, ADMIN: ADMIN_USER, ALICE: `arn:aws:iam::${ACCOUNT}:user/alice`, BOB: `arn:aws:iam::${ACCOUNT}:user/bob` });
    const authenticate = eksAuthenticator(aws, CLUSTER);
    // Act
    const launcher = await authenticate(stubToken("LAUNCHER"), { store: kube.store });
    const alice = await authenticate(stubToken("ALICE"), { store: kube.store });
    const creator = await authenticate(stubToken("ADMIN"), { store: kube.store });
    const bob = await authenticate(stubToken("BOB"), { store: kube.store });
    // Assess
    expect(launcher).toMatchObject({ username: "tower-launcher-user:tower-seqera.io", groups: ["tower-launcher-role"] });
    expect(alice).toMatchObject({ username: "alice", groups: ["readers"] });
    expect(creator).toMatchObject({ username: "kubernetes-admin", groups: ["system:masters"] });
    expect(bob).toBeUndefined();
  });

  it("prefers the access entry over aws-auth in API_AND_CONFIG_MAP, and ignores aws-auth in API mode", async () => {
    // Prepare
    kube.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "aws-auth", namespace: "kube-system" },
      data: { mapRoles: `- rolearn: ${LAUNCHER_ROLE}\n  username: from-aws-auth\n  groups: [g1]\n` },
    });
    const entries = new Map([[LAUNCHER_ROLE, { principalArn: LAUNCHER_ROLE, username: "from-entry", kubernetesGroups: ["g2"], accessPolicies: new Map() }]]);
    const both = eksAuthenticator(stubAws("API_AND_CONFIG_MAP", { LAUNCHER: LAUNCHER_SESSION }, entries), CLUSTER);
    const bothNoEntry = eksAuthenticator(stubAws("API_AND_CONFIG_MAP", { LAUNCHER: LAUNCHER_SESSION }), CLUSTER);
    const apiOnly = eksAuthenticator(stubAws("API", { LAUNCHER: LAUNCHER_SESSION }), CLUSTER);
    // Act
    const answers = await Promise.all([both, bothNoEntry, apiOnly].map((authenticate) => authenticate(stubToken("LAUNCHER"), { store: kube.store })));
    // Assess
    expect(answers.map((u) => u?.username)).toEqual(["from-entry", "from-aws-auth", undefined]);
  });

  it("rejects tokens that are not EKS tokens, do not sign x-k8s-aws-id, or name another cluster", async () => {
    // Prepare
    const aws = stubAws("API", { LAUNCHER: LAUNCHER_SESSION }, new Map([[LAUNCHER_ROLE, { principalArn: LAUNCHER_ROLE, username: "u", kubernetesGroups: [], accessPolicies: new Map() }]]));
    // Act
    const answers = await Promise.all([
      eksAuthenticator(aws, CLUSTER)("Bearer-ish-token"),
      eksAuthenticator(aws, CLUSTER)(stubToken("LAUNCHER", "x-other-header")),
      eksAuthenticator(aws, "another-cluster")(stubToken("LAUNCHER")),
      eksAuthenticator(aws, CLUSTER)(stubToken("NOBODY")),
    ]);
    // Assess
    expect(answers).toEqual([undefined, undefined, undefined, undefined]);
    expect(aws.calls).toHaveLength(2); // the malformed tokens never reach STS
  });

  it("authenticates a real EKS token end to end: eksBearerToken → AWS emulator → kube API", async () => {
    // Prepare
    let aws: AwsEmulator | undefined;
    let server: KubeApiServer | undefined;
    try {
      aws = await startAwsEmulator({ accountId: ACCOUNT });
      const emulator = aws;
      server = await startKubeApi({ authenticate: eksAuthenticator(emulator, CLUSTER), kubelet: { stepMs: 20 } });
      aws.seedCluster({ name: CLUSTER, region: "eu-west-1", endpoint: server.url, certificateAuthority: server.caData, authenticationMode: "API" });
      const { token } = await eksBearerToken(CLUSTER, "eu-west-1", { stsEndpoint: aws.url });
      const { token: otherCluster } = await eksBearerToken("elsewhere", "eu-west-1", { stsEndpoint: aws.url });
      // Act
      const namespaces = await clientsFor(server, token).core.listNamespace();
      const refused = await apiError(clientsFor(server, otherCluster).core.listNamespace());
      // Assess
      expect(namespaces.items.map((n) => n.metadata?.name)).toContain("kube-system");
      expect(refused.code).toBe(401);
    } finally {
      await server?.close();
      await aws?.close();
    }
  });
});
