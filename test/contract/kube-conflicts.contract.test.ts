/**
 * Contract: the shapes of Kubernetes' conflicts (#13 point 7), against the sandbox (default) or a real cluster
 * (TARGET=aws). Creating an object that exists answers 409 AlreadyExists with the API server's Status (kind Status,
 * `details.name`, `details.kind` the resource); an update carrying a stale resourceVersion answers 409 Conflict.
 * Creates the namespace `<prefix>-conflicts` and one ConfigMap in it; deletes the namespace afterwards.
 */
import { describe, expect, it } from "vitest";
import type { CoreV1Api, V1ConfigMap } from "@kubernetes/client-node";
import { type ContractTarget, refusal, useTargetNamespace } from "./target.js";

let target: ContractTarget;
let namespace: string;
let core: CoreV1Api;

useTargetNamespace("conflicts", (ready) => ({ target, namespace, core } = ready));

function configMap(name: string, data: Record<string, string>): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data };
}

describe("Kubernetes conflicts", () => {
  it("creating an object that exists answers 409 AlreadyExists with the Status naming it", async () => {
    // Prepare
    const name = `${target.prefix}-exists`;
    await core.createNamespacedConfigMap({ namespace, body: configMap(name, { a: "1" }) });

    // Act
    const { code, body } = await refusal(core.createNamespacedConfigMap({ namespace, body: configMap(name, { a: "2" }) }));

    // Assess
    expect(code).toBe(409);
    expect(body).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `configmaps "${name}" already exists`,
      reason: "AlreadyExists",
      details: { name, kind: "configmaps" },
      code: 409,
    });
    // the first object is untouched
    expect((await core.readNamespacedConfigMap({ name, namespace })).data).toEqual({ a: "1" });
  });

  it("an update with a stale resourceVersion answers 409 Conflict; the current one is accepted", async () => {
    // Prepare: read, then someone else's update moves the resourceVersion on
    const name = `${target.prefix}-stale`;
    await core.createNamespacedConfigMap({ namespace, body: configMap(name, { v: "1" }) });
    const read = await core.readNamespacedConfigMap({ name, namespace });
    const stale = read.metadata!.resourceVersion!;
    const theirs = await core.replaceNamespacedConfigMap({ name, namespace, body: { ...read, data: { v: "theirs" } } });

    // Act
    const { code, body } = await refusal(
      core.replaceNamespacedConfigMap({
        name,
        namespace,
        body: { ...read, metadata: { ...read.metadata, resourceVersion: stale }, data: { v: "mine" } },
      }),
    );
    const current = await core.replaceNamespacedConfigMap({ name, namespace, body: { ...theirs, data: { v: "mine" } } });

    // Assess
    expect(theirs.metadata!.resourceVersion).not.toBe(stale);
    expect(code).toBe(409);
    expect(body).toMatchObject({
      kind: "Status",
      status: "Failure",
      reason: "Conflict",
      message: `Operation cannot be fulfilled on configmaps "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      details: { name, kind: "configmaps" },
      code: 409,
    });
    expect(current.data).toEqual({ v: "mine" });
  });
});
