/**
 * EKS authentication on the emulated Kubernetes API server (local/kube/auth.ts): a presigned GetCallerIdentity
 * token mapped to a Kubernetes user through EKS access entries or kube-system/aws-auth as the cluster's
 * authentication mode says, malformed or foreign tokens refused, and a real eksBearerToken end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startKubeApi, type KubeApiServer } from "../../local/kube/kube-apiserver.js";
import {
  checkEksToken,
  eksAuthenticator,
  isPartitionStsHost,
  MAX_TOKEN_BYTES,
  type EksAuthAws,
  type EksClusterView,
  type PresignedCallerIdentity,
} from "../../local/kube/auth.js";
import { startAwsEmulator, type AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import { eksBearerToken } from "../../functions/lib/aws/eks-token.js";
import { apiError, clientsFor } from "../support/kube-emulator-clients.js";

const ACCOUNT = "111122223333";
const CLUSTER = "research";

/** A presigned-URL token whose X-Amz-Credential names the stub caller. */
/** An amz date of now (the authenticator refuses a URL presigned more than 15 minutes ago). */
function amzNow(): string {
  return new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
}

function stubToken(accessKeyId: string, clusterHeader = "x-k8s-aws-id"): string {
  const url =
    `https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256` +
    `&X-Amz-Credential=${accessKeyId}%2F20250101%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-Date=${amzNow()}&X-Amz-Expires=60` +
    `&X-Amz-SignedHeaders=host%3B${clusterHeader}&X-Amz-Signature=abc`;
  return `k8s-aws-v1.${Buffer.from(url).toString("base64url").replace(/=+$/, "")}`;
}

