/**
 * A fake Kubernetes API holding only kube-system/aws-auth, for the cluster-access step: reads and replaces
 * with resourceVersion checks (409 on a stale write), a concurrent writer that can be slipped in before a
 * replace, and a record of the writes and of anything the step must never do (create, delete, patch).
 * Also the aws-auth content eksctl and the EKS console leave behind, and readers of what the fake holds.
 */
import { afterEach, beforeEach } from "vitest";
import { ApiException, type KubernetesObject, type V1ConfigMap } from "@kubernetes/client-node";
import { parse } from "yaml";
import { setKubeClientFactory, type KubeApi } from "../../functions/lib/kube/kube-client.js";
import { ACCOUNT } from "./fixtures.js";

export const NODE_ROLES = `- rolearn: arn:aws:iam::${ACCOUNT}:role/eks-node-group-role
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
- rolearn: arn:aws:iam::${ACCOUNT}:role/platform-admins
  username: "admin:{{SessionName}}"
  groups:
    - platform-admins
`;
export const MAP_USERS = `- userarn: arn:aws:iam::${ACCOUNT}:user/alice
  username: alice
  groups:
    - readers
`;
export const ORIGINAL_DATA = { mapRoles: NODE_ROLES, mapUsers: MAP_USERS, mapAccounts: `- "${ACCOUNT}"\n` };

function apiError(code: number, reason: string) {
  return new ApiException(code, "Unsuccessful HTTP Request", JSON.stringify({ kind: "Status", status: "Failure", reason, code }), {});
}

export class FakeAwsAuthKube {
  configMap?: V1ConfigMap;
  private version = 100;
  reads = 0;
  replaced: V1ConfigMap[] = [];
  forbidden: string[] = [];
  /** Runs inside the next N replace calls before the version check: a concurrent writer. */
  interleave: Array<(cm: V1ConfigMap) => void> = [];
  /** How many Kubernetes clients the step asked for (through the client factory). */
  clientsMade = 0;

  /** Back to a cluster with no aws-auth, nothing read or written. */
  reset() {
    this.configMap = undefined;
    this.version = 100;
    this.reads = 0;
    this.replaced = [];
    this.forbidden = [];
    this.interleave = [];
    this.clientsMade = 0;
  }

  seed(data: Record<string, string> | undefined, annotations?: Record<string, string>) {
    this.configMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "aws-auth",
        namespace: "kube-system",
        uid: "uid-aws-auth",
        resourceVersion: String(this.version++),
        labels: { "eks.amazonaws.com/component": "aws-auth" },
        ...(annotations ? { annotations } : {}),
      },
      ...(data ? { data: { ...data } } : {}),
    };
  }

  /** Another writer changes the ConfigMap (a bump of resourceVersion). */
  writeByOther(change: (cm: V1ConfigMap) => void) {
    change(this.configMap!);
    this.configMap!.metadata!.resourceVersion = String(this.version++);
  }

  get data(): Record<string, string> {
    return this.configMap?.data ?? {};
  }

  get annotations(): Record<string, string> {
    return this.configMap?.metadata?.annotations ?? {};
  }

  private isAwsAuth(spec: KubernetesObject) {
    return spec.kind === "ConfigMap" && spec.metadata?.namespace === "kube-system" && spec.metadata?.name === "aws-auth";
  }

  api(): KubeApi {
    const fake = {
      read: async (spec: KubernetesObject) => {
        this.reads++;
        if (!this.isAwsAuth(spec) || !this.configMap) throw apiError(404, "NotFound");
        return structuredClone(this.configMap);
      },
      replace: async (spec: V1ConfigMap) => {
        if (!this.isAwsAuth(spec) || !this.configMap) throw apiError(404, "NotFound");
        const other = this.interleave.shift();
        if (other) this.writeByOther(other);
        if (spec.metadata?.resourceVersion !== this.configMap.metadata?.resourceVersion) throw apiError(409, "Conflict");
        this.configMap = structuredClone({ ...spec, metadata: { ...spec.metadata, resourceVersion: String(this.version++) } });
        this.replaced.push(structuredClone(spec));
        return structuredClone(this.configMap);
      },
      create: async () => {
        this.forbidden.push("create");
        throw new Error("the step must never create objects here");
      },
      delete: async () => {
        this.forbidden.push("delete");
        throw new Error("the step must never delete objects here");
      },
      patch: async () => {
        this.forbidden.push("patch");
        throw new Error("unexpected patch");
      },
    };
    return fake as unknown as KubeApi;
  }
}

/** The step's Kubernetes clients all reach this fake, reset before each test of the calling file (no aws-auth until seeded). */
export function useFakeAwsAuthKube(): FakeAwsAuthKube {
  const kube = new FakeAwsAuthKube();
  beforeEach(() => {
    kube.reset();
    setKubeClientFactory(async () => {
      kube.clientsMade++;
      return kube.api();
    });
  });
  afterEach(() => {
    setKubeClientFactory();
  });
  return kube;
}

export function mapRolesOf(fake: FakeAwsAuthKube): Array<Record<string, unknown>> {
  return parse(fake.data.mapRoles ?? "[]") ?? [];
}

export function mapUsersOf(fake: FakeAwsAuthKube): Array<Record<string, unknown>> {
  return parse(fake.data.mapUsers ?? "[]") ?? [];
}
