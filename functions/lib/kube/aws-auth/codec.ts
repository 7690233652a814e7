/**
 * The `kube-system/aws-auth` ConfigMap codec (CONFIG_MAP authentication mode). Pure: configmap-edit.ts reads
 * the ConfigMap, edits the parsed entries here, and replaces it with the read resourceVersion.
 *
 * The ConfigMap is shared with the node groups (their role mappings keep the nodes in the cluster), so:
 * - content that does not parse is never rewritten (AwsAuthUnparseable);
 * - every edit is a splice of the list's text (list-text.ts): entries we do not touch keep every byte (quoting,
 *   comments, indentation, flow spacing, `{{SessionName}}`/`{{EC2PrivateDNSName}}` templates, an empty `[]`),
 *   and removing an entry we appended gives back the text from before, byte for byte;
 * - we never grant `system:` groups or usernames, and never overwrite someone else's mapping.
 */
import { isDeepStrictEqual } from "node:util";
import { Document, isMap, isSeq, parseDocument } from "yaml";
import { parseArn, roleArnOfAssumedRole } from "../../domain/arn.js";
import { AwsAuthUnparseable, InvalidRequest, NotAllowed, OwnershipConflict } from "../../domain/errors.js";
import { isSystemName } from "../../domain/request.js";
import { appendItem, itemText, removeItem, replaceItem, replaceItemText } from "./list-text.js";

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

export type ListKey = "mapRoles" | "mapUsers";
const LIST_KEYS: ListKey[] = ["mapRoles", "mapUsers"];
const ARN_KEY = { mapRoles: "rolearn", mapUsers: "userarn" } as const;
const LIST_OF = { role: "mapRoles", user: "mapUsers" } as const;

/**
 * The text of each list (as read, then as edited) and the data key order: what serialisation writes back. Kept
 * beside the (plain-data) AwsAuth rather than inside it; every edit makes a new AwsAuth with its edited text.
 */
interface Source {
  text: Partial<Record<ListKey, string>>;
  keyOrder: string[];
}
const sources = new WeakMap<AwsAuth, Source>();

// ------------------------------------------------------------------ principals

/**
 * The ARN aws-auth must hold for a principal, or undefined when it is not an IAM role/user.
 * An STS assumed-role ARN stands for its role; role paths are dropped because aws-auth matches the
 * role ARN without its path (EKS: "The role ARN can't include a path").
 */
export function awsAuthPrincipal(arn: string): { kind: "role" | "user"; arn: string } | undefined {
  const parsed = parseArn(roleArnOfAssumedRole(arn));
  if (parsed?.service !== "iam" || !/^\d{12}$/.test(parsed.accountId)) return undefined;
  const [type, ...path] = parsed.resource.split("/");
  const name = path[path.length - 1];
  if (!name) return undefined;
  if (type === "role") return { kind: "role", arn: `arn:${parsed.partition}:iam::${parsed.accountId}:role/${name}` };
  if (type === "user") return { kind: "user", arn: `arn:${parsed.partition}:iam::${parsed.accountId}:${parsed.resource}` };
  return undefined;
}

/**
 * Whether an entry maps the principal, as aws-iam-authenticator decides it: the entry's ARN as written, compared
 * case-insensitively (IAM names are unique that way) with the principal's canonical ARN. An entry written with
 * the role's path, or as an assumed-role session, maps nobody on EKS, so it is not the principal's mapping here
 * either: it is neither reported as access (drift), nor taken for ours, nor removed.
 */
