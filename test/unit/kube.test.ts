import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { rootCertificates } from "node:tls";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { KubernetesObjectApi, type KubernetesObject, type V1ConfigMap } from "@kubernetes/client-node";
import { decodeEksToken, TOKEN_PREFIX } from "../../functions/lib/aws/eks-token.js";
import {
  deleteIfCreatedBy,
  ensureObject,
  kubeClientFor,
  kubeConfigFor,
  readObject,
  replaceObject,
  resetKubeClients,
  setKubeClientFactory,
  type KubeApi,
} from "../../functions/lib/kube/kube-client.js";
import { ANNOTATION_CREATED_BY, ownershipLabels } from "../../functions/lib/domain/naming.js";
import type { ResolvedCluster } from "../../functions/lib/workflow/workflow-state.js";
import { normaliseError } from "../../functions/lib/workflow/normalise-error.js";
import { ClusterUnreachable } from "../../functions/lib/domain/errors.js";
import { markOf } from "../support/fixtures.js";

const TLS_DIR = new URL("../../local/kube/tls/", import.meta.url);
const CA_PEM = readFileSync(new URL("ca.crt", TLS_DIR), "utf8");
const TENANT = "genomics";
const RUN = "genomics-run-1";

// ---------------------------------------------------------------- a tiny Kubernetes API over HTTPS

interface Seen {
  method: string;
  path: string;
  authorization?: string;
  body?: unknown;
}

const DISCOVERY: Record<string, unknown> = {
  "/api/v1": {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: "v1",
    resources: [
      {
        name: "configmaps",
        singularName: "configmap",
        namespaced: true,
        kind: "ConfigMap",
        verbs: ["create", "delete", "get", "list", "update"],
      },
      {
        name: "namespaces",
        singularName: "namespace",
        namespaced: false,
        kind: "Namespace",
        verbs: ["create", "delete", "get", "list", "update"],
      },
    ],
  },
};

const store = new Map<string, KubernetesObject>();
const seen: Seen[] = [];
let server: Server;
let port: number;
let nextVersion = 1;
let nextUid = 1;

function status(res: ServerResponse, code: number, reason: string, message: string) {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", reason, message, code }));
}

function send(res: ServerResponse, code: number, body: unknown) {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : undefined;
}

async function handle(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", "https://127.0.0.1");
  const body = await readBody(req);
  seen.push({ method: req.method ?? "", path: `${url.pathname}${url.search}`, authorization: req.headers.authorization, body });
  if (!req.headers.authorization?.startsWith(`Bearer ${TOKEN_PREFIX}`)) return status(res, 401, "Unauthorized", "Unauthorized");
  if (DISCOVERY[url.pathname]) return send(res, 200, DISCOVERY[url.pathname]);
  const key = url.pathname;
  if (req.method === "POST") {
    const object = body as KubernetesObject;
    const itemKey = `${key}/${object.metadata?.name}`;
    if (store.has(itemKey)) return status(res, 409, "AlreadyExists", `configmaps "${object.metadata?.name}" already exists`);
    const stored = { ...object, metadata: { ...object.metadata, uid: `uid-${nextUid++}`, resourceVersion: String(nextVersion++) } };
    store.set(itemKey, stored);
    return send(res, 201, stored);
  }
  const existing = store.get(key);
  if (!existing) return status(res, 404, "NotFound", `${key} not found`);
  if (req.method === "GET") return send(res, 200, existing);
  if (req.method === "PUT") {
    const object = body as KubernetesObject;
    if (object.metadata?.resourceVersion !== existing.metadata?.resourceVersion)
      return status(res, 409, "Conflict", "the object has been modified");
    const stored = { ...object, metadata: { ...object.metadata, uid: existing.metadata?.uid, resourceVersion: String(nextVersion++) } };
    store.set(key, stored);
    return send(res, 200, stored);
  }
  if (req.method === "DELETE") {
    const uid = (body as { preconditions?: { uid?: string } } | undefined)?.preconditions?.uid;
    if (uid && uid !== existing.metadata?.uid) return status(res, 409, "Conflict", "precondition failed: uid");
    store.delete(key);
    return send(res, 200, { kind: "Status", apiVersion: "v1", status: "Success" });
  }
  return status(res, 405, "MethodNotAllowed", "method not allowed");
}

