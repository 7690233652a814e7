/**
 * Properties of the aws-auth edit and its undo over generated ConfigMaps shaped like the ones found on clusters:
 * eksctl's (block lists, `groups` first), terraform's `yamlencode` (every key and value quoted), hand-written ones
 * (indented items, comments, flow `groups`), JSON (flow) lists, `{{SessionName}}` templates, and empty lists in
 * every spelling (absent, `[]`, empty, comments only).
 *  - add then undo, with nobody writing in between, gives back the same bytes (data, key order, annotations), also
 *    when the add replaced an adopted entry in place;
 *  - the add leaves every entry that is not ours byte for byte as it was;
 *  - a write by someone else between the add and the undo survives the undo exactly.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { parse, stringify } from "yaml";
import { AwsAuthConfigMap, type AwsAuthMapping } from "../../functions/lib/kube/aws-auth/index.js";
import { markOf } from "../support/fixtures.js";
import { appendItem, itemText, replaceItem } from "../../functions/lib/kube/aws-auth/list-text.js";

type Entry = Record<string, unknown>;
type ListKey = "mapRoles" | "mapUsers";
const RUN = markOf("genomics-run-1");
const silent = { info: () => undefined, warn: () => undefined };

// ---------------------------------------------------------------- generated content

const account = fc.stringMatching(/^\d{12}$/);
const iamName = fc.stringMatching(/^[A-Za-z0-9+=,.@_-]{1,24}$/);
const awkward = fc.oneof(
  fc.constantFrom(
    "system:node:{{EC2PrivateDNSName}}",
    "admin:{{SessionName}}",
    "{{SessionName}}",
    "it's",
    'say "hi"',
    "a: b",
    "- dash",
    "# hash",
    "[x]",
    "yes",
    "0123",
  ),
  fc.string({ minLength: 1, maxLength: 16 }).filter((s) => !/[\n\r]/.test(s)),
);
const foreignEntry = (key: ListKey) =>
  fc.record({
    arn: fc.tuple(account, iamName).map(([a, n]) => `arn:aws:iam::${a}:${key === "mapRoles" ? "role" : "user"}/other-${n}`),
    username: awkward,
    groups: fc.array(awkward, { maxLength: 3 }),
  });

/** A scalar as YAML would write it on its own (plain when it can be, quoted otherwise). */
function scalar(value: string): string {
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

function arnKey(key: ListKey): string {
  return key === "mapRoles" ? "rolearn" : "userarn";
}

const STYLES = ["eksctl", "terraform", "hand", "json", "json-spaced"] as const;
type Style = (typeof STYLES)[number];

function renderEntry(key: ListKey, e: { arn: string; username: string; groups: string[] }, style: Style, n: number): string {
  const q = (s: string) => JSON.stringify(s);
  if (style === "eksctl") {
    const groups = e.groups.length ? `- groups:\n${e.groups.map((g) => `  - ${scalar(g)}\n`).join("")}  ` : "- ";
    return `${groups}${arnKey(key)}: ${e.arn}\n  username: ${scalar(e.username)}\n`;
  }
  if (style === "terraform") {
    const groups = e.groups.length ? `"groups":\n${e.groups.map((g) => `  - ${q(g)}\n`).join("")}` : `"groups": []\n`;
    return `- ${groups}  ${q(arnKey(key))}: ${q(e.arn)}\n  "username": ${q(e.username)}\n`;
  }
  const comment = n % 2 === 0 ? `  # entry ${n}\n` : "";
  return `${comment}  - ${arnKey(key)}: '${e.arn}'${n % 3 === 0 ? " # why" : ""}\n    username: ${scalar(e.username)}\n    groups: [ ${e.groups.map(q).join(", ")} ]\n`;
}

/** A list's text in one style; `undefined` for an absent key. */
function renderList(
  key: ListKey,
  entries: Array<{ arn: string; username: string; groups: string[] }>,
  style: Style,
  empty: string | undefined,
) {
  if (entries.length === 0) return empty;
  const asEntries = entries.map((e) => ({ [arnKey(key)]: e.arn, username: e.username, groups: e.groups }));
  if (style === "json") return JSON.stringify(asEntries);
  if (style === "json-spaced")
    return `[\n${asEntries.map((e) => `  ${JSON.stringify(e, null, 1).replace(/\n\s*/g, " ")}`).join(",\n")}\n]\n`;
  return entries.map((e, n) => renderEntry(key, e, style, n)).join(style === "hand" ? "\n" : "");
}

const emptySpelling = fc.constantFrom(undefined, "[]", "[]\n", "", "# nobody yet\n", "[ ]");

const listArb = (key: ListKey) =>
  fc.record({
    entries: fc.uniqueArray(foreignEntry(key), { maxLength: 4, selector: (e) => e.arn.toLowerCase() }),
    style: fc.constantFrom(...STYLES),
    empty: emptySpelling,
  });

const configMapArb = fc
  .record({
    roles: listArb("mapRoles"),
    users: listArb("mapUsers"),
    mapAccounts: fc.option(fc.constant('- "111122223333"\n'), { nil: undefined }),
    usersFirst: fc.boolean(),
    annotations: fc.option(fc.constant({ "kubectl.kubernetes.io/last-applied-configuration": "{}" }), { nil: undefined }),
  })
  .map(({ roles, users, mapAccounts, usersFirst, annotations }) => {
    const lists: Array<[string, string | undefined]> = [
      ["mapRoles", renderList("mapRoles", roles.entries, roles.style, roles.empty)],
      ["mapUsers", renderList("mapUsers", users.entries, users.style, users.empty)],
    ];
    if (usersFirst) lists.reverse();
    const data = Object.fromEntries([...lists, ["mapAccounts", mapAccounts]].filter((e): e is [string, string] => e[1] !== undefined));
    const configMap: V1ConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "aws-auth", namespace: "kube-system", resourceVersion: "1", ...(annotations ? { annotations } : {}) },
      data,
    };
    return { configMap, roles: roles.entries, users: users.entries };
  });

