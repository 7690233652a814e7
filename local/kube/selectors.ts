/**
 * Label and field selectors with the real server's grammar and semantics:
 *   labels: `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`, comma = AND.
 *     `!=` and `notin` also match objects without the label, as upstream.
 *   fields: `path=v`, `path==v`, `path!=v`, comma = AND; `metadata.name` and `metadata.namespace` for every
 *     resource, plus the few per-kind fields the real server indexes (pods' `status.phase`, events'
 *     `involvedObject.*`, ...). Anything else is a 400 like upstream ("field label not supported").
 */
import { badRequest } from "./kube-status.js";

type LabelOperator = "exists" | "!exists" | "=" | "!=" | "in" | "notin" | ">" | "<";

export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  values: string[];
}

export type Labels = Record<string, string> | undefined;

/** Split on commas that are not inside parentheses. */
function splitTopLevel(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

const KEY = "[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?";
const VALUE = "(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?";
const SET_RE = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\(([^()]*)\)$`);
const EQ_RE = new RegExp(String.raw`^(${KEY})\s*(==|=|!=)\s*(${VALUE})$`);
const CMP_RE = new RegExp(String.raw`^(${KEY})\s*(>|<)\s*(-?\d+)$`);
const EXISTS_RE = new RegExp(String.raw`^(!?)\s*(${KEY})$`);

function invalidSelector(selector: string, why: string): Error {
  return badRequest(`unable to parse requirement: ${why} (selector ${JSON.stringify(selector)})`);
}

export function parseLabelSelector(selector: string | undefined | null): LabelRequirement[] {
  if (!selector?.trim()) return [];
  return splitTopLevel(selector).map((part): LabelRequirement => {
    let m = SET_RE.exec(part);
    if (m) {
      const values = m[3]!.split(",").map((v) => v.trim());
      if (values.some((v) => !new RegExp(`^${VALUE}$`).test(v)))
        throw invalidSelector(selector, `invalid value in ${JSON.stringify(part)}`);
      return { key: m[1]!, operator: m[2] as "in" | "notin", values };
    }
    m = EQ_RE.exec(part);
    if (m) return { key: m[1]!, operator: m[2] === "!=" ? "!=" : "=", values: [m[3]!] };
    m = CMP_RE.exec(part);
    if (m) return { key: m[1]!, operator: m[2] as ">" | "<", values: [m[3]!] };
    m = EXISTS_RE.exec(part);
    if (m) return { key: m[2]!, operator: m[1] ? "!exists" : "exists", values: [] };
    throw invalidSelector(selector, `found ${JSON.stringify(part)}`);
  });
}

export function matchesLabelRequirements(labels: Labels, requirements: LabelRequirement[]): boolean {
  return requirements.every((r) => {
    const has = labels !== undefined && Object.hasOwn(labels, r.key);
    const value = has ? labels![r.key]! : undefined;
    switch (r.operator) {
      case "exists":
        return has;
      case "!exists":
        return !has;
      case "=":
        return has && value === r.values[0];
      case "!=":
        return !has || value !== r.values[0];
      case "in":
        return has && r.values.includes(value!);
      case "notin":
        return !has || !r.values.includes(value!);
      case ">":
      case "<": {
        if (!has || !/^-?\d+$/.test(value!)) return false;
        const n = Number(value);
        const bound = Number(r.values[0]);
        return r.operator === ">" ? n > bound : n < bound;
      }
      default:
        return false;
    }
  });
}

export interface FieldRequirement {
  path: string;
  operator: "=" | "!=";
  value: string;
}

/** Field paths the real server accepts per resource, besides metadata.name / metadata.namespace. */
const EXTRA_FIELDS: Record<string, string[]> = {
  pods: [
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
  ],
  events: [
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "regarding.kind",
    "regarding.name",
    "regarding.namespace",
    "regarding.uid",
  ],
  secrets: ["type"],
  namespaces: ["status.phase"],
  jobs: ["status.successful"],
};

export function parseFieldSelector(selector: string | undefined | null, resource: string): FieldRequirement[] {
  if (!selector?.trim()) return [];
  const allowed = new Set(["metadata.name", "metadata.namespace", ...(EXTRA_FIELDS[resource] ?? [])]);
  return splitTopLevel(selector).map((part) => {
    const m = /^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const path = m[1]!;
    if (!allowed.has(path)) throw badRequest(`field label not supported: ${path}`);
    return { path, operator: m[2] === "!=" ? "!=" : "=", value: m[3]!.trim() };
  });
}

function fieldValue(object: unknown, path: string): string {
  let current: unknown = object;
  for (const segment of path.split(".")) {
    if (!current || typeof current !== "object") return "";
    current = (current as Record<string, unknown>)[segment];
  }
  if (current === undefined || current === null) return "";
  return typeof current === "object" ? JSON.stringify(current) : String(current);
}

export function matchesFieldRequirements(object: unknown, requirements: FieldRequirement[]): boolean {
  return requirements.every((r) => {
    const value = fieldValue(object, r.path);
    return r.operator === "=" ? value === r.value : value !== r.value;
  });
}
