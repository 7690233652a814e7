/**
 * The `kube-system/aws-auth` ConfigMap codec (CONFIG_MAP authentication mode). Pure: configmap-edit.ts reads
 * the ConfigMap, edits the parsed entries here, and replaces it with the read resourceVersion.
 *
 * The ConfigMap is shared with the node groups (their role mappings keep the nodes in the cluster), so:
 * - content that does not parse is never rewritten (AwsAuthUnparseable);
 * - entries we do not touch are kept as they were: their YAML nodes are reused, so quoting, comments,
 *   `{{SessionName}}`/`{{EC2PrivateDNSName}}` templates and colons survive; an unchanged list is returned
 *   byte for byte;
 * - we never grant `system:` groups or usernames, and never overwrite someone else's mapping.
 */
import { isDeepStrictEqual } from "node:util";
import { Document, isMap, isSeq, parseDocument, visit, type YAMLSeq } from "yaml";
import { parseArn, roleArnOfAssumedRole } from "../../domain/arn.js";
import { AwsAuthUnparseable, InvalidRequest, NotAllowed, OwnershipConflict } from "../../domain/errors.js";
import { isSystemName } from "../../domain/request.js";

export interface AwsAuthMapping {
  kind: "role" | "user";
  arn: string;
  username: string;
  groups: string[];
}

export interface AwsAuth {
  mapRoles: Array<Record<string, unknown>>;
  mapUsers: Array<Record<string, unknown>>;
  /** Every other data key (mapAccounts, ...), kept as it was. */
  other: Record<string, string>;
}

type ListKey = "mapRoles" | "mapUsers";
const LIST_KEYS: ListKey[] = ["mapRoles", "mapUsers"];
const ARN_KEY = { mapRoles: "rolearn", mapUsers: "userarn" } as const;
const LIST_OF = { role: "mapRoles", user: "mapUsers" } as const;

/**
 * The text each list was parsed from, and the data key order, so serialisation can reuse the original
 * YAML nodes. Kept beside the (plain-data) AwsAuth rather than inside it; add/remove carry it over.
 */
interface Source {
  text: Partial<Record<ListKey, string>>;
  keyOrder: string[];
}
const sources = new WeakMap<AwsAuth, Source>();

function withSource(auth: AwsAuth, from: AwsAuth): AwsAuth {
  const source = sources.get(from);
  if (source) sources.set(auth, source);
  return auth;
}

// ------------------------------------------------------------------ principals

/**
 * The ARN aws-auth must hold for a principal, or undefined when it is not an IAM role/user.
 * An STS assumed-role ARN stands for its role; role paths are dropped because aws-auth matches the
 * role ARN without its path (EKS: "The role ARN can't include a path").
 */
export function awsAuthPrincipal(arn: string): { kind: "role" | "user"; arn: string } | undefined {
  const parsed = parseArn(roleArnOfAssumedRole(arn));
  if (!parsed || parsed.service !== "iam" || !/^\d{12}$/.test(parsed.accountId)) return undefined;
  const [type, ...path] = parsed.resource.split("/");
  const name = path[path.length - 1];
  if (!name) return undefined;
  if (type === "role") return { kind: "role", arn: `arn:${parsed.partition}:iam::${parsed.accountId}:role/${name}` };
  if (type === "user") return { kind: "user", arn: `arn:${parsed.partition}:iam::${parsed.accountId}:${parsed.resource}` };
  return undefined;
}

/** IAM names are unique case-insensitively, so a case variant is the same principal. */
function sameArn(entryArn: unknown, canonicalArn: string): boolean {
  if (typeof entryArn !== "string") return false;
  const entry = awsAuthPrincipal(entryArn)?.arn ?? entryArn;
  return entry.toLowerCase() === canonicalArn.toLowerCase();
}

function sameGroups(a: unknown, b: string[]): boolean {
  const left = Array.isArray(a) ? a : a === undefined || a === null ? [] : [a];
  return isDeepStrictEqual([...new Set(left.map(String))].sort(), [...new Set(b)].sort());
}

function matches(entry: Record<string, unknown>, m: { username: string; groups: string[] }): boolean {
  return entry.username === m.username && sameGroups(entry.groups, m.groups);
}

// ------------------------------------------------------------------ parse