function stubAws(
  mode: EksClusterView["authenticationMode"],
  callers: Record<string, string>,
  entries: EksClusterView["accessEntries"] = new Map(),
): EksAuthAws & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    state: {
      accountId: ACCOUNT,
      eks: {
        clusters: new Map([
          [`eu-west-1/${CLUSTER}`, { name: CLUSTER, region: "eu-west-1", authenticationMode: mode, accessEntries: entries }],
        ]),
      },
    },
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
        [
          LAUNCHER_ROLE,
          {
            principalArn: LAUNCHER_ROLE,
            username: "tower-launcher-user:{{SessionName}}",
            kubernetesGroups: ["tower-launcher-role"],
            accessPolicies: new Map(),
          },
        ],
        [
          ADMIN_USER,
          {
            principalArn: ADMIN_USER,
            username: ADMIN_USER,
            kubernetesGroups: [],
            accessPolicies: new Map([
              [
                "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                {
                  policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                  accessScope: { type: "cluster", namespaces: [] },
                },
              ],
            ]),
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
        mapRoles: `- rolearn: ${LAUNCHER_ROLE}\n  username: "tower-launcher-user:{{SessionName}}"\n  groups:\n    - tower-launcher-role\n`,
        mapUsers: `- userarn: arn:aws:iam::${ACCOUNT}:user/alice\n  username: alice\n  groups: [readers]\n`,
      },
    });
    const aws = stubAws("CONFIG_MAP", {
      LAUNCHER: LAUNCHER_SESSION,
      ADMIN: ADMIN_USER,
      ALICE: `arn:aws:iam::${ACCOUNT}:user/alice`,
      BOB: `arn:aws:iam::${ACCOUNT}:user/bob`,
    });
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

  it.each(["CONFIG_MAP", "API_AND_CONFIG_MAP"] as const)(
    "%s: an aws-auth rolearn with the role's path does not authenticate its sessions, the path-less one does (as aws-iam-authenticator)",
    async (mode) => {
      // Prepare: the launcher role lives under a path; its sessions' ARNs name the role without it
      const withPath = `arn:aws:iam::${ACCOUNT}:role/nf-eks-provisioner/nfeks-genomics-launcher`;
      const mapping = (rolearn: string) => ({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "aws-auth", namespace: "kube-system" },
        data: { mapRoles: `- rolearn: ${rolearn}\n  username: tower-launcher-user\n  groups: [tower-launcher-role]\n` },
      });
      const authenticate = eksAuthenticator(stubAws(mode, { LAUNCHER: LAUNCHER_SESSION }), CLUSTER);
      // Act
      kube.seed(mapping(withPath));
      const byPathfulEntry = await authenticate(stubToken("LAUNCHER"), { store: kube.store });
      kube.seed(mapping(`arn:aws:iam::${ACCOUNT}:role/NFEKS-Genomics-Launcher`));
      const byOtherCase = await authenticate(stubToken("LAUNCHER"), { store: kube.store });
      kube.seed(mapping(LAUNCHER_ROLE));
      const byPathlessEntry = await authenticate(stubToken("LAUNCHER"), { store: kube.store });
      // Assess
      expect(byPathfulEntry).toBeUndefined();
      expect(byOtherCase).toMatchObject({ username: "tower-launcher-user", groups: ["tower-launcher-role"] });
      expect(byPathlessEntry).toMatchObject({ username: "tower-launcher-user", groups: ["tower-launcher-role"] });
    },
  );

  it("prefers the access entry over aws-auth in API_AND_CONFIG_MAP, and ignores aws-auth in API mode", async () => {
    // Prepare
    kube.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "aws-auth", namespace: "kube-system" },
      data: { mapRoles: `- rolearn: ${LAUNCHER_ROLE}\n  username: from-aws-auth\n  groups: [g1]\n` },
    });
    const entries = new Map([
      [LAUNCHER_ROLE, { principalArn: LAUNCHER_ROLE, username: "from-entry", kubernetesGroups: ["g2"], accessPolicies: new Map() }],
    ]);
    const both = eksAuthenticator(stubAws("API_AND_CONFIG_MAP", { LAUNCHER: LAUNCHER_SESSION }, entries), CLUSTER);
    const bothNoEntry = eksAuthenticator(stubAws("API_AND_CONFIG_MAP", { LAUNCHER: LAUNCHER_SESSION }), CLUSTER);
    const apiOnly = eksAuthenticator(stubAws("API", { LAUNCHER: LAUNCHER_SESSION }), CLUSTER);
    // Act
    const answers = await Promise.all(
      [both, bothNoEntry, apiOnly].map((authenticate) => authenticate(stubToken("LAUNCHER"), { store: kube.store })),
    );
    // Assess
    expect(answers.map((u) => u?.username)).toEqual(["from-entry", "from-aws-auth", undefined]);
  });

  it("rejects tokens that are not EKS tokens, do not sign x-k8s-aws-id, or name another cluster", async () => {
    // Prepare
    const aws = stubAws(
      "API",
      { LAUNCHER: LAUNCHER_SESSION },
      new Map([[LAUNCHER_ROLE, { principalArn: LAUNCHER_ROLE, username: "u", kubernetesGroups: [], accessPolicies: new Map() }]]),
    );
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
      aws.seedCluster({
        name: CLUSTER,
        region: "eu-west-1",
        endpoint: server.url,
        certificateAuthority: server.caData,
        authenticationMode: "API",
      });
      // Presigned for the regional STS host, as for EKS (no endpoint override): the API server verifies it in process.
      const { token } = await eksBearerToken(CLUSTER, "eu-west-1");
      const { token: otherCluster } = await eksBearerToken("elsewhere", "eu-west-1");
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

describe("checkEksToken: the token checked as aws-iam-authenticator checks it, before STS (#13 point 6)", () => {
  const NOW = new Date("2026-12-05T08:00:00Z");
  const DATE = "20261205T080000Z";
  const base = (
    overrides: Record<string, string | null> = {},
    origin = "https://sts.eu-west-1.amazonaws.com",
    path = "/",
    extraQuery = "",
  ) => {
    const params: Record<string, string | null> = {
      Action: "GetCallerIdentity",
      Version: "2011-06-15",
      "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
      "X-Amz-Credential": "AKIAEXAMPLE/20261205/eu-west-1/sts/aws4_request",
      "X-Amz-Date": DATE,
      "X-Amz-Expires": "60",
      "X-Amz-SignedHeaders": "host;x-k8s-aws-id",
      "X-Amz-Signature": "abc",
      ...overrides,
    };
    const query = Object.entries(params)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v!)}`)
      .join("&");
    return `k8s-aws-v1.${Buffer.from(`${origin}${path}?${query}${extraQuery}`).toString("base64url")}`;
  };
  const problemOf = (token: string, region = "eu-west-1", now = NOW) => {
    const checked = checkEksToken(token, region, now);
    return "problem" in checked ? checked.problem : "ok";
  };

  it("accepts a well-formed token for the regional, global and FIPS endpoints of the partition", () => {
    // Act + Assess
    expect(problemOf(base())).toBe("ok");
    expect(problemOf(base({}, "https://sts.amazonaws.com"))).toBe("ok");
    expect(problemOf(base({}, "https://sts-fips.us-east-1.amazonaws.com"))).toBe("ok");
    expect(problemOf(base({}, "https://sts.cn-north-1.amazonaws.com.cn"), "cn-north-1")).toBe("ok");
  });

  it.each<[string, () => string, RegExp, string?]>([
    ["http", () => base({}, "http://sts.eu-west-1.amazonaws.com"), /unexpected scheme "http"/],
    ["a VPC endpoint host", () => base({}, "https://vpce-0abc-sts.sts.eu-west-1.vpce.amazonaws.com"), /unexpected hostname/],
    ["the sandbox's emulated STS (a port)", () => base({}, "https://127.0.0.1:4566"), /unexpected hostname/],
    ["another partition's host", () => base({}, "https://sts.cn-north-1.amazonaws.com.cn"), /unexpected hostname/],
    ["the global endpoint in China", () => base({}, "https://sts.amazonaws.com"), /unexpected hostname/, "cn-north-1"],
    ["a path", () => base({}, "https://sts.eu-west-1.amazonaws.com", "/other"), /unexpected path/],
    ["an extra query parameter", () => base({ DurationSeconds: "900" }), /non-whitelisted query parameter "DurationSeconds"/],
    [
      "a repeated query parameter (Action twice, both allowed values)",
      () => base({}, "https://sts.eu-west-1.amazonaws.com", "/", "&Action=GetCallerIdentity"),
      /query parameter with multiple values not supported/,
    ],
    ["another action", () => base({ Action: "AssumeRole" }), /unexpected action/],
    ["the cluster id unsigned", () => base({ "X-Amz-SignedHeaders": "host" }), /did not sign the x-k8s-aws-id header/],
    ["X-Amz-Expires over 900", () => base({ "X-Amz-Expires": "901" }), /invalid X-Amz-Expires/],
    ["no X-Amz-Date", () => base({ "X-Amz-Date": null }), /X-Amz-Date parameter must be present/],
    ["padding", () => `${base()}=`, /base64url/],
    ["over 4 KiB", () => base({ "X-Amz-Signature": "a".repeat(MAX_TOKEN_BYTES) }), /too large/],
  ])("refuses %s", (_label, token, problem, region = "eu-west-1") => {
    // Act
    const found = problemOf(token(), region);
    // Assess
    expect(found).toMatch(problem);
  });

  it("refuses a URL presigned more than 15 minutes ago (whatever X-Amz-Expires says), accepts one presigned 14 minutes ago", () => {
    // Act + Assess
    expect(problemOf(base(), "eu-west-1", new Date(NOW.getTime() + 15 * 60_000 + 1000))).toMatch(/expired/);
    expect(problemOf(base(), "eu-west-1", new Date(NOW.getTime() + 14 * 60_000))).toBe("ok");
  });

  it("knows the partition's STS hosts", () => {
    // Assess
    expect(isPartitionStsHost("sts.us-gov-west-1.amazonaws.com", "us-gov-east-1")).toBe(true);
    expect(isPartitionStsHost("sts.eu-west-1.amazonaws.com", "us-gov-east-1")).toBe(false);
    expect(isPartitionStsHost("sts.eu-west-1.amazonaws.com.evil.test", "eu-west-1")).toBe(false);
  });

  it("the API server refuses a real token presigned for the emulated STS's own address (what AWS_ENDPOINT_URL_STS gave before)", async () => {
    // Prepare
    let aws: AwsEmulator | undefined;
    let server: KubeApiServer | undefined;
    try {
      aws = await startAwsEmulator({ accountId: ACCOUNT });
      server = await startKubeApi({ authenticate: eksAuthenticator(aws, CLUSTER), kubelet: { stepMs: 20 } });
      aws.seedCluster({
        name: CLUSTER,
        region: "eu-west-1",
        endpoint: server.url,
        certificateAuthority: server.caData,
        authenticationMode: "API",
      });
      const { token: local } = await eksBearerToken(CLUSTER, "eu-west-1", { stsEndpoint: aws.url });
      const { token: regional } = await eksBearerToken(CLUSTER, "eu-west-1");
      // Act
      const refused = await apiError(clientsFor(server, local).core.listNamespace());
      const accepted = await clientsFor(server, regional).core.listNamespace();
      // Assess
      expect(refused.code).toBe(401);
      expect(accepted.items.length).toBeGreaterThan(0);
    } finally {
      await server?.close();
      await aws?.close();
    }
  });
});
