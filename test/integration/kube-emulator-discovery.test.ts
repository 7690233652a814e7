/**
 * What the emulated API server serves, as discovery says (issue #13 point 4): the common namespaced kinds of a 1.31
 * EKS cluster (Service, Deployment, Secret, NetworkPolicy, ResourceQuota, LimitRange, Lease, Event and the rest, the
 * custom resources EKS installs included), each stored and listed like any other; and a custom resource kind a test
 * registers on one server, which that server's discovery lists and serves under RBAC.
 */
import { describe, expect, it } from "vitest";
import type { KubernetesObject } from "@kubernetes/client-node";
import { kubeApiFrom } from "../../functions/lib/kube/kube-client.js";
import { startKubeApi, type KubeApiServer } from "../../local/kube/kube-apiserver.js";
import {
  ADMIN_TOKEN,
  apiError,
  clientsFor,
  DELEGATE_TOKEN,
  staticAuthenticate,
  useKubeEmulator,
  type Clients,
} from "../support/kube-emulator-clients.js";

const COMMON_KINDS = [
  { apiVersion: "v1", kind: "Service", spec: { ports: [{ port: 80 }] } },
  {
    apiVersion: "apps/v1",
    kind: "Deployment",
    spec: { selector: { matchLabels: { app: "x" } }, template: { metadata: { labels: { app: "x" } } } },
  },
  { apiVersion: "v1", kind: "Secret", data: { key: "dmFsdWU=" } },
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", spec: { podSelector: {} } },
  { apiVersion: "v1", kind: "ResourceQuota", spec: { hard: { pods: "10" } } },
  { apiVersion: "v1", kind: "LimitRange", spec: { limits: [{ type: "Container", defaultRequest: { cpu: "100m" } }] } },
  { apiVersion: "coordination.k8s.io/v1", kind: "Lease", spec: { holderIdentity: "x" } },
  { apiVersion: "v1", kind: "Event", involvedObject: { kind: "Pod", name: "x", namespace: "team" }, reason: "Scheduled" },
  { apiVersion: "events.k8s.io/v1", kind: "Event", reason: "Scheduled", action: "Binding", eventTime: "2026-01-01T00:00:00.000000Z" },
];

const WIDGETS = { group: "example.com", version: "v1", kind: "Widget", plural: "widgets", shortNames: ["wd"] };

describe("emulated Kubernetes API server: discovery", () => {
  let kube: KubeApiServer;
  let admin: Clients;
  useKubeEmulator((started) => ({ kube, admin } = started));

  it("lists the common namespaced kinds, and serves each of them", async () => {
    // Prepare
    const discovery = kubeApiFrom(admin.config);
    // Act
    const served = (await discovery.namespacedResourceTypes()).map((t) => `${t.apiVersion}/${t.kind}`);
    for (const [i, body] of COMMON_KINDS.entries()) {
      await admin.objects.create({ ...body, metadata: { name: `common-${i}`, namespace: "team" } } as KubernetesObject);
    }
    const listed = await Promise.all(
      COMMON_KINDS.map(async (k) => (await admin.objects.list(k.apiVersion, k.kind, "team")).items.map((o) => o.metadata?.name)),
    );
    // Assess
    expect(served).toEqual(expect.arrayContaining(COMMON_KINDS.map((k) => `${k.apiVersion}/${k.kind}`)));
    expect(served).toEqual(
      expect.arrayContaining(["networking.k8s.aws/v1alpha1/PolicyEndpoint", "vpcresources.k8s.aws/v1beta1/SecurityGroupPolicy"]),
    );
    expect(served).not.toContain("v1/Namespace");
    for (const i of COMMON_KINDS.keys()) expect(listed[i]).toContain(`common-${i}`);
  });

  it("serves a custom resource kind once a test registers it: discovery, objects, RBAC", async () => {
    // Prepare
    const discovery = kubeApiFrom(admin.config);
    const before = (await discovery.namespacedResourceTypes()).map((t) => t.kind);
    // Act
    kube.registerCustomResource(WIDGETS);
    const after = await discovery.namespacedResourceTypes();
    await admin.objects.create({
      apiVersion: "example.com/v1",
      kind: "Widget",
      metadata: { name: "w1", namespace: "team" },
      spec: { size: 3 },
    } as KubernetesObject);
    const listed = await admin.objects.list("example.com/v1", "Widget", "team");
    const delegate = clientsFor(kube, DELEGATE_TOKEN);
    const refused = await apiError(delegate.objects.list("example.com/v1", "Widget", "team"));
    const delegateMay = await kubeApiFrom(delegate.config).mayI({
      verb: "list",
      group: "example.com",
      resource: "widgets",
      namespace: "team",
    });
    // Assess
    expect(before).not.toContain("Widget");
    expect(after).toContainEqual({
      apiVersion: "example.com/v1",
      group: "example.com",
      kind: "Widget",
      resource: "widgets",
      verbs: expect.arrayContaining(["list"]),
    });
    expect(listed.items.map((o) => o.metadata?.name)).toEqual(["w1"]);
    expect(refused.code).toBe(403);
    expect(refused.body.message).toBe(
      'widgets.example.com is forbidden: User "delegate" cannot list resource "widgets" in API group "example.com" in the namespace "team"',
    );
    expect(delegateMay).toBe(false);
    expect(() => kube.registerCustomResource(WIDGETS)).toThrow(/already served/);
    expect(() => kube.registerCustomResource({ ...WIDGETS, group: "apps", plural: "deployments" })).toThrow(/dot/);
  });

  it("keeps a registered kind to the server it was registered on", async () => {
    // Prepare
    const other = await startKubeApi({ authenticate: staticAuthenticate });
    try {
      // Act
      const kinds = (await kubeApiFrom(clientsFor(other, ADMIN_TOKEN).config).namespacedResourceTypes()).map((t) => t.kind);
      // Assess
      expect(kinds).not.toContain("Widget");
    } finally {
      await other.close();
    }
  });
});
