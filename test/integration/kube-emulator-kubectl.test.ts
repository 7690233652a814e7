/**
 * kubectl against the emulated Kubernetes API server: tables, -o yaml, describe, apply, auth can-i, and
 * create role / rolebinding (sent as protobuf); and the OpenAPI v2 document kubectl before 1.27 validates
 * against. The kubectl tests are skipped where no kubectl is installed ($KUBECTL, else /usr/bin/kubectl).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { startKubeApi, type KubeApiServer } from "../../local/kube/kube-apiserver.js";
import { HAS_KUBECTL, KUBECTL } from "../support/sandbox-runs.js";
import { ADMIN_TOKEN, AWS_AUTH, staticAuthenticate, useKubeEmulator } from "../support/kube-emulator-clients.js";

const run = promisify(execFile);

describe("emulated Kubernetes API server", () => {
  let kube: KubeApiServer;
  useKubeEmulator((started) => ({ kube } = started));

  describe("OpenAPI v2 (what kubectl before 1.27 validates against)", () => {
    const getOpenApiV2 = (accept: string) =>
      new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
        const req = httpsRequest(
          `${kube.url}/openapi/v2`,
          { ca: kube.caPem, headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, Accept: accept } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body: Buffer.concat(chunks) }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      });

    it("serves an empty Swagger 2.0 document as JSON, and as gnostic protobuf under a parseable media type", async () => {
      // Act
      const json = await getOpenApiV2("application/json");
      const proto = await getOpenApiV2("application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json");
      // Assess
      expect(json.status).toBe(200);
      expect(JSON.parse(json.body.toString())).toEqual({
        swagger: "2.0",
        info: { title: "Kubernetes", version: "v1.31.4" },
        paths: {},
        definitions: {},
      });
      expect(proto.status).toBe(200);
      expect(proto.type).toBe("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"); // no "@": client-go's mime parser refuses it
      // openapi.v2.Document {swagger(1): "2.0", info(2): {title(1), version(2)}, paths(8): {}, definitions(9): {}}
      const info = Buffer.concat([Buffer.from([0x0a, 10]), Buffer.from("Kubernetes"), Buffer.from([0x12, 7]), Buffer.from("v1.31.4")]);
      expect(proto.body).toEqual(
        Buffer.concat([
          Buffer.from([0x0a, 3]),
          Buffer.from("2.0"),
          Buffer.from([0x12, info.length]),
          info,
          Buffer.from([0x42, 0, 0x4a, 0]),
        ]),
      );
    });
  });
});

// ---------------------------------------------------------------------------- kubectl

const describeKubectl = HAS_KUBECTL ? describe : describe.skip;
if (!HAS_KUBECTL) console.warn(`kube-emulator tests: ${KUBECTL} not found, skipping the kubectl tests`);

describeKubectl("kubectl against the emulator", () => {
  let kube: KubeApiServer;
  let dir: string;
  let kubeconfig: string;

  async function kubectl(...args: string[]): Promise<{ stdout: string; code: number }> {
    try {
      const { stdout } = await run(KUBECTL, ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args], {
        env: { PATH: process.env.PATH ?? "", HOME: dir },
        timeout: 20_000,
      });
      return { stdout, code: 0 };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; code?: number };
      return { stdout: `${e.stdout ?? ""}${e.stderr ?? ""}`, code: typeof e.code === "number" ? e.code : 1 };
    }
  }

  beforeAll(async () => {
    kube = await startKubeApi({ authenticate: staticAuthenticate, kubelet: { stepMs: 20 } });
    kube.seed(AWS_AUTH as never);
    kube.seed({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "tower-launcher-user-binding", namespace: "default" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tower-launcher-role" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "tower-launcher-user" }],
    });
    dir = await mkdtemp(join(tmpdir(), "kube-emulator-"));
    kubeconfig = join(dir, "kubeconfig");
    await writeFile(kubeconfig, kube.kubeconfig(ADMIN_TOKEN));
  });

  afterAll(async () => {
    await kube?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("kubectl get ns prints the namespaces as a table", async () => {
    // Act
    const { stdout, code } = await kubectl("get", "ns");
    // Assess
    expect(code).toBe(0);
    expect(stdout).toMatch(/^NAME\s+STATUS\s+AGE/);
    expect(stdout).toMatch(/^kube-system\s+Active\s+\d+s$/m);
  });

  it("kubectl get configmap aws-auth -n kube-system -o yaml returns the stored object", async () => {
    // Act
    const { stdout, code } = await kubectl("get", "configmap", "aws-auth", "-n", "kube-system", "-o", "yaml");
    // Assess
    expect(code).toBe(0);
    const object = parseYaml(stdout) as V1ConfigMap;
    expect(object.kind).toBe("ConfigMap");
    expect(object.data).toEqual(AWS_AUTH.data);
    expect(object.metadata?.resourceVersion).toMatch(/^\d+$/);
  });

  it("kubectl describe rolebinding shows the role and subjects", async () => {
    // Act
    const { stdout, code } = await kubectl("describe", "rolebinding", "tower-launcher-user-binding", "-n", "default");
    // Assess
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Name:\s+tower-launcher-user-binding$/m);
    expect(stdout).toMatch(/Kind:\s+Role\n\s+Name:\s+tower-launcher-role/);
    expect(stdout).toMatch(/User\s+tower-launcher-user/);
  });

  it("kubectl apply -f creates then updates, and kubectl auth can-i answers from RBAC", async () => {
    // Prepare
    const manifest = join(dir, "cm.yaml");
    await writeFile(manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\ndata:\n  a: '1'\n");
    // Act
    const created = await kubectl("apply", "-f", manifest);
    await writeFile(manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\ndata:\n  a: '2'\n");
    const updated = await kubectl("apply", "-f", manifest);
    const adminCan = await kubectl("auth", "can-i", "create", "pods", "-n", "default");
    const launcherCannot = await kubectl("auth", "can-i", "create", "pods", "-n", "default", "--as", "tower-launcher-user");
    // Assess
    expect(created).toEqual({ stdout: "configmap/applied created\n", code: 0 });
    expect(updated).toEqual({ stdout: "configmap/applied configured\n", code: 0 });
    expect(kube.snapshot().find((o) => o.metadata.name === "applied")?.data).toEqual({ a: "2" });
    expect(adminCan.stdout.trim()).toBe("yes");
    expect(launcherCannot.code).not.toBe(0);
  });

  it("kubectl create role / rolebinding (the binding is sent as protobuf) grants what auth can-i --as then reports", async () => {
    // Act
    const role = await kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "default");
    const binding = await kubectl("create", "rolebinding", "alice-reads-pods", "--role=pod-reader", "--user=alice", "-n", "default");
    const canList = await kubectl("auth", "can-i", "list", "pods", "-n", "default", "--as", "alice");
    const cannotCreate = await kubectl("auth", "can-i", "create", "pods", "-n", "default", "--as", "alice");
    // Assess
    expect(role.code).toBe(0);
    expect(binding).toEqual({ stdout: "rolebinding.rbac.authorization.k8s.io/alice-reads-pods created\n", code: 0 });
    expect(kube.snapshot().find((o) => o.kind === "RoleBinding" && o.metadata.name === "alice-reads-pods")).toMatchObject({
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "alice" }],
    });
    expect(canList.stdout.trim()).toBe("yes");
    expect(cannotCreate.stdout.trim()).toBe("no");
  });
});