const safeName = fc.stringMatching(/^[a-z][a-z0-9:{}_-]{0,20}$/).filter((s) => !s.startsWith("system:"));
const ourMapping = fc
  .record({
    kind: fc.constantFrom("role" as const, "user" as const),
    account,
    name: fc.stringMatching(/^launcher-[a-z0-9]{1,10}$/),
    username: safeName,
    groups: fc.array(safeName, { minLength: 1, maxLength: 3 }),
  })
  .map(
    ({ kind, account: a, name, username, groups }): AwsAuthMapping => ({
      kind,
      arn: `arn:aws:iam::${a}:${kind}/${name}`,
      username,
      groups,
    }),
  );

// ---------------------------------------------------------------- the edit and the undo as the step runs them

function written(configMap: V1ConfigMap, awsAuth: AwsAuthConfigMap): V1ConfigMap {
  return awsAuth.replacement() ?? configMap;
}

function add(configMap: V1ConfigMap, m: AwsAuthMapping): V1ConfigMap {
  const awsAuth = new AwsAuthConfigMap(configMap, silent);
  awsAuth.addRunMapping(m, RUN);
  return written(configMap, awsAuth);
}

function undo(configMap: V1ConfigMap, m: AwsAuthMapping): V1ConfigMap {
  const awsAuth = new AwsAuthConfigMap(configMap, silent);
  awsAuth.removeRunMappings(RUN, m);
  return written(configMap, awsAuth);
}

function listOf(m: AwsAuthMapping): ListKey {
  return m.kind === "role" ? "mapRoles" : "mapUsers";
}

function entriesOf(text: string | undefined): Entry[] {
  return (text === undefined ? [] : (parse(text) ?? [])) as Entry[];
}

const RUNS = { numRuns: 300 };

