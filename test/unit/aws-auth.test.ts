import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import {
  addMapping,
  awsAuthEntryLine,
  awsAuthPrincipal,
  findMapping,
  parseAwsAuth,
  removeMapping,
  serializeAwsAuth,
  type AwsAuthMapping,
} from "../../functions/lib/kube/aws-auth/index.js";

const ACCOUNT = "111122223333";
const NODE_ROLE = `arn:aws:iam::${ACCOUNT}:role/eksctl-research-nodegroup-NodeInstanceRole-1ABC`;
const LAUNCHER_ROLE = `arn:aws:iam::${ACCOUNT}:role/nfeks-genomics-launcher`;
const LAUNCHER_USER = `arn:aws:iam::${ACCOUNT}:user/seqera/tower-user`;

/** What eksctl and the EKS console leave in aws-auth: node roles, templated usernames, an admin with a comment. */
const MAP_ROLES = `- groups:
  - system:bootstrappers
  - system:nodes
  rolearn: ${NODE_ROLE}
  username: system:node:{{EC2PrivateDNSName}}
- rolearn: 'arn:aws:iam::${ACCOUNT}:role/platform-admin' # break-glass
  username: "admin:{{SessionName}}"
  groups: [ "system:masters" ]
`;
const MAP_USERS = `- userarn: arn:aws:iam::${ACCOUNT}:user/ops
  username: "ops: on-call"
  groups:
    - ops-viewers
`;
const DATA = { mapRoles: MAP_ROLES, mapUsers: MAP_USERS, mapAccounts: `- "${ACCOUNT}"\n` };

const LAUNCHER: AwsAuthMapping = { kind: "role", arn: LAUNCHER_ROLE, username: "tower-launcher-user", groups: ["tower-launcher-role"] };

describe("parseAwsAuth", () => {
  it("reads roles, users and keeps other keys", () => {
    // Act
    const auth = parseAwsAuth(DATA);
    // Assess
    expect(auth.mapRoles).toEqual([
      { groups: ["system:bootstrappers", "system:nodes"], rolearn: NODE_ROLE, username: "system:node:{{EC2PrivateDNSName}}" },
      { rolearn: `arn:aws:iam::${ACCOUNT}:role/platform-admin`, username: "admin:{{SessionName}}", groups: ["system:masters"] },
    ]);
    expect(auth.mapUsers).toEqual([{ userarn: `arn:aws:iam::${ACCOUNT}:user/ops`, username: "ops: on-call", groups: ["ops-viewers"] }]);
    expect(auth.other).toEqual({ mapAccounts: `- "${ACCOUNT}"\n` });
  });

  it("treats a missing ConfigMap, missing keys and empty lists as empty", () => {
    expect(parseAwsAuth(undefined)).toEqual({ mapRoles: [], mapUsers: [], other: {} });
    expect(parseAwsAuth({ mapRoles: "", mapUsers: "# nobody yet\n" })).toEqual({ mapRoles: [], mapUsers: [], other: {} });
    expect(parseAwsAuth({ mapRoles: "[]" }).mapRoles).toEqual([]);
  });

  it.each([
    ["broken YAML", { mapRoles: "- rolearn: [unclosed\n" }],
    ["a mapping instead of a list", { mapRoles: "rolearn: arn:aws:iam::111122223333:role/x\n" }],
    ["a scalar", { mapUsers: "just text" }],
    ["a list of strings", { mapRoles: "- arn:aws:iam::111122223333:role/x\n" }],
    ["duplicate keys", { mapRoles: "- rolearn: a\n  rolearn: b\n" }],
  ])("refuses %s with AwsAuthUnparseable", (_what, data) => {
    // Act
    const act = () => parseAwsAuth(data);
    // Assess
    expect(act).toThrow(expect.objectContaining({ name: "AwsAuthUnparseable" }));
  });
});