function parseList(key: ListKey, text: string | undefined): Array<Record<string, unknown>> {
  if (text === undefined) return [];
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new AwsAuthUnparseable(`aws-auth ${key} is not valid YAML: ${doc.errors[0]!.message}`, { cause: doc.errors[0] });
  if (doc.contents === null) return []; // empty or comments only
  if (!isSeq(doc.contents)) throw new AwsAuthUnparseable(`aws-auth ${key} is not a YAML list`);
  doc.contents.items.forEach((item, index) => {
    if (!isMap(item)) throw new AwsAuthUnparseable(`aws-auth ${key} entry ${index} is not a mapping`);
  });
  let entries: unknown;
  try {
    entries = doc.toJS();
  } catch (cause) {
    throw new AwsAuthUnparseable(`aws-auth ${key} cannot be read: ${(cause as Error).message}`, { cause });
  }
  return entries as Array<Record<string, unknown>>;
}

/** Parse the ConfigMap's `data`. Throws AwsAuthUnparseable when mapRoles/mapUsers is not a YAML list of mappings. */
export function parseAwsAuth(data: Record<string, string> | undefined): AwsAuth {
  const { mapRoles, mapUsers, ...other } = data ?? {};
  const auth: AwsAuth = { mapRoles: parseList("mapRoles", mapRoles), mapUsers: parseList("mapUsers", mapUsers), other: { ...other } };
  const text: Source["text"] = {};
  if (mapRoles !== undefined) text.mapRoles = mapRoles;
  if (mapUsers !== undefined) text.mapUsers = mapUsers;
  sources.set(auth, { text, keyOrder: Object.keys(data ?? {}) });
  return auth;
}

// ------------------------------------------------------------------ edit

/** The entry mapping this principal (rolearn in mapRoles, userarn in mapUsers), if any. */
export function findMapping(auth: AwsAuth, arn: string): Record<string, unknown> | undefined {
  const principal = awsAuthPrincipal(arn);
  if (!principal) return undefined;
  const key = LIST_OF[principal.kind];
  return auth[key].find((entry) => sameArn(entry[ARN_KEY[key]], principal.arn));
}

export interface AddMappingOptions {
  /**
   * The caller knows an existing entry for this ARN is ours (e.g. recorded by an earlier run of this
   * tenant): replace it instead of raising OwnershipConflict.
   */
  replaceOwned?: boolean;
}

/**
 * Map a role (mapRoles) or user (mapUsers) to a username and groups. Re-adding the same mapping changes
 * nothing; a different mapping for the same principal that is not known to be ours is an OwnershipConflict.
 */
export function addMapping(auth: AwsAuth, m: AwsAuthMapping, opts: AddMappingOptions = {}): { auth: AwsAuth; changed: boolean } {
  const principal = awsAuthPrincipal(m.arn);
  if (!principal) throw new InvalidRequest(`"${m.arn}" is not an IAM role, IAM user or STS assumed-role ARN`);
  if (principal.kind !== m.kind)
    throw new InvalidRequest(`"${m.arn}" is an IAM ${principal.kind} ARN but the mapping is for a ${m.kind}`);
  if (!m.username.trim()) throw new InvalidRequest("aws-auth username must not be empty");
  if (isSystemName(m.username)) throw new NotAllowed(`aws-auth username "${m.username}" uses the reserved "system:" prefix`);
  for (const group of m.groups)
    if (isSystemName(group)) throw new NotAllowed(`aws-auth group "${group}" uses the reserved "system:" prefix`);

  const key = LIST_OF[principal.kind];
  const arnKey = ARN_KEY[key];
  const list = auth[key];
  const existing = list.filter((entry) => sameArn(entry[arnKey], principal.arn));
  if (existing.some((entry) => matches(entry, m))) return { auth, changed: false };

  const desired: Record<string, unknown> = { [arnKey]: principal.arn, username: m.username, groups: [...m.groups] };
  let next: Array<Record<string, unknown>>;
  if (existing.length === 0) {
    next = [...list, desired];
  } else if (opts.replaceOwned) {
    // Replace in place (first position), dropping duplicates of the same principal.
    const first = list.indexOf(existing[0]!);
    next = list.flatMap((entry, i) => (i === first ? [desired] : existing.includes(entry) ? [] : [entry]));
  } else {
    const current = existing[0]!;
    throw new OwnershipConflict(
      `aws-auth ${key} already maps ${principal.arn} to username ${JSON.stringify(current.username)} ` +
        `and groups ${JSON.stringify(current.groups ?? [])}; it was not added by this product and is left unchanged`,
    );
  }
  return { auth: withSource({ ...auth, [key]: next }, auth), changed: true };
}