function seed(object: KubernetesObject) {
  const path = `/api/v1/namespaces/${object.metadata!.namespace}/configmaps/${object.metadata!.name}`;
  store.set(path, { ...object, metadata: { ...object.metadata, uid: `uid-${nextUid++}`, resourceVersion: String(nextVersion++) } });
}

function clusterAt(ca: string = CA_PEM, name = "research"): ResolvedCluster {
  return {
    name,
    region: "eu-west-1",
    arn: `arn:aws:eks:eu-west-1:111122223333:cluster/${name}`,
    accountId: "111122223333",
    endpoint: `https://127.0.0.1:${port}`,
    certificateAuthority: Buffer.from(ca).toString("base64"),
    authenticationMode: "API_AND_CONFIG_MAP",
    version: "1.31",
  };
}

function configMap(name: string, labels?: Record<string, string>, data: Record<string, string> = { a: "1" }): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "tower-nf", ...(labels ? { labels } : {}) }, data };
}

const REF = (name: string) => ({ apiVersion: "v1", kind: "ConfigMap", namespace: "tower-nf", name });

beforeAll(async () => {
  server = createServer(
    { key: readFileSync(new URL("server.key", TLS_DIR)), cert: readFileSync(new URL("server.crt", TLS_DIR)) },
    (req, res) => {
      handle(req, res).catch((error) => status(res, 500, "InternalError", String(error)));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  store.clear();
  seen.length = 0;
  resetKubeClients();
});

afterEach(() => {
  vi.useRealTimers();
  setKubeClientFactory();
});

// ---------------------------------------------------------------- tests

describe("kubeConfigFor", () => {
  it("points at the endpoint, trusts only the cluster CA and carries the token", () => {
    // Prepare
    const cluster = clusterAt();

    // Act
    const kc = kubeConfigFor(cluster, "k8s-aws-v1.abc");

    // Assess
    const c = kc.getCurrentCluster()!;
    expect(c.server).toBe(cluster.endpoint);
    expect(c.caData).toBe(cluster.certificateAuthority);
    expect(c.skipTLSVerify).toBe(false);
    expect(kc.getCurrentUser()!.token).toBe("k8s-aws-v1.abc");
  });
});

describe("kubeClientFor", () => {
  it("verifies TLS against the cluster CA and sends an EKS bearer token bound to the cluster", async () => {
    // Prepare
    seed(configMap("settings", undefined, { mode: "fast" }));
    const api = await kubeClientFor(clusterAt());

    // Act
    const found = await readObject<V1ConfigMap>(api, REF("settings"));

    // Assess
    expect(found?.data).toEqual({ mode: "fast" });
    const authorization = seen.find((s) => s.path.endsWith("/settings"))!.authorization!;
    const token = authorization.replace(/^Bearer /, "");
    const url = new URL(decodeEksToken(token)!);
    expect(url.searchParams.get("Action")).toBe("GetCallerIdentity");
    expect(url.searchParams.get("X-Amz-SignedHeaders")).toContain("x-k8s-aws-id");
  });

  it("refuses a server whose certificate the cluster CA did not sign", async () => {
    // Prepare: a real, well-known root CA that did not sign the sandbox server certificate
    const api = await kubeClientFor(clusterAt(rootCertificates[0], "wrong-ca"));

    // Act
    const attempt = readObject(api, REF("settings"));

    // Assess
    const error = await attempt.then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string; cause?: { code?: string } },
    );
    expect(error).toBeDefined();
    const text = `${error!.message} ${error!.code ?? ""} ${error!.cause?.code ?? ""}`;
    expect(text).toMatch(/certificate|UNABLE_TO_VERIFY|issuer|SELF_SIGNED/i);
    expect(seen).toHaveLength(0); // no request got through
  });

  it("gives up on a cluster that accepts the connection but never answers, as ClusterUnreachable", async () => {
    // Prepare: TLS handshake succeeds, then silence
    const silent = createServer(
      { key: readFileSync(new URL("server.key", TLS_DIR)), cert: readFileSync(new URL("server.crt", TLS_DIR)) },
      () => undefined,
    );
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const cluster = { ...clusterAt(), endpoint: `https://127.0.0.1:${(silent.address() as AddressInfo).port}` };
    const api = KubernetesObjectApi.makeApiClient(kubeConfigFor(cluster, "k8s-aws-v1.abc", 200));

    // Act
    const started = Date.now();
    const error = await readObject(api, REF("settings")).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Assess
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(normaliseError(error)).toBeInstanceOf(ClusterUnreachable);
    silent.closeAllConnections();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it("reuses the client while the token is fresh and rebuilds it in the token's last minute", async () => {
    // Prepare
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2025-03-04T05:00:00Z"));
    const cluster = clusterAt();

    // Act
    const first = await kubeClientFor(cluster);
    vi.setSystemTime(new Date("2025-03-04T05:12:59Z")); // 12m59s: still more than a minute left
    const second = await kubeClientFor(cluster);
    vi.setSystemTime(new Date("2025-03-04T05:13:01Z")); // inside the last minute of 14
    const third = await kubeClientFor(cluster);

    // Assess
    expect(second).toBe(first);
    expect(third).not.toBe(first);
    seed(configMap("settings"));
    await readObject(third, REF("settings"));
    const token = seen.at(-1)!.authorization!.replace(/^Bearer /, "");
    expect(new URL(decodeEksToken(token)!).searchParams.get("X-Amz-Date")).toBe("20250304T051301Z");
  });

  it("uses the factory set by setKubeClientFactory, until it is cleared", async () => {
    // Prepare
    const fake = { fake: true } as unknown as KubeApi;
    setKubeClientFactory(async () => fake);

    // Act
    const withFactory = await kubeClientFor(clusterAt());
    setKubeClientFactory();
    const real = await kubeClientFor(clusterAt());

    // Assess
    expect(withFactory).toBe(fake);
    expect(real).not.toBe(fake);
  });
});

describe("object operations", () => {
  let api: KubeApi;
  beforeEach(async () => {
    api = await kubeClientFor(clusterAt());
  });

  it("readObject answers undefined for 404 and rethrows other errors", async () => {
    // Prepare
    const unknownKind = { apiVersion: "v1", kind: "Secret", namespace: "tower-nf", name: "x" };

    // Act
    const missing = await readObject(api, REF("nope"));
    const failure = readObject(api, unknownKind);

    // Assess
    expect(missing).toBeUndefined();
    await expect(failure).rejects.toThrow(/Unrecognized API version and kind/);
  });

  it("ensureObject creates a missing object with its marks", async () => {
    // Prepare
    const desired = configMap("fresh", ownershipLabels(TENANT, markOf(RUN)));

    // Act
    const result = await ensureObject(api, desired, TENANT);

    // Assess
    expect(result.created).toBe(true);
    expect(result.object.metadata?.uid).toBeDefined();
    expect(store.get("/api/v1/namespaces/tower-nf/configmaps/fresh")?.metadata?.labels).toEqual(ownershipLabels(TENANT, markOf(RUN)));
    expect(desired.metadata).not.toHaveProperty("uid"); // the caller's object is not mutated
  });

  it("ensureObject adopts an existing object ours for this tenant (409 AlreadyExists) without changing it", async () => {
    // Prepare
    seed(configMap("shared", ownershipLabels(TENANT, markOf("an-earlier-run")), { keep: "me" }));

    // Act
    const result = await ensureObject(api, configMap("shared", ownershipLabels(TENANT, markOf(RUN)), { new: "data" }), TENANT);

    // Assess
    expect(result.created).toBe(false);
    expect(result.object.data).toEqual({ keep: "me" });
    expect(seen.filter((s) => s.method === "POST")).toHaveLength(1);
    expect(seen.filter((s) => s.method === "PUT")).toHaveLength(0);
  });

  it("ensureObject counts an object made by an earlier attempt of the same run as created", async () => {
    // Prepare
    seed(configMap("retry", ownershipLabels(TENANT, markOf(RUN))));

    // Act
    const result = await ensureObject(api, configMap("retry", ownershipLabels(TENANT, markOf(RUN))), TENANT);

    // Assess
    expect(result.created).toBe(true);
  });

  it("ensureObject refuses an existing object without our marks, or another tenant's", async () => {
    // Prepare
    seed(configMap("foreign"));
    seed(configMap("neighbour", ownershipLabels("proteomics", markOf("their-run"))));

    // Act
    const foreign = ensureObject(api, configMap("foreign", ownershipLabels(TENANT, markOf(RUN))), TENANT);
    const neighbour = ensureObject(api, configMap("neighbour", ownershipLabels(TENANT, markOf(RUN))), TENANT);

    // Assess
    await expect(foreign).rejects.toMatchObject({
      name: "OwnershipConflict",
      message: expect.stringContaining("ConfigMap tower-nf/foreign"),
    });
    await expect(neighbour).rejects.toMatchObject({ name: "OwnershipConflict" });
    expect(store.get("/api/v1/namespaces/tower-nf/configmaps/foreign")?.metadata?.labels).toBeUndefined();
  });

  it("ensureObject does not adopt an object being deleted (a namespace still Terminating): KubeConflict, retried", async () => {
    // Prepare: ours, but an earlier compensation deleted it and the cluster has not finished
    const terminating = configMap("leaving", ownershipLabels(TENANT, markOf("an-earlier-run")));
    seed({ ...terminating, metadata: { ...terminating.metadata, deletionTimestamp: new Date("2025-03-04T05:00:00Z") } });

    // Act
    const attempt = ensureObject(api, configMap("leaving", ownershipLabels(TENANT, markOf(RUN))), TENANT);

    // Assess
    const error = await attempt.then(
      () => undefined,
      (e: unknown) => e as Error & { transient?: boolean },
    );
    expect(error).toMatchObject({
      name: "KubeConflict",
      transient: true,
      message: expect.stringContaining("ConfigMap tower-nf/leaving already exists but is being deleted"),
    });
    expect(seen.filter((s) => s.method === "PUT" || s.method === "DELETE")).toHaveLength(0);
  });

  it("replaceObject writes with the read resourceVersion; a stale one is a 409 the middleware names KubeConflict", async () => {
    // Prepare
    seed(configMap("cm", undefined, { v: "1" }));
    const read = (await readObject<V1ConfigMap>(api, REF("cm")))!;

    // Act
    const replaced = await replaceObject<V1ConfigMap>(api, { ...read, data: { v: "2" } });
    const stale = await replaceObject(api, { ...read, data: { v: "3" } }).catch((e: unknown) => e);

    // Assess
    expect(replaced.data).toEqual({ v: "2" });
    expect((store.get("/api/v1/namespaces/tower-nf/configmaps/cm") as V1ConfigMap | undefined)?.data).toEqual({ v: "2" });
    expect((stale as { code?: number }).code).toBe(409);
    expect(normaliseError(stale).name).toBe("KubeConflict");
  });

  it("deleteIfCreatedBy deletes only what this execution created, in the background, and can run twice", async () => {
    // Prepare
    seed({
      ...configMap("mine", ownershipLabels(TENANT, markOf(RUN))),
      metadata: {
        ...configMap("mine").metadata,
        labels: ownershipLabels(TENANT, markOf(RUN)),
        annotations: { [ANNOTATION_CREATED_BY]: RUN },
      },
    });
    seed(configMap("adopted", ownershipLabels(TENANT, markOf("an-earlier-run"))));
    seed(configMap("foreign"));

    // Act
    const mine = await deleteIfCreatedBy(api, REF("mine"), markOf(RUN));
    const again = await deleteIfCreatedBy(api, REF("mine"), markOf(RUN));
    const adopted = await deleteIfCreatedBy(api, REF("adopted"), markOf(RUN));
    const foreign = await deleteIfCreatedBy(api, REF("foreign"), markOf(RUN));

    // Assess
    expect([mine, again, adopted, foreign]).toEqual(["deleted", "absent", "kept", "kept"]);
    expect(store.has("/api/v1/namespaces/tower-nf/configmaps/mine")).toBe(false);
    expect(store.has("/api/v1/namespaces/tower-nf/configmaps/adopted")).toBe(true);
    expect(store.has("/api/v1/namespaces/tower-nf/configmaps/foreign")).toBe(true);
    const deletion = seen.find((s) => s.method === "DELETE")!;
    expect(deletion.path).toContain("propagationPolicy=Background");
    expect(deletion.body).toMatchObject({ propagationPolicy: "Background", preconditions: { uid: expect.any(String) } });
  });
});