describe("addMapping", () => {
  it("appends a role mapping to mapRoles and leaves node roles and other keys byte for byte", () => {
    // Prepare
    const auth = parseAwsAuth(DATA);
    // Act
    const { auth: next, changed } = addMapping(auth, LAUNCHER);
    const data = serializeAwsAuth(next);
    // Assess
    expect(changed).toBe(true);
    expect(data.mapRoles!.startsWith(MAP_ROLES)).toBe(true);
    expect(data.mapUsers).toBe(MAP_USERS);
    expect(data.mapAccounts).toBe(DATA.mapAccounts);
    expect(parseYaml(data.mapRoles!)).toEqual([
      ...parseYaml(MAP_ROLES),
      { rolearn: LAUNCHER_ROLE, username: "tower-launcher-user", groups: ["tower-launcher-role"] },
    ]);
    expect(auth.mapRoles).toHaveLength(2); // the input is not mutated
  });

  it("puts a user ARN in mapUsers with userarn", () => {
    // Act
    const { auth } = addMapping(parseAwsAuth(DATA), { ...LAUNCHER, kind: "user", arn: LAUNCHER_USER });
    const data = serializeAwsAuth(auth);
    // Assess
    expect(data.mapRoles).toBe(MAP_ROLES);
    expect(data.mapUsers!.startsWith(MAP_USERS)).toBe(true);
    expect(parseYaml(data.mapUsers!).at(-1)).toEqual({
      userarn: LAUNCHER_USER,
      username: "tower-launcher-user",
      groups: ["tower-launcher-role"],
    });
    expect(findMapping(auth, LAUNCHER_USER)).toMatchObject({ userarn: LAUNCHER_USER });
  });

  it("maps an STS assumed-role ARN as its role, without the role path", () => {
    // Prepare
    const assumed = `arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-genomics-launcher/session-1`;
    // Act
    const { auth } = addMapping(parseAwsAuth(DATA), { ...LAUNCHER, arn: assumed });
    const { auth: withPath } = addMapping(parseAwsAuth(undefined), {
      ...LAUNCHER,
      arn: `arn:aws:iam::${ACCOUNT}:role/teams/genomics/nfeks-genomics-launcher`,
    });
    // Assess
    expect(auth.mapRoles.at(-1)).toEqual({ rolearn: LAUNCHER_ROLE, username: "tower-launcher-user", groups: ["tower-launcher-role"] });
    expect(withPath.mapRoles).toEqual([{ rolearn: LAUNCHER_ROLE, username: "tower-launcher-user", groups: ["tower-launcher-role"] }]);
    expect(awsAuthPrincipal(assumed)).toEqual({ kind: "role", arn: LAUNCHER_ROLE });
  });

  it("is a no-op when the same mapping is already there (also as a case or path variant)", () => {
    // Prepare
    const { auth } = addMapping(parseAwsAuth(DATA), LAUNCHER);
    const before = serializeAwsAuth(auth);
    // Act
    const again = addMapping(auth, { ...LAUNCHER, groups: [...LAUNCHER.groups] });
    const variant = addMapping(auth, { ...LAUNCHER, arn: LAUNCHER_ROLE.replace("nfeks-genomics-launcher", "NFEKS-Genomics-Launcher") });
    // Assess
    expect(again.changed).toBe(false);
    expect(variant.changed).toBe(false);
    expect(serializeAwsAuth(again.auth)).toEqual(before);
  });

  it("refuses to overwrite a different mapping of the same principal (OwnershipConflict), unless told it is ours", () => {
    // Prepare
    const auth = parseAwsAuth(DATA);
    const admin = {
      kind: "role" as const,
      arn: `arn:aws:iam::${ACCOUNT}:role/platform-admin`,
      username: "tower-launcher-user",
      groups: ["tower-launcher-role"],
    };
    // Act
    const act = () => addMapping(auth, admin);
    const replaced = addMapping(auth, admin, { replaceOwned: true });
    // Assess
    expect(act).toThrow(expect.objectContaining({ name: "OwnershipConflict", message: expect.stringContaining("platform-admin") }));
    expect(replaced.changed).toBe(true);
    expect(replaced.auth.mapRoles[1]).toEqual({ rolearn: admin.arn, username: "tower-launcher-user", groups: ["tower-launcher-role"] });
    expect(replaced.auth.mapRoles[0]).toEqual(auth.mapRoles[0]);
    expect(replaced.auth.mapRoles).toHaveLength(2);
  });

  it.each([
    ["a system: group", { groups: ["system:masters"] }],
    ["an upper-case SYSTEM: group", { groups: ["tower-launcher-role", "SYSTEM:Masters"] }],
    ["a system: group behind whitespace", { groups: ["  system :masters"] }],
    ["a system: group with a tab inside", { groups: ["\tsystem\t:nodes"] }],
    ["a system: username", { username: "system:admin" }],
    ["a System: username with spaces", { username: " System: node:x" }],
  ])("refuses %s (NotAllowed)", (_what, change) => {
    // Act
    const act = () => addMapping(parseAwsAuth(DATA), { ...LAUNCHER, ...change });
    // Assess
    expect(act).toThrow(expect.objectContaining({ name: "NotAllowed" }));
  });

  it.each([
    ["an EKS cluster ARN", `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/research`],
    ["an STS federated user", `arn:aws:sts::${ACCOUNT}:federated-user/bob`],
    ["not an ARN", "tower-launcher"],
    ["a role ARN given as a user", `user-as-role`],
  ])("refuses %s as the principal (InvalidRequest)", (_what, arn) => {
    // Prepare
    const mapping = arn === "user-as-role" ? { ...LAUNCHER, kind: "user" as const } : { ...LAUNCHER, arn };
    // Act
    const act = () => addMapping(parseAwsAuth(DATA), mapping);
    // Assess
    expect(act).toThrow(expect.objectContaining({ name: "InvalidRequest" }));
  });
});