describe("aws-auth: add then undo (property)", () => {
  it("the generated documents say what they were generated from", () => {
    fc.assert(
      fc.property(configMapArb, ({ configMap, roles, users }) => {
        // Assess
        expect(entriesOf(configMap.data?.mapRoles).map((e) => e.rolearn)).toEqual(roles.map((e) => e.arn));
        expect(entriesOf(configMap.data?.mapUsers).map((e) => e.username)).toEqual(users.map((e) => e.username));
      }),
      RUNS,
    );
  });

  it("with nobody writing in between, gives back the same bytes, key order and annotations", () => {
    fc.assert(
      fc.property(configMapArb, ourMapping, ({ configMap }, m) => {
        // Act
        const added = add(configMap, m);
        const undone = undo(added, m);
        // Assess
        expect(entriesOf(added.data?.[listOf(m)]).at(-1)).toEqual({ [arnKey(listOf(m))]: m.arn, username: m.username, groups: m.groups });
        expect(undone.data).toEqual(configMap.data);
        expect(Object.keys(undone.data ?? {})).toEqual(Object.keys(configMap.data ?? {}));
        expect(undone.metadata?.annotations ?? {}).toEqual(configMap.metadata?.annotations ?? {});
      }),
      RUNS,
    );
  });

  it("never alters an entry that is not ours: each keeps its bytes, and the other keys keep theirs", () => {
    fc.assert(
      fc.property(configMapArb, ourMapping, ({ configMap }, m) => {
        // Act
        const added = add(configMap, m);
        // Assess
        const key = listOf(m);
        const before = configMap.data?.[key];
        const count = entriesOf(before).length;
        for (let i = 0; i < count; i++) expect(itemText(added.data![key]!, i)).toBe(itemText(before!, i));
        for (const other of Object.keys(configMap.data ?? {}).filter((k) => k !== key))
          expect(added.data?.[other]).toBe(configMap.data?.[other]);
      }),
      RUNS,
    );
  });

  it("an adopted entry the run replaced in place comes back byte for byte too", () => {
    fc.assert(
      fc.property(configMapArb, ourMapping, fc.nat(), ({ configMap, roles, users }, m, pick) => {
        // Prepare: one of the entries is ours, recorded by an earlier run, with another identity
        const key = listOf(m);
        const candidates = key === "mapRoles" ? roles : users;
        fc.pre(candidates.length > 0);
        const adopted = candidates[pick % candidates.length]!;
        fc.pre(adopted.username !== m.username);
        const mapping = { ...m, arn: adopted.arn };
        const marks = { "nf-eks-provisioner/mappings": JSON.stringify({ [adopted.arn]: "an-earlier-run" }) };
        const ours = { ...configMap, metadata: { ...configMap.metadata, annotations: { ...configMap.metadata?.annotations, ...marks } } };
        // Act
        const replaced = add(ours, mapping);
        const undone = undo(replaced, mapping);
        // Assess
        expect(entriesOf(replaced.data?.[key]).find((e) => e[arnKey(key)] === adopted.arn)).toMatchObject({ username: m.username });
        expect(undone.data).toEqual(ours.data);
        expect(undone.metadata?.annotations).toEqual(ours.metadata.annotations);
      }),
      RUNS,
    );
  });

  it("keeps what someone else wrote between the add and the undo, exactly", () => {
    const theirs = fc.constantFrom("append to our list", "edit an entry before ours", "change mapAccounts");
    fc.assert(
      fc.property(configMapArb, ourMapping, theirs, ({ configMap }, m, write) => {
        // Prepare: their write, as it lands on the content after our add and as it would have on the original
        const key = listOf(m);
        const added = add(configMap, m);
        const their = theirWrite(write, key);
        fc.pre(their.applies(configMap.data ?? {}));
        const expected = their.apply(configMap.data ?? {});
        const meanwhile = { ...added, data: their.apply(added.data ?? {}) };
        // Act
        const undone = undo(meanwhile, m);
        // Assess
        expect(undone.data).toEqual(expected);
      }),
      RUNS,
    );
  });
});

/** Another writer's change of the data, applicable to the original and to the content after our add alike. */
function theirWrite(
  write: string,
  key: ListKey,
): { applies: (data: Record<string, string>) => boolean; apply: (data: Record<string, string>) => Record<string, string> } {
  const theirEntry = {
    [arnKey(key)]: `arn:aws:iam::999988887777:${key === "mapRoles" ? "role" : "user"}/theirs`,
    username: "theirs",
    groups: ["viewers"],
  };
  if (write === "append to our list")
    return { applies: () => true, apply: (data) => ({ ...data, [key]: appendItem(data[key], theirEntry) }) };
  if (write === "edit an entry before ours") {
    return {
      applies: (data) => entriesOf(data[key]).length > 0,
      apply: (data) => ({ ...data, [key]: replaceItem(data[key]!, 0, theirEntry).text }),
    };
  }
  return { applies: () => true, apply: (data) => ({ ...data, mapAccounts: '- "111122223333"\n- "444455556666"\n' }) };
}