function sameArn(entryArn: unknown, canonicalArn: string): boolean {
  return typeof entryArn === "string" && entryArn.toLowerCase() === canonicalArn.toLowerCase();
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

const TO_STRING = { lineWidth: 0, minContentWidth: 0 } as const;

/** A list's text as serialisation would write it: the source text while it still says what the entries say. */
function listText(auth: AwsAuth, key: ListKey): string | undefined {
  const text = sources.get(auth)?.text[key];
  if (text !== undefined && isDeepStrictEqual(parseList(key, text), auth[key])) return text;
  // Rebuilt or changed by the caller: written afresh (no list, no key).
  return auth[key].length === 0 ? undefined : new Document(auth[key]).toString(TO_STRING);
}

/** The AwsAuth `auth` becomes when list `key` has the text `text` (undefined: the key is dropped). */
function withListText(auth: AwsAuth, key: ListKey, text: string | undefined): AwsAuth {
  const before = sources.get(auth);
  const edited: AwsAuth = { ...auth, [key]: parseList(key, text) };
  const texts: Source["text"] = {};
  for (const list of LIST_KEYS) {
    const value = list === key ? text : listText(auth, list);
    if (value !== undefined) texts[list] = value;
  }
  sources.set(edited, { text: texts, keyOrder: before?.keyOrder ?? [] });
  return edited;
}

// ------------------------------------------------------------------ edit

/** The entry mapping this principal (rolearn in mapRoles, userarn in mapUsers), if any. */
export function findMapping(auth: AwsAuth, arn: string): Record<string, unknown> | undefined {
  const principal = awsAuthPrincipal(arn);
  if (!principal) return undefined;
  const key = LIST_OF[principal.kind];
  return auth[key].find((entry) => sameArn(entry[ARN_KEY[key]], principal.arn));
}

/** The positions of the entries mapping this principal in its list. */
function indexesOf(auth: AwsAuth, key: ListKey, canonicalArn: string): number[] {
  return auth[key].flatMap((entry, index) => (sameArn(entry[ARN_KEY[key]], canonicalArn) ? [index] : []));
}

export interface AddMappingOptions {
  /**
   * The caller knows an existing entry for this ARN is ours (e.g. recorded by an earlier run of this
   * tenant): replace it instead of raising OwnershipConflict.
   */
  replaceOwned?: boolean;
}

/**
 * What an edit did, for its undo: the list, whether the list key is new, and for replaced entries the source of
 * each before (in list order) and the source written in their place.
 */
export interface MappingEdit {
  list: ListKey;
  newList: boolean;
  replaced?: { previous: string[]; written: string };
}

function assertMappable(m: AwsAuthMapping): { kind: "role" | "user"; arn: string } {
  const principal = awsAuthPrincipal(m.arn);
  if (!principal) throw new InvalidRequest(`"${m.arn}" is not an IAM role, IAM user or STS assumed-role ARN`);
  if (principal.kind !== m.kind) throw new InvalidRequest(`"${m.arn}" is an IAM ${principal.kind} ARN but the mapping is for a ${m.kind}`);
  if (!m.username.trim()) throw new InvalidRequest("aws-auth username must not be empty");
  if (isSystemName(m.username)) throw new NotAllowed(`aws-auth username "${m.username}" uses the reserved "system:" prefix`);
  for (const group of m.groups)
    if (isSystemName(group)) throw new NotAllowed(`aws-auth group "${group}" uses the reserved "system:" prefix`);
  return principal;
}

/** Every entry of the principal replaced, in place, by `desired` (duplicates become copies: none is left mapping otherwise). */
function replaceEntries(
  auth: AwsAuth,
  key: ListKey,
  indexes: number[],
  desired: Record<string, unknown>,
): { auth: AwsAuth; edit: MappingEdit } {
  let text = listText(auth, key)!;
  const previous: string[] = [];
  let written = "";
  for (const index of indexes) {
    previous.push(itemText(text, index)!);
    ({ text, written } = replaceItem(text, index, desired));
  }
  return { auth: withListText(auth, key, text), edit: { list: key, newList: false, replaced: { previous, written } } };
}

/**
 * Map a role (mapRoles) or user (mapUsers) to a username and groups. Re-adding the same mapping changes
 * nothing; a different mapping for the same principal that is not known to be ours is an OwnershipConflict.
 * `edit` (when changed) says what the undo needs: {@link undoMappingEdit}.
 */
export function addMapping(
  auth: AwsAuth,
  m: AwsAuthMapping,
  opts: AddMappingOptions = {},
): { auth: AwsAuth; changed: boolean; edit?: MappingEdit } {
  const principal = assertMappable(m);
  const key = LIST_OF[principal.kind];
  const arnKey = ARN_KEY[key];
  const indexes = indexesOf(auth, key, principal.arn);
  if (indexes.some((index) => matches(auth[key][index]!, m))) return { auth, changed: false };

  const desired: Record<string, unknown> = { [arnKey]: principal.arn, username: m.username, groups: [...m.groups] };
  if (indexes.length === 0) {
    const text = listText(auth, key);
    return { auth: withListText(auth, key, appendItem(text, desired)), changed: true, edit: { list: key, newList: text === undefined } };
  }
  if (opts.replaceOwned) return { ...replaceEntries(auth, key, indexes, desired), changed: true };
  const current = auth[key][indexes[0]!]!;
  throw new OwnershipConflict(
    `aws-auth ${key} already maps ${principal.arn} to username ${JSON.stringify(current.username)} ` +
      `and groups ${JSON.stringify(current.groups ?? [])}; it was not added by this product and is left unchanged`,
  );
}

export interface RemoveMappingOptions {
  /** Drop the list key when the removal leaves its text empty (the list was added with the entry). Default true. */
  dropEmptiedList?: boolean;
}

/**
 * Remove the entries mapping this principal, each by cutting its own bytes out of the list's text. With `only`,
 * remove them only when they still map to that username and groups (so a compensator never removes an entry
 * someone changed after us).
 */
export function removeMapping(
  auth: AwsAuth,
  arn: string,
  only?: { username: string; groups: string[] },
  opts: RemoveMappingOptions = {},
): { auth: AwsAuth; removed: boolean } {
  const principal = awsAuthPrincipal(arn);
  if (!principal) return { auth, removed: false };
  const key = LIST_OF[principal.kind];
  const doomed = indexesOf(auth, key, principal.arn).filter((index) => !only || matches(auth[key][index]!, only));
  if (doomed.length === 0) return { auth, removed: false };
  let text = listText(auth, key)!;
  for (const index of [...doomed].reverse()) text = removeItem(text, index);
  const dropped = text === "" && (opts.dropEmptiedList ?? true);
  return { auth: withListText(auth, key, dropped ? undefined : text), removed: true };
}

/**
 * Put back the entries an edit replaced, where each still has exactly the source the edit wrote (bytes compared):
 * `restored` false when none had (changed since, or gone), and then nothing is touched.
 */
export function restoreReplacedMapping(
  auth: AwsAuth,
  arn: string,
  replaced: { previous: string[]; written: string },
): { auth: AwsAuth; restored: boolean } {
  const principal = awsAuthPrincipal(arn);
  if (!principal) return { auth, restored: false };
  const key = LIST_OF[principal.kind];
  let text = listText(auth, key);
  if (text === undefined) return { auth, restored: false };
  const ours = indexesOf(auth, key, principal.arn).filter((index) => itemText(text!, index) === replaced.written);
  if (ours.length === 0) return { auth, restored: false };
  // Positions do not move: each item is put back in place, in list order (from the end, so offsets stay valid).
  for (const [n, index] of [...ours.entries()].reverse())
    text = replaceItemText(text, index, replaced.previous[n] ?? replaced.written).text;
  return { auth: withListText(auth, key, text), restored: true };
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

/** Back to ConfigMap `data`: other keys as they were, each list as its (edited) text, in the order read. */
export function serializeAwsAuth(auth: AwsAuth): Record<string, string> {
  const order = [...(sources.get(auth)?.keyOrder ?? []), ...Object.keys(auth.other), ...LIST_KEYS];
  const data: Record<string, string> = {};
  for (const key of order) {
    if (key in data) continue;
    const value = key === "mapRoles" || key === "mapUsers" ? listText(auth, key) : auth.other[key];
    if (value !== undefined) data[key] = value;
  }
  return data;
}