/**
 * Remove the entries mapping this principal. With `only`, remove them only when they still map to that
 * username and groups (so a compensator never removes an entry someone changed after us).
 */
export function removeMapping(
  auth: AwsAuth,
  arn: string,
  only?: { username: string; groups: string[] },
): { auth: AwsAuth; removed: boolean } {
  const principal = awsAuthPrincipal(arn);
  if (!principal) return { auth, removed: false };
  const key = LIST_OF[principal.kind];
  const arnKey = ARN_KEY[key];
  const keep = auth[key].filter((entry) => !(sameArn(entry[arnKey], principal.arn) && (!only || matches(entry, only))));
  if (keep.length === auth[key].length) return { auth, removed: false };
  return { auth: withSource({ ...auth, [key]: keep }, auth), removed: true };
}

// ------------------------------------------------------------------ serialise

/**
 * One mapping as a one-line flow-style list item, `- {rolearn: <arn>, username: <name>, groups: [<group>, ...]}`,
 * for an operator to paste into mapRoles (or mapUsers). Written verbatim rather than through the YAML emitter so a
 * value that is a CloudFormation token in a stack output stays the token; the values must need no quoting.
 */
export function awsAuthEntryLine(m: AwsAuthMapping): string {
  return `- {${ARN_KEY[LIST_OF[m.kind]]}: ${m.arn}, username: ${m.username}, groups: [${m.groups.join(", ")}]}`;
}

const TO_STRING = { lineWidth: 0, minContentWidth: 0 } as const;

/** Reuse the original YAML nodes of unchanged entries, so their formatting and comments survive. */
function serializeList(entries: Array<Record<string, unknown>>, original: string | undefined): string | undefined {
  if (original === undefined) return entries.length === 0 ? undefined : new Document(entries).toString(TO_STRING);
  const doc = parseDocument(original);
  const originalEntries = doc.contents === null ? [] : (doc.toJS() as unknown[]);
  if (isDeepStrictEqual(originalEntries, entries)) return original;
  // An emptied list is dropped, as if never written: aws-auth treats a missing key as an empty list.
  if (entries.length === 0) return undefined;
  if (!isSeq(doc.contents)) return new Document(entries).toString(TO_STRING);

  // Keep the original's style of block lists inside entries (`groups:\n- x` or `groups:\n  - x`).
  const indentSeq = doc.toString({ ...TO_STRING, indentSeq: false }) !== original;
  const seq = doc.contents as YAMLSeq<unknown>;
  const oldItems = [...seq.items];
  const used = new Set<number>();
  seq.items = entries.map((entry) => {
    const index = originalEntries.findIndex((old, i) => !used.has(i) && isDeepStrictEqual(old, entry));
    if (index === -1) {
      const node = doc.createNode(entry);
      // Inside a flow list (JSON-like content) quote new strings: ARNs' colons are safest quoted for every reader.
      if (seq.flow)
        visit(node, {
          Scalar(_, scalar) {
            if (typeof scalar.value === "string") scalar.type = "QUOTE_DOUBLE";
          },
        });
      return node;
    }
    used.add(index);
    return oldItems[index]!;
  });
  return doc.toString({ ...TO_STRING, indentSeq });
}

/** Back to ConfigMap `data`: other keys kept, lists re-emitted with untouched entries as they were (an emptied list is left out). */
export function serializeAwsAuth(auth: AwsAuth): Record<string, string> {
  const source = sources.get(auth);
  const lists: Partial<Record<ListKey, string>> = {};
  for (const key of LIST_KEYS) {
    const text = serializeList(auth[key], source?.text[key]);
    if (text !== undefined) lists[key] = text;
  }
  const order = [...(source?.keyOrder ?? []), ...Object.keys(auth.other), ...LIST_KEYS];
  const data: Record<string, string> = {};
  for (const key of order) {
    if (key in data) continue;
    if (key === "mapRoles" || key === "mapUsers") {
      if (lists[key] !== undefined) data[key] = lists[key]!;
    } else if (key in auth.other) {
      data[key] = auth.other[key]!;
    }
  }
  return data;
}
