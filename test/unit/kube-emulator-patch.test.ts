/**
 * The emulated API server's pure pieces: the three patch flavours (RFC 7386, strategic merge, RFC 6902)
 * and label/field selector parsing, checked against the upstream semantics the steps rely on.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { jsonEqual, jsonPatch, mergePatch, strategicMergePatch, type Json } from "../../local/kube/patch.js";
import { matchesFieldRequirements, matchesLabelRequirements, parseFieldSelector, parseLabelSelector } from "../../local/kube/selectors.js";
import { KubeStatusError } from "../../local/kube/kube-status.js";

function statusOf(action: () => unknown): { code?: number; reason?: string; message?: string } {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(KubeStatusError);
    return (error as KubeStatusError).status;
  }
  throw new Error("expected a KubeStatusError");
}

describe("mergePatch (RFC 7386)", () => {
  it("follows the RFC's examples", () => {
    // Prepare
    const cases: Array<[Json, Json, Json]> = [
      [{ a: "b" }, { a: "c" }, { a: "c" }],
      [{ a: "b" }, { b: "c" }, { a: "b", b: "c" }],
      [{ a: "b" }, { a: null }, {}],
      [{ a: "b", b: "c" }, { a: null }, { b: "c" }],
      [{ a: ["b"] }, { a: "c" }, { a: "c" }],
      [{ a: "c" }, { a: ["b"] }, { a: ["b"] }],
      [{ a: { b: "c" } }, { a: { b: "d", c: null } }, { a: { b: "d" } }],
      [{ a: [{ b: "c" }] }, { a: [1] }, { a: [1] }],
      [{ e: null }, { a: 1 }, { e: null, a: 1 }],
      [[1, 2], { a: "b", c: null }, { a: "b" }],
      [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    ];
    // Act
    const results = cases.map(([target, patch]) => mergePatch(target, patch));
    // Assess
    expect(results).toEqual(cases.map(([, , expected]) => expected));
  });

  it("never changes its input, and an empty patch changes nothing", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (doc) => {
        // Prepare
        const before = JSON.stringify(doc);
        // Act
        const result = mergePatch(doc as Json, {});
        // Assess
        expect(JSON.stringify(doc)).toBe(before);
        expect(jsonEqual(result, doc)).toBe(true);
      }),
    );
  });
});

describe("strategicMergePatch", () => {
  const pod: Json = {
    metadata: { labels: { app: "x" }, finalizers: ["a"] },
    spec: {
      containers: [
        {
          name: "main",
          image: "busybox:1",
          args: ["one", "two"],
          env: [
            { name: "A", value: "1" },
            { name: "B", value: "2" },
          ],
        },
        { name: "sidecar", image: "envoy:1" },
      ],
      volumes: [{ name: "config", configMap: { name: "c" } }],
    },
  };

  it("merges keyed lists element-wise, replaces plain lists, merges finalizers as a set", () => {
    // Act
    const result = strategicMergePatch(pod, {
      metadata: { finalizers: ["a", "b"] },
      spec: {
        $setElementOrder: [{ name: "main" }],
        containers: [
          {
            name: "main",
            args: ["three"],
            env: [
              { name: "B", value: "two" },
              { name: "C", value: "3" },
            ],
          },
        ],
        volumes: [{ name: "scratch", persistentVolumeClaim: { claimName: "tower-scratch" } }],
      },
    } as Json) as any;
    // Assess
    expect(result.metadata.finalizers).toEqual(["a", "b"]);
    expect(result.spec.containers).toEqual([
      {
        name: "main",
        image: "busybox:1",
        args: ["three"],
        env: [
          { name: "A", value: "1" },
          { name: "B", value: "two" },
          { name: "C", value: "3" },
        ],
      },
      { name: "sidecar", image: "envoy:1" },
    ]);
    expect(result.spec.volumes.map((v: { name: string }) => v.name)).toEqual(["config", "scratch"]);
    expect(result.spec).not.toHaveProperty("$setElementOrder");
  });

  it("honours $patch: delete in a keyed list and $patch: replace on a map", () => {
    // Act
    const result = strategicMergePatch(pod, {
      metadata: { labels: { $patch: "replace", only: "this" } },
      spec: { containers: [{ name: "sidecar", $patch: "delete" }] },
    } as Json) as any;
    // Assess
    expect(result.metadata.labels).toEqual({ only: "this" });
    expect(result.spec.containers.map((c: { name: string }) => c.name)).toEqual(["main"]);
  });

  it("behaves like a merge patch when no keyed list or directive is involved", () => {
    const key = fc
      .string({ minLength: 1, maxLength: 6 })
      .filter(
        (k) =>
          !k.startsWith("$") &&
          ![
            "containers",
            "initContainers",
            "ephemeralContainers",
            "volumes",
            "env",
            "imagePullSecrets",
            "resourceClaims",
            "volumeMounts",
            "volumeDevices",
            "ports",
            "hostAliases",
            "topologySpreadConstraints",
            "ownerReferences",
            "conditions",
            "finalizers",
          ].includes(k),
      );
    const value = fc.letrec((tie) => ({
      json: fc.oneof(
        { depthSize: "small" },
        fc.constant(null),
        fc.boolean(),
        fc.integer(),
        fc.string(),
        fc.array(fc.oneof(fc.integer(), fc.string()), { maxLength: 3 }),
        tie("object"),
      ),
      object: fc.dictionary(key, tie("json"), { maxKeys: 4 }),
    })).object;
    fc.assert(
      fc.property(value, value, (target, patch) => {
        // Act
        const strategic = strategicMergePatch(target as Json, patch as Json);
        const merge = mergePatch(target as Json, patch as Json);
        // Assess
        expect(strategic).toEqual(merge);
      }),
    );
  });
});

describe("jsonPatch (RFC 6902)", () => {
  it("applies add (including '-' and ~1 escapes), remove, replace, move, copy and test", () => {
    // Prepare
    const doc: Json = { metadata: { labels: {} }, data: { a: "1" }, list: [1, 2] };
    // Act
    const result = jsonPatch(doc, [
      { op: "add", path: "/metadata/labels/app.kubernetes.io~1managed-by", value: "nf-eks-provisioner" },
      { op: "add", path: "/list/-", value: 3 },
      { op: "add", path: "/list/0", value: 0 },
      { op: "copy", from: "/data/a", path: "/data/b" },
      { op: "move", from: "/data/a", path: "/data/c" },
      { op: "replace", path: "/data/b", value: "2" },
      { op: "remove", path: "/list/1" },
      { op: "test", path: "/list", value: [0, 2, 3] },
    ]);
    // Assess
    expect(result).toEqual({
      metadata: { labels: { "app.kubernetes.io/managed-by": "nf-eks-provisioner" } },
      data: { b: "2", c: "1" },
      list: [0, 2, 3],
    });
    expect(doc).toEqual({ metadata: { labels: {} }, data: { a: "1" }, list: [1, 2] });
  });

  it("answers 422 for a failing test or a missing path, 400 for a body that is not a patch", () => {
    // Act
    const failedTest = statusOf(() => jsonPatch({ a: 1 }, [{ op: "test", path: "/a", value: 2 }]));
    const missing = statusOf(() => jsonPatch({ a: 1 }, [{ op: "replace", path: "/b/c", value: 2 }]));
    const notAPatch = statusOf(() => jsonPatch({ a: 1 }, { op: "add" }));
    const unknownOp = statusOf(() => jsonPatch({ a: 1 }, [{ op: "merge", path: "/a" }]));
    // Assess
    expect([failedTest.code, missing.code, notAPatch.code, unknownOp.code]).toEqual([422, 422, 400, 400]);
    expect(failedTest.reason).toBe("Invalid");
  });
});

describe("selectors", () => {
  const labels = { tier: "web", env: "prod", replicas: "3" };

  it("parses every label operator with upstream's semantics", () => {
    // Prepare
    const cases: Array<[string, boolean]> = [
      ["tier=web", true],
      ["tier==web", true],
      ["tier!=web", false],
      ["missing!=x", true],
      ["tier in (db,web)", true],
      ["tier notin (db, web)", false],
      ["missing notin (x)", true],
      ["env", true],
      ["!env", false],
      ["replicas>2,replicas<4", true],
      ["tier=web, env in (prod)", true],
      ["", true],
    ];
    // Act
    const results = cases.map(([selector]) => matchesLabelRequirements(labels, parseLabelSelector(selector)));
    // Assess
    expect(results).toEqual(cases.map(([, expected]) => expected));
  });

  it("refuses malformed selectors and unsupported field labels with 400", () => {
    // Act
    const badLabel = statusOf(() => parseLabelSelector("tier in web"));
    const badField = statusOf(() => parseFieldSelector("spec.whatever=x", "configmaps"));
    // Assess
    expect(badLabel.code).toBe(400);
    expect(badField).toMatchObject({ code: 400, message: "field label not supported: spec.whatever" });
  });

  it("matches field selectors on metadata and per-kind fields", () => {
    // Prepare
    const pod = { metadata: { name: "p", namespace: "team" }, status: { phase: "Running" } };
    // Act
    const running = matchesFieldRequirements(pod, parseFieldSelector("metadata.name=p,status.phase==Running", "pods"));
    const notFailed = matchesFieldRequirements(pod, parseFieldSelector("status.phase!=Failed", "pods"));
    const otherName = matchesFieldRequirements(pod, parseFieldSelector("metadata.name=q", "pods"));
    // Assess
    expect([running, notFailed, otherName]).toEqual([true, true, false]);
  });
});