describe("removeMapping", () => {
  it("removes exactly the launcher entry and restores the original text", () => {
    // Prepare
    const { auth } = addMapping(parseAwsAuth(DATA), LAUNCHER);
    // Act
    const { auth: after, removed } = removeMapping(auth, LAUNCHER_ROLE);
    // Assess
    expect(removed).toBe(true);
    expect(serializeAwsAuth(after)).toEqual(DATA);
    expect(findMapping(after, LAUNCHER_ROLE)).toBeUndefined();
  });

  it("reports nothing removed when the principal is not mapped, and can run twice", () => {
    // Prepare
    const auth = parseAwsAuth(DATA);
    // Act
    const first = removeMapping(auth, LAUNCHER_ROLE);
    const second = removeMapping(first.auth, LAUNCHER_ROLE);
    // Assess
    expect(first.removed).toBe(false);
    expect(second.removed).toBe(false);
    expect(serializeAwsAuth(second.auth)).toEqual(DATA);
  });

  it("with `only`, leaves an entry someone changed after us", () => {
    // Prepare
    const { auth } = addMapping(parseAwsAuth(DATA), { ...LAUNCHER, groups: ["someone-else"] });
    // Act
    const result = removeMapping(auth, LAUNCHER_ROLE, { username: LAUNCHER.username, groups: LAUNCHER.groups });
    // Assess
    expect(result.removed).toBe(false);
    expect(findMapping(result.auth, LAUNCHER_ROLE)).toMatchObject({ groups: ["someone-else"] });
  });

  it("removes the last entry of a list the ConfigMap did not have before without leaving the key", () => {
    // Prepare
    const { auth } = addMapping(parseAwsAuth({ mapRoles: MAP_ROLES }), { ...LAUNCHER, kind: "user", arn: LAUNCHER_USER });
    // Act
    const { auth: after } = removeMapping(auth, LAUNCHER_USER);
    // Assess
    expect(serializeAwsAuth(auth)).toHaveProperty("mapUsers");
    expect(serializeAwsAuth(after)).toEqual({ mapRoles: MAP_ROLES });
  });
});

