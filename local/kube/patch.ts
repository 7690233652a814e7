/**
 * The three PATCH flavours kube-apiserver accepts (plus an approximation of server-side apply):
 *  - JSON merge patch (RFC 7386): maps merge, `null` deletes, lists are replaced;
 *  - strategic merge patch: like merge, except the lists Kubernetes declares with a merge key
 *    (containers/volumes/env by `name`, volumeMounts by `mountPath`, ports by `containerPort`, ...)
 *    are merged element-wise, `$patch: delete|replace` directives are honoured, and `finalizers`
 *    merges as a set; other `$...` directives (kubectl's `$setElementOrder/...`) are dropped;
 *  - JSON patch (RFC 6902): add, remove, replace, move, copy, test over JSON pointers.
 * All functions are pure: they return new values and never touch their inputs.
 */
import { KubeStatusError, badRequest, failure } from "./kube-status.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** RFC 7386 */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const result: JsonObject = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** Lists Kubernetes merges element-wise in a strategic merge patch, by field name → merge key. */
const MERGE_KEYS: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  ephemeralContainers: "name",
  volumes: "name",
  env: "name",
  imagePullSecrets: "name",
  resourceClaims: "name",
  volumeMounts: "mountPath",
  volumeDevices: "devicePath",
  ports: "containerPort",
  hostAliases: "ip",
  topologySpreadConstraints: "topologyKey",
  ownerReferences: "uid",
  conditions: "type",
};
/** Lists of scalars merged as sets. */
const SET_LISTS = new Set(["finalizers"]);

export function strategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === "replace") return stripDirectives(patch);
  if (patch.$patch === "delete") return {};
  const result: JsonObject = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$")) continue; // $setElementOrder/..., $retainKeys: ordering hints we do not need
    if (value === null) {
      delete result[key];
    } else if (Array.isArray(value) && MERGE_KEYS[key] && Array.isArray(result[key])) {
      result[key] = mergeListByKey(result[key] as Json[], value, MERGE_KEYS[key]!);
    } else if (Array.isArray(value) && SET_LISTS.has(key) && Array.isArray(result[key])) {
      const merged = [...(result[key] as Json[])];
      for (const item of value) if (!merged.includes(item)) merged.push(item);
      result[key] = merged;
    } else if (Array.isArray(value)) {
      result[key] = value.map((item) => (isObject(item) ? stripDirectives(item) : item));
    } else {
      result[key] = strategicMergePatch(result[key], value);
    }
  }
  return result;
}

function mergeListByKey(current: Json[], patch: Json[], mergeKey: string): Json[] {
  if (patch.length === 1 && isObject(patch[0]) && patch[0].$patch === "replace") return [];
  const result = [...current];
  for (const item of patch) {
    if (!isObject(item) || !(mergeKey in item)) {
      result.push(clone(item));
      continue;
    }
    const index = result.findIndex((existing) => isObject(existing) && existing[mergeKey] === item[mergeKey]);
    if (item.$patch === "delete") {
      if (index >= 0) result.splice(index, 1);
    } else if (index >= 0) {
      result[index] = strategicMergePatch(result[index], item);
    } else {
      result.push(stripDirectives(item));
    }
  }
  return result;
}

function stripDirectives(value: JsonObject): JsonObject {
  const result: JsonObject = {};
  for (const [key, v] of Object.entries(value)) {
    if (key.startsWith("$")) continue;
    result[key] = isObject(v) ? stripDirectives(v) : clone(v);
  }
  return result;
}

// ---- RFC 6902 ----

interface JsonPatchOperation {
  op: string;
  path: string;
  value?: Json;
  from?: string;
}

function unprocessable(message: string): KubeStatusError {
  return new KubeStatusError(failure(422, "Invalid", message));
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw unprocessable(`invalid JSON pointer ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split("/")
    .map((token) => token.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function parentOf(doc: Json, tokens: string[], pointer: string): { parent: JsonObject | Json[]; key: string } {
  let current: Json = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(current)) current = current[Number(token)] as Json;
    else if (isObject(current)) current = current[token] as Json;
    else current = undefined as unknown as Json;
    if (current === undefined || current === null || typeof current !== "object") {
      throw unprocessable(`doc is missing path: "${pointer}": missing value`);
    }
  }
  return { parent: current as JsonObject | Json[], key: tokens[tokens.length - 1]! };
}

function getAt(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return doc;
  const { parent, key } = parentOf(doc, tokens, pointer);
  const value = Array.isArray(parent) ? parent[Number(key)] : parent[key];
  if (value === undefined) throw unprocessable(`doc is missing path: "${pointer}": missing value`);
  return value;
}

function arrayIndex(parent: Json[], key: string, pointer: string, forInsert: boolean): number {
  if (forInsert && key === "-") return parent.length;
  if (!/^(0|[1-9]\d*)$/.test(key)) throw unprocessable(`invalid array index ${JSON.stringify(key)} in "${pointer}"`);
  const index = Number(key);
  if (index > parent.length || (!forInsert && index === parent.length)) throw unprocessable(`array index out of bounds in "${pointer}"`);
  return index;
}

function addAt(doc: Json, pointer: string, value: Json): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return clone(value);
  const { parent, key } = parentOf(doc, tokens, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, pointer, true), 0, clone(value));
  else parent[key] = clone(value);
  return doc;
}

function removeAt(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw unprocessable("cannot remove the whole document");
  const { parent, key } = parentOf(doc, tokens, pointer);
  if (Array.isArray(parent)) {
    parent.splice(arrayIndex(parent, key, pointer, false), 1);
  } else {
    if (!(key in parent)) throw unprocessable(`Unable to remove nonexistent key: ${key}: missing value`);
    delete parent[key];
  }
  return doc;
}

/** Deep equality of JSON values, key order ignored (and keys holding `undefined` treated as absent). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (!a || !b || typeof a !== "object" || typeof b !== "object") return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left).filter((k) => left[k] !== undefined);
  return keys.length === Object.keys(right).filter((k) => right[k] !== undefined).length && keys.every((k) => jsonEqual(left[k], right[k]));
}

export function jsonPatch(target: Json, operations: unknown): Json {
  if (!Array.isArray(operations)) throw badRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  let doc = clone(target);
  for (const raw of operations as JsonPatchOperation[]) {
    if (!isObject(raw as unknown) || typeof raw.path !== "string") throw badRequest(`invalid JSON patch operation ${JSON.stringify(raw)}`);
    switch (raw.op) {
      case "add":
        doc = addAt(doc, raw.path, raw.value as Json);
        break;
      case "remove":
        doc = removeAt(doc, raw.path);
        break;
      case "replace":
        getAt(doc, raw.path); // must exist
        doc = raw.path === "" ? clone(raw.value as Json) : addAt(removeAt(doc, raw.path), raw.path, raw.value as Json);
        break;
      case "move": {
        const value = getAt(doc, raw.from ?? "");
        doc = addAt(removeAt(doc, raw.from ?? ""), raw.path, value);
        break;
      }
      case "copy":
        doc = addAt(doc, raw.path, getAt(doc, raw.from ?? ""));
        break;
      case "test":
        if (!jsonEqual(getAt(doc, raw.path), raw.value)) throw unprocessable(`testing value ${raw.path} failed: test failed`);
        break;
      default:
        throw badRequest(`Unexpected kind: ${String(raw.op)}`);
    }
  }
  return doc;
}