describe("entries EKS does not honour", () => {
  /** What someone wrote by hand for the launcher: with the role's path, and as an assumed-role session. Neither maps it on EKS. */
  const DEAD_ENTRIES = `${MAP_ROLES}- rolearn: arn:aws:iam::${ACCOUNT}:role/teams/genomics/nfeks-genomics-launcher
  username: by-path
  groups: [ "system:masters" ]
- rolearn: arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-genomics-launcher/alice
  username: by-session
  groups: [ "system:masters" ]
`;
  const WITH_DEAD = { ...DATA, mapRoles: DEAD_ENTRIES };

  it("an entry with the role's path or an assumed-role ARN is not the role's mapping (aws-iam-authenticator matches the ARN as written)", () => {
    // Prepare
    const auth = parseAwsAuth(WITH_DEAD);
    // Act
    const found = findMapping(auth, LAUNCHER_ROLE);
    const foundForSession = findMapping(auth, `arn:aws:sts::${ACCOUNT}:assumed-role/nfeks-genomics-launcher/bob`);
    // Assess
    expect(found).toBeUndefined();
    expect(foundForSession).toBeUndefined();
  });

  it("adding the launcher beside them appends its path-less entry and leaves them byte for byte; removing it takes only its own", () => {
    // Prepare
    const auth = parseAwsAuth(WITH_DEAD);
    // Act
    const added = addMapping(auth, LAUNCHER);
    const removed = removeMapping(added.auth, LAUNCHER_ROLE);
    // Assess
    expect(added.changed).toBe(true);
    expect(serializeAwsAuth(added.auth).mapRoles?.startsWith(DEAD_ENTRIES)).toBe(true);
    expect(findMapping(added.auth, LAUNCHER_ROLE)).toEqual({
      rolearn: LAUNCHER_ROLE,
      username: LAUNCHER.username,
      groups: LAUNCHER.groups,
    });
    expect(removed.removed).toBe(true);
    expect(serializeAwsAuth(removed.auth)).toEqual(WITH_DEAD);
  });
});

describe("serializeAwsAuth", () => {
  it("returns unchanged content byte for byte", () => {
    expect(serializeAwsAuth(parseAwsAuth(DATA))).toEqual(DATA);
  });

  it("round-trips quotes, colons and {{SessionName}} in new entries", () => {
    // Prepare
    const awkward: AwsAuthMapping = {
      kind: "role",
      arn: LAUNCHER_ROLE,
      username: `launcher:{{SessionName}}`,
      groups: [`it's "quoted"`, "a: b", "{{x}}", "#not-a-comment"],
    };
    // Act
    const data = serializeAwsAuth(addMapping(parseAwsAuth(undefined), awkward).auth);
    // Assess
    expect(parseAwsAuth(data).mapRoles).toEqual([{ rolearn: LAUNCHER_ROLE, username: awkward.username, groups: awkward.groups }]);
    expect(data).not.toHaveProperty("mapUsers");
  });

  it("keeps the nested-list indentation of the original when it appends", () => {
    // Prepare
    const indented = `- rolearn: ${NODE_ROLE}\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n`;
    // Act
    const data = serializeAwsAuth(addMapping(parseAwsAuth({ mapRoles: indented }), LAUNCHER).auth);
    // Assess
    expect(data.mapRoles!.startsWith(indented)).toBe(true);
    expect(data.mapRoles!.slice(indented.length)).toBe(
      `- rolearn: ${LAUNCHER_ROLE}\n  username: tower-launcher-user\n  groups:\n    - tower-launcher-role\n`,
    );
  });

  it("keeps JSON-style (flow) content JSON when it appends", () => {
    // Prepare
    const json = JSON.stringify([{ rolearn: NODE_ROLE, username: "system:node:{{EC2PrivateDNSName}}", groups: ["system:nodes"] }]);
    // Act
    const data = serializeAwsAuth(addMapping(parseAwsAuth({ mapRoles: json }), LAUNCHER).auth);
    // Assess
    expect(JSON.parse(data.mapRoles!)).toEqual([
      ...JSON.parse(json),
      { rolearn: LAUNCHER_ROLE, username: "tower-launcher-user", groups: ["tower-launcher-role"] },
    ]);
  });

  it("drops a list emptied by a removal (a missing key is an empty list to EKS)", () => {
    // Act
    const data = serializeAwsAuth(removeMapping(parseAwsAuth(DATA), `arn:aws:iam::${ACCOUNT}:user/ops`).auth);
    // Assess
    expect(data).toEqual({ mapRoles: MAP_ROLES, mapAccounts: DATA.mapAccounts });
  });

  it("still writes correct content when the caller rebuilt the object (no source text)", () => {
    // Prepare
    const { auth } = addMapping(parseAwsAuth(DATA), LAUNCHER);
    // Act
    const data = serializeAwsAuth({ mapRoles: [...auth.mapRoles], mapUsers: [...auth.mapUsers], other: { ...auth.other } });
    // Assess
    expect(parseAwsAuth(data)).toEqual(auth);
  });
});

describe("awsAuthEntryLine", () => {
  it("writes one mapping as a one-line flow-style list item that parses back to the mapping", () => {
    // Prepare
    const user: AwsAuthMapping = { kind: "user", arn: LAUNCHER_USER, username: "tower-user", groups: ["a", "b"] };

    // Act
    const roleLine = awsAuthEntryLine(LAUNCHER);
    const userLine = awsAuthEntryLine(user);

    // Assess
    expect(roleLine).toBe(`- {rolearn: ${LAUNCHER_ROLE}, username: tower-launcher-user, groups: [tower-launcher-role]}`);
    expect(userLine).toBe(`- {userarn: ${LAUNCHER_USER}, username: tower-user, groups: [a, b]}`);
    const parsed = parseAwsAuth({ mapRoles: roleLine, mapUsers: userLine });
    expect(findMapping(parsed, LAUNCHER_ROLE)).toEqual({
      rolearn: LAUNCHER_ROLE,
      username: "tower-launcher-user",
      groups: ["tower-launcher-role"],
    });
    expect(findMapping(parsed, LAUNCHER_USER)).toEqual({ userarn: LAUNCHER_USER, username: "tower-user", groups: ["a", "b"] });
  });
});

describe("properties", () => {
  const accountId = fc.stringMatching(/^\d{12}$/);
  const iamName = fc.stringMatching(/^[A-Za-z0-9+=,.@_-]{1,32}$/);
  const awkwardText = fc.oneof(
    fc.constantFrom(
      "system:node:{{EC2PrivateDNSName}}",
      "admin:{{SessionName}}",
      "{{SessionName}}",
      "it's",
      'say "hi"',
      "a: b",
      "- dash",
      "# hash",
    ),
    fc.string({ minLength: 1, maxLength: 20 }),
  );
  const existingRole = fc.record({
    rolearn: fc.tuple(accountId, iamName).map(([a, n]) => `arn:aws:iam::${a}:role/${n}`),
    username: awkwardText,
    groups: fc.array(awkwardText, { maxLength: 3 }),
  });
  const existingUser = fc.record({
    userarn: fc.tuple(accountId, iamName).map(([a, n]) => `arn:aws:iam::${a}:user/${n}`),
    username: awkwardText,
    groups: fc.array(awkwardText, { maxLength: 3 }),
  });
  const safeText = fc.stringMatching(/^[a-z][a-z0-9:{}_-]{0,20}$/).filter((s) => !s.startsWith("system:"));
  const mapping = fc
    .record({
      kind: fc.constantFrom("role" as const, "user" as const),
      arn: fc.tuple(accountId, fc.stringMatching(/^launcher-[a-z0-9]{1,10}$/)).map(([a, n]) => `${a}/${n}`),
      username: safeText,
      groups: fc.array(safeText, { maxLength: 3 }),
    })
    .map((m) => {
      const [account, name] = m.arn.split("/");
      return { ...m, arn: `arn:aws:iam::${account}:${m.kind}/${name}` };
    });

  it("add then remove gives back the original entries and the original text", () => {
    fc.assert(
      fc.property(fc.array(existingRole, { maxLength: 4 }), fc.array(existingUser, { maxLength: 3 }), mapping, (roles, users, m) => {
        // Prepare
        const data: Record<string, string> = {};
        if (roles.length) data.mapRoles = stringifyYaml(roles);
        if (users.length) data.mapUsers = stringifyYaml(users);
        const original = parseAwsAuth(data);
        // Act
        const added = addMapping(original, m);
        const written = parseAwsAuth(serializeAwsAuth(added.auth));
        const removed = removeMapping(written, m.arn);
        // Assess
        expect(added.changed).toBe(true);
        expect(written.mapRoles.slice(0, roles.length)).toEqual(roles);
        expect(written.mapUsers.slice(0, users.length)).toEqual(users);
        expect(findMapping(written, m.arn)).toMatchObject({ username: m.username, groups: m.groups });
        expect(addMapping(written, m).changed).toBe(false);
        expect(removed.removed).toBe(true);
        expect(removed.auth.mapRoles).toEqual(original.mapRoles);
        expect(removed.auth.mapUsers).toEqual(original.mapUsers);
        expect(serializeAwsAuth(removed.auth)).toEqual(data);
      }),
    );
  });
});
